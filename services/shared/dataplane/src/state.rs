//! The node's small state: one JSON record per staged volume under
//! `DIR/node/volumes/` (docs/local-mode.md §2), so unstage/publish/stats know the
//! volume's source (the loop backing file is in no unstage request). It
//! never holds a /dev path: devices are re-resolved on every call.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataPlaneError, Result};
use crate::flags::MountFlags;
use crate::fs::FsType;
use crate::source::{PvcRef, VolumeSource};

/// Block or filesystem, as staged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum StagedAccess {
    Block,
    Mount { fs_type: FsType, flags: MountFlags },
}

/// What a stage left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedRecord {
    pub volume_id: String,
    pub staging_path: PathBuf,
    pub source: VolumeSource,
    pub access: StagedAccess,
    pub readonly: bool,
    pub pvc: Option<PvcRef>,
    /// Raw block: the device nodes published for it (the single-writer
    /// check; a block publish leaves nothing in mountinfo).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block_targets: Vec<PathBuf>,
}

/// Records on disk, written atomically (temp file, fsync, rename).
#[derive(Debug, Clone)]
pub struct NodeState {
    dir: PathBuf,
}

impl NodeState {
    pub fn open(state_dir: &Path) -> Result<Self> {
        let dir = state_dir.join("volumes");
        std::fs::create_dir_all(&dir)
            .map_err(|e| DataPlaneError::io(format!("creating {}", dir.display()), e))?;
        Ok(NodeState { dir })
    }

    fn path(&self, volume_id: &str) -> PathBuf {
        // Volume ids are validated `[A-Za-z0-9-]`: safe as a file name.
        self.dir.join(format!("{volume_id}.json"))
    }

    pub fn load(&self, volume_id: &str) -> Result<Option<StagedRecord>> {
        let p = self.path(volume_id);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DataPlaneError::io(format!("reading {}", p.display()), e)),
        };
        let rec: StagedRecord = serde_json::from_str(&text).map_err(|e| {
            DataPlaneError::Internal(format!("corrupt node state {}: {e}", p.display()))
        })?;
        rec.source.validate()?;
        Ok(Some(rec))
    }

    pub fn save(&self, rec: &StagedRecord) -> Result<()> {
        let p = self.path(&rec.volume_id);
        let tmp = self.dir.join(format!(".{}.tmp", rec.volume_id));
        let body =
            serde_json::to_vec_pretty(rec).map_err(|e| DataPlaneError::Internal(e.to_string()))?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &p)?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| DataPlaneError::io(format!("writing {}", p.display()), e))
    }

    pub fn remove(&self, volume_id: &str) -> Result<()> {
        let p = self.path(volume_id);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DataPlaneError::io(format!("removing {}", p.display()), e)),
        }
    }

    /// Every readable record (unreadable ones are logged and skipped).
    pub fn list(&self) -> Vec<StagedRecord> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            match self.load(id) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(err) => tracing::warn!(file = %name, %err, "skipping unreadable node state"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::source::LoopTarget;

    #[test]
    fn round_trip_and_remove() {
        let d = tempfile::tempdir().unwrap();
        let s = NodeState::open(d.path()).unwrap();
        let rec = StagedRecord {
            volume_id: "pvc-1".into(),
            staging_path: "/stage".into(),
            source: VolumeSource::Loop(LoopTarget {
                volume_path: "/storage-pool/x/pvc-1.img".into(),
            }),
            access: StagedAccess::Mount {
                fs_type: FsType::Xfs,
                flags: MountFlags::parse(["noatime"]).unwrap(),
            },
            readonly: false,
            pvc: None,
            block_targets: Vec::new(),
        };
        s.save(&rec).unwrap();
        assert_eq!(s.load("pvc-1").unwrap(), Some(rec.clone()));
        assert_eq!(s.list(), vec![rec]);
        let text = std::fs::read_to_string(d.path().join("volumes/pvc-1.json")).unwrap();
        assert!(!text.contains("/dev/"), "never a device path: {text}");
        s.remove("pvc-1").unwrap();
        s.remove("pvc-1").unwrap();
        assert_eq!(s.load("pvc-1").unwrap(), None);
    }
}
