//! The state directory: `state.json` (written atomically) and the real files behind `/file`
//! under `files/` (a RouterOS path `/storage-pool/x/y.img` is `files/storage-pool/x/y.img`).
//! Disk backing files are sparse (`set_len`); sizes shown are apparent sizes.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::SimError;
use crate::fileindex::{Change, Index, info_from};

fn lock(m: &Mutex<Index>) -> MutexGuard<'_, Index> {
    // Poisoning only follows a panic elsewhere; a re-walk repairs the index anyway.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Write `bytes` to `path` via a temporary file + fsync + rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), SimError> {
    write_atomic_sync(path, bytes, mode, true)
}

/// [`write_atomic`], with the fsync optional (the rename stays atomic).
pub(crate) fn write_atomic_sync(
    path: &Path,
    bytes: &[u8],
    mode: Option<u32>,
    sync: bool,
) -> Result<(), SimError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| SimError::io("creating", &tmp, e))?;
    if let Some(m) = mode {
        f.set_permissions(fs::Permissions::from_mode(m))
            .map_err(|e| SimError::io("chmod", &tmp, e))?;
    }
    f.write_all(bytes)
        .map_err(|e| SimError::io("writing", &tmp, e))?;
    if sync {
        f.sync_all().map_err(|e| SimError::io("syncing", &tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| SimError::io("renaming to", path, e))
}

/// What a `/file` entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A mount root (`type=disk`).
    Disk,
    /// `type=directory`.
    Directory,
    /// A regular file.
    File,
}

/// One `/file` entry read from the file system.
#[derive(Clone, Debug)]
pub(crate) struct FileInfo {
    /// RouterOS name, relative (`storage-pool/metal-csi/x.img`).
    pub name: String,
    pub kind: FileKind,
    /// Apparent size.
    pub size: u64,
    /// Allocated bytes.
    pub allocated: u64,
    /// Modification time (Unix seconds).
    pub mtime: i64,
}

#[derive(Debug)]
pub(crate) struct Store {
    root: PathBuf,
    files: PathBuf,
    /// What is under `files/`, kept by every mutation below (crate::fileindex).
    index: Mutex<Index>,
    /// fsync files the sim writes (off with `SimConfig::sync_state` off: benchmarks do not
    /// count the sim's own durability as RouterOS time).
    sync: bool,
}

/// Normalise a RouterOS path (`/a/b` or `a/b`) to its relative `/file` name; `None` when it
/// is empty or has `.`/`..`/empty components.
pub(crate) fn normalise(routeros_path: &str) -> Option<String> {
    let rel = routeros_path.strip_prefix('/').unwrap_or(routeros_path);
    if rel.is_empty() || rel.ends_with('/') {
        return None;
    }
    if rel
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\0'))
    {
        return None;
    }
    Some(rel.to_owned())
}

impl Store {
    pub(crate) fn open(root: &Path, pool: &str) -> Result<Self, SimError> {
        let files = root.join("files");
        fs::create_dir_all(files.join(pool)).map_err(|e| SimError::io("creating", &files, e))?;
        let mut index = Index::default();
        index.rewalk(&files);
        Ok(Self {
            root: root.to_path_buf(),
            files,
            index: Mutex::new(index),
            sync: true,
        })
    }

    /// See `sync` above.
    pub(crate) fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    pub(crate) fn host_path(&self, routeros_path: &str) -> Option<PathBuf> {
        normalise(routeros_path).map(|rel| self.files.join(rel))
    }

    pub(crate) fn exists(&self, routeros_path: &str) -> bool {
        self.host_path(routeros_path)
            .is_some_and(|p| p.symlink_metadata().is_ok())
    }

    pub(crate) fn is_dir(&self, rel: &str) -> bool {
        self.host_path(rel).is_some_and(|p| p.is_dir())
    }

    /// A file's metadata, read now; the index follows what it finds (a file made or
    /// removed from outside shows up or goes here).
    pub(crate) fn info(&self, rel: &str) -> Option<FileInfo> {
        let name = normalise(rel)?;
        let p = self.files.join(&name);
        let mut index = lock(&self.index);
        match p.symlink_metadata() {
            Ok(md) => {
                let info = info_from(name.clone(), &md);
                if index.get(&name).is_some() {
                    index.put(info.clone());
                } else {
                    self.reindex(&mut index, &name);
                }
                Some(info)
            }
            Err(_) => {
                index.drop_tree(&name);
                None
            }
        }
    }

