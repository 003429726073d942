//! Per-volume circuit breaker (docs/safety.md §3.8 and §2.4): after N
//! consecutive stage failures the volume is refused fast for a while, so a
//! corrupted filesystem does not turn into an endless mkfs/mount/fsck storm.
//! In memory; a restart resets it (as in the Go driver).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{DataPlaneError, Result};

#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before one trial call is let through.
    pub open_for: Duration,
    /// Failures older than this no longer count (closed-state reset).
    pub failure_window: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(300),
            failure_window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
        last: Instant,
    },
    Open {
        since: Instant,
        failures: u32,
    },
    /// One trial call is running.
    HalfOpen {
        failures: u32,
    },
}

/// Breakers keyed by volume id.
#[derive(Debug, Default)]
pub struct Breakers {
    cfg: BreakerConfig,
    states: Mutex<HashMap<String, State>>,
}

impl Breakers {
    pub fn new(cfg: BreakerConfig) -> Self {
        Breakers {
            cfg,
            states: Mutex::default(),
        }
    }

    /// Lets a call through or refuses it with `BreakerOpen` (UNAVAILABLE).
    pub fn check(&self, volume: &str) -> Result<()> {
        let mut map = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let open = |failures: u32, retry_in: Duration| DataPlaneError::BreakerOpen {
            volume: volume.to_owned(),
            failures,
            retry_in_secs: retry_in.as_secs().max(1),
        };
        match map.get(volume).copied() {
            None | Some(State::Closed { .. }) => Ok(()),
            Some(State::HalfOpen { failures }) => Err(open(failures, Duration::from_secs(1))),
            Some(State::Open { since, failures }) => {
                let elapsed = since.elapsed();
                if elapsed >= self.cfg.open_for {
                    map.insert(volume.to_owned(), State::HalfOpen { failures });
                    Ok(())
                } else {
                    Err(open(failures, self.cfg.open_for - elapsed))
                }
            }
        }
    }

    /// Records the outcome of a call that `check` let through.
    pub fn record(&self, volume: &str, ok: bool) {
        let mut map = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        if ok {
            map.remove(volume);
            return;
        }
        let now = Instant::now();
        let next = match map.get(volume).copied() {
            Some(State::Closed { failures, last }) if last.elapsed() < self.cfg.failure_window => {
                failures + 1
            }
            Some(State::HalfOpen { failures }) | Some(State::Open { failures, .. }) => {
                map.insert(
                    volume.to_owned(),
                    State::Open {
                        since: now,
                        failures: failures + 1,
                    },
                );
                return;
            }
            _ => 1,
        };
        let state = if next >= self.cfg.failure_threshold {
            tracing::warn!(volume, failures = next, "circuit breaker opened");
            State::Open {
                since: now,
                failures: next,
            }
        } else {
            State::Closed {
                failures: next,
                last: now,
            }
        };
        map.insert(volume.to_owned(), state);
    }

    /// Operator reset (e.g. after repairing the filesystem).
    pub fn reset(&self, volume: &str) {
        self.states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(volume);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn opens_after_threshold_then_half_opens() {
        let b = Breakers::new(BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_millis(50),
            failure_window: Duration::from_secs(60),
        });
        for _ in 0..3 {
            assert!(b.check("v").is_ok());
            b.record("v", false);
        }
        let e = b.check("v").unwrap_err();
        assert_eq!(e.reason(), rds_bus::Reason::CircuitOpen);
        assert!(b.check("other").is_ok(), "per volume");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.check("v").is_ok(), "half-open trial");
        assert!(b.check("v").is_err(), "only one trial at a time");
        b.record("v", false);
        assert!(b.check("v").is_err(), "failed trial reopens");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.check("v").is_ok());
        b.record("v", true);
        assert!(b.check("v").is_ok());
        b.record("v", false);
        assert!(b.check("v").is_ok(), "success reset the count");
    }
}
