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
    /// A CSI (or bus) call failed; `call` names it.
    #[error("{call}: {code:?}: {message}")]
    Rpc {
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
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

    pub fn rpc(call: &'static str, status: &tonic::Status) -> CtlError {
        CtlError::Rpc {
            call,
            code: status.code(),
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
    /// 1 = everything else.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CtlError::Usage(_) => ExitCode::from(2),
            CtlError::Rpc { code, .. } if *code == tonic::Code::Unavailable => ExitCode::from(4),
            CtlError::Rpc { .. } => ExitCode::from(3),
            CtlError::Connect { .. } => ExitCode::from(4),
            _ => ExitCode::FAILURE,
        }
    }
}
