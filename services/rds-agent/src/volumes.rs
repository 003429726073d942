//! Volume logic: validation first, then RouterOS commands, idempotent by slot,
//! deciding from the RDS state after every mutation ([`decide_after`]).
//!
//! Round trips (flat layout): CreateVolume is one batched read (the slot, any
//! disk already exporting the NQN, the source, the target file), then
//! `/disk add`, then one verify; DeleteVolume is one batched read (the disk and
//! this id's file under every base path), then `/disk remove` and
//! `/file remove`. No hot path prints every disk, so their cost does not grow
//! with the pool.
//! Layout subvolume (a Btrfs subvolume per volume) is [`crate::btrfs_volumes`];
//! its counts are in docs/decisions.md §13.8.
//!
//! Inputs are validated into rds-routeros newtypes before any command text
//! exists, so nothing unchecked reaches the RDS (docs/safety.md).

use std::sync::Arc;
use std::time::Duration;

use rds_bus::VolumeId;
use rds_proto::agent::{Capacity, Volume};
use rds_routeros::{
    AllowHosts, Command, DiskComment, DiskPath, DiskRecord, DiskSelector, FileSelector, FileSize,
    NO_HOST_NQN, Nqn, NvmeExport, PoolName, Port, Slot, SubvolumeSelector, parse_allow_hosts,
    round_up_mib,
};

use crate::error::AgentError;
use crate::flights::{Flight, Flights, Plan};
use crate::layout::{DiskKind, Layout, volume_file};
use crate::rds::{Rds, View, decide_after};
use crate::snapshots::{ContentSource, NewVolume, SnapshotBackend, inspect_command, wait_budget};
use rds_bus::SNAPSHOT_PREFIX;

/// Defaults applied when a request leaves a field empty.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub base_path: DiskPath,
    pub nvme_port: Port,
    /// NQNs of new volumes must start with this (the managed prefix).
    pub nqn_prefix: String,
    /// How long a call without a deadline waits for a detached copy.
    pub wait_default: Duration,
    /// `--storage-fencing`: volumes are created with their export closed
    /// (the no-host sentinel), never open until the attachment leader's
    /// next pass.
    pub storage_fencing: bool,
}

/// The hosts a disk's export admits, as printed (empty = any host).
fn allow_list(d: &DiskRecord) -> Vec<String> {
    parse_allow_hosts(d.nvme_tcp_server_allow_host_name.as_deref().unwrap_or(""))
}

/// With storage fencing, the re-read after this call's own `/disk add`
/// must show the export closed (the no-host sentinel alone): a box that
/// dropped or rewrote the property would otherwise hand out an export that
/// admits any host while the driver believes it fenced (docs/safety.md).
pub(crate) fn created_closed(fencing: bool, d: &DiskRecord) -> Result<(), AgentError> {
    let got = allow_list(d);
    if !fencing || got == [NO_HOST_NQN] {
        return Ok(());
    }
    Err(AgentError::Internal(format!(
        "volume {} was created with nvme-tcp-server-allow-host-name=\"{NO_HOST_NQN}\" but the \
         RDS reports {got:?}; is the property format different on this RouterOS?",
        d.slot.as_deref().unwrap_or("?")
    )))
}

/// A CreateVolume request after validation.
#[derive(Debug, Clone)]
pub struct CreateSpec {
    pub slot: Slot,
    /// Requested bytes rounded up to 1 MiB (0 = take the source's size).
    pub size: u64,
    pub base: DiskPath,
    pub port: Port,
    pub source: Option<SourceSpec>,
    /// CSI `limit_bytes` (0 = none): a size above it is OUT_OF_RANGE before
    /// anything is created, a restore of a larger source included.
    pub limit: u64,
    /// Flat unless the request asked for a Btrfs subvolume.
    pub layout: Layout,
    /// The ownership tag written to the new disk (docs/decisions.md §13).
    pub comment: Option<DiskComment>,
}

#[derive(Debug, Clone)]
pub enum SourceSpec {
    Snapshot(Slot),
    Volume(Slot),
}

impl SourceSpec {
    fn slot(&self) -> &Slot {
        match self {
            SourceSpec::Snapshot(s) | SourceSpec::Volume(s) => s,
        }
    }
}

pub struct Volumes {
    pub(crate) rds: Arc<Rds>,
    snapshots: Arc<dyn SnapshotBackend>,
    pub(crate) flights: Arc<Flights>,
    pub(crate) defaults: Defaults,
}

/// Refuses a create whose NQN an existing disk of another slot already exports (volume
/// ids that differ only in case map to the same NQN).
pub(crate) fn refuse_shared_nqn(view: &View, slot: &Slot, nqn: &Nqn) -> Result<(), AgentError> {
    if let Some(other) = view
        .disks
        .iter()
        .filter(|d| d.nvme_tcp_server_nqn.as_deref() == Some(nqn.as_str()))
        .find_map(|d| d.slot.as_deref().filter(|s| *s != slot.as_str()))
    {
        return Err(AgentError::SlotExists(format!(
            "volume {slot} would share NQN {nqn} with existing volume {other} (ids differing only in case)"
        )));
    }
    Ok(())
}

