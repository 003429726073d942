//! The one error type of csi-frontend and THE table that maps it to the CSI
//! status the sidecars see. Bus failures keep their `ErrorInfo` reason (the
//! bus's own reason → code table decides the code), so "RDS unreachable" is
//! UNAVAILABLE and "no space" RESOURCE_EXHAUSTED end to end; transport
//! failures without a reason become UNAVAILABLE or DEADLINE_EXCEEDED, never a
//! bare INTERNAL.

use rds_bus::{Reason, reason_of, status};
use tonic::{Code, Status};

/// Which bus service a failed call went to (named in the CSI message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Agent,
    Attachments,
    Events,
    Kubernetes,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Agent => "rds-agent",
            Backend::Attachments => "attachment-service",
            Backend::Events => "event-service",
            Backend::Kubernetes => "kubernetes",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    VolumeNotFound(String),
    #[error("{0}")]
    SnapshotNotFound(String),
    #[error("{0}")]
    NodeNotFound(String),
    /// Same name, incompatible size/source/capability.
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    OutOfRange(String),
    /// DeleteVolume of a volume that is still published.
    #[error("{0}")]
    VolumeInUse(String),
    /// Another operation on the same volume / snapshot name is running.
    #[error("{0}")]
    OperationPending(String),
    /// A list `starting_token` we did not issue.
    #[error("invalid starting_token {0:?}")]
    BadToken(String),
    /// The CSI call's deadline ran out before the next bus call.
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("{0}")]
    Unimplemented(String),
    /// The node is not in a state for the call (e.g. publish before stage).
    #[error("{0}")]
    NodePrecondition(String),
    /// ControllerPublish to a node that holds max_volumes_per_node volumes.
    #[error("{0}")]
    NodeAttachLimit(String),
    /// The node data plane failed; its own table (`DataPlaneError::to_status`)
    /// picks the reason, so node and controller speak the same vocabulary.
    #[error(transparent)]
    DataPlane(#[from] rds_dataplane::DataPlaneError),
    /// A bus (or Kubernetes) call failed.
    #[error("{backend} {method}: {}", .status.message())]
    Bus {
        backend: Backend,
        method: &'static str,
        status: Status,
    },
    #[error("{0}")]
    Internal(String),
}

impl FrontendError {
    pub fn bus(backend: Backend, method: &'static str, status: Status) -> Self {
        FrontendError::Bus {
            backend,
            method,
            status,
        }
    }

    /// The reason a failed bus call carried, if any.
    pub fn bus_reason(&self) -> Option<Reason> {
        match self {
            FrontendError::Bus { status, .. } => reason_of(status),
            _ => None,
        }
    }

    /// The CSI status for this error (THE mapping table).
    pub fn to_status(&self) -> Status {
        let msg = self.to_string();
        match self {
            FrontendError::InvalidArgument(_) => status(Reason::InvalidArgument, msg),
            FrontendError::VolumeNotFound(_) => status(Reason::VolumeNotFound, msg),
            FrontendError::SnapshotNotFound(_) => status(Reason::SnapshotNotFound, msg),
            FrontendError::NodeNotFound(_) => status(Reason::NodeNotFound, msg),
            FrontendError::AlreadyExists(_) => status(Reason::SlotExists, msg),
            FrontendError::OutOfRange(_) => status(Reason::OutOfRange, msg),
            FrontendError::VolumeInUse(_) => status(Reason::VolumeInUse, msg),
            FrontendError::OperationPending(_) => status(Reason::OperationPending, msg),
            FrontendError::BadToken(_) => Status::aborted(msg),
            FrontendError::DeadlineExceeded(_) => Status::deadline_exceeded(msg),
            FrontendError::Unimplemented(_) => Status::unimplemented(msg),
            FrontendError::Internal(_) => status(Reason::Internal, msg),
            FrontendError::NodePrecondition(_) => status(Reason::NodePrecondition, msg),
            // CSI: RESOURCE_EXHAUSTED; the bus has no per-node reason, and the
            // nearest one (capacity) keeps the code (docs/decisions.md).
            FrontendError::NodeAttachLimit(_) => status(Reason::CapacityExhausted, msg),
            FrontendError::DataPlane(e) => e.to_status(),
            FrontendError::Bus { status: s, .. } => match reason_of(s) {
                // The bus's reason → code table already says what it means.
                Some(reason) => status(reason, msg),
                None => transport_status(s, msg),
            },
        }
    }
}

