//! The snapshot seam (DESIGN.md §4): every snapshot operation and every
//! "new volume with the contents of X" goes through [`SnapshotBackend`].
//!
//! Today: [`CopyFromBackend`] — `/disk add type=file copy-from=[find slot=…]`
//! (Go-compatible; whether RouterOS clones data or only properties is open,
//! routeros.md §6.9). Planned: a Btrfs-subvolume backend (one subvolume per
//! volume, read-only CoW snapshots, §6.11) behind the same trait.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use rds_routeros::{Command, CopyExport, DiskPath, DiskRecord, FileSize, NvmeExport, Slot};

use crate::error::AgentError;
use crate::layout::{DiskKind, snapshot_file};
use crate::rds::Rds;

/// A snapshot as the agent knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub id: Slot,
    /// `None` for Go-driver snapshots (their source was never recorded).
    pub source: Option<Slot>,
    /// Raw `size=` bytes.
    pub size: u64,
    pub file_path: DiskPath,
    /// Seconds since the epoch, from the file's `last-modified`.
    pub created_unix: Option<i64>,
}

/// What a new volume is populated from.
#[derive(Debug, Clone, Copy)]
pub enum ContentSource<'a> {
    Snapshot(&'a SnapshotInfo),
    Volume(&'a Slot),
}

/// The disk a restore/clone creates.
#[derive(Debug, Clone)]
pub struct NewVolume {
    pub slot: Slot,
    pub file_path: DiskPath,
    pub size: FileSize,
    pub export: NvmeExport,
}

pub trait SnapshotBackend: Send + Sync {
    fn name(&self) -> &'static str;

    /// Creates snapshot `id` of volume `source` under `base`; idempotent:
    /// an existing `id` of the same source is returned as is.
    fn create<'a>(
        &'a self,
        id: &'a Slot,
        source: &'a Slot,
        base: &'a DiskPath,
    ) -> BoxFuture<'a, Result<SnapshotInfo, AgentError>>;

    fn get<'a>(&'a self, id: &'a Slot) -> BoxFuture<'a, Result<Option<SnapshotInfo>, AgentError>>;

    fn list(&self) -> BoxFuture<'_, Result<Vec<SnapshotInfo>, AgentError>>;

    /// Removes the snapshot and its file; `Ok(false)` when it did not exist.
    fn delete<'a>(&'a self, id: &'a Slot) -> BoxFuture<'a, Result<bool, AgentError>>;

    /// Runs the mutation(s) creating `new` with the contents of `from`.
    /// Same contract as [`crate::executor::Executor::mutate`]: the caller
    /// verifies the result and re-reads after an ambiguous failure.
    fn populate<'a>(
        &'a self,
        from: ContentSource<'a>,
        new: &'a NewVolume,
    ) -> BoxFuture<'a, Result<(), AgentError>>;
}

pub struct CopyFromBackend {
    rds: Arc<Rds>,
}

impl CopyFromBackend {
    pub fn new(rds: Arc<Rds>) -> Self {
        CopyFromBackend { rds }
    }

    /// The snapshot view of a disk entry (without creation time).
    fn info(&self, d: &DiskRecord) -> Option<SnapshotInfo> {
        let DiskKind::Snapshot { source } = self.rds.kind(d) else {
            return None;
        };
        Some(SnapshotInfo {
            id: Slot::new(d.slot.as_deref()?).ok()?,
            source,
            size: d.size.unwrap_or(0),
            file_path: DiskPath::new(d.file_path.as_deref()?).ok()?,
            created_unix: None,
        })
    }

    async fn get_impl(&self, id: &Slot) -> Result<Option<SnapshotInfo>, AgentError> {
        let Some(d) = self.rds.disk(id).await? else {
            return Ok(None);
        };
        let Some(mut info) = self.info(&d) else {
            return Ok(None);
        };
        info.created_unix = self
            .rds
            .file(&info.file_path)
            .await?
            .and_then(|f| f.last_modified)
            .and_then(|m| m.unix_seconds());
        Ok(Some(info))
    }

