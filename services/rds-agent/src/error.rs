//! The one error type of rds-agent and the one place it becomes a gRPC status
//! ([`AgentError::to_status`]). Every layer (config, SSH, pool, volume logic)
//! returns [`AgentError`]; only the service edge turns it into a `Status`.

use std::time::Duration;

use rds_bus::{Reason, status};
use rds_routeros::{DeviceError, RouterOsError, RouterOsErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Bad input from the caller (ids, paths, sizes, ports). Nothing was sent.
    #[error("{0}")]
    InvalidArgument(String),
    /// Bad configuration (flags, env, key files). Start-up only.
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("volume {0} not found")]
    VolumeNotFound(String),
    #[error("snapshot {0} not found")]
    SnapshotNotFound(String),
    /// The slot exists with an incompatible size or kind.
    #[error("{0}")]
    SlotExists(String),
    #[error("not enough space on the RDS: {0}")]
    CapacityExhausted(String),
    #[error("{0}")]
    OutOfRange(String),
    /// The RDS is not in a state this call needs (a non-Btrfs pool for
    /// layout subvolume, a refused file adoption): FAILED_PRECONDITION. The
    /// wire reason is RDS_PRECONDITION (the RDS, not the node, is missing it).
    #[error("{0}")]
    Precondition(String),
    /// The RDS could not be reached or the connection broke. `sent` is true
    /// when the command had already been handed to the RDS: its outcome is
    /// unknown and must be re-read before deciding anything.
    #[error("RDS unreachable: {msg}")]
    Unreachable { msg: String, sent: bool },
    /// The RDS refused to open another session on a live connection (its
    /// channel limit): nothing was sent, the box is up, so this does not feed
    /// the circuit breaker.
    #[error("the RDS refused a new SSH session: {0}")]
    SessionRefused(String),
    /// The circuit breaker is open: answered at once, nothing was sent.
    #[error("RDS unavailable (circuit open, next probe in {retry_in:?}): {last}")]
    CircuitOpen {
        last: String,
        reason: Reason,
        retry_in: Duration,
    },
    /// The RDS presented a host key other than the pinned one.
    #[error(
        "SSH host key mismatch for {host}: expected {expected}, presented {presented}; refusing to connect"
    )]
    HostKeyMismatch {
        host: String,
        expected: String,
        presented: String,
    },
    #[error("SSH authentication as {user} failed (key rejected by the RDS)")]
    AuthFailed { user: String },
    /// A command did not finish within its deadline. `sent` as for `Unreachable`.
    #[error("RouterOS command {verb:?} did not finish within {after:?}")]
    Timeout {
        verb: &'static str,
        after: Duration,
        sent: bool,
    },
    /// Waiting for a free session took longer than the queue deadline.
    #[error("no free RDS session within {0:?} (all sessions busy)")]
    QueueTimeout(Duration),
    /// RouterOS printed an error line (it has no error stream: errors come
    /// back as ordinary output, docs/routeros.md §2.4).
    #[error("RouterOS command {verb:?} failed: {error}")]
    RouterOs {
        verb: &'static str,
        error: DeviceError,
    },
    /// Output we could not parse. `sent` as for `Unreachable` (a mutating
    /// command answered with garbage has an unknown outcome).
    #[error("unexpected RouterOS output for {verb:?}: {detail}")]
    BadOutput {
        verb: &'static str,
        detail: String,
        sent: bool,
    },
    /// A file sits where a new disk's backing file would go, with no disk
    /// entry (an interrupted copy or a hand-made file). Never removed
    /// automatically: an operator decides (the message names the command).
    #[error(
        "backing file {path} already exists without a disk entry (left by an interrupted \
         create or copy?); inspect it with `{inspect}` and remove it by hand if it is not needed"
    )]
    OrphanFile { path: String, inspect: String },
    /// Another attempt on the same object is still running in this agent
    /// (a detached copy-from); the caller retries and joins it.
    #[error("{0}")]
    Pending(String),
    /// An error of a detached attempt, relayed to the call that waited for it.
    #[error("{msg}")]
    Relayed { reason: Reason, msg: String },
    #[error("internal error: {0}")]
    Internal(String),
    /// russh transport errors (the SSH handler's error type must convert from them).
    #[error("SSH error: {0}")]
    Ssh(#[from] russh::Error),
}

