//! docs/csi.md through the socket: StorageClass parameters, volume_context,
//! sizes, access modes and ids.

use std::collections::HashMap;

use integration_tests::StackOpts;
use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::*;
use tonic::Code;

use crate::common::*;

fn with_params(name: &str, kv: &[(&str, &str)]) -> CreateVolumeRequest {
    let mut req = create_req(name);
    req.parameters = kv
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    req
}

#[tokio::test(flavor = "multi_thread")]
async fn volume_context_has_the_go_keys_and_the_pvc() {
    let mut t = Sanity::start().await;
    let name = format!("pvc-{}", uuid::Uuid::new_v4());
    let mut req = with_params(
        &name,
        &[
            ("volumePath", "/storage-pool/metal-csi/team-a"),
            ("nvmePort", "4420"),
            ("rdsAddress", "10.42.68.1"),
            ("ctrlLossTmo", "600"),
            ("reconnectDelay", "10"),
            ("keepAliveTmo", "30"),
            ("migrationTimeoutSeconds", "120"),
        ],
    );
    req.parameters.extend(pvc_params("apps", "web-data"));
    let v = t.volume(req).await;
    let want: HashMap<&str, String> = HashMap::from([
        ("rdsAddress", "10.42.68.1".to_owned()),
        ("nvmeAddress", "10.42.68.1".to_owned()),
        ("nvmePort", "4420".to_owned()),
        ("nqn", format!("nqn.2000-02.com.mikrotik:{name}")),
        (
            "volumePath",
            format!("/storage-pool/metal-csi/team-a/{name}.img"),
        ),
        ("ctrlLossTmo", "600".to_owned()),
        ("reconnectDelay", "10".to_owned()),
        ("keepAliveTmo", "30".to_owned()),
        ("migrationTimeoutSeconds", "120".to_owned()),
        ("csi.storage.k8s.io/pvc/namespace", "apps".to_owned()),
        ("csi.storage.k8s.io/pvc/name", "web-data".to_owned()),
    ]);
    let got: HashMap<&str, String> = v
        .volume_context
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    assert_eq!(got, want);
    assert!(t.stack.sim.file_exists(&want["volumePath"]));
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn defaults_follow_the_go_driver() {
    let mut t = Sanity::start().await;
    let v = t.volume(create_req(&unique("defaults"))).await;
    let c = &v.volume_context;
    assert_eq!(c.len(), 9, "{c:?}");
    assert_eq!(c["rdsAddress"], "127.0.0.1");
    assert_eq!(c["nvmeAddress"], "127.0.0.1");
    assert_eq!(c["nvmePort"], "4420");
    assert_eq!(c["ctrlLossTmo"], "-1");
    assert_eq!(c["reconnectDelay"], "5");
    assert_eq!(c["keepAliveTmo"], "0");
    assert_eq!(c["migrationTimeoutSeconds"], "300");
    assert_eq!(
        c["volumePath"],
        format!("/storage-pool/metal-csi/{}.img", v.volume_id)
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn documented_but_ignored_go_keys_and_kubernetes_keys_are_accepted() {
    let mut t = Sanity::start().await;
    let v = t
        .volume(with_params(
            &unique("oldsc"),
            &[
                ("sshPort", "22"),
                ("nqnPrefix", "nqn.2000-02.com.mikrotik:pvc-"),
                ("fsType", "ext4"),
                ("rdsPort", "22"),
                ("rdsBasePath", "/storage-pool/metal-csi"),
                ("csi.storage.k8s.io/fstype", "xfs"),
                ("csi.storage.k8s.io/pv/name", "pvc-123"),
                ("csi.storage.k8s.io/whatever", "anything"),
            ],
        ))
        .await;
    assert_eq!(v.volume_context.len(), 9);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_keys_and_bad_values_are_invalid_argument_and_never_reach_the_rds() {
    let mut t = Sanity::start().await;
    let cases: &[(&str, &str)] = &[
        ("volumepath", "/storage-pool/x"),
        ("replicas", "3"),
        ("volumePath", "/storage-pool/x\"; /system reboot; \""),
        ("volumePath", "/storage-pool/../etc"),
        ("volumePath", "/other-pool/x"),
        ("volumePath", "storage-pool/x"),
        ("volumePath", "/storage-pool/$(reboot)"),
        ("nvmePort", "99999"),
        ("nvmePort", "4420; reboot"),
        ("nvmeAddress", "10.0.0.1\n/system reboot"),
        ("rdsAddress", "rds host"),
        ("ctrlLossTmo", "-5"),
        ("reconnectDelay", "0"),
        ("keepAliveTmo", "x"),
        ("migrationTimeoutSeconds", "-1"),
        ("fsType", "ntfs"),
        ("sshPort", "0"),
        ("csi.storage.k8s.io/pvc/name", "Not_A_Name"),
        ("csi.storage.k8s.io/fstype", "zfs"),
    ];
    for (k, v) in cases {
        let name = unique("badparam");
        let s = assert_code(
            t.create_volume(with_params(&name, &[(k, v)])).await,
            Code::InvalidArgument,
        );
        assert!(
            s.message().contains(&format!("{k:?}")),
            "{k}={v:?}: {}",
            s.message()
        );
        assert!(
            t.stack.sim_commands().iter().all(|c| !c.contains(&name)),
            "{k}={v:?} reached the RDS"
        );
    }
    assert!(t.stack.sim_commands().iter().all(|c| !c.contains("reboot")));
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sizes_round_up_to_whole_mib_with_the_go_minimum() {
    let mut t = Sanity::start().await;
    let cases = [
        (range(0, 0), GIB),
        (None, GIB),
        (range(5, 0), GIB),
        (range(3 * GIB / 2, 0), 3 * GIB / 2),
        (range(GIB + 1, 0), GIB + MIB),
        (range(0, 512 * MIB), 512 * MIB),
        (range(MIB + 1, 2 * MIB), 2 * MIB),
    ];
    for (r, want) in cases {
        let mut req = create_req(&unique("size"));
        req.capacity_range = r;
        let v = t.volume(req).await;
        assert_eq!(v.capacity_bytes, want, "{r:?}");
        let rds = t
            .stack
            .sim
            .disks()
            .into_iter()
            .find(|d| d.slot == v.volume_id)
            .unwrap();
        assert_eq!(
            rds.size as i64, want,
            "the RDS holds exactly that many bytes"
        );
    }
    for r in [range(MIB + 1, MIB + 2), range(10, 5), range(17 << 40, 0)] {
        let mut req = create_req(&unique("size-bad"));
        req.capacity_range = r;
        assert_code(t.create_volume(req).await, Code::OutOfRange);
    }
    let mut req = create_req(&unique("size-neg"));
    req.capacity_range = range(-1, 0);
    assert_code(t.create_volume(req).await, Code::InvalidArgument);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn access_modes_single_node_for_all_multi_node_for_block_only() {
    let mut t = Sanity::start_with(StackOpts {
        known_nodes: vec!["node-1".into(), "node-2".into(), "node-3".into()],
        ..Default::default()
    })
    .await;
    for mode in [
        Mode::SingleNodeWriter,
        Mode::SingleNodeReaderOnly,
        Mode::SingleNodeSingleWriter,
        Mode::SingleNodeMultiWriter,
    ] {
        for block in [false, true] {
            let mut req = create_req(&unique("mode"));
            req.volume_capabilities = vec![cap(mode, block)];
            t.volume(req).await;
        }
    }
    for mode in [Mode::MultiNodeMultiWriter, Mode::MultiNodeReaderOnly] {
        let mut req = create_req(&unique("rwx-fs"));
        req.volume_capabilities = vec![cap(mode, false)];
        let s = assert_code(t.create_volume(req).await, Code::InvalidArgument);
        assert!(s.message().contains("volumeMode: Block"), "{}", s.message());
    }
    let mut req = create_req(&unique("mnsw"));
    req.volume_capabilities = vec![cap(Mode::MultiNodeSingleWriter, true)];
    assert_code(t.create_volume(req).await, Code::InvalidArgument);

    // RWO: a second node is refused, naming the holder.
    let rwo = t.volume(create_req(&unique("rwo"))).await;
    t.publish(publish_req(&rwo.volume_id, "node-1"))
        .await
        .unwrap();
    let s = assert_code(
        t.publish(publish_req(&rwo.volume_id, "node-2")).await,
        Code::FailedPrecondition,
    );
    assert!(s.message().contains("node-1"), "{}", s.message());

    // RWX block: two nodes (live migration), not three.
    let mut req = create_req(&unique("rwx"));
    req.volume_capabilities = vec![cap(Mode::MultiNodeMultiWriter, true)];
    let rwx = t.volume(req).await;
    for node in ["node-1", "node-2"] {
        let mut p = publish_req(&rwx.volume_id, node);
        p.volume_capability = Some(cap(Mode::MultiNodeMultiWriter, true));
        t.publish(p).await.unwrap();
    }
    let mut p = publish_req(&rwx.volume_id, "node-3");
    p.volume_capability = Some(cap(Mode::MultiNodeMultiWriter, true));
    assert_code(t.publish(p).await, Code::FailedPrecondition);
    let listed = t
        .ctl
        .controller_get_volume(ControllerGetVolumeRequest {
            volume_id: rwx.volume_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut nodes = listed.status.unwrap().published_node_ids;
    nodes.sort();
    assert_eq!(nodes, ["node-1", "node-2"]);
    // Unpublish without a node id unpublishes everywhere (CSI spec).
    t.ctl
        .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
            volume_id: rwx.volume_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let listed = t
        .ctl
        .controller_get_volume(ControllerGetVolumeRequest {
            volume_id: rwx.volume_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.status.unwrap().published_node_ids.is_empty());
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_are_checked_and_namespaces_kept_apart() {
    let mut t = Sanity::start().await;
    // Malformed ids are INVALID_ARGUMENT and never reach the RDS.
    for bad in ["a b", "x;y", "-lead", "a\"b", &"a".repeat(129)] {
        assert_code(
            t.create_volume(create_req(bad)).await,
            Code::InvalidArgument,
        );
    }
    // Names differing only in case would share an NQN.
    let name = format!("pvc-{}", uuid::Uuid::new_v4());
    t.volume(create_req(&name)).await;
    let s = assert_code(
        t.create_volume(create_req(&name.to_uppercase())).await,
        Code::AlreadyExists,
    );
    assert!(s.message().contains(&name), "{}", s.message());
    // snap- is the snapshot namespace: never a volume name, never deleted as a volume.
    assert_code(
        t.create_volume(create_req("snap-abc")).await,
        Code::InvalidArgument,
    );
    let v = t.volume(create_req(&unique("keep"))).await;
    let snap = t.snapshot(&unique("keep-snap"), &v.volume_id).await;
    t.delete_volume(&snap.snapshot_id).await.unwrap();
    assert!(
        t.stack
            .sim
            .disks()
            .iter()
            .any(|d| d.slot == snap.snapshot_id),
        "DeleteVolume removed a snapshot"
    );
    t.delete_snapshot(&v.volume_id).await.unwrap();
    assert!(
        t.stack.sim.disks().iter().any(|d| d.slot == v.volume_id),
        "DeleteSnapshot removed a volume"
    );
    // Modify-volume parameters are refused (no MODIFY_VOLUME).
    let mut req = create_req(&unique("mutable"));
    req.mutable_parameters = HashMap::from([("XXX_FakeKey".to_owned(), "v".to_owned())]);
    assert_code(t.create_volume(req).await, Code::InvalidArgument);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn get_capacity_reads_the_pool_of_the_storage_class() {
    let mut t = Sanity::start().await;
    let before = t
        .ctl
        .get_capacity(GetCapacityRequest::default())
        .await
        .unwrap()
        .into_inner();
    let r = t
        .ctl
        .get_capacity(GetCapacityRequest {
            parameters: HashMap::from([(
                "volumePath".to_owned(),
                "/storage-pool/metal-csi".to_owned(),
            )]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.available_capacity, before.available_capacity);
    let bad = t
        .ctl
        .get_capacity(GetCapacityRequest {
            parameters: HashMap::from([("volumePath".to_owned(), "/etc".to_owned())]),
            ..Default::default()
        })
        .await;
    assert_code(bad, Code::InvalidArgument);
    // Unsupported capabilities have no capacity.
    let r = t
        .ctl
        .get_capacity(GetCapacityRequest {
            volume_capabilities: vec![cap(Mode::MultiNodeMultiWriter, false)],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.available_capacity, 0);
    t.finish().await;
}
