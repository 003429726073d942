//! [`NodePlane`]: the node role's engine. csi-frontend's Node service is a
//! thin gRPC layer over it: it validates the request into these types
//! (`VolumeId`, [`NodePath`](crate::paths::NodePath), [`AccessType`], [`VolumeSource`]) and maps the
//! one error enum to a status with `err.into()`.
//!
//! Safety rules (docs/safety.md §3) and where they live:
//! - format only on a definitive "no filesystem" — `fs::probe`;
//! - devices re-resolved every call, never stored — [`crate::dataplane`];
//! - only managed NQNs touched — [`crate::nvme`];
//! - raw block publish = mknod, never a bind mount of /dev — `publish.rs`;
//! - stage/publish idempotent (checked in mountinfo) — `stage.rs`, `publish.rs`;
//! - unpublish removes only an empty, unmounted target — `publish.rs`;
//! - a volume in use (mount anywhere, open file, raw holder) is never
//!   unmounted lazily nor detached: unstage refuses, naming the holder —
//!   `unstage.rs`, [`crate::inuse`].

mod publish;
mod requests;
mod stage;
mod stale;
mod stats;
mod unstage;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rds_bus::{NodeId, VolumeId};

use crate::breaker::{BreakerConfig, Breakers};
use crate::command::CommandRunner;
use crate::dataplane::{Backend, DataPlane, OrphanReport};
use crate::device::Device;
use crate::error::{DataPlaneError, Result};
use crate::events::{EventSink, NodeEvent, NodeEventKind};
use crate::fs::ProbePolicy;
use crate::inuse;
use crate::metrics::NodeMetrics;
use crate::mountinfo::{self, MountTable};
use crate::source::{self, BackendKind, LoopTarget, NvmeTarget, PvcRef, VolumeSource};
use crate::state::NodeState;
use crate::sys;

pub use requests::{
    AccessType, ContentOrigin, ExpandOutcome, ExpandRequest, PublishOutcome, PublishRequest,
    StageOutcome, StageRequest, StatsRequest, UnpublishOutcome, UnpublishRequest, UnstageOutcome,
    UnstageRequest,
};
pub use stats::{VolumeCondition, VolumeStats};

/// Timers and limits of the node plane (defaults = the Go driver's, docs/decisions.md §2.6).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: NodeId,
    /// `DIR/node` (local mode) or a hostPath under the plugin dir.
    pub state_dir: PathBuf,
    pub mountinfo_path: PathBuf,
    pub proc_root: PathBuf,
    pub mountinfo_timeout: Duration,
    /// Deadline of one mount/umount/mknod/statvfs syscall.
    pub syscall_timeout: Duration,
    pub mkfs_timeout: Duration,
    pub resize_timeout: Duration,
    /// blkid: attempts, pause between them, deadline of one run.
    pub probe_attempts: u32,
    pub probe_retry_delay: Duration,
    pub probe_timeout: Duration,
    /// Refuse to mount a source that already has this many mounts.
    pub mount_storm_limit: usize,
    pub breaker: BreakerConfig,
    /// EBUSY unmount retries before a busy mount is refused (a stale one is
    /// detached lazily).
    pub unmount_attempts: u32,
    pub unmount_retry_delay: Duration,
    /// Looks at a process holding the raw device before unstage is refused.
    pub holder_checks: u32,
    pub holder_check_delay: Duration,
    pub recovery_attempts: u32,
    pub recovery_backoff: Duration,
    /// Time budget of the start-up orphan sweep.
    pub orphan_budget: Duration,
}

impl NodeConfig {
    pub fn new(node_id: NodeId, state_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            node_id,
            state_dir: state_dir.into(),
            mountinfo_path: PathBuf::from("/proc/self/mountinfo"),
            proc_root: PathBuf::from("/proc"),
            mountinfo_timeout: Duration::from_secs(10),
            syscall_timeout: Duration::from_secs(30),
            mkfs_timeout: Duration::from_secs(600),
            resize_timeout: Duration::from_secs(300),
            probe_attempts: 5,
            probe_retry_delay: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(10),
            mount_storm_limit: 100,
            breaker: BreakerConfig::default(),
            unmount_attempts: 5,
            unmount_retry_delay: Duration::from_millis(500),
            holder_checks: 3,
            holder_check_delay: Duration::from_secs(1),
            recovery_attempts: 3,
            recovery_backoff: Duration::from_secs(1),
            orphan_budget: Duration::from_secs(120),
        }
    }
}

