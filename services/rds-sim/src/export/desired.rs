//! What the kernel target should export, derived from the simulated disks: every enabled file
//! disk with `nvme-tcp-export=yes` whose backing file exists and whose NQN can name a configfs
//! subsystem.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::model::{Disk, State};
use crate::store::{Store, normalise};

/// NVMF_NQN_SIZE (223) in the kernel.
const MAX_NQN_LEN: usize = 223;

/// One subsystem to export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WantedSubsystem {
    /// The real (sparse) backing file on this machine.
    pub device_path: PathBuf,
    /// Its current size (a change means the namespace must be revalidated).
    pub size: u64,
    /// `nvme-tcp-server-port`s it is exported on.
    pub ports: BTreeSet<u16>,
    /// The disk's `nvme-tcp-server-allow-host-name` as set (interpreted in `hosts.rs`).
    pub allow_value: String,
}

/// The whole export wanted now, keyed by NQN.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Desired {
    pub subsystems: BTreeMap<String, WantedSubsystem>,
}

impl Desired {
    pub(crate) fn ports(&self) -> BTreeSet<u16> {
        self.subsystems
            .values()
            .flat_map(|s| s.ports.iter().copied())
            .collect()
    }

    pub(crate) fn wants_link(&self, port: u16, nqn: &str) -> bool {
        self.subsystems
            .get(nqn)
            .is_some_and(|s| s.ports.contains(&port))
    }
}

/// A configfs-safe NQN: `nqn.` prefix, at most 223 bytes, only `[A-Za-z0-9.:_-]` (no `/`, so
/// it can never leave the subsystems directory).
pub(crate) fn valid_nqn(nqn: &str) -> bool {
    nqn.starts_with("nqn.")
        && nqn.len() <= MAX_NQN_LEN
        && nqn
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'_' | b'-'))
}

/// The export the disks ask for, plus a warning per disk that cannot be exported.
pub(crate) fn desired(state: &State, store: &Store) -> (Desired, Vec<String>) {
    let mut want = Desired::default();
    let mut warnings = Vec::new();
    for disk in &state.disks {
        let (Some((port, nqn)), Some(f)) = (disk.effective_nqn(), disk.file()) else {
            continue;
        };
        match wanted_file(disk, &nqn, store, &f.file_path) {
            Err(why) => warnings.push(why),
            Ok((device_path, size)) => match want.subsystems.get_mut(&nqn) {
                // The same NQN on another port (or twice, DuplicateNqnMode::Allow): one subsystem.
                Some(s) if s.device_path == device_path => {
                    s.ports.insert(port);
                }
                Some(_) => warnings.push(format!(
                    "disk {}: NQN {nqn} is already exported from another file; not exported",
                    disk.slot
                )),
                None => {
                    want.subsystems.insert(
                        nqn,
                        WantedSubsystem {
                            device_path,
                            size,
                            ports: BTreeSet::from([port]),
                            allow_value: f.nvme_tcp_server_allow_host_name.clone(),
                        },
                    );
                }
            },
        }
    }
    (want, warnings)
}

fn wanted_file(
    disk: &Disk,
    nqn: &str,
    store: &Store,
    file_path: &str,
) -> Result<(PathBuf, u64), String> {
    if !valid_nqn(nqn) {
        return Err(format!(
            "disk {}: NQN {nqn:?} cannot name an NVMe subsystem; not exported",
            disk.slot
        ));
    }
    let path = normalise(file_path)
        .and_then(|rel| store.host_path(&rel))
        .ok_or_else(|| format!("disk {}: bad file-path {file_path:?}", disk.slot))?;
    // The kernel opens device_path itself: it must not depend on our working directory.
    let path = std::path::absolute(&path)
        .map_err(|e| format!("disk {}: {}: {e}", disk.slot, path.display()))?;
    let md = std::fs::metadata(&path).map_err(|e| {
        format!(
            "disk {}: backing file {} unusable ({e}); not exported",
            disk.slot,
            path.display()
        )
    })?;
    if !md.is_file() {
        return Err(format!(
            "disk {}: {} is not a regular file; not exported",
            disk.slot,
            path.display()
        ));
    }
    Ok((path, md.len()))
}
