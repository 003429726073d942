//! The nvmet part of configfs (`<root>/nvmet/{subsystems,ports}`) as plain file operations.
//!
//! On real configfs `mkdir` of a group makes its attribute files and default groups
//! (`namespaces/`, `allowed_hosts/`, a port's `subsystems/`), and `rmdir` drops them again. A
//! plain directory tree (unit tests, any machine without nvmet) has no such magic, so in
//! "plain" mode this module makes and removes the default groups and attribute files itself.
//! Everything else — which calls are made, in which order — is the same in both modes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// `CONFIGFS_MAGIC` from `<linux/magic.h>`.
const CONFIGFS_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x6265_6570);

/// The namespace id every exported disk gets (one file = one namespace).
pub(crate) const NSID: &str = "1";

pub(crate) const SUBSYSTEM_DEFAULT_GROUPS: &[&str] = &["namespaces", "allowed_hosts"];
pub(crate) const PORT_DEFAULT_GROUPS: &[&str] = &["subsystems", "referrals"];

#[derive(Debug)]
pub(crate) struct Tree {
    nvmet: PathBuf,
    /// Not configfs: default groups and attribute files are ordinary entries.
    plain: bool,
}

impl Tree {
    /// `<configfs_root>/nvmet`; `None` when it (or its `subsystems`/`ports`) is missing.
    pub(crate) fn open(configfs_root: &Path) -> Option<Self> {
        let nvmet = configfs_root.join("nvmet");
        if !nvmet.join("subsystems").is_dir() || !nvmet.join("ports").is_dir() {
            return None;
        }
        let plain = nix::sys::statfs::statfs(&nvmet)
            .map(|s| s.filesystem_type() != CONFIGFS_MAGIC)
            .unwrap_or(true);
        Some(Self { nvmet, plain })
    }

    pub(crate) fn is_plain(&self) -> bool {
        self.plain
    }

    pub(crate) fn subsystem(&self, nqn: &str) -> PathBuf {
        self.nvmet.join("subsystems").join(nqn)
    }

    pub(crate) fn namespace(&self, nqn: &str) -> PathBuf {
        self.subsystem(nqn).join("namespaces").join(NSID)
    }

    pub(crate) fn port(&self, id: u16) -> PathBuf {
        self.nvmet.join("ports").join(id.to_string())
    }

    /// `nvmet/hosts/<host NQN>` (allowed-host links point here).
    pub(crate) fn host(&self, host_nqn: &str) -> PathBuf {
        self.nvmet.join("hosts").join(host_nqn)
    }

    pub(crate) fn link(&self, id: u16, nqn: &str) -> PathBuf {
        self.port(id).join("subsystems").join(nqn)
    }

    /// `mkdir` of a configfs group (plain mode: plus its default groups).
    pub(crate) fn make_group(&self, dir: &Path, default_groups: &[&str]) -> io::Result<()> {
        fs::create_dir(dir)?;
        if self.plain {
            for g in default_groups {
                fs::create_dir(dir.join(g))?;
            }
        }
        Ok(())
    }

    /// `rmdir` of a configfs group. Plain mode first removes what configfs would drop by itself
    /// (attribute files, empty default groups); anything else left (a child group, a link)
    /// makes it fail, as configfs does.
    pub(crate) fn drop_group(&self, dir: &Path, default_groups: &[&str]) -> io::Result<()> {
        if self.plain {
            for e in fs::read_dir(dir)? {
                let e = e?;
                if e.file_type()?.is_file() {
                    fs::remove_file(e.path())?;
                }
            }
            for g in default_groups {
                match fs::remove_dir(dir.join(g)) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    r => r?,
                }
            }
        }
        fs::remove_dir(dir)
    }

    /// Write one attribute (configfs parses the value; no trailing newline needed).
    pub(crate) fn write_attr(&self, dir: &Path, name: &str, value: &str) -> io::Result<()> {
        let p = dir.join(name);
        if !self.plain && !p.exists() {
            // configfs cannot create files: name the missing attribute instead of EACCES.
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("attribute {name} does not exist (kernel too old?)"),
            ));
        }
        fs::write(p, value)
    }

    /// One attribute, trimmed; `None` when it is absent or unreadable.
    pub(crate) fn read_attr(&self, dir: &Path, name: &str) -> Option<String> {
        fs::read_to_string(dir.join(name))
            .ok()
            .map(|s| s.trim_end_matches(['\n', '\0']).to_owned())
    }

    pub(crate) fn has_attr(&self, dir: &Path, name: &str) -> bool {
        dir.join(name).exists()
    }

    /// Names of the subsystems linked into port `id`.
    pub(crate) fn links(&self, id: u16) -> Vec<String> {
        names(&self.port(id).join("subsystems"))
    }

    /// Link subsystem `nqn` into port `id` (this enables the port: the kernel starts listening).
    pub(crate) fn add_link(&self, id: u16, nqn: &str) -> io::Result<()> {
        std::os::unix::fs::symlink(self.subsystem(nqn), self.link(id, nqn))
    }

    pub(crate) fn remove_link(&self, id: u16, nqn: &str) -> io::Result<()> {
        fs::remove_file(self.link(id, nqn))
    }

    pub(crate) fn exists(&self, p: &Path) -> bool {
        p.symlink_metadata().is_ok()
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
