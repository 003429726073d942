//! The snapshot seam (docs/decisions.md §3.7): every snapshot operation and every
//! "new volume with the contents of X" goes through [`SnapshotBackend`].
//!
//! [`CopyFromBackend`] serves both layouts: flat volumes' snapshots are
//! `/disk add type=file copy-from=[find slot=…]` (Go-compatible; whether
//! RouterOS clones data or only properties is open, docs/routeros.md §6.9);
//! a subvolume volume's snapshot is a read-only Btrfs subvolume snapshot
//! ([`crate::btrfs_snapshots`], docs/decisions.md §13). Which one is decided
//! by the source's file path, read in the same batch as everything else.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use rds_routeros::{
    Command, CopyExport, DiskPath, DiskRecord, DiskSelector, FileSelector, FileSize, NvmeExport,
    Slot,
};

use crate::error::AgentError;
use crate::flights::{Flight, Flights, Plan};
use crate::layout::{DiskKind, Layout, file_kind, snapshot_file};
use crate::rds::{Rds, View, decide_after};

/// `s` if it is a snapshot of `source` (or has no recorded source); otherwise the id is
/// taken by a snapshot of another volume.
fn of_source(id: &Slot, source: &Slot, s: SnapshotInfo) -> Result<SnapshotInfo, AgentError> {
    if s.source.as_ref().is_none_or(|src| src == source) {
        Ok(s)
    } else {
        Err(AgentError::SlotExists(format!(
            "snapshot {id} already exists for source volume {}",
            s.source.as_ref().map(Slot::as_str).unwrap_or("?")
        )))
    }
}

/// A snapshot as the agent knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub id: Slot,
    /// `None` for Go-driver snapshots (their source was never recorded).
    pub source: Option<Slot>,
    /// Raw `size=` bytes.
    pub size: u64,
    pub file_path: DiskPath,
    /// Seconds since the epoch, from the file's `last-modified` (or the
    /// start of a copy still running).
    pub created_unix: Option<i64>,
    /// False while the copy-from still runs (detached, [`Flights`]).
    pub ready: bool,
    /// Flat (a copy-from disk) or a read-only Btrfs subvolume.
    pub layout: Layout,
}

/// The volume check of a file (`/file print` gives `name` without the
/// leading slash).
pub fn inspect_command(path: &DiskPath) -> String {
    format!("/file print detail where name=\"{}\"", path.file_name())
}

/// What a new volume is populated from.
#[derive(Debug, Clone)]
pub enum ContentSource {
    Snapshot(Slot),
    Volume(Slot),
}

/// The disk a restore/clone creates.
#[derive(Debug, Clone)]
pub struct NewVolume {
    pub slot: Slot,
    pub file_path: DiskPath,
    pub size: FileSize,
    pub export: NvmeExport,
    /// The new disk's ownership tag (else copy-from copies the source's).
    pub comment: Option<rds_routeros::DiskComment>,
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

    /// Runs the mutation(s) creating `new` with the contents of `from`,
    /// under the long-verb deadline. Same contract as
    /// [`crate::executor::Executor::mutate`]: the caller verifies the result
    /// and re-reads after an ambiguous failure ([`decide_after`]).
    fn populate<'a>(
        &'a self,
        from: &'a ContentSource,
        new: &'a NewVolume,
    ) -> BoxFuture<'a, Result<(), AgentError>>;
}

pub struct CopyFromBackend {
    rds: Arc<Rds>,
    flights: Arc<Flights>,
    /// Deadline of one copy-from (minutes: it copies the data).
    copy_timeout: Duration,
    /// How long a call waits for a copy when it has no deadline of its own.
    wait_default: Duration,
}

fn unix(t: SystemTime) -> Option<i64> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
}

/// How long a call may wait for a detached copy: its own time left.
pub fn wait_budget(default: Duration) -> Duration {
    crate::deadline::remaining().unwrap_or(default)
}