    /// Re-read `name` and everything under it (and any ancestor the index lacks).
    fn reindex(&self, index: &mut Index, name: &str) {
        index.drop_tree(name);
        let mut at = String::new();
        for part in name.split('/') {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            if at.len() < name.len() && index.get(&at).is_some() {
                continue;
            }
            let Ok(md) = self.files.join(&at).symlink_metadata() else {
                return;
            };
            index.put(info_from(at.clone(), &md));
            if at.len() == name.len() && md.is_dir() {
                index.walk(&self.files.join(&at), &at);
            }
        }
    }

    /// After a mutation of `rel`: the index re-reads it.
    fn touched(&self, rel: &str) {
        if let Some(name) = normalise(rel) {
            self.reindex(&mut lock(&self.index), &name);
        }
    }

    /// Walk the whole tree again (a listing of everything: exact even after changes made
    /// from outside).
    pub(crate) fn rescan(&self) {
        lock(&self.index).rewalk(&self.files);
    }

    /// Names that appeared or went since the last call, and whether the whole tree was
    /// re-walked meanwhile.
    pub(crate) fn take_changes(&self) -> (Vec<Change>, bool) {
        let mut index = lock(&self.index);
        let rewalked = std::mem::take(&mut index.rewalked);
        (std::mem::take(&mut index.changes), rewalked)
    }

    /// Number of `/file` entries.
    pub(crate) fn count(&self) -> usize {
        lock(&self.index).len()
    }

    /// Every entry under every mount, depth first, names sorted within a directory (from
    /// the index: call [`Store::rescan`] first for changes made from outside).
    pub(crate) fn list(&self) -> Vec<FileInfo> {
        lock(&self.index).list()
    }

    /// Bytes allocated (apparent bytes with `apparent`) by every file under `mount`, as
    /// the index last saw them: no walk per command (every `/disk add` asks).
    pub(crate) fn used_bytes(&self, mount: &str, apparent: bool) -> u64 {
        let Some(rel) = normalise(mount) else {
            return 0;
        };
        let (allocated, size) = lock(&self.index).used(&rel);
        if apparent { size } else { allocated }
    }

    pub(crate) fn mkdir_p(&self, rel: &str) -> std::io::Result<()> {
        let p = self
            .host_path(rel)
            .ok_or_else(|| std::io::Error::other("bad path"))?;
        fs::create_dir_all(p)?;
        self.touched(rel);
        Ok(())
    }

