//! CreateVolume in layout subvolume (docs/decisions.md §13): the volume's
//! file lives in a Btrfs subvolume of its own, `<base>/<id>/volume.img`.
//!
//! Round trips: one batched read (the slot, the NQN, the pool record for its
//! `fs=`, the target file and subvolume, the source), then the subvolume add,
//! then `/disk add`, then one verify. A restore or clone makes a writable
//! snapshot of the source's subvolume and adopts the `volume.img` it brings
//! (`/disk add` without `file-size`), growing it with `/disk set` when the
//! request is larger; it runs detached in the in-flight table like a
//! copy-from, so a retry joins it.
//!
//! Partial states a retry finishes: the subvolume exists but no file or disk
//! (the add is skipped); for a restore, the target subvolume exists with the
//! same parent and its `volume.img` (the snapshot brought it) but no disk.
//! A `volume.img` without a disk in any other case is an orphan: refused,
//! never removed (docs/decisions.md §9.5).

use std::sync::Arc;

use rds_proto::agent::Volume;
use rds_routeros::{
    AllowHosts, Command, DiskPath, DiskRecord, DiskSelector, FileSelector, FileSize, Nqn,
    NvmeExport, PoolName, RegexPattern, Slot, SubvolumeName, SubvolumeRecord, SubvolumeSelector,
};

use crate::btrfs::{Scene, adopt_refused, require_btrfs, slot_too_long};
use crate::error::AgentError;
use crate::flights::Plan;
use crate::layout::{
    DiskKind, Layout, pool_of, snapshot_leaf, subvolume_at, subvolume_file, subvolume_of_file,
    volume_subvolume,
};
use crate::rds::{Rds, decide_after};
use crate::snapshots::inspect_command;
use crate::volumes::{
    CreateSpec, SourceSpec, Volumes, check_limit, created_closed, refuse_shared_nqn, round_size,
};

/// A restore or clone whose source is in the other layout: refused with
/// what to do (the CO's class decides the layout; nothing is converted).
pub fn layout_mismatch(what: &str, id: &Slot) -> AgentError {
    AgentError::InvalidArgument(format!(
        "{what} {id} is in the other volume layout than this request (flat copy-from vs Btrfs \
         subvolume); restore or clone it with a StorageClass of the same volumeLayout"
    ))
}

/// `^<base file name>/<leaf>` as a regex on `/file` names.
fn files_starting(base: &DiskPath, leaf: &str) -> Result<FileSelector, AgentError> {
    Ok(FileSelector::NameMatches(RegexPattern::starts_with(
        &format!("{}/{leaf}", base.file_name()),
    )?))
}

/// `^<subvolume under base>` as a regex on subvolume names.
fn subvolumes_starting(base: &DiskPath, leaf: &str) -> Result<SubvolumeSelector, AgentError> {
    let name = subvolume_at(base, leaf)?;
    Ok(SubvolumeSelector::NameMatches(RegexPattern::starts_with(
        name.as_str(),
    )?))
}

/// The subvolume snapshot `id` (`<base>/<id>.from-<src>` under any base path).
pub fn find_snapshot<'a>(scene: &'a Scene, id: &Slot) -> Option<&'a SubvolumeRecord> {
    scene.subvolumes.iter().find(|s| {
        SubvolumeName::new(&s.name)
            .ok()
            .and_then(|n| snapshot_leaf(&n))
            .is_some_and(|(snap, _)| &snap == id)
    })
}

/// The disk, file and subvolume selections of one batched read.
type Reads = (Vec<DiskSelector>, Vec<FileSelector>, Vec<SubvolumeSelector>);

/// Refuses to fill a copy target that is not ours to fill: a subvolume already there
/// with another parent, or (no subvolume) a leftover file at the volume's path.
fn refuse_foreign_copy_target(
    scene: &Scene,
    have: Option<&SubvolumeRecord>,
    target: &SubvolumeName,
    parent: &SubvolumeName,
    file: &DiskPath,
) -> Result<(), AgentError> {
    if let Some(h) = have
        && h.parent_name() != Some(parent.as_str())
    {
        return Err(AgentError::SlotExists(format!(
            "subvolume {target} already exists (parent {:?}), not a copy of {parent}",
            h.parent_name().unwrap_or(""),
        )));
    }
    if have.is_none() && scene.view.file(file).is_some() {
        return Err(AgentError::OrphanFile {
            path: file.to_string(),
            inspect: inspect_command(file),
        });
    }
    Ok(())
}

