//! The frontend side of the Btrfs layout and the ownership tag (issue #19),
//! over the real stack (csi-frontend → rds-agent → SSH → rds-sim): the
//! StorageClass's `volumeLayout` and the provisioner's metadata reach the RDS
//! as a subvolume and a disk comment, the volume_context records the layout
//! and the file inside the subvolume, a subvolume snapshot is ready at once,
//! and a non-Btrfs pool refuses with the agent's words. No root needed: the
//! sim's subvolumes are directories (docs/btrfs.md; data round trips are
//! `btrfs_data.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use integration_tests::{Stack, StackOpts};
use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use rds_proto::csi::v1::{
    CapacityRange, CreateSnapshotRequest, CreateVolumeRequest, ListVolumesRequest, VolumeCapability,
};
use tonic::Code;

const MIB: i64 = 1 << 20;

fn request(name: &str, params: &[(&str, &str)]) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.to_owned(),
        capacity_range: Some(CapacityRange {
            required_bytes: 64 * MIB,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![VolumeCapability {
            access_mode: Some(AccessMode {
                mode: Mode::SingleNodeWriter as i32,
            }),
            access_type: Some(AccessType::Mount(MountVolume::default())),
        }],
        parameters: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    }
}

fn metadata(pv: &str) -> Vec<(&str, &str)> {
    vec![
        ("csi.storage.k8s.io/pvc/namespace", "apps"),
        ("csi.storage.k8s.io/pvc/name", "data"),
        ("csi.storage.k8s.io/pv/name", pv),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subvolume_volume_is_recorded_in_its_context_and_tagged_on_the_rds() {
    let stack = Stack::start().await.unwrap();
    let mut ctl = stack.controller().unwrap();
    let id = format!("pvc-{}", uuid::Uuid::new_v4());
    let mut params = metadata(&id);
    params.push(("volumeLayout", "subvolume"));
    let vol = ctl
        .create_volume(request(&id, &params))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let ctx = &vol.volume_context;
    assert_eq!(ctx["volumeLayout"], "subvolume", "{ctx:?}");
    let path = format!("/storage-pool/metal-csi/{id}/volume.img");
    assert_eq!(
        ctx["volumePath"], path,
        "volumePath is the file inside the subvolume"
    );
    assert!(stack.sim.file_exists(&path), "{path} on the sim");
    let print = stack
        .sim
        .console(&format!("/disk print detail where slot={id}"));
    let tag = format!(";;; rds-csi: cluster=default pv={id} pvc=apps/data");
    assert!(print.contains(&tag), "{tag} not in:\n{print}");
    let subs = stack.sim.console(&format!(
        "/disk/btrfs/subvolume/print detail where name=\"metal-csi/{id}\""
    ));
    assert!(subs.contains(&format!("name=\"metal-csi/{id}\"")), "{subs}");

    // Its snapshot is a read-only subvolume snapshot: ready at once, timed.
    let snap = ctl
        .create_snapshot(CreateSnapshotRequest {
            source_volume_id: id.clone(),
            name: format!("snapshot-{id}"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert!(snap.ready_to_use, "{snap:?}");
    assert!(snap.creation_time.is_some(), "{snap:?}");
    assert_eq!(snap.source_volume_id, id);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flat_volume_keeps_the_go_keys_and_is_tagged_too() {
    let stack = Stack::start().await.unwrap();
    let mut ctl = stack.controller().unwrap();
    let id = format!("pvc-{}", uuid::Uuid::new_v4());
    let vol = ctl
        .create_volume(request(&id, &metadata(&id)))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let ctx = &vol.volume_context;
    assert!(!ctx.contains_key("volumeLayout"), "{ctx:?}");
    assert_eq!(
        ctx["volumePath"],
        format!("/storage-pool/metal-csi/{id}.img")
    );
    let print = stack
        .sim
        .console(&format!("/disk print detail where slot={id}"));
    assert!(
        print.contains(&format!(
            ";;; rds-csi: cluster=default pv={id} pvc=apps/data"
        )),
        "{print}"
    );
    // ListVolumes reads the tag back from the RDS (rdsctl's OWNER column).
    let listed = ctl
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let mine = listed
        .iter()
        .filter_map(|e| e.volume.as_ref())
        .find(|v| v.volume_id == id)
        .expect("the volume is listed");
    let ctx = &mine.volume_context;
    assert_eq!(
        ctx.get("csi.storage.k8s.io/pvc/namespace")
            .map(String::as_str),
        Some("apps"),
        "{ctx:?}"
    );
    assert_eq!(
        ctx.get("csi.storage.k8s.io/pvc/name").map(String::as_str),
        Some("data"),
        "{ctx:?}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subvolume_volume_on_an_xfs_pool_is_failed_precondition_in_the_agents_words() {
    let stack = Stack::start_with(StackOpts {
        sim: Box::new(|c| c.behaviour.pool_filesystem = rds_sim::PoolFilesystem::Xfs),
        ..StackOpts::default()
    })
    .await
    .unwrap();
    let mut ctl = stack.controller().unwrap();
    let id = format!("pvc-{}", uuid::Uuid::new_v4());
    let err = ctl
        .create_volume(request(&id, &[("volumeLayout", "subvolume")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("needs a Btrfs pool") && err.message().contains("xfs"),
        "{}",
        err.message()
    );
    assert!(
        stack.sim.disks().iter().all(|d| d.slot != id),
        "nothing created"
    );
    // Flat volumes still work there.
    ctl.create_volume(request(&id, &[])).await.unwrap();
    stack.stop().await;
}