    /// Create (or open) a sparse file and set its apparent size.
    pub(crate) fn create_sparse(&self, rel: &str, size: u64) -> std::io::Result<()> {
        let p = self
            .host_path(rel)
            .ok_or_else(|| std::io::Error::other("bad path"))?;
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)?;
        f.set_len(size)?;
        if self.sync {
            f.sync_all()?;
        }
        self.touched(rel);
        Ok(())
    }

    pub(crate) fn set_len(&self, rel: &str, size: u64) -> std::io::Result<()> {
        let p = self
            .host_path(rel)
            .ok_or_else(|| std::io::Error::other("bad path"))?;
        let f = fs::OpenOptions::new().write(true).open(p)?;
        f.set_len(size)?;
        self.touched(rel);
        Ok(())
    }

    /// Copy `src` to `dst` keeping holes: only the data extents (found with `SEEK_DATA` /
    /// `SEEK_HOLE`) are read, and 64 KiB blocks of zeros inside them are skipped too. The
    /// result has `size` bytes (the source is truncated or extended).
    pub(crate) fn copy_sparse(&self, src: &str, dst: &str, size: u64) -> std::io::Result<()> {
        use nix::unistd::{Whence, lseek};
        let sp = self
            .host_path(src)
            .ok_or_else(|| std::io::Error::other("bad path"))?;
        let dp = self
            .host_path(dst)
            .ok_or_else(|| std::io::Error::other("bad path"))?;
        let mut input = fs::File::open(sp)?;
        let mut out = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(dp)?;
        let src_len = input.metadata()?.len().min(size);
        let to_off = |v: u64| i64::try_from(v).map_err(std::io::Error::other);
        let mut buf = vec![0u8; 64 * 1024];
        let mut pos = 0u64;
        while pos < src_len {
            // Next data extent; ENXIO = only a hole is left.
            let data = match lseek(&input, to_off(pos)?, Whence::SeekData) {
                Ok(d) => u64::try_from(d).unwrap_or(src_len),
                Err(nix::errno::Errno::ENXIO) => break,
                Err(e) => return Err(e.into()),
            };
            if data >= src_len {
                break;
            }
            let hole = match lseek(&input, to_off(data)?, Whence::SeekHole) {
                Ok(h) => u64::try_from(h).unwrap_or(src_len).min(src_len),
                Err(e) => return Err(e.into()),
            };
            input.seek(SeekFrom::Start(data))?;
            let mut at = data;
            while at < hole {
                let want = usize::try_from((hole - at).min(buf.len() as u64)).unwrap_or(buf.len());
                let n = input.read(&mut buf[..want])?;
                if n == 0 {
                    break;
                }
                if buf[..n].iter().any(|&b| b != 0) {
                    out.seek(SeekFrom::Start(at))?;
                    out.write_all(&buf[..n])?;
                }
                at += n as u64;
            }
            pos = hole.max(data + 1);
        }
        out.set_len(size)?;
        if self.sync {
            out.sync_all()?;
        }
        self.touched(dst);
        Ok(())
    }

    /// Copy the tree `src` to the new directory `dst` copy-on-write (a Btrfs snapshot):
    /// every file with [`clone_file`], directories recreated, `skip` (nested subvolumes,
    /// `/file` names) left as empty directories.
    pub(crate) fn clone_tree(&self, src: &str, dst: &str, skip: &[String]) -> std::io::Result<()> {
        let sync = self.sync;
        let copy = |from: &Path, to: &Path, rel: &str| copy_tree(from, to, rel, skip, sync);
        fn copy_tree(
            from: &Path,
            to: &Path,
            rel: &str,
            skip: &[String],
            sync: bool,
        ) -> std::io::Result<()> {
            fs::create_dir(to)?;
            if skip.iter().any(|s| s == rel) {
                return Ok(());
            }
            for e in fs::read_dir(from)? {
                let e = e?;
                let name = e.file_name();
                let Some(n) = name.to_str() else { continue };
                let md = e.metadata()?;
                let (f, t) = (e.path(), to.join(n));
                if md.is_dir() {
                    copy_tree(&f, &t, &format!("{rel}/{n}"), skip, sync)?;
                } else if md.is_file() {
                    clone_file(&f, &t, sync)?;
                }
            }
            Ok(())
        }
        let (Some(sp), Some(dp)) = (self.host_path(src), self.host_path(dst)) else {
            return Err(std::io::Error::other("bad path"));
        };
        if let Some(up) = dp.parent() {
            fs::create_dir_all(up)?;
        }
        let done = copy(&sp, &dp, src);
        if done.is_err() {
            // Leave nothing half-made behind: the snapshot did not happen.
            let _ = fs::remove_dir_all(&dp);
        }
        self.touched(dst);
        done
    }

    pub(crate) fn remove(&self, rel: &str) -> std::io::Result<()> {
        let p = self
            .host_path(rel)
            .ok_or_else(|| std::io::Error::other("bad path"))?;
        let md = p.symlink_metadata();
        let done = match md {
            Ok(md) if md.is_dir() => fs::remove_dir_all(p),
            Ok(_) => fs::remove_file(p),
            Err(e) => Err(e),
        };
        // Whatever happened, the index follows the disk (a partial remove_dir_all too).
        self.touched(rel);
        done
    }
}

