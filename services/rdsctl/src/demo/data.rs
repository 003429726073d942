//! Data the demo writes and checks: a pseudo-random pattern derived from a
//! seed (so a restored copy is compared byte for byte without keeping the
//! original around), through a mounted filesystem or — without root — straight
//! into the sim's backing file.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{CtlError, Result};

/// 1 MiB of xorshift64* output from `seed`.
pub fn pattern(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(1 << 20);
    while out.len() < (1 << 20) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CtlError::Stack(format!("blocking task failed: {e}")))?
}

/// Writes `data` to `path` and makes it durable: file and directory fsynced,
/// so the bytes reach the loop device and the sim's file before a snapshot.
pub async fn write_durable(path: PathBuf, data: Vec<u8>) -> Result<()> {
    blocking(move || {
        let mut f = std::fs::File::create(&path).map_err(|e| CtlError::io(&path, e))?;
        f.write_all(&data).map_err(|e| CtlError::io(&path, e))?;
        f.sync_all().map_err(|e| CtlError::io(&path, e))?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| CtlError::io(dir, e))?;
        }
        Ok(())
    })
    .await
}

pub async fn read(path: PathBuf) -> Result<Vec<u8>> {
    blocking(move || std::fs::read(&path).map_err(|e| CtlError::io(&path, e))).await
}

/// Where the sim keeps the file of a RouterOS path (docs/local-mode.md §2 layout).
pub fn backing_file(sim_files: &Path, volume_path: &str) -> Result<PathBuf> {
    let rel = volume_path.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return Err(CtlError::Check(format!(
            "volumePath {volume_path:?} is not a plain absolute path"
        )));
    }
    Ok(sim_files.join(rel))
}

/// Writes `data` at `offset` of an existing file without changing its size
/// beyond it (the sim's disk stays as large as it said).
pub async fn write_at(path: PathBuf, offset: u64, data: Vec<u8>) -> Result<()> {
    blocking(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| CtlError::io(&path, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| CtlError::io(&path, e))?;
        f.write_all(&data).map_err(|e| CtlError::io(&path, e))?;
        f.sync_all().map_err(|e| CtlError::io(&path, e))
    })
    .await
}

pub async fn read_at(path: PathBuf, offset: u64, len: usize) -> Result<Vec<u8>> {
    blocking(move || {
        let mut f = std::fs::File::open(&path).map_err(|e| CtlError::io(&path, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| CtlError::io(&path, e))?;
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf).map_err(|e| CtlError::io(&path, e))?;
        Ok(buf)
    })
    .await
}

/// Whether `path` is a mount point now (from /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    // Field 5 is the mount point (octal escapes for spaces; our paths have none).
    text.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_ref()))
}

/// Whether this process (and so the stack it starts) holds CAP_SYS_RESOURCE,
/// which the kernel requires for growing a mounted ext4 (EXT4_IOC_RESIZE_FS).
/// Some sandboxes drop it even for root.
pub fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// Size of the filesystem mounted at `path`, in bytes.
pub fn fs_size(path: &Path) -> Result<u64> {
    let st = nix::sys::statvfs::statvfs(path)
        .map_err(|e| CtlError::io(path, std::io::Error::from(e)))?;
    Ok(st.blocks() as u64 * st.fragment_size() as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn patterns_are_deterministic_and_seed_dependent() {
        assert_eq!(pattern(7), pattern(7));
        assert_ne!(pattern(7), pattern(8));
        assert_eq!(pattern(7).len(), 1 << 20);
    }

    #[test]
    fn backing_files_stay_under_the_sim_files() {
        let root = Path::new("/d/sim/files");
        assert_eq!(
            backing_file(root, "/storage-pool/metal-csi/pvc-1.img").unwrap(),
            Path::new("/d/sim/files/storage-pool/metal-csi/pvc-1.img")
        );
        assert!(backing_file(root, "/storage-pool/../etc/passwd").is_err());
        assert!(backing_file(root, "/").is_err());
    }

    #[tokio::test]
    async fn write_at_keeps_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        write_at(p.clone(), 1024, b"abc".to_vec()).await.unwrap();
        assert_eq!(read_at(p.clone(), 1024, 3).await.unwrap(), b"abc");
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 4096);
    }
}