/// Statuses that carry no reason come from the transport (connection refused,
/// reset, deadline) or a foreign server.
fn transport_status(s: &Status, msg: String) -> Status {
    match s.code() {
        Code::Unavailable | Code::Unknown => status(Reason::ServiceUnavailable, msg),
        // tonic reports its own client-side deadline as CANCELLED "Timeout expired".
        Code::Cancelled if s.message().contains("Timeout expired") => {
            Status::deadline_exceeded(msg)
        }
        Code::DeadlineExceeded => Status::deadline_exceeded(msg),
        Code::Cancelled => Status::cancelled(msg),
        Code::Ok | Code::Internal | Code::DataLoss => status(Reason::Internal, msg),
        other => Status::new(other, msg),
    }
}

impl From<FrontendError> for Status {
    fn from(e: FrontendError) -> Status {
        e.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_reasons_keep_their_meaning() {
        let cases = [
            (Reason::RdsUnreachable, Code::Unavailable),
            (Reason::CapacityExhausted, Code::ResourceExhausted),
            (Reason::VolumeNotFound, Code::NotFound),
            (Reason::SlotExists, Code::AlreadyExists),
            (Reason::AttachedElsewhere, Code::FailedPrecondition),
            (Reason::MigrationLimit, Code::FailedPrecondition),
            (Reason::StoreNotReady, Code::Unavailable),
            (Reason::RdsTimeout, Code::DeadlineExceeded),
            (Reason::AccessModeUnsupported, Code::InvalidArgument),
        ];
        for (reason, code) in cases {
            let e = FrontendError::bus(Backend::Agent, "CreateVolume", status(reason, "x"));
            let s = e.to_status();
            assert_eq!(s.code(), code, "{reason}");
            assert_eq!(reason_of(&s), Some(reason));
            assert!(
                s.message().starts_with("rds-agent CreateVolume: "),
                "{}",
                s.message()
            );
        }
    }

    #[test]
    fn transport_failures_are_never_bare_internal() {
        for (s, code) in [
            (Status::unavailable("connection refused"), Code::Unavailable),
            (Status::unknown("h2 protocol error"), Code::Unavailable),
            (Status::cancelled("Timeout expired"), Code::DeadlineExceeded),
            (Status::deadline_exceeded("late"), Code::DeadlineExceeded),
        ] {
            let e = FrontendError::bus(Backend::Attachments, "Attach", s);
            assert_eq!(e.to_status().code(), code);
        }
    }

    #[test]
    fn local_errors_map_to_csi_codes() {
        for (e, code) in [
            (
                FrontendError::InvalidArgument("x".into()),
                Code::InvalidArgument,
            ),
            (FrontendError::VolumeNotFound("x".into()), Code::NotFound),
            (FrontendError::NodeNotFound("x".into()), Code::NotFound),
            (
                FrontendError::AlreadyExists("x".into()),
                Code::AlreadyExists,
            ),
            (FrontendError::OutOfRange("x".into()), Code::OutOfRange),
            (
                FrontendError::VolumeInUse("x".into()),
                Code::FailedPrecondition,
            ),
            (FrontendError::OperationPending("x".into()), Code::Aborted),
            (FrontendError::BadToken("x".into()), Code::Aborted),
            (
                FrontendError::DeadlineExceeded("x".into()),
                Code::DeadlineExceeded,
            ),
        ] {
            assert_eq!(e.to_status().code(), code, "{e:?}");
        }
    }
}
