//! The one error type of rdsctl. rdsctl is a client, not a server: errors end
//! as a message on stderr and an exit code ([`CtlError::exit_code`]), and a
//! failed CSI call keeps its gRPC code so scripts can tell NOT_FOUND from the rest.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Bad flags or values given on the command line.
    #[error("{0}")]
    Usage(String),
    /// A CSI (or bus) call failed; `call` names it; `reason` is the
    /// `google.rpc.ErrorInfo` reason our services attach (`VOLUME_NOT_FOUND`, ...).
    #[error("{call}: {code:?}{}: {message}", reason.as_deref().map(|r| format!(" reason={r}")).unwrap_or_default())]
    Rpc {
        call: &'static str,
        code: tonic::Code,
        reason: Option<String>,
        message: String,
    },
    /// The RDS (through rds-agent's library) refused or failed; `reason` is
    /// the agent's ErrorInfo reason.
    #[error("RDS: reason={reason}: {message}")]
    Rds { reason: String, message: String },
    /// The Kubernetes API failed.
    #[error("kubernetes: {0}")]
    Kube(String),
    /// The command ran and found something: doctor warnings, orphans,
    /// attachment mismatches (exit 5), or a failed check / an endpoint that is
    /// not ready (exit 6). The report is already printed.
    #[error("{what}")]
    Findings { what: String, unhealthy: bool },
    /// Cannot reach an endpoint at all.
    #[error("cannot connect to {endpoint}: {why}")]
    Connect { endpoint: String, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The sim control endpoint answered with an error.
    #[error("sim control: {0}")]
    SimControl(String),
    /// A supervised service could not be started or did not become ready.
    #[error("{0}")]
    Stack(String),
    /// A demo check did not hold.
    #[error("check failed: {0}")]
    Check(String),
}

pub type Result<T, E = CtlError> = std::result::Result<T, E>;

impl CtlError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> CtlError {
        CtlError::Io {
            path: path.into(),
            source,
        }
    }

    /// An rds-agent error with its ErrorInfo reason.
    pub fn rds(e: &rds_agent::AgentError) -> CtlError {
        CtlError::Rds {
            reason: e.reason().as_str().to_owned(),
            message: e.to_string(),
        }
    }

    pub fn rpc(call: &'static str, status: &tonic::Status) -> CtlError {
        CtlError::Rpc {
            call,
            code: status.code(),
            reason: rds_bus::reason_of(status).map(|r| r.as_str().to_owned()),
            message: status.message().to_owned(),
        }
    }

    /// The gRPC code of a failed call, if this is one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            CtlError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// 2 = usage, 3 = the call failed (server said no), 4 = unreachable,
    /// 5 = findings that need a look, 6 = unhealthy, 1 = everything else
    /// (table in README.md, "Exit codes").
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CtlError::Usage(_) => ExitCode::from(2),
            CtlError::Rpc { code, .. } if *code == tonic::Code::Unavailable => ExitCode::from(4),
            CtlError::Rpc { .. } => ExitCode::from(3),
            CtlError::Connect { .. } => ExitCode::from(4),
            CtlError::Rds { reason, .. }
                if matches!(
                    reason.as_str(),
                    "RDS_UNREACHABLE" | "RDS_TIMEOUT" | "CIRCUIT_OPEN"
                ) =>
            {
                ExitCode::from(4)
            }
            CtlError::Rds { .. } => ExitCode::from(3),
            CtlError::Findings {
                unhealthy: false, ..
            } => ExitCode::from(5),
            CtlError::Findings {
                unhealthy: true, ..
            } => ExitCode::from(6),
            _ => ExitCode::FAILURE,
        }
    }
}
