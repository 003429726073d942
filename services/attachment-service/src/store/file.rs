//! Local-mode store: one small JSON file per attached volume in a directory
//! (`<dir>/<volume-id>.json`; rdsctl uses `DIR/attachments/`).
//!
//! Crash safety: a record is written to `.<volume-id>.json.tmp`, fsynced,
//! renamed over the real name, and the directory is fsynced before the
//! batch returns — so a crash at any instant leaves either the old or the
//! new file, never a torn one, and nothing acknowledged is lost. Leftover
//! temp files are deleted at load. A removal is an unlink plus the same
//! directory fsync. Per-volume files keep an attach at two fsyncs no matter
//! how many volumes are attached; a reconciler batch of many removals costs
//! one directory fsync.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use jiff::Timestamp;
use rds_bus::{NodeId, VolumeId};
use serde::{Deserialize, Serialize};

use super::{Batch, Store};
use crate::error::Error;
use crate::model::{AccessMode, Migration, NodeAttachment, PvcRef, Record};

const FORMAT_VERSION: u32 = 1;
const SUFFIX: &str = ".json";
const TMP_SUFFIX: &str = ".json.tmp";

const LOCK_FILE: &str = ".lock";

pub struct FileStore {
    dir: PathBuf,
    /// Exclusive lock on `<dir>/.lock` for the store's lifetime: two
    /// services fencing from one directory would each believe they decide.
    _lock: Option<Arc<File>>,
}

