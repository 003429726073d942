//! The error vocabulary of the bus: every failure is a real gRPC status with
//! a `google.rpc.ErrorInfo` reason. This is the one table mapping reasons to
//! codes; services build statuses only through [`status`] and read them back
//! with [`reason_of`], so a reason means the same on every hop.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every status we produce.
pub const ERROR_DOMAIN: &str = "rds.csi.srvlab.io";

/// Why a bus call failed. `code()` is the single reason → gRPC code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    InvalidArgument,
    VolumeNotFound,
    SnapshotNotFound,
    NodeNotFound,
    AttachmentNotFound,
    /// A slot exists with an incompatible size/source.
    SlotExists,
    CapacityExhausted,
    OutOfRange,
    /// The RDS cannot be reached (connect failed, circuit open, rebooting).
    RdsUnreachable,
    /// The RDS rejected our key.
    RdsAuthFailed,
    /// The RDS presented a different host key than pinned.
    RdsHostKeyMismatch,
    /// A command did not finish within its deadline.
    RdsTimeout,
    /// RouterOS printed an error we do not classify further.
    RdsCommandFailed,
    /// RouterOS printed output we could not parse.
    RdsBadOutput,
    /// Held by another node (single-node access modes).
    AttachedElsewhere,
    /// Attached somewhere: cannot be deleted.
    VolumeInUse,
    /// RWX already has two nodes (migration source + target).
    MigrationLimit,
    /// The access mode / volume mode combination is not supported.
    AccessModeUnsupported,
    /// Another operation on the same volume or snapshot is in flight.
    OperationPending,
    /// The state store is not ready yet (e.g. rebuilding after start).
    StoreNotReady,
    /// A precondition of the node (e.g. root for loop devices) is missing.
    NodePrecondition,
    /// The RDS cannot do this as configured (e.g. the subvolume layout on a
    /// pool that is not Btrfs, a file the RDS refuses to adopt).
    RdsPrecondition,
    /// A dependency service of the bus is unavailable.
    ServiceUnavailable,
    /// A circuit breaker is open after repeated failures; retry later.
    CircuitOpen,
    /// Already staged/published at the target with an incompatible capability.
    IncompatibleCapability,
    Internal,
}

impl Reason {
    /// The one mapping table (reason → gRPC code).
    pub fn code(self) -> Code {
        use Reason::*;
        match self {
            InvalidArgument | AccessModeUnsupported => Code::InvalidArgument,
            VolumeNotFound | SnapshotNotFound | NodeNotFound | AttachmentNotFound => Code::NotFound,
            SlotExists | IncompatibleCapability => Code::AlreadyExists,
            CapacityExhausted => Code::ResourceExhausted,
            OutOfRange => Code::OutOfRange,
            RdsUnreachable | RdsAuthFailed | RdsHostKeyMismatch | StoreNotReady
            | ServiceUnavailable | CircuitOpen => Code::Unavailable,
            RdsTimeout => Code::DeadlineExceeded,
            AttachedElsewhere | VolumeInUse | MigrationLimit | NodePrecondition
            | RdsPrecondition => Code::FailedPrecondition,
            OperationPending => Code::Aborted,
            RdsCommandFailed | RdsBadOutput | Internal => Code::Internal,
        }
    }

