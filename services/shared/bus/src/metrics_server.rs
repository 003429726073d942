//! The one metrics/health HTTP server of every service (docs/decisions.md
//! §14): `GET /metrics` answers the OpenMetrics text a service renders from
//! in-memory counters (a scrape never reaches the RDS or the API server), and
//! `GET /healthz` answers `ok` while the process serves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// The Content-Type of `/metrics`.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders the metrics text; an `Err` answers 500 with its text.
pub type Render = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Binds the listener on its own, so a caller learns the port (0 allowed)
/// before serving.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    render: Render,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let render = render.clone();
                async move {
                    match render() {
                        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, OPENMETRICS)], body)
                            .into_response(),
                        Err(e) => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("encoding metrics: {e}"),
                        )
                            .into_response(),
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `addr` and serves in a background task (a failure is logged) until
/// `shutdown`; returns the task and the bound address.
pub async fn spawn(
    addr: SocketAddr,
    render: Render,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = serve(listener, render, shutdown).await {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get_text(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_health_and_a_render_failure() {
        let stop = crate::Shutdown::new();
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = fail.clone();
        let render: Render = Arc::new(move || {
            if f.load(std::sync::atomic::Ordering::SeqCst) {
                Err("broken".into())
            } else {
                Ok("# EOF\n".into())
            }
        });
        let s = stop.clone();
        let (addr, task) = spawn("127.0.0.1:0".parse().unwrap(), render, async move {
            s.wait().await
        })
        .await
        .unwrap();
        let m = get_text(addr, "/metrics").await;
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        assert!(m.contains(OPENMETRICS) && m.ends_with("# EOF\n"), "{m}");
        let h = get_text(addr, "/healthz").await;
        assert!(h.starts_with("HTTP/1.1 200") && h.ends_with("ok"), "{h}");
        fail.store(true, std::sync::atomic::Ordering::SeqCst);
        let e = get_text(addr, "/metrics").await;
        assert!(e.starts_with("HTTP/1.1 500") && e.contains("broken"), "{e}");
        stop.trigger();
        task.await.unwrap();
    }
}
