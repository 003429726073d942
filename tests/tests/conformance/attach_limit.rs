//! The node attach limit: csi-sanity case C29 (run with its attach-limit
//! switch on) and the default figure NodeGetInfo reports.

use rds_proto::csi::v1::*;
use tonic::Code;

use integration_tests::StackOpts;

use crate::common::*;

async fn node_limit(t: &Sanity) -> i64 {
    t.node_client()
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .max_volumes_per_node
}

#[tokio::test(flavor = "multi_thread")]
async fn c29_publish_more_volumes_than_the_node_attach_limit_should_fail() {
    let mut t = Sanity::start_with(StackOpts {
        node_role: true,
        frontend_args: vec!["--max-volumes-per-node".into(), "3".into()],
        ..Default::default()
    })
    .await;
    // csi-sanity: the limit comes from NodeGetInfo; publish that many, then one more.
    let max = node_limit(&t).await;
    assert_eq!(max, 3);
    let node = t.node().to_owned();
    let mut vols = Vec::new();
    for _ in 0..=max {
        vols.push(t.volume(create_req(&unique("pvc-c29"))).await.volume_id);
    }
    for v in &vols[..3] {
        t.publish(publish_req(v, &node)).await.unwrap();
    }
    let s = assert_code(
        t.publish(publish_req(&vols[3], &node)).await,
        Code::ResourceExhausted,
    );
    assert!(s.message().contains("limit"), "{}", s.message());

    // At the limit a repeat publish of a held volume is still idempotent OK,
    // and freeing a slot lets the refused volume in.
    t.publish(publish_req(&vols[0], &node)).await.unwrap();
    t.ctl
        .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
            volume_id: vols[0].clone(),
            node_id: node.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    t.publish(publish_req(&vols[3], &node)).await.unwrap();
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_get_info_reports_the_default_attach_limit() {
    let t = Sanity::start_node().await;
    // One NVMe/TCP controller per volume (csi-frontend --max-volumes-per-node).
    assert_eq!(node_limit(&t).await, 64);
    t.finish().await;
}
