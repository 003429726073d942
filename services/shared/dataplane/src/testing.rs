//! Test helpers (feature `testing`): a scratch directory that cleans up its
//! mounts and loop devices even when a test panics, and a fake NVMe sysfs
//! tree. Cleanup only touches mounts under the scratch directory and loop
//! devices whose backing file lies under it, so parallel tests never
//! interfere (loop devices are global).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_arguments)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::mountinfo;

/// A temp directory owning everything mounted or loop-attached under it.
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rds-dp-")
            .tempdir()
            .expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical tempdir");
        Scratch {
            dir: Some(dir),
            root,
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `<scratch>/sim/files` (the sim's files root, docs/local-mode.md §2).
    pub fn files_root(&self) -> PathBuf {
        self.root.join("sim/files")
    }

    /// Creates the sparse backing file of RDS path `volume_path`.
    pub fn volume_file(&self, volume_path: &str, size: u64) -> PathBuf {
        let f = self.files_root().join(volume_path.trim_start_matches('/'));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        let file = std::fs::File::create(&f).unwrap();
        file.set_len(size).unwrap();
        f
    }

    /// Unmounts everything under the scratch dir (deepest first, lazily) and
    /// detaches loop devices backed by files under it.
    pub fn cleanup(&self) {
        if let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo")
            && let Ok(table) = mountinfo::parse(&text)
        {
            let mut mine: Vec<_> = table
                .entries
                .iter()
                .filter(|e| e.mount_point.starts_with(&self.root))
                .collect();
            mine.sort_by_key(|e| std::cmp::Reverse((e.mount_point.components().count(), e.id)));
            for e in mine {
                let _ = nix::mount::umount2(&e.mount_point, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        for (node, _) in loops_backed_under(&self.root) {
            let _ = Command::new("losetup").arg("-d").arg(&node).status();
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.cleanup();
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
    }
}

/// Loop devices (`/dev/loopN`, backing file) whose backing file is under `root`.
pub fn loops_backed_under(root: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/block") else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file")) {
            let b = PathBuf::from(b.trim().trim_end_matches(" (deleted)"));
            if b.starts_with(root) {
                out.push((PathBuf::from("/dev").join(&name), b));
            }
        }
    }
    out
}

/// A fake `/sys` + `/dev` for the NVMe plane (docs/ARCHITECTURE.md §9.2 layouts).
pub struct FakeNvmeTree {
    sysfs: PathBuf,
    dev: PathBuf,
}

impl FakeNvmeTree {
    pub fn new(root: &Path) -> Self {
        let t = FakeNvmeTree {
            sysfs: root.join("sys"),
            dev: root.join("dev"),
        };
        for d in [
            "class/nvme-subsystem",
            "class/nvme",
            "class/block",
            "dev/block",
        ] {
            std::fs::create_dir_all(t.sysfs.join(d)).unwrap();
        }
        std::fs::create_dir_all(&t.dev).unwrap();
        t
    }

    pub fn sysfs_root(&self) -> &Path {
        &self.sysfs
    }

    pub fn dev_root(&self) -> &Path {
        &self.dev
    }

    /// `class/nvme-subsystem/<subsys>/subsysnqn`.
    pub fn add_subsystem(&self, subsys: &str, nqn: &str) {
        let d = self.sysfs.join("class/nvme-subsystem").join(subsys);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("subsysnqn"), format!("{nqn}\n")).unwrap();
    }

    /// Controller `ctrl` (`class/nvme/<ctrl>`, linked from the subsystem).
    pub fn add_controller(&self, subsys: &str, ctrl: &str) {
        let nqn = std::fs::read_to_string(
            self.sysfs
                .join("class/nvme-subsystem")
                .join(subsys)
                .join("subsysnqn"),
        )
        .unwrap();
        let c = self.sysfs.join("class/nvme").join(ctrl);
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("subsysnqn"), nqn).unwrap();
        symlink(
            &c,
            self.sysfs
                .join("class/nvme-subsystem")
                .join(subsys)
                .join(ctrl),
        )
        .unwrap();
    }

    /// A namespace entry `entry` (`nvmeXnY` under a controller, `nvmeXcYnZ`
    /// for a multipath path, or a head `nvmeXnY` in the subsystem dir when
    /// `ctrl` is None) whose block device `head` has number `dev` and
    /// `size_bytes`; with `node`, also `<dev>/<head>` as a block node.
    pub fn add_namespace(
        &self,
        subsys: &str,
        ctrl: Option<&str>,
        entry: &str,
        head: &str,
        dev: (u64, u64),
        size_bytes: u64,
        node: bool,
    ) {
        let parent = match ctrl {
            Some(c) => self.sysfs.join("class/nvme").join(c),
            None => self.sysfs.join("class/nvme-subsystem").join(subsys),
        };
        std::fs::create_dir_all(parent.join(entry)).unwrap();
        let b = self.sysfs.join("class/block").join(head);
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("dev"), format!("{}:{}\n", dev.0, dev.1)).unwrap();
        self.set_size(dev, size_bytes);
        if node {
            let p = self.dev.join(head);
            let _ = std::fs::remove_file(&p);
            nix::sys::stat::mknod(
                &p,
                nix::sys::stat::SFlag::S_IFBLK,
                nix::sys::stat::Mode::from_bits_truncate(0o660),
                nix::sys::stat::makedev(dev.0, dev.1),
            )
            .unwrap();
        }
    }

    /// `dev/block/M:m/size` in 512-byte sectors.
    pub fn set_size(&self, dev: (u64, u64), size_bytes: u64) {
        let d = self.sysfs.join(format!("dev/block/{}:{}", dev.0, dev.1));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("size"), format!("{}\n", size_bytes / 512)).unwrap();
    }

    /// Removes a subsystem, its controllers and their block devices (as the
    /// kernel does on disconnect / controller loss).
    pub fn remove_subsystem(&self, subsys: &str) {
        let d = self.sysfs.join("class/nvme-subsystem").join(subsys);
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ctrl = self.sysfs.join("class/nvme").join(&name);
            if ctrl.is_dir() {
                for ns in std::fs::read_dir(&ctrl).into_iter().flatten().flatten() {
                    self.remove_block(&ns.file_name().to_string_lossy());
                }
                let _ = std::fs::remove_dir_all(&ctrl);
            } else if e.path().is_dir() && name.starts_with("nvme") {
                self.remove_block(&name);
            }
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    fn remove_block(&self, entry: &str) {
        let head = match entry.split_once('c') {
            Some((inst, rest)) if entry.starts_with("nvme") => match rest.split_once('n') {
                Some((_, nsid)) => format!("{inst}n{nsid}"),
                None => entry.to_owned(),
            },
            _ => entry.to_owned(),
        };
        let _ = std::fs::remove_dir_all(self.sysfs.join("class/block").join(&head));
        let _ = std::fs::remove_file(self.dev.join(&head));
    }
}
