//! Test-only kit shared by every crate's tests (a dev-dependency only,
//! never linked into a binary).
//!
//! - [`kube`]: one in-process fake Kubernetes API server (plain HTTP with a
//!   kubeconfig, or HTTPS with a pod's service-account files).
//! - [`eventually`]: wait for a positive condition instead of sleeping.

pub mod kube;

use std::future::Future;
use std::time::{Duration, Instant};

pub use kube::{Call, FakeApi, Fault, Verb};

/// Polls `f` every 10 ms until it returns Some or `within` passes.
pub async fn eventually<T, F, Fut>(within: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
