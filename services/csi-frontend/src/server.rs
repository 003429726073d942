//! Wiring: builds the services for the configured role and serves them on
//! one listener through the bus server (health service and trace layer
//! included).

use std::future::Future;
use std::sync::Arc;

use rds_bus::{Bus, Listener, NodeId};
use rds_proto::csi::v1::controller_server::ControllerServer;
use rds_proto::csi::v1::identity_server::IdentityServer;
use rds_proto::csi::v1::node_server::NodeServer;

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

/// Serves CSI on `listener` until `shutdown` resolves, with the dependencies
/// the config names.
pub async fn serve(
    cfg: Config,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), FrontendError> {
    let deps = match cfg.node_registry {
        NodeRegistry::Local => Deps::local(&cfg)?,
        NodeRegistry::Kube => {
            let client = crate::kube_nodes::client(cfg.kubeconfig.as_deref()).await?;
            Deps {
                nodes: Arc::new(KubeNodes::new(
                    client,
                    cfg.driver_name.clone(),
                    cfg.kube_timeout,
                )),
            }
        }
    };
    serve_with(cfg, deps, listener, shutdown).await
}

/// Serves CSI with explicit dependencies.
pub async fn serve_with(
    cfg: Config,
    deps: Deps,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), FrontendError> {
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
    let stop_metrics = rds_bus::Shutdown::new();
    if let Some(addr) = cfg.metrics_address {
        let wait = stop_metrics.clone();
        let bound = crate::metrics::serve(addr, registry, async move { wait.wait().await }).await?;
        tracing::info!(%bound, "metrics served on /metrics");
    }
    tracing::info!(
        %endpoint,
        driver = %cfg.driver_name,
        role = ?cfg.role,
        known_nodes = %deps.nodes.describe(),
        "csi-frontend serving"
    );
    // A unix socket is fronted by the :authority relay (grpcio clients).
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
    let res = bus
        .serve(listener, shutdown)
        .await
        .map_err(|e| FrontendError::Internal(format!("serving {endpoint}: {e}")));
    if let Some(r) = relay {
        r.abort();
    }
    stop_metrics.trigger();
    res
}