/// A volume id from the wire, checked once (the one id grammar, `rds-ids`);
/// its RouterOS slot is the same value, not checked again.
pub fn parse_volume_id(s: &str) -> Result<Slot, AgentError> {
    Ok(Slot::from(VolumeId::parse(s)?))
}

/// A snapshot id from the wire, checked once.
pub fn parse_snapshot_id(s: &str) -> Result<Slot, AgentError> {
    Ok(Slot::from(rds_bus::SnapshotId::parse(s)?))
}

/// Requested bytes → exact bytes rounded up to 1 MiB (docs/routeros.md).
pub fn round_size(bytes: u64) -> Result<u64, AgentError> {
    round_up_mib(bytes).ok_or_else(|| {
        AgentError::OutOfRange(format!("size {bytes} bytes cannot be rounded up to 1 MiB"))
    })
}

impl Volumes {
    pub fn new(
        rds: Arc<Rds>,
        snapshots: Arc<dyn SnapshotBackend>,
        flights: Arc<Flights>,
        defaults: Defaults,
    ) -> Self {
        Volumes {
            rds,
            snapshots,
            flights,
            defaults,
        }
    }

    pub fn rds(&self) -> &Arc<Rds> {
        &self.rds
    }

    pub fn snapshots(&self) -> &Arc<dyn SnapshotBackend> {
        &self.snapshots
    }

    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }

    /// A base path from a request (empty = default): absolute, clean,
    /// `[A-Za-z0-9._/-]` only, and one of (or inside one of) the configured
    /// base paths — files elsewhere are never ours.
    pub fn base_path(&self, requested: &str) -> Result<DiskPath, AgentError> {
        if requested.is_empty() {
            return Ok(self.defaults.base_path.clone());
        }
        let p = DiskPath::new(requested)
            .map_err(|e| AgentError::InvalidArgument(format!("base_path: {e}")))?;
        if !self.rds.bases().allows(&p) {
            let list: Vec<&str> = self
                .rds
                .bases()
                .paths()
                .iter()
                .map(|b| b.as_str())
                .collect();
            return Err(AgentError::InvalidArgument(format!(
                "base_path {p} is not one of the configured base paths ({}); add it to --base-paths to use it",
                list.join(", ")
            )));
        }
        Ok(p)
    }

    pub fn port(&self, requested: u32) -> Result<Port, AgentError> {
        if requested == 0 {
            return Ok(self.defaults.nvme_port);
        }
        Port::new(requested).map_err(|e| AgentError::InvalidArgument(format!("nvme_port: {e}")))
    }

    pub(crate) fn to_volume(d: &DiskRecord) -> Volume {
        Volume {
            volume_id: d.slot.clone().unwrap_or_default(),
            size_bytes: d.size.unwrap_or(0),
            file_path: d.file_path.clone().unwrap_or_default(),
            nvme_export: d.nvme_tcp_export.unwrap_or(false),
            nvme_port: d.nvme_tcp_server_port.map(u32::from).unwrap_or(0),
            nqn: d.nvme_tcp_server_nqn.clone().unwrap_or_default(),
            source_snapshot_id: String::new(),
            source_volume_id: String::new(),
            layout: Layout::of_file(d.file_path.as_deref().unwrap_or_default()).to_proto(),
            owner: crate::owner_tag::parse(d.comment.as_deref()),
        }
    }

    /// The disk of volume `slot` if it exists and is a volume.
    async fn volume_disk(&self, slot: &Slot) -> Result<Option<DiskRecord>, AgentError> {
        Ok(self
            .rds
            .disk(slot)
            .await?
            .filter(|d| self.rds.kind(d) == DiskKind::Volume))
    }

    /// An existing slot seen by CreateVolume: the same volume (big enough) is
    /// success, anything else is ALREADY_EXISTS.
    pub(crate) fn existing_for_create(
        &self,
        d: &DiskRecord,
        size: u64,
    ) -> Result<Volume, AgentError> {
        let slot = d.slot.as_deref().unwrap_or("?");
        match self.rds.kind(d) {
            DiskKind::Volume => {}
            DiskKind::Snapshot { .. } => {
                return Err(AgentError::SlotExists(format!(
                    "slot {slot} is used by a snapshot"
                )));
            }
            DiskKind::Foreign => {
                return Err(AgentError::SlotExists(format!(
                    "slot {slot} is used by a disk this driver did not create ({})",
                    d.file_path.as_deref().unwrap_or("no file")
                )));
            }
        }
        let have = d.size.unwrap_or(0);
        if have < size {
            return Err(AgentError::SlotExists(format!(
                "volume {slot} already exists with {have} bytes, {size} requested"
            )));
        }
        if self.defaults.storage_fencing && allow_list(d).is_empty() {
            return Err(AgentError::Internal(format!(
                "volume {slot} exists but its export admits any host although storage fencing \
                 is on (created before fencing, or the RDS dropped \
                 nvme-tcp-server-allow-host-name); the attachment leader closes it on its next \
                 pass, retry then"
            )));
        }
        Ok(Self::to_volume(d))
    }

    pub fn validate_create(
        &self,
        volume_id: &str,
        size_bytes: u64,
        base_path: &str,
        nvme_port: u32,
        source: Option<SourceSpec>,
    ) -> Result<CreateSpec, AgentError> {
        let slot = parse_volume_id(volume_id)?;
        if slot.as_str().starts_with(SNAPSHOT_PREFIX) {
            return Err(AgentError::InvalidArgument(format!(
                "volume id {slot} uses the snapshot prefix {SNAPSHOT_PREFIX:?}"
            )));
        }
        let nqn = Nqn::for_volume(&slot);
        if !nqn.as_str().starts_with(&self.defaults.nqn_prefix) {
            return Err(AgentError::InvalidArgument(format!(
                "volume id {slot} would be exported as {nqn}, outside the managed NQN prefix {:?}",
                self.defaults.nqn_prefix
            )));
        }
        if size_bytes == 0 && source.is_none() {
            return Err(AgentError::InvalidArgument(
                "size_bytes must be greater than 0".into(),
            ));
        }
        Ok(CreateSpec {
            slot,
            size: round_size(size_bytes)?,
            base: self.base_path(base_path)?,
            port: self.port(nvme_port)?,
            source,
            limit: 0,
            layout: Layout::Flat,
            comment: None,
        })
    }

    pub async fn create(&self, spec: CreateSpec) -> Result<Volume, AgentError> {
        let mut v = self.create_inner(&spec).await?;
        fill_source(&mut v, &spec.source);
        Ok(v)
    }

    async fn create_inner(&self, spec: &CreateSpec) -> Result<Volume, AgentError> {
        let slot = &spec.slot;
        if let Some(f) = self.flights.get(slot) {
            return self.join(&f, spec.size).await;
        }
        if spec.layout == Layout::Subvolume {
            return self.create_subvolume(spec).await;
        }
        let file_path = volume_file(&spec.base, slot)?;
        let export = NvmeExport {
            port: spec.port,
            nqn: Nqn::for_volume(slot),
            allow_hosts: self.defaults.storage_fencing.then(AllowHosts::nobody),
        };
        let mut sel = vec![
            DiskSelector::Slot(slot.clone()),
            DiskSelector::Nqn(export.nqn.clone()),
        ];
        if let Some(src) = &spec.source {
            sel.push(DiskSelector::Slot(src.slot().clone()));
        }
        let view = self
            .rds
            .view(
                DiskSelector::Any(sel),
                Some(FileSelector::Name(file_path.clone())),
            )
            .await?;
        if let Some(d) = view.disk(slot) {
            return self.existing_for_create(d, spec.size);
        }
        refuse_shared_nqn(&view, slot, &export.nqn)?;
        if view.file(&file_path).is_some() {
            return Err(AgentError::OrphanFile {
                path: file_path.to_string(),
                inspect: inspect_command(&file_path),
            });
        }
        let Some(src) = &spec.source else {
            return self.create_empty_flat(spec, file_path, export).await;
        };
        let (from, from_size) = self.flat_source(&view, src).await?;
        // A restore is at least as big as its source.
        let size = round_size(spec.size.max(from_size))?;
        check_limit(size, spec.limit)?;
        let new = NewVolume {
            slot: slot.clone(),
            file_path: file_path.clone(),
            size: FileSize::new(size)?,
            export,
            comment: spec.comment.clone(),
        };
        let work = self.copy_work(from, new);
        let f = self.flights.start(
            Plan {
                target: slot.clone(),
                source: src.slot().clone(),
                file_path,
                size,
            },
            work,
        );
        self.join(&f, size).await
    }

    /// A new, empty flat volume: one `/disk add`, decided by a re-read when its reply is
    /// lost or says the slot exists.
    async fn create_empty_flat(
        &self,
        spec: &CreateSpec,
        file_path: DiskPath,
        export: NvmeExport,
    ) -> Result<Volume, AgentError> {
        let slot = &spec.slot;
        let cmd = Command::DiskAddFile {
            file_path,
            file_size: FileSize::new(spec.size)?,
            slot: slot.clone(),
            export: Some(export),
            comment: spec.comment.clone(),
        };
        let sent = self.rds.exec().mutate(&cmd).await;
        let sent = sent.map_err(|e| crate::btrfs::slot_too_long(e, slot));
        decide_after(
            sent,
            |e| e.reason() == rds_bus::Reason::SlotExists,
            self.rds.disk(slot),
            |found, err| self.decide_create(slot, spec.size, found, err),
        )
        .await
    }

    /// The flat disk a restore or clone copies from, and its size; a source in the
    /// other layout or missing is refused.
    async fn flat_source(
        &self,
        view: &View,
        src: &SourceSpec,
    ) -> Result<(ContentSource, u64), AgentError> {
        match src {
            SourceSpec::Snapshot(id) => match view.disk(id) {
                Some(d) if matches!(self.rds.kind(d), DiskKind::Snapshot { .. }) => {
                    Ok((ContentSource::Snapshot(id.clone()), d.size.unwrap_or(0)))
                }
                _ => Err(self.flat_restore_of_missing(id).await),
            },
            SourceSpec::Volume(id) => match view.disk(id) {
                Some(d)
                    if self.rds.kind(d) == DiskKind::Volume
                        && Layout::of_file(d.file_path.as_deref().unwrap_or_default())
                            == Layout::Subvolume =>
                {
                    Err(crate::btrfs_volumes::layout_mismatch("volume", id))
                }
                Some(d) if self.rds.kind(d) == DiskKind::Volume => {
                    Ok((ContentSource::Volume(id.clone()), d.size.unwrap_or(0)))
                }
                _ => Err(AgentError::VolumeNotFound(id.to_string())),
            },
        }
    }

    /// The detached copy into `new`: populate from `from`, then decide by a re-read
    /// of the target slot.
    fn copy_work(
        &self,
        from: ContentSource,
        new: NewVolume,
    ) -> impl Future<Output = Result<DiskRecord, AgentError>> + Send + 'static {
        let (rds, backend, target) = (self.rds.clone(), self.snapshots.clone(), new.slot.clone());
        let fencing = self.defaults.storage_fencing;
        async move {
            let sent = backend.populate(&from, &new).await;
            decide_after(
                sent,
                |e| e.reason() == rds_bus::Reason::SlotExists,
                rds.disk(&target),
                |found, err| match (found, err) {
                    (Some(d), None) => created_closed(fencing, &d).map(|()| d),
                    (Some(d), Some(_)) => Ok(d),
                    (None, Some(e)) => Err(e),
                    (None, None) => Err(AgentError::Internal(format!(
                        "the RDS accepted the copy but slot {target} does not exist"
                    ))),
                },
            )
            .await
        }
    }

    /// Waits for a running copy into this slot within the call's time:
    /// done → decided like any existing slot; still running → ABORTED
    /// (OPERATION_PENDING), and the CO's retry joins it again.
    pub(crate) async fn join(&self, f: &Flight, size: u64) -> Result<Volume, AgentError> {
        match f.wait(wait_budget(self.defaults.wait_default)).await {
            None => Err(AgentError::Pending(f.describe())),
            Some(Err(e)) => Err(e),
            Some(Ok(d)) => self.existing_for_create(&d, size.min(f.size)),
        }
    }

    /// After `/disk add` (via [`decide_after`]): the slot must now hold a
    /// compatible volume; a silent success without one is a bug of the box.
    pub(crate) fn decide_create(
        &self,
        slot: &Slot,
        size: u64,
        found: Option<DiskRecord>,
        err: Option<AgentError>,
    ) -> Result<Volume, AgentError> {
        match (found, err) {
            (Some(d), None) => {
                created_closed(self.defaults.storage_fencing, &d)?;
                self.existing_for_create(&d, size)
            }
            (Some(d), Some(_)) => self.existing_for_create(&d, size),
            (None, Some(e)) => Err(e),
            (None, None) => Err(AgentError::Internal(format!(
                "the RDS accepted /disk add but slot {slot} does not exist"
            ))),
        }
    }

    /// DeleteVolume: one read of the disk, of this id's file and of its
    /// subvolume under every base path, then the disk entry, then its file
    /// or (layout subvolume) its subvolume with the file inside. A retry
    /// after a partial delete (disk gone, file or subvolume left) sees what
    /// is left and removes it. The base path of the request is only a hint
    /// (all configured ones are read). Snapshots of a subvolume volume are
    /// subvolumes of their own and stay. Missing → `Ok(false)`.
    pub async fn delete(&self, slot: &Slot) -> Result<bool, AgentError> {
        if let Some(f) = self.flights.touching(slot) {
            return Err(AgentError::Pending(f.describe()));
        }
        let (mut files, mut subs) = (Vec::new(), Vec::new());
        for b in self.rds.bases().paths() {
            files.push(FileSelector::Name(volume_file(b, slot)?));
            files.push(FileSelector::Name(crate::layout::subvolume_file(b, slot)?));
            subs.push(SubvolumeSelector::Name(crate::layout::volume_subvolume(
                b, slot,
            )?));
        }
        let scene = self
            .rds
            .scene(
                DiskSelector::Slot(slot.clone()),
                Some(FileSelector::Any(files)),
                subs,
            )
            .await?;
        let view = &scene.view;
        match view.disk(slot) {
            Some(d) => match self.rds.kind(d) {
                DiskKind::Volume => {
                    // kind_of guarantees a valid path named <slot>.img or
                    // <slot>/volume.img under a base path.
                    let file = DiskPath::new(d.file_path.as_deref().unwrap_or_default())?;
                    self.rds.remove_disk(slot).await?;
                    match Layout::of_file(file.as_str()) {
                        Layout::Flat => self.rds.remove_file(&file).await?,
                        Layout::Subvolume => {
                            let (_, sv) = crate::layout::subvolume_of_file(&file)?;
                            self.rds.remove_subvolume(&sv).await?;
                        }
                    }
                    Ok(true)
                }
                other => {
                    tracing::warn!(slot = %slot, kind = ?other, "DeleteVolume of a slot that is not a volume: left alone");
                    Ok(false)
                }
            },
            None => {
                let mut removed = false;
                for sv in &scene.subvolumes {
                    let name = rds_routeros::SubvolumeName::new(&sv.name)?;
                    tracing::info!(subvolume = %name, "removing the subvolume of a half-deleted volume");
                    self.rds.remove_subvolume(&name).await?;
                    removed = true;
                }
                for f in &view.files {
                    let file = DiskPath::new(&format!("/{}", f.name))?;
                    let in_removed = scene.subvolumes.iter().any(|sv| {
                        sv.path
                            .as_deref()
                            .is_some_and(|p| file.as_str().starts_with(&format!("{p}/")))
                    });
                    if in_removed {
                        continue;
                    }
                    tracing::info!(file = %file, "removing the backing file of a half-deleted volume");
                    self.rds.remove_file(&file).await?;
                    removed = true;
                }
                Ok(removed)
            }
        }
    }

    pub async fn get(&self, slot: &Slot) -> Result<Volume, AgentError> {
        self.volume_disk(slot)
            .await?
            .map(|d| Self::to_volume(&d))
            .ok_or_else(|| AgentError::VolumeNotFound(slot.to_string()))
    }

    pub async fn list(&self) -> Result<Vec<Volume>, AgentError> {
        let mut v: Vec<Volume> = self
            .rds
            .file_disks()
            .await?
            .iter()
            .filter(|d| self.rds.kind(d) == DiskKind::Volume)
            .map(Self::to_volume)
            .collect();
        v.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
        Ok(v)
    }

    /// Grows the backing file; equal is idempotent, smaller is OUT_OF_RANGE.
    pub async fn expand(&self, slot: &Slot, size_bytes: u64) -> Result<Volume, AgentError> {
        if size_bytes == 0 {
            return Err(AgentError::InvalidArgument(
                "size_bytes must be greater than 0".into(),
            ));
        }
        let size = round_size(size_bytes)?;
        let d = self
            .volume_disk(slot)
            .await?
            .ok_or_else(|| AgentError::VolumeNotFound(slot.to_string()))?;
        let have = d.size.unwrap_or(0);
        if size == have {
            return Ok(Self::to_volume(&d));
        }
        if size < have {
            return Err(AgentError::OutOfRange(format!(
                "volume {slot} has {have} bytes; shrinking to {size} is not supported"
            )));
        }
        let cmd = Command::DiskSetFileSize {
            slot: slot.clone(),
            file_size: FileSize::new(size)?,
        };
        let sent = self.rds.exec().mutate(&cmd).await;
        decide_after(
            sent,
            |_| false,
            self.volume_disk(slot),
            |now, err| match (now, err) {
                (Some(d), _) if d.size.unwrap_or(0) >= size => Ok(Self::to_volume(&d)),
                (Some(d), None) => Err(AgentError::Internal(format!(
                    "the RDS accepted file-size={size} for {slot} but still reports {} bytes",
                    d.size.unwrap_or(0)
                ))),
                (None, None) => Err(AgentError::VolumeNotFound(slot.to_string())),
                (_, Some(e)) => Err(e),
            },
        )
        .await
    }

    /// Capacity of the pool holding `base` (first path component), from raw
    /// `size=`/`free=`.
    pub async fn capacity(&self, base_path: &str) -> Result<Capacity, AgentError> {
        let pool = if base_path.is_empty() {
            self.rds.pool().clone()
        } else {
            let p = self.base_path(base_path)?;
            let first = p
                .as_str()
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("");
            PoolName::new(first)?
        };
        let rec = self.rds.pool_record(&pool).await?.ok_or_else(|| {
            AgentError::Internal(format!("no pool with mount-point {pool:?} on the RDS"))
        })?;
        Ok(Capacity {
            total_bytes: rec.size.unwrap_or(0),
            free_bytes: rec.free.unwrap_or(0),
        })
    }
}

