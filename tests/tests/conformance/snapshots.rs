//! Snapshot cases S1–S18 (docs/conformance.md §4).

use rds_proto::csi::v1::*;
use tonic::Code;

use crate::common::*;

async fn list(t: &mut Sanity, req: ListSnapshotsRequest) -> ListSnapshotsResponse {
    t.ctl.list_snapshots(req).await.unwrap().into_inner()
}

fn assert_valid(s: &Snapshot) {
    assert!(!s.snapshot_id.is_empty());
    assert!(!s.source_volume_id.is_empty());
    assert!(
        s.creation_time.is_some(),
        "creation_time must be set: {s:?}"
    );
}

/// `n` volumes with one snapshot each.
async fn volumes_with_snapshots(t: &mut Sanity, n: usize) -> Vec<(Volume, Snapshot)> {
    let mut out = Vec::new();
    for i in 0..n {
        let v = t.volume(create_req(&unique(&format!("snapvol{i}")))).await;
        let s = t.snapshot(&unique(&format!("snap{i}")), &v.volume_id).await;
        out.push((v, s));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn s1_list_snapshots_should_return_appropriate_values() {
    let mut t = Sanity::start().await;
    volumes_with_snapshots(&mut t, 1).await;
    let r = list(&mut t, ListSnapshotsRequest::default()).await;
    assert!(!r.entries.is_empty());
    for e in &r.entries {
        assert_valid(e.snapshot.as_ref().unwrap());
    }
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s2_list_snapshots_should_return_snapshots_that_match_the_specified_snapshot_id() {
    let mut t = Sanity::start().await;
    let all = volumes_with_snapshots(&mut t, 3).await;
    let mid = &all[1].1;
    let r = list(
        &mut t,
        ListSnapshotsRequest {
            snapshot_id: mid.snapshot_id.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.entries.len(), 1);
    let s = r.entries[0].snapshot.as_ref().unwrap();
    assert_valid(s);
    assert_eq!(s.snapshot_id, mid.snapshot_id);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_list_snapshots_should_return_empty_when_the_specified_snapshot_id_does_not_exist() {
    let mut t = Sanity::start().await;
    let r = list(
        &mut t,
        ListSnapshotsRequest {
            snapshot_id: "none-exist-id".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(r.entries.is_empty());
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s4_list_snapshots_should_return_snapshots_that_match_the_specified_source_volume_id() {
    let mut t = Sanity::start().await;
    let all = volumes_with_snapshots(&mut t, 3).await;
    let (vol, snap) = &all[1];
    let r = list(
        &mut t,
        ListSnapshotsRequest {
            source_volume_id: vol.volume_id.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.entries.len(), 1);
    let s = r.entries[0].snapshot.as_ref().unwrap();
    assert_eq!(s.source_volume_id, vol.volume_id);
    assert_eq!(s.snapshot_id, snap.snapshot_id);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s5_list_snapshots_should_return_empty_when_the_specified_source_volume_id_does_not_exist()
{
    let mut t = Sanity::start().await;
    volumes_with_snapshots(&mut t, 1).await;
    let r = list(
        &mut t,
        ListSnapshotsRequest {
            source_volume_id: unknown_volume_id(),
            ..Default::default()
        },
    )
    .await;
    assert!(r.entries.is_empty());
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s6_list_snapshots_check_the_presence_of_new_snapshots_in_the_snapshot_list() {
    let mut t = Sanity::start().await;
    let n = list(&mut t, ListSnapshotsRequest::default())
        .await
        .entries
        .len();
    let v = t.volume(create_req(&unique("s6vol"))).await;
    let s = t.snapshot(&unique("s6snap"), &v.volume_id).await;
    assert_eq!(
        list(&mut t, ListSnapshotsRequest::default())
            .await
            .entries
            .len(),
        n + 1
    );
    t.delete_snapshot(&s.snapshot_id).await.unwrap();
    assert_eq!(
        list(&mut t, ListSnapshotsRequest::default())
            .await
            .entries
            .len(),
        n
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s7_list_snapshots_should_return_next_token_when_a_limited_number_of_entries_are_requested()
{
    let mut t = Sanity::start().await;
    volumes_with_snapshots(&mut t, 5).await;
    let total = list(&mut t, ListSnapshotsRequest::default())
        .await
        .entries
        .len();
    assert!(total >= 5);
    let p1 = list(
        &mut t,
        ListSnapshotsRequest {
            max_entries: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(p1.entries.len(), 2);
    assert!(!p1.next_token.is_empty());
    let p2 = list(
        &mut t,
        ListSnapshotsRequest {
            starting_token: p1.next_token.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(p2.entries.len(), total - 2);
    assert!(p2.next_token.is_empty());
    let ids1: Vec<_> = p1
        .entries
        .iter()
        .map(|e| &e.snapshot.as_ref().unwrap().snapshot_id)
        .collect();
    assert!(
        p2.entries
            .iter()
            .all(|e| !ids1.contains(&&e.snapshot.as_ref().unwrap().snapshot_id))
    );
    // A token we did not issue is ABORTED.
    let r = t
        .ctl
        .list_snapshots(ListSnapshotsRequest {
            starting_token: "invalid-token".into(),
            ..Default::default()
        })
        .await;
    assert_code(r, Code::Aborted);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s8_get_snapshot_should_return_an_error() {
    let mut t = Sanity::start().await;
    let r = t.ctl.get_snapshot(GetSnapshotRequest::default()).await;
    assert_code(r, Code::InvalidArgument);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s9_get_snapshot_should_return_snapshot_that_match_the_specified_snapshot_id() {
    let mut t = Sanity::start().await;
    let all = volumes_with_snapshots(&mut t, 3).await;
    let mid = all[1].1.clone();
    let s = t
        .ctl
        .get_snapshot(GetSnapshotRequest {
            snapshot_id: mid.snapshot_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert_valid(&s);
    assert_eq!(s.snapshot_id, mid.snapshot_id);
    assert_eq!(
        s.creation_time, mid.creation_time,
        "creation_time is stable"
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s10_get_snapshot_should_return_an_error_when_the_specified_snapshot_id_does_not_exist() {
    let mut t = Sanity::start().await;
    let r = t
        .ctl
        .get_snapshot(GetSnapshotRequest {
            snapshot_id: "none-exist-id".into(),
            ..Default::default()
        })
        .await;
    assert_code(r, Code::NotFound);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s11_delete_snapshot_should_fail_when_no_snapshot_id_is_provided() {
    let mut t = Sanity::start().await;
    assert_code(t.delete_snapshot("").await, Code::InvalidArgument);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s12_delete_snapshot_should_succeed_when_an_invalid_snapshot_id_is_used() {
    let mut t = Sanity::start().await;
    t.delete_snapshot("reallyfakesnapshotid").await.unwrap();
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s13_delete_snapshot_should_return_appropriate_values() {
    let mut t = Sanity::start().await;
    let (_, s) = volumes_with_snapshots(&mut t, 1).await.remove(0);
    assert_valid(&s);
    // The delete itself runs in cleanup; check it really removes the disk.
    t.delete_snapshot(&s.snapshot_id).await.unwrap();
    assert!(t.stack.sim.disks().iter().all(|d| d.slot != s.snapshot_id));
    t.delete_snapshot(&s.snapshot_id).await.unwrap();
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s14_create_snapshot_should_fail_when_no_name_is_provided() {
    let mut t = Sanity::start().await;
    let r = t.create_snapshot(snapshot_req("", "testId")).await;
    assert_code(r, Code::InvalidArgument);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s15_create_snapshot_should_fail_when_no_source_volume_id_is_provided() {
    let mut t = Sanity::start().await;
    let r = t.create_snapshot(snapshot_req(&unique("snap"), "")).await;
    assert_code(r, Code::InvalidArgument);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s16_create_snapshot_should_succeed_when_requesting_to_create_a_snapshot_with_already_existing_name_and_same_source_volume_id()
 {
    let mut t = Sanity::start().await;
    let v = t.volume(create_req(&unique("s16vol"))).await;
    let name = unique("s16snap");
    let a = t.snapshot(&name, &v.volume_id).await;
    let b = t.snapshot(&name, &v.volume_id).await;
    assert_valid(&a);
    assert_valid(&b);
    assert_eq!(a.snapshot_id, b.snapshot_id);
    assert_eq!(a.creation_time, b.creation_time);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s17_create_snapshot_should_fail_when_requesting_to_create_a_snapshot_with_already_existing_name_and_different_source_volume_id()
 {
    let mut t = Sanity::start().await;
    let a = t.volume(create_req(&unique("s17a"))).await;
    let b = t.volume(create_req(&unique("s17b"))).await;
    let name = unique("s17snap");
    t.snapshot(&name, &a.volume_id).await;
    let r = t.create_snapshot(snapshot_req(&name, &b.volume_id)).await;
    assert_code(r, Code::AlreadyExists);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s18_create_snapshot_should_succeed_when_creating_snapshot_with_maximum_length_name() {
    let mut t = Sanity::start().await;
    let v = t.volume(create_req(&unique("s18vol"))).await;
    let mut name = unique("s18snap");
    while name.len() < 128 {
        name.push('a');
    }
    t.snapshot(&name, &v.volume_id).await;
    t.snapshot(&name, &v.volume_id).await;
    t.finish().await;
}

/// CreateSnapshot of a volume that does not exist is NOT_FOUND (the Go
/// driver answered INTERNAL here).
#[tokio::test(flavor = "multi_thread")]
async fn create_snapshot_of_a_missing_volume_is_not_found() {
    let mut t = Sanity::start().await;
    let r = t
        .create_snapshot(snapshot_req(&unique("orphan"), &unknown_volume_id()))
        .await;
    assert_code(r, Code::NotFound);
    t.finish().await;
}
