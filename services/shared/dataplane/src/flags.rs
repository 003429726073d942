//! Mount flags from the CSI capability, checked against an allow-list
//! (docs/safety.md §3.10). Every allowed option is a per-mount flag or a harmless
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

/// The SELinux label option kubelet adds when the CSIDriver declares
/// `seLinuxMount: true` (docs/csi.md): the whole filesystem gets this label
/// at mount time instead of a recursive relabel of every file.
const SELINUX_CONTEXT: &str = "context=";

/// Longest SELinux context we accept (kernel labels are far shorter).
const MAX_CONTEXT_LEN: usize = 255;

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
            for opt in split_options(entry.as_ref())? {
                let shown: String = opt.chars().take(64).collect();
                if let Some(value) = opt.strip_prefix(SELINUX_CONTEXT) {
                    let normal = format!("{SELINUX_CONTEXT}\"{}\"", selinux_context(value)?);
                    match out
                        .iter()
                        .find(|o: &&String| o.starts_with(SELINUX_CONTEXT))
                    {
                        None => out.push(normal),
                        Some(prev) if *prev == normal => {}
                        Some(prev) => {
                            return Err(DataPlaneError::InvalidArgument(format!(
                                "two different SELinux contexts: {prev} and {normal}"
                            )));
                        }
                    }
                    continue;
                }
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
                        .chain(["context=\"<selinux label>\""])
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

    /// The filesystem data string (`discard`, `context="…"`), if any. A bind
    /// mount takes no data: the label belongs to the staged superblock.
    pub(crate) fn data(&self) -> Option<String> {
        let d: Vec<&str> = self
            .0
            .iter()
            .filter(|o| DATA_OPTIONS.contains(&o.as_str()) || o.starts_with(SELINUX_CONTEXT))
            .map(String::as_str)
            .collect();
        (!d.is_empty()).then(|| d.join(","))
    }

    /// The `context="…"` option, when kubelet asked for an SELinux label.
    pub fn selinux_context(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|o| o.starts_with(SELINUX_CONTEXT))
            .map(String::as_str)
    }

    /// A mount(2) EINVAL with a label is almost always a node without SELinux
    /// (no LSM takes the option, so the filesystem sees an unknown option):
    /// say so instead of a bare "Invalid argument".
    pub(crate) fn explain_mount_error(&self, e: DataPlaneError) -> DataPlaneError {
        match (&e, self.selinux_context()) {
            (DataPlaneError::Io { context, source }, Some(label))
                if source.raw_os_error() == Some(nix::errno::Errno::EINVAL as i32) =>
            {
                DataPlaneError::Precondition(format!(
                    "{context}: the kernel refused the SELinux mount option {label} (EINVAL): \
                     SELinux is not enabled on this node or this filesystem cannot take a \
                     context= label; kubelet sends it only for SELinux nodes when the CSIDriver \
                     declares seLinuxMount"
                ))
            }
            _ => e,
        }
    }
}

/// Splits a comma-separated option list; commas inside double quotes belong
/// to the value (an SELinux level such as `s0:c1,c2`).
fn split_options(entry: &str) -> Result<Vec<&str>> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in entry.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&entry[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        let shown: String = entry.chars().take(64).collect();
        return Err(DataPlaneError::InvalidArgument(format!(
            "mount options {shown:?} have an unterminated quote"
        )));
    }
    parts.push(&entry[start..]);
    Ok(parts
        .into_iter()
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .collect())
}

/// Checks an SELinux context `user:role:type[:level]` (quotes optional) and
/// returns it unquoted. The kernel parses it, so only the characters real
/// labels use are let through (no quotes, spaces or separators of our own).
fn selinux_context(value: &str) -> Result<&str> {
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let shown: String = value.chars().take(64).collect();
    let bad = |why: &str| {
        Err(DataPlaneError::InvalidArgument(format!(
            "SELinux mount option context={shown} is not a valid label: {why}"
        )))
    };
    if inner.is_empty() || inner.len() > MAX_CONTEXT_LEN {
        return bad("empty or longer than 255 bytes");
    }
    if !inner
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | ','))
    {
        return bad("only [A-Za-z0-9_.:,-] are allowed");
    }
    let parts: Vec<&str> = inner.splitn(4, ':').collect();
    if parts.len() < 3 || parts[..3].iter().any(|p| p.is_empty() || p.contains(',')) {
        return bad("expected user:role:type[:level]");
    }
    Ok(inner)
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
            // SELinux labels pass only when well formed, and only as context=.
            "context=\"a\"",
            "context=",
            "context=\"system_u:object_r\"",
            "context=\"system_u:object_r:container_file_t:s0\" ,ro,\"",
            "context=\"system_u:object_r:x;reboot:s0\"",
            "context=\"system_u:object_r:x t:s0\"",
            "fscontext=\"system_u:object_r:container_file_t:s0\"",
            "rootcontext=\"system_u:object_r:container_file_t:s0\"",
        ] {
            let e = MountFlags::parse([bad]).unwrap_err();
            assert_eq!(e.reason(), rds_bus::Reason::InvalidArgument, "{bad}");
        }
        let two = MountFlags::parse([
            "context=\"system_u:object_r:container_file_t:s0:c1,c2\"",
            "context=\"system_u:object_r:container_file_t:s0:c3,c4\"",
        ]);
        assert!(two.is_err());
    }

    #[test]
    fn selinux_context_passes_as_filesystem_data() {
        // What kubelet sends (one entry, the level's comma inside quotes),
        // beside ordinary flags; a repeat of the same label is dropped.
        let label = "system_u:object_r:container_file_t:s0:c123,c456";
        let f = MountFlags::parse([
            "noatime".to_owned(),
            format!("context=\"{label}\""),
            "discard".to_owned(),
            format!("nodiratime,context=\"{label}\""),
        ])
        .unwrap();
        let want = format!("context=\"{label}\"");
        assert_eq!(
            f.as_slice(),
            ["noatime", want.as_str(), "discard", "nodiratime"]
        );
        assert_eq!(f.selinux_context(), Some(want.as_str()));
        assert_eq!(f.data(), Some(format!("{want},discard")));
        assert!(f.ms_flags().contains(MsFlags::MS_NOATIME));
        let plain = MountFlags::parse(["noatime"]).unwrap();
        assert_eq!(plain.selinux_context(), None);
        // Unquoted (no comma in the level) is accepted and quoted for the kernel.
        let unquoted =
            MountFlags::parse(["context=system_u:object_r:container_file_t:s0"]).unwrap();
        assert_eq!(
            unquoted.data().as_deref(),
            Some("context=\"system_u:object_r:container_file_t:s0\"")
        );
    }

    #[test]
    fn einval_with_a_label_is_explained() {
        let f = MountFlags::parse(["context=\"system_u:object_r:container_file_t:s0\""]).unwrap();
        let einval =
            || DataPlaneError::errno("mounting /dev/x (ext4) at /t", nix::errno::Errno::EINVAL);
        let e = f.explain_mount_error(einval());
        assert_eq!(e.reason(), rds_bus::Reason::NodePrecondition);
        assert!(e.to_string().contains("SELinux is not enabled"), "{e}");
        // Without a label, or another errno, the error is left as it was.
        let plain = MountFlags::parse(["noatime"]).unwrap();
        assert_eq!(
            plain.explain_mount_error(einval()).reason(),
            rds_bus::Reason::Internal
        );
        let eio = DataPlaneError::errno("m", nix::errno::Errno::EIO);
        assert_eq!(
            f.explain_mount_error(eio).reason(),
            rds_bus::Reason::Internal
        );
    }
}
