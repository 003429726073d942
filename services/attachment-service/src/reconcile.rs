//! The reconciler and the migration watchdog (one task, leader only).
//!
//! - Stale attachments: an attachment whose node (or, in Kubernetes mode,
//!   whose VolumeAttachment) is gone is cleared once it has been seen gone
//!   for the grace period — on an interval, when triggered (a Node deleted),
//!   and exactly at the grace deadline of anything seen missing. Clears are
//!   durable before StaleAttachmentCleared is posted.
//! - Migration windows: at each window's deadline the record is marked timed
//!   out and MigrationFailed is posted (see `fencing::expire_migration`).
//!
//! A replica that is not the leader does nothing and forgets what it saw
//! missing (its grace clock restarts when it becomes leader).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rds_bus::{NodeId, Shutdown, VolumeId};
use tokio::sync::{Notify, watch};

use crate::cluster::{Cluster, Presence};
use crate::error::Error;
use crate::manager::{Manager, to_std};

pub struct Reconciler {
    manager: Arc<Manager>,
    cluster: Arc<dyn Cluster>,
    grace: Duration,
    missing_since: HashMap<(VolumeId, NodeId), Instant>,
}

#[derive(Clone, Debug, Default)]
pub struct PassReport {
    /// (volume, node) pairs looked at.
    pub checked: usize,
    /// Pairs seen gone (cleared or still within the grace period).
    pub gone: usize,
    pub cleared: usize,
    /// When the next still-pending pair reaches its grace deadline.
    pub next_due: Option<Instant>,
    pub took: Duration,
}

impl Reconciler {
    pub fn new(manager: Arc<Manager>, cluster: Arc<dyn Cluster>, grace: Duration) -> Self {
        Reconciler {
            manager,
            cluster,
            grace,
            missing_since: HashMap::new(),
        }
    }

    /// One pass over the table (its own trace: the events it posts hang
    /// off this span).
    #[tracing::instrument(name = "attachment.reconcile", skip_all)]
    pub async fn pass(&mut self) -> Result<PassReport, Error> {
        let started = Instant::now();
        let pairs = self.manager.pairs();
        let mut gone = HashSet::new();
        let mut stale = Vec::new();
        for (v, n) in &pairs {
            let missing = self.cluster.node(n) == Presence::Gone
                || self.cluster.attachment_object(v, n) == Presence::Gone;
            if !missing {
                continue;
            }
            let key = (v.clone(), n.clone());
            let since = *self.missing_since.entry(key.clone()).or_insert(started);
            if started.duration_since(since) >= self.grace {
                stale.push(key.clone());
            }
            gone.insert(key);
        }
        // Back (or detached) within the grace period: the clock restarts.
        self.missing_since.retain(|k, _| gone.contains(k));
        let cleared = self.manager.clear_stale(&stale).await?;
        for c in &cleared {
            self.missing_since.remove(c);
        }
        let took = started.elapsed();
        self.manager.metrics().op("reconcile", took);
        Ok(PassReport {
            checked: pairs.len(),
            gone: gone.len(),
            cleared: cleared.len(),
            next_due: self.missing_since.values().min().map(|s| *s + self.grace),
            took,
        })
    }

    /// Runs until shutdown: passes while `leader` is true.
    pub async fn run(
        mut self,
        interval: Duration,
        mut leader: watch::Receiver<bool>,
        trigger: Arc<Notify>,
        shutdown: Shutdown,
    ) {
        let mut next_pass = Instant::now();
        loop {
            let leading = *leader.borrow_and_update();
            let mut wake_at = Instant::now() + interval;
            if leading && self.manager.is_ready() {
                if let Err(e) = self.manager.expire_migrations(Timestamp::now()).await {
                    tracing::warn!(error = %e, "migration watchdog failed; retrying");
                    wake_at = wake_at.min(Instant::now() + Duration::from_secs(1));
                }
                if Instant::now() >= next_pass {
                    match self.pass().await {
                        Ok(r) => {
                            tracing::debug!(checked = r.checked, gone = r.gone, cleared = r.cleared, took = ?r.took, "reconcile pass");
                            next_pass = Instant::now() + interval;
                            if let Some(due) = r.next_due {
                                next_pass = next_pass.min(due);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "reconcile pass failed; retrying");
                            next_pass = Instant::now() + Duration::from_secs(1).min(interval);
                        }
                    }
                }
                wake_at = wake_at.min(next_pass);
                if let Some(deadline) = self.manager.next_migration_deadline() {
                    let left = to_std(deadline.duration_since(Timestamp::now()));
                    wake_at = wake_at.min(Instant::now() + left);
                }
            } else if !self.missing_since.is_empty() {
                self.missing_since.clear();
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at.into()) => {}
                _ = trigger.notified() => next_pass = Instant::now(),
                _ = self.manager.migration_changed() => {}
                changed = leader.changed() => {
                    if changed.is_err() {
                        tracing::warn!("leader election stopped; reconciler stops");
                        return;
                    }
                    next_pass = Instant::now();
                }
                _ = shutdown.wait() => return,
            }
        }
    }
}
