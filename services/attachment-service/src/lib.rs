//! attachment-service: which volume is attached where (docs/ARCHITECTURE.md §6).
//!
//! Serves `rds.attachment.v1.Attachments` (Attach, Detach, Get, List;
//! idempotent) over the bus, fences single-node volumes to one node and
//! RWX block volumes to two (the live-migration window), keeps the table
//! durable (a file store in local mode, VolumeAttachments in Kubernetes
//! mode), clears stale attachments (every replica its own table; the
//! Lease holder posts the events) and posts the attachment
//! events through event-service after each durable change.
//!
//! In-process use (tests, rdsctl): [`serve`], or [`start`] for a handle on
//! the running parts.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod error;
pub mod events;
pub mod fencing;
pub mod grpc;
pub mod k8s;
pub mod locks;
pub mod manager;
pub mod metrics;
pub mod model;
pub mod reconcile;
pub mod spec;
pub mod storage_fence;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rds_bus::{Bus, Listener, Shutdown};
use rds_proto::attachment::attachments_server::AttachmentsServer;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use config::{Config, Mode, Settings};
pub use error::Error;
pub use grpc::AttachmentsService;
pub use manager::Manager;

use cluster::{Cluster, KnownNodes};
use events::EventPoster;
use metrics::Metrics;
use reconcile::Reconciler;
use store::Store;
use store::file::FileStore;

/// The running parts of one attachment-service.
pub struct Running {
    manager: Arc<Manager>,
    leader: watch::Receiver<bool>,
    /// Local mode: the constant "we lead" (kept so the channel stays open).
    _leader_tx: Option<watch::Sender<bool>>,
    metrics_addr: Option<SocketAddr>,
    trigger: Arc<Notify>,
    shutdown: Shutdown,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn manager(&self) -> &Arc<Manager> {
        &self.manager
    }

    pub fn service(&self) -> AttachmentsService {
        AttachmentsService::new(self.manager.clone())
    }

    /// Whether this replica runs the reconciler now (always in local mode).
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Follows leadership changes (tests sample it).
    pub fn leader_watch(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Asks the reconciler for a pass now.
    pub fn reconcile_now(&self) {
        self.trigger.notify_one();
    }

    /// Stops background work (the leader releases its Lease) and waits for
    /// it, at most a few seconds.
    pub async fn stop(self) {
        self.shutdown.trigger();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// Builds the service and starts its background tasks. Local mode loads the
/// file store before returning (an unreadable store is an error: nothing is
/// guessed); Kubernetes mode rebuilds in the background, retrying, and
/// answers STORE_NOT_READY until then.
pub async fn start(settings: &Settings, shutdown: Shutdown) -> Result<Running, Error> {
    let cfg = &settings.raw;
    let metrics = Arc::new(Metrics::new());
    let events = EventPoster::new(
        cfg.events_endpoint.as_deref(),
        cfg.events_deadline,
        metrics.clone(),
    )?;
    let trigger = Arc::new(Notify::new());
    let timeout = settings.migration_timeout_secs();
    let mut tasks = Vec::new();

    let (manager, cluster, leader, leader_tx): (Arc<Manager>, Arc<dyn Cluster>, _, _) = match cfg
        .mode
    {
        Mode::Local => {
            let dir = cfg
                .state_dir
                .clone()
                .ok_or_else(|| Error::Config("--state-dir is required in local mode".into()))?;
            let store = Arc::new(FileStore::open(dir)?);
            let cluster: Arc<dyn Cluster> = Arc::new(KnownNodes::new(&settings.known_nodes));
            let manager = Manager::new(
                store.clone(),
                events,
                metrics.clone(),
                cluster.clone(),
                timeout,
            );
            let records = store.load().await?;
            tracing::info!(volumes = records.len(), store = %store.describe(), "attachment table loaded");
            manager.install(records);
            let (tx, rx) = watch::channel(true);
            (manager, cluster, rx, Some(tx))
        }
        Mode::Kube => {
            let client = k8s::client(cfg.kubeconfig.as_deref()).await?;
            let state = Arc::new(k8s::KubeState::new(
                client.clone(),
                cfg.driver_name.clone(),
                timeout,
            ));
            let store = Arc::new(k8s::store::KubeStore::new(state.clone()));
            let cluster: Arc<dyn Cluster> = state.clone();
            let manager = Manager::new(store, events, metrics.clone(), cluster.clone(), timeout);
            tasks.push(tokio::spawn(k8s::watch::rebuild_then_watch(
                state.clone(),
                manager.clone(),
                trigger.clone(),
                shutdown.clone(),
            )));
            tasks.push(tokio::spawn(k8s::watch::watch_nodes(
                state,
                trigger.clone(),
                metrics.clone(),
                shutdown.clone(),
            )));
            let (rx, lease_task) = k8s::lease::spawn(
                client,
                k8s::lease::LeaseConfig {
                    name: cfg.lease_name.clone(),
                    namespace: cfg.lease_namespace.clone(),
                    identity: settings.lease_identity.clone(),
                    duration: cfg.lease_duration,
                },
                shutdown.clone(),
            );
            tasks.push(lease_task);
            (manager, cluster, rx, None)
        }
    };

    if let Some(fence) = storage_fence::StorageFence::from_config(cfg)? {
        tracing::info!(
            enabled = fence.enabled(),
            "storage fencing through rds-agent"
        );
        manager.set_storage_fence(Arc::new(fence));
    }
    let reconciler = Reconciler::new(manager.clone(), cluster, cfg.grace_period);
    tasks.push(tokio::spawn(reconciler.run(
        cfg.reconcile_interval,
        leader.clone(),
        trigger.clone(),
        shutdown.clone(),
    )));

    let metrics_addr = match settings.metrics_addr {
        Some(addr) => {
            let s = shutdown.clone();
            Some(metrics::serve(addr, metrics, async move { s.wait().await }).await?)
        }
        None => None,
    };

    Ok(Running {
        manager,
        leader,
        _leader_tx: leader_tx,
        metrics_addr,
        trigger,
        shutdown,
        tasks,
    })
}

/// Validates `cfg`, starts everything and serves the bus on `listener` until
/// `shutdown` resolves; then drains calls and stops background work.
pub async fn serve(
    cfg: Config,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let settings = cfg.validate()?;
    let token = Shutdown::new();
    let running = start(&settings, token.clone()).await?;
    tracing::info!(endpoint = %listener.endpoint(), mode = ?settings.raw.mode, "attachment-service serving");
    let bus = Bus::new();
    let health = bus.health();
    health
        .set_not_serving::<AttachmentsServer<AttachmentsService>>()
        .await;
    let manager = running.manager().clone();
    let ready_token = token.clone();
    tokio::spawn(async move {
        // The health service says SERVING once the table is rebuilt.
        while !manager.is_ready() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = ready_token.wait() => return,
            }
        }
        health
            .set_serving::<AttachmentsServer<AttachmentsService>>()
            .await;
    });
    let stop = token.clone();
    let res = bus
        .add_service(AttachmentsServer::new(running.service()))
        .serve(listener, async move {
            tokio::select! {
                _ = shutdown => {}
                _ = stop.wait() => {}
            }
        })
        .await;
    running.stop().await;
    tracing::info!("attachment-service stopped");
    res.map_err(|e| Error::Internal(format!("bus: {e}")))
}
