//! `/proc/self/mountinfo`, parsed by hand (octal escapes such as `\040`
//! included) and always read under a deadline: a stuck mount table read is
//! how the Go driver's mount storm froze nodes (docs/safety.md §2.1).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{DataPlaneError, Result};

/// One line of mountinfo (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub id: u32,
    pub parent: u32,
    pub major: u64,
    pub minor: u64,
    /// Root of the mount within its filesystem (`/` unless a bind of a subdir).
    pub root: String,
    pub mount_point: PathBuf,
    pub options: String,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
    /// Peer group of a shared mount (`shared:N`): mounts of one group in
    /// different namespaces are propagated copies of each other.
    pub shared_group: Option<u32>,
}

impl MountEntry {
    pub fn dev(&self) -> (u64, u64) {
        (self.major, self.minor)
    }

    /// Per-mount read-only flag (the `ro` in the mount options).
    pub fn is_readonly(&self) -> bool {
        self.options.split(',').any(|o| o == "ro")
    }
}

/// A snapshot of the mount table.
#[derive(Debug, Clone, Default)]
pub struct MountTable {
    pub entries: Vec<MountEntry>,
}

impl MountTable {
    /// Every mount stacked on `path` (bottom first).
    pub fn at(&self, path: &Path) -> Vec<&MountEntry> {
        let want = comparable(path);
        self.entries
            .iter()
            .filter(|e| e.mount_point == want)
            .collect()
    }

    /// The mount visible at `path`: the one no other mount at `path` sits on.
    pub fn top_at(&self, path: &Path) -> Option<&MountEntry> {
        let here = self.at(path);
        here.iter()
            .find(|e| !here.iter().any(|o| o.parent == e.id))
            .copied()
    }

    pub fn is_mount_point(&self, path: &Path) -> bool {
        !self.at(path).is_empty()
    }

    /// Mounts of the filesystem on block device `major:minor`.
    pub fn of_device(&self, dev: (u64, u64)) -> Vec<&MountEntry> {
        self.entries.iter().filter(|e| e.dev() == dev).collect()
    }

    /// Mounts whose source is `source` (the guard of docs/safety.md §3.4 counts these).
    pub fn count_source(&self, source: &str) -> usize {
        self.entries.iter().filter(|e| e.source == source).count()
    }
}

/// `path` as the kernel prints it: symlinks resolved when it exists (e.g. a
/// staging path under a symlinked directory shows up resolved in mountinfo).
pub fn comparable(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Reads and parses `path` (normally `/proc/self/mountinfo`) within `timeout`.
pub async fn read(path: &Path, timeout: Duration) -> Result<MountTable> {
    let p = path.to_path_buf();
    let text = crate::sys::blocking("reading mountinfo", timeout, move || {
        std::fs::read_to_string(&p)
            .map_err(|e| DataPlaneError::io(format!("reading {}", p.display()), e))
    })
    .await?;
    parse(&text).map_err(|e| DataPlaneError::Internal(format!("parsing {}: {e}", path.display())))
}

/// Parses mountinfo text.
pub fn parse(text: &str) -> std::result::Result<MountTable, String> {
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        entries.push(
            parse_line(line)
                .ok_or_else(|| format!("line {}: unexpected format: {line:?}", n + 1))?,
        );
    }
    Ok(MountTable { entries })
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let fields: Vec<&str> = line.split(' ').collect();
    // Optional fields (shared:N, master:N, …) end at a lone "-".
    let sep = fields.iter().position(|f| *f == "-")?;
    if sep < 6 || fields.len() < sep + 4 {
        return None;
    }
    let (major, minor) = fields[2].split_once(':')?;
    Some(MountEntry {
        id: fields[0].parse().ok()?,
        parent: fields[1].parse().ok()?,
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        root: unescape(fields[3]),
        mount_point: PathBuf::from(unescape(fields[4])),
        options: fields[5].to_owned(),
        fs_type: unescape(fields[sep + 1]),
        source: unescape(fields[sep + 2]),
        super_options: fields[sep + 3..].join(" "),
        shared_group: fields[6..sep]
            .iter()
            .find_map(|f| f.strip_prefix("shared:")?.parse().ok()),
    })
}

/// Undoes the kernel's `\ooo` escaping (space, tab, newline, backslash).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
100 27 7:3 / /var/lib/kubelet/plugins/x/globalmount rw,nosuid,nodev,relatime shared:7 master:2 - ext4 /dev/loop3 rw
101 100 7:3 / /var/lib/kubelet/pods/p/volumes/my\\040vol ro,nosuid,nodev - ext4 /dev/loop3 rw
102 27 7:3 / /var/lib/kubelet/plugins/x/globalmount rw - ext4 /dev/loop3 rw
103 27 0:50 /sub /tmp/tab\\011and\\134back rw - tmpfs tmp\\040fs rw,size=4k
";

    #[test]
    fn parses_fields_escapes_and_optional_fields() {
        let t = parse(SAMPLE).unwrap();
        assert_eq!(t.entries.len(), 6);
        let e = &t.entries[3];
        assert_eq!(
            e.mount_point,
            PathBuf::from("/var/lib/kubelet/pods/p/volumes/my vol")
        );
        assert!(e.is_readonly());
        assert_eq!(e.dev(), (7, 3));
        assert_eq!(e.source, "/dev/loop3");
        let odd = &t.entries[5];
        assert_eq!(odd.mount_point, PathBuf::from("/tmp/tab\tand\\back"));
        assert_eq!(odd.source, "tmp fs");
        assert_eq!(odd.root, "/sub");
        assert_eq!(t.entries[2].fs_type, "ext4");
    }

    #[test]
    fn stacked_mounts_and_counts() {
        let t = parse(SAMPLE).unwrap();
        let gm = Path::new("/var/lib/kubelet/plugins/x/globalmount");
        assert_eq!(t.at(gm).len(), 2);
        // 102 and 100 are both on the path; neither has the other as parent,
        // so the first found wins — but a chain picks the child.
        assert!(t.top_at(gm).is_some());
        assert_eq!(t.count_source("/dev/loop3"), 3);
        assert_eq!(t.of_device((7, 3)).len(), 3);
        assert!(!t.is_mount_point(Path::new("/nowhere")));
    }

    #[test]
    fn top_of_a_chain_is_the_child() {
        let text = "\
1 0 0:1 / / rw - ext4 /dev/vda rw
10 1 7:1 / /m rw - ext4 /dev/loop1 rw
11 10 7:2 / /m rw - xfs /dev/loop2 rw
";
        let t = parse(text).unwrap();
        assert_eq!(t.top_at(Path::new("/m")).unwrap().id, 11);
    }

    #[test]
    fn malformed_lines_are_errors_not_silence() {
        assert!(parse("garbage line\n").is_err());
        assert!(parse("1 2 x / /m rw - ext4 /dev/a rw\n").is_err());
    }

    #[test]
    fn unescape_leaves_non_octal_alone() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("a\\0"), "a\\0");
        assert_eq!(unescape("a\\xyz"), "a\\xyz");
        assert_eq!(unescape("\\134"), "\\");
    }

    #[tokio::test]
    async fn reads_the_real_table() {
        let t = read(Path::new("/proc/self/mountinfo"), Duration::from_secs(10))
            .await
            .unwrap();
        assert!(t.is_mount_point(Path::new("/")));
    }
}
