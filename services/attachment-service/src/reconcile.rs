//! The reconciler and the migration watchdog.
//!
//! - Stale attachments: an attachment whose node (or, in Kubernetes mode,
//!   whose VolumeAttachment) is gone is cleared once it has been seen gone
//!   for the grace period — on an interval, when triggered (a Node or an
//!   attached VolumeAttachment deleted), and exactly at the grace deadline
//!   of anything seen missing. **Every replica** clears its own table (it
//!   is local memory, decided from the same watched API objects), so all
//!   replicas converge; only the Lease holder posts StaleAttachmentCleared
//!   (one event per clear, not one per replica). The clear re-checks under
//!   the volume's lock (see `Manager::clear_stale`).
//! - Migration windows (leader only): at each window's deadline the record
//!   is marked timed out and MigrationFailed is posted (see
//!   `fencing::expire_migration`).

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
    /// When each pair was first seen missing (monotonic, and wall clock
    /// for comparing with `attached_at`).
    missing_since: HashMap<(VolumeId, NodeId), (Instant, Timestamp)>,
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

    /// One pass over the table as the leader (clears post events).
    pub async fn pass(&mut self) -> Result<PassReport, Error> {
        self.pass_as(true).await
    }

    /// One pass over the table (its own trace: the events it posts hang
    /// off this span). `leading`: whether clears post events.
    #[tracing::instrument(name = "attachment.reconcile", skip(self))]
    pub async fn pass_as(&mut self, leading: bool) -> Result<PassReport, Error> {
        let started = Instant::now();
        let now = Timestamp::now();
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
            let (since, since_wall) = *self
                .missing_since
                .entry(key.clone())
                .or_insert((started, now));
            if started.duration_since(since) >= self.grace {
                stale.push((v.clone(), n.clone(), since_wall));
            }
            gone.insert(key);
        }
        // Back (or detached) within the grace period: the clock restarts.
        self.missing_since.retain(|k, _| gone.contains(k));
        let cleared = self.manager.clear_stale(&stale, leading).await?;
        for c in &cleared {
            self.missing_since.remove(c);
        }
        let took = started.elapsed();
        self.manager.metrics().op("reconcile", took);
        Ok(PassReport {
            checked: pairs.len(),
            gone: gone.len(),
            cleared: cleared.len(),
            next_due: self
                .missing_since
                .values()
                .map(|(s, _)| *s)
                .min()
                .map(|s| s + self.grace),
            took,
        })
    }

    /// Runs until shutdown: passes on every replica (clears post events only
    /// while `leader` is true); the migration watchdog only while leading.
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
            if self.manager.is_ready() {
                if leading && let Err(e) = self.manager.expire_migrations(Timestamp::now()).await {
                    tracing::warn!(error = %e, "migration watchdog failed; retrying");
                    wake_at = wake_at.min(Instant::now() + Duration::from_secs(1));
                }
                if Instant::now() >= next_pass {
                    match self.pass_as(leading).await {
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
                if leading && let Err(e) = self.manager.repair_storage_fence().await {
                    tracing::warn!(error = %e, "storage fence repair failed; retrying on the next pass");
                }
                wake_at = wake_at.min(next_pass);
                if leading && let Some(deadline) = self.manager.next_migration_deadline() {
                    let left = to_std(deadline.duration_since(Timestamp::now()));
                    wake_at = wake_at.min(Instant::now() + left);
                }
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
                }
                _ = shutdown.wait() => return,
            }
        }
    }
}
