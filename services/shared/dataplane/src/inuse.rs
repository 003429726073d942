//! Who uses a volume's block device or the filesystem on it, found in `/proc`
//! and sysfs (not lsof: the Go driver's BusyBox lsof made the check inert,
//! and its own PID once blocked every unstage — docs/safety.md):
//! - a mount of the device in any mount namespace a live process is in
//!   (one `/proc/<pid>/mountinfo` read per namespace, `/proc/1` included);
//! - a process with a file (or its working directory) on the filesystem;
//! - a process with the block device itself open;
//! - a kernel holder (device-mapper, md) in `/sys/dev/block/M:m/holders`;
//! - a live ext4/xfs superblock (`/sys/fs/{ext4,xfs}/<dev>`), which outlives
//!   every visible mount only in a namespace no process is in.
//!
//! Never holders: this process, and transient openers (udev workers, blkid)
//! that probe a device for a moment after every change.

use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::mountinfo;

/// Programs that open block devices for a moment (udev rules, probes).
const TRANSIENT_OPENERS: &[&str] = &[
    "systemd-udevd",
    "(udev-worker)",
    "udevd",
    "udevadm",
    "blkid",
    // losetup opens loop devices while it looks for a free one or reads their
    // status; it never writes to them, and under load (loop operations share
    // one kernel lock) that open can outlast the bounded holder wait, which
    // made unstage refuse on another program's lookup.
    "losetup",
];

/// One thing that uses the device or its filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Use {
    /// The filesystem is mounted at `mount_point` in mount namespace `ns`
    /// (seen through process `pid`).
    Mount {
        ns: String,
        pid: u32,
        comm: String,
        mount_point: PathBuf,
    },
    /// A process has a file, or its working directory, on the filesystem.
    OpenFile {
        pid: u32,
        comm: String,
        path: PathBuf,
    },
    /// A process has the block device itself open.
    OpenDevice { pid: u32, comm: String },
    /// A kernel holder (dm, md) sits on the device.
    Kernel { name: String },
}

impl Use {
    /// A process holding the raw device: may let go by itself (bounded wait).
    pub fn is_device_opener(&self) -> bool {
        matches!(self, Use::OpenDevice { .. })
    }
}

impl std::fmt::Display for Use {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Use::Mount {
                ns,
                pid,
                comm,
                mount_point,
            } => write!(
                f,
                "mounted at {} in mount namespace {ns} (pid {pid} {comm})",
                mount_point.display()
            ),
            Use::OpenFile { pid, comm, path } => {
                write!(f, "pid {pid} ({comm}) has {} open", path.display())
            }
            Use::OpenDevice { pid, comm } => write!(f, "pid {pid} ({comm}) has the device open"),
            Use::Kernel { name } => write!(f, "kernel holder {name}"),
        }
    }
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub uses: Vec<Use>,
    /// `ext4`/`xfs` when the kernel still has a superblock of the device.
    pub live_superblock: Option<String>,
}

impl Scan {
    pub fn is_clear(&self) -> bool {
        self.uses.is_empty() && self.live_superblock.is_none()
    }

    /// Human list of the holders (first few, bounded for errors and events).
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.uses.iter().take(5).map(ToString::to_string).collect();
        if self.uses.len() > 5 {
            parts.push(format!("and {} more", self.uses.len() - 5));
        }
        if parts.is_empty()
            && let Some(fs) = &self.live_superblock
        {
            parts.push(format!(
                "the kernel still has its {fs} superblock (mounted in a mount namespace no visible process is in)"
            ));
        }
        parts.join("; ")
    }
}

/// What to look for.
#[derive(Debug, Clone)]
pub struct ScanRequest<'a> {
    pub proc_root: &'a Path,
    pub sysfs_root: &'a Path,
    pub dev: (u64, u64),
    /// Our own mounts that do not count, by mount id and peer group: the
    /// mount itself wherever it is seen (mount ids are global, a copy in
    /// another namespace has its own), and its propagated peers (same
    /// `shared:N`), which unmounting ours takes away.
    pub ignore_mounts: &'a [(u32, Option<u32>)],
}

