//! Node Service cases N1–N24 (docs/conformance.md §6) and end-to-end data
//! checks, with the node role on real loop devices over the sim's backing
//! files, real mkfs and real mounts (the suite runs as root, like `rdsctl up`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;

use rds_proto::csi::v1::node_service_capability::Type as CapType;
use rds_proto::csi::v1::node_service_capability::rpc::Type as Rpc;
use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use rds_proto::csi::v1::volume_content_source::{SnapshotSource, Type as SourceType};
use rds_proto::csi::v1::volume_usage::Unit;
use rds_proto::csi::v1::*;
use tonic::Code;

use crate::common::*;

fn fs_cap(mode: Mode, fs: &str) -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: fs.to_owned(),
            ..Default::default()
        })),
    }
}

pub(crate) fn stage_req(
    t: &Sanity,
    v: &Volume,
    cap: VolumeCapability,
    pc: HashMap<String, String>,
) -> NodeStageVolumeRequest {
    NodeStageVolumeRequest {
        volume_id: v.volume_id.clone(),
        publish_context: pc,
        staging_target_path: t.staging_path(),
        volume_capability: Some(cap),
        volume_context: v.volume_context.clone(),
        ..Default::default()
    }
}

pub(crate) fn node_publish_req(
    t: &Sanity,
    v: &Volume,
    cap: VolumeCapability,
    readonly: bool,
) -> NodePublishVolumeRequest {
    NodePublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: t.staging_path(),
        target_path: t.target_path(),
        volume_capability: Some(cap),
        readonly,
        volume_context: v.volume_context.clone(),
        ..Default::default()
    }
}

/// csi-sanity's helpers: ControllerPublish (tracked), NodeStage, NodePublish.
pub(crate) async fn publish_everywhere(t: &mut Sanity, v: &Volume, cap: VolumeCapability) {
    let node = t.node().to_owned();
    let mut p = publish_req(&v.volume_id, &node);
    p.volume_capability = Some(cap.clone());
    p.volume_context = v.volume_context.clone();
    let pc = t.publish(p).await.unwrap().into_inner().publish_context;
    let mut nc = t.node_client();
    nc.node_stage_volume(stage_req(t, v, cap.clone(), pc))
        .await
        .unwrap();
    nc.node_publish_volume(node_publish_req(t, v, cap, false))
        .await
        .unwrap();
}

pub(crate) async fn create(t: &mut Sanity, prefix: &str, cap: VolumeCapability) -> Volume {
    let mut req = create_req(&unique(prefix));
    req.volume_capabilities = vec![cap];
    t.volume(req).await
}

/// Mounts whose mount point is `path` (from /proc/self/mountinfo).
/// NodeUnpublishVolume of the test's target path; it must succeed.
pub(crate) async fn unpublish_target(t: &Sanity, v: &Volume) {
    t.node_client()
        .node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: v.volume_id.clone(),
            target_path: t.target_path(),
        })
        .await
        .unwrap();
}

/// NodeGetVolumeStats of the test's target path: usage reported, healthy.
pub(crate) async fn assert_target_healthy(t: &Sanity, v: &Volume) {
    let s = t
        .node_client()
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: v.volume_id.clone(),
            volume_path: t.target_path(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!s.usage.is_empty());
    let cond = s.volume_condition.unwrap();
    assert!(!cond.abnormal, "{}", cond.message);
}

/// ControllerPublish, then NodeStage and NodePublish ten times each (all
/// must succeed: idempotent).
pub(crate) async fn stage_and_publish_ten_times(t: &mut Sanity, v: &Volume, cap: VolumeCapability) {
    let node = t.node().to_owned();
    let mut p = publish_req(&v.volume_id, &node);
    p.volume_context = v.volume_context.clone();
    let pc = t.publish(p).await.unwrap().into_inner().publish_context;
    let mut nc = t.node_client();
    for _ in 0..10 {
        nc.node_stage_volume(stage_req(t, v, cap.clone(), pc.clone()))
            .await
            .unwrap();
    }
    for _ in 0..10 {
        nc.node_publish_volume(node_publish_req(t, v, cap.clone(), false))
            .await
            .unwrap();
    }
}

