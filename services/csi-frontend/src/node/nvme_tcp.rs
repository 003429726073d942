//! `rds_csi_node_nvme_tcp_loaded`: whether this node has the `nvme_tcp`
//! kernel module, as the node plugin sees it (1 = `<sysfs>/module/nvme_tcp`
//! exists). Read at start-up and again on every NodeStage, so a module
//! loaded (or unloaded) later shows up with the next volume. `rdsctl doctor`
//! reads it through the API server's pod proxy: the node needs no right on
//! its Node object to report it (services/rdsctl/README.md).

use std::path::{Path, PathBuf};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The gauge's name as scraped.
pub const METRIC: &str = "rds_csi_node_nvme_tcp_loaded";

#[derive(Clone)]
pub struct NvmeTcpLoaded {
    gauge: Gauge,
    module: PathBuf,
}

impl NvmeTcpLoaded {
    /// `sysfs_root` is the data plane's (`/sys` in a pod, a scratch tree in
    /// tests). The gauge starts at 0 until [`NvmeTcpLoaded::refresh`].
    pub fn new(sysfs_root: &Path) -> Self {
        NvmeTcpLoaded {
            gauge: Gauge::default(),
            module: sysfs_root.join("module/nvme_tcp"),
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            METRIC,
            "1 when the nvme_tcp kernel module is loaded on this node (sysfs module/nvme_tcp), 0 when not; read at start and at each NodeStage",
            self.gauge.clone(),
        );
    }

    /// Re-reads sysfs (one stat) and sets the gauge; returns what it found.
    pub fn refresh(&self) -> bool {
        let loaded = self.module.is_dir();
        self.gauge.set(i64::from(loaded));
        loaded
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scrape(r: &Registry) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, r).unwrap();
        s
    }

    #[test]
    fn follows_the_module_directory_under_the_sysfs_root() {
        let sys = tempfile::tempdir().unwrap();
        let m = NvmeTcpLoaded::new(sys.path());
        let mut r = Registry::default();
        m.register(&mut r);
        assert!(!m.refresh());
        assert!(
            scrape(&r).contains("\nrds_csi_node_nvme_tcp_loaded 0\n"),
            "{}",
            scrape(&r)
        );
        std::fs::create_dir_all(sys.path().join("module/nvme_tcp")).unwrap();
        assert!(m.refresh());
        assert!(
            scrape(&r).contains("\nrds_csi_node_nvme_tcp_loaded 1\n"),
            "{}",
            scrape(&r)
        );
        std::fs::remove_dir(sys.path().join("module/nvme_tcp")).unwrap();
        assert!(!m.refresh());
        assert!(scrape(&r).contains("\nrds_csi_node_nvme_tcp_loaded 0\n"));
    }

    /// The Node service reads it at start and again on NodeStage, even one
    /// refused as invalid (the refresh comes before any check).
    #[tokio::test]
    async fn node_service_reads_it_at_start_and_on_every_node_stage() {
        use std::sync::Arc;

        use clap::Parser;
        use rds_dataplane::{
            LoopConfig, LoopPlane, NodeConfig, NodeMetrics, NodePlane, NoopEventSink, SystemRunner,
        };
        use rds_proto::csi::v1::NodeStageVolumeRequest;
        use rds_proto::csi::v1::node_server::Node;

        let dir = tempfile::tempdir().unwrap();
        let (sys, files, state) = (
            dir.path().join("sys"),
            dir.path().join("files"),
            dir.path().join("node"),
        );
        std::fs::create_dir_all(&sys).unwrap();
        std::fs::create_dir_all(&files).unwrap();
        let cfg = crate::config::Args::try_parse_from([
            "csi-frontend".as_ref(),
            "--role=node".as_ref(),
            "--node-id=n1".as_ref(),
            "--data-plane=loop".as_ref(),
            std::ffi::OsStr::new("--loop-files-root"),
            files.as_os_str(),
            std::ffi::OsStr::new("--node-state-dir"),
            state.as_os_str(),
        ])
        .unwrap()
        .validate()
        .unwrap();
        let runner: Arc<dyn rds_dataplane::CommandRunner> = Arc::new(SystemRunner);
        let mut lc = LoopConfig::new(&files);
        lc.sysfs_root = sys.clone();
        let plane = NodePlane::new(
            NodeConfig::new(rds_bus::NodeId::parse("n1").unwrap(), &state),
            LoopPlane::new(lc, runner.clone()).into(),
            runner,
            Arc::new(NoopEventSink),
            Arc::new(NodeMetrics::new()),
        )
        .unwrap();
        std::fs::create_dir_all(sys.join("module/nvme_tcp")).unwrap();
        let svc = super::super::NodeService::new(Arc::new(cfg), Arc::new(plane)).unwrap();
        let mut r = Registry::default();
        svc.register_metrics(&mut r);
        assert!(
            scrape(&r).contains("\nrds_csi_node_nvme_tcp_loaded 1\n"),
            "{}",
            scrape(&r)
        );
        std::fs::remove_dir(sys.join("module/nvme_tcp")).unwrap();
        let refused = svc
            .node_stage_volume(tonic::Request::new(NodeStageVolumeRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(
            scrape(&r).contains("\nrds_csi_node_nvme_tcp_loaded 0\n"),
            "{}",
            scrape(&r)
        );
    }
}
