//! CreateSnapshot / DeleteSnapshot / ListSnapshots / GetSnapshot. Snapshot ids
//! are the Go driver's deterministic `SnapshotId::from_name`, so a retried
//! CreateSnapshot (or one the Go driver made) finds its snapshot by name.
//!
//! The snapshot follows its source's layout (docs/btrfs.md): a subvolume
//! volume gets a read-only Btrfs snapshot, complete when the command returns
//! and timed by the subvolume's `creation-time`; a flat volume gets a
//! `copy-from` disk, whose data copy is UNVERIFIED on a real RDS
//! (docs/routeros.md §6.9) — said in the log line of every such snapshot.

use rds_bus::SnapshotId;
use rds_bus::volume_context::VolumeLayout;
use rds_proto::agent;
use rds_proto::csi::v1::list_snapshots_response::Entry;
use rds_proto::csi::v1::{
    CreateSnapshotRequest, CreateSnapshotResponse, DeleteSnapshotRequest, DeleteSnapshotResponse,
    GetSnapshotRequest, GetSnapshotResponse, ListSnapshotsRequest, ListSnapshotsResponse, Snapshot,
};

use super::Core;
use crate::capacity;
use crate::deadline::CallCtx;
use crate::error::FrontendError;
use crate::ids;
use crate::paging;
use crate::params;

impl Core {
    pub async fn create_snapshot(
        &self,
        ctx: &CallCtx,
        req: CreateSnapshotRequest,
    ) -> Result<CreateSnapshotResponse, FrontendError> {
        ids::required("name", &req.name)?;
        let source = ids::volume("source_volume_id", &req.source_volume_id)?;
        if req.name.len() > 1024 {
            return Err(FrontendError::InvalidArgument(
                "name is longer than 1024 bytes".into(),
            ));
        }
        let base_path = params::snapshot_base_path(&req.parameters, &self.cfg)?;
        let id = SnapshotId::from_name(&req.name);
        tracing::Span::current().record("snapshot_id", id.as_str());
        let _held = self.guard.snapshot(id.as_str())?;
        // One bus call: rds-agent checks the existing snapshot's source and
        // the source volume in the same read, and runs the copy detached
        // (ready_to_use=false until it is done; the sidecar calls again).
        let snap = self
            .backends
            .create_snapshot(ctx, &id, &source, &base_path)
            .await?;
        if !snap.source_volume_id.is_empty() && snap.source_volume_id != source.as_str() {
            return Err(FrontendError::AlreadyExists(format!(
                "snapshot {:?} already exists for source volume {}, not {source}",
                req.name, snap.source_volume_id
            )));
        }
        match VolumeLayout::from_proto(snap.layout) {
            Some(VolumeLayout::Subvolume) => {
                tracing::info!(snapshot_id = %id, volume_id = %source, "snapshot (Btrfs subvolume snapshot)");
            }
            _ => tracing::warn!(
                snapshot_id = %id,
                volume_id = %source,
                ready = snap.ready_to_use,
                "snapshot of a flat volume: a RouterOS copy-from, UNVERIFIED on hardware \
                 (docs/btrfs.md; restore-test it, or use volumeLayout: subvolume)"
            ),
        }
        Ok(CreateSnapshotResponse {
            snapshot: Some(csi_snapshot(snap, Some(source.as_str()))),
        })
    }

    pub async fn delete_snapshot(
        &self,
        ctx: &CallCtx,
        req: DeleteSnapshotRequest,
    ) -> Result<DeleteSnapshotResponse, FrontendError> {
        let id = ids::snapshot("snapshot_id", &req.snapshot_id)?;
        if !ids::is_snapshot_slot(id.as_str()) {
            // Never one of ours (and never a volume's disk): nothing to delete.
            tracing::info!(snapshot_id = %id, "not a snapshot id; nothing to delete");
            return Ok(DeleteSnapshotResponse {});
        }
        let _held = self.guard.snapshot(id.as_str())?;
        let existed = self.backends.delete_snapshot(ctx, &id).await?;
        tracing::info!(snapshot_id = %id, existed, "snapshot deleted");
        Ok(DeleteSnapshotResponse {})
    }

