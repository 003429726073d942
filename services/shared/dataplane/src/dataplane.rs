//! The data-plane seam: how a volume's block device appears on this node.
//! Two implementations — NVMe/TCP ([`crate::nvme::NvmePlane`]) and loop
//! devices over rds-sim files ([`crate::loopdev::LoopPlane`]) — behind
//! [`Backend`], which the node plane holds.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use crate::device::Device;
use crate::error::{DataPlaneError, Result};
use crate::loopdev::LoopPlane;
use crate::nvme::NvmePlane;
use crate::source::{BackendKind, VolumeSource};

/// Result of an attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub device: Device,
    /// Connect attempts made (0 = it was already attached).
    pub attempts: u32,
}

/// What an orphan sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Connections/devices removed.
    pub cleaned: Vec<String>,
    /// Not ours (unmanaged NQN, file outside the files root, …): untouched.
    pub skipped: Vec<String>,
    pub errors: Vec<String>,
    /// The time budget ran out before the sweep finished.
    pub budget_exhausted: bool,
}

/// Attaches volumes as block devices. Every method is idempotent and finds
/// the device afresh (never from a stored path).
pub trait DataPlane: Send + Sync {
    /// Makes the volume's block device present; "already attached" is success.
    fn attach(&self, source: &VolumeSource) -> impl Future<Output = Result<Attachment>> + Send;
    /// Removes it; not attached is success.
    fn detach(&self, source: &VolumeSource) -> impl Future<Output = Result<()>> + Send;
    /// The device now backing the volume, if any.
    fn resolve(&self, source: &VolumeSource)
    -> impl Future<Output = Result<Option<Device>>> + Send;
    fn is_attached(&self, source: &VolumeSource) -> impl Future<Output = Result<bool>> + Send {
        async move { Ok(self.resolve(source).await?.is_some()) }
    }
    /// Makes the kernel re-read the device size (after a controller expand).
    fn rescan(
        &self,
        source: &VolumeSource,
        device: &Device,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Best-effort removal of dead managed attachments, bounded by `budget`.
    /// `keep` lists sources that are staged; `busy` devices are mounted.
    fn cleanup_orphans(
        &self,
        keep: &[VolumeSource],
        busy: &[(u64, u64)],
        budget: Duration,
    ) -> impl Future<Output = OrphanReport> + Send;
    /// sysfs root used for device sizes and holders.
    fn sysfs_root(&self) -> &Path;
}

/// The data plane a node runs.
pub enum Backend {
    Nvme(Box<NvmePlane>),
    Loop(LoopPlane),
}

impl From<NvmePlane> for Backend {
    fn from(p: NvmePlane) -> Self {
        Backend::Nvme(Box::new(p))
    }
}

impl From<LoopPlane> for Backend {
    fn from(p: LoopPlane) -> Self {
        Backend::Loop(p)
    }
}

impl Backend {
    pub fn kind(&self) -> BackendKind {
        match self {
            Backend::Nvme(_) => BackendKind::Nvme,
            Backend::Loop(_) => BackendKind::Loop,
        }
    }
}

fn mismatch(source: &VolumeSource, kind: BackendKind) -> DataPlaneError {
    DataPlaneError::InvalidArgument(format!(
        "volume source {} does not match this node's data plane ({kind:?})",
        source.describe()
    ))
}

impl DataPlane for Backend {
    async fn attach(&self, source: &VolumeSource) -> Result<Attachment> {
        match (self, source) {
            (Backend::Nvme(p), VolumeSource::Nvme(_)) => p.attach(source).await,
            (Backend::Loop(p), VolumeSource::Loop(_)) => p.attach(source).await,
            _ => Err(mismatch(source, self.kind())),
        }
    }

    async fn detach(&self, source: &VolumeSource) -> Result<()> {
        match (self, source) {
            (Backend::Nvme(p), VolumeSource::Nvme(_)) => p.detach(source).await,
            (Backend::Loop(p), VolumeSource::Loop(_)) => p.detach(source).await,
            _ => Err(mismatch(source, self.kind())),
        }
    }

    async fn resolve(&self, source: &VolumeSource) -> Result<Option<Device>> {
        match (self, source) {
            (Backend::Nvme(p), VolumeSource::Nvme(_)) => p.resolve(source).await,
            (Backend::Loop(p), VolumeSource::Loop(_)) => p.resolve(source).await,
            _ => Err(mismatch(source, self.kind())),
        }
    }

    async fn rescan(&self, source: &VolumeSource, device: &Device) -> Result<()> {
        match (self, source) {
            (Backend::Nvme(p), VolumeSource::Nvme(_)) => p.rescan(source, device).await,
            (Backend::Loop(p), VolumeSource::Loop(_)) => p.rescan(source, device).await,
            _ => Err(mismatch(source, self.kind())),
        }
    }

    async fn cleanup_orphans(
        &self,
        keep: &[VolumeSource],
        busy: &[(u64, u64)],
        budget: Duration,
    ) -> OrphanReport {
        match self {
            Backend::Nvme(p) => p.cleanup_orphans(keep, busy, budget).await,
            Backend::Loop(p) => p.cleanup_orphans(keep, busy, budget).await,
        }
    }

    fn sysfs_root(&self) -> &Path {
        match self {
            Backend::Nvme(p) => p.sysfs_root(),
            Backend::Loop(p) => p.sysfs_root(),
        }
    }
}
