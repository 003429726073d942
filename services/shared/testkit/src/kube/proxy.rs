//! The pods proxy subresource (`GET /api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/<path>`),
//! which the real API server forwards to the pod. Here it answers with what the test
//! planted for that exact path ([`super::FakeApi::set_pod_proxy`]); an unplanted target
//! answers 503 like an API server that cannot reach the pod.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A canned answer of one proxied pod path.
#[derive(Clone, Debug)]
pub struct ProxyReply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    /// Never answer (a pod that hangs: the client's deadline must end it).
    pub hang: bool,
}

impl ProxyReply {
    /// 200 with a Prometheus text body.
    pub fn metrics(body: impl Into<String>) -> Self {
        ProxyReply {
            status: 200,
            content_type: "text/plain; version=0.0.4".to_owned(),
            body: body.into(),
            hang: false,
        }
    }

    /// A proxied call that never answers.
    pub fn hang() -> Self {
        ProxyReply {
            status: 200,
            content_type: "text/plain".to_owned(),
            body: String::new(),
            hang: true,
        }
    }
}

/// `(namespace, pod, port, path)` when `path` is a pod proxy URL.
pub(crate) fn parse(path: &str) -> Option<(String, String, u16, String)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (ns, rest) = rest.split_once("/pods/")?;
    let (target, sub) = rest.split_once("/proxy")?;
    let (pod, port) = target.split_once(':')?;
    let port = port.parse().ok()?;
    if ns.is_empty() || ns.contains('/') || pod.is_empty() || pod.contains('/') {
        return None;
    }
    let sub = if sub.is_empty() { "/" } else { sub };
    Some((ns.to_owned(), pod.to_owned(), port, sub.to_owned()))
}

/// The key a reply is planted under.
pub(crate) fn key(namespace: &str, pod: &str, port: u16, path: &str) -> String {
    format!("{namespace}/{pod}:{port}{path}")
}

pub(crate) async fn answer(reply: Option<ProxyReply>, pod: &str, port: u16) -> Response {
    let Some(r) = reply else {
        return super::server::status(
            503,
            "ServiceUnavailable",
            &format!(
                "error trying to reach service: dial tcp {pod}:{port}: connect: connection refused"
            ),
        );
    };
    if r.hang {
        std::future::pending::<()>().await;
    }
    (
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, r.content_type)],
        r.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_pod_proxy_urls() {
        assert_eq!(
            parse("/api/v1/namespaces/rds-csi/pods/node-a:9809/proxy/metrics"),
            Some(("rds-csi".into(), "node-a".into(), 9809, "/metrics".into()))
        );
        assert_eq!(parse("/api/v1/namespaces/rds-csi/pods/node-a"), None);
        assert_eq!(
            parse("/api/v1/namespaces/rds-csi/pods/node-a/proxy/metrics"),
            None
        );
        assert_eq!(
            parse("/api/v1/namespaces/rds-csi/pods/node-a:x/proxy/metrics"),
            None
        );
    }
}
