//! Exponential backoff with jitter for reconnecting to the RDS.
//!
//! Full jitter on the upper half (delay ∈ [d/2, d]) so several agents that
//! lost the RDS together (a reboot) do not reconnect in lock-step.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            current: initial,
        }
    }

    /// The next delay (jittered), doubling the base up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        jitter(base)
    }

    /// The base delay the next call will jitter (for "next probe in …" messages).
    pub fn peek(&self) -> Duration {
        self.current
    }

    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

/// A delay in [d/2, d], from the std random hasher (no rand dependency).
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    let span = u64::try_from((d - half).as_nanos()).unwrap_or(u64::MAX);
    if span == 0 {
        return d;
    }
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    half + Duration::from_nanos(r % span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let mut bases = Vec::new();
        for _ in 0..6 {
            let base = b.peek();
            let d = b.next_delay();
            assert!(
                d >= base / 2 && d <= base,
                "{d:?} not in [{:?}, {base:?}]",
                base / 2
            );
            bases.push(base.as_millis());
        }
        assert_eq!(bases, vec![100, 200, 400, 800, 800, 800]);
        b.reset();
        assert_eq!(b.peek(), Duration::from_millis(100));
    }
}
