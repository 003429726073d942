//! What the exporter created, kept in `<state_dir>/nvmet-export.json` so that it only ever
//! changes or removes its own configfs entries (a node may export other subsystems too).
//! Entries are recorded *before* they are created and forgotten *after* they are removed, so
//! a crash in between leaves at worst a record of something absent, which the next reconcile
//! drops.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::store::write_atomic;

pub(crate) const FILE_NAME: &str = "nvmet-export.json";

/// One subsystem made by the exporter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OwnedSubsystem {
    /// Size of the backing file when the namespace was last (re)validated.
    pub size: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Owned {
    pub subsystems: BTreeMap<String, OwnedSubsystem>,
    pub ports: BTreeSet<u16>,
}

impl Owned {
    pub(crate) fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE_NAME)
    }

    pub(crate) fn load(path: &Path) -> Result<Self, SimError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| SimError::State(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(SimError::io("reading", path, e)),
        }
    }

    pub(crate) fn save(&self, path: &Path) -> Result<(), SimError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| SimError::State(e.to_string()))?;
        write_atomic(path, &json, None)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.subsystems.is_empty() && self.ports.is_empty()
    }
}
