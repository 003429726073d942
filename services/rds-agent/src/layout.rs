//! Where volumes and snapshots live on the RDS and how a disk entry is
//! recognised as one of ours.
//!
//! - Volume: disk slot = volume id, backing file `<base>/<id>.img` (the Go
//!   driver's layout, docs/csi.md §2.4), NVMe/TCP export with
//!   `nqn.2000-02.com.mikrotik:<id lowercased>`.
//! - Snapshot (copy-from backend): slot = snapshot id, backing file
//!   `<base>/<snapshot-id>.from-<source-volume-id>.img`.
//! - Volume, layout subvolume (Btrfs pools, docs/decisions.md §13): the
//!   subvolume `<base>/<id>` holding `volume.img`, disk slot = volume id. The
//!   file name is fixed because a snapshot or clone of a subvolume carries its
//!   files: a restored volume finds its data at `<base>/<new-id>/volume.img`
//!   whatever the source was called.
//! - Snapshot, layout subvolume: the read-only subvolume
//!   `<base>/<snapshot-id>.from-<source-volume-id>`, no disk entry.
//!
//! **Why the source is in the snapshot's file name.** Real RouterOS has no
//! `source-volume` field (the Go mock invented it, docs/routeros.md §6.9), and the
//! snapshot id is fixed by the caller (`snap-<uuid5(name)>-at-<10 hex>`), so
//! the slot cannot carry it either. The file path is the one free, durable
//! field we choose at creation that RouterOS keeps verbatim (`file-path`,
//! echoed in `model`), that `/file` shows too, that nobody edits (it *is* the
//! data), and that copy-from never copies (a restore passes its own path).
//! A per-disk property such as `nvme-tcp-server-allow-host-name` was rejected:
//! it has a meaning (NVMe host ACL), an operator may edit it, and copy-from
//! would copy it onto restored volumes, locking them to a bogus host. Ids are
//! `[A-Za-z0-9-]`, so `.from-` cannot occur inside one and the split is
//! unambiguous. Go compatibility: the Go driver reads `file-path` and deletes
//! whatever file a snapshot entry names, so it handles these snapshots; its
//! own snapshots (`<base>/<snap-id>.img`) are read here as snapshots with an
//! unknown source.

use rds_bus::SNAPSHOT_PREFIX;
use rds_routeros::{DiskPath, DiskRecord, PoolName, Slot, SubvolumeName};

use crate::error::AgentError;

const SOURCE_MARKER: &str = ".from-";

/// `<base>/<id>.img`
pub fn volume_file(base: &DiskPath, id: &Slot) -> Result<DiskPath, AgentError> {
    DiskPath::new(&format!("{base}/{id}.img"))
        .map_err(|e| AgentError::InvalidArgument(format!("volume file path: {e}")))
}

/// `<base>/<snapshot>.from-<source>.img`
pub fn snapshot_file(base: &DiskPath, id: &Slot, source: &Slot) -> Result<DiskPath, AgentError> {
    DiskPath::new(&format!("{base}/{id}{SOURCE_MARKER}{source}.img")).map_err(|e| {
        AgentError::InvalidArgument(format!(
            "snapshot file path for {id} from {source} is not usable: {e}"
        ))
    })
}

/// The backing file's name inside a volume's own subvolume.
pub const VOLUME_IMG: &str = "volume.img";

/// Where a volume's backing file sits (proto `VolumeLayout`; UNSPECIFIED = flat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `<base>/<id>.img` (the Go driver's layout).
    Flat,
    /// `<base>/<id>/volume.img` in the Btrfs subvolume `<base>/<id>`.
    Subvolume,
}

impl Layout {
    pub fn from_proto(v: i32) -> Result<Layout, AgentError> {
        use rds_proto::agent::VolumeLayout as L;
        match L::try_from(v) {
            Ok(L::Unspecified | L::Flat) => Ok(Layout::Flat),
            Ok(L::Subvolume) => Ok(Layout::Subvolume),
            Err(_) => Err(AgentError::InvalidArgument(format!(
                "unknown volume layout {v}"
            ))),
        }
    }

    pub fn to_proto(self) -> i32 {
        use rds_proto::agent::VolumeLayout as L;
        match self {
            Layout::Flat => L::Flat as i32,
            Layout::Subvolume => L::Subvolume as i32,
        }
    }

    /// The layout a volume's backing file path shows.
    pub fn of_file(path: &str) -> Layout {
        if path.ends_with(&format!("/{VOLUME_IMG}")) {
            Layout::Subvolume
        } else {
            Layout::Flat
        }
    }

