//! The internal gRPC bus shared by every rds-csi service.
//!
//! - [`server`]: [`Bus`] builds a tonic server with the health service and the
//!   trace-context layer, on TCP or a unix socket, with graceful shutdown.
//! - [`client`]: [`connect`] gives a lazily connected channel with deadlines
//!   and the trace-context interceptor.
//! - [`trace`]: W3C `traceparent` injection/extraction in gRPC metadata.
//! - [`telemetry`]: tracing + OpenTelemetry init (OTLP only when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
//! - [`error`]: the error vocabulary (gRPC code + `ErrorInfo` reason), one table.
//! - [`ids`]: validated id newtypes and the per-node NVMe host identity.
//! - [`volume_context`]: the typed volume_context contract (controller writes, node reads).
//! - [`config`]: the shared `--check-config` convention.
//! - [`shutdown`]: a cloneable shutdown token and the signal future.
//! - [`runner`]: the one runner of every binary (exit codes, drain on SIGTERM).
//! - [`duration`]: the one duration grammar of every flag.
//! - [`metrics_server`]: the one `/metrics` + `/healthz` HTTP server.
//! - [`kube_client`]: the one Kubernetes client builder.
//! - [`backoff`]: the one exponential backoff of every retry loop.

pub mod backoff;
pub mod client;
pub mod config;
pub mod duration;
pub mod error;
pub mod ids;
pub mod kube_client;
pub mod metrics_server;
pub mod runner;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod trace;
pub mod volume_context;

#[cfg(feature = "testing")]
pub mod testing;

pub use backoff::Backoff;
pub use client::{BusChannel, ClientOptions, connect};
pub use error::{Reason, info_of, reason_of, status, status_with_info};
pub use ids::{
    ClusterId, DEFAULT_MANAGED_NQN_PREFIX, HostIdentity, IdError, MANAGED_NQN_PREFIX, NodeId, Nqn,
    SNAPSHOT_PREFIX, Slot, SnapshotId, VolumeId,
};
pub use runner::{Service, Serving};
pub use server::{Bus, Listener};
pub use shutdown::Shutdown;
pub use volume_context::{ContentSource, PvcRef, VolumeContext};

/// Errors of the bus plumbing itself (binding, connecting, telemetry setup).
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid address {0:?}: expected host:port, tcp://host:port or unix:///path")]
    BadAddress(String),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("telemetry setup failed: {0}")]
    Telemetry(String),
}
