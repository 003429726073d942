//! Kubernetes mode of "known nodes": ControllerPublishVolume asks the API
//! server for the node's CSINode. The API server is rds-testkit's in-process fake that
//! speaks the real JSON (kube's Client against plain http).

use std::time::{Duration, Instant};

use csi_frontend::deadline::CallCtx;
use csi_frontend::known_nodes::KnownNodes;
use csi_frontend::kube_nodes::KubeNodes;
use k8s_openapi::api::storage::v1::CSINode;
use rds_bus::NodeId;
use rds_testkit::kube::objects::{DRIVER, csinode};
use rds_testkit::{FakeApi, Fault, Verb};
use tonic::Code;

/// The shared fake API with the CSINodes these tests ask about: one with
/// our driver, one with another driver only, one whose GET fails with 500
/// and one whose GET takes 10 s ("gone" has no CSINode: 404).
async fn fake_api() -> kube::Client {
    let api = FakeApi::start().await;
    api.put_value::<CSINode>(csinode("worker-1", &[(DRIVER, "worker-1")]));
    api.put_value::<CSINode>(csinode("worker-other", &[("ebs.csi.aws.com", "i-123")]));
    api.put_value::<CSINode>(csinode("api-broken", &[(DRIVER, "api-broken")]));
    api.put_value::<CSINode>(csinode("api-slow", &[(DRIVER, "api-slow")]));
    api.inject(
        Fault::on(Verb::Get)
            .resource("csinodes")
            .name("api-broken")
            .fail(500, "InternalError", "etcdserver: leader changed"),
    );
    api.inject(
        Fault::on(Verb::Get)
            .resource("csinodes")
            .name("api-slow")
            .delay(Duration::from_secs(10)),
    );
    api.client()
}

// `cfg(test)`: test code for clippy (clippy.toml allows unwrap there).
#[cfg(test)]
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
