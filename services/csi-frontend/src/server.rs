//! Wiring: builds the services for the configured role and serves them on
//! one listener through the bus server (health service and trace layer
//! included). [`start`] is the entry shape every service shares
//! (docs/decisions.md §14).

use std::net::SocketAddr;
use std::sync::Arc;

use rds_bus::{Bus, Listener, NodeId, Shutdown};
use rds_proto::csi::v1::controller_server::ControllerServer;
use rds_proto::csi::v1::identity_server::IdentityServer;
use rds_proto::csi::v1::node_server::NodeServer;
use tokio::task::JoinHandle;

use crate::backends::Backends;
use crate::config::{Config, NodeRegistry};
use crate::controller::{ControllerService, Core};
use crate::error::FrontendError;
use crate::guard::OpGuard;
use crate::identity::IdentityService;
use crate::known_nodes::{KnownNodes, LocalNodes};
use crate::kube_nodes::KubeNodes;
use crate::node::NodeService;

/// The pieces a caller may replace (e.g. the Kubernetes node registry).
pub struct Deps {
    pub nodes: Arc<dyn KnownNodes>,
}

impl Deps {
    /// Local-mode dependencies from the config.
    pub fn local(cfg: &Config) -> Result<Deps, FrontendError> {
        let nodes = cfg
            .known_nodes
            .iter()
            .map(|n| NodeId::parse(n).map_err(|e| FrontendError::InvalidArgument(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Deps {
            nodes: Arc::new(LocalNodes::new(nodes)),
        })
    }
}

/// A started csi-frontend.
pub struct Running {
    endpoint: String,
    metrics_addr: Option<SocketAddr>,
    task: JoinHandle<Result<(), FrontendError>>,
}

impl Running {
    /// The CSI endpoint as given (`unix:///…` or `host:port`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Where `/metrics` is served, when enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Resolves once serving ended (the shutdown token fired and calls
    /// drained, or the server failed).
    pub async fn wait(self) -> Result<(), FrontendError> {
        self.task
            .await
            .map_err(|e| FrontendError::Internal(format!("csi-frontend task: {e}")))?
    }
}

impl rds_bus::Serving for Running {
    type Error = FrontendError;
    async fn wait(self) -> Result<(), FrontendError> {
        Running::wait(self).await
    }
}

/// Serves CSI on `listener` until `shutdown` fires, with the dependencies
/// the config names. Returns once serving started (the node role's orphan
/// sweep done).
pub async fn start(
    cfg: Config,
    listener: Listener,
    shutdown: Shutdown,
) -> Result<Running, FrontendError> {
    let deps = match cfg.node_registry {
        NodeRegistry::Local => Deps::local(&cfg)?,
        NodeRegistry::Kube => {
            let client = rds_bus::kube_client::client(cfg.kubeconfig.as_deref())
                .await
                .map_err(|e| FrontendError::InvalidArgument(e.to_string()))?;
            Deps {
                nodes: Arc::new(KubeNodes::new(
                    client,
                    cfg.driver_name.clone(),
                    cfg.kube_timeout,
                )),
            }
        }
    };
    start_with(cfg, deps, listener, shutdown).await
}

/// [`start`] with explicit dependencies.
pub async fn start_with(
    cfg: Config,
    deps: Deps,
    listener: Listener,
    shutdown: Shutdown,
) -> Result<Running, FrontendError> {
    let cfg = Arc::new(cfg);
    let backends = Backends::connect(&cfg)?;
    let endpoint = listener.endpoint();
    let mut bus = Bus::new().add_service(IdentityServer::new(IdentityService::new(
        cfg.clone(),
        backends.clone(),
    )));
    if cfg.role.controller() {
        let core = Arc::new(Core {
            cfg: cfg.clone(),
            backends: backends.clone(),
            guard: OpGuard::default(),
            nodes: deps.nodes.clone(),
        });
        bus = bus.add_service(ControllerServer::new(ControllerService::new(core)));
    }
    let mut registry = prometheus_client::registry::Registry::default();
    if cfg.role.node() {
        let metrics = Arc::new(rds_dataplane::NodeMetrics::new());
        metrics.register(&mut registry);
        let plane = Arc::new(crate::node::build_plane(&cfg, &backends, metrics)?);
        // Start-up sweep of orphaned managed attachments: best effort and
        // bounded in time (docs/safety.md §3.11), before serving any node call.
        let report = plane.start().await;
        if !report.errors.is_empty() {
            tracing::warn!(errors = ?report.errors, "orphan sweep reported errors");
        }
        let svc = NodeService::new(cfg.clone(), plane)?;
        svc.register_metrics(&mut registry);
        bus = bus.add_service(NodeServer::new(svc));
    }
    // The metrics server outlives the bus by nothing: it stops when serving
    // ends, whatever ended it.
    let stop_metrics = Shutdown::new();
    let metrics_addr = match cfg.metrics_address {
        Some(addr) => {
            let bound = crate::metrics::spawn(addr, registry, stop_metrics.clone()).await?;
            tracing::info!(%bound, "metrics served on /metrics");
            Some(bound)
        }
        None => None,
    };
    tracing::info!(
        %endpoint,
        driver = %cfg.driver_name,
        role = ?cfg.role,
        known_nodes = %deps.nodes.describe(),
        "csi-frontend serving"
    );
    let task = serve_in_task(bus, listener, endpoint.clone(), stop_metrics, shutdown)?;
    Ok(Running {
        endpoint,
        metrics_addr,
        task,
    })
}

/// Serves `bus` in a task until `shutdown`; a unix socket is fronted by the
/// :authority relay (grpcio clients). `stop_metrics` fires when serving ends,
/// whatever ended it.
fn serve_in_task(
    bus: Bus,
    listener: Listener,
    endpoint: String,
    stop_metrics: Shutdown,
    shutdown: Shutdown,
) -> Result<JoinHandle<Result<(), FrontendError>>, FrontendError> {
    let (listener, relay) = match listener {
        Listener::Unix(public, path) => {
            let inner_err = |e: std::io::Error| {
                FrontendError::Internal(format!("inner socket for {endpoint}: {e}"))
            };
            let addr = crate::authority::inner_address(&path).map_err(inner_err)?;
            let inner = crate::authority::bind_inner(&addr).map_err(inner_err)?;
            let relay = tokio::spawn(crate::authority::relay(public, addr));
            // The bus removes `path` (the public socket file) when it stops.
            (Listener::Unix(inner, path), Some(relay))
        }
        other => (other, None),
    };
    let ep = endpoint;
    let task = tokio::spawn(async move {
        let res = bus
            .serve(listener, async move { shutdown.wait().await })
            .await
            .map_err(|e| FrontendError::Internal(format!("serving {ep}: {e}")));
        if let Some(r) = relay {
            r.abort();
        }
        stop_metrics.trigger();
        res
    });
    Ok(task)
}
