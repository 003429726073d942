//! The validated inputs and the outcomes of [`super::NodePlane`]'s calls:
//! what csi-frontend's Node service builds from a CSI request and returns.

use rds_bus::VolumeId;

use crate::device::Device;
use crate::flags::MountFlags;
use crate::fs::FsType;
use crate::paths::NodePath;
pub use crate::source::ContentOrigin;
use crate::source::{PvcRef, VolumeSource};

/// Filesystem or raw block, from the CSI capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessType {
    Block,
    Mount { fs_type: FsType, flags: MountFlags },
}

#[derive(Debug, Clone)]
pub struct StageRequest {
    pub volume_id: VolumeId,
    pub staging_path: NodePath,
    pub source: VolumeSource,
    pub access: AccessType,
    /// Reader-only access modes stage read-only.
    pub readonly: bool,
    pub pvc: Option<PvcRef>,
    /// Where the content came from (volume_context `contentSource`).
    pub content: ContentOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageOutcome {
    pub device: Device,
    pub formatted: bool,
    pub already_staged: bool,
}

#[derive(Debug, Clone)]
pub struct PublishRequest {
    pub volume_id: VolumeId,
    pub staging_path: NodePath,
    pub target_path: NodePath,
    /// From the request's volume_context; the staged record wins when present.
    pub source: Option<VolumeSource>,
    pub access: AccessType,
    pub readonly: bool,
    pub pvc: Option<PvcRef>,
    /// SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod): a raw block volume
    /// published at another target is refused (the filesystem case is
    /// checked in mountinfo by the CSI layer).
    pub single_writer: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    pub already_published: bool,
}

#[derive(Debug, Clone)]
pub struct UnpublishRequest {
    pub volume_id: VolumeId,
    pub target_path: NodePath,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpublishOutcome {
    pub was_mounted: bool,
    /// False when the target did not exist or still holds files.
    pub removed_target: bool,
}

#[derive(Debug, Clone)]
pub struct UnstageRequest {
    pub volume_id: VolumeId,
    pub staging_path: NodePath,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnstageOutcome {
    pub was_mounted: bool,
    pub detached: bool,
}

#[derive(Debug, Clone)]
pub struct StatsRequest {
    pub volume_id: VolumeId,
    pub volume_path: NodePath,
}

#[derive(Debug, Clone)]
pub struct ExpandRequest {
    pub volume_id: VolumeId,
    pub volume_path: NodePath,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandOutcome {
    pub capacity_bytes: u64,
}
