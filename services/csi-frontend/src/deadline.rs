//! The CSI call's deadline, carried to every bus call made under it.
//!
//! Sidecars send `grpc-timeout`; tonic drops the handler future when it
//! elapses (which cancels the in-flight bus calls: their futures are dropped
//! with it). Before that, each bus call gets `min(remaining, configured)` as
//! its own deadline, so an agent call never outlives the CSI call that wanted
//! it and the agent can shrink its SSH deadline inside that.

use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;

use crate::error::FrontendError;

/// Per-call context: when the CSI caller stops waiting.
#[derive(Debug, Clone, Copy)]
pub struct CallCtx {
    deadline: Option<Instant>,
}

impl CallCtx {
    /// No deadline (tests, background work).
    pub fn unbounded() -> Self {
        CallCtx { deadline: None }
    }

    pub fn with_timeout(t: Duration) -> Self {
        CallCtx {
            deadline: Instant::now().checked_add(t),
        }
    }

    /// Reads `grpc-timeout` from the incoming metadata.
    pub fn from_metadata(md: &MetadataMap) -> Self {
        match md
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
        {
            Some(t) => CallCtx::with_timeout(t),
            None => CallCtx::unbounded(),
        }
    }

    /// Time left, `None` when unbounded.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The deadline of the next bus call: `min(remaining, configured)`.
    pub fn bus_timeout(&self, configured: Duration) -> Result<Duration, FrontendError> {
        match self.remaining() {
            None => Ok(configured),
            Some(r) if r < Duration::from_millis(1) => Err(FrontendError::DeadlineExceeded(
                "the CSI call's deadline passed before the next bus call".into(),
            )),
            Some(r) => Ok(r.min(configured)),
        }
    }

    /// A bus request carrying the shrunk deadline (`grpc-timeout`), which the
    /// client enforces and the server sees.
    pub fn request<T>(
        &self,
        msg: T,
        configured: Duration,
    ) -> Result<tonic::Request<T>, FrontendError> {
        let timeout = self.bus_timeout(configured)?;
        let mut req = tonic::Request::new(msg);
        req.set_timeout(timeout);
        Ok(req)
    }
}

/// `grpc-timeout` per the gRPC HTTP/2 spec: ≤ 8 digits and a unit.
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 {
        return None;
    }
    let (num, unit) = v.split_at(v.len() - 1);
    if num.len() > 8 {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
    }

    #[test]
    fn bus_deadline_shrinks_to_the_callers() {
        let mut md = MetadataMap::new();
        md.insert("grpc-timeout", "2S".parse().unwrap());
        let ctx = CallCtx::from_metadata(&md);
        let t = ctx.bus_timeout(Duration::from_secs(60)).unwrap();
        assert!(
            t <= Duration::from_secs(2) && t > Duration::from_millis(1500),
            "{t:?}"
        );
        let t = ctx.bus_timeout(Duration::from_millis(100)).unwrap();
        assert_eq!(
            t,
            Duration::from_millis(100),
            "configured bound wins when shorter"
        );
        let req = ctx.request((), Duration::from_secs(60)).unwrap();
        let sent = req
            .metadata()
            .get("grpc-timeout")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            parse_grpc_timeout(sent).unwrap() <= Duration::from_secs(2),
            "{sent}"
        );
    }

    #[test]
    fn an_expired_call_makes_no_bus_call() {
        let ctx = CallCtx::with_timeout(Duration::ZERO);
        assert!(matches!(
            ctx.bus_timeout(Duration::from_secs(1)),
            Err(FrontendError::DeadlineExceeded(_))
        ));
        assert_eq!(
            CallCtx::unbounded()
                .bus_timeout(Duration::from_secs(9))
                .unwrap(),
            Duration::from_secs(9)
        );
    }
}
