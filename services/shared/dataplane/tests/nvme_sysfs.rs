//! The NVMe/TCP plane against a fake sysfs tree and a recorded command
//! runner: exact connect arguments, retries, re-resolution after controller
//! renumbering, the managed-NQN guard, a time-bounded orphan sweep — and a
//! stale-mount recovery with real loop devices standing in for namespaces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rds_bus::{ClusterId, HostIdentity, NodeId, VolumeId};
use rds_dataplane::testing::{FakeNvmeTree, Scratch};
use rds_dataplane::{
    AccessType, Backend, DataPlane, DataPlaneError, FsType, MountFlags, NodeEventKind, NodeMetrics,
    NodePath, NodePlane, NvmeConfig, NvmePlane, PublishRequest, RecordingEventSink, Reply,
    ScriptedRunner, StageRequest, StatsRequest, SystemRunner, UnpublishRequest, UnstageOutcome,
    UnstageRequest, VolumeSource, VolumeStats,
};

const NQN: &str = "nqn.2000-02.com.mikrotik:pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8";
const MIB: u64 = 1024 * 1024;

struct Rig {
    plane: NodePlane,
    runner: Arc<ScriptedRunner>,
    events: Arc<RecordingEventSink>,
    metrics: Arc<NodeMetrics>,
    tree: FakeNvmeTree,
    scratch: Scratch,
}

fn rig_with(tweak: impl FnOnce(&mut NvmeConfig)) -> Rig {
    let scratch = Scratch::new();
    let tree = FakeNvmeTree::new(scratch.path());
    // nvme is scripted; blkid/mkfs/mount helpers run for real.
    let runner = Arc::new(ScriptedRunner::passthrough(Arc::new(SystemRunner)));
    let events = Arc::new(RecordingEventSink::new());
    let metrics = Arc::new(NodeMetrics::new());
    let mut ncfg = NvmeConfig {
        sysfs_root: tree.sysfs_root().to_path_buf(),
        dev_root: tree.dev_root().to_path_buf(),
        device_wait: Duration::from_secs(3),
        poll_interval: Duration::from_millis(20),
        stale_connection_grace: Duration::from_millis(100),
        retry_base_delay: Duration::from_millis(10),
        ..NvmeConfig::default()
    };
    tweak(&mut ncfg);
    let backend: Backend = NvmePlane::new(ncfg, runner.clone(), metrics.clone())
        .unwrap()
        .into();
    let mut cfg = support::fast_config(&scratch);
    cfg.node_id = NodeId::parse("node-a").unwrap();
    let plane = NodePlane::new(
        cfg,
        backend,
        runner.clone(),
        events.clone(),
        metrics.clone(),
    )
    .unwrap();
    Rig {
        plane,
        runner,
        events,
        metrics,
        tree,
        scratch,
    }
}

fn rig() -> Rig {
    rig_with(|_| {})
}

