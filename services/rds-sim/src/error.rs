//! The one error type of the crate (start-up and control-plane failures; console errors are
//! RouterOS text, see `console::ConsoleError`).

use std::path::PathBuf;

/// Why the simulator could not start or a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// File-system problem in the state directory.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Could not bind a listener.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Host key unreadable or not generatable.
    #[error("host key: {0}")]
    HostKey(String),
    /// `state.json` unreadable.
    #[error("state: {0}")]
    State(String),
    /// Invalid configuration or control request (e.g. a bad fault regex).
    #[error("invalid: {0}")]
    Invalid(String),
}

impl SimError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
