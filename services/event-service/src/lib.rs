//! event-service: posts Kubernetes Events (or, in local mode, JSON lines) for
//! volumes. Best effort: Post validates, queues and returns at once; callers
//! never wait on the Kubernetes API (docs/decisions.md §5.1).
//!
//! - [`catalogue`]: reason, type and the exact Go-driver message of each
//!   typed event ([`message_for`]); [`go_duration`] formats durations as Go.
//! - [`validate`]: the edge checks of a Post.
//! - [`queue`] + [`worker`]: bounded drop-oldest queue, one delivery task with
//!   bounded retries.
//! - [`sink`]: [`sink::file::FileSink`] (local mode) and
//!   [`sink::kube::KubeSink`] (PV lookup by watch or GET + kube's Recorder).
//! - [`metrics`][mod@metrics]: `rds_csi_events_{posted,failed,dropped}_total`.
//!
//! Embedding / tests: [`serve`] runs the service until a shutdown future
//! resolves; [`start`] returns a [`Running`] handle (endpoint, metrics).

pub mod catalogue;
pub mod cli;
pub mod config;
pub mod error;
pub mod go_duration;
pub mod metrics;
pub mod queue;
pub mod service;
pub mod sink;
pub mod spec;
pub mod validate;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rds_bus::{Bus, Listener, Shutdown};
use rds_proto::event::events_server::EventsServer;

pub use catalogue::{EventType, Rendered, message_for};
pub use config::{Config, PvLookupMode, Settings, SinkSpec};
pub use error::Error;
pub use metrics::{DropCause, Metrics};

/// A started event-service.
pub struct Running {
    endpoint: String,
    metrics_addr: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl Running {
    /// The bus address clients pass to `rds_bus::connect`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Where `/metrics` is served, when enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Stops serving, lets the worker drain (bounded), and returns.
    pub async fn stop(self) -> Result<(), Error> {
        self.shutdown.trigger();
        joined(self.task.await)
    }
}

/// Runs event-service on `listener` until `shutdown` resolves.
pub async fn serve(
    cfg: Config,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let mut running = start(cfg, listener).await?;
    tokio::select! {
        _ = shutdown => running.stop().await,
        // The server ending on its own (e.g. its socket failed) ends us too.
        res = &mut running.task => joined(res),
    }
}

fn joined(res: Result<Result<(), Error>, tokio::task::JoinError>) -> Result<(), Error> {
    res.map_err(|e| Error::Config(format!("event-service task failed: {e}")))?
}

/// Validates `cfg`, opens its sink (file, or kube client + PV watch) and
/// starts serving.
pub async fn start(cfg: Config, listener: Listener) -> Result<Running, Error> {
    let settings = cfg.validate().map_err(Error::Config)?;
    let sink: Arc<dyn sink::Sink> = match &settings.sink {
        SinkSpec::File(path) => Arc::new(sink::file::FileSink::open(path)?),
        SinkSpec::Kube { kubeconfig } => {
            let client = sink::kube::client(kubeconfig.as_deref()).await?;
            Arc::new(sink::kube::KubeSink::new(
                client,
                settings.driver_name.clone(),
                settings.instance.clone(),
                settings.attempt_timeout,
                settings.pv_lookup,
            ))
        }
    };
    start_with_sink(settings, sink, listener).await
}

/// Starts serving with a ready sink (for embedding a custom or pre-built one).
pub async fn start_with_sink(
    settings: Settings,
    sink: Arc<dyn sink::Sink>,
    listener: Listener,
) -> Result<Running, Error> {
    let metrics = Arc::new(Metrics::new());
    let shutdown = Shutdown::new();
    let metrics_listener = match settings.metrics_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Metrics { addr, source })?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    let endpoint = listener.endpoint();
    let queue = Arc::new(queue::Queue::new(settings.queue_size));
    let worker = worker::Worker {
        queue: queue.clone(),
        sink,
        metrics: metrics.clone(),
        retry_budget: settings.retry_budget,
    };
    let svc = service::EventsService::new(queue.clone(), metrics.clone());
    let task = tokio::spawn(run(
        settings,
        listener,
        svc,
        worker,
        metrics_listener,
        metrics.clone(),
        shutdown.clone(),
    ));
    tracing::info!(endpoint, metrics = ?metrics_addr, "event-service serving");
    Ok(Running {
        endpoint,
        metrics_addr,
        metrics,
        shutdown,
        task,
    })
}

async fn run(
    settings: Settings,
    listener: Listener,
    svc: service::EventsService,
    worker: worker::Worker,
    metrics_listener: Option<tokio::net::TcpListener>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let queue = svc.queue.clone();
    let mut worker_task = tokio::spawn(worker.run());
    let metrics_task = metrics_listener.map(|l| {
        let s = shutdown.clone();
        tokio::spawn(metrics::serve_http(l, metrics.clone(), async move {
            s.wait().await
        }))
    });
    let s = shutdown.clone();
    let served = Bus::new()
        .add_service(EventsServer::new(svc))
        .serve(listener, async move { s.wait().await })
        .await;
    // Whatever ended serving, stop the rest too.
    shutdown.trigger();
    queue.close();
    if tokio::time::timeout(settings.drain_timeout, &mut worker_task)
        .await
        .is_err()
    {
        worker_task.abort();
        let left = queue.take_all();
        for ev in &left {
            metrics.inc_dropped(ev.rendered.reason, DropCause::Shutdown);
        }
        tracing::warn!(
            dropped = left.len(),
            "drain deadline passed; queued events dropped"
        );
    }
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    served.map_err(Error::from)
}
