//! The filesystem under rds-sim's state directory, for the Btrfs tests
//! (issue #19): a loop-mounted Btrfs makes the sim's subvolume snapshots real
//! reflinks (copy-on-write, no data copied); a loop-mounted ext4 is the
//! comparison where the sim has to copy.
//!
//! The image file and the mount both live inside the stack's scratch dir, so
//! its cleanup (`rds_dataplane::testing::Scratch`) unmounts the filesystem and
//! detaches the loop device even when a test panics.

use std::path::Path;
use std::process::Command;

use crate::{BoxError, StackOpts};

/// Which filesystem backs the sim's state dir.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackingFs {
    Btrfs,
    Ext4,
}

impl BackingFs {
    fn mkfs(self) -> &'static str {
        match self {
            BackingFs::Btrfs => "mkfs.btrfs",
            BackingFs::Ext4 => "mkfs.ext4",
        }
    }

    fn package(self) -> &'static str {
        match self {
            BackingFs::Btrfs => "btrfs-progs",
            BackingFs::Ext4 => "e2fsprogs",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BackingFs::Btrfs => "btrfs",
            BackingFs::Ext4 => "ext4",
        }
    }
}

/// Why this machine cannot run a test on `fs` (None: it can). The callers
/// print the reason and pass, like the other root-only tests.
pub fn skip_reason(fs: BackingFs) -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some(format!(
            "needs root (a loop-mounted {} under the sim); run ./test as root",
            fs.name()
        ));
    }
    if !on_path(fs.mkfs()) {
        return Some(format!(
            "{} is missing: apt-get install {} (./test does it as root)",
            fs.mkfs(),
            fs.package()
        ));
    }
    None
}

/// `tool` is found the way `Command::new(tool)` will look for it (PATH).
fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(tool).is_file())
}

/// Makes a sparse `size`-byte image next to `mount_point` (`<mount_point>.<fs>.img`),
/// puts `fs` on it and loop-mounts it at `mount_point` (created if missing).
pub fn mount_fresh(mount_point: &Path, fs: BackingFs, size: u64) -> Result<(), BoxError> {
    let image = mount_point.with_extension(format!("{}.img", fs.name()));
    std::fs::File::create(&image)?.set_len(size)?;
    let mut mkfs = Command::new(fs.mkfs());
    match fs {
        BackingFs::Btrfs => mkfs.args(["-q", "-f"]),
        // No lazy init: its background zeroing would be measured as the sim's work.
        BackingFs::Ext4 => mkfs.args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"]),
    };
    run(mkfs.arg(&image))?;
    std::fs::create_dir_all(mount_point)?;
    // `-o loop` gives the loop device autoclear: unmounting detaches it.
    run(Command::new("mount")
        .args(["-t", fs.name(), "-o", "loop"])
        .arg(&image)
        .arg(mount_point))?;
    Ok(())
}

fn run(cmd: &mut Command) -> Result<(), BoxError> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into())
    }
}

/// `opts` with the sim's state dir on a fresh loop-mounted `fs` of `size`
/// bytes (sparse), mounted before the sim starts. The stack's start fails
/// (panics, in the test) when the mount does.
pub fn on(fs: BackingFs, size: u64, mut opts: StackOpts) -> StackOpts {
    let inner = std::mem::replace(&mut opts.sim, Box::new(|_| {}));
    opts.sim = Box::new(move |cfg| {
        if let Err(e) = mount_fresh(&cfg.state_dir, fs, size) {
            panic!("{} under the sim's state dir: {e}", fs.name());
        }
        inner(cfg);
    });
    opts
}

/// The filesystem type mounted at `path` (from /proc/self/mountinfo), e.g. "btrfs".
pub fn fs_type_at(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let table = rds_dataplane::mountinfo::parse(&text).ok()?;
    table
        .entries
        .iter()
        .filter(|e| path.starts_with(&e.mount_point))
        .max_by_key(|e| e.mount_point.components().count())
        .map(|e| e.fs_type.clone())
}

/// Bytes in use on the filesystem holding `path` (statvfs: blocks - free).
pub fn used_bytes(path: &Path) -> Result<u64, BoxError> {
    let s = nix::sys::statvfs::statvfs(path)?;
    Ok((s.blocks() - s.blocks_free()) * s.fragment_size())
}
