//! Where delivered events end up, behind one trait so the worker does not
//! care: [`file::FileSink`] (local mode, JSON lines) or [`kube::KubeSink`]
//! (events.k8s.io through kube's Recorder).

pub mod file;
pub mod kube;
pub mod pv_get;
pub mod pv_watch;

use futures::future::BoxFuture;

use crate::error::Error;
use crate::validate::Pending;

/// The result of one successful delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Written / accepted; `on` says where (for logs).
    Posted { on: String },
    /// Kubernetes mode: no PVC and no PV for the volume; nothing to post on.
    NoObject,
}

pub trait Sink: Send + Sync + 'static {
    /// One attempt to deliver `ev`. Errors say whether a retry may help
    /// ([`Error::is_retryable`]); the worker owns the retry policy.
    fn deliver<'a>(&'a self, ev: &'a Pending) -> BoxFuture<'a, Result<Delivered, Error>>;
}
