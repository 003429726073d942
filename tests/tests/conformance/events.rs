//! Publish / unpublish with PVC metadata → VolumeAttached / VolumeDetached in
//! the local event sink (DIR/events.jsonl), posted by attachment-service with
//! the PVC ref csi-frontend passed from volume_context; csi-frontend posts
//! none of them. A dead event path never changes the CSI answer.

use std::time::{Duration, Instant};

use integration_tests::StackOpts;
use rds_proto::csi::v1::*;
use serde_json::Value;

use crate::common::*;

fn is(e: &Value, reason: &str, volume: &str) -> bool {
    e["reason"] == reason && e["volume_id"] == volume
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_and_unpublish_post_attached_and_detached_events_with_the_pvc() {
    let mut t = Sanity::start().await;
    let node = t.node().to_owned();
    let mut req = create_req(&format!("pvc-{}", uuid::Uuid::new_v4()));
    req.parameters = pvc_params("shop", "data-db-0");
    let v = t.volume(req).await;
    assert_eq!(v.volume_context["csi.storage.k8s.io/pvc/namespace"], "shop");
    assert_eq!(v.volume_context["csi.storage.k8s.io/pvc/name"], "data-db-0");

    let mut p = publish_req(&v.volume_id, &node);
    p.volume_context = v.volume_context.clone();
    t.publish(p.clone()).await.unwrap();
    let attached = t
        .stack
        .wait_for_event(Duration::from_secs(10), |e| {
            is(e, "VolumeAttached", &v.volume_id)
        })
        .await
        .expect("VolumeAttached in events.jsonl");
    assert_eq!(attached["type"], "Normal");
    assert_eq!(attached["pvc_namespace"], "shop");
    assert_eq!(attached["pvc_name"], "data-db-0");
    assert_eq!(attached["node_id"], node);
    let msg = attached["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "[{}]: Attached to node {node} (duration: ",
            v.volume_id
        )),
        "{msg}"
    );

    // An idempotent repeat posts nothing new.
    t.publish(p).await.unwrap();

    t.ctl
        .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
            volume_id: v.volume_id.clone(),
            node_id: node.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let detached = t
        .stack
        .wait_for_event(Duration::from_secs(10), |e| {
            is(e, "VolumeDetached", &v.volume_id)
        })
        .await
        .expect("VolumeDetached in events.jsonl");
    assert_eq!(
        detached["pvc_namespace"], "shop",
        "the record kept the PVC ref"
    );
    assert_eq!(detached["pvc_name"], "data-db-0");
    assert_eq!(
        detached["message"],
        format!("[{}]: Detached from node {node}", v.volume_id)
    );

    // Exactly one of each: the frontend posts none itself, the repeat none.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = t.stack.events();
    let count = |r: &str| events.iter().filter(|e| is(e, r, &v.volume_id)).count();
    assert_eq!(count("VolumeAttached"), 1, "{events:#?}");
    assert_eq!(count("VolumeDetached"), 1, "{events:#?}");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_event_path_does_not_change_or_delay_the_csi_answer() {
    let mut t = Sanity::start_with(StackOpts {
        without_event_service: true,
        ..Default::default()
    })
    .await;
    let node = t.node().to_owned();
    let mut req = create_req(&unique("noevents"));
    req.parameters = pvc_params("ns", "claim");
    let v = t.volume(req).await;
    let mut p = publish_req(&v.volume_id, &node);
    p.volume_context = v.volume_context.clone();
    let started = Instant::now();
    t.publish(p).await.unwrap();
    t.ctl
        .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
            volume_id: v.volume_id.clone(),
            node_id: node,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(t.stack.events().is_empty());
    t.finish().await;
}