impl CopyFromBackend {
    pub fn new(
        rds: Arc<Rds>,
        flights: Arc<Flights>,
        copy_timeout: Duration,
        wait_default: Duration,
    ) -> Self {
        CopyFromBackend {
            rds,
            flights,
            copy_timeout,
            wait_default,
        }
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
            ready: true,
            layout: Layout::Flat,
        })
    }

    /// A snapshot whose copy still runs.
    fn pending(f: &Flight) -> SnapshotInfo {
        SnapshotInfo {
            id: f.target.clone(),
            source: Some(f.source.clone()),
            size: f.size,
            file_path: f.file_path.clone(),
            created_unix: unix(f.started),
            ready: false,
            layout: Layout::Flat,
        }
    }

    /// Waits (within the call's time) for a running copy of `id`.
    async fn join(&self, f: &Flight) -> Result<SnapshotInfo, AgentError> {
        match f.wait(wait_budget(self.wait_default)).await {
            None => Ok(Self::pending(f)),
            Some(Err(e)) => Err(e),
            Some(Ok(d)) => {
                let mut s = self.info(&d).ok_or_else(|| {
                    AgentError::Internal(format!("copy into {} made no snapshot disk", f.target))
                })?;
                // The file's time, as every later read will report it.
                s.created_unix = self
                    .rds
                    .file(&s.file_path)
                    .await?
                    .and_then(|f| f.last_modified)
                    .and_then(|m| m.unix_seconds())
                    .or_else(|| unix(f.started));
                Ok(s)
            }
        }
    }

    /// One round trip: the slot, this id's files and its subvolume snapshot
    /// under every base path.
    async fn get_impl(&self, id: &Slot) -> Result<Option<SnapshotInfo>, AgentError> {
        if let Some(f) = self.flights.get(id) {
            return Ok(Some(Self::pending(&f)));
        }
        let (files, subs) = crate::btrfs_snapshots::reads_for(self.rds.bases(), id)?;
        let scene = self
            .rds
            .scene(
                DiskSelector::Slot(id.clone()),
                Some(FileSelector::Any(files)),
                subs,
            )
            .await?;
        if let Some(s) = crate::btrfs_snapshots::existing(&scene, self.rds.bases(), id) {
            return Ok(Some(s));
        }
        let Some(d) = scene.view.disk(id) else {
            return Ok(None);
        };
        let Some(mut info) = self.info(d) else {
            return Ok(None);
        };
        info.created_unix = scene
            .view
            .file(&info.file_path)
            .and_then(|f| f.last_modified.as_ref())
            .and_then(|m| m.unix_seconds());
        Ok(Some(info))
    }

    /// One round trip: the snapshot slot, its source and the target file;
    /// then the copy, detached, and one verify (in the detached task).
    async fn create_impl(
        &self,
        id: &Slot,
        source: &Slot,
        base: &DiskPath,
    ) -> Result<SnapshotInfo, AgentError> {
        if let Some(f) = self.flights.get(id) {
            return of_source(id, source, self.join(&f).await?);
        }
        let file_path = snapshot_file(base, id, source)?;
        let sel = DiskSelector::Any(vec![
            DiskSelector::Slot(id.clone()),
            DiskSelector::Slot(source.clone()),
        ]);
        let (files, subs) = crate::btrfs_snapshots::reads_for(self.rds.bases(), id)?;
        let scene = self
            .rds
            .scene(sel, Some(FileSelector::Any(files)), subs)
            .await?;
        let view = &scene.view;
        if let Some(s) = crate::btrfs_snapshots::existing(&scene, self.rds.bases(), id) {
            return of_source(id, source, s);
        }
        if let Some(d) = view.disk(source)
            && self.rds.kind(d) == DiskKind::Volume
            && view.disk(id).is_none()
            && Layout::of_file(d.file_path.as_deref().unwrap_or_default()) == Layout::Subvolume
        {
            return crate::btrfs_snapshots::create(&self.rds, id, source, d, base).await;
        }
        if let Some(d) = view.disk(id) {
            return self.existing_flat(id, source, d, view).await;
        }
        let src_size = match view.disk(source) {
            Some(d) if self.rds.kind(d) == DiskKind::Volume => d.size.unwrap_or(0),
            _ => return Err(AgentError::VolumeNotFound(source.to_string())),
        };
        if view.file(&file_path).is_some() {
            return Err(AgentError::OrphanFile {
                path: file_path.to_string(),
                inspect: inspect_command(&file_path),
            });
        }
        // Export explicitly off: a properties-copying copy-from would
        // otherwise inherit the source's export and its NQN (docs/routeros.md
        // §6.9), exporting the snapshot under the live volume's name.
        let cmd = Command::DiskAddCopy {
            source: source.clone(),
            file_path: file_path.clone(),
            file_size: None,
            slot: id.clone(),
            export: CopyExport::Disabled,
            comment: None,
        };
        let work = copy_and_verify(self.rds.clone(), cmd, id.clone(), self.copy_timeout);
        let f = self.flights.start(
            Plan {
                target: id.clone(),
                source: source.clone(),
                file_path,
                size: src_size,
            },
            work,
        );
        of_source(id, source, self.join(&f).await?)
    }

    /// A flat snapshot disk already at `id`: the same snapshot again if it is one of
    /// `source`, with its creation time from its file.
    async fn existing_flat(
        &self,
        id: &Slot,
        source: &Slot,
        d: &DiskRecord,
        view: &View,
    ) -> Result<SnapshotInfo, AgentError> {
        // Legacy snapshots have no recorded source; the id is derived
        // from the CSI name, so a retry of the same name is accepted.
        let s = self.info(d).ok_or_else(|| {
            AgentError::SlotExists(format!(
                "slot {id} is already used by a disk that is not a snapshot"
            ))
        })?;
        let mut s = of_source(id, source, s)?;
        s.created_unix = view
            .file(&s.file_path)
            .and_then(|f| f.last_modified.as_ref())
            .and_then(|m| m.unix_seconds());
        if s.created_unix.is_none() {
            // A Go-driver snapshot (file name without the source).
            s.created_unix = self
                .rds
                .file(&s.file_path)
                .await?
                .and_then(|f| f.last_modified)
                .and_then(|m| m.unix_seconds());
        }
        Ok(s)
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
        snaps.extend(crate::btrfs_snapshots::list(&self.rds).await?);
        for f in self.flights.all() {
            if f.target.as_str().starts_with(rds_bus::SNAPSHOT_PREFIX)
                && !snaps.iter().any(|s| s.id == f.target)
            {
                snaps.push(Self::pending(&f));
            }
        }
        snaps.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(snaps)
    }

    /// One round trip reads the disk and every file of this snapshot under
    /// any base path, so a retry after a partial delete (disk gone, file
    /// left) still finds and removes the file.
    async fn delete_impl(&self, id: &Slot) -> Result<bool, AgentError> {
        if let Some(f) = self.flights.touching(id) {
            return Err(AgentError::Pending(f.describe()));
        }
        let (files, subs) = crate::btrfs_snapshots::reads_for(self.rds.bases(), id)?;
        let scene = self
            .rds
            .scene(
                DiskSelector::Slot(id.clone()),
                Some(FileSelector::Any(files)),
                subs,
            )
            .await?;
        let view = &scene.view;
        if let Some(d) = view.disk(id) {
            let Some(info) = self.info(d) else {
                // A volume or a foreign disk: not a snapshot, nothing to delete.
                tracing::warn!(slot = %id, "DeleteSnapshot of a slot that is not a snapshot: left alone");
                return Ok(false);
            };
            self.rds.remove_disk(id).await?;
            self.rds.remove_file(&info.file_path).await?;
            return Ok(true);
        }
        // Subvolume snapshots: removing the subvolume removes its file.
        let gone = crate::btrfs_snapshots::remove(&self.rds, &scene, id).await?;
        let mut removed = !gone.is_empty();
        for f in &view.files {
            if gone
                .iter()
                .any(|dir| f.name.starts_with(&format!("{}/", dir.file_name())))
            {
                continue;
            }
            let base_name = f.name.rsplit('/').next().unwrap_or("");
            if !matches!(file_kind(base_name, id.as_str()), DiskKind::Snapshot { .. }) {
                continue;
            }
            let path = DiskPath::new(&format!("/{}", f.name))?;
            if !self.rds.bases().owns(&path) {
                continue;
            }
            tracing::info!(file = %path, "removing the file of a half-deleted snapshot");
            self.rds.remove_file(&path).await?;
            removed = true;
        }
        Ok(removed)
    }

    async fn populate_impl(&self, from: &ContentSource, new: &NewVolume) -> Result<(), AgentError> {
        let source = match from {
            ContentSource::Snapshot(s) | ContentSource::Volume(s) => s.clone(),
        };
        let cmd = Command::DiskAddCopy {
            source,
            file_path: new.file_path.clone(),
            file_size: Some(new.size),
            slot: new.slot.clone(),
            export: CopyExport::Enabled(new.export.clone()),
            comment: new.comment.clone(),
        };
        self.rds.exec().mutate_long(&cmd, self.copy_timeout).await
    }
}

/// A detached copy-from and its one verify: the new slot must exist after
/// it (a duplicate-slot error or an ambiguous failure is decided by the
/// state, [`decide_after`]).
pub async fn copy_and_verify(
    rds: Arc<Rds>,
    cmd: Command,
    slot: Slot,
    timeout: Duration,
) -> Result<DiskRecord, AgentError> {
    let sent = rds.exec().mutate_long(&cmd, timeout).await;
    decide_after(
        sent,
        |e| e.reason() == rds_bus::Reason::SlotExists,
        rds.disk(&slot),
        |found, err| match (found, err) {
            (Some(d), _) => Ok(d),
            (None, Some(e)) => Err(e),
            (None, None) => Err(AgentError::Internal(format!(
                "the RDS accepted the copy but slot {slot} does not exist"
            ))),
        },
    )
    .await
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
        from: &'a ContentSource,
        new: &'a NewVolume,
    ) -> BoxFuture<'a, Result<(), AgentError>> {
        Box::pin(self.populate_impl(from, new))
    }
}