/// What a restore/clone copies.
struct Origin {
    parent: SubvolumeName,
    /// The slot the in-flight table guards (snapshot or volume id).
    guard: Slot,
    size: u64,
}

impl Volumes {
    /// The request's layout and owner onto a validated spec (before anything
    /// is sent: a bad owner value is INVALID_ARGUMENT).
    pub fn with_layout_and_owner(
        &self,
        mut spec: CreateSpec,
        layout: i32,
        owner: Option<&rds_proto::agent::VolumeOwner>,
    ) -> Result<CreateSpec, AgentError> {
        spec.layout = Layout::from_proto(layout)?;
        spec.comment = crate::owner_tag::comment_for(owner)?;
        Ok(spec)
    }

    /// The selections a subvolume create reads, besides the slot and NQN.
    fn subvolume_reads(
        &self,
        spec: &CreateSpec,
        pool: &PoolName,
        file: &DiskPath,
        target: &SubvolumeName,
    ) -> Result<Reads, AgentError> {
        let slot = &spec.slot;
        let mut disks = vec![
            DiskSelector::Slot(slot.clone()),
            DiskSelector::Nqn(Nqn::for_volume(slot)),
            DiskSelector::MountPoint(pool.clone()),
        ];
        let mut files = vec![FileSelector::Name(file.clone())];
        let mut subs = vec![SubvolumeSelector::Name(target.clone())];
        match &spec.source {
            None => {}
            Some(SourceSpec::Volume(src)) => {
                disks.push(DiskSelector::Slot(src.clone()));
            }
            Some(SourceSpec::Snapshot(snap)) => {
                // A flat snapshot of this id is named in the refusal.
                disks.push(DiskSelector::Slot(snap.clone()));
                for b in self.rds.bases().paths() {
                    let leaf = format!("{snap}.from-");
                    files.push(files_starting(b, &leaf)?);
                    subs.push(subvolumes_starting(b, &leaf)?);
                }
            }
        }
        Ok((disks, files, subs))
    }

    pub(crate) async fn create_subvolume(&self, spec: &CreateSpec) -> Result<Volume, AgentError> {
        let slot = &spec.slot;
        let pool = pool_of(&spec.base)?;
        let target = volume_subvolume(&spec.base, slot)?;
        let file = subvolume_file(&spec.base, slot)?;
        let export = NvmeExport {
            port: spec.port,
            nqn: Nqn::for_volume(slot),
            allow_hosts: self.defaults.storage_fencing.then(AllowHosts::nobody),
        };
        let (disks, files, subs) = self.subvolume_reads(spec, &pool, &file, &target)?;
        let scene = self
            .rds
            .scene(
                DiskSelector::Any(disks),
                Some(FileSelector::Any(files)),
                subs,
            )
            .await?;
        require_btrfs(&scene, &pool)?;
        if let Some(d) = scene.view.disk(slot) {
            let v = self.existing_for_create(d, spec.size)?;
            if v.layout != Layout::Subvolume.to_proto() {
                return Err(AgentError::SlotExists(format!(
                    "volume {slot} already exists in layout flat"
                )));
            }
            return Ok(v);
        }
        refuse_shared_nqn(&scene.view, slot, &export.nqn)?;
        let have = scene.subvolume(&target).cloned();
        let Some(src) = &spec.source else {
            return self
                .create_empty(spec, &pool, &target, have.is_some(), &scene, file, export)
                .await;
        };
        let origin = self.origin(&scene, src, &pool)?;
        refuse_foreign_copy_target(&scene, have.as_ref(), &target, &origin.parent, &file)?;
        let size = round_size(spec.size.max(origin.size))?;
        check_limit(size, spec.limit)?;
        let work = populate(Populate {
            rds: self.rds.clone(),
            pool,
            target,
            parent: origin.parent,
            make_subvolume: have.is_none(),
            file: file.clone(),
            slot: slot.clone(),
            export,
            comment: spec.comment.clone(),
            size,
            origin_size: origin.size,
            fencing: self.defaults.storage_fencing,
        });
        let f = self.flights.start(
            Plan {
                target: slot.clone(),
                source: origin.guard,
                file_path: file,
                size,
            },
            work,
        );
        self.join(&f, size).await
    }

