//! Btrfs subvolumes of the pool (`/disk/btrfs/subvolume`, docs/routeros.md §6.15).
//!
//! The sim needs no real Btrfs: a subvolume is a directory under the pool's files
//! (`<fs>/<name>`), recorded in `state.json`. A snapshot (`parent=`) copies every file of
//! the parent copy-on-write ([`crate::store::Store::clone_tree`]: a reflink where the file
//! system shares extents, otherwise a sparse copy), so it keeps the parent's bytes however the
//! parent changes afterwards. Read-only subvolumes refuse every write the sim itself makes.

use serde::{Deserialize, Serialize};

use crate::config::{LiveSnapshotMode, MissingParentMode, PoolFilesystem};
use crate::model::{Device, OpResult, POOL};
use crate::store::normalise;

/// The first id Btrfs gives a subvolume it creates (5 is the top level).
const FIRST_SUBVOLUME_ID: u64 = 256;

/// One subvolume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Subvolume {
    /// Btrfs `subvolume-id`; also the console item id (`*100`).
    pub id: u64,
    /// Relative to the filesystem's mount (`metal-csi/pvc-x`).
    pub name: String,
    /// Filesystem label (the pool's fs-label).
    pub fs: String,
    /// The name given as `parent=` at creation ("" when none), kept after that parent goes.
    pub parent: String,
    pub read_only: bool,
    pub uuid: String,
    pub generation: u64,
    /// Unix seconds.
    pub creation_time: i64,
}

impl Subvolume {
    /// `/file` name of its directory (`storage-pool/metal-csi/pvc-x`).
    pub(crate) fn dir(&self) -> String {
        format!("{}/{}", self.fs, self.name)
    }

    /// Whether the `/file` name `rel` is inside it (or is it).
    pub(crate) fn contains(&self, rel: &str) -> bool {
        let dir = self.dir();
        rel == dir || rel.strip_prefix(&dir).is_some_and(|r| r.starts_with('/'))
    }
}

/// Btrfs bookkeeping in `state.json` (absent in states written before subvolumes existed).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct BtrfsState {
    pub subvolumes: Vec<Subvolume>,
    /// Next `subvolume-id` (0 = not started: [`FIRST_SUBVOLUME_ID`]).
    pub next_id: u64,
    /// Filesystem generation: grows with every subvolume change.
    pub generation: u64,
    /// The pool filesystem's uuid (made on first use).
    pub fs_uuid: String,
}

/// `/disk/btrfs/subvolume add` arguments.
#[derive(Clone, Debug, Default)]
pub(crate) struct SubvolumeArgs {
    pub fs: Option<String>,
    pub name: Option<String>,
    pub parent: Option<String>,
    pub read_only: bool,
}

/// A random-looking 8-4-4-4-12 uuid (version 4 layout) without an RNG crate: std's
/// randomly keyed hasher over the time and a counter.
pub(crate) fn new_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(n);
        h.write_u64(salt);
        h.finish()
    };
    let (a, b) = (word(1), word(2));
    // Version 4, variant 10xx: the layout of a random uuid.
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        0x4000 | (a & 0x0fff),
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A subvolume name: relative, `/`-separated, no empty, `.` or `..` component.
fn valid_name(name: &str) -> bool {
    !name.starts_with('/') && normalise(name).is_some()
}