    /// The backing file of volume `id` under `base` in this layout.
    pub fn volume_file(self, base: &DiskPath, id: &Slot) -> Result<DiskPath, AgentError> {
        match self {
            Layout::Flat => volume_file(base, id),
            Layout::Subvolume => subvolume_file(base, id),
        }
    }
}

/// `<base>/<id>/volume.img`
pub fn subvolume_file(base: &DiskPath, id: &Slot) -> Result<DiskPath, AgentError> {
    DiskPath::new(&format!("{base}/{id}/{VOLUME_IMG}"))
        .map_err(|e| AgentError::InvalidArgument(format!("volume file path: {e}")))
}

/// The pool (Btrfs filesystem label) a base path lies on: its first component.
pub fn pool_of(base: &DiskPath) -> Result<PoolName, AgentError> {
    let first = base.file_name().split('/').next().unwrap_or("");
    PoolName::new(first)
        .map_err(|e| AgentError::InvalidArgument(format!("pool of base path {base}: {e}")))
}

/// The subvolume `<base>/<leaf>` as RouterOS names it: relative to the
/// filesystem's mount (`/storage-pool/metal-csi` + `pvc-x` → `metal-csi/pvc-x`).
pub fn subvolume_at(base: &DiskPath, leaf: &str) -> Result<SubvolumeName, AgentError> {
    let rel = base.file_name().split_once('/').map_or("", |(_, r)| r);
    let name = if rel.is_empty() {
        leaf.to_owned()
    } else {
        format!("{rel}/{leaf}")
    };
    SubvolumeName::new(&name).map_err(|e| {
        AgentError::InvalidArgument(format!("subvolume name under {base} for {leaf}: {e}"))
    })
}

/// The pool and subvolume holding a subvolume-layout volume's file
/// (`/storage-pool/metal-csi/pvc-x/volume.img` → `storage-pool`, `metal-csi/pvc-x`).
pub fn subvolume_of_file(file: &DiskPath) -> Result<(PoolName, SubvolumeName), AgentError> {
    let bad = |why: &str| AgentError::Internal(format!("{file} is not in a subvolume: {why}"));
    let dir = file
        .file_name()
        .rsplit_once('/')
        .map(|(d, _)| d)
        .ok_or_else(|| bad("no directory"))?;
    let (pool, rel) = dir
        .split_once('/')
        .ok_or_else(|| bad("directly in the pool"))?;
    let pool = PoolName::new(pool).map_err(|e| bad(&e.to_string()))?;
    let name = SubvolumeName::new(rel).map_err(|e| bad(&e.to_string()))?;
    Ok((pool, name))
}

/// The subvolume of volume `id`: `<base>/<id>`.
pub fn volume_subvolume(base: &DiskPath, id: &Slot) -> Result<SubvolumeName, AgentError> {
    subvolume_at(base, id.as_str())
}

/// The read-only subvolume of snapshot `id` of `source`: `<base>/<id>.from-<source>`.
pub fn snapshot_subvolume(
    base: &DiskPath,
    id: &Slot,
    source: &Slot,
) -> Result<SubvolumeName, AgentError> {
    subvolume_at(base, &format!("{id}{SOURCE_MARKER}{source}"))
}

/// The `(snapshot id, source volume id)` a subvolume name's last component
/// encodes (`<snap>.from-<src>`), if it is one.
pub fn snapshot_leaf(name: &SubvolumeName) -> Option<(Slot, Slot)> {
    let (snap, src) = name.leaf().split_once(SOURCE_MARKER)?;
    if !snap.starts_with(SNAPSHOT_PREFIX) {
        return None;
    }
    Some((Slot::new(snap).ok()?, Slot::new(src).ok()?))
}

/// What a disk entry is to rds-agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskKind {
    Volume,
    /// `source` is `None` for Go-driver snapshots (`<base>/<snap-id>.img`).
    Snapshot {
        source: Option<Slot>,
    },
    /// Not created by this driver (other file disks, pools, hardware).
    Foreign,
}

/// The configured base paths (`--base-paths`): the only directories whose
/// files this driver owns. One predicate for every ownership question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasePaths(Vec<DiskPath>);

impl BasePaths {
    /// At least one path (validated inside the pool by the config).
    pub fn new(paths: Vec<DiskPath>) -> Result<BasePaths, AgentError> {
        if paths.is_empty() {
            return Err(AgentError::Config(
                "at least one base path is needed".into(),
            ));
        }
        Ok(BasePaths(paths))
    }

