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
//! In-process use (tests, rdsctl): [`start`] serves on a bound listener and
//! returns a handle on the running parts (the entry shape every service
//! shares, docs/decisions.md §14); [`cli`] runs the binary through
//! `rds_bus::runner`.

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
    endpoint: String,
    server: JoinHandle<Result<(), rds_bus::BusError>>,
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
    /// The bus address clients pass to `rds_bus::connect`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

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

    /// Stops serving and background work (the leader releases its Lease)
    /// and waits for them, the background tasks at most a few seconds each.
    pub async fn stop(self) -> Result<(), Error> {
        self.shutdown.trigger();
        self.wait().await
    }

    /// Resolves once the bus server stopped (its shutdown fired, or it
    /// failed); then stops the background work as [`Running::stop`] does.
    pub async fn wait(self) -> Result<(), Error> {
        let served = self.server.await;
        self.shutdown.trigger();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        tracing::info!("attachment-service stopped");
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Internal(format!("bus: {e}"))),
            Err(e) => Err(Error::Internal(format!("bus task: {e}"))),
        }
    }
}

impl rds_bus::Serving for Running {
    type Error = Error;
    async fn wait(self) -> Result<(), Error> {
        Running::wait(self).await
    }
}

/// Builds the service, starts its background tasks and serves the bus on
/// `listener` until `shutdown` fires. Local mode loads the file store before
/// returning (an unreadable store is an error: nothing is guessed);
/// Kubernetes mode rebuilds in the background, retrying, and answers
/// STORE_NOT_READY until then (the health service says NOT_SERVING until the
/// table is rebuilt).
pub async fn start(
    settings: Settings,
    listener: Listener,
    shutdown: Shutdown,
) -> Result<Running, Error> {
    let settings = &settings;
    let cfg = &settings.raw;
    let metrics = Arc::new(Metrics::new());
    let events = EventPoster::new(
        cfg.events_endpoint.as_deref(),
        cfg.events_deadline,
        metrics.clone(),
    )?;
    let trigger = Arc::new(Notify::new());
    let mut tasks = Vec::new();

    let Core {
        manager,
        cluster,
        leader,
        leader_tx,
    } = match cfg.mode {
        Mode::Local => local_core(settings, events, metrics.clone()).await?,
        Mode::Kube => {
            let parts = (events, metrics.clone(), trigger.clone(), shutdown.clone());
            kube_core(settings, parts, &mut tasks).await?
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

    let metrics_addr = serve_metrics(settings.metrics_addr, &metrics, &shutdown).await?;

    let endpoint = listener.endpoint();
    tracing::info!(endpoint = %endpoint, mode = ?cfg.mode, "attachment-service serving");
    let server = serve_bus(manager.clone(), listener, shutdown.clone()).await;
    Ok(Running {
        endpoint,
        server,
        manager,
        leader,
        _leader_tx: leader_tx,
        metrics_addr,
        trigger,
        shutdown,
        tasks,
    })
}

/// What both modes build: the manager, who is in the cluster, and whether
/// this replica leads.
struct Core {
    manager: Arc<Manager>,
    cluster: Arc<dyn Cluster>,
    leader: watch::Receiver<bool>,
    /// Local mode: the constant "we lead" (kept so the channel stays open).
    leader_tx: Option<watch::Sender<bool>>,
}

/// Local mode: the file store, loaded before serving; the known nodes; this
/// replica always leads.
async fn local_core(
    settings: &Settings,
    events: EventPoster,
    metrics: Arc<Metrics>,
) -> Result<Core, Error> {
    let cfg = &settings.raw;
    let timeout = settings.migration_timeout_secs();
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
    Ok(Core {
        manager,
        cluster,
        leader: rx,
        leader_tx: Some(tx),
    })
}

/// Kubernetes mode: the table rebuilt from VolumeAttachments in the
/// background, the node watch, and the Lease that says who leads.
async fn kube_core(
    settings: &Settings,
    (events, metrics, trigger, shutdown): (EventPoster, Arc<Metrics>, Arc<Notify>, Shutdown),
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Core, Error> {
    let cfg = &settings.raw;
    let timeout = settings.migration_timeout_secs();
    let client = rds_bus::kube_client::client(cfg.kubeconfig.as_deref())
        .await
        .map_err(|e| Error::Config(e.to_string()))?;
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
    Ok(Core {
        manager,
        cluster,
        leader: rx,
        leader_tx: None,
    })
}

/// The metrics/health HTTP server, when an address is configured.
async fn serve_metrics(
    addr: Option<SocketAddr>,
    metrics: &Arc<Metrics>,
    shutdown: &Shutdown,
) -> Result<Option<SocketAddr>, Error> {
    Ok(match addr {
        Some(addr) => {
            let s = shutdown.clone();
            let m = metrics.clone();
            let (bound, _task) = rds_bus::metrics_server::spawn(
                addr,
                Arc::new(move || Ok(m.render())),
                async move { s.wait().await },
            )
            .await
            .map_err(|e| Error::Config(format!("cannot bind metrics address {addr}: {e}")))?;
            Some(bound)
        }
        None => None,
    })
}

/// Serves the Attachments service in a task; the health service says
/// SERVING once the table is rebuilt.
async fn serve_bus(
    manager: Arc<Manager>,
    listener: Listener,
    shutdown: Shutdown,
) -> JoinHandle<Result<(), rds_bus::BusError>> {
    let bus = Bus::new();
    let health = bus.health();
    health
        .set_not_serving::<AttachmentsServer<AttachmentsService>>()
        .await;
    let ready = manager.clone();
    let ready_token = shutdown.clone();
    tokio::spawn(async move {
        while !ready.is_ready() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = ready_token.wait() => return,
            }
        }
        health
            .set_serving::<AttachmentsServer<AttachmentsService>>()
            .await;
    });
    let service = AttachmentsService::new(manager);
    tokio::spawn(async move {
        bus.add_service(AttachmentsServer::new(service))
            .serve(listener, async move { shutdown.wait().await })
            .await
    })
}