impl Device<'_> {
    /// The failure of every `/disk/btrfs` change when the pool is not Btrfs or `fs` names
    /// another filesystem.
    pub(crate) fn btrfs_fs(&self, fs: Option<&str>) -> OpResult<String> {
        let fs = fs.unwrap_or(POOL);
        if self.behaviour.pool_filesystem != PoolFilesystem::Btrfs || fs != POOL {
            return Err(format!("failure: no btrfs filesystem {fs}"));
        }
        Ok(fs.to_owned())
    }

    /// The read-only subvolume holding the `/file` name `rel`, if any (the sim refuses its
    /// own writes there).
    pub(crate) fn read_only_holder(&self, rel: &str) -> Option<&Subvolume> {
        self.state
            .btrfs
            .subvolumes
            .iter()
            .find(|s| s.read_only && s.contains(rel))
    }

    /// Refuse a write the sim would make at `rel` inside a read-only subvolume.
    pub(crate) fn check_writable(&self, rel: &str) -> OpResult<()> {
        match self.read_only_holder(rel) {
            Some(_) => Err(self.behaviour.texts.read_only.clone()),
            None => Ok(()),
        }
    }

    fn subvolume_by_name(&self, fs: &str, name: &str) -> Option<&Subvolume> {
        self.state
            .btrfs
            .subvolumes
            .iter()
            .find(|s| s.fs == fs && s.name == name)
    }

    /// Whether an exported disk's file is inside `sv` ([`LiveSnapshotMode::Refuse`]).
    fn exported_inside(&self, sv: &Subvolume) -> bool {
        self.state.disks.iter().any(|d| {
            d.effective_nqn().is_some()
                && d.file()
                    .and_then(|f| normalise(&f.file_path))
                    .is_some_and(|p| sv.contains(&p))
        })
    }

    /// `/disk/btrfs/subvolume add`.
    pub(crate) fn subvolume_add(&mut self, args: &SubvolumeArgs) -> OpResult<u64> {
        let fs = self.btrfs_fs(args.fs.as_deref())?;
        let name = args
            .name
            .clone()
            .ok_or_else(|| "failure: name not specified".to_owned())?;
        if !valid_name(&name) {
            return Err("invalid value for argument name".into());
        }
        let texts = &self.behaviour.texts;
        let dir = format!("{fs}/{name}");
        if self.subvolume_by_name(&fs, &name).is_some() || self.store.info(&dir).is_some() {
            return Err(texts.duplicate_slot.clone());
        }
        self.check_writable(&dir)?;
        let source = match args.parent.as_deref() {
            Some(p) => {
                let sv = self
                    .subvolume_by_name(&fs, p)
                    .cloned()
                    .ok_or_else(|| texts.no_parent_subvolume.clone())?;
                if self.behaviour.live_snapshot == LiveSnapshotMode::Refuse
                    && self.exported_inside(&sv)
                {
                    return Err(texts.subvolume_busy.clone());
                }
                Some(sv)
            }
            None => None,
        };
        if let Some((up, _)) = dir.rsplit_once('/')
            && !self.store.is_dir(up)
            && self.behaviour.missing_parent == MissingParentMode::Fail
        {
            return Err(texts.missing_parent.clone());
        }
        let io = |e: std::io::Error| format!("failure: {e}");
        match &source {
            Some(src) => {
                // Nested subvolumes are not part of a Btrfs snapshot: empty directories there.
                let mut nested: Vec<String> = self
                    .state
                    .btrfs
                    .subvolumes
                    .iter()
                    .filter(|s| s.id != src.id && src.contains(&s.dir()))
                    .map(Subvolume::dir)
                    .collect();
                // A snapshot made inside its own parent does not contain itself.
                nested.push(dir.clone());
                self.store
                    .clone_tree(&src.dir(), &dir, &nested)
                    .map_err(io)?;
            }
            None => self.store.mkdir_p(&dir).map_err(io)?,
        }
        Ok(self.record_subvolume(fs, name, args))
    }

    fn record_subvolume(&mut self, fs: String, name: String, args: &SubvolumeArgs) -> u64 {
        let b = &mut self.state.btrfs;
        let id = b.next_id.max(FIRST_SUBVOLUME_ID);
        b.next_id = id + 1;
        b.generation += 1;
        b.subvolumes.push(Subvolume {
            id,
            name,
            fs,
            parent: args.parent.clone().unwrap_or_default(),
            read_only: args.read_only,
            uuid: new_uuid(),
            generation: b.generation,
            creation_time: now_unix(),
        });
        id
    }

    /// `/disk/btrfs/subvolume remove <ids>`: the directory and every file in it go.
    pub(crate) fn subvolume_remove(&mut self, ids: &[u64]) -> OpResult<()> {
        let mut gone = Vec::new();
        for &id in ids {
            let sv = self
                .state
                .btrfs
                .subvolumes
                .iter()
                .find(|s| s.id == id)
                .cloned()
                .ok_or_else(|| "no such item".to_owned())?;
            self.btrfs_fs(Some(&sv.fs))?;
            let texts = &self.behaviour.texts;
            let used = self
                .state
                .disks
                .iter()
                .filter_map(|d| d.file())
                .any(|f| normalise(&f.file_path).is_some_and(|p| sv.contains(&p)));
            if used {
                return Err(texts.subvolume_in_use.clone());
            }
            let nested = self
                .state
                .btrfs
                .subvolumes
                .iter()
                .any(|s| s.id != sv.id && !ids.contains(&s.id) && sv.contains(&s.dir()));
            if nested {
                return Err(texts.subvolume_nested.clone());
            }
            gone.push(sv);
        }
        // Deepest first, so a nested one removed in the same command goes before its holder.
        gone.sort_by_key(|s| std::cmp::Reverse(s.dir().len()));
        for sv in gone {
            match self.store.remove(&sv.dir()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("failure: {e}")),
            }
            self.state.btrfs.subvolumes.retain(|s| s.id != sv.id);
            self.state.btrfs.generation += 1;
        }
        Ok(())
    }

    /// `/disk/btrfs/subvolume set <ids> read-only=`.
    pub(crate) fn subvolume_set(&mut self, ids: &[u64], read_only: Option<bool>) -> OpResult<()> {
        for &id in ids {
            let fs = self
                .state
                .btrfs
                .subvolumes
                .iter()
                .find(|s| s.id == id)
                .map(|s| s.fs.clone())
                .ok_or_else(|| "no such item".to_owned())?;
            self.btrfs_fs(Some(&fs))?;
        }
        let Some(ro) = read_only else { return Ok(()) };
        let b = &mut self.state.btrfs;
        b.generation += 1;
        let generation = b.generation;
        for s in b.subvolumes.iter_mut().filter(|s| ids.contains(&s.id)) {
            s.read_only = ro;
            s.generation = generation;
        }
        Ok(())
    }

    /// The pool filesystem's uuid, made once and kept.
    pub(crate) fn fs_uuid(&mut self) -> String {
        if self.state.btrfs.fs_uuid.is_empty() {
            self.state.btrfs.fs_uuid = new_uuid();
            self.dirty = true;
        }
        self.state.btrfs.fs_uuid.clone()
    }
}