    /// A new, empty volume: subvolume (unless a partial create left it),
    /// then the file disk in it, then one verify.
    #[allow(clippy::too_many_arguments)]
    async fn create_empty(
        &self,
        spec: &CreateSpec,
        pool: &PoolName,
        target: &SubvolumeName,
        have_subvolume: bool,
        scene: &Scene,
        file: DiskPath,
        export: NvmeExport,
    ) -> Result<Volume, AgentError> {
        let slot = &spec.slot;
        if scene.view.file(&file).is_some() {
            return Err(AgentError::OrphanFile {
                path: file.to_string(),
                inspect: inspect_command(&file),
            });
        }
        if !have_subvolume {
            self.rds.add_subvolume(pool, target, None, false).await?;
        }
        let cmd = Command::DiskAddFile {
            file_path: file,
            file_size: FileSize::new(spec.size)?,
            slot: slot.clone(),
            export: Some(export),
            comment: spec.comment.clone(),
        };
        let sent = self.rds.exec().mutate(&cmd).await;
        if let Err(e) = &sent
            && !e.outcome_unknown()
            && e.reason() != rds_bus::Reason::SlotExists
            && !have_subvolume
        {
            // A definite refusal (slot too long, no space): the subvolume
            // made a moment ago is empty and ours; nothing else refers to it.
            if let Err(rm) = self.rds.remove_subvolume(target).await {
                tracing::warn!(subvolume = %target, error = %rm, "could not remove the empty subvolume of a refused create");
            }
        }
        let sent = sent.map_err(|e| slot_too_long(e, slot));
        decide_after(
            sent,
            |e| e.reason() == rds_bus::Reason::SlotExists,
            self.rds.disk(slot),
            |found, err| self.decide_create(slot, spec.size, found, err),
        )
        .await
    }

    /// The subvolume a restore/clone snapshots, and the source's size.
    fn origin(
        &self,
        scene: &Scene,
        src: &SourceSpec,
        pool: &PoolName,
    ) -> Result<Origin, AgentError> {
        match src {
            SourceSpec::Volume(id) => {
                let d = scene
                    .view
                    .disk(id)
                    .filter(|d| self.rds.kind(d) == DiskKind::Volume)
                    .ok_or_else(|| AgentError::VolumeNotFound(id.to_string()))?;
                let path = DiskPath::new(d.file_path.as_deref().unwrap_or_default())?;
                if Layout::of_file(path.as_str()) != Layout::Subvolume {
                    return Err(layout_mismatch("volume", id));
                }
                let (src_pool, parent) = subvolume_of_file(&path)?;
                same_pool(&src_pool, pool, id)?;
                Ok(Origin {
                    parent,
                    guard: id.clone(),
                    size: d.size.unwrap_or(0),
                })
            }
            SourceSpec::Snapshot(id) => {
                let Some(s) = find_snapshot(scene, id) else {
                    return Err(match scene.view.disk(id) {
                        Some(d) if matches!(self.rds.kind(d), DiskKind::Snapshot { .. }) => {
                            layout_mismatch("snapshot", id)
                        }
                        _ => AgentError::SnapshotNotFound(id.to_string()),
                    });
                };
                let src_pool = PoolName::new(s.fs.as_deref().unwrap_or(pool.as_str()))?;
                same_pool(&src_pool, pool, id)?;
                let img = format!(
                    "{}/{}",
                    s.path.as_deref().unwrap_or(""),
                    crate::layout::VOLUME_IMG
                );
                let size = scene
                    .view
                    .files
                    .iter()
                    .find(|f| format!("/{}", f.name) == img)
                    .and_then(|f| f.size.as_ref())
                    .map_or(0, |h| h.bytes);
                Ok(Origin {
                    parent: SubvolumeName::new(&s.name)?,
                    guard: id.clone(),
                    size,
                })
            }
        }
    }

