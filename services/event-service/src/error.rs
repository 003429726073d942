//! The one error type of event-service, mapped to gRPC status in one place
//! ([`Error::to_status`]) and classified for retries in one place
//! ([`Error::is_retryable`]).

use rds_bus::{Reason, status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- request validation (INVALID_ARGUMENT) ---
    #[error(transparent)]
    InvalidId(#[from] rds_bus::IdError),
    #[error("{0}")]
    InvalidRequest(String),

    // --- serving ---
    #[error("event-service is shutting down")]
    ShuttingDown,
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Bus(#[from] rds_bus::BusError),
    #[error("cannot start the metrics server on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },

    // --- delivery (sinks) ---
    #[error("cannot open the event sink {path}: {source}")]
    SinkOpen {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("writing the event sink failed: {0}")]
    SinkWrite(std::io::Error),
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("Kubernetes call did not finish within {0:?}")]
    AttemptTimeout(std::time::Duration),
    #[error("the PersistentVolume cache has not synced yet")]
    CacheNotReady,
}

impl Error {
    /// The gRPC status a caller sees.
    pub fn to_status(&self) -> tonic::Status {
        let reason = match self {
            Error::InvalidId(_) | Error::InvalidRequest(_) => Reason::InvalidArgument,
            Error::ShuttingDown => Reason::ServiceUnavailable,
            _ => Reason::Internal,
        };
        status(reason, self.to_string())
    }

    /// Whether delivering again may succeed: transport errors, timeouts, an
    /// unsynced cache, 429 and 5xx answers. Other API answers (403 RBAC, 422
    /// validation, 404) will not change by retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(s)) => s.code == 429 || s.code >= 500,
            Error::Kube(kube::Error::SerdeError(_) | kube::Error::BuildRequest(_)) => false,
            Error::Kube(_) => true,
            Error::AttemptTimeout(_) | Error::CacheNotReady | Error::SinkWrite(_) => true,
            _ => false,
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> tonic::Status {
        e.to_status()
    }
}
