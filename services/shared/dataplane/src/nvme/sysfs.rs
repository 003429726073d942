//! Finding an NVMe subsystem's block device through sysfs (docs/ARCHITECTURE.md §9.2).
//! The root is configurable so tests build a fake tree. Layouts handled:
//! - native multipath: `class/nvme-subsystem/nvme-subsysN/nvmeNnM` (the head
//!   disk) plus controllers `nvmeX` whose path namespaces are `nvmeNcXnM`;
//! - no multipath: `class/nvme/nvmeX/nvmeXnM`.
//!
//! A name becomes a device only when `class/block/<name>/dev` gives its
//! number and `<dev_root>/<name>` is a block node with that same number.

use std::path::{Path, PathBuf};

use crate::device::Device;

/// One NVMe subsystem as sysfs shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsystemInfo {
    /// `nvme-subsysN` (or the controller name when only `class/nvme` has it).
    pub name: String,
    pub nqn: String,
    /// Controller names (`nvmeX`), whose char devices take `ns-rescan`.
    pub controllers: Vec<String>,
    /// Block device names of its namespaces (`nvmeNnM`), sorted by nsid.
    pub namespaces: Vec<String>,
}

/// What an NQN resolves to right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    NotConnected,
    /// Connected, but no usable block device (yet, or any more).
    NoDevice(SubsystemInfo),
    Device(Device),
}

#[derive(Debug, Clone)]
pub struct NvmeSysfs {
    sysfs_root: PathBuf,
    dev_root: PathBuf,
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `nvmeX`.
fn is_controller(name: &str) -> bool {
    name.strip_prefix("nvme").is_some_and(digits)
}

/// `nvmeNnM` → (`nvmeNnM`, M); `nvmeNcXnM` → (`nvmeNnM`, M) (its head disk).
fn namespace_head(name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix("nvme")?;
    let (left, nsid) = rest.rsplit_once('n')?;
    if !digits(nsid) {
        return None;
    }
    let inst = match left.split_once('c') {
        Some((inst, ctrl)) if digits(inst) && digits(ctrl) => inst,
        None if digits(left) => left,
        _ => return None,
    };
    Some((format!("nvme{inst}n{nsid}"), nsid.parse().ok()?))
}

fn read_trimmed(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl NvmeSysfs {
    pub fn new(sysfs_root: &Path, dev_root: &Path) -> Self {
        NvmeSysfs {
            sysfs_root: sysfs_root.to_path_buf(),
            dev_root: dev_root.to_path_buf(),
        }
    }

    /// Every subsystem (merged by NQN) with its controllers and namespaces.
    pub fn subsystems(&self) -> Vec<SubsystemInfo> {
        let mut out: Vec<SubsystemInfo> = Vec::new();
        let mut add = |name: &str, nqn: String, ctrls: Vec<String>, nss: Vec<(String, u32)>| {
            let idx = match out.iter().position(|s| s.nqn == nqn) {
                Some(i) => i,
                None => {
                    out.push(SubsystemInfo {
                        name: name.to_owned(),
                        nqn,
                        controllers: Vec::new(),
                        namespaces: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            let s = &mut out[idx];
            for c in ctrls {
                if !s.controllers.contains(&c) {
                    s.controllers.push(c);
                }
            }
            let mut with_id: Vec<(String, u32)> = s
                .namespaces
                .drain(..)
                .filter_map(|n| namespace_head(&n))
                .chain(nss)
                .collect();
            with_id.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
            with_id.dedup_by(|a, b| a.0 == b.0);
            s.namespaces = with_id.into_iter().map(|(n, _)| n).collect();
        };

        let subsys_class = self.sysfs_root.join("class/nvme-subsystem");
        for sub in entries(&subsys_class) {
            let dir = subsys_class.join(&sub);
            let Some(nqn) = read_trimmed(&dir.join("subsysnqn")) else {
                continue;
            };
            let mut ctrls = Vec::new();
            let mut nss = Vec::new();
            for e in entries(&dir) {
                if is_controller(&e) {
                    nss.extend(
                        entries(&dir.join(&e))
                            .iter()
                            .filter_map(|n| namespace_head(n)),
                    );
                    ctrls.push(e);
                } else if let Some(h) = namespace_head(&e) {
                    nss.push(h);
                }
            }
            add(&sub, nqn, ctrls, nss);
        }
        // Controllers seen only through class/nvme (older kernels, or a
        // subsystem link not there yet).
        let ctrl_class = self.sysfs_root.join("class/nvme");
        for ctrl in entries(&ctrl_class)
            .into_iter()
            .filter(|c| is_controller(c))
        {
            let dir = ctrl_class.join(&ctrl);
            let Some(nqn) = read_trimmed(&dir.join("subsysnqn")) else {
                continue;
            };
            let nss: Vec<(String, u32)> = entries(&dir)
                .iter()
                .filter_map(|n| namespace_head(n))
                .collect();
            add(&ctrl, nqn, vec![ctrl.clone()], nss);
        }
        out
    }

    /// The subsystem with exactly this NQN.
    pub fn find(&self, nqn: &str) -> Option<SubsystemInfo> {
        self.subsystems().into_iter().find(|s| s.nqn == nqn)
    }

    /// Resolves `nqn` to its block device now (first namespace by nsid).
    pub fn resolve(&self, nqn: &str) -> Resolution {
        let Some(sub) = self.find(nqn) else {
            return Resolution::NotConnected;
        };
        for name in &sub.namespaces {
            if let Some(d) = self.device(name) {
                return Resolution::Device(d);
            }
        }
        Resolution::NoDevice(sub)
    }

    fn device(&self, name: &str) -> Option<Device> {
        let dev = read_trimmed(&self.sysfs_root.join(format!("class/block/{name}/dev")))?;
        let (maj, min) = dev.split_once(':')?;
        let (major, minor): (u64, u64) = (maj.parse().ok()?, min.parse().ok()?);
        let node = self.dev_root.join(name);
        match Device::from_node(&node) {
            Ok(Some(d)) if d.dev() == (major, minor) => Some(d),
            Ok(Some(d)) => {
                tracing::warn!(node = %node.display(), found = ?d.dev(), sysfs = ?(major, minor), "device node does not match sysfs; ignoring it");
                None
            }
            _ => None,
        }
    }

    pub fn dev_root(&self) -> &Path {
        &self.dev_root
    }

    pub fn sysfs_root(&self) -> &Path {
        &self.sysfs_root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names() {
        assert_eq!(namespace_head("nvme0n1"), Some(("nvme0n1".into(), 1)));
        assert_eq!(namespace_head("nvme2c5n3"), Some(("nvme2n3".into(), 3)));
        assert_eq!(namespace_head("nvme0"), None);
        assert_eq!(namespace_head("nvme0n1p1"), None);
        assert_eq!(namespace_head("nvmeXn1"), None);
        assert!(is_controller("nvme12"));
        assert!(!is_controller("nvme-subsys0"));
        assert!(!is_controller("nvme1n1"));
    }
}
