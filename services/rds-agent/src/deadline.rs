//! Deadlines shrink inward: the caller's `grpc-timeout`, minus a margin for
//! the answer to travel back, bounds every RouterOS command run for that call
//! (`min(command timeout, time left)`), down to the SSH exec.
//!
//! The deadline travels as a task-local set by the gRPC handler, so the
//! volume logic does not thread it through every function. Detached work (a
//! long copy-from) runs in its own task, outside any call, under its own
//! deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::MetadataMap;

use crate::error::AgentError;

tokio::task_local! {
    static CALL_DEADLINE: Instant;
}

/// Below this much time left no command is started (it could not finish).
const MIN_BUDGET: Duration = Duration::from_millis(5);

/// Time kept back from the caller's timeout for the reply: a tenth, at least
/// 20 ms, at most 1 s.
pub fn margin(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(20), Duration::from_secs(1))
}

/// The call's deadline from `grpc-timeout`, margin already taken off.
pub fn from_metadata(md: &MetadataMap) -> Option<Instant> {
    let t = md
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)?;
    Instant::now().checked_add(t.saturating_sub(margin(t)))
}

/// Runs `f` under `deadline` (none = only the per-command timeouts apply).
pub async fn scoped<F: Future>(deadline: Option<Instant>, f: F) -> F::Output {
    match deadline {
        Some(d) => CALL_DEADLINE.scope(d, f).await,
        None => f.await,
    }
}

/// Time left of the current call, `None` outside a call or without a deadline.
pub fn remaining() -> Option<Duration> {
    CALL_DEADLINE
        .try_with(|d| d.saturating_duration_since(Instant::now()))
        .ok()
}

/// The budget of the next command: `min(configured, time left)`; an error
/// (nothing sent) when the call has no time left for it.
pub fn budget(verb: &'static str, configured: Duration) -> Result<Duration, AgentError> {
    match remaining() {
        None => Ok(configured),
        Some(r) if r < MIN_BUDGET => Err(AgentError::Timeout {
            verb,
            after: Duration::ZERO,
            sent: false,
        }),
        Some(r) => Ok(r.min(configured)),
    }
}

/// `grpc-timeout` per the gRPC HTTP/2 spec: at most 8 digits and a unit.
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || !v.is_ascii() {
        return None;
    }
    let (num, unit) = v.split_at(v.len() - 1);
    if num.len() > 8 {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn budgets_shrink_to_the_callers_deadline() {
        assert_eq!(
            budget("x", Duration::from_secs(10)).ok(),
            Some(Duration::from_secs(10)),
            "no call deadline: the configured timeout"
        );
        let d = Instant::now() + Duration::from_secs(2);
        scoped(Some(d), async {
            let b = budget("x", Duration::from_secs(10)).unwrap_or_default();
            assert!(
                b <= Duration::from_secs(2) && b > Duration::from_secs(1),
                "{b:?}"
            );
            assert_eq!(
                budget("x", Duration::from_millis(100)).ok(),
                Some(Duration::from_millis(100))
            );
        })
        .await;
        scoped(Some(Instant::now()), async {
            assert!(matches!(
                budget("x", Duration::from_secs(1)),
                Err(AgentError::Timeout { sent: false, .. })
            ));
        })
        .await;
    }

    #[test]
    fn grpc_timeout_minus_margin() {
        let mut md = MetadataMap::new();
        md.insert(
            "grpc-timeout",
            "10S".parse().unwrap_or_else(|_| unreachable!()),
        );
        let d = from_metadata(&md).unwrap_or_else(Instant::now);
        let left = d.saturating_duration_since(Instant::now());
        assert!(
            left <= Duration::from_secs(9) && left > Duration::from_millis(8900),
            "{left:?}"
        );
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(
            margin(Duration::from_millis(100)),
            Duration::from_millis(20)
        );
    }
}
