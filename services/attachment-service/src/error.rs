//! The one error enum of attachment-service and its one mapping to a gRPC
//! status (through `rds_bus::status`, so the `ErrorInfo` reason travels).

use std::path::PathBuf;

use rds_bus::{NodeId, Reason, VolumeId};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),

    #[error("{0}")]
    AccessModeUnsupported(String),

    #[error(
        "volume {volume} is already attached to node {holder} ({mode}); \
         detach it from {holder} first. For multi-node access use a block volume \
         with MULTI_NODE_MULTI_WRITER"
    )]
    AttachedElsewhere {
        volume: VolumeId,
        holder: NodeId,
        mode: &'static str,
    },

    #[error("volume {volume} is already attached to 2 nodes (migration limit): [{}]. {hint}", join(.nodes))]
    MigrationLimit {
        volume: VolumeId,
        nodes: Vec<NodeId>,
        hint: String,
    },

    /// The same node asks again with a different access mode, readonly flag or
    /// volume mode (CSI: ALREADY_EXISTS).
    #[error(
        "volume {volume} is already attached to node {node} with {existing}; requested {requested}"
    )]
    Incompatible {
        volume: VolumeId,
        node: NodeId,
        existing: String,
        requested: String,
    },

    #[error("volume {0} is not attached anywhere")]
    NotAttached(VolumeId),

    #[error("node {0} does not exist")]
    NodeNotFound(NodeId),

    #[error("attachment store not ready: {0}")]
    StoreNotReady(String),

    #[error("attachment store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("attachment store file {path} is unreadable: {why}")]
    Corrupt { path: PathBuf, why: String },

    #[error("kubernetes API: {0}")]
    Kube(String),

    /// Bad flags or environment (the text names the flag).
    #[error("{0}")]
    Config(String),

    #[error("{0}")]
    Internal(String),

    /// Storage fencing could not set or verify an export's allow list on
    /// the RDS; `reason` is rds-agent's (RDS_UNREACHABLE → UNAVAILABLE, ...).
    #[error("{message}")]
    StorageFence { reason: Reason, message: String },
}

fn join(nodes: &[NodeId]) -> String {
    nodes
        .iter()
        .map(NodeId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The bus reason of this error (the one mapping table).
    pub fn reason(&self) -> Reason {
        match self {
            Error::InvalidArgument(_) | Error::Config(_) => Reason::InvalidArgument,
            Error::AccessModeUnsupported(_) => Reason::AccessModeUnsupported,
            Error::AttachedElsewhere { .. } => Reason::AttachedElsewhere,
            Error::MigrationLimit { .. } => Reason::MigrationLimit,
            // Same node, different readonly/access/volume mode: CSI wants
            // ALREADY_EXISTS (csi-sanity "incompatible publish").
            Error::Incompatible { .. } => Reason::IncompatibleCapability,
            Error::NotAttached(_) => Reason::AttachmentNotFound,
            Error::NodeNotFound(_) => Reason::NodeNotFound,
            Error::StoreNotReady(_) => Reason::StoreNotReady,
            Error::Io { .. } | Error::Corrupt { .. } | Error::Kube(_) | Error::Internal(_) => {
                Reason::Internal
            }
            Error::StorageFence { reason, .. } => *reason,
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        rds_bus::status(e.reason(), e.to_string())
    }
}

impl From<rds_bus::IdError> for Error {
    fn from(e: rds_bus::IdError) -> Self {
        Error::InvalidArgument(e.to_string())
    }
}
