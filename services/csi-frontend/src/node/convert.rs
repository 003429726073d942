//! CSI node requests → the data plane's validated requests. Argument checks
//! come first, in csi-sanity's order (id, path, capability).

use rds_bus::VolumeId;
use rds_dataplane::{AccessType, FsType, MountFlags, NodePath};
use rds_proto::csi::v1::VolumeCapability;
use rds_proto::csi::v1::volume_capability::AccessType as CsiAccess;
use rds_proto::csi::v1::volume_capability::access_mode::Mode;

use crate::capability::{self, Checked};
use crate::error::FrontendError;
use crate::ids;

pub fn volume(v: &str) -> Result<VolumeId, FrontendError> {
    ids::volume("volume_id", v)
}

/// A kubelet path (absolute, no `..`).
pub fn path(field: &str, v: &str) -> Result<NodePath, FrontendError> {
    ids::required(field, v)?;
    Ok(NodePath::parse(field, v)?)
}

/// A path of a stats/expand call: one that cannot be a published volume
/// (relative, e.g. csi-sanity's `some/path`) is NOT_FOUND there, not a bad
/// argument — nothing is published at it.
pub fn existing_path(field: &str, v: &str) -> Result<NodePath, FrontendError> {
    ids::required(field, v)?;
    NodePath::parse(field, v).map_err(|_| {
        FrontendError::VolumeNotFound(format!("no volume is published at {field} {:?}", short(v)))
    })
}

fn short(v: &str) -> String {
    v.chars().take(128).collect()
}

/// The capability as the data plane sees it, plus whether it is read-only.
pub struct NodeCapability {
    pub checked: Checked,
    pub access: AccessType,
    /// Reader-only access modes stage and publish read-only.
    pub reader_only: bool,
}

pub fn capability(cap: Option<&VolumeCapability>) -> Result<NodeCapability, FrontendError> {
    let cap =
        cap.ok_or_else(|| FrontendError::InvalidArgument("volume_capability is required".into()))?;
    let checked = capability::check(cap).map_err(FrontendError::InvalidArgument)?;
    let access = match &cap.access_type {
        Some(CsiAccess::Mount(m)) => AccessType::Mount {
            fs_type: FsType::parse(&m.fs_type)?,
            flags: MountFlags::parse(&m.mount_flags)?,
        },
        _ => AccessType::Block,
    };
    let reader_only = matches!(
        checked.mode,
        Mode::SingleNodeReaderOnly | Mode::MultiNodeReaderOnly
    );
    Ok(NodeCapability {
        checked,
        access,
        reader_only,
    })
}
