//! Mount flags from the CSI capability, checked against an allow-list
//! (anchor §8.7). Every allowed option is a per-mount flag or a harmless
//! data option, so nothing the user writes reaches the kernel unchecked.

use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};

use crate::error::{DataPlaneError, Result};

/// Options that become mount(2) flags (or none: fstab-only words).
const FLAG_OPTIONS: &[(&str, Option<MsFlags>)] = &[
    ("ro", Some(MsFlags::MS_RDONLY)),
    ("rw", None),
    ("nosuid", Some(MsFlags::MS_NOSUID)),
    ("nodev", Some(MsFlags::MS_NODEV)),
    ("noexec", Some(MsFlags::MS_NOEXEC)),
    ("sync", Some(MsFlags::MS_SYNCHRONOUS)),
    ("async", None),
    ("relatime", Some(MsFlags::MS_RELATIME)),
    ("noatime", Some(MsFlags::MS_NOATIME)),
    ("nodiratime", Some(MsFlags::MS_NODIRATIME)),
    ("strictatime", Some(MsFlags::MS_STRICTATIME)),
    ("lazytime", Some(MsFlags::MS_LAZYTIME)),
    ("nolazytime", None),
    ("defaults", None),
    // fstab/userspace words: accepted (old StorageClasses carry them), no effect.
    ("auto", None),
    ("noauto", None),
    ("user", None),
    ("nouser", None),
    ("_netdev", None),
];

/// Filesystem data options that are safe for ext3/ext4/xfs.
const DATA_OPTIONS: &[&str] = &["discard", "nodiscard"];

/// Options that would weaken the node (setuid binaries, device nodes).
const FORBIDDEN: &[&str] = &["suid", "dev", "exec"];

/// A validated list of mount options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountFlags(Vec<String>);

impl MountFlags {
    /// Validates CSI `mount_flags` (each entry may itself be comma-separated).
    pub fn parse<I, S>(flags: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Vec::new();
        for entry in flags {
            for opt in entry
                .as_ref()
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
            {
                let shown: String = opt.chars().take(64).collect();
                if FORBIDDEN.contains(&opt) {
                    return Err(DataPlaneError::InvalidArgument(format!(
                        "mount option {shown:?} is not allowed: it would permit setuid/device/exec on the node"
                    )));
                }
                let known =
                    FLAG_OPTIONS.iter().any(|(n, _)| *n == opt) || DATA_OPTIONS.contains(&opt);
                if !known {
                    let allowed: Vec<&str> = FLAG_OPTIONS
                        .iter()
                        .map(|(n, _)| *n)
                        .chain(DATA_OPTIONS.iter().copied())
                        .collect();
                    return Err(DataPlaneError::InvalidArgument(format!(
                        "mount option {shown:?} is not in the allow-list ({})",
                        allowed.join(", ")
                    )));
                }
                if !out.iter().any(|o: &String| o == opt) {
                    out.push(opt.to_owned());
                }
            }
        }
        Ok(MountFlags(out))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn readonly(&self) -> bool {
        self.0.iter().any(|o| o == "ro")
    }

    /// The mount(2) flags, always with `nosuid,nodev` (node hardening).
    pub(crate) fn ms_flags(&self) -> MsFlags {
        let mut f = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        for o in &self.0 {
            if let Some((_, Some(flag))) = FLAG_OPTIONS.iter().find(|(n, _)| n == o) {
                f |= *flag;
            }
        }
        f
    }

    /// The filesystem data string (`discard`, …), if any.
    pub(crate) fn data(&self) -> Option<String> {
        let d: Vec<&str> = self
            .0
            .iter()
            .filter(|o| DATA_OPTIONS.contains(&o.as_str()))
            .map(String::as_str)
            .collect();
        (!d.is_empty()).then(|| d.join(","))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn allow_list() {
        let f = MountFlags::parse(["noatime,nodiratime", "discard", "noatime", " ro "]).unwrap();
        assert_eq!(f.as_slice(), ["noatime", "nodiratime", "discard", "ro"]);
        assert!(f.readonly());
        let ms = f.ms_flags();
        assert!(ms.contains(
            MsFlags::MS_NOATIME | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV
        ));
        assert_eq!(f.data().as_deref(), Some("discard"));
        assert_eq!(
            MountFlags::parse(Vec::<String>::new()).unwrap().data(),
            None
        );
    }

    #[test]
    fn rejects_unknown_and_dangerous_options() {
        for bad in [
            "suid",
            "dev",
            "exec",
            "uid=0",
            "errors=continue",
            "bind",
            "remount",
            "x-mount.mkdir",
            "context=\"a\"",
        ] {
            let e = MountFlags::parse([bad]).unwrap_err();
            assert_eq!(e.reason(), rds_bus::Reason::InvalidArgument, "{bad}");
        }
    }
}
