//! Prometheus `/metrics` (OpenMetrics text) and `/healthz`, when
//! `--metrics-address` is set, served by `rds_bus::metrics_server`. The node
//! role registers the data plane's metrics under the Go driver's names
//! (`rds_csi_volume_operations`, `rds_csi_nvme_*`, stale mounts, orphans
//! cleaned).

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use rds_bus::Shutdown;

use crate::error::FrontendError;

/// Binds `addr` and serves `registry` in a background task until
/// `shutdown`; returns the bound address (port 0 allowed).
pub async fn spawn(
    addr: SocketAddr,
    registry: Registry,
    shutdown: Shutdown,
) -> Result<SocketAddr, FrontendError> {
    let registry = Arc::new(registry);
    let render = Arc::new(move || {
        let mut body = String::new();
        prometheus_client::encoding::text::encode(&mut body, &registry)
            .map(|()| body)
            .map_err(|e| e.to_string())
    });
    let (bound, _task) =
        rds_bus::metrics_server::spawn(addr, render, async move { shutdown.wait().await })
            .await
            .map_err(|e| FrontendError::Internal(format!("cannot bind metrics on {addr}: {e}")))?;
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
        let addr = spawn("127.0.0.1:0".parse().unwrap(), registry, sd.clone())
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
