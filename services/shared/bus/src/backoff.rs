//! The one exponential backoff of every retry loop (docs/decisions.md §14):
//! the delay doubles from `initial` up to `max` and [`Backoff::reset`] starts
//! over after a success. [`Backoff::jittered`] spreads each delay over its
//! upper half ([d/2, d]) so several clients that lost a peer together (an RDS
//! reboot) do not come back in lock-step; loops with one client per peer
//! keep exact delays.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    jitter: bool,
}

impl Backoff {
    /// Exact delays `initial`, `2·initial`, … capped at `max` (a zero
    /// `initial` is raised to 1 ms so the loop cannot spin).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            current: initial,
            jitter: false,
        }
    }

    /// The same sequence, each delay drawn from [d/2, d].
    pub fn jittered(mut self) -> Self {
        self.jitter = true;
        self
    }

    /// The next delay, doubling the base up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        if self.jitter { jitter(base) } else { base }
    }

    /// The base delay the next call will return (or jitter), for "next
    /// probe in …" messages.
    pub fn peek(&self) -> Duration {
        self.current
    }

    /// Starts over at `initial` (after a success).
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
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800)).jittered();
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

    #[test]
    fn exact_delays_without_jitter() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(1));
        let got: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![250, 500, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(250));
        assert_eq!(
            Backoff::new(Duration::ZERO, Duration::ZERO).next_delay(),
            Duration::from_millis(1)
        );
    }
}
