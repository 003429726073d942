//! The attachment table: the in-memory view every RPC answers from, changed
//! only under the volume's lock and only after the store has made the change
//! durable; events follow the durable change (never before, never blocking).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use rds_bus::{NodeId, VolumeId};
use tokio::sync::Notify;

use crate::cluster::{Cluster, Presence};
use crate::error::Error;
use crate::events::{self, EventPoster};
use crate::fencing::{self, AttachIntent, AttachPlan, DetachPlan, MigrationOutcome};
use crate::locks::VolumeLocks;
use crate::metrics::Metrics;
use crate::model::{AccessMode, PvcRef, Record};
use crate::store::{Batch, Store};

mod background;
mod storage;

/// Reconciler clears are made durable in batches of this many volumes.
const CLEAR_BATCH: usize = 1000;

pub struct Manager {
    table: RwLock<BTreeMap<VolumeId, Record>>,
    locks: VolumeLocks,
    store: Arc<dyn Store>,
    events: EventPoster,
    metrics: Arc<Metrics>,
    cluster: Arc<dyn Cluster>,
    ready: AtomicBool,
    default_migration_timeout_secs: u32,
    /// Woken when a migration window opens (the watchdog recomputes its
    /// next deadline).
    migration_wake: Notify,
    /// Storage fencing through rds-agent (`--agent-endpoint`), set once at
    /// start; see `manager/storage.rs`.
    storage: std::sync::OnceLock<Arc<crate::storage_fence::StorageFence>>,
    /// Fencing off: the exports it had fenced were opened (once).
    storage_opened: AtomicBool,
}

/// What is known about an attachment found in the API (Kubernetes mode).
#[derive(Clone, Debug)]
pub struct Adopted {
    pub access_mode: AccessMode,
    pub block: bool,
    pub pvc: Option<PvcRef>,
    pub migration_timeout_secs: u32,
    pub attached_at: Timestamp,
}

