//! Filesystems: the "is there one?" decision (the most important safety rule
//! of the Go driver, docs/safety.md §2.5), mkfs, and online grow.
//!
//! Only a *definitive* "nothing here" allows a format: `blkid -p` exit 2
//! **and** our own proof that the device is readable and not empty — blkid
//! also exits 2 when it cannot open the device (checked: util-linux 2.38
//! prints nothing and exits 2 for a missing or detached device). Everything
//! else (exit 1, 4, 8, a timeout, an unreadable device) is retried a bounded
//! number of times and then the stage fails. mkfs never gets `-F`/`-f`.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::command::{Cmd, CommandRunner};
use crate::device::Device;
use crate::error::{DataPlaneError, Result};

/// Filesystems a volume may be formatted with (docs/csi.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    Ext4,
    Ext3,
    Xfs,
}

impl FsType {
    /// `""` → ext4 (the CSI default); anything but ext4/ext3/xfs is refused.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "" | "ext4" => Ok(FsType::Ext4),
            "ext3" => Ok(FsType::Ext3),
            "xfs" => Ok(FsType::Xfs),
            other => {
                let shown: String = other.chars().take(32).collect();
                Err(DataPlaneError::InvalidArgument(format!(
                    "fsType {shown:?} is not supported (ext4, ext3, xfs)"
                )))
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Ext3 => "ext3",
            FsType::Xfs => "xfs",
        }
    }

    /// mkfs without force flags: mkfs.xfs then refuses an existing filesystem
    /// on its own, a second net under the blkid decision.
    pub(crate) fn mkfs(self, device: &Path, timeout: Duration) -> Cmd {
        let prog = match self {
            FsType::Ext4 => "mkfs.ext4",
            FsType::Ext3 => "mkfs.ext3",
            FsType::Xfs => "mkfs.xfs",
        };
        Cmd::new(prog, timeout)
            .arg("-q")
            .arg(device.display().to_string())
    }
}

impl std::fmt::Display for FsType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Provably blank: blkid exit 2 and every region where a filesystem keeps
    /// its headers or backups reads as zeros ([`blank_regions`]).
    Empty,
    /// blkid found no signature, but the device is not blank: a damaged
    /// filesystem (a zeroed primary superblock with its backups intact, a
    /// smashed XFS AG0 header) or data blkid does not know. Never formatted.
    Data { offset: u64 },
    /// A filesystem (ours or foreign): mount it as it is.
    Filesystem {
        fs_type: String,
        uuid: Option<String>,
    },
    /// Something that is not a filesystem (partition table, LUKS, LVM, …):
    /// neither format nor mount.
    Other(String),
}

/// Bounded retry policy for undetermined probes.
#[derive(Debug, Clone, Copy)]
pub struct ProbePolicy {
    pub attempts: u32,
    pub delay: Duration,
    pub timeout: Duration,
}

/// Probes `device`, retrying undetermined answers; fails with
/// [`DataPlaneError::FsUndetermined`] when no attempt was definitive.
pub(crate) async fn probe(
    runner: &dyn CommandRunner,
    device: &Device,
    policy: ProbePolicy,
) -> Result<Probe> {
    let attempts = policy.attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        match probe_once(runner, device, policy.timeout).await {
            Ok(p) => {
                tracing::info!(device = %device, attempt, result = ?p, "filesystem probe");
                return Ok(p);
            }
            Err(why) => {
                tracing::warn!(device = %device, attempt, attempts, %why, "filesystem state undetermined; not formatting");
                last = why;
            }
        }
        if attempt < attempts {
            tokio::time::sleep(policy.delay).await;
        }
    }
    Err(DataPlaneError::FsUndetermined {
        device: device.path.display().to_string(),
        attempts,
        last,
    })
}