/// Copy one file copy-on-write and keep its holes: each data extent (`SEEK_DATA` /
/// `SEEK_HOLE`) goes through `copy_file_range`, which Btrfs and reflink-enabled XFS answer
/// by sharing the extents (a reflink, no data copied); other file systems copy in the
/// kernel. Where `copy_file_range` is refused (older kernels, some file systems) the
/// extent is copied by reading and writing.
pub(crate) fn clone_file(src: &Path, dst: &Path, sync: bool) -> std::io::Result<()> {
    use nix::unistd::{Whence, lseek};
    let mut input = fs::File::open(src)?;
    let mut out = fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(dst)?;
    let len = input.metadata()?.len();
    let to_off = |v: u64| i64::try_from(v).map_err(std::io::Error::other);
    let mut pos = 0u64;
    while pos < len {
        let data = match lseek(&input, to_off(pos)?, Whence::SeekData) {
            Ok(d) => u64::try_from(d).unwrap_or(len),
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if data >= len {
            break;
        }
        let hole = lseek(&input, to_off(data)?, Whence::SeekHole)
            .map(|h| u64::try_from(h).unwrap_or(len).min(len))?;
        copy_range(&mut input, &mut out, data, hole)?;
        pos = hole.max(data + 1);
    }
    out.set_len(len)?;
    if sync {
        out.sync_all()?;
    }
    Ok(())
}

/// Copy bytes `[from, to)` at the same offsets: `copy_file_range`, or read/write when the
/// kernel refuses it.
fn copy_range(input: &mut fs::File, out: &mut fs::File, from: u64, to: u64) -> std::io::Result<()> {
    let to_off = |v: u64| i64::try_from(v).map_err(std::io::Error::other);
    let mut at = from;
    while at < to {
        let want = usize::try_from(to - at).unwrap_or(usize::MAX).min(1 << 30);
        let (mut off_in, mut off_out) = (to_off(at)?, to_off(at)?);
        match nix::fcntl::copy_file_range(
            &*input,
            Some(&mut off_in),
            &*out,
            Some(&mut off_out),
            want,
        ) {
            Ok(0) => break,
            Ok(n) => at += n as u64,
            Err(
                nix::errno::Errno::EXDEV
                | nix::errno::Errno::ENOSYS
                | nix::errno::Errno::EINVAL
                | nix::errno::Errno::EOPNOTSUPP,
            ) => return copy_plain(input, out, at, to),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_plain(input: &mut fs::File, out: &mut fs::File, from: u64, to: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    input.seek(SeekFrom::Start(from))?;
    out.seek(SeekFrom::Start(from))?;
    let mut at = from;
    while at < to {
        let want = usize::try_from((to - at).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = input.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn normalise_rejects_traversal() {
        assert_eq!(
            normalise("/storage-pool/a.img").as_deref(),
            Some("storage-pool/a.img")
        );
        assert_eq!(
            normalise("storage-pool/a.img").as_deref(),
            Some("storage-pool/a.img")
        );
        assert!(normalise("/storage-pool/../etc").is_none());
        assert!(normalise("/").is_none());
        assert!(normalise("a//b").is_none());
    }

    #[test]
    fn sparse_create_and_copy_keep_holes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "storage-pool").unwrap();
        s.create_sparse("storage-pool/a.img", 64 << 20).unwrap();
        let p = s.host_path("storage-pool/a.img").unwrap();
        {
            let mut f = fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.seek(SeekFrom::Start(1 << 20)).unwrap();
            f.write_all(b"hello").unwrap();
        }
        s.copy_sparse("storage-pool/a.img", "storage-pool/b.img", 64 << 20)
            .unwrap();
        let b = s.info("storage-pool/b.img").unwrap();
        assert_eq!(b.size, 64 << 20);
        assert!(
            b.allocated < 1 << 20,
            "copy must stay sparse: {}",
            b.allocated
        );
        let data = fs::read(s.host_path("/storage-pool/b.img").unwrap()).unwrap();
        assert_eq!(&data[1 << 20..(1 << 20) + 5], b"hello");
        let names: Vec<_> = s.list().into_iter().map(|f| (f.name, f.kind)).collect();
        assert_eq!(
            names,
            vec![
                ("storage-pool".to_string(), FileKind::Disk),
                ("storage-pool/a.img".to_string(), FileKind::File),
                ("storage-pool/b.img".to_string(), FileKind::File)
            ]
        );
        s.mkdir_p("storage-pool/sub").unwrap();
        s.create_sparse("storage-pool/sub/c.img", 1 << 20).unwrap();
        let listed = |apparent: bool| -> u64 {
            s.list()
                .iter()
                .filter(|f| f.kind == FileKind::File)
                .map(|f| if apparent { f.size } else { f.allocated })
                .sum()
        };
        assert_eq!(s.used_bytes("storage-pool", true), (128 << 20) + (1 << 20));
        assert_eq!(s.used_bytes("storage-pool", true), listed(true));
        assert_eq!(s.used_bytes("storage-pool", false), listed(false));
    }
}
