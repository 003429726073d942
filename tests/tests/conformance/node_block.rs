//! The node cases that depend on the access type, run again for raw block
//! (csi-sanity runs its node suite once per access type): N6, N9, N23, N24.
//! Block publish is a device node at the target, never a mount.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::*;
use tonic::Code;

use crate::common::*;
use crate::node::{
    assert_target_healthy, create, node_publish_req, publish_everywhere,
    stage_and_publish_ten_times, unpublish_target,
};

fn block(mode: Mode) -> VolumeCapability {
    cap(mode, true)
}

fn is_device_node(p: &str) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_block_device())
}

#[tokio::test(flavor = "multi_thread")]
async fn n6_block_node_publish_volume_should_fail_when_single_node_single_writer_volume_is_already_published_at_a_different_target_path()
 {
    let mut t = Sanity::start_node().await;
    let cap = block(Mode::SingleNodeSingleWriter);
    let v = create(&mut t, "sanity-snsw-block", cap.clone()).await;
    publish_everywhere(&mut t, &v, cap.clone()).await;
    let mut other = node_publish_req(&t, &v, cap, false);
    other.target_path = t.target_dir.join("other_target").display().to_string();
    let r = t.node_client().node_publish_volume(other.clone()).await;
    assert_code(r, Code::FailedPrecondition);
    assert!(
        !Path::new(&other.target_path).exists(),
        "a refused publish leaves no device node behind"
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n9_block_node_unpublish_volume_should_remove_target_path() {
    let mut t = Sanity::start_node().await;
    let cap = block(Mode::SingleNodeWriter);
    let v = create(&mut t, "sanity-unpub-block", cap.clone()).await;
    publish_everywhere(&mut t, &v, cap).await;
    assert!(is_device_node(&t.target_path()));
    unpublish_target(&t, &v).await;
    assert!(!Path::new(&t.target_path()).exists());
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n23_block_should_work() {
    let mut t = Sanity::start_node().await;
    let cap = block(Mode::SingleNodeWriter);
    let v = create(&mut t, "sanity-node-full-block", cap.clone()).await;
    publish_everywhere(&mut t, &v, cap).await;
    assert_target_healthy(&t, &v).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n24_block_should_be_idempotent() {
    let mut t = Sanity::start_node().await;
    let cap = block(Mode::SingleNodeSingleWriter);
    let v = create(&mut t, "sanity-node-idem-block", cap.clone()).await;
    stage_and_publish_ten_times(&mut t, &v, cap).await;
    assert!(is_device_node(&t.target_path()));
    t.finish().await;
}