/// One probe; `Err` = not definitive (retry).
async fn probe_once(
    runner: &dyn CommandRunner,
    device: &Device,
    timeout: Duration,
) -> std::result::Result<Probe, String> {
    let path = device.path.display().to_string();
    let cmd = Cmd::new("blkid", timeout)
        .args(["-p", "-o", "export"])
        .arg(path.clone());
    // The blank check reads while blkid runs (both only read): a blank
    // device costs the longer of the two, not their sum. Any other answer
    // stops the read at its next chunk.
    let stop = Arc::new(AtomicBool::new(false));
    let (p, flag) = (device.path.clone(), stop.clone());
    let check = tokio::task::spawn_blocking(move || first_non_zero(&p, &flag));
    let out = match runner.run(&cmd).await {
        Ok(out) => out,
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            return Err(e.to_string());
        }
    };
    if out.code != Some(2) {
        stop.store(true, Ordering::Relaxed);
    }
    match out.code {
        Some(0) => {
            let kv = parse_export(&out.stdout);
            let usage = kv.get("USAGE").map(String::as_str).unwrap_or("filesystem");
            match kv.get("TYPE") {
                Some(t) if usage == "filesystem" => Ok(Probe::Filesystem {
                    fs_type: t.clone(),
                    uuid: kv.get("UUID").cloned(),
                }),
                Some(t) => Ok(Probe::Other(format!("a {t} signature (usage {usage})"))),
                None => match kv.get("PTTYPE") {
                    Some(pt) => Ok(Probe::Other(format!("a {pt} partition table"))),
                    None => Err(format!(
                        "blkid exit 0 without TYPE: {:?}",
                        out.stdout.trim()
                    )),
                },
            }
        }
        Some(2) => {
            // blkid says nothing found. Prove the device reads, and reads as
            // zeros where any filesystem would have left a trace; otherwise
            // "nothing found" may mean "could not look" or "damaged".
            match tokio::time::timeout(timeout, check).await {
                Ok(Ok(Ok(None))) => Ok(Probe::Empty),
                Ok(Ok(Ok(Some(offset)))) => Ok(Probe::Data { offset }),
                Ok(Ok(Err(why))) => Err(format!("blkid found nothing but {why}")),
                Ok(Err(e)) => Err(format!("readability check failed: {e}")),
                Err(_) => Err("readability check timed out".to_owned()),
            }
        }
        _ => Err(format!("blkid {}", out.message())),
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Where filesystems keep headers and backups, as `(offset, len)` clamped
/// to a device of `size` bytes: the first 8 MiB (every primary superblock,
/// XFS AG0's headers in the first 64 KiB, partition tables, LUKS/LVM
/// headers), the last 1 MiB (GPT backup, md/LVM trailers), and ext4's first
/// backup superblock for each block size — group 1 starts at 8 MiB + 1 KiB
/// with 1 KiB blocks, at 32 MiB with 2 KiB and at 128 MiB with 4 KiB.
pub fn blank_regions(size: u64) -> Vec<(u64, u64)> {
    let mut v = vec![(0, 8 * MIB)];
    v.extend([8 * MIB + KIB, 32 * MIB, 128 * MIB].map(|o| (o, 4 * KIB)));
    v.push((size.saturating_sub(MIB), MIB));
    v.into_iter()
        .filter(|(o, _)| *o < size)
        .map(|(o, l)| (o, l.min(size - o)))
        .collect()
}

static ZEROS: [u8; MIB as usize] = [0; MIB as usize];

/// The device opens, has a non-zero size and reads back: `None` when every
/// [`blank_regions`] byte is zero, else the first non-zero offset. Gives up
/// (with an error) once `stop` is set.
fn first_non_zero(path: &Path, stop: &AtomicBool) -> std::result::Result<Option<u64>, String> {
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("the device cannot be opened: {e}"))?;
    let size = f
        .seek(SeekFrom::End(0))
        .map_err(|e| format!("the device size cannot be read: {e}"))?;
    if size == 0 {
        return Err("the device has size 0 (detached or not ready)".to_owned());
    }
    let mut buf = vec![0u8; MIB as usize];
    for (offset, len) in blank_regions(size) {
        let mut at = offset;
        while at < offset + len {
            if stop.load(Ordering::Relaxed) {
                return Err("stopped".to_owned());
            }
            let n = (offset + len - at).min(MIB) as usize;
            f.seek(SeekFrom::Start(at))
                .map_err(|e| format!("seek to {at} failed: {e}"))?;
            f.read_exact(&mut buf[..n])
                .map_err(|e| format!("the device cannot be read at {at}: {e}"))?;
            // Slice equality is a memcmp: cheap even in debug builds.
            if buf[..n] != ZEROS[..n] {
                let i = buf[..n].iter().position(|b| *b != 0).unwrap_or(0);
                return Ok(Some(at + i as u64));
            }
            at += n as u64;
        }
    }
    Ok(None)
}

