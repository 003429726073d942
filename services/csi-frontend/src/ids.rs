//! Request ids checked at the edge: empty → INVALID_ARGUMENT "X is required",
//! malformed → INVALID_ARGUMENT with the grammar; a well-formed id that does
//! not exist is the handler's NOT_FOUND (docs/csi.md §2.2).
//!
//! Volumes and snapshots share the RouterOS slot namespace. Snapshot slots
//! always start with `snap-` (`SnapshotId::from_name`), so a `snap-` name is
//! never a volume and anything else is never a snapshot: a DeleteSnapshot can
//! never remove a volume's disk and vice versa.

use rds_bus::{NodeId, SNAPSHOT_PREFIX, SnapshotId, VolumeId};

use crate::error::FrontendError;

pub fn required<'a>(field: &str, v: &'a str) -> Result<&'a str, FrontendError> {
    if v.is_empty() {
        Err(FrontendError::InvalidArgument(format!(
            "{field} is required"
        )))
    } else {
        Ok(v)
    }
}

pub fn volume(field: &str, v: &str) -> Result<VolumeId, FrontendError> {
    VolumeId::parse(required(field, v)?)
        .map_err(|e| FrontendError::InvalidArgument(format!("{field}: {e}")))
}

pub fn node(field: &str, v: &str) -> Result<NodeId, FrontendError> {
    NodeId::parse(required(field, v)?)
        .map_err(|e| FrontendError::InvalidArgument(format!("{field}: {e}")))
}

pub fn snapshot(field: &str, v: &str) -> Result<SnapshotId, FrontendError> {
    SnapshotId::parse(required(field, v)?)
        .map_err(|e| FrontendError::InvalidArgument(format!("{field}: {e}")))
}

pub fn is_snapshot_slot(id: &str) -> bool {
    id.starts_with(SNAPSHOT_PREFIX)
}