pub fn to_std(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

impl Manager {
    pub fn new(
        store: Arc<dyn Store>,
        events: EventPoster,
        metrics: Arc<Metrics>,
        cluster: Arc<dyn Cluster>,
        default_migration_timeout_secs: u32,
    ) -> Arc<Manager> {
        Arc::new(Manager {
            table: RwLock::new(BTreeMap::new()),
            locks: VolumeLocks::default(),
            store,
            events,
            metrics,
            cluster,
            ready: AtomicBool::new(false),
            default_migration_timeout_secs: default_migration_timeout_secs.max(1),
            migration_wake: Notify::new(),
            storage: std::sync::OnceLock::new(),
            storage_opened: AtomicBool::new(false),
        })
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Installs the rebuilt table and starts answering.
    pub fn install(&self, records: Vec<Record>) {
        let open = records
            .iter()
            .filter(|r| r.migration.as_ref().is_some_and(|m| !m.timed_out))
            .count();
        let mut table = self.write();
        *table = records.into_iter().map(|r| (r.volume.clone(), r)).collect();
        self.metrics.set_table(table.len(), open);
        drop(table);
        self.ready.store(true, Ordering::Release);
        self.migration_wake.notify_one();
    }

    fn ensure_ready(&self) -> Result<(), Error> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(Error::StoreNotReady(format!(
                "{} is still being rebuilt; retry shortly",
                self.store.describe()
            )))
        }
    }

    /// Attach and Detach decide on a complete view only: UNAVAILABLE
    /// (STORE_NOT_READY; the caller retries) while the cluster view is being
    /// listed, never a decision on a partial table.
    fn ensure_decidable(&self) -> Result<(), Error> {
        self.ensure_ready()?;
        self.cluster
            .decisions_ready()
            .map_err(|why| Error::StoreNotReady(format!("{why}; retry shortly")))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<VolumeId, Record>> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<VolumeId, Record>> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, volume: &VolumeId) -> Option<Record> {
        self.read().get(volume).cloned()
    }

    /// Durable first, then visible.
    async fn commit(&self, put: Vec<Record>, remove: Vec<VolumeId>) -> Result<(), Error> {
        self.store
            .commit(Batch {
                put: &put,
                remove: &remove,
            })
            .await?;
        let mut table = self.write();
        for v in remove {
            table.remove(&v);
        }
        for r in put {
            table.insert(r.volume.clone(), r);
        }
        self.metrics.set_volumes(table.len());
        Ok(())
    }

    pub async fn attach(&self, mut want: AttachIntent) -> Result<(Record, bool), Error> {
        let started = Instant::now();
        let res = self.attach_inner(&mut want, started).await;
        if res.is_err() {
            self.metrics.attach(false);
        }
        res
    }

    async fn attach_inner(
        &self,
        want: &mut AttachIntent,
        started: Instant,
    ) -> Result<(Record, bool), Error> {
        fencing::check_mode(want.access_mode, want.block)?;
        self.ensure_decidable()?;
        if want.migration_timeout_secs == 0 {
            want.migration_timeout_secs = self.default_migration_timeout_secs;
        }
        if self.cluster.node(&want.node) == Presence::Gone {
            return Err(Error::NodeNotFound(want.node.clone()));
        }
        let _guard = self.locks.lock(&want.volume).await;
        // Again under the lock: a re-list may have started while we waited.
        self.ensure_decidable()?;
        let current = self.record(&want.volume);
        let plan = match fencing::plan_attach(current.as_ref(), want, Timestamp::now()) {
            Ok(plan) => plan,
            Err(e) => {
                if let Error::AttachedElsewhere { holder, .. } = &e {
                    self.metrics.conflict();
                    let pvc = current
                        .as_ref()
                        .and_then(|r| r.pvc.as_ref())
                        .or(want.pvc.as_ref());
                    self.events.post(
                        &want.volume,
                        Some(&want.node),
                        pvc,
                        events::conflict(&want.node, holder),
                    );
                }
                return Err(e);
            }
        };
        let doing = format!("attach to {}", want.node);
        match plan {
            AttachPlan::Already(rec) => {
                // A repeat also repairs a list a failed first try left behind.
                self.fence_to(&rec.volume, &rec.node_ids(), &doing).await?;
                Ok((rec, true))
            }
            AttachPlan::Refresh(rec) => {
                self.commit(vec![rec.clone()], vec![]).await?;
                self.fence_to(&rec.volume, &rec.node_ids(), &doing).await?;
                Ok((rec, true))
            }
            AttachPlan::Attach(rec) => {
                self.commit(vec![rec.clone()], vec![]).await?;
                self.fence_to(&rec.volume, &rec.node_ids(), &doing).await?;
                let took = started.elapsed();
                self.metrics.attach(true);
                self.metrics.op("attach", took);
                self.events.post(
                    &rec.volume,
                    Some(&want.node),
                    rec.pvc.as_ref(),
                    events::volume_attached(&want.node, took),
                );
                Ok((rec, false))
            }
            AttachPlan::StartMigration(rec) => {
                self.commit(vec![rec.clone()], vec![]).await?;
                self.fence_to(&rec.volume, &rec.node_ids(), &doing).await?;
                self.metrics.attach(true);
                self.metrics.op("attach_secondary", started.elapsed());
                self.metrics.migration_started();
                self.events.post(
                    &rec.volume,
                    Some(&want.node),
                    rec.pvc.as_ref(),
                    events::migration_started(
                        &rec.nodes[0].node,
                        &want.node,
                        want.migration_timeout_secs,
                    ),
                );
                self.migration_wake.notify_one();
                Ok((rec, false))
            }
        }
    }

    /// `node` None detaches from every node. Returns whether anything was
    /// attached.
    pub async fn detach(&self, volume: &VolumeId, node: Option<&NodeId>) -> Result<bool, Error> {
        let started = Instant::now();
        self.ensure_decidable()?;
        let _guard = self.locks.lock(volume).await;
        self.ensure_decidable()?;
        let current = self.record(volume);
        let now = Timestamp::now();
        match fencing::plan_detach(current.as_ref(), node, now) {
            DetachPlan::NotAttached => Ok(false),
            DetachPlan::Remove { old, detached } => {
                let doing = format!("detach from {}", join_nodes(&detached));
                self.fence_and_commit_detach(volume, &[], &doing, vec![], vec![volume.clone()])
                    .await?;
                self.metrics.op("detach", started.elapsed());
                if let Some(m) = old.migration.as_ref().filter(|m| !m.timed_out) {
                    self.metrics
                        .migration_finished("failed", to_std(now.duration_since(m.started_at)));
                }
                for n in &detached {
                    self.events.post(
                        volume,
                        Some(n),
                        old.pvc.as_ref(),
                        events::volume_detached(n),
                    );
                }
                Ok(true)
            }
            DetachPlan::Partial { new, outcome } => {
                let doing = format!("detach (keeping {})", join_nodes(&new.node_ids()));
                self.fence_and_commit_detach(
                    volume,
                    &new.node_ids(),
                    &doing,
                    vec![new.clone()],
                    vec![],
                )
                .await?;
                self.metrics.op("detach_partial", started.elapsed());
                let pvc = new.pvc.as_ref();
                let (who, event) = self.outcome_event(&outcome);
                self.events.post(volume, Some(who), pvc, event);
                Ok(true)
            }
        }
    }

    /// A detach's storage side then its durable change; either failing
    /// counts as a failed detach.
    async fn fence_and_commit_detach(
        &self,
        volume: &VolumeId,
        keep: &[NodeId],
        doing: &str,
        put: Vec<Record>,
        remove: Vec<VolumeId>,
    ) -> Result<(), Error> {
        let done = match self.fence_to(volume, keep, doing).await {
            Ok(()) => self.commit(put, remove).await,
            Err(e) => Err(e),
        };
        self.metrics.detach(done.is_ok());
        done
    }

    /// The event a partial detach posts, and the node it is about; a
    /// finished migration is also counted.
    fn outcome_event<'a>(
        &self,
        outcome: &'a MigrationOutcome,
    ) -> (&'a NodeId, rds_proto::event::post_request::Event) {
        match outcome {
            MigrationOutcome::Completed {
                source,
                target,
                duration,
            } => {
                self.metrics
                    .migration_finished("success", to_std(*duration));
                (
                    source,
                    events::migration_completed(source, target, to_std(*duration)),
                )
            }
            MigrationOutcome::Aborted {
                source,
                target,
                elapsed,
            } => {
                self.metrics.migration_finished("failed", to_std(*elapsed));
                (
                    target,
                    events::migration_failed(
                        source,
                        target,
                        "target detached before the source (migration abandoned)",
                        to_std(*elapsed),
                    ),
                )
            }
            MigrationOutcome::AfterTimeout { detached }
            | MigrationOutcome::NoMigration { detached } => {
                (detached, events::volume_detached(detached))
            }
        }
    }

    pub fn get(&self, volume: &VolumeId) -> Result<Record, Error> {
        self.ensure_ready()?;
        self.record(volume)
            .ok_or_else(|| Error::NotAttached(volume.clone()))
    }

    pub fn list(
        &self,
        node: Option<&NodeId>,
        volume: Option<&VolumeId>,
    ) -> Result<Vec<Record>, Error> {
        self.ensure_ready()?;
        let table = self.read();
        Ok(match volume {
            Some(v) => table.get(v).into_iter().cloned().collect::<Vec<_>>(),
            None => table.values().cloned().collect(),
        }
        .into_iter()
        .filter(|r| node.is_none_or(|n| r.holds(n)))
        .collect())
    }

    /// Every (volume, node) pair held, for the reconciler.
    pub fn pairs(&self) -> Vec<(VolumeId, NodeId)> {
        self.read()
            .values()
            .flat_map(|r| r.nodes.iter().map(|n| (r.volume.clone(), n.node.clone())))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn join_nodes(nodes: &[NodeId]) -> String {
    nodes
        .iter()
        .map(NodeId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