    /// Exactly one base path.
    pub fn single(path: DiskPath) -> BasePaths {
        BasePaths(vec![path])
    }

    pub fn paths(&self) -> &[DiskPath] {
        &self.0
    }

    /// True when `file` lies below one of the base paths (at any depth, so a
    /// per-volume directory layout is covered by the same rule).
    pub fn owns(&self, file: &DiskPath) -> bool {
        self.0.iter().any(|b| file.is_under(b) && file != b)
    }

    /// True when `dir` is one of the base paths or inside one.
    pub fn allows(&self, dir: &DiskPath) -> bool {
        self.0.iter().any(|b| dir.is_under(b))
    }
}

/// Classifies a disk entry. Only `type=file` disks whose backing file lies
/// under a configured base path and is named after the slot are ours.
pub fn kind_of(d: &DiskRecord, bases: &BasePaths) -> DiskKind {
    let (Some("file"), Some(slot), Some(path)) = (
        d.disk_type.as_deref(),
        d.slot.as_deref(),
        d.file_path.as_deref(),
    ) else {
        return DiskKind::Foreign;
    };
    let Ok(path) = DiskPath::new(path) else {
        return DiskKind::Foreign;
    };
    if !bases.owns(&path) {
        return DiskKind::Foreign;
    }
    let mut parts = path.as_str().rsplit('/');
    let name = parts.next().unwrap_or("");
    if name == VOLUME_IMG {
        // `<base>/<slot>/volume.img`: the directory (its subvolume) must be
        // named after the slot and lie under a base path itself.
        let dir = path.as_str().rsplit_once('/').map_or("", |(d, _)| d);
        let owned_dir = DiskPath::new(dir).is_ok_and(|d| bases.owns(&d));
        return if owned_dir && parts.next() == Some(slot) && !slot.starts_with(SNAPSHOT_PREFIX) {
            DiskKind::Volume
        } else {
            DiskKind::Foreign
        };
    }
    file_kind(name, slot)
}

