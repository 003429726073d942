//! The in-flight table: at most one detached long attempt (a copy-from) per
//! target slot. A retry of the same request finds the first attempt here and
//! waits for it or reports it as still running, instead of sending a second
//! `/disk add` onto a half-written file. Deletes of the target or of the
//! source wait too: a source must not vanish under its copy.
//!
//! An entry lives exactly as long as its task: the task removes it when the
//! copy and its verification are done. A later retry then reads the RDS state
//! like any other call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use rds_routeros::{DiskPath, DiskRecord, Slot};

use crate::error::AgentError;

type Outcome = Result<DiskRecord, Arc<AgentError>>;

/// One detached attempt.
#[derive(Clone)]
pub struct Flight {
    pub target: Slot,
    pub source: Slot,
    pub file_path: DiskPath,
    /// Bytes the new disk will have.
    pub size: u64,
    pub started: SystemTime,
    done: Shared<BoxFuture<'static, Outcome>>,
}

impl Flight {
    /// The outcome if it arrives within `within`; `None` while still running.
    pub async fn wait(&self, within: Duration) -> Option<Result<DiskRecord, AgentError>> {
        match tokio::time::timeout(within, self.done.clone()).await {
            Ok(Ok(d)) => Some(Ok(d)),
            Ok(Err(e)) => Some(Err(e.relay())),
            Err(_) => None,
        }
    }

    pub fn describe(&self) -> String {
        let secs = self.started.elapsed().map(|d| d.as_secs()).unwrap_or(0);
        format!(
            "copy of {} into {} is still running ({secs} s so far); retry later",
            self.source, self.target
        )
    }
}

#[derive(Default)]
pub struct Flights {
    map: Mutex<HashMap<String, Flight>>,
}

/// What a new flight is about.
pub struct Plan {
    pub target: Slot,
    pub source: Slot,
    pub file_path: DiskPath,
    pub size: u64,
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flight>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, target: &Slot) -> Option<Flight> {
        self.lock().get(target.as_str()).cloned()
    }

    /// A running flight that writes or reads `slot`.
    pub fn touching(&self, slot: &Slot) -> Option<Flight> {
        self.lock()
            .values()
            .find(|f| &f.target == slot || &f.source == slot)
            .cloned()
    }

    /// Every running flight (listings show them as not ready).
    pub fn all(&self) -> Vec<Flight> {
        self.lock().values().cloned().collect()
    }

    /// Starts `work` detached for `plan.target`, or returns the flight that
    /// already runs for it (then `work` is dropped unstarted).
    pub fn start<F>(self: &Arc<Self>, plan: Plan, work: F) -> Flight
    where
        F: std::future::Future<Output = Result<DiskRecord, AgentError>> + Send + 'static,
    {
        let mut map = self.lock();
        if let Some(f) = map.get(plan.target.as_str()) {
            return f.clone();
        }
        let me = Arc::downgrade(self);
        let key = plan.target.to_string();
        let task = tokio::spawn(async move {
            let res = work.await.map_err(Arc::new);
            if let Err(e) = &res {
                tracing::warn!(slot = %key, error = %e, "detached copy failed");
            }
            if let Some(me) = me.upgrade() {
                me.lock().remove(&key);
            }
            res
        });
        let done = async move {
            task.await.unwrap_or_else(|e| {
                Err(Arc::new(AgentError::Internal(format!(
                    "detached copy task: {e}"
                ))))
            })
        }
        .boxed()
        .shared();
        let f = Flight {
            target: plan.target,
            source: plan.source,
            file_path: plan.file_path,
            size: plan.size,
            started: SystemTime::now(),
            done,
        };
        map.insert(f.target.to_string(), f.clone());
        f
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rds_routeros::Legend;

    fn plan(t: &str) -> Plan {
        Plan {
            target: Slot::new(t).unwrap(),
            source: Slot::new("pvc-src").unwrap(),
            file_path: DiskPath::new("/storage-pool/metal-csi/x.img").unwrap(),
            size: 1,
        }
    }

    #[tokio::test]
    async fn a_second_start_joins_the_first_and_the_entry_ends_with_the_task() {
        let flights = Arc::new(Flights::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let f1 = flights.start(plan("pvc-a"), async move {
            let _ = rx.await;
            Ok(DiskRecord::file_disk(
                &Legend::rose_storage(),
                "pvc-a",
                "/storage-pool/metal-csi/pvc-a.img",
                1,
                None,
            ))
        });
        let f2 = flights.start(plan("pvc-a"), async {
            Err(AgentError::Internal("second".into()))
        });
        assert!(
            f2.wait(Duration::from_millis(10)).await.is_none(),
            "still running"
        );
        assert!(flights.touching(&Slot::new("pvc-src").unwrap()).is_some());
        tx.send(()).unwrap();
        let d = f1.wait(Duration::from_secs(5)).await.unwrap().unwrap();
        assert_eq!(
            d.slot.as_deref(),
            Some("pvc-a"),
            "the second start joined the first"
        );
        assert!(f2.wait(Duration::from_secs(5)).await.unwrap().is_ok());
        while flights.get(&Slot::new("pvc-a").unwrap()).is_some() {
            tokio::task::yield_now().await;
        }
    }
}
