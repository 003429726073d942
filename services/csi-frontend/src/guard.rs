//! Per-volume / per-snapshot operation guard (one key per object:
//! `volume/<id>`, `snapshot/<id>`). CSI sidecars retry; a
//! second operation on the same object while one is running gets ABORTED at
//! once (CSI spec "operation pending") instead of racing the first. The hold
//! is released when the handler future ends or is dropped (a cancelled CSI
//! call frees its volume).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::error::FrontendError;

#[derive(Clone, Default)]
pub struct OpGuard {
    held: Arc<Mutex<HashSet<String>>>,
}

/// Proof of holding a key; releases on drop.
#[must_use = "the guard is released as soon as this is dropped"]
pub struct Held {
    held: Arc<Mutex<HashSet<String>>>,
    key: String,
}

impl OpGuard {
    /// Holds a volume id. Ids are compared lowercased: ids that differ only
    /// in case share one NQN, so they must not run concurrently either.
    pub fn volume(&self, id: &str) -> Result<Held, FrontendError> {
        self.take(format!("volume/{}", id.to_ascii_lowercase()), || {
            format!("an operation on volume {id} is already in progress")
        })
    }

    /// Holds a snapshot id: one key per snapshot for every operation on it
    /// (CreateSnapshot derives the id from the name first, so a create and
    /// a delete of the same snapshot exclude each other, and a restore from
    /// it excludes both).
    pub fn snapshot(&self, id: &str) -> Result<Held, FrontendError> {
        self.take(format!("snapshot/{id}"), || {
            format!("an operation on snapshot {id} is already in progress")
        })
    }

    fn take(&self, key: String, busy: impl FnOnce() -> String) -> Result<Held, FrontendError> {
        let mut set = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert(key.clone()) {
            return Err(FrontendError::OperationPending(busy()));
        }
        Ok(Held {
            held: self.held.clone(),
            key,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut set = self.held.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn second_holder_is_refused_until_release() {
        let g = OpGuard::default();
        let a = g.volume("pvc-1").unwrap();
        let e = g.volume("PVC-1").err().unwrap();
        assert!(matches!(e, FrontendError::OperationPending(_)));
        assert!(g.volume("pvc-2").is_ok(), "other volumes are independent");
        assert!(
            g.snapshot("pvc-1").is_ok(),
            "snapshot ids are their own space"
        );
        drop(a);
        assert!(g.volume("pvc-1").is_ok());
        assert_eq!(g.len(), 0);
    }

    #[tokio::test]
    async fn a_dropped_future_releases_its_hold() {
        let g = OpGuard::default();
        let g2 = g.clone();
        let task = tokio::spawn(async move {
            let _h = g2.volume("v").unwrap();
            futures::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        while g.len() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(g.volume("v").is_err());
        task.abort();
        let _ = task.await;
        assert!(g.volume("v").is_ok());
    }
}