    /// The `ErrorInfo.reason` string (UPPER_SNAKE_CASE, stable on the wire).
    pub fn as_str(self) -> &'static str {
        use Reason::*;
        match self {
            InvalidArgument => "INVALID_ARGUMENT",
            VolumeNotFound => "VOLUME_NOT_FOUND",
            SnapshotNotFound => "SNAPSHOT_NOT_FOUND",
            NodeNotFound => "NODE_NOT_FOUND",
            AttachmentNotFound => "ATTACHMENT_NOT_FOUND",
            SlotExists => "SLOT_EXISTS",
            CapacityExhausted => "CAPACITY_EXHAUSTED",
            OutOfRange => "OUT_OF_RANGE",
            RdsUnreachable => "RDS_UNREACHABLE",
            RdsAuthFailed => "RDS_AUTH_FAILED",
            RdsHostKeyMismatch => "RDS_HOST_KEY_MISMATCH",
            RdsTimeout => "RDS_TIMEOUT",
            RdsCommandFailed => "RDS_COMMAND_FAILED",
            RdsBadOutput => "RDS_BAD_OUTPUT",
            AttachedElsewhere => "ATTACHED_ELSEWHERE",
            VolumeInUse => "VOLUME_IN_USE",
            MigrationLimit => "MIGRATION_LIMIT",
            AccessModeUnsupported => "ACCESS_MODE_UNSUPPORTED",
            OperationPending => "OPERATION_PENDING",
            StoreNotReady => "STORE_NOT_READY",
            NodePrecondition => "NODE_PRECONDITION",
            RdsPrecondition => "RDS_PRECONDITION",
            ServiceUnavailable => "SERVICE_UNAVAILABLE",
            CircuitOpen => "CIRCUIT_OPEN",
            IncompatibleCapability => "INCOMPATIBLE_CAPABILITY",
            Internal => "INTERNAL",
        }
    }

    pub const ALL: [Reason; 26] = {
        use Reason::*;
        [
            InvalidArgument,
            VolumeNotFound,
            SnapshotNotFound,
            NodeNotFound,
            AttachmentNotFound,
            SlotExists,
            CapacityExhausted,
            OutOfRange,
            RdsUnreachable,
            RdsAuthFailed,
            RdsHostKeyMismatch,
            RdsTimeout,
            RdsCommandFailed,
            RdsBadOutput,
            AttachedElsewhere,
            VolumeInUse,
            MigrationLimit,
            AccessModeUnsupported,
            OperationPending,
            StoreNotReady,
            NodePrecondition,
            RdsPrecondition,
            ServiceUnavailable,
            CircuitOpen,
            IncompatibleCapability,
            Internal,
        ]
    };

    pub fn from_str_opt(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Builds the status for `reason` with a human message.
pub fn status(reason: Reason, message: impl Into<String>) -> Status {
    let details = ErrorDetails::with_error_info(
        reason.as_str(),
        ERROR_DOMAIN,
        std::collections::HashMap::<String, String>::new(),
    );
    Status::with_error_details(reason.code(), message, details)
}

/// [`status`] with key/value details in the `ErrorInfo` metadata, for a
/// caller that acts on them (e.g. the file path of an orphan-file refusal).
pub fn status_with_info(
    reason: Reason,
    message: impl Into<String>,
    metadata: std::collections::HashMap<String, String>,
) -> Status {
    let details = ErrorDetails::with_error_info(reason.as_str(), ERROR_DOMAIN, metadata);
    Status::with_error_details(reason.code(), message, details)
}

/// The `ErrorInfo` metadata value under `key`, if the status came from one
/// of our services and carries it.
pub fn info_of(status: &Status, key: &str) -> Option<String> {
    let info = status.get_details_error_info()?;
    if info.domain != ERROR_DOMAIN {
        return None;
    }
    info.metadata.get(key).cloned()
}

/// The reason a status carries, if it came from one of our services.
/// Statuses from elsewhere (transport errors, deadlines) return `None`.
pub fn reason_of(status: &Status) -> Option<Reason> {
    let info = status.get_details_error_info()?;
    if info.domain != ERROR_DOMAIN {
        return None;
    }
    Reason::from_str_opt(&info.reason)
}

/// A malformed id → INVALID_ARGUMENT (the id types live in `rds-ids`, which
/// knows nothing of gRPC, so this is a function rather than a `From`).
pub fn invalid_id(e: crate::ids::IdError) -> Status {
    status(Reason::InvalidArgument, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_through_a_status() {
        for r in Reason::ALL {
            let s = status(r, format!("because {r}"));
            assert_eq!(s.code(), r.code());
            assert_eq!(reason_of(&s), Some(r));
            assert_eq!(s.message(), format!("because {r}"));
        }
    }

    #[test]
    fn info_metadata_round_trips() {
        let md = [("file_path".to_owned(), "/p/x.img".to_owned())].into();
        let s = status_with_info(Reason::SlotExists, "m", md);
        assert_eq!(reason_of(&s), Some(Reason::SlotExists));
        assert_eq!(info_of(&s, "file_path").as_deref(), Some("/p/x.img"));
        assert_eq!(info_of(&s, "other"), None);
        assert_eq!(info_of(&status(Reason::SlotExists, "m"), "file_path"), None);
    }

    #[test]
    fn foreign_statuses_have_no_reason() {
        assert_eq!(reason_of(&Status::unavailable("conn refused")), None);
    }

    #[test]
    fn known_causes_never_map_to_internal() {
        for r in [
            Reason::RdsUnreachable,
            Reason::CapacityExhausted,
            Reason::VolumeNotFound,
            Reason::AttachedElsewhere,
            Reason::OperationPending,
        ] {
            assert_ne!(r.code(), Code::Internal, "{r}");
        }
    }
}