/// The node role's engine (see module docs).
pub struct NodePlane {
    cfg: NodeConfig,
    backend: Backend,
    runner: Arc<dyn CommandRunner>,
    events: Arc<dyn EventSink>,
    metrics: Arc<NodeMetrics>,
    breakers: Breakers,
    state: NodeState,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl NodePlane {
    pub fn new(
        cfg: NodeConfig,
        backend: Backend,
        runner: Arc<dyn CommandRunner>,
        events: Arc<dyn EventSink>,
        metrics: Arc<NodeMetrics>,
    ) -> Result<Self> {
        let state = NodeState::open(&cfg.state_dir)?;
        Ok(NodePlane {
            breakers: Breakers::new(cfg.breaker),
            cfg,
            backend,
            runner,
            events,
            metrics,
            state,
            locks: Mutex::default(),
        })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn backend_kind(&self) -> BackendKind {
        self.backend.kind()
    }

    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// Parses what NodeStage needs from a CSI volume_context.
    pub fn node_context(
        &self,
        volume_id: &VolumeId,
        ctx: &HashMap<String, String>,
    ) -> Result<source::NodeContext> {
        source::node_context(self.backend.kind(), volume_id, ctx)
    }

    /// Parses a CSI volume_context for this node's data plane.
    pub fn source_from_context(
        &self,
        volume_id: &VolumeId,
        ctx: &HashMap<String, String>,
    ) -> Result<VolumeSource> {
        source::source_from_context(self.backend.kind(), volume_id, ctx)
    }

    /// Start-up: best-effort, time-bounded sweep of orphaned managed
    /// attachments (docs/safety.md §3.11). Skipped when the mount table is unreadable
    /// (we would not know what is in use).
    pub async fn start(&self) -> OrphanReport {
        let keep: Vec<VolumeSource> = self.state.list().into_iter().map(|r| r.source).collect();
        let busy: Vec<(u64, u64)> = match self.mounts().await {
            Ok(t) => t.entries.iter().map(|e| e.dev()).collect(),
            Err(e) => {
                tracing::warn!(%e, "orphan sweep skipped: mount table unreadable");
                return OrphanReport {
                    errors: vec![e.to_string()],
                    ..OrphanReport::default()
                };
            }
        };
        let report = self
            .backend
            .cleanup_orphans(&keep, &busy, self.cfg.orphan_budget)
            .await;
        self.metrics
            .orphans_cleaned
            .inc_by(report.cleaned.len() as u64);
        tracing::info!(
            cleaned = report.cleaned.len(),
            skipped = report.skipped.len(),
            errors = report.errors.len(),
            budget_exhausted = report.budget_exhausted,
            "orphan sweep done"
        );
        report
    }

    /// Runs one node call on `volume` under its lock: a second call while
    /// it (or any blocking job it started, see [`sys::HELD`]) runs is
    /// ABORTED. Idle entries are dropped from the map.
    async fn locked<T>(
        &self,
        volume: &VolumeId,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let m = {
            let mut map = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            // Only the map holds an idle entry; a held one has its guard's
            // reference too.
            map.retain(|_, m| Arc::strong_count(m) > 1);
            map.entry(volume.to_string()).or_default().clone()
        };
        let guard = m
            .try_lock_owned()
            .map_err(|_| DataPlaneError::Busy(volume.to_string()))?;
        sys::HELD.scope(Arc::new(guard), call).await
    }

    /// Entries of the lock map once idle ones are dropped: the volumes with
    /// a call or a blocking job in flight.
    pub fn lock_entries(&self) -> usize {
        let mut map = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, m| Arc::strong_count(m) > 1);
        map.len()
    }

    async fn mounts(&self) -> Result<MountTable> {
        mountinfo::read(&self.cfg.mountinfo_path, self.cfg.mountinfo_timeout).await
    }

    fn post(&self, volume: &VolumeId, pvc: Option<&PvcRef>, kind: NodeEventKind) {
        self.metrics.event(kind.reason());
        self.events.post(NodeEvent {
            volume_id: volume.to_string(),
            pvc: pvc.cloned(),
            kind,
        });
    }

    fn probe_policy(&self) -> ProbePolicy {
        ProbePolicy {
            attempts: self.cfg.probe_attempts,
            delay: self.cfg.probe_retry_delay,
            timeout: self.cfg.probe_timeout,
        }
    }

    /// docs/safety.md §3.4: refuse to add a mount to a device that has ≥ limit.
    fn storm_guard(&self, table: &MountTable, device: &Device) -> Result<()> {
        let count = table
            .count_source(&device.path.display().to_string())
            .max(table.of_device(device.dev()).len());
        if count >= self.cfg.mount_storm_limit {
            return Err(DataPlaneError::MountStorm {
                device: device.to_string(),
                count,
                limit: self.cfg.mount_storm_limit,
            });
        }
        Ok(())
    }

    /// Unmounts every mount stacked on `path`. EBUSY is retried a bounded
    /// number of times; then, for a live mount ([`WhenBusy::Refuse`]), the
    /// call fails naming the holders — never a lazy unmount that a detach
    /// could follow. Only a stale mount (its device gone or renumbered,
    /// [`WhenBusy::LazyStale`]) is synced and lazily detached, with an event.
    /// Returns how many mounts were removed.
    async fn unmount_all(
        &self,
        path: &Path,
        volume: &VolumeId,
        pvc: Option<&PvcRef>,
        when_busy: WhenBusy,
    ) -> Result<usize> {
        let mut removed = 0;
        // Bounded: a stack deeper than this is a storm, not a volume.
        for _ in 0..self.cfg.mount_storm_limit.max(1) {
            let table = self.mounts().await?;
            let Some(top) = table.top_at(path) else {
                return Ok(removed);
            };
            let dev = top.dev();
            if let Some(last) = self.try_unmount(path).await? {
                match when_busy {
                    WhenBusy::Refuse => {
                        return Err(self.refuse_busy(volume, pvc, dev, "unmount", &last).await);
                    }
                    WhenBusy::LazyStale => {
                        self.lazy_unmount_stale(path, volume, pvc, &last).await?
                    }
                }
            }
            removed += 1;
        }
        Err(DataPlaneError::Internal(format!(
            "{} still has mounts after {removed} unmounts",
            path.display()
        )))
    }

    /// One unmount with bounded EBUSY retries: `None` = unmounted (or gone),
    /// `Some(why)` = still busy.
    async fn try_unmount(&self, path: &Path) -> Result<Option<String>> {
        let mut last = String::new();
        for attempt in 1..=self.cfg.unmount_attempts.max(1) {
            let p = path.to_path_buf();
            let r = sys::blocking("umount", self.cfg.syscall_timeout, move || {
                Ok(sys::unmount(&p, false))
            })
            .await;
            match r {
                Ok(Ok(())) => {
                    self.metrics.mount_op("unmount", true);
                    return Ok(None);
                }
                // Someone else unmounted it meanwhile.
                Ok(Err(nix::errno::Errno::EINVAL)) => return Ok(None),
                Ok(Err(nix::errno::Errno::EBUSY)) => {
                    last = "device or resource busy".to_owned();
                    tracing::info!(path = %path.display(), attempt, "unmount busy; retrying");
                }
                Ok(Err(e)) => {
                    self.metrics.mount_op("unmount", false);
                    return Err(DataPlaneError::errno(
                        format!("unmounting {}", path.display()),
                        e,
                    ));
                }
                Err(e) => return Ok(Some(e.to_string())),
            }
            if attempt < self.cfg.unmount_attempts {
                tokio::time::sleep(self.cfg.unmount_retry_delay).await;
            }
        }
        self.metrics.mount_op("unmount", false);
        Ok(Some(last))
    }

    /// The error (and event) for a mount that stayed busy: names whoever
    /// the scan finds, or says the kernel reported it busy.
    async fn refuse_busy(
        &self,
        volume: &VolumeId,
        pvc: Option<&PvcRef>,
        dev: (u64, u64),
        action: &'static str,
        why: &str,
    ) -> DataPlaneError {
        let scan = self.scan_uses(dev, Vec::new()).await;
        let holders = match scan.as_ref().map(inuse::Scan::describe) {
            Ok(d) if !d.is_empty() => d,
            _ => format!("the kernel reports the mount busy ({why})"),
        };
        self.refuse(volume, pvc, action, holders)
    }

    /// Posts the refusal event and builds the error.
    fn refuse(
        &self,
        volume: &VolumeId,
        pvc: Option<&PvcRef>,
        action: &'static str,
        holders: String,
    ) -> DataPlaneError {
        let e = DataPlaneError::InUse {
            volume: volume.to_string(),
            action,
            holders,
        };
        tracing::warn!(volume = %volume, "{e}");
        self.post(
            volume,
            pvc,
            NodeEventKind::InUse {
                detail: e.to_string(),
            },
        );
        e
    }

    /// Scans `/proc` and sysfs for users of `dev` (bounded by the syscall
    /// deadline: a hung filesystem cannot park the RPC).
    async fn scan_uses(
        &self,
        dev: (u64, u64),
        ignore: Vec<(u32, Option<u32>)>,
    ) -> Result<inuse::Scan> {
        let (proc_root, sysfs) = (
            self.cfg.proc_root.clone(),
            self.backend.sysfs_root().to_path_buf(),
        );
        sys::blocking(
            "scanning for users of the device",
            self.cfg.syscall_timeout,
            move || {
                Ok(inuse::scan(&inuse::ScanRequest {
                    proc_root: &proc_root,
                    sysfs_root: &sysfs,
                    dev,
                    ignore_mounts: &ignore,
                }))
            },
        )
        .await
    }

    /// A stale mount (dead or renumbered device) that stays busy: flush and
    /// detach it lazily so the current device can be mounted.
    async fn lazy_unmount_stale(
        &self,
        path: &Path,
        volume: &VolumeId,
        pvc: Option<&PvcRef>,
        last: &str,
    ) -> Result<()> {
        let p = path.to_path_buf();
        let _ = sys::blocking("syncfs", self.cfg.syscall_timeout, move || sys::syncfs(&p)).await;
        let p = path.to_path_buf();
        sys::blocking("lazy umount", self.cfg.syscall_timeout, move || {
            sys::unmount(&p, true)
                .map_err(|e| DataPlaneError::errno(format!("lazy unmount of {}", p.display()), e))
        })
        .await
        .inspect_err(|_| self.metrics.mount_op("unmount", false))?;
        self.metrics.mount_op("unmount", true);
        let detail = format!(
            "stale mount {} stayed busy ({last}) after {} attempts; lazily unmounted",
            path.display(),
            self.cfg.unmount_attempts
        );
        tracing::warn!(volume = %volume, "{detail}");
        self.post(volume, pvc, NodeEventKind::ForcedCleanup { detail });
        Ok(())
    }

    /// The volume's source: the staged record, else (NVMe) the NQN derived
    /// from the id — like the Go driver, which needs nothing else to detach.
    fn known_source(&self, volume: &VolumeId) -> Result<Option<VolumeSource>> {
        if let Some(r) = self.state.load(volume.as_str())? {
            return Ok(Some(r.source));
        }
        Ok(match self.backend.kind() {
            BackendKind::Nvme => Some(nvme_source_for_detach(volume)),
            BackendKind::Loop => None,
        })
    }

    /// For a loop volume without a record: the backing file of the device
    /// mounted at the staging path, if it lies under the files root.
    fn loop_source_of_device(&self, dev: (u64, u64)) -> Option<VolumeSource> {
        let Backend::Loop(lp) = &self.backend else {
            return None;
        };
        let backing = std::fs::read_to_string(
            self.backend
                .sysfs_root()
                .join(format!("dev/block/{}:{}/loop/backing_file", dev.0, dev.1)),
        )
        .ok()?;
        let backing = PathBuf::from(backing.trim().trim_end_matches(" (deleted)"));
        let root = lp.files_root();
        let rel = backing.strip_prefix(&root).ok()?;
        let volume_path = format!("/{}", rel.display());
        crate::paths::validate_volume_path(&volume_path).ok()?;
        Some(VolumeSource::Loop(LoopTarget { volume_path }))
    }
}

/// What to do with a mount that stays busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WhenBusy {
    /// A live volume: fail naming the holders (unpublish, unstage).
    Refuse,
    /// A stale mount whose device is gone or renumbered: lazy unmount.
    LazyStale,
}