/// What a backing file named `name` is for slot `slot`.
pub fn file_kind(name: &str, slot: &str) -> DiskKind {
    let Some(stem) = name.strip_suffix(".img") else {
        return DiskKind::Foreign;
    };
    if let Some((snap, source)) = stem.split_once(SOURCE_MARKER) {
        return match (snap == slot, Slot::new(source)) {
            (true, Ok(source)) => DiskKind::Snapshot {
                source: Some(source),
            },
            _ => DiskKind::Foreign,
        };
    }
    if stem != slot {
        return DiskKind::Foreign;
    }
    if slot.starts_with(SNAPSHOT_PREFIX) {
        DiskKind::Snapshot { source: None }
    } else {
        DiskKind::Volume
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rds_routeros::Legend;

    fn disk(slot: &str, path: &str) -> DiskRecord {
        DiskRecord::file_disk(&Legend::rose_storage(), slot, path, 1 << 30, None)
    }

    fn bases() -> BasePaths {
        BasePaths::new(vec![DiskPath::new("/storage-pool/metal-csi").unwrap()]).unwrap()
    }

    #[test]
    fn snapshot_source_round_trips_through_the_file_name() {
        let base = DiskPath::new("/storage-pool/metal-csi").unwrap();
        let snap = Slot::new("snap-0f923194-922a-5dd8-b376-c2c6ccb56dd8-at-0f923194922").unwrap();
        let src = Slot::new("pvc-11111111-2222-3333-4444-555555555555").unwrap();
        let f = snapshot_file(&base, &snap, &src).unwrap();
        let pool = bases();
        assert_eq!(
            kind_of(&disk(snap.as_str(), f.as_str()), &pool),
            DiskKind::Snapshot { source: Some(src) }
        );
    }

    #[test]
    fn go_layouts_and_foreign_disks() {
        let pool = bases();
        assert_eq!(
            kind_of(&disk("pvc-1", "/storage-pool/metal-csi/pvc-1.img"), &pool),
            DiskKind::Volume
        );
        assert_eq!(
            kind_of(&disk("snap-1", "/storage-pool/metal-csi/snap-1.img"), &pool),
            DiskKind::Snapshot { source: None }
        );
        for (slot, path) in [
            ("nixos-root", "/storage-pool/nixos/root.img"),
            ("pvc-1", "/other-pool/pvc-1.img"),
            ("pvc-1", "/storage-pool/pvc-1.img"),
            ("pvc-1", "/storage-pool/nixos/pvc-1.img"),
            ("pvc-1", "/storage-pool/metal-csi/pvc-2.img"),
            ("snap-1", "/storage-pool/snap-2.from-pvc-1.img"),
            ("snap-1", "/storage-pool/snap-1.from-.img"),
        ] {
            assert_eq!(
                kind_of(&disk(slot, path), &pool),
                DiskKind::Foreign,
                "{path}"
            );
        }
        let mut pool_rec =
            DiskRecord::raid_pool(&Legend::rose_storage(), "storage-pool", 10, 5, 50);
        assert_eq!(kind_of(&pool_rec, &pool), DiskKind::Foreign);
        pool_rec.disk_type = None;
        assert_eq!(kind_of(&pool_rec, &pool), DiskKind::Foreign);
    }

    #[test]
    fn subvolume_layout_is_recognised_under_the_base_paths_only() {
        let pool = bases();
        let base = DiskPath::new("/storage-pool/metal-csi").unwrap();
        let id = Slot::new("pvc-1").unwrap();
        let f = subvolume_file(&base, &id).unwrap();
        assert_eq!(f.as_str(), "/storage-pool/metal-csi/pvc-1/volume.img");
        assert_eq!(kind_of(&disk("pvc-1", f.as_str()), &pool), DiskKind::Volume);
        assert_eq!(Layout::of_file(f.as_str()), Layout::Subvolume);
        assert_eq!(
            Layout::of_file("/storage-pool/metal-csi/pvc-1.img"),
            Layout::Flat
        );
        for (slot, path) in [
            ("pvc-1", "/storage-pool/metal-csi/pvc-2/volume.img"),
            ("pvc-1", "/storage-pool/pvc-1/volume.img"),
            ("pvc-1", "/storage-pool/nixos/pvc-1/volume.img"),
            ("pvc-1", "/storage-pool/metal-csi/volume.img"),
            ("metal-csi", "/storage-pool/metal-csi/volume.img"),
            ("snap-1", "/storage-pool/metal-csi/snap-1/volume.img"),
            (
                "snap-1.from-pvc-1",
                "/storage-pool/metal-csi/snap-1.from-pvc-1/volume.img",
            ),
        ] {
            assert_eq!(
                kind_of(&disk(slot, path), &pool),
                DiskKind::Foreign,
                "{path}"
            );
        }
        assert_eq!(
            volume_subvolume(&base, &id).unwrap().as_str(),
            "metal-csi/pvc-1"
        );
        assert_eq!(pool_of(&base).unwrap().as_str(), "storage-pool");
        let snap = Slot::new("snap-9").unwrap();
        let name = snapshot_subvolume(&base, &snap, &id).unwrap();
        assert_eq!(name.as_str(), "metal-csi/snap-9.from-pvc-1");
        assert_eq!(snapshot_leaf(&name), Some((snap, id)));
        let root = DiskPath::new("/storage-pool").unwrap();
        assert_eq!(subvolume_at(&root, "pvc-1").unwrap().as_str(), "pvc-1");
    }

    #[test]
    fn layout_from_the_wire() {
        use rds_proto::agent::VolumeLayout as L;
        assert_eq!(
            Layout::from_proto(L::Unspecified as i32).unwrap(),
            Layout::Flat
        );
        assert_eq!(Layout::from_proto(L::Flat as i32).unwrap(), Layout::Flat);
        assert_eq!(
            Layout::from_proto(L::Subvolume as i32).unwrap(),
            Layout::Subvolume
        );
        assert_eq!(
            Layout::from_proto(99).unwrap_err().reason(),
            rds_bus::Reason::InvalidArgument
        );
        let f = DiskPath::new("/storage-pool/metal-csi/pvc-1/volume.img").unwrap();
        let (pool, sv) = subvolume_of_file(&f).unwrap();
        assert_eq!(
            (pool.as_str(), sv.as_str()),
            ("storage-pool", "metal-csi/pvc-1")
        );
        assert!(subvolume_of_file(&DiskPath::new("/storage-pool/x.img").unwrap()).is_err());
    }

    #[test]
    fn overlong_snapshot_paths_are_invalid_arguments() {
        let base = DiskPath::new("/storage-pool/metal-csi").unwrap();
        let long = Slot::new(&"a".repeat(128)).unwrap();
        let err = snapshot_file(&base, &long, &long).unwrap_err();
        assert_eq!(err.reason(), rds_bus::Reason::InvalidArgument);
    }
}