impl AgentError {
    /// A copy of this error that can be handed to several waiters.
    pub fn relay(&self) -> AgentError {
        AgentError::Relayed {
            reason: self.reason(),
            msg: self.to_string(),
        }
    }

    /// True when a mutating command may or may not have taken effect: the
    /// caller re-reads the state before deciding (never blindly retries).
    pub fn outcome_unknown(&self) -> bool {
        match self {
            AgentError::Unreachable { sent, .. }
            | AgentError::Timeout { sent, .. }
            | AgentError::BadOutput { sent, .. } => *sent,
            _ => false,
        }
    }

    /// Transport-level failures that say something about the RDS's health
    /// (they feed the circuit breaker). Errors RouterOS printed do not: the
    /// box answered.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            AgentError::Unreachable { .. }
                | AgentError::Timeout { .. }
                | AgentError::HostKeyMismatch { .. }
                | AgentError::AuthFailed { .. }
                | AgentError::Ssh(_)
        )
    }

    /// The bus reason of this error — the one mapping table of rds-agent.
    pub fn reason(&self) -> Reason {
        match self {
            AgentError::InvalidArgument(_) | AgentError::Config(_) => Reason::InvalidArgument,
            AgentError::VolumeNotFound(_) => Reason::VolumeNotFound,
            AgentError::SnapshotNotFound(_) => Reason::SnapshotNotFound,
            AgentError::SlotExists(_) => Reason::SlotExists,
            AgentError::CapacityExhausted(_) => Reason::CapacityExhausted,
            AgentError::OutOfRange(_) => Reason::OutOfRange,
            AgentError::Precondition(_) => Reason::RdsPrecondition,
            AgentError::Unreachable { .. } | AgentError::Ssh(_) | AgentError::SessionRefused(_) => {
                Reason::RdsUnreachable
            }
            AgentError::CircuitOpen { reason, .. } => *reason,
            AgentError::HostKeyMismatch { .. } => Reason::RdsHostKeyMismatch,
            AgentError::AuthFailed { .. } => Reason::RdsAuthFailed,
            AgentError::Timeout { .. } | AgentError::QueueTimeout(_) => Reason::RdsTimeout,
            AgentError::RouterOs { error, .. } => match error.kind {
                RouterOsErrorKind::NotEnoughSpace => Reason::CapacityExhausted,
                RouterOsErrorKind::AlreadyExists => Reason::SlotExists,
                _ => Reason::RdsCommandFailed,
            },
            AgentError::BadOutput { .. } => Reason::RdsBadOutput,
            AgentError::OrphanFile { .. } => Reason::SlotExists,
            AgentError::Pending(_) => Reason::OperationPending,
            AgentError::Relayed { reason, .. } => *reason,
            AgentError::Internal(_) => Reason::Internal,
        }
    }

    /// The gRPC status for this error (code + `ErrorInfo` reason).
    pub fn to_status(&self) -> tonic::Status {
        // The frontend posts an event naming the file and the command that
        // inspects it (docs/decisions.md §9.5): hand both over as data, not
        // only inside the message.
        if let AgentError::OrphanFile { path, inspect } = self {
            let md = [
                ("file_path".to_owned(), path.clone()),
                ("inspect_command".to_owned(), inspect.clone()),
            ];
            return rds_bus::status_with_info(self.reason(), self.to_string(), md.into());
        }
        status(self.reason(), self.to_string())
    }
}

impl From<AgentError> for tonic::Status {
    fn from(e: AgentError) -> tonic::Status {
        e.to_status()
    }
}

impl From<rds_bus::IdError> for AgentError {
    fn from(e: rds_bus::IdError) -> Self {
        AgentError::InvalidArgument(e.to_string())
    }
}

