//! ExpandVolume cases E1–E3 (docs/conformance.md §4), plus node expansion
//! for filesystem vs block.

use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::*;
use tonic::Code;

use crate::common::*;

fn expand_req(id: &str, bytes: i64) -> ControllerExpandVolumeRequest {
    ControllerExpandVolumeRequest {
        volume_id: id.to_owned(),
        capacity_range: range(bytes, 0),
        volume_capability: Some(snw()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn e1_expand_volume_should_fail_if_no_volume_id_is_given() {
    let mut t = Sanity::start().await;
    let r = t
        .ctl
        .controller_expand_volume(expand_req("", EXPAND_SIZE))
        .await;
    assert_code(r, Code::InvalidArgument);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn e2_expand_volume_should_fail_if_no_capacity_range_is_given() {
    let mut t = Sanity::start().await;
    let mut req = expand_req("", 0);
    req.capacity_range = None;
    assert_code(
        t.ctl.controller_expand_volume(req).await,
        Code::InvalidArgument,
    );
    // Also with a real volume id: the range is required.
    let v = t.volume(create_req(&unique("e2"))).await;
    let mut req = expand_req(&v.volume_id, 0);
    req.capacity_range = None;
    assert_code(
        t.ctl.controller_expand_volume(req).await,
        Code::InvalidArgument,
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn e3_expand_volume_should_work() {
    let mut t = Sanity::start().await;
    let v = t.volume(create_req(&unique("e3"))).await;
    let r = t
        .ctl
        .controller_expand_volume(expand_req(&v.volume_id, EXPAND_SIZE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.capacity_bytes, EXPAND_SIZE,
        "must equal the expand size exactly"
    );
    assert!(
        r.node_expansion_required,
        "a filesystem must be grown on the node"
    );
    // The RDS really has the new size.
    let got = t
        .ctl
        .controller_get_volume(ControllerGetVolumeRequest {
            volume_id: v.volume_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.volume.unwrap().capacity_bytes, EXPAND_SIZE);
    // A retry is idempotent and still asks for node expansion.
    let again = t
        .ctl
        .controller_expand_volume(expand_req(&v.volume_id, EXPAND_SIZE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.capacity_bytes, EXPAND_SIZE);
    assert!(again.node_expansion_required);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expand_of_a_block_volume_needs_no_node_expansion_and_sizes_round_up() {
    let mut t = Sanity::start().await;
    let mut req = create_req(&unique("blk"));
    req.volume_capabilities = vec![cap(Mode::SingleNodeWriter, true)];
    let v = t.volume(req).await;
    let mut req = expand_req(&v.volume_id, 3 * GIB / 2 + 1);
    req.volume_capability = Some(cap(Mode::SingleNodeWriter, true));
    let r = t
        .ctl
        .controller_expand_volume(req)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.capacity_bytes,
        3 * GIB / 2 + MIB,
        "1.5 GiB + 1 byte rounds UP to the next MiB"
    );
    assert!(!r.node_expansion_required);
    // Unknown volume → NOT_FOUND; a limit below the request → OUT_OF_RANGE.
    let r = t
        .ctl
        .controller_expand_volume(expand_req(&unknown_volume_id(), EXPAND_SIZE))
        .await;
    assert_code(r, Code::NotFound);
    let mut req = expand_req(&v.volume_id, 2 * GIB + 1);
    req.capacity_range = range(2 * GIB + 1, 2 * GIB + 2);
    assert_code(t.ctl.controller_expand_volume(req).await, Code::OutOfRange);
    t.finish().await;
}