/// `KEY=value` lines of `blkid -o export`.
pub(crate) fn parse_export(s: &str) -> HashMap<String, String> {
    s.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The command that grows a mounted filesystem to its device's size.
pub(crate) fn grow_cmd(
    fs_type: &str,
    device: &Path,
    mount_point: &Path,
    timeout: Duration,
) -> Result<Cmd> {
    match fs_type {
        "ext2" | "ext3" | "ext4" => {
            Ok(Cmd::new("resize2fs", timeout).arg(device.display().to_string()))
        }
        "xfs" => Ok(Cmd::new("xfs_growfs", timeout).arg(mount_point.display().to_string())),
        other => Err(DataPlaneError::Precondition(format!(
            "cannot grow a {other} filesystem (only ext2/3/4 and xfs)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fs_types() {
        assert_eq!(FsType::parse("").unwrap(), FsType::Ext4);
        assert_eq!(FsType::parse("xfs").unwrap(), FsType::Xfs);
        assert!(FsType::parse("btrfs").is_err());
        assert!(FsType::parse("ext4;rm").is_err());
        let c = FsType::Xfs.mkfs(Path::new("/dev/nvme1n1"), Duration::from_secs(1));
        assert_eq!(c.display(), "mkfs.xfs -q /dev/nvme1n1");
        assert!(!c.args.iter().any(|a| a == "-f" || a == "-F"));
    }

    #[test]
    fn blank_regions_cover_headers_and_ext4_backups() {
        let r = blank_regions(1 << 30);
        assert_eq!(r[0], (0, 8 * MIB));
        for o in [8 * MIB + KIB, 32 * MIB, 128 * MIB] {
            assert!(r.iter().any(|(s, l)| *s == o && *l > 0), "{o}");
        }
        assert_eq!(*r.last().unwrap(), ((1 << 30) - MIB, MIB));
        // A small device: clamped, nothing past its end.
        let r = blank_regions(16 * MIB);
        assert!(r.iter().all(|(o, l)| o + l <= 16 * MIB), "{r:?}");
        assert!(!r.iter().any(|(o, _)| *o == 32 * MIB));
    }

    #[test]
    fn a_single_byte_anywhere_in_a_region_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dev.img");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(200 * MIB).unwrap();
        assert_eq!(
            first_non_zero(&p, &AtomicBool::new(false)).unwrap(),
            None,
            "sparse zeros are blank"
        );
        use std::os::unix::fs::FileExt;
        for at in [
            200 * MIB - 1,
            128 * MIB + 100,
            32 * MIB + 5,
            8 * MIB + KIB,
            65535,
            0,
        ] {
            f.write_all_at(&[0x53], at).unwrap();
            assert_eq!(
                first_non_zero(&p, &AtomicBool::new(false)).unwrap(),
                Some(at),
                "{at}"
            );
        }
        // Outside every region: not looked at (the bytes of a blank device).
        let q = dir.path().join("dev2.img");
        let g = std::fs::File::create(&q).unwrap();
        g.set_len(200 * MIB).unwrap();
        g.write_all_at(&[1], 64 * MIB).unwrap();
        assert_eq!(first_non_zero(&q, &AtomicBool::new(false)).unwrap(), None);
    }

    #[test]
    fn export_parsing() {
        let kv = parse_export("DEVNAME=/dev/loop0\nUUID=abc\nTYPE=ext4\nUSAGE=filesystem\n");
        assert_eq!(kv["TYPE"], "ext4");
        assert_eq!(kv["UUID"], "abc");
    }
}