impl From<RouterOsError> for AgentError {
    /// Validation errors of the routeros newtypes are bad input; parse errors
    /// are bad output (callers that know the verb build `BadOutput` themselves).
    fn from(e: RouterOsError) -> Self {
        match e {
            RouterOsError::Invalid { .. } | RouterOsError::Unquotable { .. } => {
                AgentError::InvalidArgument(e.to_string())
            }
            other => AgentError::BadOutput {
                verb: "?",
                detail: other.to_string(),
                sent: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tonic::Code;

    #[test]
    fn each_cause_maps_to_its_code() {
        let cases: Vec<(AgentError, Code, Reason)> = vec![
            (
                AgentError::Unreachable {
                    msg: "refused".into(),
                    sent: false,
                },
                Code::Unavailable,
                Reason::RdsUnreachable,
            ),
            (
                AgentError::CircuitOpen {
                    last: "refused".into(),
                    reason: Reason::RdsUnreachable,
                    retry_in: Duration::from_secs(1),
                },
                Code::Unavailable,
                Reason::RdsUnreachable,
            ),
            (
                AgentError::Timeout {
                    verb: "disk add",
                    after: Duration::from_secs(1),
                    sent: true,
                },
                Code::DeadlineExceeded,
                Reason::RdsTimeout,
            ),
            (
                AgentError::CapacityExhausted("failure: not enough space".into()),
                Code::ResourceExhausted,
                Reason::CapacityExhausted,
            ),
            (
                AgentError::SlotExists("x".into()),
                Code::AlreadyExists,
                Reason::SlotExists,
            ),
            (
                AgentError::VolumeNotFound("x".into()),
                Code::NotFound,
                Reason::VolumeNotFound,
            ),
            (
                AgentError::SnapshotNotFound("x".into()),
                Code::NotFound,
                Reason::SnapshotNotFound,
            ),
            (
                AgentError::InvalidArgument("x".into()),
                Code::InvalidArgument,
                Reason::InvalidArgument,
            ),
            (
                AgentError::HostKeyMismatch {
                    host: "h".into(),
                    expected: "a".into(),
                    presented: "b".into(),
                },
                Code::Unavailable,
                Reason::RdsHostKeyMismatch,
            ),
            (
                AgentError::AuthFailed { user: "u".into() },
                Code::Unavailable,
                Reason::RdsAuthFailed,
            ),
        ];
        for (err, code, reason) in cases {
            let st = err.to_status();
            assert_eq!(st.code(), code, "{err}");
            assert_eq!(rds_bus::reason_of(&st), Some(reason), "{err}");
        }
    }

    #[test]
    fn printed_errors_map_by_kind() {
        let space = AgentError::RouterOs {
            verb: "disk add",
            error: rds_routeros::classify_error("failure: not enough space\r\n").unwrap(),
        };
        assert_eq!(space.reason(), Reason::CapacityExhausted);
        assert_eq!(space.to_status().code(), Code::ResourceExhausted);
        let dup = AgentError::RouterOs {
            verb: "disk add",
            error: rds_routeros::classify_error("failure: item with such name already exists")
                .unwrap(),
        };
        assert_eq!(dup.reason(), Reason::SlotExists);
        let syntax = AgentError::RouterOs {
            verb: "disk add",
            error: rds_routeros::classify_error("syntax error (line 1 column 10)").unwrap(),
        };
        assert_eq!(syntax.reason(), Reason::RdsCommandFailed);
        assert_eq!(syntax.to_status().code(), Code::Internal);
    }

    #[test]
    fn only_sent_transport_failures_are_ambiguous() {
        assert!(
            AgentError::Unreachable {
                msg: String::new(),
                sent: true
            }
            .outcome_unknown()
        );
        assert!(
            !AgentError::Unreachable {
                msg: String::new(),
                sent: false
            }
            .outcome_unknown()
        );
        assert!(
            !AgentError::RouterOs {
                verb: "disk add",
                error: rds_routeros::classify_error("failure: x").unwrap(),
            }
            .outcome_unknown()
        );
    }
}
