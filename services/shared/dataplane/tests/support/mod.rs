//! The loop-plane harness shared by the node tests: a [`NodePlane`] over
//! REAL loop devices in a scratch dir whose guard unmounts and detaches
//! everything under it even on panic, plus independent oracles (mountinfo,
//! losetup, blkid, df) that do not go through the code under test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rds_bus::{NodeId, VolumeId};
use rds_dataplane::testing::Scratch;
use rds_dataplane::{
    AccessType, Backend, ContentOrigin, FsType, LoopConfig, LoopPlane, LoopTarget, MountFlags,
    NodeConfig, NodeMetrics, NodePath, NodePlane, PublishRequest, RecordingEventSink,
    ScriptedRunner, StageRequest, StatsRequest, SystemRunner, UnpublishRequest, UnstageRequest,
    VolumeSource,
};

pub const MIB: u64 = 1024 * 1024;

pub struct Harness {
    pub plane: NodePlane,
    pub runner: Arc<ScriptedRunner>,
    pub events: Arc<RecordingEventSink>,
    pub metrics: Arc<NodeMetrics>,
    // Last: dropped after the plane, cleans up mounts and loop devices.
    pub scratch: Scratch,
}

pub struct Vol {
    pub id: VolumeId,
    pub source: VolumeSource,
    pub file: PathBuf,
    pub staging: NodePath,
    pub target: NodePath,
}

pub fn fast_config(scratch: &Scratch) -> NodeConfig {
    let mut cfg = NodeConfig::new(
        NodeId::parse("test-node").unwrap(),
        scratch.path().join("node"),
    );
    cfg.probe_retry_delay = Duration::from_millis(50);
    cfg.unmount_retry_delay = Duration::from_millis(50);
    cfg.holder_check_delay = Duration::from_millis(50);
    cfg.recovery_backoff = Duration::from_millis(50);
    cfg
}

pub fn harness_with(tweak: impl FnOnce(&mut NodeConfig)) -> Harness {
    let scratch = Scratch::new();
    let runner = Arc::new(ScriptedRunner::passthrough(Arc::new(SystemRunner)));
    let events = Arc::new(RecordingEventSink::new());
    let metrics = Arc::new(NodeMetrics::new());
    let mut cfg = fast_config(&scratch);
    tweak(&mut cfg);
    let backend: Backend =
        LoopPlane::new(LoopConfig::new(scratch.files_root()), runner.clone()).into();
    let plane = NodePlane::new(
        cfg,
        backend,
        runner.clone(),
        events.clone(),
        metrics.clone(),
    )
    .unwrap();
    Harness {
        plane,
        runner,
        events,
        metrics,
        scratch,
    }
}

pub fn harness() -> Harness {
    harness_with(|_| {})
}

impl Harness {
    pub fn volume(&self, name: &str, size: u64) -> Vol {
        let id = VolumeId::parse(name).unwrap();
        let volume_path = format!("/storage-pool/metal-csi/{name}.img");
        let file = self.scratch.volume_file(&volume_path, size);
        let root = self.scratch.path().display().to_string();
        Vol {
            source: VolumeSource::Loop(LoopTarget { volume_path }),
            file,
            staging: NodePath::parse(
                "staging",
                &format!("{root}/kubelet/plugins/{name}/globalmount"),
            )
            .unwrap(),
            target: NodePath::parse(
                "target",
                &format!("{root}/kubelet/pods/p1/volumes/{name}/mount"),
            )
            .unwrap(),
            id,
        }
    }

    pub fn path(&self, rel: &str) -> NodePath {
        NodePath::parse("path", &format!("{}/{rel}", self.scratch.path().display())).unwrap()
    }

    pub async fn stage(
        &self,
        v: &Vol,
        access: AccessType,
    ) -> rds_dataplane::Result<rds_dataplane::StageOutcome> {
        self.stage_from(v, access, ContentOrigin::default()).await
    }

    /// A stage of a volume with a content origin (restore, clone).
    pub async fn stage_from(
        &self,
        v: &Vol,
        access: AccessType,
        content: ContentOrigin,
    ) -> rds_dataplane::Result<rds_dataplane::StageOutcome> {
        self.plane
            .stage(StageRequest {
                volume_id: v.id.clone(),
                staging_path: v.staging.clone(),
                source: v.source.clone(),
                access,
                readonly: false,
                pvc: None,
                content,
            })
            .await
    }

    pub async fn publish_to(
        &self,
        v: &Vol,
        target: &NodePath,
        access: AccessType,
        readonly: bool,
    ) -> rds_dataplane::Result<rds_dataplane::PublishOutcome> {
        self.plane
            .publish(PublishRequest {
                volume_id: v.id.clone(),
                staging_path: v.staging.clone(),
                target_path: target.clone(),
                source: Some(v.source.clone()),
                access,
                readonly,
                pvc: None,
                single_writer: false,
            })
            .await
    }

    pub async fn unpublish(&self, v: &Vol, target: &NodePath) -> rds_dataplane::UnpublishOutcome {
        self.plane
            .unpublish(UnpublishRequest {
                volume_id: v.id.clone(),
                target_path: target.clone(),
            })
            .await
            .unwrap()
    }

    pub async fn unstage(&self, v: &Vol) -> rds_dataplane::UnstageOutcome {
        self.plane
            .unstage(UnstageRequest {
                volume_id: v.id.clone(),
                staging_path: v.staging.clone(),
            })
            .await
            .unwrap()
    }

    pub async fn stats(&self, v: &Vol, path: &NodePath) -> rds_dataplane::VolumeStats {
        self.plane
            .stats(StatsRequest {
                volume_id: v.id.clone(),
                volume_path: path.clone(),
            })
            .await
            .unwrap()
    }
}

pub fn mount(fs: FsType) -> AccessType {
    AccessType::Mount {
        fs_type: fs,
        flags: MountFlags::parse(["noatime"]).unwrap(),
    }
}

/// Independent oracle: mounts at `path` in /proc/self/mountinfo (field 5).
pub fn mounts_at(path: &Path) -> usize {
    let want = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .count()
}

/// Loop devices attached to `file` right now.
pub fn loops_of(file: &Path) -> Vec<String> {
    let out = Command::new("losetup")
        .args(["-n", "-O", "NAME", "-j"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The loop devices still backed by `file` once the kernel has finished a
/// detach: `losetup -d` on a device another process has open (udev's probe,
/// a parallel test's `losetup` lookup) only marks it autoclear, and the kernel
/// drops it at the last close. Polls (bounded) for the positive outcome.
pub fn loops_of_after_detach(file: &Path) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = loops_of(file);
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub fn fs_uuid(dev: &Path) -> String {
    let out = Command::new("blkid")
        .args(["-p", "-s", "UUID", "-o", "value"])
        .arg(dev)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn blkid_exit(dev: &Path) -> Option<i32> {
    Command::new("blkid")
        .arg("-p")
        .arg(dev)
        .output()
        .unwrap()
        .status
        .code()
}

pub fn df(path: &Path) -> Vec<u64> {
    let out = Command::new("df")
        .args(["-B1", "--output=size,used,avail,itotal,iused,iavail"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}
