//! Snapshots of subvolume-layout volumes (docs/decisions.md §13): a read-only
//! subvolume `<base>/<snapshot-id>.from-<source-volume-id>` made with
//! `parent=<source's subvolume>`, no disk entry. Ready at once (copy-on-write),
//! `creation_time` from the subvolume's `creation-time`, and independent of
//! its source: deleting the volume leaves it working, deleting it removes the
//! subvolume with its file.
//!
//! The source is read from the `parent=` relation (RouterOS keeps the name
//! given at creation) and, when none is printed, from the `.from-` name.

use rds_routeros::{
    DiskPath, DiskRecord, DiskSelector, FileRecord, FileSelector, RegexPattern, Slot,
    SubvolumeName, SubvolumeRecord, SubvolumeSelector,
};

use crate::btrfs::Scene;
use crate::error::AgentError;
use crate::layout::{
    BasePaths, Layout, VOLUME_IMG, pool_of, snapshot_leaf, snapshot_subvolume, subvolume_at,
    subvolume_of_file,
};
use crate::rds::Rds;
use crate::snapshots::SnapshotInfo;

/// What get/create/delete of snapshot `id` read besides its disk slot:
/// every file `<base>/<id>.…` (flat `.img`, Go-driver `.img`, and the
/// `volume.img` of a subvolume snapshot) and every subvolume
/// `<base>/<id>.from-…`, under every base path.
pub fn reads_for(
    bases: &BasePaths,
    id: &Slot,
) -> Result<(Vec<FileSelector>, Vec<SubvolumeSelector>), AgentError> {
    let (mut files, mut subs) = (Vec::new(), Vec::new());
    for b in bases.paths() {
        files.push(FileSelector::NameMatches(RegexPattern::starts_with(
            &format!("{}/{id}.", b.file_name()),
        )?));
        let name = subvolume_at(b, &format!("{id}.from-"))?;
        subs.push(SubvolumeSelector::NameMatches(RegexPattern::starts_with(
            name.as_str(),
        )?));
    }
    Ok((files, subs))
}

/// Where a subvolume's files are (`path=`, else `/<fs>/<name>`).
fn dir_of(sv: &SubvolumeRecord) -> Option<DiskPath> {
    let path = match &sv.path {
        Some(p) if !p.is_empty() => p.clone(),
        _ => format!("/{}/{}", sv.fs.as_deref()?, sv.name),
    };
    DiskPath::new(&path).ok()
}

/// The snapshot a subvolume is, if it is one of ours: read-only, named
/// `<snap>.from-<src>`, under a base path.
pub fn info(sv: &SubvolumeRecord, files: &[FileRecord], bases: &BasePaths) -> Option<SnapshotInfo> {
    let name = SubvolumeName::new(&sv.name).ok()?;
    let (id, named_source) = snapshot_leaf(&name)?;
    let dir = dir_of(sv)?;
    if !sv.is_read_only() || !bases.owns(&dir) {
        return None;
    }
    let source = sv
        .parent_name()
        .and_then(|p| Slot::new(p.rsplit('/').next().unwrap_or(p)).ok())
        .unwrap_or(named_source);
    let file_path = DiskPath::new(&format!("{dir}/{VOLUME_IMG}")).ok()?;
    let size = files
        .iter()
        .find(|f| f.name == file_path.file_name())
        .and_then(|f| f.size.as_ref())
        .map_or(0, |h| h.bytes);
    Some(SnapshotInfo {
        id,
        source: Some(source),
        size,
        file_path,
        created_unix: sv.creation_time.as_ref().and_then(|t| t.unix_seconds()),
        ready: true,
        layout: Layout::Subvolume,
    })
}

/// Snapshot `id` as a subvolume in `scene`, if there is one.
pub fn existing(scene: &Scene, bases: &BasePaths, id: &Slot) -> Option<SnapshotInfo> {
    scene
        .subvolumes
        .iter()
        .filter_map(|sv| info(sv, &scene.view.files, bases))
        .find(|s| &s.id == id)
}

/// CreateSnapshot of a subvolume volume: one add (read-only snapshot of the
/// source's subvolume), one read for its `creation-time`. The caller has
/// read that `id` exists nowhere yet.
pub async fn create(
    rds: &Rds,
    id: &Slot,
    source: &Slot,
    source_disk: &DiskRecord,
    base: &DiskPath,
) -> Result<SnapshotInfo, AgentError> {
    let src_file = DiskPath::new(source_disk.file_path.as_deref().unwrap_or_default())?;
    let (src_pool, parent) = subvolume_of_file(&src_file)?;
    let pool = pool_of(base)?;
    if src_pool != pool {
        return Err(AgentError::InvalidArgument(format!(
            "volume {source} is on pool {src_pool}, the snapshot's base path on {pool}: a Btrfs snapshot stays on its filesystem"
        )));
    }
    let name = snapshot_subvolume(base, id, source)?;
    rds.add_subvolume(&pool, &name, Some(&parent), true).await?;
    let sv = rds.subvolume(&name).await?.ok_or_else(|| {
        AgentError::Internal(format!(
            "the RDS accepted the snapshot {name} but does not list it"
        ))
    })?;
    let mut s = info(&sv, &[], rds.bases()).ok_or_else(|| {
        AgentError::Internal(format!(
            "subvolume {name} is not a read-only snapshot under a base path as created"
        ))
    })?;
    // The file has the source's size at this instant (exact, from `size=`).
    s.size = source_disk.size.unwrap_or(0);
    Ok(s)
}

/// Removes every subvolume snapshot of `id` in `scene`; returns their
/// directories (their files went with them).
pub async fn remove(rds: &Rds, scene: &Scene, id: &Slot) -> Result<Vec<DiskPath>, AgentError> {
    let mut gone = Vec::new();
    for sv in &scene.subvolumes {
        let Some(s) = info(sv, &[], rds.bases()) else {
            continue;
        };
        if &s.id != id {
            continue;
        }
        let name = SubvolumeName::new(&sv.name)?;
        rds.remove_subvolume(&name).await?;
        if let Some(dir) = dir_of(sv) {
            gone.push(dir);
        }
    }
    Ok(gone)
}

/// Every subvolume snapshot under the base paths, in one round trip (the
/// pool record stands in for the disk part of the batch: one record).
pub async fn list(rds: &Rds) -> Result<Vec<SnapshotInfo>, AgentError> {
    let prefix = rds_bus::SNAPSHOT_PREFIX;
    let (mut files, mut subs) = (Vec::new(), Vec::new());
    for b in rds.bases().paths() {
        files.push(FileSelector::NameMatches(RegexPattern::starts_with(
            &format!("{}/{prefix}", b.file_name()),
        )?));
        let name = subvolume_at(b, prefix)?;
        subs.push(SubvolumeSelector::NameMatches(RegexPattern::starts_with(
            name.as_str(),
        )?));
    }
    let scene = rds
        .scene(
            DiskSelector::MountPoint(rds.pool().clone()),
            Some(FileSelector::Any(files)),
            subs,
        )
        .await?;
    Ok(scene
        .subvolumes
        .iter()
        .filter_map(|sv| info(sv, &scene.view.files, rds.bases()))
        .collect())
}