    async fn create_impl(
        &self,
        id: &Slot,
        source: &Slot,
        base: &DiskPath,
    ) -> Result<SnapshotInfo, AgentError> {
        let same_source = |s: &SnapshotInfo| s.source.as_ref().is_none_or(|src| src == source);
        if let Some(d) = self.rds.disk(id).await? {
            return match self.info(&d) {
                // Legacy snapshots have no recorded source; the id is derived
                // from the CSI name, so a retry of the same name is accepted.
                Some(_) => {
                    let s = self.get_impl(id).await?.ok_or_else(|| {
                        AgentError::Internal(format!("snapshot {id} vanished while reading it"))
                    })?;
                    if same_source(&s) {
                        Ok(s)
                    } else {
                        Err(AgentError::SlotExists(format!(
                            "snapshot {id} already exists for source volume {}",
                            s.source.as_ref().map(Slot::as_str).unwrap_or("?")
                        )))
                    }
                }
                None => Err(AgentError::SlotExists(format!(
                    "slot {id} is already used by a disk that is not a snapshot"
                ))),
            };
        }
        match self.rds.disk(source).await? {
            Some(d) if self.rds.kind(&d) == DiskKind::Volume => {}
            _ => return Err(AgentError::VolumeNotFound(source.to_string())),
        }
        let file_path = snapshot_file(base, id, source)?;
        // Export explicitly off: a properties-copying copy-from would
        // otherwise inherit the source's export and its NQN (routeros.md
        // §6.9), exporting the snapshot under the live volume's name.
        let cmd = Command::DiskAddCopy {
            source: source.clone(),
            file_path,
            file_size: None,
            slot: id.clone(),
            export: CopyExport::Disabled,
        };
        let sent = self.rds.exec().mutate(&cmd).await;
        let decide = |found: Option<SnapshotInfo>, err: Option<AgentError>| match (found, err) {
            (Some(s), _) if same_source(&s) => Ok(s),
            (Some(_), _) => Err(AgentError::SlotExists(format!(
                "snapshot {id} was created concurrently from another source"
            ))),
            (None, Some(e)) => Err(e),
            (None, None) => Err(AgentError::Internal(format!(
                "the RDS accepted the snapshot command but slot {id} does not exist"
            ))),
        };
        match sent {
            Ok(()) => decide(self.get_impl(id).await?, None),
            Err(e) if e.outcome_unknown() || e.reason() == rds_bus::Reason::SlotExists => {
                // It may have been created (dropped after effect, or a
                // concurrent create won): the state decides.
                match self.get_impl(id).await {
                    Ok(found) => decide(found, Some(e)),
                    Err(reread) => {
                        tracing::warn!(error = %reread, "re-read after ambiguous snapshot failed");
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn list_impl(&self) -> Result<Vec<SnapshotInfo>, AgentError> {
        let mut snaps: Vec<SnapshotInfo> = self
            .rds
            .file_disks()
            .await?
            .iter()
            .filter_map(|d| self.info(d))
            .collect();
        // One `/file print` per directory for the creation times.
        let mut dirs: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, s) in snaps.iter().enumerate() {
            if let Some((dir, _)) = s.file_path.as_str().rsplit_once('/') {
                dirs.entry(dir.to_owned()).or_default().push(i);
            }
        }
        for (dir, idx) in dirs {
            let Ok(dir) = DiskPath::new(&dir) else {
                continue;
            };
            let files = self.rds.files_under(&dir).await?;
            for i in idx {
                let name = snaps[i].file_path.file_name().to_owned();
                snaps[i].created_unix = files
                    .iter()
                    .find(|f| f.name == name)
                    .and_then(|f| f.last_modified.as_ref())
                    .and_then(|m| m.unix_seconds());
            }
        }
        snaps.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(snaps)
    }

    async fn delete_impl(&self, id: &Slot) -> Result<bool, AgentError> {
        let Some(d) = self.rds.disk(id).await? else {
            return Ok(false);
        };
        let Some(info) = self.info(&d) else {
            // A volume or a foreign disk: not a snapshot, nothing to delete.
            tracing::warn!(slot = %id, "DeleteSnapshot of a slot that is not a snapshot: left alone");
            return Ok(false);
        };
        self.rds.remove_disk(id).await?;
        self.rds.remove_file(&info.file_path).await?;
        Ok(true)
    }

    async fn populate_impl(
        &self,
        from: ContentSource<'_>,
        new: &NewVolume,
    ) -> Result<(), AgentError> {
        let source = match from {
            ContentSource::Snapshot(s) => s.id.clone(),
            ContentSource::Volume(v) => v.clone(),
        };
        let cmd = Command::DiskAddCopy {
            source,
            file_path: new.file_path.clone(),
            file_size: Some(new.size),
            slot: new.slot.clone(),
            export: CopyExport::Enabled(new.export.clone()),
        };
        self.rds.exec().mutate(&cmd).await
    }
}

impl SnapshotBackend for CopyFromBackend {
    fn name(&self) -> &'static str {
        "copy-from"
    }

    fn create<'a>(
        &'a self,
        id: &'a Slot,
        source: &'a Slot,
        base: &'a DiskPath,
    ) -> BoxFuture<'a, Result<SnapshotInfo, AgentError>> {
        Box::pin(self.create_impl(id, source, base))
    }

    fn get<'a>(&'a self, id: &'a Slot) -> BoxFuture<'a, Result<Option<SnapshotInfo>, AgentError>> {
        Box::pin(self.get_impl(id))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<SnapshotInfo>, AgentError>> {
        Box::pin(self.list_impl())
    }

    fn delete<'a>(&'a self, id: &'a Slot) -> BoxFuture<'a, Result<bool, AgentError>> {
        Box::pin(self.delete_impl(id))
    }

    fn populate<'a>(
        &'a self,
        from: ContentSource<'a>,
        new: &'a NewVolume,
    ) -> BoxFuture<'a, Result<(), AgentError>> {
        Box::pin(self.populate_impl(from, new))
    }
}