fn fill_source(v: &mut Volume, source: &Option<SourceSpec>) {
    // Only known for volumes created in this call or retried with the same
    // request; RouterOS keeps no record of it (proto: "may be empty").
    match source {
        Some(SourceSpec::Snapshot(s)) => v.source_snapshot_id = s.to_string(),
        Some(SourceSpec::Volume(s)) => v.source_volume_id = s.to_string(),
        None => {}
    }
}

/// OUT_OF_RANGE when `size` (rounded) exceeds `limit` (0 = no limit).
pub fn check_limit(size: u64, limit: u64) -> Result<(), AgentError> {
    if limit > 0 && size > limit {
        return Err(AgentError::OutOfRange(format!(
            "{size} bytes (whole MiB) is more than limit_bytes {limit}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::sim_rds::{SimFault, SimRds};
    use crate::snapshots::CopyFromBackend;
    use crate::testing::{FakeFault, FakeRds};
    use rds_bus::Reason;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    fn backend(rds: &Arc<Rds>, flights: &Arc<Flights>) -> Arc<CopyFromBackend> {
        Arc::new(CopyFromBackend::new(
            rds.clone(),
            flights.clone(),
            Duration::from_secs(60),
            Duration::from_secs(5),
        ))
    }

    /// rds-sim in-process over real SSH (the default for these tests).
    async fn setup() -> (Arc<SimRds>, Volumes) {
        let sim = SimRds::start().await;
        let v = volumes(sim.executor());
        (sim, v)
    }

    /// The in-memory [`FakeRds`], only where a test needs a reply no
    /// RouterOS emulator gives (said in the test).
    fn fake_setup() -> (Arc<FakeRds>, Volumes) {
        let fake = FakeRds::new();
        let v = volumes(fake.executor());
        (fake, v)
    }

    fn volumes(exec: Arc<crate::executor::Executor>) -> Volumes {
        let bases = crate::layout::BasePaths::new(vec![
            DiskPath::new("/storage-pool/metal-csi").unwrap(),
            DiskPath::new("/storage-pool/other-class").unwrap(),
        ])
        .unwrap();
        let rds = Arc::new(Rds::new(exec, PoolName::default(), bases));
        let flights = Arc::new(Flights::default());
        Volumes::new(
            rds.clone(),
            backend(&rds, &flights),
            flights,
            Defaults {
                base_path: DiskPath::new("/storage-pool/metal-csi").unwrap(),
                nvme_port: Port::NVME_TCP_DEFAULT,
                nqn_prefix: "nqn.2000-02.com.mikrotik:".into(),
                wait_default: Duration::from_secs(5),
                storage_fencing: false,
            },
        )
    }

    async fn create(v: &Volumes, id: &str, size: u64) -> Result<Volume, AgentError> {
        let spec = v.validate_create(id, size, "", 0, None)?;
        v.create(spec).await
    }

    fn adds(log: &[String]) -> usize {
        log.iter().filter(|c| c.starts_with("/disk add")).count()
    }

    #[tokio::test]
    async fn sizes_round_up_to_whole_mib_and_report_raw_size() {
        let (fake, v) = setup().await;
        for (id, req, want) in [
            ("pvc-a", GIB, GIB),
            ("pvc-b", GIB + GIB / 2, GIB + GIB / 2),
            ("pvc-c", GIB + 1, GIB + MIB),
            ("pvc-d", 10 << 40, 10 << 40),
        ] {
            let vol = create(&v, id, req).await.unwrap();
            assert_eq!(vol.size_bytes, want, "{id}");
            assert_eq!(fake.disk(id).unwrap().size, Some(want));
            assert_eq!(vol.nqn, format!("nqn.2000-02.com.mikrotik:{id}"));
            assert_eq!(vol.file_path, format!("/storage-pool/metal-csi/{id}.img"));
            assert!(vol.nvme_export);
            assert_eq!(vol.nvme_port, 4420);
        }
        for exact in [
            "file-size=1610612736 ",
            "file-size=1074790400 ",
            "file-size=10995116277760 ",
        ] {
            assert!(
                fake.log().iter().any(|c| c.contains(exact)),
                "exact bytes are sent ({exact}): {:?}",
                fake.log()
            );
        }
    }

    #[tokio::test]
    async fn create_is_idempotent_by_slot_both_ways() {
        let (fake, v) = setup().await;
        create(&v, "pvc-x", 2 * GIB).await.unwrap();
        let again = create(&v, "pvc-x", 2 * GIB).await.unwrap();
        assert_eq!(again.size_bytes, 2 * GIB);
        let smaller = create(&v, "pvc-x", GIB).await.unwrap();
        assert_eq!(
            smaller.size_bytes,
            2 * GIB,
            "an existing bigger volume is compatible"
        );
        let err = create(&v, "pvc-x", 3 * GIB).await.unwrap_err();
        assert_eq!(err.reason(), Reason::SlotExists);
        assert_eq!(adds(&fake.log()), 1);
    }

    #[tokio::test]
    async fn dropped_after_effect_is_decided_by_rereading() {
        let (fake, v) = setup().await;
        fake.fault("disk add", SimFault::DropAfterEffect);
        let vol = create(&v, "pvc-y", GIB).await.unwrap();
        assert_eq!(vol.size_bytes, GIB);
        assert_eq!(adds(&fake.log()), 1, "never re-sent");
    }

    #[tokio::test]
    async fn dropped_before_effect_fails_unavailable_then_retry_creates_once() {
        let (fake, v) = setup().await;
        fake.fault("disk add", SimFault::DropBeforeEffect);
        let err = create(&v, "pvc-z", GIB).await.unwrap_err();
        assert_eq!(err.reason(), Reason::RdsUnreachable);
        assert!(fake.slots().is_empty());
        create(&v, "pvc-z", GIB).await.unwrap();
        assert_eq!(fake.slots(), vec!["pvc-z".to_owned()]);
    }

    #[tokio::test]
    async fn garbled_or_wrong_exit_status_after_effect_still_succeed() {
        // Stays on FakeRds: it needs a `/disk add` that takes effect and then
        // answers arbitrary non-RouterOS text with exit status 0; rds-sim's
        // garbles reshape real output (line endings, widths, log lines) but
        // never replace a reply with garbage.
        let (fake, v) = fake_setup();
        fake.fault("disk add", FakeFault::GarbleAfterEffect);
        create(&v, "pvc-g", GIB).await.unwrap();
        fake.fault("disk add", FakeFault::ExitStatus(1));
        create(&v, "pvc-h", GIB).await.unwrap();
        assert_eq!(adds(&fake.log()), 2);
    }

    #[tokio::test]
    async fn duplicate_slot_error_from_a_concurrent_create_is_success_if_compatible() {
        let (fake, v) = setup().await;
        let dup = || AgentError::RouterOs {
            verb: "disk add",
            error: rds_routeros::classify_error("failure: item with such name already exists")
                .unwrap(),
        };
        // Another agent created the slot between our print and our add.
        let spec = v.validate_create("pvc-c", GIB, "", 0, None).unwrap();
        fake.seed_disk(
            "pvc-c",
            "/storage-pool/metal-csi/pvc-c.img",
            GIB,
            Some((4420, "nqn.2000-02.com.mikrotik:pvc-c")),
        );
        let decide = |spec: CreateSpec| {
            let v = &v;
            async move {
                decide_after(
                    Err(dup()),
                    |e| e.reason() == Reason::SlotExists,
                    v.rds().disk(&spec.slot),
                    |f, e| v.decide_create(&spec.slot, spec.size, f, e),
                )
                .await
            }
        };
        let res = decide(spec).await.unwrap();
        assert_eq!(res.volume_id, "pvc-c");
        // ... with a smaller size: ALREADY_EXISTS.
        let spec = v.validate_create("pvc-c", 2 * GIB, "", 0, None).unwrap();
        let err = decide(spec).await.unwrap_err();
        assert_eq!(err.reason(), Reason::SlotExists);
    }

    #[tokio::test]
    async fn disk_full_is_capacity_exhausted_and_creates_nothing() {
        let (fake, v) = setup().await;
        fake.fault(
            "disk add",
            SimFault::Text("failure: not enough space".into()),
        );
        let err = create(&v, "pvc-f", GIB).await.unwrap_err();
        assert_eq!(err.reason(), Reason::CapacityExhausted);
        assert!(fake.slots().is_empty());
    }

    #[tokio::test]
    async fn delete_removes_disk_and_file_and_orphans() {
        let (fake, v) = setup().await;
        create(&v, "pvc-d", GIB).await.unwrap();
        let slot = Slot::new("pvc-d").unwrap();
        assert!(v.delete(&slot).await.unwrap());
        assert!(fake.slots().is_empty());
        assert!(fake.files().is_empty());
        assert!(
            !v.delete(&slot).await.unwrap(),
            "missing = OK, existed=false"
        );
        fake.seed_file("storage-pool/metal-csi/pvc-d.img", GIB);
        assert!(v.delete(&slot).await.unwrap(), "orphan removed");
        assert!(fake.files().is_empty());
        // A foreign disk under the same slot grammar is never touched.
        fake.seed_disk("nixos-root", "/storage-pool/nixos/root.img", GIB, None);
        let foreign = Slot::new("nixos-root").unwrap();
        assert!(!v.delete(&foreign).await.unwrap());
        assert_eq!(fake.slots(), vec!["nixos-root".to_owned()]);
        assert_eq!(
            v.get(&foreign).await.unwrap_err().reason(),
            Reason::VolumeNotFound
        );
    }

    #[tokio::test]
    async fn delete_after_ambiguous_remove_rereads() {
        let (fake, v) = setup().await;
        create(&v, "pvc-r", GIB).await.unwrap();
        fake.fault("disk remove", SimFault::DropAfterEffect);
        assert!(v.delete(&Slot::new("pvc-r").unwrap()).await.unwrap());
        assert!(fake.slots().is_empty() && fake.files().is_empty());
    }

    #[tokio::test]
    async fn expand_grows_never_shrinks() {
        let (_fake, v) = setup().await;
        create(&v, "pvc-e", GIB).await.unwrap();
        let slot = Slot::new("pvc-e").unwrap();
        let vol = v.expand(&slot, GIB + GIB / 2 + 1).await.unwrap();
        assert_eq!(vol.size_bytes, GIB + GIB / 2 + MIB);
        let same = v.expand(&slot, GIB + GIB / 2 + 1).await.unwrap();
        assert_eq!(same.size_bytes, vol.size_bytes);
        assert_eq!(
            v.expand(&slot, GIB).await.unwrap_err().reason(),
            Reason::OutOfRange
        );
        let missing = Slot::new("pvc-missing").unwrap();
        assert_eq!(
            v.expand(&missing, GIB).await.unwrap_err().reason(),
            Reason::VolumeNotFound
        );
    }

    #[tokio::test]
    async fn bad_inputs_never_reach_the_rds() {
        let (fake, v) = setup().await;
        let long = "a".repeat(200);
        for id in [
            "",
            "a\"b",
            "a;b",
            "a$b",
            "a\\b",
            "a[b",
            "a\nb",
            "/system reboot",
            long.as_str(),
            "snap-x",
        ] {
            let err = create(&v, id, GIB).await.unwrap_err();
            assert_eq!(err.reason(), Reason::InvalidArgument, "{id:?}");
        }
        for base in [
            "/storage-pool/x;y",
            "/etc",
            "relative",
            "/storage-pool/../etc",
            "/storage-pool/a b",
        ] {
            let err = v.validate_create("pvc-1", GIB, base, 0, None).unwrap_err();
            assert_eq!(err.reason(), Reason::InvalidArgument, "{base:?}");
        }
        assert!(v.validate_create("pvc-1", 0, "", 0, None).is_err());
        assert!(v.validate_create("pvc-1", GIB, "", 70000, None).is_err());
        assert_eq!(
            v.validate_create("pvc-1", u64::MAX, "", 0, None)
                .unwrap_err()
                .reason(),
            Reason::OutOfRange
        );
        assert!(fake.log().is_empty(), "nothing was sent: {:?}", fake.log());
    }

    #[tokio::test]
    async fn snapshot_lifecycle_keeps_its_source_and_restores() {
        let (fake, v) = setup().await;
        let base = DiskPath::new("/storage-pool/metal-csi").unwrap();
        create(&v, "pvc-src", 2 * GIB).await.unwrap();
        let snap = Slot::new("snap-1").unwrap();
        let src = Slot::new("pvc-src").unwrap();
        let s = v.snapshots().create(&snap, &src, &base).await.unwrap();
        assert_eq!(s.source.as_ref(), Some(&src));
        assert_eq!(s.size, 2 * GIB);
        assert!(s.created_unix.is_some());
        // A fresh backend (agent restart) still knows the source.
        let fresh = backend(v.rds(), &Arc::new(Flights::default()));
        let again = fresh.get(&snap).await.unwrap().unwrap();
        assert_eq!(again.source.as_ref(), Some(&src));
        assert_eq!(again.created_unix, s.created_unix);
        // Retry with the same source: OK; another source: ALREADY_EXISTS.
        v.snapshots().create(&snap, &src, &base).await.unwrap();
        create(&v, "pvc-other", GIB).await.unwrap();
        let other = Slot::new("pvc-other").unwrap();
        let err = v
            .snapshots()
            .create(&snap, &other, &base)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::SlotExists);
        // Missing source.
        let err = v
            .snapshots()
            .create(
                &Slot::new("snap-2").unwrap(),
                &Slot::new("pvc-nope").unwrap(),
                &base,
            )
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::VolumeNotFound);
        // Listing does not show snapshots as volumes and vice versa.
        let vols: Vec<String> = v
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.volume_id)
            .collect();
        assert_eq!(vols, vec!["pvc-other", "pvc-src"]);
        let snaps = v.snapshots().list().await.unwrap();
        assert_eq!(snaps.len(), 1);
        assert_eq!(snaps[0].created_unix, s.created_unix);
        // Restore: at least the snapshot's size, exported with its own NQN.
        let spec = v
            .validate_create(
                "pvc-restored",
                GIB,
                "",
                0,
                Some(SourceSpec::Snapshot(snap.clone())),
            )
            .unwrap();
        let r = v.create(spec).await.unwrap();
        assert_eq!(r.size_bytes, 2 * GIB);
        assert_eq!(r.source_snapshot_id, "snap-1");
        assert_eq!(r.nqn, "nqn.2000-02.com.mikrotik:pvc-restored");
        // Volume ops on the snapshot slot are refused / not found.
        assert_eq!(
            v.get(&snap).await.unwrap_err().reason(),
            Reason::VolumeNotFound
        );
        assert_eq!(
            create(&v, "snap-1", GIB).await.unwrap_err().reason(),
            Reason::InvalidArgument
        );
        // Delete snapshot: disk and file gone; again → false.
        assert!(v.snapshots().delete(&snap).await.unwrap());
        assert!(!v.snapshots().delete(&snap).await.unwrap());
        assert!(
            !fake.files().iter().any(|f| f.contains("snap-1")),
            "{:?}",
            fake.files()
        );
    }

    #[tokio::test]
    async fn go_driver_snapshot_has_unknown_source_and_is_accepted_on_retry() {
        let (fake, v) = setup().await;
        let base = DiskPath::new("/storage-pool/metal-csi").unwrap();
        create(&v, "pvc-src", GIB).await.unwrap();
        fake.seed_disk("snap-go", "/storage-pool/metal-csi/snap-go.img", GIB, None);
        let s = v
            .snapshots()
            .create(
                &Slot::new("snap-go").unwrap(),
                &Slot::new("pvc-src").unwrap(),
                &base,
            )
            .await
            .unwrap();
        assert_eq!(s.source, None);
        assert_eq!(adds(&fake.log()), 1, "no second copy");
    }

    #[tokio::test]
    async fn capacity_is_raw_pool_size_and_free() {
        // Strict space: a file counts with its full size from creation, so
        // free differs from size by exactly what was created.
        let fake = SimRds::start_with(|c| c.behaviour.space = rds_sim::SpaceMode::Strict).await;
        let v = volumes(fake.executor());
        create(&v, "pvc-a", 3 * GIB).await.unwrap();
        let c = v.capacity("").await.unwrap();
        assert_eq!(c.total_bytes, fake.pool_size);
        assert_eq!(c.free_bytes, fake.pool_size - 3 * GIB);
        assert_eq!(
            v.capacity("/other/x").await.unwrap_err().reason(),
            Reason::InvalidArgument
        );
    }
}
