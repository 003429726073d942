//! Circuit breaker in front of the RDS.
//!
//! Closed: commands go through; consecutive transport failures are counted.
//! Open: every command is answered at once with UNAVAILABLE (no socket, no
//! queueing behind a dead box). The pool's recovery task is the half-open
//! probe: it reconnects with exponential backoff and runs one cheap command;
//! its success closes the breaker by itself. A host-key mismatch or rejected
//! key opens it at once (retrying the same key cannot help, and a MITM must
//! not get a second look at our signature for free).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rds_bus::Reason;

use crate::error::AgentError;

#[derive(Debug)]
enum Phase {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        last_error: String,
        reason: Reason,
        next_probe: Instant,
    },
}

#[derive(Debug)]
pub struct Breaker {
    phase: Mutex<Phase>,
    threshold: u32,
}

/// What a recorded failure did to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Opened,
    Closed,
}

impl Breaker {
    /// `threshold` consecutive transport failures open the breaker (min 1).
    pub fn new(threshold: u32) -> Self {
        Breaker {
            phase: Mutex::new(Phase::Closed {
                consecutive_failures: 0,
            }),
            threshold: threshold.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // phase itself is always valid.
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ok when commands may go to the RDS; the fast UNAVAILABLE otherwise.
    pub fn check(&self) -> Result<(), AgentError> {
        match &*self.lock() {
            Phase::Closed { .. } => Ok(()),
            Phase::Open {
                last_error,
                reason,
                next_probe,
            } => Err(AgentError::CircuitOpen {
                last: last_error.clone(),
                reason: *reason,
                retry_in: next_probe.saturating_duration_since(Instant::now()),
            }),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), Phase::Open { .. })
    }

    /// A description for Probe (`connected`, `circuit open: …`).
    pub fn describe(&self) -> String {
        match &*self.lock() {
            Phase::Closed {
                consecutive_failures: 0,
            } => "closed".to_owned(),
            Phase::Closed {
                consecutive_failures,
            } => format!("closed ({consecutive_failures} recent failures)"),
            Phase::Open {
                last_error,
                next_probe,
                ..
            } => format!(
                "circuit open: {last_error} (next probe in {:?})",
                next_probe.saturating_duration_since(Instant::now())
            ),
        }
    }

    pub fn record_success(&self) -> Transition {
        let mut p = self.lock();
        let was_open = matches!(*p, Phase::Open { .. });
        *p = Phase::Closed {
            consecutive_failures: 0,
        };
        if was_open {
            Transition::Closed
        } else {
            Transition::None
        }
    }

    /// Counts a failure; only transport failures (see
    /// [`AgentError::is_transport`]) count. `next_probe` is when the recovery
    /// task will try next (for the fast-fail message).
    pub fn record_failure(&self, err: &AgentError, next_probe: Duration) -> Transition {
        if !err.is_transport() {
            return Transition::None;
        }
        let mut p = self.lock();
        let open_now = matches!(
            err,
            AgentError::HostKeyMismatch { .. } | AgentError::AuthFailed { .. }
        );
        match &mut *p {
            Phase::Closed {
                consecutive_failures,
            } => {
                *consecutive_failures += 1;
                if open_now || *consecutive_failures >= self.threshold {
                    *p = Phase::Open {
                        last_error: err.to_string(),
                        reason: err.reason(),
                        next_probe: Instant::now() + next_probe,
                    };
                    Transition::Opened
                } else {
                    Transition::None
                }
            }
            Phase::Open {
                last_error,
                reason,
                next_probe: np,
            } => {
                *last_error = err.to_string();
                *reason = err.reason();
                *np = Instant::now() + next_probe;
                Transition::None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn refused() -> AgentError {
        AgentError::Unreachable {
            msg: "connection refused".into(),
            sent: false,
        }
    }

    #[test]
    fn opens_after_threshold_and_fails_fast_until_success() {
        let b = Breaker::new(3);
        assert!(b.check().is_ok());
        assert_eq!(
            b.record_failure(&refused(), Duration::from_secs(1)),
            Transition::None
        );
        assert_eq!(
            b.record_failure(&refused(), Duration::from_secs(1)),
            Transition::None
        );
        assert!(b.check().is_ok());
        assert_eq!(
            b.record_failure(&refused(), Duration::from_secs(1)),
            Transition::Opened
        );
        let err = b.check().unwrap_err();
        assert_eq!(err.reason(), Reason::RdsUnreachable);
        assert_eq!(err.to_status().code(), tonic::Code::Unavailable);
        assert!(b.describe().starts_with("circuit open"));
        assert_eq!(b.record_success(), Transition::Closed);
        assert!(b.check().is_ok());
    }

    #[test]
    fn routeros_errors_do_not_count_and_success_resets() {
        let b = Breaker::new(2);
        let printed = AgentError::RouterOs {
            verb: "disk add",
            error: rds_routeros::classify_error("failure: x").unwrap(),
        };
        for _ in 0..5 {
            assert_eq!(b.record_failure(&printed, Duration::ZERO), Transition::None);
        }
        b.record_failure(&refused(), Duration::ZERO);
        b.record_success();
        assert_eq!(
            b.record_failure(&refused(), Duration::ZERO),
            Transition::None
        );
        assert!(b.check().is_ok());
    }

    #[test]
    fn host_key_mismatch_opens_at_once_and_keeps_its_reason() {
        let b = Breaker::new(5);
        let e = AgentError::HostKeyMismatch {
            host: "rds".into(),
            expected: "SHA256:a".into(),
            presented: "SHA256:b".into(),
        };
        assert_eq!(
            b.record_failure(&e, Duration::from_secs(1)),
            Transition::Opened
        );
        assert_eq!(b.check().unwrap_err().reason(), Reason::RdsHostKeyMismatch);
    }
}
