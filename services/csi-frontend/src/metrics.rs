//! Prometheus `/metrics` (OpenMetrics text) and `/healthz`, when
//! `--metrics-address` is set. The node role registers the data plane's
//! metrics under the Go driver's names (`rds_csi_volume_operations`,
//! `rds_csi_nvme_*`, stale mounts, orphans cleaned).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::error::FrontendError;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics(registry: Arc<Registry>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        )
            .into_response(),
    }
}

/// Binds `addr` and serves in a background task until `shutdown`; returns
/// the bound address (port 0 allowed).
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr, FrontendError> {
    let registry = Arc::new(registry);
    let app = Router::new()
        .route("/metrics", get(move || metrics(registry.clone())))
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| FrontendError::Internal(format!("cannot bind metrics on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| FrontendError::Internal(format!("metrics listener: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn serves_the_node_metrics_by_their_go_names() {
        let mut registry = Registry::default();
        let m = rds_dataplane::NodeMetrics::new();
        m.register(&mut registry);
        m.orphans_cleaned.inc();
        m.volume_operations
            .get_or_create(&rds_dataplane::metrics::OpStatus {
                operation: "stage".into(),
                status: "success".into(),
            })
            .inc();
        let sd = rds_bus::Shutdown::new();
        let wait = sd.clone();
        let addr = serve("127.0.0.1:0".parse().unwrap(), registry, async move {
            wait.wait().await
        })
        .await
        .unwrap();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(
            body.contains(
                r#"rds_csi_volume_operations_total{operation="stage",status="success"} 1"#
            ),
            "{body}"
        );
        assert!(body.contains("rds_csi_orphans_cleaned_total 1"), "{body}");
        sd.trigger();
    }
}