/// An NVMe source that only names the NQN (address unknown: used for
/// resolve/detach, which go by NQN alone).
fn nvme_source_for_detach(volume: &VolumeId) -> VolumeSource {
    VolumeSource::Nvme(NvmeTarget {
        nqn: volume.nqn(),
        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: 4420,
        ctrl_loss_tmo: source::DEFAULT_CTRL_LOSS_TMO,
        reconnect_delay: source::DEFAULT_RECONNECT_DELAY,
        keep_alive_tmo: source::DEFAULT_KEEP_ALIVE_TMO,
    })
}

/// Same backing storage (NQN or file), whatever the connection options.
fn same_backing(a: &VolumeSource, b: &VolumeSource) -> bool {
    match (a, b) {
        (VolumeSource::Nvme(x), VolumeSource::Nvme(y)) => x.nqn == y.nqn,
        (VolumeSource::Loop(x), VolumeSource::Loop(y)) => x.volume_path == y.volume_path,
        _ => false,
    }
}

/// `mkdir -p` with 0750 for what it creates.
fn ensure_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(path)
        .map_err(|e| DataPlaneError::io(format!("creating {}", path.display()), e))
}

/// Records the duration and outcome of a public operation.
async fn timed<T>(
    metrics: &NodeMetrics,
    op: &str,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let started = std::time::Instant::now();
    let r = fut.await;
    metrics.operation(op, r.is_ok(), started.elapsed().as_secs_f64());
    if let Err(e) = &r {
        tracing::warn!(operation = op, error = %e, "node operation failed");
    }
    r
}
