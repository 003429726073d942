//! The one error type of this crate.

use crate::classify::DeviceError;

/// Everything that can go wrong in this crate.
///
/// Validation errors (`Invalid*`, `Unquotable`) come from the newtype constructors and the
/// quoting functions: they are how injection is made impossible by construction. `Parse` and
/// `Device` come from the output parsers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterOsError {
    /// A value given to a newtype constructor (`Slot`, `DiskPath`, `Nqn`, `Port`, ...) breaks
    /// its rule. `what` names the type, `reason` says which rule (the value is shortened).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which kind of value (e.g. "slot", "disk path").
        what: &'static str,
        /// Which rule was broken, with a shortened copy of the value.
        reason: String,
    },
    /// A string that cannot be written as a RouterOS value without changing its meaning
    /// (NUL, control characters other than TAB/LF/CR, non-ASCII).
    #[error("value cannot be expressed safely in RouterOS syntax: {reason}")]
    Unquotable {
        /// Why.
        reason: String,
    },
    /// A quoted RouterOS string that is not well formed (strict [`crate::unquote`]).
    #[error("malformed RouterOS quoted string: {reason}")]
    BadQuoted {
        /// Why.
        reason: String,
    },
    /// Output text that the parser cannot attribute to any record (1-based line number).
    #[error("cannot parse RouterOS output at line {line}: {reason}")]
    Parse {
        /// 1-based line number in the output.
        line: usize,
        /// What was unexpected (shortened).
        reason: String,
    },
    /// The output is a RouterOS error message (see [`crate::classify_error`]).
    #[error("RouterOS error: {0}")]
    Device(DeviceError),
}

/// Shorten a user-supplied value for an error message (never dump 10 kB into a log line).
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}... ({} bytes)", s.len())
    }
}

pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> RouterOsError {
    RouterOsError::Invalid {
        what,
        reason: reason.into(),
    }
}

/// An id of the shared vocabulary (`rds-ids`) that breaks its grammar.
impl From<rds_ids::IdError> for RouterOsError {
    fn from(e: rds_ids::IdError) -> Self {
        RouterOsError::Invalid {
            what: e.kind,
            reason: format!("{}: {:?}", e.why, e.value),
        }
    }
}
