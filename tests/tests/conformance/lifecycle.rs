//! The whole controller lifecycle on one volume: create, publish, expand,
//! snapshot, restore and clone (with the data checked through the sim's
//! backing files — local mode clones data on copy-from), delete refused while
//! published, unpublish, delete, and paging over many volumes.

use std::io::{Read, Seek, SeekFrom, Write};

use rds_proto::csi::v1::volume_content_source::{SnapshotSource, Type as SourceType, VolumeSource};
use rds_proto::csi::v1::*;
use tonic::Code;

use crate::common::*;

const MARK: &[u8] = b"rds-csi lifecycle marker";
const OFFSET: u64 = 4096 * 1024 + 7;

fn write_mark(t: &Sanity, volume_path: &str) {
    let host = t
        .stack
        .sim
        .host_path(volume_path)
        .expect("backing file on the host");
    let mut f = std::fs::OpenOptions::new().write(true).open(host).unwrap();
    f.seek(SeekFrom::Start(OFFSET)).unwrap();
    f.write_all(MARK).unwrap();
    f.sync_all().unwrap();
}

fn read_mark(t: &Sanity, volume_path: &str) -> Vec<u8> {
    let host = t
        .stack
        .sim
        .host_path(volume_path)
        .expect("backing file on the host");
    let mut f = std::fs::File::open(host).unwrap();
    f.seek(SeekFrom::Start(OFFSET)).unwrap();
    let mut buf = vec![0u8; MARK.len()];
    f.read_exact(&mut buf).unwrap();
    buf
}