fn mounts_at(path: &str) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(path))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn n1_node_get_capabilities_should_return_appropriate_capabilities() {
    let t = Sanity::start_node().await;
    let caps = t
        .node_client()
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    let mut got: Vec<Rpc> = caps
        .into_iter()
        .map(|c| match c.r#type {
            Some(CapType::Rpc(r)) => Rpc::try_from(r.r#type).unwrap(),
            None => panic!("capability without type"),
        })
        .collect();
    got.sort();
    let mut want = vec![
        Rpc::StageUnstageVolume,
        Rpc::GetVolumeStats,
        Rpc::ExpandVolume,
        Rpc::VolumeCondition,
        Rpc::SingleNodeMultiWriter,
    ];
    want.sort();
    assert_eq!(got, want);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n2_node_get_info_should_return_appropriate_values() {
    let t = Sanity::start_node().await;
    let info = t
        .node_client()
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, t.node());
    assert!(info.max_volumes_per_node >= 0);
    let topo = info.accessible_topology.unwrap();
    assert_eq!(topo.segments["topology.rds.csi.srvlab.io/zone"], "default");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n3_n4_n5_node_publish_volume_should_fail_without_id_target_or_capability() {
    let t = Sanity::start_node().await;
    let mut nc = t.node_client();
    let r = nc
        .node_publish_volume(NodePublishVolumeRequest::default())
        .await;
    assert_code(r, Code::InvalidArgument);
    let r = nc
        .node_publish_volume(NodePublishVolumeRequest {
            volume_id: unknown_volume_id(),
            ..Default::default()
        })
        .await;
    assert_code(r, Code::InvalidArgument);
    let r = nc
        .node_publish_volume(NodePublishVolumeRequest {
            volume_id: unknown_volume_id(),
            target_path: t.target_path(),
            ..Default::default()
        })
        .await;
    assert_code(r, Code::InvalidArgument);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n6_node_publish_volume_should_fail_when_single_node_single_writer_volume_is_already_mounted_at_a_different_target_path()
 {
    let mut t = Sanity::start_node().await;
    let cap = fs_cap(Mode::SingleNodeSingleWriter, "");
    let v = create(&mut t, "sanity-snsw", cap.clone()).await;
    publish_everywhere(&mut t, &v, cap.clone()).await;
    let mut other = node_publish_req(&t, &v, cap, false);
    other.target_path = t.target_dir.join("other_target").display().to_string();
    let r = t.node_client().node_publish_volume(other).await;
    assert_code(r, Code::FailedPrecondition);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n7_n8_node_unpublish_volume_should_fail_without_id_or_target() {
    let t = Sanity::start_node().await;
    let mut nc = t.node_client();
    assert_code(
        nc.node_unpublish_volume(NodeUnpublishVolumeRequest::default())
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        nc.node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: unknown_volume_id(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n9_node_unpublish_volume_should_remove_target_path() {
    let mut t = Sanity::start_node().await;
    let v = create(&mut t, "sanity-unpub", snw()).await;
    publish_everywhere(&mut t, &v, snw()).await;
    assert!(std::path::Path::new(&t.target_path()).exists());
    unpublish_target(&t, &v).await;
    assert!(!std::path::Path::new(&t.target_path()).exists());
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n10_n11_n12_node_stage_volume_should_fail_without_id_staging_path_or_capability() {
    let mut t = Sanity::start_node().await;
    let mut nc = t.node_client();
    let pc = HashMap::from([("device".to_owned(), "/dev/mock".to_owned())]);
    let r = nc
        .node_stage_volume(NodeStageVolumeRequest {
            publish_context: pc.clone(),
            staging_target_path: t.staging_path(),
            volume_capability: Some(snw()),
            ..Default::default()
        })
        .await;
    assert_code(r, Code::InvalidArgument);
    let r = nc
        .node_stage_volume(NodeStageVolumeRequest {
            volume_id: unknown_volume_id(),
            publish_context: pc.clone(),
            volume_capability: Some(snw()),
            ..Default::default()
        })
        .await;
    assert_code(r, Code::InvalidArgument);
    let v = t.volume(create_req(&unique("sanity-stage-nocap"))).await;
    let r = nc
        .node_stage_volume(NodeStageVolumeRequest {
            volume_id: v.volume_id.clone(),
            publish_context: pc,
            staging_target_path: t.staging_path(),
            volume_context: v.volume_context.clone(),
            ..Default::default()
        })
        .await;
    assert_code(r, Code::InvalidArgument);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n13_n14_node_unstage_volume_should_fail_without_id_or_staging_path() {
    let t = Sanity::start_node().await;
    let mut nc = t.node_client();
    assert_code(
        nc.node_unstage_volume(NodeUnstageVolumeRequest {
            staging_target_path: t.staging_path(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
    );
    assert_code(
        nc.node_unstage_volume(NodeUnstageVolumeRequest {
            volume_id: unknown_volume_id(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n15_to_n18_node_get_volume_stats_errors() {
    let mut t = Sanity::start_node().await;
    let mut nc = t.node_client();
    let stats = |id: &str, path: &str| NodeGetVolumeStatsRequest {
        volume_id: id.to_owned(),
        volume_path: path.to_owned(),
        ..Default::default()
    };
    assert_code(
        nc.node_get_volume_stats(stats("", "some/path")).await,
        Code::InvalidArgument,
    );
    assert_code(
        nc.node_get_volume_stats(stats(&unknown_volume_id(), ""))
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        nc.node_get_volume_stats(stats(&unknown_volume_id(), "some/path"))
            .await,
        Code::NotFound,
    );
    let v = create(&mut t, "sanity-stats", snw()).await;
    publish_everywhere(&mut t, &v, snw()).await;
    assert_code(
        nc.node_get_volume_stats(stats(&v.volume_id, "some/path"))
            .await,
        Code::NotFound,
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n19_to_n22_node_expand_volume() {
    let mut t = Sanity::start_node().await;
    let mut nc = t.node_client();
    let expand = |id: &str, path: &str| NodeExpandVolumeRequest {
        volume_id: id.to_owned(),
        volume_path: path.to_owned(),
        capacity_range: range(EXPAND_SIZE, 0),
        volume_capability: Some(snw()),
        ..Default::default()
    };
    let target_dir = t.target_dir.display().to_string();
    assert_code(
        nc.node_expand_volume(expand("", &target_dir)).await,
        Code::InvalidArgument,
    );
    let v = create(&mut t, "sanity-nexp", snw()).await;
    assert_code(
        nc.node_expand_volume(expand(&v.volume_id, "")).await,
        Code::InvalidArgument,
    );
    assert_code(
        nc.node_expand_volume(expand(&unknown_volume_id(), "some/path"))
            .await,
        Code::NotFound,
    );
    // N22: should work if node-expand is called after node-publish.
    let r = t
        .ctl
        .controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: v.volume_id.clone(),
            capacity_range: range(EXPAND_SIZE, 0),
            volume_capability: Some(snw()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.capacity_bytes, EXPAND_SIZE);
    publish_everywhere(&mut t, &v, snw()).await;
    let out = nc
        .node_expand_volume(expand(&v.volume_id, &t.target_path()))
        .await
        .unwrap()
        .into_inner();
    assert!(
        out.capacity_bytes >= EXPAND_SIZE - 64 * MIB,
        "{}",
        out.capacity_bytes
    );
    // The filesystem really grew: df (statvfs) sees more than the old size.
    let s = nc
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: v.volume_id.clone(),
            volume_path: t.target_path(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let bytes = s
        .usage
        .iter()
        .find(|u| u.unit == Unit::Bytes as i32)
        .unwrap();
    assert!(
        bytes.total > SIZE,
        "filesystem total {} not grown past {SIZE}",
        bytes.total
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n23_should_work() {
    let mut t = Sanity::start_node().await;
    let info = t
        .node_client()
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut req = create_req(&unique("sanity-node-full"));
    req.accessibility_requirements = Some(TopologyRequirement {
        requisite: vec![info.accessible_topology.unwrap()],
        preferred: Vec::new(),
    });
    let v = t.volume(req).await;
    publish_everywhere(&mut t, &v, snw()).await;
    assert_target_healthy(&t, &v).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n24_should_be_idempotent() {
    let mut t = Sanity::start_node().await;
    let v = create(&mut t, "sanity-node-idem", snw()).await;
    stage_and_publish_ten_times(&mut t, &v, snw()).await;
    // Exactly one mount each, however often they were called.
    assert_eq!(mounts_at(&t.staging_path()), 1);
    assert_eq!(mounts_at(&t.target_path()), 1);
    t.finish().await;
}

/// Data written through the published mount survives unpublish + unstage +
/// restage (never reformatted), a snapshot of it restores into a new volume
/// that is staged and read back, and a read-only publish is read-only.
#[tokio::test(flavor = "multi_thread")]
async fn data_survives_restage_and_snapshot_restore_through_csi() {
    let mut t = Sanity::start_node().await;
    let cap = fs_cap(Mode::SingleNodeWriter, "xfs");
    let v = create(&mut t, "data", cap.clone()).await;
    publish_everywhere(&mut t, &v, cap.clone()).await;
    let file = std::path::Path::new(&t.target_path()).join("hello.txt");
    std::fs::File::create(&file)
        .unwrap()
        .write_all(b"kept across restage")
        .unwrap();
    nix_sync();

    let mut nc = t.node_client();
    nc.node_unpublish_volume(NodeUnpublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        target_path: t.target_path(),
    })
    .await
    .unwrap();
    nc.node_unstage_volume(NodeUnstageVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: t.staging_path(),
    })
    .await
    .unwrap();
    assert_eq!(mounts_at(&t.staging_path()), 0);
    nc.node_stage_volume(stage_req(&t, &v, cap.clone(), HashMap::new()))
        .await
        .unwrap();
    nc.node_publish_volume(node_publish_req(&t, &v, cap.clone(), false))
        .await
        .unwrap();
    let mut got = String::new();
    std::fs::File::open(&file)
        .unwrap()
        .read_to_string(&mut got)
        .unwrap();
    assert_eq!(got, "kept across restage");

    // Snapshot (crash-consistent: flush first), then unpublish + unstage.
    nix_sync();
    let snap = t.snapshot(&unique("data-snap"), &v.volume_id).await;
    nc.node_unpublish_volume(NodeUnpublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        target_path: t.target_path(),
    })
    .await
    .unwrap();
    nc.node_unstage_volume(NodeUnstageVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: t.staging_path(),
    })
    .await
    .unwrap();

    // Restore and read the file back through a read-only publish.
    let mut req = create_req(&unique("data-restored"));
    req.volume_capabilities = vec![cap.clone()];
    req.volume_content_source = Some(VolumeContentSource {
        r#type: Some(SourceType::Snapshot(SnapshotSource {
            snapshot_id: snap.snapshot_id.clone(),
        })),
    });
    let r = t.volume(req).await;
    nc.node_stage_volume(stage_req(&t, &r, cap.clone(), HashMap::new()))
        .await
        .unwrap();
    nc.node_publish_volume(node_publish_req(&t, &r, cap, true))
        .await
        .unwrap();
    let restored = std::path::Path::new(&t.target_path()).join("hello.txt");
    let mut got = String::new();
    std::fs::File::open(&restored)
        .unwrap()
        .read_to_string(&mut got)
        .unwrap();
    assert_eq!(got, "kept across restage");
    let e =
        std::fs::File::create(std::path::Path::new(&t.target_path()).join("new.txt")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(30), "EROFS expected: {e}");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_block_volume_is_a_device_node_at_the_target() {
    let mut t = Sanity::start_node().await;
    let cap = cap(Mode::SingleNodeWriter, true);
    let v = create(&mut t, "blk", cap.clone()).await;
    publish_everywhere(&mut t, &v, cap).await;
    let md = std::fs::metadata(t.target_path()).unwrap();
    assert!(md.file_type().is_block_device());
    assert_eq!(mounts_at(&t.target_path()), 0, "never a bind mount of /dev");
    assert_eq!(
        mounts_at(&t.staging_path()),
        0,
        "nothing staged at the staging path for block"
    );
    let mut dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(t.target_path())
        .unwrap();
    dev.write_all(b"raw block bytes").unwrap();
    dev.sync_all().unwrap();
    drop(dev);
    let mut back = [0u8; 15];
    std::fs::File::open(t.target_path())
        .unwrap()
        .read_exact(&mut back)
        .unwrap();
    assert_eq!(&back, b"raw block bytes");
    let s = t
        .node_client()
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: v.volume_id.clone(),
            volume_path: t.target_path(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.usage[0].total, SIZE);
    t.finish().await;
}

fn nix_sync() {
    // Flush dirty pages to the loop device's backing file.
    let _ = std::process::Command::new("sync").status();
}

/// Node events reach event-service: a stage whose backing file is missing
/// fails and posts ConnectionFailure for this node, with the PVC.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_stage_posts_a_node_event() {
    let mut t = Sanity::start_node().await;
    let mut req = create_req(&unique("ghost"));
    req.parameters = pvc_params("ns-node", "claim-node");
    let mut v = t.volume(req).await;
    v.volume_context.insert(
        "volumePath".into(),
        "/storage-pool/metal-csi/does-not-exist.img".into(),
    );
    let r = t
        .node_client()
        .node_stage_volume(stage_req(&t, &v, snw(), HashMap::new()))
        .await;
    assert!(r.is_err());
    let ev = t
        .stack
        .wait_for_event(std::time::Duration::from_secs(10), |e| {
            e["reason"] == "ConnectionFailure" && e["volume_id"] == v.volume_id.as_str()
        })
        .await
        .expect("ConnectionFailure in events.jsonl");
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["node_id"], t.node());
    assert_eq!(ev["pvc_namespace"], "ns-node");
    assert_eq!(ev["pvc_name"], "claim-node");
    t.finish().await;
}
