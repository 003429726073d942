//! A block device as found *now*: its node path and number. Never stored —
//! re-resolved from the NQN or the backing file on every call (docs/safety.md §3.2).

use std::path::{Path, PathBuf};

/// A resolved block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: PathBuf,
    pub major: u64,
    pub minor: u64,
}

impl Device {
    pub fn dev(&self) -> (u64, u64) {
        (self.major, self.minor)
    }

    /// The device behind node `path`, if it is a block device node.
    pub fn from_node(path: &Path) -> std::io::Result<Option<Device>> {
        Ok(
            crate::sys::block_node_dev(path)?.map(|(major, minor)| Device {
                path: path.to_path_buf(),
                major,
                minor,
            }),
        )
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}:{})", self.path.display(), self.major, self.minor)
    }
}

/// Size in bytes of block device `major:minor` from `<sysfs>/dev/block/M:m/size`
/// (512-byte sectors whatever the logical block size).
pub fn size_bytes(sysfs_root: &Path, dev: (u64, u64)) -> std::io::Result<u64> {
    let p = sysfs_root.join(format!("dev/block/{}:{}/size", dev.0, dev.1));
    let s = std::fs::read_to_string(&p)?;
    s.trim()
        .parse::<u64>()
        .map(|sectors| sectors * 512)
        .map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", p.display()),
            )
        })
}