    /// A flat restore whose snapshot is not a disk: a subvolume snapshot of
    /// that id gets the layout message, anything else NOT_FOUND (one extra
    /// read, on the error path only).
    pub(crate) async fn flat_restore_of_missing(&self, id: &Slot) -> AgentError {
        let mut subs = Vec::new();
        for b in self.rds.bases().paths() {
            match subvolumes_starting(b, &format!("{id}.from-")) {
                Ok(s) => subs.push(s),
                Err(e) => return e,
            }
        }
        match self.rds.subvolumes(subs).await {
            Ok(found) if !found.is_empty() => layout_mismatch("snapshot", id),
            _ => AgentError::SnapshotNotFound(id.to_string()),
        }
    }
}

fn same_pool(src: &PoolName, pool: &PoolName, id: &Slot) -> Result<(), AgentError> {
    if src == pool {
        return Ok(());
    }
    Err(AgentError::InvalidArgument(format!(
        "{id} is on pool {src}, the new volume's base path on {pool}: a Btrfs snapshot stays on its filesystem"
    )))
}

/// Everything the detached restore/clone needs.
struct Populate {
    rds: Arc<Rds>,
    pool: PoolName,
    target: SubvolumeName,
    parent: SubvolumeName,
    make_subvolume: bool,
    file: DiskPath,
    slot: Slot,
    export: NvmeExport,
    comment: Option<rds_routeros::DiskComment>,
    size: u64,
    /// Bytes of the source's file (what the adopted disk starts with).
    origin_size: u64,
    fencing: bool,
}

/// Writable snapshot, adopting `/disk add`, growth, one verify.
async fn populate(p: Populate) -> Result<DiskRecord, AgentError> {
    if p.make_subvolume {
        p.rds
            .add_subvolume(&p.pool, &p.target, Some(&p.parent), false)
            .await?;
    }
    let cmd = Command::DiskAddExisting {
        file_path: p.file.clone(),
        slot: p.slot.clone(),
        export: Some(p.export.clone()),
        comment: p.comment.clone(),
    };
    let sent = p.rds.exec().mutate(&cmd).await;
    let sent = sent.map_err(|e| slot_too_long(adopt_refused(e, &p.file), &p.slot));
    if let Err(e) = &sent
        && matches!(
            e.reason(),
            rds_bus::Reason::RdsPrecondition | rds_bus::Reason::InvalidArgument
        )
        && p.make_subvolume
    {
        // The RDS refused the disk for good: the copy made a moment ago
        // serves nothing (the source is untouched); remove it so no
        // unreferenced data is left behind.
        if let Err(rm) = p.rds.remove_subvolume(&p.target).await {
            tracing::warn!(subvolume = %p.target, error = %rm, "could not remove the copy of a refused restore");
        }
    }
    // Growing right after a clean add saves a verify: one re-read judges
    // both (the adopted file has the source's size).
    let grow = p.size > p.origin_size;
    let sent = match sent {
        Ok(()) if grow => p.rds.exec().mutate(&set_size(&p)?).await,
        other => other,
    };
    let d = decide_after(
        sent,
        |e| e.reason() == rds_bus::Reason::SlotExists,
        p.rds.disk(&p.slot),
        |found, err| match (found, err) {
            (Some(d), None) => created_closed(p.fencing, &d).map(|()| d),
            (Some(d), Some(_)) => Ok(d),
            (None, Some(e)) => Err(e),
            (None, None) => Err(AgentError::Internal(format!(
                "the RDS accepted /disk add of {} but slot {} does not exist",
                p.file, p.slot
            ))),
        },
    )
    .await?;
    if d.size.unwrap_or(0) >= p.size {
        return Ok(d);
    }
    // Only after an ambiguous add (or a set the box ignored): grow, re-read.
    let sent = p.rds.exec().mutate(&set_size(&p)?).await;
    decide_after(
        sent,
        |_| false,
        p.rds.disk(&p.slot),
        |found, err| match (found, err) {
            (Some(d), _) if d.size.unwrap_or(0) >= p.size => Ok(d),
            (_, Some(e)) => Err(e),
            (Some(d), None) => Err(AgentError::Internal(format!(
                "the RDS accepted file-size={} for {} but reports {} bytes",
                p.size,
                p.slot,
                d.size.unwrap_or(0)
            ))),
            (None, None) => Err(AgentError::VolumeNotFound(p.slot.to_string())),
        },
    )
    .await
}

fn set_size(p: &Populate) -> Result<Command, AgentError> {
    Ok(Command::DiskSetFileSize {
        slot: p.slot.clone(),
        file_size: FileSize::new(p.size)?,
    })
}