impl FileStore {
    /// Opens (creating if needed) the store directory and locks it.
    pub fn open(dir: impl Into<PathBuf>) -> Result<FileStore, Error> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::Config(format!(
                    "{} is in use by another attachment-service",
                    dir.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        Ok(FileStore {
            dir,
            _lock: Some(Arc::new(lock)),
        })
    }

    /// A handle for blocking work (no lock of its own).
    fn worker(&self) -> FileStore {
        FileStore {
            dir: self.dir.clone(),
            _lock: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding `vol` (volume ids are `[A-Za-z0-9-]`, safe as names).
    pub fn path_of(&self, vol: &VolumeId) -> PathBuf {
        self.dir.join(format!("{vol}{SUFFIX}"))
    }

    /// A name no other write uses: two commits of one volume (a cancelled
    /// call's write still landing, and the retry's) never share a temp file.
    fn tmp_path_of(&self, vol: &VolumeId) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.dir
            .join(format!(".{vol}.{}-{n}{TMP_SUFFIX}", std::process::id()))
    }

    fn load_blocking(&self) -> Result<Vec<Record>, Error> {
        let mut records = Vec::new();
        let mut removed_tmp = false;
        let entries = fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(TMP_SUFFIX) {
                // A write that crashed before its rename: never acknowledged.
                tracing::warn!(path = %path.display(), "removing unfinished write");
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                removed_tmp = true;
                continue;
            }
            if name == LOCK_FILE {
                continue;
            }
            let Some(stem) = name.strip_suffix(SUFFIX) else {
                tracing::warn!(path = %path.display(), "ignoring unexpected file in store");
                continue;
            };
            let text = fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let corrupt = |why: String| Error::Corrupt {
                path: path.clone(),
                why,
            };
            let file: FileRecord =
                serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
            let rec = file.into_record().map_err(corrupt)?;
            if rec.volume.as_str() != stem {
                return Err(corrupt(format!(
                    "holds volume {} but is named after {stem}",
                    rec.volume
                )));
            }
            records.push(rec);
        }
        if removed_tmp {
            sync_dir(&self.dir)?;
        }
        records.sort_by(|a, b| a.volume.cmp(&b.volume));
        Ok(records)
    }

    fn commit_blocking(&self, put: &[Record], remove: &[VolumeId]) -> Result<(), Error> {
        for rec in put {
            let tmp = self.tmp_path_of(&rec.volume);
            let body = serde_json::to_vec_pretty(&FileRecord::from_record(rec))
                .map_err(|e| Error::Internal(format!("cannot encode record: {e}")))?;
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| Error::io(&tmp, e))?;
            f.write_all(&body).map_err(|e| Error::io(&tmp, e))?;
            f.sync_all().map_err(|e| Error::io(&tmp, e))?;
            drop(f);
            let path = self.path_of(&rec.volume);
            fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        }
        for vol in remove {
            let path = self.path_of(vol);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        // The renames and unlinks are durable only once the directory is.
        sync_dir(&self.dir)
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

impl Store for FileStore {
    fn load(&self) -> BoxFuture<'_, Result<Vec<Record>, Error>> {
        let this = self.worker();
        async move {
            tokio::task::spawn_blocking(move || this.load_blocking())
                .await
                .map_err(|e| Error::Internal(format!("store task failed: {e}")))?
        }
        .boxed()
    }

    fn commit<'a>(&'a self, batch: Batch<'a>) -> BoxFuture<'a, Result<(), Error>> {
        let this = self.worker();
        let put = batch.put.to_vec();
        let remove = batch.remove.to_vec();
        async move {
            if put.is_empty() && remove.is_empty() {
                return Ok(());
            }
            tokio::task::spawn_blocking(move || this.commit_blocking(&put, &remove))
                .await
                .map_err(|e| Error::Internal(format!("store task failed: {e}")))?
        }
        .boxed()
    }

    fn describe(&self) -> String {
        format!("file store in {}", self.dir.display())
    }
}

/// On-disk shape (versioned; ids re-validated at load).
#[derive(Serialize, Deserialize)]
struct FileRecord {
    version: u32,
    volume_id: String,
    nodes: Vec<FileNode>,
    access_mode: AccessMode,
    block: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pvc: Option<PvcRef>,
    migration_timeout_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    migration: Option<FileMigration>,
}

#[derive(Serialize, Deserialize)]
struct FileNode {
    node_id: String,
    attached_at: Timestamp,
    readonly: bool,
}

#[derive(Serialize, Deserialize)]
struct FileMigration {
    started_at: Timestamp,
    timeout_seconds: u32,
    timed_out: bool,
}

impl FileRecord {
    fn from_record(r: &Record) -> Self {
        FileRecord {
            version: FORMAT_VERSION,
            volume_id: r.volume.to_string(),
            nodes: r
                .nodes
                .iter()
                .map(|n| FileNode {
                    node_id: n.node.to_string(),
                    attached_at: n.attached_at,
                    readonly: n.readonly,
                })
                .collect(),
            access_mode: r.access_mode,
            block: r.block,
            pvc: r.pvc.clone(),
            migration_timeout_seconds: r.migration_timeout_secs,
            migration: r.migration.as_ref().map(|m| FileMigration {
                started_at: m.started_at,
                timeout_seconds: m.timeout_secs,
                timed_out: m.timed_out,
            }),
        }
    }

    fn into_record(self) -> Result<Record, String> {
        if self.version != FORMAT_VERSION {
            return Err(format!("unsupported format version {}", self.version));
        }
        let volume = VolumeId::parse(&self.volume_id).map_err(|e| e.to_string())?;
        let nodes = self
            .nodes
            .into_iter()
            .map(|n| {
                Ok(NodeAttachment {
                    node: NodeId::parse(&n.node_id).map_err(|e| e.to_string())?,
                    attached_at: n.attached_at,
                    readonly: n.readonly,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if nodes.is_empty() {
            return Err("no nodes".to_owned());
        }
        Ok(Record {
            volume,
            nodes,
            access_mode: self.access_mode,
            block: self.block,
            pvc: self.pvc,
            migration_timeout_secs: self.migration_timeout_seconds,
            migration: self.migration.map(|m| Migration {
                started_at: m.started_at,
                timeout_secs: m.timeout_seconds,
                timed_out: m.timed_out,
            }),
            inferred: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &str) -> Record {
        Record {
            volume: VolumeId::parse(v).unwrap(),
            nodes: vec![NodeAttachment {
                node: NodeId::parse("n1").unwrap(),
                attached_at: Timestamp::from_second(1_700_000_000).unwrap(),
                readonly: false,
            }],
            access_mode: AccessMode::SingleNodeWriter,
            block: false,
            pvc: PvcRef::new("ns", "c"),
            migration_timeout_secs: 300,
            migration: None,
            inferred: false,
        }
    }

    #[tokio::test]
    async fn round_trips_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let (a, b) = (rec("a"), rec("b"));
        store
            .commit(Batch {
                put: &[a.clone(), b.clone()],
                remove: &[],
            })
            .await
            .unwrap();
        assert_eq!(store.load().await.unwrap(), vec![a.clone(), b.clone()]);
        store.commit(Batch::remove(&b.volume)).await.unwrap();
        assert_eq!(store.load().await.unwrap(), vec![a]);
    }

    #[test]
    fn one_directory_serves_one_store_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileStore::open(dir.path()).unwrap();
        assert!(matches!(FileStore::open(dir.path()), Err(Error::Config(_))));
        drop(first);
        FileStore::open(dir.path()).unwrap();
    }

    #[tokio::test]
    async fn a_file_under_the_wrong_name_is_refused_not_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        store.commit(Batch::put(&rec("a"))).await.unwrap();
        fs::rename(dir.path().join("a.json"), dir.path().join("b.json")).unwrap();
        let err = store.load().await.unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
}
