//! `nvme-tcp/<node>`: is the `nvme_tcp` kernel module loaded on each node?
//!
//! **How a node reports it**: the node plugin (csi-frontend, node role)
//! exports the gauge [`METRIC`] on its `/metrics` (1 when
//! `/sys/module/nvme_tcp` exists, read at start-up and at every NodeStage).
//! Doctor reads that page through the API server's pod proxy
//! (`GET /api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/metrics`) with the
//! operator's kubeconfig: the node needs no right on its Node object, the
//! operator needs `get` on `pods/proxy`. Each read has the Kubernetes
//! deadline and a size cap; anything that is not a clear 1 or 0 is a warn
//! ("not reported"), never a pass.

use futures::{AsyncReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;

use super::Check;
use crate::target::KubeArgs;

/// The node plugin's gauge.
pub const METRIC: &str = "rds_csi_node_nvme_tcp_loaded";

/// The node plugin's metrics port when its pod spec does not name one
/// (deploy/base/node.yaml: `metrics-node`, 9809).
const DEFAULT_PORT: i32 = 9809;
const PORT_NAME: &str = "metrics-node";

/// Largest `/metrics` page read (the node plugin's is a few KiB).
const MAX_PAGE: u64 = 1 << 20;

/// How many nodes are asked at once.
const PARALLEL: usize = 8;

fn fix(node: &str) -> String {
    format!("on {node}: `modprobe nvme_tcp` and add nvme_tcp to /etc/modules-load.d/")
}

/// The metrics port of the pod's csi-frontend container.
fn metrics_port(p: &Pod) -> i32 {
    p.spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == "csi-frontend"))
        .and_then(|c| c.ports.as_ref())
        .and_then(|ps| ps.iter().find(|p| p.name.as_deref() == Some(PORT_NAME)))
        .map_or(DEFAULT_PORT, |p| p.container_port)
}

/// A name that can go into the URL path as is (a DNS-1123 subdomain).
fn url_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
}

/// The gauge's value in a Prometheus/OpenMetrics text page.
pub fn gauge_value(page: &str) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(METRIC)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// GET the pod's `/metrics` through the API server, bounded in time and size.
async fn scrape(
    k: &KubeArgs,
    client: &kube::Client,
    pod: &str,
    port: i32,
) -> Result<String, String> {
    let path = format!(
        "/api/v1/namespaces/{}/pods/{pod}:{port}/proxy/metrics",
        k.namespace
    );
    let req = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let read = async {
        let stream = client
            .request_stream(req)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        stream
            .take(MAX_PAGE + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        if buf.len() as u64 > MAX_PAGE {
            return Err(format!("/metrics larger than {MAX_PAGE} bytes"));
        }
        String::from_utf8(buf).map_err(|_| "/metrics is not UTF-8".to_owned())
    };
    match tokio::time::timeout(k.kube_timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", k.kube_timeout)),
    }
}

async fn one(k: &KubeArgs, client: &kube::Client, node: String, pod: Option<&Pod>) -> Check {
    let name = format!("nvme-tcp/{node}");
    let Some(pod) = pod else {
        return Check::warn(
            name,
            format!("not reported (no node pod on {node})"),
            format!("check by hand on {node}: `lsmod | grep nvme_tcp`"),
        );
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    if !url_safe(&pod_name) || !url_safe(&k.namespace) {
        return Check::warn(
            name,
            format!(
                "not reported (cannot address pod {pod_name:?} in {:?})",
                k.namespace
            ),
            format!("check by hand on {node}: `lsmod | grep nvme_tcp`"),
        );
    }
    let port = metrics_port(pod);
    match scrape(k, client, &pod_name, port)
        .await
        .map(|p| gauge_value(&p))
    {
        Ok(Some(1.0)) => Check::pass(name, format!("nvme_tcp loaded ({pod_name} reports)")),
        Ok(Some(0.0)) => Check::fail(
            name,
            format!("nvme_tcp not loaded ({pod_name} reports)"),
            fix(&node),
        ),
        Ok(other) => Check::warn(
            name,
            format!(
                "not reported ({pod_name}:{port}/metrics has {})",
                other.map_or(format!("no {METRIC}"), |v| format!("{METRIC} {v}"))
            ),
            format!(
                "check by hand on {node}: `lsmod | grep nvme_tcp`; a node plugin older than this rdsctl does not export it"
            ),
        ),
        Err(e) => Check::warn(
            name,
            format!("not reported (reading {pod_name}:{port}/metrics through the API server: {e})"),
            format!(
                "check by hand on {node}: `lsmod | grep nvme_tcp`; doctor needs `get` on pods/proxy in {}",
                k.namespace
            ),
        ),
    }
}

/// One check per node, in `nodes` order; `pod_of` finds the node's plugin pod.
pub async fn checks<'a>(
    k: &KubeArgs,
    client: &kube::Client,
    nodes: &[String],
    pod_of: impl Fn(&str) -> Option<&'a Pod>,
) -> Vec<Check> {
    futures::stream::iter(nodes.iter().map(|n| one(k, client, n.clone(), pod_of(n))))
        .buffered(PARALLEL)
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_gauge_and_nothing_that_merely_starts_like_it() {
        let page = "# HELP rds_csi_node_nvme_tcp_loaded x\n# TYPE rds_csi_node_nvme_tcp_loaded gauge\n\
                    rds_csi_node_nvme_tcp_loaded_other 5\nrds_csi_node_nvme_tcp_loaded 1\n# EOF\n";
        assert_eq!(gauge_value(page), Some(1.0));
        assert_eq!(gauge_value("rds_csi_node_nvme_tcp_loaded 0\n"), Some(0.0));
        assert_eq!(gauge_value("rds_csi_volume_operations_total 3\n"), None);
        assert!(url_safe("rds-csi-node-abc12") && !url_safe("a/b") && !url_safe("x:1"));
    }
}