/// Scans `/proc` and sysfs for users of block device `dev` (see module docs).
pub fn scan(req: &ScanRequest<'_>) -> Scan {
    let own = std::process::id();
    let want = nix::sys::stat::makedev(req.dev.0, req.dev.1);
    let mut out = Scan {
        live_superblock: live_superblock(req.sysfs_root, req.dev),
        ..Scan::default()
    };
    let (major, minor) = req.dev;
    if let Ok(rd) = std::fs::read_dir(
        req.sysfs_root
            .join(format!("dev/block/{major}:{minor}/holders")),
    ) {
        for e in rd.flatten() {
            out.uses.push(Use::Kernel {
                name: e.file_name().to_string_lossy().into_owned(),
            });
        }
    }
    let Ok(procs) = std::fs::read_dir(req.proc_root) else {
        return out;
    };
    let mut namespaces = HashSet::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let dir = p.path();
        let comm = || {
            std::fs::read_to_string(dir.join("comm"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".to_owned())
        };
        scan_mounts(req, pid, &dir, &mut namespaces, &comm, &mut out.uses);
        if pid == own {
            continue;
        }
        scan_files(req.dev, want, pid, &dir, &comm, &mut out.uses);
    }
    out
}

/// Mounts of the device in `pid`'s mount namespace, once per namespace.
fn scan_mounts(
    req: &ScanRequest<'_>,
    pid: u32,
    dir: &Path,
    namespaces: &mut HashSet<String>,
    comm: &dyn Fn() -> String,
    uses: &mut Vec<Use>,
) {
    let ns = std::fs::read_link(dir.join("ns/mnt"))
        .map(|l| l.display().to_string())
        .unwrap_or_else(|_| format!("of pid {pid}"));
    if !namespaces.insert(ns.clone()) {
        return;
    }
    let Ok(text) = std::fs::read_to_string(dir.join("mountinfo")) else {
        return; // the process exited, or a kernel thread
    };
    let Ok(table) = mountinfo::parse(&text) else {
        return;
    };
    for e in table.of_device(req.dev) {
        let ours = req
            .ignore_mounts
            .iter()
            .any(|(id, group)| *id == e.id || (group.is_some() && *group == e.shared_group));
        if ours {
            continue;
        }
        uses.push(Use::Mount {
            ns: ns.clone(),
            pid,
            comm: comm(),
            mount_point: e.mount_point.clone(),
        });
    }
}

/// Open files of `pid` on the filesystem of `dev` (st_dev), its working
/// directory there, or the device node itself (st_rdev).
fn scan_files(
    dev: (u64, u64),
    want: u64,
    pid: u32,
    dir: &Path,
    comm: &dyn Fn() -> String,
    uses: &mut Vec<Use>,
) {
    let on_fs = |m: &std::fs::Metadata| (m.dev() == want) && want != 0;
    if let Ok(m) = std::fs::metadata(dir.join("cwd"))
        && on_fs(&m)
    {
        let path = std::fs::read_link(dir.join("cwd")).unwrap_or_default();
        uses.push(Use::OpenFile {
            pid,
            comm: comm(),
            path,
        });
    }
    let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
        return;
    };
    let mut device_open = false;
    for fd in fds.flatten() {
        let Ok(m) = std::fs::metadata(fd.path()) else {
            continue;
        };
        if m.file_type().is_block_device() && m.rdev() == want {
            device_open = true;
        } else if on_fs(&m) {
            let path = std::fs::read_link(fd.path()).unwrap_or_default();
            uses.push(Use::OpenFile {
                pid,
                comm: comm(),
                path,
            });
            return; // one file names the process well enough
        }
    }
    if device_open {
        let name = comm();
        if TRANSIENT_OPENERS.contains(&name.as_str()) {
            tracing::debug!(pid, comm = %name, dev = ?dev, "transient opener ignored");
            return;
        }
        uses.push(Use::OpenDevice { pid, comm: name });
    }
}

/// `ext4`/`xfs` when `/sys/fs/<fs>/<kernel name of dev>` exists.
pub fn live_superblock(sysfs_root: &Path, dev: (u64, u64)) -> Option<String> {
    let link =
        std::fs::read_link(sysfs_root.join(format!("dev/block/{}:{}", dev.0, dev.1))).ok()?;
    let name = link.file_name()?.to_owned();
    ["ext4", "xfs"]
        .into_iter()
        .find(|fs| sysfs_root.join("fs").join(fs).join(&name).exists())
        .map(str::to_owned)
}
