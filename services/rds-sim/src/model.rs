//! The device model (docs/routeros.md §9): disks ordered by internal id, the pool, file ids, and
//! every `/disk` and `/file` mutation with RouterOS semantics. Pure over a [`Store`]; errors
//! are RouterOS text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{
    Behaviour, CopyFromMode, DuplicateNqnMode, ExistingFileMode, LiveFileRemoveMode,
    MissingParentMode, SetFileSizeMode, SlotLimit, SpaceMode,
};
use crate::diskindex::DiskIndex;
use crate::fileindex::Change;
use crate::store::{FileKind, Store, normalise};

/// The pool's name (slot, mount point, fs label, `/file` root).
pub const POOL: &str = "storage-pool";

/// A file disk as a test sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiskSummary {
    /// Internal id as printed (`*2`).
    pub id: String,
    /// `slot`.
    pub slot: String,
    /// `file-path` as given at creation.
    pub file_path: String,
    /// `file-size` in bytes.
    pub size: u64,
    /// `nvme-tcp-server-nqn` as set (may be empty).
    pub nqn: String,
    /// The NQN actually exported (the slot when `nqn` is empty).
    pub effective_nqn: String,
    /// `nvme-tcp-export`.
    pub export: bool,
    /// `nvme-tcp-server-port`.
    pub port: u16,
    /// `comment` ("" when none).
    pub comment: String,
}

/// Settable properties of a `type=file` disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileDisk {
    pub file_path: String,
    pub file_size: u64,
    pub file_offset: u64,
    pub mount_filesystem: bool,
    pub mount_read_only: bool,
    pub compress: bool,
    pub swap: bool,
    pub nvme_tcp_export: bool,
    pub nvme_tcp_server_port: u16,
    pub nvme_tcp_server_nqn: String,
    pub nvme_tcp_server_allow_host_name: String,
    pub nvme_tcp_server_password: String,
    pub iscsi_export: bool,
    pub nfs_sharing: bool,
    pub smb_sharing: bool,
    pub media_sharing: bool,
    pub media_interface: String,
}