fn ctx(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = [
        ("rdsAddress", "10.42.68.1"),
        ("nvmeAddress", "10.42.68.1"),
        ("nvmePort", "4420"),
        ("nqn", NQN),
        (
            "volumePath",
            "/storage-pool/metal-csi/pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8.img",
        ),
        ("ctrlLossTmo", "-1"),
        ("reconnectDelay", "5"),
        ("keepAliveTmo", "0"),
        ("migrationTimeoutSeconds", "300"),
        ("csi.storage.k8s.io/pvc/namespace", "apps"),
        ("csi.storage.k8s.io/pvc/name", "data"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        m.insert((*k).to_owned(), (*v).to_owned());
    }
    m
}

/// This volume's namespace as a connected kernel shows it: subsystem,
/// controller, namespace and its /dev node.
fn expose(tree: &FakeNvmeTree, subsys: &str, ctrl: &str, ns: &str, dev: (u64, u64), size: u64) {
    tree.add_subsystem(subsys, NQN);
    tree.add_controller(subsys, ctrl);
    tree.add_namespace(subsys, Some(ctrl), ns, ns, dev, size, true);
}

fn vol() -> VolumeId {
    VolumeId::parse("pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8").unwrap()
}

impl Rig {
    fn source(&self, extra: &[(&str, &str)]) -> VolumeSource {
        self.plane.source_from_context(&vol(), &ctx(extra)).unwrap()
    }

    fn path(&self, rel: &str) -> NodePath {
        NodePath::parse("path", &format!("{}/{rel}", self.scratch.path().display())).unwrap()
    }

    fn stage_req(&self, source: VolumeSource, access: AccessType) -> StageRequest {
        StageRequest {
            volume_id: vol(),
            staging_path: self.path("staging/globalmount"),
            source,
            access,
            readonly: false,
            pvc: rds_dataplane::source::pvc_from_context(&ctx(&[])),
            content: Default::default(),
        }
    }

    async fn stats_at(&self, volume_path: NodePath) -> VolumeStats {
        self.plane
            .stats(StatsRequest {
                volume_id: vol(),
                volume_path,
            })
            .await
            .unwrap()
    }

    async fn unpublish_at(&self, target: &NodePath) {
        self.plane
            .unpublish(UnpublishRequest {
                volume_id: vol(),
                target_path: target.clone(),
            })
            .await
            .unwrap();
    }

    async fn unstage(&self) -> UnstageOutcome {
        self.plane
            .unstage(UnstageRequest {
                volume_id: vol(),
                staging_path: self.path("staging/globalmount"),
            })
            .await
            .unwrap()
    }

    /// Plays the kernel: once `nvme connect` has been run, the subsystem and
    /// its namespace appear in sysfs (multipath layout, like a real node).
    fn kernel_creates_device_on_connect(
        &self,
        subsys: &str,
        ctrl: &str,
        head: &str,
        dev: (u64, u64),
    ) -> tokio::task::JoinHandle<()> {
        let runner = self.runner.clone();
        let (sysfs, devroot) = (
            self.tree.sysfs_root().to_path_buf(),
            self.tree.dev_root().to_path_buf(),
        );
        let (subsys, ctrl, head) = (subsys.to_owned(), ctrl.to_owned(), head.to_owned());
        tokio::spawn(async move {
            for _ in 0..500 {
                if runner
                    .calls_to("nvme")
                    .iter()
                    .any(|c| c.first().map(String::as_str) == Some("connect"))
                {
                    let tree = FakeNvmeTree::new(sysfs.parent().unwrap());
                    assert_eq!(tree.dev_root(), devroot);
                    tree.add_subsystem(&subsys, NQN);
                    tree.add_controller(&subsys, &ctrl);
                    let path_ns = format!(
                        "{}c{}n1",
                        &subsys.replace("nvme-subsys", "nvme"),
                        &ctrl[4..]
                    );
                    tree.add_namespace(&subsys, Some(&ctrl), &path_ns, &head, dev, 64 * MIB, false);
                    tree.add_namespace(&subsys, None, &head, &head, dev, 64 * MIB, true);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }
}

fn connect_args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "connect",
        "-t",
        "tcp",
        "-a",
        "10.42.68.1",
        "-s",
        "4420",
        "-n",
        NQN,
        "--ctrl-loss-tmo=-1",
        "--reconnect-delay=5",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

#[tokio::test]
async fn connect_uses_the_go_driver_resilience_settings_and_resolves_by_nqn() {
    let r = rig();
    r.runner.on("nvme", &["connect"], vec![Reply::ok("")]);
    let kernel = r.kernel_creates_device_on_connect("nvme-subsys2", "nvme4", "nvme2n1", (259, 21));
    let out = r
        .plane
        .stage(r.stage_req(r.source(&[("keepAliveTmo", "15")]), AccessType::Block))
        .await
        .unwrap();
    kernel.await.unwrap();
    assert_eq!(
        r.runner.calls_to("nvme"),
        vec![connect_args(&["--keep-alive-tmo=15"])]
    );
    assert_eq!(
        out.device.path,
        r.tree.dev_root().join("nvme2n1"),
        "head device, not the nvme4c… path"
    );
    assert_eq!(out.device.dev(), (259, 21));
    assert!(
        !r.scratch.path().join("staging/globalmount").exists(),
        "block: nothing at the staging path"
    );

    // Staged again: already connected (sysfs), no second connect.
    assert!(
        r.plane
            .stage(r.stage_req(r.source(&[]), AccessType::Block))
            .await
            .unwrap()
            .already_staged
    );
    assert_eq!(r.runner.calls_to("nvme").len(), 1);
    let mut text = String::new();
    let mut reg = prometheus_client::registry::Registry::default();
    r.metrics.register(&mut reg);
    prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
    assert!(
        text.contains("rds_csi_nvme_connects_total{status=\"success\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("rds_csi_volume_operations_total{operation=\"stage\",status=\"success\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn already_connected_is_success() {
    let r = rig();
    // nvme-cli: EALREADY (114) "already connected" — e.g. a racing connect.
    r.runner.on(
        "nvme",
        &["connect"],
        vec![Reply::exit(114, "already connected")],
    );
    let kernel = r.kernel_creates_device_on_connect("nvme-subsys0", "nvme0", "nvme0n1", (259, 1));
    let a = r.plane.backend().attach(&r.source(&[])).await.unwrap();
    kernel.await.unwrap();
    assert_eq!(a.device.path, r.tree.dev_root().join("nvme0n1"));
    assert_eq!(a.attempts, 1);
}

#[tokio::test]
async fn transient_connect_errors_are_retried_and_reported() {
    let r = rig();
    r.runner.on(
        "nvme",
        &["connect"],
        vec![
            Reply::exit(
                1,
                "Failed to write to /dev/nvme-fabrics: Connection refused",
            ),
            Reply::exit(
                1,
                "Failed to write to /dev/nvme-fabrics: Connection refused",
            ),
            Reply::ok(""),
        ],
    );
    let runner = r.runner.clone();
    let tree_root = r.scratch.path().to_path_buf();
    // The device appears only after the third (successful) connect.
    let kernel = tokio::spawn(async move {
        loop {
            if runner.calls_to("nvme").len() >= 3 {
                let t = FakeNvmeTree::new(&tree_root);
                expose(&t, "nvme-subsys0", "nvme0", "nvme0n1", (259, 3), 64 * MIB);
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let out = r
        .plane
        .stage(r.stage_req(r.source(&[]), AccessType::Block))
        .await
        .unwrap();
    kernel.await.unwrap();
    assert_eq!(out.device.dev(), (259, 3));
    assert_eq!(r.runner.calls_to("nvme"), vec![connect_args(&[]); 3]);
    let ev = r.events.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        ev[0].kind,
        NodeEventKind::ConnectionRecovery {
            address: "10.42.68.1:4420".into(),
            attempts: 3
        }
    );
    assert_eq!(ev[0].pvc.as_ref().unwrap().name, "data");
    let req = ev[0]
        .to_post_request(&NodeId::parse("node-a").unwrap())
        .unwrap();
    assert_eq!(req.volume_id, vol().to_string());
}

#[tokio::test]
async fn a_permanent_connect_error_fails_fast_with_an_event() {
    let r = rig();
    r.runner.on(
        "nvme",
        &["connect"],
        vec![Reply::exit(
            1,
            "Failed to write to /dev/nvme-fabrics: Invalid argument",
        )],
    );
    let e = r
        .plane
        .stage(r.stage_req(r.source(&[]), AccessType::Block))
        .await
        .unwrap_err();
    assert!(matches!(e, DataPlaneError::Connect { .. }), "{e}");
    assert_eq!(e.to_status().code(), tonic::Code::Unavailable);
    assert_eq!(
        r.runner.calls_to("nvme").len(),
        1,
        "not retryable: one attempt"
    );
    assert_eq!(r.events.reasons(), vec!["ConnectionFailure"]);
}

#[tokio::test]
async fn resolution_follows_controller_renumbering() {
    let r = rig();
    let src = r.source(&[]);
    let be = r.plane.backend();
    assert_eq!(be.resolve(&src).await.unwrap(), None);

    multipath_head_resolves_once_its_node_exists(&r, &src).await;

    // Controller lost and reconnected as nvme3 in another subsystem
    // instance, non-multipath layout this time: found again by NQN.
    r.tree.remove_subsystem("nvme-subsys0");
    assert_eq!(be.resolve(&src).await.unwrap(), None);
    expose(
        &r.tree,
        "nvme-subsys3",
        "nvme3",
        "nvme3n1",
        (259, 7),
        64 * MIB,
    );
    let d = be.resolve(&src).await.unwrap().unwrap();
    assert_eq!(
        (d.path.file_name().unwrap().to_str().unwrap(), d.dev()),
        ("nvme3n1", (259, 7))
    );

    stale_node_is_not_trusted_and_rescan_reaches_nvme3(&r, &src).await;
}

/// Multipath layout: head nvme0n1 in the subsystem, path nvme0c0n1.
async fn multipath_head_resolves_once_its_node_exists(r: &Rig, src: &VolumeSource) {
    r.tree.add_subsystem("nvme-subsys0", NQN);
    r.tree.add_controller("nvme-subsys0", "nvme0");
    r.tree.add_namespace(
        "nvme-subsys0",
        Some("nvme0"),
        "nvme0c0n1",
        "nvme0n1",
        (259, 0),
        64 * MIB,
        false,
    );
    // sysfs knows the disk but udev has not made the node yet: not a device.
    r.tree.add_namespace(
        "nvme-subsys0",
        None,
        "nvme0n1",
        "nvme0n1",
        (259, 0),
        64 * MIB,
        false,
    );
    assert_eq!(r.plane.backend().resolve(src).await.unwrap(), None);
    r.tree.add_namespace(
        "nvme-subsys0",
        None,
        "nvme0n1",
        "nvme0n1",
        (259, 0),
        64 * MIB,
        true,
    );
    let d = r.plane.backend().resolve(src).await.unwrap().unwrap();
    assert_eq!(
        (d.path.file_name().unwrap().to_str().unwrap(), d.dev()),
        ("nvme0n1", (259, 0))
    );
}

/// A stale /dev node with another number is never trusted; ns-rescan goes
/// to the subsystem's controller char device.
async fn stale_node_is_not_trusted_and_rescan_reaches_nvme3(r: &Rig, src: &VolumeSource) {
    std::fs::remove_file(r.tree.dev_root().join("nvme3n1")).unwrap();
    r.tree.add_namespace(
        "nvme-subsys3",
        None,
        "nvme9n1",
        "nvme9n1",
        (259, 99),
        MIB,
        false,
    );
    nix::sys::stat::mknod(
        &r.tree.dev_root().join("nvme3n1"),
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(259, 8),
    )
    .unwrap();
    assert_eq!(r.plane.backend().resolve(src).await.unwrap(), None);

    // ns-rescan goes to the subsystem's controller char device.
    r.runner.on("nvme", &["ns-rescan"], vec![Reply::ok("")]);
    r.tree.add_namespace(
        "nvme-subsys3",
        Some("nvme3"),
        "nvme3n1",
        "nvme3n1",
        (259, 7),
        64 * MIB,
        true,
    );
    let d = r.plane.backend().resolve(src).await.unwrap().unwrap();
    r.plane.backend().rescan(src, &d).await.unwrap();
    assert_eq!(
        r.runner.calls_to("nvme"),
        vec![vec![
            "ns-rescan".to_owned(),
            r.tree.dev_root().join("nvme3").display().to_string()
        ]]
    );
}

#[tokio::test]
async fn only_managed_nqns_are_ever_disconnected() {
    let r = rig();
    r.runner.on("nvme", &["disconnect"], vec![Reply::ok("")]);
    let t = &r.tree;
    // Orphan (no namespace), managed, pvc-: the only one to go.
    t.add_subsystem("nvme-subsys0", "nqn.2000-02.com.mikrotik:pvc-dead");
    t.add_controller("nvme-subsys0", "nvme0");
    // Alive managed volume.
    expose(&r.tree, "nvme-subsys1", "nvme1", "nvme1n1", (259, 1), MIB);
    // The node's own root/var volume on the same RDS (docs/safety.md §2.3), dead
    // right now: same vendor prefix but not a pvc- name.
    t.add_subsystem("nvme-subsys2", "nqn.2000-02.com.mikrotik:nixos-var");
    t.add_controller("nvme-subsys2", "nvme2");
    // Another vendor's subsystem, dead.
    t.add_subsystem(
        "nvme-subsys3",
        "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    );
    t.add_controller("nvme-subsys3", "nvme3");
    // Garbage in sysfs never reaches a command line.
    t.add_subsystem("nvme-subsys4", "nqn.2000-02.com.mikrotik:pvc-x; reboot");

    let report = r.plane.start().await;
    assert_eq!(
        report.cleaned,
        vec!["nqn.2000-02.com.mikrotik:pvc-dead".to_owned()]
    );
    assert_eq!(
        r.runner.calls_to("nvme"),
        vec![vec![
            "disconnect".to_owned(),
            "-n".to_owned(),
            "nqn.2000-02.com.mikrotik:pvc-dead".to_owned()
        ]]
    );
    assert!(
        report.skipped.iter().any(|s| s.ends_with("nixos-var")),
        "{report:?}"
    );
    assert_eq!(r.metrics.orphans_cleaned.get(), 1);

    // Explicit detach of a non-managed NQN is refused before any command.
    let narrow = rig_with(|c| c.managed_prefix = "nqn.2000-02.com.mikrotik:pvc-".into());
    narrow.runner.on("nvme", &[], vec![Reply::ok("")]);
    narrow
        .tree
        .add_subsystem("nvme-subsys0", "nqn.2000-02.com.mikrotik:nixos-var");
    let sys_vol = VolumeId::parse("nixos-var").unwrap();
    let src = narrow
        .plane
        .source_from_context(
            &sys_vol,
            &ctx(&[("nqn", "nqn.2000-02.com.mikrotik:nixos-var")]),
        )
        .unwrap();
    let e = narrow.plane.backend().detach(&src).await.unwrap_err();
    assert_eq!(e.to_status().code(), tonic::Code::FailedPrecondition, "{e}");
    assert!(e.to_string().contains("refusing to disconnect"), "{e}");
    let e = narrow.plane.backend().attach(&src).await.unwrap_err();
    assert!(e.to_string().contains("refusing to connect"), "{e}");
    assert!(narrow.runner.calls().is_empty());
    // A prefix outside the driver's own is a configuration error.
    let bad = NvmePlane::new(
        NvmeConfig {
            managed_prefix: "nqn.2014-08.org.nvmexpress:".into(),
            ..NvmeConfig::default()
        },
        narrow.runner.clone(),
        narrow.metrics.clone(),
    );
    assert!(bad.is_err());
}

#[tokio::test]
async fn orphan_sweep_is_bounded_in_time() {
    let r = rig_with(|c| c.disconnect_timeout = Duration::from_secs(5));
    r.runner.on(
        "nvme",
        &["disconnect"],
        vec![Reply::ok("").after(Duration::from_millis(300))],
    );
    for i in 0..5 {
        let s = format!("nvme-subsys{i}");
        r.tree
            .add_subsystem(&s, &format!("nqn.2000-02.com.mikrotik:pvc-orphan-{i}"));
    }
    let plane_cfg_budget = Duration::from_millis(500);
    let started = Instant::now();
    let report = r
        .plane
        .backend()
        .cleanup_orphans(&[], &[], plane_cfg_budget)
        .await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1200), "{took:?}");
    assert!(report.budget_exhausted, "{report:?}");
    assert!(report.cleaned.len() <= 2, "{report:?}");
    assert!(r.runner.calls_to("nvme").len() <= 3);
}

/// Real loop devices play the namespaces: stage ext4 through "nvme0n1",
/// renumber to "nvme3n1" (another device number for the same blocks), and
/// publish recovers the stale staging mount with the data intact.
#[tokio::test]
async fn stale_mount_is_recovered_after_renumbering() {
    let r = rig();
    let file = r.scratch.path().join("rds/pvc.img");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::File::create(&file)
        .unwrap()
        .set_len(64 * MIB)
        .unwrap();
    let (_loop_a, dev_a) = loop_attach(&file);
    expose(&r.tree, "nvme-subsys0", "nvme0", "nvme0n1", dev_a, 64 * MIB);
    let src = r.source(&[]);
    let target = r.path("pods/p/mount");
    r.stage_publish_write(&src, &target).await;

    // Renumber: the controller comes back as nvme3 with another device.
    let (_loop_b, dev_b) = loop_attach(&file);
    assert_ne!(dev_a, dev_b);
    r.tree.remove_subsystem("nvme-subsys0");
    expose(&r.tree, "nvme-subsys3", "nvme3", "nvme3n1", dev_b, 64 * MIB);

    // Stats see the stale staging mount (report only).
    let st = r.stats_at(r.path("staging/globalmount")).await;
    assert!(
        st.condition.abnormal && st.condition.message.contains("device_path_mismatch"),
        "{:?}",
        st.condition
    );

    r.publish_recovers(&src, &target).await;
    r.expand_rescans_the_new_controller(&target).await;
    r.controller_gone_then_unstage(&target).await;
}

/// `losetup --find --show FILE`: the loop device's path and its device number.
fn loop_attach(f: &Path) -> (String, (u64, u64)) {
    let out = Command::new("losetup")
        .args(["--find", "--show"])
        .arg(f)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dev = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let d = rds_dataplane::Device::from_node(Path::new(&dev))
        .unwrap()
        .unwrap();
    (dev, d.dev())
}

/// The steps of [`stale_mount_is_recovered_after_renumbering`].
impl Rig {
    fn publish_req(&self, src: &VolumeSource, target: &NodePath) -> PublishRequest {
        PublishRequest {
            volume_id: vol(),
            staging_path: self.path("staging/globalmount"),
            target_path: target.clone(),
            source: Some(src.clone()),
            access: AccessType::Mount {
                fs_type: FsType::Ext4,
                flags: MountFlags::default(),
            },
            readonly: false,
            pvc: None,
            single_writer: false,
        }
    }

    /// Stages ext4 (formatted, no connect: the device is there), publishes,
    /// writes kept.txt, unpublishes.
    async fn stage_publish_write(&self, src: &VolumeSource, target: &NodePath) {
        let access = self.publish_req(src, target).access;
        let staged = self
            .plane
            .stage(self.stage_req(src.clone(), access))
            .await
            .unwrap();
        assert!(staged.formatted);
        assert!(
            self.runner.calls_to("nvme").is_empty(),
            "device present: no connect"
        );
        self.plane
            .publish(self.publish_req(src, target))
            .await
            .unwrap();
        std::fs::write(target.as_path().join("kept.txt"), b"survives renumbering").unwrap();
        self.unpublish_at(target).await;
    }

    /// Publish recovers: re-resolve by NQN, remount, bind — data intact, one
    /// StaleMountDetected event, never reformatted, healthy afterwards.
    async fn publish_recovers(&self, src: &VolumeSource, target: &NodePath) {
        let out = self
            .plane
            .publish(self.publish_req(src, target))
            .await
            .unwrap();
        assert!(!out.already_published);
        assert_eq!(
            std::fs::read(target.as_path().join("kept.txt")).unwrap(),
            b"survives renumbering"
        );
        let ev = self.events.events();
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(
            ev[0].kind,
            NodeEventKind::StaleMountDetected {
                old_device: self.tree.dev_root().join("nvme0n1").display().to_string(),
                new_device: self.tree.dev_root().join("nvme3n1").display().to_string(),
            }
        );
        assert_eq!(
            self.runner
                .calls()
                .iter()
                .filter(|c| c[0].starts_with("mkfs"))
                .count(),
            1,
            "never reformatted"
        );
        let st = self.stats_at(target.clone()).await;
        assert!(!st.condition.abnormal, "{:?}", st.condition);
        assert_eq!(
            self.metrics
                .stale_recoveries
                .get_or_create(&rds_dataplane::metrics::Status {
                    status: "success".into()
                })
                .get(),
            1
        );
    }

    /// Expand: ns-rescan to nvme3, then resize (needs CAP_SYS_RESOURCE) —
    /// here only that the rescan reached the right controller.
    async fn expand_rescans_the_new_controller(&self, target: &NodePath) {
        self.runner.on("nvme", &["ns-rescan"], vec![Reply::ok("")]);
        let _ = self
            .plane
            .expand(rds_dataplane::ExpandRequest {
                volume_id: vol(),
                volume_path: target.clone(),
            })
            .await;
        assert_eq!(
            self.runner.calls_to("nvme"),
            vec![vec![
                "ns-rescan".to_owned(),
                self.tree.dev_root().join("nvme3").display().to_string()
            ]]
        );
    }

    /// The controller disappears entirely: condition abnormal; unstage still
    /// works with nothing left to disconnect.
    async fn controller_gone_then_unstage(&self, target: &NodePath) {
        self.unpublish_at(target).await;
        self.tree.remove_subsystem("nvme-subsys3");
        let st = self.stats_at(self.path("staging/globalmount")).await;
        assert!(
            st.condition.abnormal && st.condition.message.contains("device_disappeared"),
            "{:?}",
            st.condition
        );
        self.runner.on("nvme", &["disconnect"], vec![Reply::ok("")]);
        let u = self.unstage().await;
        assert!(u.was_mounted && !u.detached);
        assert!(
            self.runner
                .calls_to("nvme")
                .iter()
                .all(|c| c[0] != "disconnect")
        );
    }
}

#[tokio::test]
async fn unstage_disconnects_a_managed_volume() {
    let r = rig();
    r.runner.on("nvme", &["disconnect"], vec![Reply::ok("")]);
    expose(&r.tree, "nvme-subsys0", "nvme0", "nvme0n1", (259, 5), MIB);
    r.plane
        .stage(r.stage_req(r.source(&[]), AccessType::Block))
        .await
        .unwrap();
    let u = r.unstage().await;
    assert!(!u.was_mounted && u.detached);
    assert_eq!(
        r.runner.calls_to("nvme"),
        vec![vec![
            "disconnect".to_owned(),
            "-n".to_owned(),
            NQN.to_owned()
        ]]
    );
}

#[tokio::test]
async fn each_node_presents_its_own_host_identity() {
    let cluster = ClusterId::parse("prod-eu").unwrap();
    let mut seen = Vec::new();
    for node in ["worker-a", "worker-b"] {
        let host = HostIdentity::derive(&cluster, &NodeId::parse(node).unwrap());
        let r = rig_with(|c| c.host = Some(host.clone()));
        r.runner.on("nvme", &["connect"], vec![Reply::ok("")]);
        let kernel =
            r.kernel_creates_device_on_connect("nvme-subsys0", "nvme0", "nvme0n1", (259, 1));
        r.plane.backend().attach(&r.source(&[])).await.unwrap();
        kernel.await.unwrap();
        let calls = r.runner.calls_to("nvme");
        let args = &calls[0];
        let after = |flag: &str| {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].clone()
        };
        assert_eq!(after("-q"), host.host_nqn(), "{args:?}");
        assert_eq!(after("-I"), host.host_id(), "{args:?}");
        assert!(after("-q").starts_with("nqn.2014-08.org.nvmexpress:uuid:"));
        seen.push((after("-q"), after("-I")));
    }
    assert_ne!(seen[0].0, seen[1].0, "two nodes, two host NQNs");
    assert_ne!(seen[0].1, seen[1].1, "two nodes, two host ids");
}

#[tokio::test]
async fn the_managed_prefix_guards_connect_disconnect_rescan_and_the_sweep() {
    // Default: nqn.2000-02.com.mikrotik:pvc- — a volume named otherwise (the
    // node's own boot disk on the same RDS) is never connected or touched.
    let r = rig();
    r.runner.on("nvme", &[], vec![Reply::ok("")]);
    let boot = VolumeId::parse("nixos-root").unwrap();
    let src = r
        .plane
        .source_from_context(
            &boot,
            &ctx(&[("nqn", "nqn.2000-02.com.mikrotik:nixos-root")]),
        )
        .unwrap();
    let e = r.plane.backend().attach(&src).await.unwrap_err();
    assert_eq!(e.to_status().code(), tonic::Code::FailedPrecondition, "{e}");
    r.tree
        .add_subsystem("nvme-subsys7", "nqn.2000-02.com.mikrotik:nixos-root");
    r.tree.add_controller("nvme-subsys7", "nvme7");
    assert!(r.plane.backend().detach(&src).await.is_err());
    let dev = rds_dataplane::Device {
        path: r.tree.dev_root().join("nvme7n1"),
        major: 259,
        minor: 70,
    };
    let e = r.plane.backend().rescan(&src, &dev).await.unwrap_err();
    assert!(e.to_string().contains("refusing to rescan"), "{e}");
    let report = r.plane.start().await;
    assert!(report.cleaned.is_empty(), "{report:?}");
    assert!(r.runner.calls().is_empty(), "no command reached nvme-cli");

    // A suite that names its volumes sanity-… configures that prefix: then
    // pvc- subsystems are the ones left alone.
    let s = rig_with(|c| c.managed_prefix = "nqn.2000-02.com.mikrotik:sanity-".into());
    s.runner.on("nvme", &["disconnect"], vec![Reply::ok("")]);
    s.tree
        .add_subsystem("nvme-subsys0", "nqn.2000-02.com.mikrotik:sanity-dead");
    s.tree.add_controller("nvme-subsys0", "nvme0");
    s.tree
        .add_subsystem("nvme-subsys1", "nqn.2000-02.com.mikrotik:pvc-dead");
    s.tree.add_controller("nvme-subsys1", "nvme1");
    let report = s.plane.start().await;
    assert_eq!(
        report.cleaned,
        vec!["nqn.2000-02.com.mikrotik:sanity-dead".to_owned()]
    );
}

#[tokio::test]
async fn a_context_naming_another_volumes_nqn_is_refused() {
    let r = rig();
    // An edited or static PV: volume pvc-0f92… pointing at another volume's subsystem.
    let e = r
        .plane
        .source_from_context(
            &vol(),
            &ctx(&[("nqn", "nqn.2000-02.com.mikrotik:pvc-someone-else")]),
        )
        .unwrap_err();
    assert_eq!(e.to_status().code(), tonic::Code::InvalidArgument, "{e}");
    assert!(e.to_string().contains("another volume's data"), "{e}");
}
