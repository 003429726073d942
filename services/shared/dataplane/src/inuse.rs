//! Who holds a block device open: a scan of `/proc/*/fd` by device number
//! (not lsof: the Go driver's BusyBox lsof made the check inert, and its own
//! PID once blocked every unstage — incident 17.8) plus sysfs holders.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// A process (or kernel holder) with the device open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    pub name: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(p) => write!(f, "{}[{p}]", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// Holders of block device `dev`, excluding this process.
pub fn holders(proc_root: &Path, sysfs_root: &Path, dev: (u64, u64)) -> Vec<Holder> {
    let own = std::process::id();
    let want = nix::sys::stat::makedev(dev.0, dev.1);
    let mut out = Vec::new();
    if let Ok(rd) =
        std::fs::read_dir(sysfs_root.join(format!("dev/block/{}:{}/holders", dev.0, dev.1)))
    {
        for e in rd.flatten() {
            out.push(Holder {
                pid: None,
                name: format!("kernel holder {}", e.file_name().to_string_lossy()),
            });
        }
    }
    let Ok(procs) = std::fs::read_dir(proc_root) else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::metadata(fd.path())
                .map(|m| m.file_type().is_block_device() && m.rdev() == want)
                .unwrap_or(false)
        });
        if holds {
            let name = std::fs::read_to_string(p.path().join("comm"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".to_owned());
            out.push(Holder {
                pid: Some(pid),
                name,
            });
        }
    }
    out
}