impl Default for FileDisk {
    fn default() -> Self {
        Self {
            file_path: String::new(),
            file_size: 0,
            file_offset: 0,
            mount_filesystem: true,
            mount_read_only: false,
            compress: false,
            swap: false,
            nvme_tcp_export: false,
            nvme_tcp_server_port: 4420,
            nvme_tcp_server_nqn: String::new(),
            nvme_tcp_server_allow_host_name: String::new(),
            nvme_tcp_server_password: String::new(),
            iscsi_export: false,
            nfs_sharing: false,
            smb_sharing: false,
            media_sharing: false,
            media_interface: "none".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DiskKind {
    /// The Btrfs-on-RAID pool `storage-pool`.
    Pool,
    /// A `type=file` disk.
    File(FileDisk),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Disk {
    pub id: u64,
    pub slot: String,
    #[serde(default)]
    pub disabled: bool,
    /// `comment` ("" = none; printed as a `;;;` line).
    #[serde(default)]
    pub comment: String,
    pub kind: DiskKind,
}

impl Disk {
    pub(crate) fn file(&self) -> Option<&FileDisk> {
        match &self.kind {
            DiskKind::File(f) => Some(f),
            DiskKind::Pool => None,
        }
    }

    /// The exported NQN (RouterOS: the slot when no NQN is set, docs/routeros.md §4.12).
    pub(crate) fn effective_nqn(&self) -> Option<(u16, String)> {
        let f = self.file()?;
        if !f.nvme_tcp_export || self.disabled {
            return None;
        }
        let nqn = if f.nvme_tcp_server_nqn.is_empty() {
            self.slot.clone()
        } else {
            f.nvme_tcp_server_nqn.clone()
        };
        Some((f.nvme_tcp_server_port, nqn))
    }
}

/// Persisted state (`state.json`). Files themselves live in the store.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct State {
    pub next_disk_id: u64,
    pub next_file_id: u64,
    pub disks: Vec<Disk>,
    pub file_ids: BTreeMap<String, u64>,
    pub identity: Option<String>,
    /// Subvolumes of the pool (`/disk/btrfs/subvolume`).
    #[serde(default)]
    pub btrfs: crate::subvol::BtrfsState,
    /// Disk lookups by slot, NQN and path; rebuilt after loading ([`Device::disk_lookup`]).
    #[serde(skip)]
    pub disk_index: DiskIndex,
}

impl State {
    pub(crate) fn fresh() -> Self {
        Self {
            next_disk_id: 2,
            next_file_id: 1,
            disks: vec![Disk {
                id: 1,
                slot: POOL.into(),
                disabled: false,
                comment: String::new(),
                kind: DiskKind::Pool,
            }],
            file_ids: BTreeMap::new(),
            identity: None,
            btrfs: crate::subvol::BtrfsState::default(),
            disk_index: DiskIndex::default(),
        }
    }
}

/// Pool usage numbers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolUsage {
    pub total: u64,
    pub used: u64,
}

impl PoolUsage {
    pub(crate) fn free(&self) -> u64 {
        self.total.saturating_sub(self.used)
    }
    pub(crate) fn use_percent(&self) -> u8 {
        if self.total == 0 {
            return 100;
        }
        let pct =
            (u128::from(self.used) * 100 + u128::from(self.total) / 2) / u128::from(self.total);
        u8::try_from(pct.min(100)).unwrap_or(100)
    }
}

/// The `/file` listing with ids.
#[derive(Clone, Debug)]
pub(crate) struct FileItem {
    pub id: u64,
    pub info: crate::store::FileInfo,
}

/// A device operation context: state + store + behaviour.
pub(crate) struct Device<'a> {
    pub state: &'a mut State,
    pub store: &'a Store,
    pub behaviour: &'a Behaviour,
    pub pool_size: u64,
    /// Set by every change that must reach `state.json`.
    pub dirty: bool,
}

/// Parsed `/disk add|set` arguments (all optional, validated).
#[derive(Clone, Debug, Default)]
pub(crate) struct DiskArgs {
    pub slot: Option<String>,
    pub comment: Option<String>,
    pub file_path: Option<String>,
    pub file_size: Option<u64>,
    pub file_offset: Option<u64>,
    pub disabled: Option<bool>,
    pub mount_filesystem: Option<bool>,
    pub mount_read_only: Option<bool>,
    pub compress: Option<bool>,
    pub swap: Option<bool>,
    pub nvme_tcp_export: Option<bool>,
    pub nvme_tcp_server_port: Option<u16>,
    pub nvme_tcp_server_nqn: Option<String>,
    pub nvme_tcp_server_allow_host_name: Option<String>,
    pub nvme_tcp_server_password: Option<String>,
    pub iscsi_export: Option<bool>,
    pub nfs_sharing: Option<bool>,
    pub smb_sharing: Option<bool>,
    pub media_sharing: Option<bool>,
    pub media_interface: Option<String>,
}

impl DiskArgs {
    fn apply(
        &self,
        slot: &mut String,
        disabled: &mut bool,
        comment: &mut String,
        f: &mut FileDisk,
    ) {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = &self.$field { f.$field = v.clone(); } )* };
        }
        if let Some(s) = &self.slot {
            slot.clone_from(s);
        }
        if let Some(d) = self.disabled {
            *disabled = d;
        }
        if let Some(c) = &self.comment {
            comment.clone_from(c);
        }
        set!(
            file_path,
            file_offset,
            mount_filesystem,
            mount_read_only,
            compress,
            swap,
            nvme_tcp_export,
            nvme_tcp_server_port,
            nvme_tcp_server_nqn,
            nvme_tcp_server_allow_host_name,
            nvme_tcp_server_password,
            iscsi_export,
            nfs_sharing,
            smb_sharing,
            media_sharing,
            media_interface
        );
    }
}

/// A disk being added, before it is in the state.
#[derive(Default)]
struct NewDisk {
    slot: String,
    disabled: bool,
    comment: String,
    f: FileDisk,
    source: Option<Disk>,
}

/// Outcome of a mutation that may or may not have touched the state.
pub(crate) type OpResult<T> = Result<T, String>;

