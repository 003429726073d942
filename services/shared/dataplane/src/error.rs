//! The crate's one error enum and its one mapping to gRPC status
//! ([`DataPlaneError::reason`] → `rds_bus::status`). The node role returns
//! `err.into()` and never picks a code itself.

use rds_bus::Reason;

/// Everything the data plane can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    /// A request or volume_context value failed validation.
    #[error("{0}")]
    InvalidArgument(String),
    /// The volume (backing file, device, mount) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The node is not in a state where the call can proceed (not staged,
    /// unknown content on the device, ...). Retrying later may succeed.
    #[error("{0}")]
    Precondition(String),
    /// Loop devices need CAP_SYS_ADMIN; docs/local-mode.md §8 wants this exact cause.
    #[error("root is needed for loop devices (running as uid {uid}); run the node role as root")]
    NeedsRoot { uid: u32 },
    /// Another call for the same volume is running (CSI: ABORTED).
    #[error("an operation on volume {0} is already in progress")]
    Busy(String),
    /// The per-volume breaker stopped a retry storm (docs/safety.md §3.8).
    #[error(
        "volume {volume} circuit breaker is OPEN after {failures} consecutive stage failures \
         (filesystem may be corrupted); next attempt allowed in {retry_in_secs} s"
    )]
    BreakerOpen {
        volume: String,
        failures: u32,
        retry_in_secs: u64,
    },
    /// Published at the target with an incompatible capability.
    #[error("{0}")]
    AlreadyExists(String),
    /// docs/safety.md §3.4: refuse to add mounts to a source that has too many.
    #[error(
        "mount storm detected: {device} already has {count} mounts (limit {limit}); refusing to mount it again"
    )]
    MountStorm {
        device: String,
        count: usize,
        limit: usize,
    },
    /// docs/safety.md §3.1: blkid never answered definitively. We do not format.
    #[error(
        "cannot determine whether {device} holds a filesystem after {attempts} attempts ({last}); \
         refusing to format to prevent data loss"
    )]
    FsUndetermined {
        device: String,
        attempts: u32,
        last: String,
    },
    /// The device or its filesystem is in use (a mount anywhere, an open
    /// file, a process holding the device): nothing was detached and the
    /// staged record is kept; the CO retries (docs/safety.md).
    #[error(
        "volume {volume} is still in use: {holders}; {action} refused, the device stays \
         connected (release the holder; see docs/safety.md)"
    )]
    InUse {
        volume: String,
        action: &'static str,
        holders: String,
    },
    /// The device does not read as provably blank (or it is a restore that
    /// reads blank): never formatted.
    #[error("{0}")]
    FormatRefused(String),
    /// The NVMe/TCP target could not be reached.
    #[error("failed to connect to NVMe target {address}: {detail}")]
    Connect { address: String, detail: String },
    #[error("{what} timed out after {secs:.1} s")]
    Timeout { what: String, secs: f64 },
    /// A helper program failed (its stderr is in `detail`).
    #[error("{program} failed: {detail}")]
    Command { program: String, detail: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = DataPlaneError> = std::result::Result<T, E>;

impl DataPlaneError {
    /// The one table: error kind → bus reason (→ gRPC code via `Reason::code`).
    pub fn reason(&self) -> Reason {
        use DataPlaneError::*;
        match self {
            InvalidArgument(_) => Reason::InvalidArgument,
            NotFound(_) => Reason::VolumeNotFound,
            Precondition(_)
            | NeedsRoot { .. }
            | MountStorm { .. }
            | InUse { .. }
            | FormatRefused(_) => Reason::NodePrecondition,
            Busy(_) => Reason::OperationPending,
            BreakerOpen { .. } => Reason::CircuitOpen,
            // No better reason exists in the bus table yet (reported to the lead).
            AlreadyExists(_) => Reason::IncompatibleCapability,
            Connect { .. } => Reason::RdsUnreachable,
            FsUndetermined { .. } | Timeout { .. } | Command { .. } | Io { .. } | Internal(_) => {
                Reason::Internal
            }
        }
    }

    /// The gRPC status the node role returns for this error.
    pub fn to_status(&self) -> tonic::Status {
        rds_bus::status(self.reason(), self.to_string())
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DataPlaneError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn errno(context: impl Into<String>, e: nix::errno::Errno) -> Self {
        DataPlaneError::io(context, std::io::Error::from(e))
    }
}

impl From<rds_bus::IdError> for DataPlaneError {
    fn from(e: rds_bus::IdError) -> Self {
        DataPlaneError::InvalidArgument(e.to_string())
    }
}

impl From<DataPlaneError> for tonic::Status {
    fn from(e: DataPlaneError) -> tonic::Status {
        e.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn codes_follow_the_one_table() {
        let cases = [
            (
                DataPlaneError::InvalidArgument("x".into()),
                Code::InvalidArgument,
            ),
            (DataPlaneError::NotFound("x".into()), Code::NotFound),
            (
                DataPlaneError::NeedsRoot { uid: 1000 },
                Code::FailedPrecondition,
            ),
            (DataPlaneError::Busy("v".into()), Code::Aborted),
            (
                DataPlaneError::BreakerOpen {
                    volume: "v".into(),
                    failures: 3,
                    retry_in_secs: 10,
                },
                Code::Unavailable,
            ),
            (
                DataPlaneError::FsUndetermined {
                    device: "/dev/x".into(),
                    attempts: 5,
                    last: "exit 1".into(),
                },
                Code::Internal,
            ),
            (
                DataPlaneError::Connect {
                    address: "10.0.0.1:4420".into(),
                    detail: "refused".into(),
                },
                Code::Unavailable,
            ),
        ];
        for (e, code) in cases {
            let s = e.to_status();
            assert_eq!(s.code(), code, "{e}");
            assert_eq!(rds_bus::reason_of(&s), Some(e.reason()));
        }
    }

    #[test]
    fn needs_root_says_why() {
        let s = DataPlaneError::NeedsRoot { uid: 1000 }.to_status();
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(
            s.message().contains("root is needed for loop devices"),
            "{}",
            s.message()
        );
        assert_eq!(rds_bus::reason_of(&s), Some(Reason::NodePrecondition));
    }
}
