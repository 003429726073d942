//! Thin wrappers over the syscalls the plane makes (mount, umount, mknod,
//! statvfs, syncfs). Each runs on the blocking pool under a deadline, since a
//! dead NVMe device can park a syscall in D state; we then give up waiting
//! (the thread stays parked, the RPC does not).

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

use crate::error::{DataPlaneError, Result};

tokio::task_local! {
    /// The volume lock of the node call running on this task. Every blocking
    /// job started by the call holds a clone until the job ends, so a job
    /// that outlives its call (timed out, or the call was cancelled) keeps
    /// the volume busy: a retry gets ABORTED instead of racing it.
    pub(crate) static HELD: std::sync::Arc<tokio::sync::OwnedMutexGuard<()>>;
}

/// Runs `f` on the blocking pool; `Timeout` if it has not finished in time.
pub(crate) async fn blocking<T, F>(what: &str, timeout: Duration, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let held = HELD.try_with(std::sync::Arc::clone).ok();
    let job = move || {
        let r = f();
        drop(held);
        r
    };
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(job)).await {
        Err(_) => Err(DataPlaneError::Timeout {
            what: what.to_owned(),
            secs: timeout.as_secs_f64(),
        }),
        Ok(Err(join)) => Err(DataPlaneError::Internal(format!(
            "{what}: worker failed: {join}"
        ))),
        Ok(Ok(r)) => r,
    }
}

/// mount(2) of a filesystem.
pub(crate) fn mount_fs(
    device: &Path,
    target: &Path,
    fs_type: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    nix::mount::mount(Some(device), target, Some(fs_type), flags, data).map_err(|e| {
        DataPlaneError::errno(
            format!(
                "mounting {} ({fs_type}) at {}",
                device.display(),
                target.display()
            ),
            e,
        )
    })
}

/// Bind mount, then a remount to apply per-mount flags (a plain MS_BIND
/// ignores them; this is how `mount -o bind,ro` works too).
pub(crate) fn bind_mount(source: &Path, target: &Path, flags: MsFlags) -> Result<()> {
    let ctx = || format!("bind mounting {} at {}", source.display(), target.display());
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| DataPlaneError::errno(ctx(), e))?;
    let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
    if let Err(e) = nix::mount::mount(None::<&str>, target, None::<&str>, remount, None::<&str>) {
        // Never leave a bind mount without the flags asked for (e.g. a rw
        // mount where ro was requested).
        let _ = nix::mount::umount2(target, MntFlags::empty());
        return Err(DataPlaneError::errno(
            format!("{} (remount with flags)", ctx()),
            e,
        ));
    }
    Ok(())
}

/// umount2(2); `lazy` = MNT_DETACH.
pub(crate) fn unmount(target: &Path, lazy: bool) -> std::result::Result<(), nix::errno::Errno> {
    let flags = if lazy {
        MntFlags::MNT_DETACH
    } else {
        MntFlags::empty()
    };
    nix::mount::umount2(target, flags)
}

/// Flushes the filesystem that holds `path` (before a lazy unmount, so no
/// dirty data is left behind if the device goes away afterwards).
pub(crate) fn syncfs(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path)
        .map_err(|e| DataPlaneError::io(format!("opening {}", path.display()), e))?;
    nix::unistd::syncfs(&f)
        .map_err(|e| DataPlaneError::errno(format!("syncfs {}", path.display()), e))
}

/// Creates a block device node `major:minor` at `path` (raw block publish;
/// never a bind mount of /dev — docs/safety.md §3.4).
pub(crate) fn make_block_node(path: &Path, major: u64, minor: u64, readonly: bool) -> Result<()> {
    let mode = if readonly { 0o440 } else { 0o660 };
    nix::sys::stat::mknod(
        path,
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(mode),
        nix::sys::stat::makedev(major, minor),
    )
    .map_err(|e| DataPlaneError::errno(format!("mknod {} ({major}:{minor})", path.display()), e))?;
    // mknod honours the umask; set the mode we mean.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(|e| DataPlaneError::io(format!("chmod {}", path.display()), e))
}

/// The block device number a node points at, if `path` is a block device node.
pub(crate) fn block_node_dev(path: &Path) -> std::io::Result<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path)?;
    if !md.file_type().is_block_device() {
        return Ok(None);
    }
    let rdev = md.rdev();
    Ok(Some((
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev),
    )))
}

/// Filesystem usage as statvfs reports it (what `df` prints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub total_inodes: u64,
    pub used_inodes: u64,
    pub free_inodes: u64,
}

pub(crate) fn statvfs(path: &Path) -> Result<FsUsage> {
    let s = nix::sys::statvfs::statvfs(path)
        .map_err(|e| DataPlaneError::errno(format!("statvfs {}", path.display()), e))?;
    let frsize = s.fragment_size() as u64;
    let blocks = s.blocks() as u64;
    let bfree = s.blocks_free() as u64;
    let files = s.files() as u64;
    let ffree = s.files_free() as u64;
    Ok(FsUsage {
        total_bytes: blocks * frsize,
        used_bytes: blocks.saturating_sub(bfree) * frsize,
        available_bytes: s.blocks_available() as u64 * frsize,
        total_inodes: files,
        used_inodes: files.saturating_sub(ffree),
        free_inodes: ffree,
    })
}
