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
}