async fn published_nodes(t: &mut Sanity, id: &str) -> Vec<String> {
    t.ctl
        .controller_get_volume(ControllerGetVolumeRequest {
            volume_id: id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
        .published_node_ids
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_controller_lifecycle_with_snapshot_restore_clone_and_expansion() {
    let mut t = Sanity::start().await;
    let node = t.node().to_owned();
    let (a, path) = create_with_pvc_metadata(&mut t).await;
    publish_and_see_it_listed(&mut t, &a, &node).await;
    expand_online(&mut t, &a, &path).await;
    let snap = snapshot_found_by_source(&mut t, &a).await;
    let b = restore_from(&mut t, &snap).await;
    let c = clone_from(&mut t, &a).await;
    delete_refused_until_unpublished(&mut t, &a, &node, &path).await;

    // The snapshot outlives its source; restored and cloned volumes outlive it.
    let s = t
        .ctl
        .get_snapshot(GetSnapshotRequest {
            snapshot_id: snap.snapshot_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert_eq!(s.source_volume_id, a.volume_id);
    t.delete_snapshot(&snap.snapshot_id).await.unwrap();
    assert_eq!(read_mark(&t, &b.volume_context["volumePath"]), MARK);
    t.delete_volume(&b.volume_id).await.unwrap();
    t.delete_volume(&c.volume_id).await.unwrap();

    // Nothing left on the RDS.
    let left: Vec<_> = t.stack.sim.disks().into_iter().map(|d| d.slot).collect();
    assert!(left.is_empty(), "{left:?}");
    t.finish().await;
}

/// Create with PVC metadata; the backing file is where the context says,
/// marked. Returns the volume and its backing path.
async fn create_with_pvc_metadata(t: &mut Sanity) -> (Volume, String) {
    let mut req = create_req(&format!("pvc-{}", uuid::Uuid::new_v4()));
    req.parameters = pvc_params("apps", "data-web-0");
    let a = t.volume(req).await;
    assert_eq!(a.capacity_bytes, GIB);
    let path = a.volume_context["volumePath"].clone();
    assert_eq!(path, format!("/storage-pool/metal-csi/{}.img", a.volume_id));
    assert!(t.stack.sim.file_exists(&path));
    write_mark(t, &path);
    (a, path)
}

/// Publish: visible through ControllerGetVolume and ListVolumes.
async fn publish_and_see_it_listed(t: &mut Sanity, a: &Volume, node: &str) {
    let mut p = publish_req(&a.volume_id, node);
    p.volume_context = a.volume_context.clone();
    t.publish(p).await.unwrap();
    assert_eq!(
        published_nodes(t, &a.volume_id).await,
        vec![node.to_owned()]
    );
    let listed = t
        .ctl
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let entry = listed
        .entries
        .iter()
        .find(|e| e.volume.as_ref().unwrap().volume_id == a.volume_id)
        .unwrap();
    assert_eq!(
        entry.status.as_ref().unwrap().published_node_ids,
        vec![node.to_owned()]
    );
}

/// Online expansion while published keeps the data.
async fn expand_online(t: &mut Sanity, a: &Volume, path: &str) {
    let r = t
        .ctl
        .controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: a.volume_id.clone(),
            capacity_range: range(2 * GIB, 0),
            volume_capability: Some(snw()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.capacity_bytes, 2 * GIB);
    assert!(r.node_expansion_required);
    assert_eq!(read_mark(t, path), MARK, "expansion keeps the data");
}

/// Snapshot, found by source; creation_time from the RDS.
async fn snapshot_found_by_source(t: &mut Sanity, a: &Volume) -> Snapshot {
    let snap = t.snapshot("lifecycle-snap", &a.volume_id).await;
    assert!(snap.ready_to_use);
    assert_eq!(snap.size_bytes, 2 * GIB);
    assert!(
        snap.creation_time
            .as_ref()
            .is_some_and(|ts| ts.seconds > 1_600_000_000)
    );
    let by_source = t
        .ctl
        .list_snapshots(ListSnapshotsRequest {
            source_volume_id: a.volume_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_source.entries.len(), 1);
    assert_eq!(
        by_source.entries[0].snapshot.as_ref().unwrap().snapshot_id,
        snap.snapshot_id
    );
    snap
}

/// Restore: never smaller than the snapshot, data carried over.
async fn restore_from(t: &mut Sanity, snap: &Snapshot) -> Volume {
    let mut req = create_req(&unique("restored"));
    req.capacity_range = range(GIB, 0);
    req.volume_content_source = Some(VolumeContentSource {
        r#type: Some(SourceType::Snapshot(SnapshotSource {
            snapshot_id: snap.snapshot_id.clone(),
        })),
    });
    let b = t.volume(req).await;
    assert_eq!(b.capacity_bytes, 2 * GIB);
    assert_eq!(read_mark(t, &b.volume_context["volumePath"]), MARK);
    b
}

/// Clone from the live volume, data carried over.
async fn clone_from(t: &mut Sanity, a: &Volume) -> Volume {
    let mut req = create_req(&unique("clone"));
    req.volume_content_source = Some(VolumeContentSource {
        r#type: Some(SourceType::Volume(VolumeSource {
            volume_id: a.volume_id.clone(),
        })),
    });
    let c = t.volume(req).await;
    assert_eq!(c.capacity_bytes, 2 * GIB);
    assert_eq!(read_mark(t, &c.volume_context["volumePath"]), MARK);
    c
}

/// Delete refused while published (naming the node); allowed after
/// unpublish, and then the volume and its file are gone.
async fn delete_refused_until_unpublished(t: &mut Sanity, a: &Volume, node: &str, path: &str) {
    let s = assert_code(
        t.delete_volume(&a.volume_id).await,
        Code::FailedPrecondition,
    );
    assert!(s.message().contains(node), "{}", s.message());
    t.ctl
        .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
            volume_id: a.volume_id.clone(),
            node_id: node.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(published_nodes(t, &a.volume_id).await.is_empty());
    t.delete_volume(&a.volume_id).await.unwrap();
    assert!(!t.stack.sim.file_exists(path));
    assert_code(
        t.ctl
            .controller_get_volume(ControllerGetVolumeRequest {
                volume_id: a.volume_id.clone(),
            })
            .await,
        Code::NotFound,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_volumes_pages_cover_every_volume_exactly_once() {
    let mut t = Sanity::start().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            t.volume(create_req(&unique(&format!("pg{i}"))))
                .await
                .volume_id,
        );
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = t
            .ctl
            .list_volumes(ListVolumesRequest {
                max_entries: 3,
                starting_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.entries.len() <= 3);
        seen.extend(r.entries.into_iter().map(|e| e.volume.unwrap().volume_id));
        pages += 1;
        if r.next_token.is_empty() {
            break;
        }
        token = r.next_token;
    }
    assert_eq!(pages, 3);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "every volume once, in order");
    t.finish().await;
}
