//! Kubernetes mode of "known nodes": ControllerPublishVolume asks the API
//! server for the node's CSINode. The API server is an in-process fake that
//! speaks the real JSON (kube's Client against plain http).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use csi_frontend::deadline::CallCtx;
use csi_frontend::known_nodes::KnownNodes;
use csi_frontend::kube_nodes::KubeNodes;
use rds_bus::NodeId;
use serde_json::{Value, json};
use tonic::Code;

const DRIVER: &str = "rds.csi.srvlab.io";

async fn csinode(Path(name): Path<String>) -> (StatusCode, Json<Value>) {
    let drivers = match name.as_str() {
        "worker-1" => json!([{"name": DRIVER, "nodeID": "worker-1", "topologyKeys": null}]),
        "worker-other" => json!([{"name": "ebs.csi.aws.com", "nodeID": "i-123"}]),
        "api-broken" => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "etcdserver: leader changed", "reason": "InternalError", "code": 500}),
                ),
            );
        }
        "api-slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            json!([])
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("csinodes.storage.k8s.io \"{name}\" not found"),
                    "reason": "NotFound", "details": {"name": name, "group": "storage.k8s.io", "kind": "csinodes"},
                    "code": 404}),
                ),
            );
        }
    };
    (
        StatusCode::OK,
        Json(json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "CSINode",
            "metadata": {"name": name},
            "spec": {"drivers": drivers}
        })),
    )
}

async fn fake_api() -> kube::Client {
    let app = Router::new().route("/apis/storage.k8s.io/v1/csinodes/{name}", get(csinode));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    let cfg = kube::Config::new(format!("http://{addr}").parse().unwrap());
    kube::Client::try_from(cfg).unwrap()
}

fn node(n: &str) -> NodeId {
    NodeId::parse(n).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_is_known_when_its_csinode_lists_our_driver() {
    let nodes = KubeNodes::new(fake_api().await, DRIVER, Duration::from_secs(2));
    let ctx = CallCtx::unbounded();
    assert!(nodes.is_known(&ctx, &node("worker-1")).await.unwrap());
    assert!(
        !nodes.is_known(&ctx, &node("worker-other")).await.unwrap(),
        "other drivers only"
    );
    assert!(
        !nodes.is_known(&ctx, &node("gone")).await.unwrap(),
        "no CSINode"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_failures_are_unavailable_never_unknown() {
    let nodes = KubeNodes::new(fake_api().await, DRIVER, Duration::from_secs(2));
    let e = nodes
        .is_known(&CallCtx::unbounded(), &node("api-broken"))
        .await
        .unwrap_err();
    assert_eq!(e.to_status().code(), Code::Unavailable, "{e}");

    // The caller's deadline bounds the API call.
    let started = Instant::now();
    let e = nodes
        .is_known(
            &CallCtx::with_timeout(Duration::from_millis(300)),
            &node("api-slow"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_status().code(), Code::DeadlineExceeded, "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
