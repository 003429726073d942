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
//! Embedding / tests: [`start`] serves on a bound listener until a shutdown
//! token fires and returns a [`Running`] handle (endpoint, metrics), the
//! entry shape every service shares (docs/decisions.md §14); [`cli`] runs
//! the binary through `rds_bus::runner`.

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
        self.wait().await
    }

    /// Resolves once serving ended (the shutdown token fired, or the server
    /// failed on its own) and the worker drained (bounded).
    pub async fn wait(self) -> Result<(), Error> {
        joined(self.task.await)
    }
}

impl rds_bus::Serving for Running {
    type Error = Error;
    async fn wait(self) -> Result<(), Error> {
        Running::wait(self).await
    }
}

fn joined(res: Result<Result<(), Error>, tokio::task::JoinError>) -> Result<(), Error> {
    res.map_err(|e| Error::Config(format!("event-service task failed: {e}")))?
}

/// Opens the sink the settings name (file, or kube client + PV lookup) and
/// serves on `listener` until `shutdown` fires.
pub async fn start(
    settings: Settings,
    listener: Listener,
    shutdown: Shutdown,
) -> Result<Running, Error> {
    let sink: Arc<dyn sink::Sink> = match &settings.sink {
        SinkSpec::File(path) => Arc::new(sink::file::FileSink::open(path)?),
        SinkSpec::Kube { kubeconfig } => {
            let client = rds_bus::kube_client::client(kubeconfig.as_deref())
                .await
                .map_err(|e| Error::Kubeconfig(e.to_string()))?;
            Arc::new(sink::kube::KubeSink::new(
                client,
                settings.driver_name.clone(),
                settings.instance.clone(),
                settings.attempt_timeout,
                settings.pv_lookup,
            ))
        }
    };
    start_with_sink(settings, sink, listener, shutdown).await
}

/// [`start`] with a ready sink (for embedding a custom or pre-built one).
pub async fn start_with_sink(
    settings: Settings,
    sink: Arc<dyn sink::Sink>,
    listener: Listener,
    shutdown: Shutdown,
) -> Result<Running, Error> {
    let metrics = Arc::new(Metrics::new());
    let metrics_listener = match settings.metrics_addr {
        Some(addr) => Some(
            rds_bus::metrics_server::bind(addr)
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
        let m = metrics.clone();
        tokio::spawn(rds_bus::metrics_server::serve(
            l,
            Arc::new(move || Ok(m.encode())),
            async move { s.wait().await },
        ))
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
