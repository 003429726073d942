//! Where volumes and snapshots live on the RDS and how a disk entry is
//! recognised as one of ours.
//!
//! - Volume: disk slot = volume id, backing file `<base>/<id>.img` (the Go
//!   driver's layout, docs/csi.md §2.4), NVMe/TCP export with
//!   `nqn.2000-02.com.mikrotik:<id lowercased>`.
//! - Snapshot (copy-from backend): slot = snapshot id, backing file
//!   `<base>/<snapshot-id>.from-<source-volume-id>.img`.
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
use rds_routeros::{DiskPath, DiskRecord, Slot};

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
    file_kind(path.as_str().rsplit('/').next().unwrap_or(""), slot)
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
    fn overlong_snapshot_paths_are_invalid_arguments() {
        let base = DiskPath::new("/storage-pool/metal-csi").unwrap();
        let long = Slot::new(&"a".repeat(128)).unwrap();
        let err = snapshot_file(&base, &long, &long).unwrap_err();
        assert_eq!(err.reason(), rds_bus::Reason::InvalidArgument);
    }
}
