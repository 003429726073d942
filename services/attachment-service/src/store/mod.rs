//! Where acknowledged attachment state lives. Two implementations:
//! - [`file::FileStore`] (local mode): one JSON file per volume, written
//!   atomically (temp file, fsync, rename, fsync dir);
//! - [`crate::kube::KubeStore`] (Kubernetes mode): the VolumeAttachment
//!   objects are the record; see that module for why it writes nothing.

pub mod file;

use futures::future::BoxFuture;
use rds_bus::VolumeId;

use crate::error::Error;
use crate::model::Record;

/// One durable change: records to (re)write and volumes to forget. A store
/// returns only once the whole batch survives a crash.
#[derive(Clone, Copy, Debug, Default)]
pub struct Batch<'a> {
    pub put: &'a [Record],
    pub remove: &'a [VolumeId],
}

impl<'a> Batch<'a> {
    pub fn put(rec: &'a Record) -> Self {
        Batch {
            put: std::slice::from_ref(rec),
            remove: &[],
        }
    }
    pub fn remove(vol: &'a VolumeId) -> Self {
        Batch {
            put: &[],
            remove: std::slice::from_ref(vol),
        }
    }
}

pub trait Store: Send + Sync + 'static {
    /// Every acknowledged record (the rebuild at start).
    fn load(&self) -> BoxFuture<'_, Result<Vec<Record>, Error>>;
    /// Makes `batch` durable.
    fn commit<'a>(&'a self, batch: Batch<'a>) -> BoxFuture<'a, Result<(), Error>>;
    /// For logs and `--check-config`.
    fn describe(&self) -> String;
}