impl Device<'_> {
    pub(crate) fn usage(&self) -> PoolUsage {
        let apparent = self.behaviour.space == SpaceMode::Strict;
        PoolUsage {
            total: self.pool_size,
            used: self.store.used_bytes(POOL, apparent),
        }
    }

    /// Position of disk `id`: the disks are kept in id order (new ids are larger).
    pub(crate) fn disk_index(&self, id: u64) -> Option<usize> {
        let disks = &self.state.disks;
        match disks.binary_search_by_key(&id, |d| d.id) {
            Ok(i) => Some(i),
            Err(_) => disks.iter().position(|d| d.id == id),
        }
    }

    /// The disk lookups, rebuilt first if the disks changed behind them (a loaded state).
    pub(crate) fn disk_lookup(&mut self) -> &DiskIndex {
        if !self.state.disk_index.is_for(&self.state.disks) {
            self.state.disk_index = DiskIndex::build(&self.state.disks);
        }
        &self.state.disk_index
    }

    /// Ids of disks whose `prop` is exactly `value` (without looking at the others).
    fn ids_where(&self, prop: &str, value: &str) -> Vec<u64> {
        self.state
            .disk_index
            .ids(prop, value)
            .map(<[u64]>::to_vec)
            .unwrap_or_default()
    }

    pub(crate) fn summaries(&self) -> Vec<DiskSummary> {
        let upper = self.behaviour.uppercase_ids();
        self.state
            .disks
            .iter()
            .filter_map(|d| {
                let f = d.file()?;
                Some(DiskSummary {
                    id: format_id(d.id, upper),
                    slot: d.slot.clone(),
                    file_path: f.file_path.clone(),
                    size: f.file_size,
                    nqn: f.nvme_tcp_server_nqn.clone(),
                    effective_nqn: if f.nvme_tcp_server_nqn.is_empty() {
                        d.slot.clone()
                    } else {
                        f.nvme_tcp_server_nqn.clone()
                    },
                    export: f.nvme_tcp_export,
                    port: f.nvme_tcp_server_port,
                    comment: d.comment.clone(),
                })
            })
            .collect()
    }

    /// Bring the `/file` ids in step with the file index: a name that appeared gets the next
    /// id (in the order they appeared), a name that went loses its id. Costs what changed.
    pub(crate) fn sync_file_ids(&mut self) {
        let (changes, rewalked) = self.store.take_changes();
        if changes.is_empty() && !rewalked {
            return;
        }
        for c in changes {
            match c {
                Change::Added(name) => {
                    if !self.state.file_ids.contains_key(&name) {
                        self.state.file_ids.insert(name, self.state.next_file_id);
                        self.state.next_file_id += 1;
                    }
                }
                Change::Removed(name) => {
                    self.state.file_ids.remove(&name);
                }
            }
        }
        if rewalked && self.state.file_ids.len() != self.store.count() {
            // Names that went while nobody looked (e.g. while the sim was stopped).
            let now: std::collections::HashSet<String> =
                self.store.list().into_iter().map(|i| i.name).collect();
            self.state.file_ids.retain(|n, _| now.contains(n));
        }
        self.dirty = true;
    }

    /// The whole `/file` listing, in id order (as the index has it: a caller that wants
    /// changes made from outside calls `Store::rescan` first).
    pub(crate) fn files(&mut self) -> Vec<FileItem> {
        self.sync_file_ids();
        let ids = &self.state.file_ids;
        let mut items: Vec<FileItem> = self
            .store
            .list()
            .into_iter()
            .filter_map(|info| {
                Some(FileItem {
                    id: *ids.get(&info.name)?,
                    info,
                })
            })
            .collect();
        items.sort_by_key(|i| i.id);
        items
    }

    /// The `/file` item called `name`, read now: one lookup, whatever the number of files.
    pub(crate) fn file_named(&mut self, name: &str) -> Option<FileItem> {
        let info = self.store.info(name)?;
        self.sync_file_ids();
        let id = *self.state.file_ids.get(&info.name)?;
        Some(FileItem { id, info })
    }

    /// The `/file` item with id `id`.
    pub(crate) fn file_by_id(&mut self, id: u64) -> Option<FileItem> {
        self.sync_file_ids();
        let name = self
            .state
            .file_ids
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(n, _)| n.clone())?;
        self.file_named(&name)
    }

    /// Position of file `id` in the whole listing (its print number).
    pub(crate) fn file_position(&self, id: u64) -> usize {
        self.state.file_ids.values().filter(|v| **v < id).count()
    }

    fn check_nqn(
        &self,
        skip_id: Option<u64>,
        slot: &str,
        disabled: bool,
        f: &FileDisk,
    ) -> OpResult<()> {
        if self.behaviour.duplicate_nqn == DuplicateNqnMode::Allow || !f.nvme_tcp_export || disabled
        {
            return Ok(());
        }
        let nqn = if f.nvme_tcp_server_nqn.is_empty() {
            slot
        } else {
            f.nvme_tcp_server_nqn.as_str()
        };
        // Only disks whose NQN (or, without one, slot) is this one can clash.
        let mut maybe = self.ids_where("nvme-tcp-server-nqn", nqn);
        maybe.extend(self.ids_where("slot", nqn));
        let clash = maybe
            .into_iter()
            .filter(|id| Some(*id) != skip_id)
            .filter_map(|id| self.disk_index(id))
            .filter_map(|i| self.state.disks[i].effective_nqn())
            .any(|(port, n)| port == f.nvme_tcp_server_port && n == nqn);
        if clash {
            Err(self.behaviour.texts.duplicate_nqn.clone())
        } else {
            Ok(())
        }
    }

    /// [`SlotLimit::Max32`]: longer slots are refused, never shortened.
    fn check_slot_len(&self, slot: &str) -> OpResult<()> {
        if self.behaviour.slot_limit == SlotLimit::Max32 && slot.chars().count() > 32 {
            return Err(self.behaviour.texts.slot_too_long.clone());
        }
        Ok(())
    }

    fn slot_taken(&self, slot: &str, skip_id: Option<u64>) -> bool {
        self.ids_where("slot", slot)
            .into_iter()
            .any(|id| Some(id) != skip_id)
    }

    /// `/disk add type=file ...` (with an optional `copy-from` source id).
    pub(crate) fn disk_add(&mut self, args: &DiskArgs, copy_from: Option<u64>) -> OpResult<u64> {
        self.disk_lookup();
        let mut n = self.new_disk(args, copy_from)?;
        let (rel, parent) = self.disk_target(args, &n)?;
        let existing = self.store.info(&rel);
        if let Some(info) = &existing {
            if info.kind != FileKind::File {
                return Err("failure: file-path is a directory".into());
            }
            if self.behaviour.existing_file == ExistingFileMode::Fail {
                return Err(self.behaviour.texts.file_exists.clone());
            }
        }
        // Size: given > copied source size > existing file size.
        let size = match (args.file_size, &n.source, &existing) {
            (Some(s), _, _) => s,
            (None, Some(_), _) => n.f.file_size,
            (None, None, Some(info)) => info.size,
            (None, None, None) => 0,
        };
        if size == 0 {
            return Err("failure: file-size not specified".into());
        }
        n.f.file_size = size;
        self.check_nqn(None, &n.slot, n.disabled, &n.f)?;
        let clone_data = self.behaviour.copy_from == CopyFromMode::DataClone && existing.is_none();
        self.check_space(&n, existing.as_ref(), clone_data)?;
        self.ensure_parent(&parent)?;
        self.write_backing(
            &n,
            &rel,
            existing.is_some(),
            args.file_size.is_some(),
            clone_data,
        )
        .map_err(|e| format!("failure: {e}"))?;
        let id = self.state.next_disk_id;
        self.state.next_disk_id += 1;
        let disk = Disk {
            id,
            slot: n.slot,
            disabled: n.disabled,
            comment: n.comment,
            kind: DiskKind::File(n.f),
        };
        self.state.disk_index.insert(&disk);
        self.state.disks.push(disk);
        Ok(id)
    }

    /// The new disk's properties: the `copy-from` source's (comment included), then the
    /// given ones; a slot assigned when none is given; the slot checks.
    fn new_disk(&self, args: &DiskArgs, copy_from: Option<u64>) -> OpResult<NewDisk> {
        let mut n = NewDisk::default();
        if let Some(src) = copy_from {
            let d = self
                .disk_index(src)
                .map(|i| self.state.disks[i].clone())
                .ok_or_else(|| "no such item".to_owned())?;
            n.f = d
                .file()
                .cloned()
                .ok_or_else(|| "failure: copy-from item is not a file disk".to_owned())?;
            n.disabled = d.disabled;
            n.comment.clone_from(&d.comment);
            n.source = Some(d);
        }
        args.apply(&mut n.slot, &mut n.disabled, &mut n.comment, &mut n.f);
        if args.slot.is_none() {
            // "assigned automatically": file1, file2, ...
            let mut i = 1;
            while self.slot_taken(&format!("file{i}"), None) {
                i += 1;
            }
            n.slot = format!("file{i}");
        }
        self.check_slot_len(&n.slot)?;
        if self.slot_taken(&n.slot, None) {
            return Err(self.behaviour.texts.duplicate_slot.clone());
        }
        Ok(n)
    }

    /// The backing file's `/file` name and its directory: on the pool, not read-only.
    fn disk_target(&self, args: &DiskArgs, n: &NewDisk) -> OpResult<(String, String)> {
        if n.f.file_path.is_empty() || (args.file_path.is_none() && n.source.is_some()) {
            return Err("failure: file-path not specified".into());
        }
        let rel =
            normalise(&n.f.file_path).ok_or_else(|| "failure: invalid file-path".to_owned())?;
        let Some((parent, _)) = rel.rsplit_once('/') else {
            return Err("failure: file-path must be on a disk".into());
        };
        if rel.split('/').next() != Some(POOL) {
            return Err("failure: file-path must be on a disk".into());
        }
        // A disk writes its file: never inside a read-only subvolume.
        self.check_writable(&rel)?;
        Ok((rel.clone(), parent.to_owned()))
    }

    /// Space needed now: strict counts the apparent size; sparse only cloned data.
    fn check_space(
        &self,
        n: &NewDisk,
        existing: Option<&crate::store::FileInfo>,
        clone_data: bool,
    ) -> OpResult<()> {
        let size = n.f.file_size;
        let needed = match self.behaviour.space {
            SpaceMode::Strict => size.saturating_sub(existing.map_or(0, |i| i.size)),
            SpaceMode::Sparse => match (&n.source, clone_data) {
                (Some(s), true) => s
                    .file()
                    .and_then(|sf| normalise(&sf.file_path))
                    .and_then(|r| self.store.info(&r))
                    .map_or(0, |i| i.allocated),
                _ => 0,
            },
        };
        if needed > self.usage().free() {
            return Err(self.behaviour.texts.not_enough_space.clone());
        }
        Ok(())
    }

    /// A missing directory of a new file: made, or refused ([`MissingParentMode`]).
    fn ensure_parent(&self, parent: &str) -> OpResult<()> {
        if self.store.is_dir(parent) {
            return Ok(());
        }
        match self.behaviour.missing_parent {
            MissingParentMode::Create => self
                .store
                .mkdir_p(parent)
                .map_err(|e| format!("failure: {e}")),
            MissingParentMode::Fail => Err(self.behaviour.texts.missing_parent.clone()),
        }
    }

    /// Make (or adopt) the backing file: a data clone of the source, a new sparse file, or
    /// the existing one (resized only when `file-size` was given).
    fn write_backing(
        &self,
        n: &NewDisk,
        rel: &str,
        exists: bool,
        size_given: bool,
        clone_data: bool,
    ) -> std::io::Result<()> {
        let size = n.f.file_size;
        match (&n.source, clone_data) {
            (Some(s), true) => {
                let src_rel = s
                    .file()
                    .and_then(|sf| normalise(&sf.file_path))
                    .unwrap_or_default();
                if self.store.info(&src_rel).is_some() {
                    self.store.copy_sparse(&src_rel, rel, size)
                } else {
                    self.store.create_sparse(rel, size)
                }
            }
            _ if exists && size_given => self.store.set_len(rel, size),
            _ if exists => Ok(()),
            _ => self.store.create_sparse(rel, size),
        }
    }

    /// `/disk set <ids> ...`.
    pub(crate) fn disk_set(&mut self, ids: &[u64], args: &DiskArgs) -> OpResult<()> {
        self.disk_lookup();
        if args.slot.is_some() && ids.len() > 1 {
            return Err(self.behaviour.texts.duplicate_slot.clone());
        }
        // Validate everything first, then apply (no half-applied multi-item set).
        let mut updated = Vec::new();
        for &id in ids {
            let i = self
                .disk_index(id)
                .ok_or_else(|| "no such item".to_owned())?;
            let d = self.state.disks[i].clone();
            let DiskKind::File(mut f) = d.kind.clone() else {
                return Err("failure: can not change pool properties".into());
            };
            let (mut slot, mut disabled, mut comment) = (d.slot.clone(), d.disabled, d.comment);
            if args.file_path.is_some() {
                return Err("failure: file-path can only be set when creating".into());
            }
            args.apply(&mut slot, &mut disabled, &mut comment, &mut f);
            if args.slot.is_some() {
                self.check_slot_len(&slot)?;
            }
            if self.slot_taken(&slot, Some(id)) {
                return Err(self.behaviour.texts.duplicate_slot.clone());
            }
            let mut resize = None;
            if let Some(size) = args.file_size {
                match self.behaviour.set_file_size {
                    SetFileSizeMode::Grow => {
                        if size < f.file_size {
                            return Err("failure: can not shrink file".into());
                        }
                        if let Some(rel) = normalise(&f.file_path) {
                            self.check_writable(&rel)?;
                        }
                        if self.behaviour.space == SpaceMode::Strict
                            && size - f.file_size > self.usage().free()
                        {
                            return Err(self.behaviour.texts.not_enough_space.clone());
                        }
                        f.file_size = size;
                        resize = Some(size);
                    }
                    SetFileSizeMode::Reject => {
                        return Err(self.behaviour.texts.set_file_size.clone());
                    }
                    SetFileSizeMode::Ignore => {}
                }
            }
            self.check_nqn(Some(id), &slot, disabled, &f)?;
            updated.push((
                i,
                Disk {
                    id,
                    slot,
                    disabled,
                    comment,
                    kind: DiskKind::File(f.clone()),
                },
                resize,
                f.file_path,
            ));
        }
        for (i, d, resize, path) in updated {
            if let (Some(size), Some(rel)) = (resize, normalise(&path))
                && self.store.info(&rel).is_some()
            {
                self.store
                    .set_len(&rel, size)
                    .map_err(|e| format!("failure: {e}"))?;
            }
            self.state.disk_index.remove(&self.state.disks[i]);
            self.state.disk_index.insert(&d);
            self.state.disks[i] = d;
        }
        Ok(())
    }

    /// `/disk remove <ids>`: removes the items and their exports, never the files (docs/routeros.md §6.6).
    pub(crate) fn disk_remove(&mut self, ids: &[u64]) -> OpResult<()> {
        self.disk_lookup();
        for &id in ids {
            let i = self
                .disk_index(id)
                .ok_or_else(|| "no such item".to_owned())?;
            if self.state.disks[i].file().is_none() {
                return Err("failure: can not remove mounted disk".into());
            }
        }
        for &id in ids {
            if let Some(i) = self.disk_index(id) {
                let d = self.state.disks.remove(i);
                self.state.disk_index.remove(&d);
            }
        }
        Ok(())
    }

    /// `/file remove <ids>`.
    pub(crate) fn file_remove(&mut self, ids: &[u64]) -> OpResult<()> {
        let mut names = Vec::new();
        for &id in ids {
            let item = self
                .file_by_id(id)
                .ok_or_else(|| "no such item".to_owned())?;
            if item.info.kind == FileKind::Disk {
                return Err("failure: can not remove disk".into());
            }
            // A subvolume (or a directory holding one) goes with `/disk/btrfs/subvolume
            // remove`: its record has to leave the state too.
            let name = &item.info.name;
            let holds_subvolume = self.state.btrfs.subvolumes.iter().any(|s| {
                let dir = s.dir();
                dir == *name
                    || dir
                        .strip_prefix(name.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            });
            if holds_subvolume {
                return Err("failure: can not remove subvolume".into());
            }
            self.check_writable(&item.info.name)?;
            if self.behaviour.live_file_remove == LiveFileRemoveMode::Refuse {
                let live = self.state.disks.iter().filter_map(Disk::file).any(|f| {
                    normalise(&f.file_path).is_some_and(|p| {
                        p == item.info.name || p.starts_with(&format!("{}/", item.info.name))
                    })
                });
                if live {
                    return Err(self.behaviour.texts.file_in_use.clone());
                }
            }
            names.push(item.info.name.clone());
        }
        for n in names {
            match self.store.remove(&n) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("failure: {e}")),
            }
        }
        self.sync_file_ids();
        Ok(())
    }

    /// `/file add name=<n> type=file|directory`.
    pub(crate) fn file_add(&mut self, name: &str, directory: bool) -> OpResult<u64> {
        let rel = normalise(name).ok_or_else(|| "failure: invalid name".to_owned())?;
        if !rel.contains('/') {
            return Err("failure: can not create disk".into());
        }
        if self.store.info(&rel).is_some() {
            return Err(self.behaviour.texts.file_exists.clone());
        }
        self.check_writable(&rel)?;
        let io = |e: std::io::Error| format!("failure: {e}");
        if directory {
            self.store.mkdir_p(&rel).map_err(io)?;
        } else {
            if let Some((parent, _)) = rel.rsplit_once('/') {
                self.store.mkdir_p(parent).map_err(io)?;
            }
            self.store.create_sparse(&rel, 0).map_err(io)?;
        }
        self.file_named(&rel)
            .map(|f| f.id)
            .ok_or_else(|| "failure: file vanished".into())
    }
}

/// `*1f` / `*1F` (uppercase from 7.20 on, docs/routeros.md §3.2).
pub(crate) fn format_id(id: u64, upper: bool) -> String {
    if upper {
        format!("*{id:X}")
    } else {
        format!("*{id:x}")
    }
}

/// Parse `*1f` (either case).
pub(crate) fn parse_id(s: &str) -> Option<u64> {
    let hex = s.strip_prefix('*')?;
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}