    pub async fn list_snapshots(
        &self,
        ctx: &CallCtx,
        req: ListSnapshotsRequest,
    ) -> Result<ListSnapshotsResponse, FrontendError> {
        paging::page(
            Vec::<String>::new(),
            |s| s.as_str(),
            req.max_entries,
            &req.starting_token,
        )?;
        let empty = ListSnapshotsResponse::default();
        // Filters that cannot match anything answer empty, not an error.
        let id = match req.snapshot_id.as_str() {
            "" => None,
            s => match SnapshotId::parse(s) {
                Ok(id) if ids::is_snapshot_slot(id.as_str()) => Some(id),
                _ => return Ok(empty),
            },
        };
        let source = match req.source_volume_id.as_str() {
            "" => None,
            s => match rds_bus::VolumeId::parse(s) {
                Ok(v) => Some(v),
                Err(_) => return Ok(empty),
            },
        };
        let snaps: Vec<agent::Snapshot> = self
            .backends
            .list_snapshots(ctx, id.as_ref(), source.as_ref())
            .await?
            .into_iter()
            .filter(|s| ids::is_snapshot_slot(&s.snapshot_id))
            .filter(|s| id.as_ref().is_none_or(|i| s.snapshot_id == i.as_str()))
            .filter(|s| {
                source
                    .as_ref()
                    .is_none_or(|v| s.source_volume_id == v.as_str())
            })
            .collect();
        let (page, next_token) = paging::page(
            snaps,
            |s| s.snapshot_id.as_str(),
            req.max_entries,
            &req.starting_token,
        )?;
        Ok(ListSnapshotsResponse {
            entries: page
                .into_iter()
                .map(|s| Entry {
                    snapshot: Some(csi_snapshot(s, None)),
                })
                .collect(),
            next_token,
        })
    }

    pub async fn get_snapshot(
        &self,
        ctx: &CallCtx,
        req: GetSnapshotRequest,
    ) -> Result<GetSnapshotResponse, FrontendError> {
        let id = ids::snapshot("snapshot_id", &req.snapshot_id)?;
        let found = if ids::is_snapshot_slot(id.as_str()) {
            self.backends.get_snapshot(ctx, &id).await?
        } else {
            None
        };
        let snap = found
            .ok_or_else(|| FrontendError::SnapshotNotFound(format!("snapshot {id} not found")))?;
        Ok(GetSnapshotResponse {
            snapshot: Some(csi_snapshot(snap, None)),
        })
    }
}

/// `source` fills in a source the agent could not tell (Go-driver snapshots).
/// A subvolume snapshot is ready when it exists: RouterOS makes it in one
/// command (nothing runs detached), and its time is the agent's
/// `creation-time`.
fn csi_snapshot(s: agent::Snapshot, source: Option<&str>) -> Snapshot {
    let ready =
        s.ready_to_use || VolumeLayout::from_proto(s.layout) == Some(VolumeLayout::Subvolume);
    let source_volume_id = match (s.source_volume_id.is_empty(), source) {
        (true, Some(src)) => src.to_owned(),
        _ => s.source_volume_id,
    };
    Snapshot {
        size_bytes: capacity::to_i64(s.size_bytes),
        snapshot_id: s.snapshot_id,
        source_volume_id,
        creation_time: s.creation_time,
        ready_to_use: ready,
        group_snapshot_id: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subvolume_snapshot_is_ready_with_the_agents_creation_time() {
        let t = prost_types::Timestamp {
            seconds: 1_796_633_495,
            nanos: 0,
        };
        let sub = agent::Snapshot {
            snapshot_id: "snap-1".into(),
            source_volume_id: "pvc-1".into(),
            size_bytes: 1 << 30,
            creation_time: Some(t),
            layout: agent::VolumeLayout::Subvolume as i32,
            ready_to_use: false,
            ..Default::default()
        };
        let c = csi_snapshot(sub.clone(), None);
        assert!(c.ready_to_use);
        assert_eq!(c.creation_time, Some(t));
        assert_eq!(c.source_volume_id, "pvc-1");
        // A flat copy-from snapshot keeps the agent's readiness (a copy may run).
        let flat = agent::Snapshot {
            layout: agent::VolumeLayout::Flat as i32,
            ..sub
        };
        assert!(!csi_snapshot(flat.clone(), None).ready_to_use);
        let unspecified = agent::Snapshot { layout: 0, ..flat };
        assert!(!csi_snapshot(unspecified, None).ready_to_use);
    }
}
