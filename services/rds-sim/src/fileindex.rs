//! The in-memory index of the files under `files/` (issue 16): every `/file` entry with its
//! last seen metadata, in listing order, plus the pool's usage sums. A command that names
//! one file, a `/disk add` and the pool record then cost the same at 2,000 files as at none
//! (walking the tree per command made them grow with it).
//!
//! It is exact for every change the sim makes: each [`crate::store::Store`] mutation
//! re-reads the path it touched. Metadata of a file written from outside (an initiator
//! writing data, a test dropping a file in) is seen the next time a command names that file
//! or lists the whole tree, which re-walks it. `changes` records names that appeared or
//! went, so the model can keep its `/file` ids in step without listing everything.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::store::{FileInfo, FileKind};

/// Listing order: depth first, names sorted within a directory. `/` sorts after `-` and `.`,
/// so keys use NUL (below every name character) as the separator.
fn key(name: &str) -> String {
    name.replace('/', "\0")
}

/// A name appeared or went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Added(String),
    Removed(String),
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    entries: BTreeMap<String, FileInfo>,
    /// Per mount (first name component): (allocated, apparent) bytes of its files.
    sums: HashMap<String, (u64, u64)>,
    /// Names that appeared or went since the model last looked.
    pub changes: Vec<Change>,
    /// The whole tree was re-walked: the model re-checks every id (names may have gone
    /// while the sim was stopped).
    pub rewalked: bool,
}

pub(crate) fn info_from(name: String, md: &fs::Metadata) -> FileInfo {
    let kind = if md.is_dir() {
        if name.contains('/') {
            FileKind::Directory
        } else {
            FileKind::Disk
        }
    } else {
        FileKind::File
    };
    FileInfo {
        name,
        kind,
        size: md.len(),
        allocated: md.blocks() * 512,
        mtime: md.mtime(),
    }
}

fn mount_of(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

impl Index {
    fn account(&mut self, info: &FileInfo, sign_add: bool) {
        if info.kind != FileKind::File {
            return;
        }
        let s = self
            .sums
            .entry(mount_of(&info.name).to_owned())
            .or_default();
        if sign_add {
            s.0 += info.allocated;
            s.1 += info.size;
        } else {
            s.0 = s.0.saturating_sub(info.allocated);
            s.1 = s.1.saturating_sub(info.size);
        }
    }

    /// Put (or replace) one entry.
    pub(crate) fn put(&mut self, info: FileInfo) {
        self.account(&info, true);
        let name = info.name.clone();
        match self.entries.insert(key(&name), info) {
            Some(old) => self.account(&old, false),
            None => self.changes.push(Change::Added(name)),
        }
    }

    /// Drop `name` and everything under it.
    pub(crate) fn drop_tree(&mut self, name: &str) {
        let k = key(name);
        let below = format!("{k}\0");
        let mut gone: Vec<String> = self
            .entries
            .range(below.clone()..)
            .take_while(|(kk, _)| kk.starts_with(&below))
            .map(|(kk, _)| kk.clone())
            .collect();
        gone.push(k);
        for kk in gone {
            if let Some(old) = self.entries.remove(&kk) {
                self.account(&old, false);
                self.changes.push(Change::Removed(old.name));
            }
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&FileInfo> {
        self.entries.get(&key(name))
    }

    /// Every entry in listing order.
    pub(crate) fn list(&self) -> Vec<FileInfo> {
        self.entries.values().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// (allocated, apparent) bytes of the files under `mount`.
    pub(crate) fn used(&self, mount: &str) -> (u64, u64) {
        self.sums.get(mount).copied().unwrap_or_default()
    }

    /// Walk `dir` (host path of the `/file` name `prefix`, "" for the root) into the index.
    pub(crate) fn walk(&mut self, dir: &Path, prefix: &str) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut entries: Vec<_> = rd
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e)))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (n, e) in entries {
            // Temporary files of atomic writes at the top level are not `/file` entries.
            if n.ends_with(".tmp") && prefix.is_empty() {
                continue;
            }
            let name = if prefix.is_empty() {
                n
            } else {
                format!("{prefix}/{n}")
            };
            // `DirEntry::metadata` does not follow symlinks.
            let Ok(md) = e.metadata() else { continue };
            let is_dir = md.is_dir();
            self.put(info_from(name.clone(), &md));
            if is_dir {
                self.walk(&e.path(), &name);
            }
        }
    }

    /// Forget everything and walk the whole tree again.
    pub(crate) fn rewalk(&mut self, root: &Path) {
        let names: Vec<String> = self.entries.values().map(|i| i.name.clone()).collect();
        self.entries.clear();
        self.sums.clear();
        self.walk(root, "");
        let now: std::collections::HashSet<&str> =
            self.entries.values().map(|i| i.name.as_str()).collect();
        let gone: Vec<Change> = names
            .into_iter()
            .filter(|n| !now.contains(n.as_str()))
            .map(Change::Removed)
            .collect();
        self.changes.extend(gone);
        self.rewalked = true;
    }
}
