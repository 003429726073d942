//! The Kubernetes CSI sidecars' calls, replayed from Rust.
//!
//! The real sidecars are Go programs and this machine has neither a Go
//! toolchain nor a container runtime, so each test here issues the calls one
//! sidecar (or kubelet) makes, in its order and with the fields it fills in,
//! and asserts the answers carry what that caller reads next. The call
//! sequences were read from the sources of the releases `deploy/base` runs
//! (docs/conformance.md §9):
//!
//! - external-provisioner v6.3.0 (`--extra-create-metadata --default-fstype=ext4`)
//! - external-attacher v4.12.0
//! - external-resizer v2.2.1
//! - external-snapshotter v8.6.0 (the csi-snapshotter sidecar)
//! - node-driver-registrar v2.17.0
//! - kubelet's CSI client (`pkg/volume/csi/csi_client.go`, a recent release:
//!   NodeExpandVolume carries the staging path and the capability)
//!
//! Nothing here is the sidecars' code: only the shape of their requests.
//! The node parts run the node role on loop devices and need root, like the
//! rest of the node cases.

use std::collections::{HashMap, HashSet};

use rds_proto::csi::v1::controller_service_capability::rpc::Type as CtlRpc;
use rds_proto::csi::v1::node_service_capability::rpc::Type as NodeRpc;
use rds_proto::csi::v1::plugin_capability::service::Type as ServiceType;
use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use rds_proto::csi::v1::volume_content_source::{SnapshotSource, Type as SourceType};
use rds_proto::csi::v1::volume_usage::Unit;
use rds_proto::csi::v1::*;
use tonic::Code;

use crate::common::*;

/// The key the provisioner adds to every PV's volumeAttributes next to the
/// driver's volume_context; kubelet and the attacher hand it back to us.
const PROVISIONER_IDENTITY: &str = "storage.kubernetes.io/csiProvisionerIdentity";

/// Kubernetes access modes, as a PVC names them.
#[derive(Clone, Copy)]
enum PvcMode {
    Rwo,
    Rwop,
    Rwx,
}

/// What the plugin and its controller and node services advertise.
struct Caps {
    services: HashSet<ServiceType>,
    ctl: HashSet<CtlRpc>,
}

/// The sidecars' common start: Probe (until ready), GetPluginInfo,
/// GetPluginCapabilities, ControllerGetCapabilities.
async fn sidecar_start(t: &mut Sanity) -> (String, Caps) {
    let probe = t.ident.probe(ProbeRequest {}).await.unwrap().into_inner();
    // ProbeForever treats an absent `ready` as ready, `false` as "ask again".
    assert_ne!(probe.ready, Some(false), "the driver must come up ready");
    let info = t
        .ident
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        info.name, "rds.csi.srvlab.io",
        "the CSIDriver object's name"
    );
    assert!(!info.vendor_version.is_empty());
    let services = t
        .ident
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities
        .into_iter()
        .filter_map(|c| match c.r#type {
            Some(plugin_capability::Type::Service(s)) => ServiceType::try_from(s.r#type).ok(),
            _ => None,
        })
        .collect();
    let ctl = t
        .ctl
        .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities
        .into_iter()
        .filter_map(|c| match c.r#type {
            Some(controller_service_capability::Type::Rpc(r)) => CtlRpc::try_from(r.r#type).ok(),
            _ => None,
        })
        .collect();
    (info.name, Caps { services, ctl })
}

/// The CSI access mode a sidecar (or kubelet) derives from the PVC's, by
/// whether SINGLE_NODE_MULTI_WRITER is advertised.
fn csi_mode(m: PvcMode, snmw: bool) -> Mode {
    match (m, snmw) {
        (PvcMode::Rwo, true) => Mode::SingleNodeMultiWriter,
        (PvcMode::Rwo, false) => Mode::SingleNodeWriter,
        (PvcMode::Rwop, true) => Mode::SingleNodeSingleWriter,
        (PvcMode::Rwop, false) => Mode::SingleNodeWriter,
        (PvcMode::Rwx, _) => Mode::MultiNodeMultiWriter,
    }
}

/// A filesystem capability as the sidecars build it from a PV: fs type and
/// the StorageClass's mountOptions, nothing else.
fn fs_cap(mode: Mode, mount_flags: &[&str]) -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: "ext4".into(),
            mount_flags: mount_flags.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        })),
    }
}

/// The capability of a PV: raw block for `volumeMode: Block`, else ext4.
fn pv_cap(mode: Mode, block: bool) -> VolumeCapability {
    if block {
        VolumeCapability {
            access_mode: Some(AccessMode { mode: mode as i32 }),
            access_type: Some(AccessType::Block(BlockVolume {})),
        }
    } else {
        fs_cap(mode, &[])
    }
}

/// A PV the way the provisioner writes it.
struct Pv {
    handle: String,
    /// `volumeAttributes`: the driver's volume_context plus the identity key.
    attributes: HashMap<String, String>,
    capacity: i64,
    mode: Mode,
    /// `volumeMode: Block`.
    block: bool,
}

/// The provisioner's CreateVolume for a PVC: name `pvc-<uid>`, the
/// StorageClass parameters with the `csi.storage.k8s.io/` keys it knows
/// stripped (fstype moves into the capability) and the three metadata keys
/// added, one capability per PVC access mode, only `required_bytes`, no
/// secrets and no topology (the driver does not offer it).
fn provision_req(
    caps: &Caps,
    namespace: &str,
    pvc: &str,
    size: i64,
    mode: PvcMode,
    source: Option<VolumeContentSource>,
) -> CreateVolumeRequest {
    let name = format!("pvc-{}", uuid::Uuid::new_v4());
    let snmw = caps.ctl.contains(&CtlRpc::SingleNodeMultiWriter);
    let mut parameters = HashMap::from([(
        "volumePath".to_owned(),
        "/storage-pool/metal-csi".to_owned(),
    )]);
    parameters.insert("csi.storage.k8s.io/pvc/name".into(), pvc.into());
    parameters.insert("csi.storage.k8s.io/pvc/namespace".into(), namespace.into());
    parameters.insert("csi.storage.k8s.io/pv/name".into(), name.clone());
    CreateVolumeRequest {
        name,
        capacity_range: Some(CapacityRange {
            required_bytes: size,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![fs_cap(csi_mode(mode, snmw), &[])],
        parameters,
        secrets: HashMap::new(),
        volume_content_source: source,
        accessibility_requirements: None,
        ..Default::default()
    }
}

/// A claim of 1 GiB, filesystem, no data source, provisioned as the
/// provisioner would.
async fn provision_claim(
    t: &mut Sanity,
    caps: &Caps,
    (namespace, name): (&str, &str),
    mode: PvcMode,
) -> Pv {
    provision(t, provision_req(caps, namespace, name, GIB, mode, None)).await
}

/// The attacher attaches `pv` to this node: (node id, publish_context).
async fn attach_here(t: &mut Sanity, caps: &Caps, pv: &Pv) -> (String, HashMap<String, String>) {
    let node = t.node().to_owned();
    let pc = attach(t, caps, pv, &node).await;
    (node, pc)
}

/// CreateVolume until it is not ABORTED (a copy still running: the
/// provisioner retries with the same request), then checks what the
/// provisioner reads: an id, a capacity not below the request (it deletes
/// the volume otherwise), the content source when it asked for one (same),
/// and builds the PV.
async fn provision(t: &mut Sanity, req: CreateVolumeRequest) -> Pv {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let v = loop {
        match t.create_volume(req.clone()).await {
            Ok(r) => break r.into_inner().volume.expect("a volume"),
            Err(s) if s.code() == Code::Aborted && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(s) => panic!("CreateVolume({}): {s}", req.name),
        }
    };
    assert_eq!(v.volume_id, req.name, "docs/csi.md §2.2: id = name");
    let want = req.capacity_range.as_ref().unwrap().required_bytes;
    assert!(v.capacity_bytes >= want, "{} < {want}", v.capacity_bytes);
    if let Some(src) = &req.volume_content_source {
        assert_eq!(v.content_source.as_ref(), Some(src), "the source echoed");
    } else {
        assert!(v.content_source.is_none());
    }
    assert!(
        !v.volume_context.contains_key(PROVISIONER_IDENTITY),
        "the driver must not write the provisioner's own key"
    );
    let mut attributes = HashMap::from([(
        PROVISIONER_IDENTITY.to_owned(),
        "1765091000000-1234-rds.csi.srvlab.io".to_owned(),
    )]);
    attributes.extend(v.volume_context);
    let mode = Mode::try_from(req.volume_capabilities[0].access_mode.unwrap().mode).unwrap();
    Pv {
        handle: v.volume_id,
        attributes,
        capacity: v.capacity_bytes,
        mode,
        block: matches!(
            req.volume_capabilities[0].access_type,
            Some(AccessType::Block(_))
        ),
    }
}

/// The provisioner's DeleteVolume: the handle only, no secrets; it retries
/// on any error, so the repeat must be OK too.
async fn deprovision(t: &mut Sanity, pv: &Pv) {
    let path = pv.attributes["volumePath"].clone();
    t.delete_volume(&pv.handle).await.unwrap();
    t.delete_volume(&pv.handle).await.unwrap();
    assert!(!t.stack.sim.file_exists(&path), "{path} still on the RDS");
}

/// The attacher's ControllerPublishVolume for a VolumeAttachment: the PV's
/// handle and volumeAttributes, the node id from CSINode, the capability
/// from the PV, `readonly` only if PUBLISH_READONLY is advertised.
async fn attach(t: &mut Sanity, caps: &Caps, pv: &Pv, node: &str) -> HashMap<String, String> {
    // The PV's spec.csi.readOnly (the provisioner leaves it false for RWO).
    let pv_read_only = false;
    let readonly = pv_read_only && caps.ctl.contains(&CtlRpc::PublishReadonly);
    let req = ControllerPublishVolumeRequest {
        volume_id: pv.handle.clone(),
        node_id: node.to_owned(),
        volume_capability: Some(pv_cap(pv.mode, pv.block)),
        readonly,
        secrets: HashMap::new(),
        volume_context: pv.attributes.clone(),
    };
    let pc = t.publish(req).await.unwrap().into_inner().publish_context;
    // Stored in VolumeAttachment.status.attachmentMetadata and handed to
    // NodeStage by kubelet: the Go driver's keys, `fs_type` only for a
    // filesystem (docs/csi.md §4).
    for k in ["nvme_address", "nvme_port", "nvme_nqn"] {
        assert!(pc.get(k).is_some_and(|v| !v.is_empty()), "{k} in {pc:?}");
    }
    assert_eq!(
        pc.get("fs_type").map(String::as_str),
        (!pv.block).then_some("ext4")
    );
    assert_eq!(
        pc["nvme_nqn"],
        format!("nqn.2000-02.com.mikrotik:{}", pv.handle.to_lowercase())
    );
    pc
}

/// The attacher's reconciler: ListVolumes page by page (`--max-entries`,
/// 0 = no limit) into volume → published nodes.
async fn published_nodes(t: &mut Sanity, max_entries: i32) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    let mut token = String::new();
    for _ in 0..1000 {
        let r = t
            .ctl
            .list_volumes(ListVolumesRequest {
                max_entries,
                starting_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        for e in r.entries {
            if let (Some(v), Some(s)) = (e.volume, e.status) {
                out.insert(v.volume_id, s.published_node_ids);
            }
        }
        if r.next_token.is_empty() {
            return out;
        }
        token = r.next_token;
    }
    panic!("ListVolumes never ended its paging");
}

#[tokio::test(flavor = "multi_thread")]
async fn external_provisioner_v6_3_0_provisions_and_deletes() {
    let mut t = Sanity::start().await;
    let (_, caps) = sidecar_start(&mut t).await;
    assert!(caps.services.contains(&ServiceType::ControllerService));
    assert!(caps.ctl.contains(&CtlRpc::CreateDeleteVolume));
    // No topology offered: the provisioner then sends no requirements and
    // writes no node affinity.
    assert!(
        !caps
            .services
            .contains(&ServiceType::VolumeAccessibilityConstraints)
    );

    // 1.5 GiB: the PVC's request, as bytes.
    let req = provision_req(&caps, "apps", "web-data", 3 * GIB / 2, PvcMode::Rwo, None);
    let pv = provision(&mut t, req.clone()).await;
    assert_eq!(pv.attributes["csi.storage.k8s.io/pvc/name"], "web-data");
    assert_eq!(pv.attributes["csi.storage.k8s.io/pvc/namespace"], "apps");
    assert!(
        !pv.attributes.contains_key("csi.storage.k8s.io/pv/name"),
        "{:?}",
        pv.attributes
    );
    // The provisioner's retry after a timeout sends the same request again.
    let again = t.ctl.create_volume(req).await.unwrap().into_inner();
    let again = again.volume.unwrap();
    assert_eq!(again.volume_id, pv.handle);
    assert_eq!(again.capacity_bytes, pv.capacity);

    // A ReadWriteOncePod claim.
    let pod = provision_claim(&mut t, &caps, ("apps", "solo"), PvcMode::Rwop).await;

    deprovision(&mut t, &pod).await;
    deprovision(&mut t, &pv).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn external_attacher_v4_12_0_attaches_reconciles_and_detaches() {
    let mut t = Sanity::start().await;
    let (_, caps) = sidecar_start(&mut t).await;
    assert!(caps.ctl.contains(&CtlRpc::PublishUnpublishVolume));
    let pv = provision_claim(&mut t, &caps, ("apps", "db"), PvcMode::Rwo).await;

    let (node, pc) = attach_here(&mut t, &caps, &pv).await;
    // The VolumeAttachment is synced again later: the same call, same answer.
    assert_eq!(attach(&mut t, &caps, &pv, &node).await, pc);

    // With LIST_VOLUMES_PUBLISHED_NODES the attacher checks every attached
    // VolumeAttachment against ListVolumes; a node missing there would be
    // re-attached (or the VA marked detached).
    if caps.ctl.contains(&CtlRpc::ListVolumes)
        && caps.ctl.contains(&CtlRpc::ListVolumesPublishedNodes)
    {
        for max in [0, 1] {
            let p = published_nodes(&mut t, max).await;
            assert_eq!(p.get(&pv.handle), Some(&vec![node.clone()]), "max {max}");
        }
    }

    // Detach: handle and node id, no secrets; repeated on retry.
    for _ in 0..2 {
        t.ctl
            .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                volume_id: pv.handle.clone(),
                node_id: node.clone(),
                secrets: HashMap::new(),
            })
            .await
            .unwrap();
    }
    if caps.ctl.contains(&CtlRpc::ListVolumesPublishedNodes) {
        let p = published_nodes(&mut t, 0).await;
        assert_eq!(p.get(&pv.handle), Some(&vec![]));
    }
    deprovision(&mut t, &pv).await;
    t.finish().await;
}

/// The snapshotter's CreateSnapshot: name `snapshot-<uid of the
/// VolumeSnapshot>`, the class parameters (none here) plus, with the
/// sidecar's --extra-create-metadata, the three snapshot keys.
fn snapshotter_parameters() -> HashMap<String, String> {
    HashMap::from([
        (
            "csi.storage.k8s.io/volumesnapshot/name".to_owned(),
            "db-snap".to_owned(),
        ),
        (
            "csi.storage.k8s.io/volumesnapshot/namespace".to_owned(),
            "apps".to_owned(),
        ),
        (
            "csi.storage.k8s.io/volumesnapshotcontent/name".to_owned(),
            format!("snapcontent-{}", uuid::Uuid::new_v4()),
        ),
    ])
}

/// Until ready_to_use the snapshotter polls: CreateSnapshot again while the
/// content has no handle (same id, same time), then ListSnapshots by id
/// (LIST_SNAPSHOTS advertised).
async fn polls_until_ready_then_lists(
    t: &mut Sanity,
    caps: &Caps,
    req: &CreateSnapshotRequest,
    snap: &Snapshot,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut ready = snap.ready_to_use;
    while !ready {
        assert!(std::time::Instant::now() < deadline, "never ready_to_use");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let again = t.ctl.create_snapshot(req.clone()).await.unwrap();
        let again = again.into_inner().snapshot.unwrap();
        assert_eq!(again.snapshot_id, snap.snapshot_id);
        assert_eq!(again.creation_time, snap.creation_time, "stable time");
        ready = again.ready_to_use;
    }
    assert!(caps.ctl.contains(&CtlRpc::ListSnapshots));
    let list = t
        .ctl
        .list_snapshots(ListSnapshotsRequest {
            snapshot_id: snap.snapshot_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.entries.len(), 1, "{list:?}");
    let listed = list.entries[0].snapshot.clone().unwrap();
    assert!(listed.ready_to_use);
    assert_eq!(listed.creation_time, snap.creation_time);
    assert_eq!(listed.size_bytes, snap.size_bytes);
    assert!(listed.group_snapshot_id.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn csi_snapshotter_v8_6_0_snapshots_and_the_provisioner_restores() {
    let mut t = Sanity::start().await;
    let (driver, caps) = sidecar_start(&mut t).await;
    assert!(caps.ctl.contains(&CtlRpc::CreateDeleteSnapshot));
    let pv = provision_claim(&mut t, &caps, ("apps", "db"), PvcMode::Rwo).await;

    // CreateSnapshot for a VolumeSnapshotContent: name `snapshot-<uid of the
    // VolumeSnapshot>`, the class parameters (none here) plus, with the
    // sidecar's --extra-create-metadata, the three snapshot keys.
    let parameters = snapshotter_parameters();
    let name = format!("snapshot-{}", uuid::Uuid::new_v4());
    // The sidecar asks for the driver name right before each CreateSnapshot.
    let info = t.ident.get_plugin_info(GetPluginInfoRequest {}).await;
    assert_eq!(info.unwrap().into_inner().name, driver);
    let req = CreateSnapshotRequest {
        source_volume_id: pv.handle.clone(),
        name: name.clone(),
        parameters,
        secrets: HashMap::new(),
    };
    let snap = t
        .create_snapshot(req.clone())
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    // What it writes into the content's status.
    assert!(!snap.snapshot_id.is_empty());
    assert_eq!(snap.source_volume_id, pv.handle);
    assert!(snap.creation_time.is_some(), "creationTime");
    assert!(snap.size_bytes >= pv.capacity, "restoreSize");

    polls_until_ready_then_lists(&mut t, &caps, &req, &snap).await;

    // The provisioner restores a PVC from it: the content source must come
    // back in the answer, or it deletes the new volume again.
    let source = VolumeContentSource {
        r#type: Some(SourceType::Snapshot(SnapshotSource {
            snapshot_id: snap.snapshot_id.clone(),
        })),
    };
    let restored = provision(
        &mut t,
        provision_req(&caps, "apps", "db-restore", GIB, PvcMode::Rwo, Some(source)),
    )
    .await;
    deprovision(&mut t, &restored).await;

    // DeleteSnapshot: the handle, no secrets; repeated on retry.
    t.delete_snapshot(&snap.snapshot_id).await.unwrap();
    t.delete_snapshot(&snap.snapshot_id).await.unwrap();
    let gone = t
        .ctl
        .list_snapshots(ListSnapshotsRequest {
            snapshot_id: snap.snapshot_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(gone.entries.is_empty(), "{gone:?}");
    deprovision(&mut t, &pv).await;
    t.finish().await;
}

/// Kubelet's paths for one pod volume under the test's directory.
struct KubeletPaths {
    staging: String,
    target: String,
}

fn kubelet_paths(t: &Sanity, pv: &Pv) -> KubeletPaths {
    let root = t.stack.dir.path().join("kubelet");
    if pv.block {
        // kubelet: plugins/kubernetes.io/csi/volumeDevices/{staging/<pv>,
        // publish/<pv>/<pod uid>}; it creates the staging dir and the
        // publish dir's parent, the driver creates the device file.
        let devices = root.join("plugins/kubernetes.io/csi/volumeDevices");
        let staging = devices.join("staging").join(&pv.handle);
        let parent = devices.join("publish").join(&pv.handle);
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::create_dir_all(&parent).unwrap();
        return KubeletPaths {
            staging: staging.display().to_string(),
            target: parent
                .join(uuid::Uuid::new_v4().to_string())
                .display()
                .to_string(),
        };
    }
    // kubelet: plugins/kubernetes.io/csi/<driver>/<sha256 of the handle>/globalmount,
    // created before NodeStage; the pod's .../mount is left to the driver.
    let hash = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let staging = root
        .join("plugins/kubernetes.io/csi/rds.csi.srvlab.io")
        .join(hash)
        .join("globalmount");
    std::fs::create_dir_all(&staging).unwrap();
    let pod_dir = root
        .join("pods")
        .join(uuid::Uuid::new_v4().to_string())
        .join("volumes/kubernetes.io~csi")
        .join(&pv.handle);
    std::fs::create_dir_all(&pod_dir).unwrap();
    KubeletPaths {
        staging: staging.display().to_string(),
        target: pod_dir.join("mount").display().to_string(),
    }
}

/// Kubelet asks NodeGetCapabilities before each node call.
async fn node_caps(t: &Sanity) -> HashSet<NodeRpc> {
    t.node_client()
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities
        .into_iter()
        .filter_map(|c| match c.r#type {
            Some(node_service_capability::Type::Rpc(r)) => NodeRpc::try_from(r.r#type).ok(),
            _ => None,
        })
        .collect()
}

/// Kubelet's NodeGetVolumeStats on the pod path: BYTES and INODES usage,
/// and the condition when VOLUME_CONDITION is advertised.
async fn kubelet_stats(t: &Sanity, pv: &Pv, p: &KubeletPaths) -> (i64, i64) {
    let nc = node_caps(t).await;
    assert!(nc.contains(&NodeRpc::GetVolumeStats));
    let r = t
        .node_client()
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: pv.handle.clone(),
            volume_path: p.target.clone(),
            staging_target_path: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let bytes = r
        .usage
        .iter()
        .find(|u| u.unit == Unit::Bytes as i32)
        .expect("BYTES usage");
    if pv.block {
        // A raw device: its size is all kubelet can show.
        assert_eq!(bytes.total, pv.capacity, "{r:?}");
    } else {
        let inodes = r
            .usage
            .iter()
            .find(|u| u.unit == Unit::Inodes as i32)
            .expect("INODES usage");
        assert!(bytes.total > 0 && bytes.used >= 0 && bytes.available > 0);
        assert!(bytes.used + bytes.available <= bytes.total);
        assert!(inodes.total > 0 && inodes.available > 0);
    }
    if nc.contains(&NodeRpc::VolumeCondition) {
        let c = r.volume_condition.expect("a condition");
        assert!(!c.abnormal, "{}", c.message);
    }
    (bytes.total, bytes.used)
}

/// Kubelet: NodeStage with the attachment metadata and the PV's attributes,
/// then NodePublish to the pod path (capability built the same way; the
/// access mode mapped by the node's SINGLE_NODE_MULTI_WRITER).
async fn kubelet_mount(
    t: &Sanity,
    pv: &Pv,
    pc: HashMap<String, String>,
    mode: PvcMode,
) -> KubeletPaths {
    let p = kubelet_paths(t, pv);
    let nc = node_caps(t).await;
    assert!(nc.contains(&NodeRpc::StageUnstageVolume));
    let cap = pv_cap(
        csi_mode(mode, nc.contains(&NodeRpc::SingleNodeMultiWriter)),
        pv.block,
    );
    let mut node = t.node_client();
    node.node_stage_volume(NodeStageVolumeRequest {
        volume_id: pv.handle.clone(),
        publish_context: pc.clone(),
        staging_target_path: p.staging.clone(),
        volume_capability: Some(cap.clone()),
        secrets: HashMap::new(),
        volume_context: pv.attributes.clone(),
    })
    .await
    .unwrap();
    node_caps(t).await;
    node.node_publish_volume(NodePublishVolumeRequest {
        volume_id: pv.handle.clone(),
        publish_context: pc,
        staging_target_path: p.staging.clone(),
        target_path: p.target.clone(),
        volume_capability: Some(cap),
        readonly: false,
        secrets: HashMap::new(),
        volume_context: pv.attributes.clone(),
    })
    .await
    .unwrap();
    p
}

/// Kubelet's teardown: NodeUnpublish, NodeUnstage, each repeated as after a
/// kubelet restart.
async fn kubelet_unmount(t: &Sanity, pv: &Pv, p: &KubeletPaths) {
    let mut node = t.node_client();
    for _ in 0..2 {
        node.node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: pv.handle.clone(),
            target_path: p.target.clone(),
        })
        .await
        .unwrap();
    }
    for _ in 0..2 {
        node.node_unstage_volume(NodeUnstageVolumeRequest {
            volume_id: pv.handle.clone(),
            staging_target_path: p.staging.clone(),
        })
        .await
        .unwrap();
    }
}

async fn detach(t: &mut Sanity, pv: &Pv) {
    t.ctl
        .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
            volume_id: pv.handle.clone(),
            node_id: t.node().to_owned(),
            secrets: HashMap::new(),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn node_driver_registrar_v2_17_0_and_kubelet_registration() {
    let t = Sanity::start_node().await;
    // The registrar asks only for the driver name, and hands kubelet the socket.
    let name = t
        .ident
        .clone()
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .name;
    assert_eq!(name, "rds.csi.srvlab.io");
    // Kubelet then calls NodeGetInfo and writes CSINode (node id, allocatable
    // count) and the topology segments as Node labels.
    let info = t
        .node_client()
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, t.node());
    assert!(info.node_id.len() <= 192, "CSINode nodeID length");
    assert_eq!(info.max_volumes_per_node, 64, "docs/csi.md §7");
    for (k, v) in info.accessible_topology.iter().flat_map(|t| &t.segments) {
        assert!(label_key_ok(k), "topology key {k:?} is no label key");
        assert!(label_value_ok(v), "topology value {v:?} is no label value");
    }
    t.finish().await;
}

/// A Kubernetes label value: at most 63 characters of `[A-Za-z0-9._-]`,
/// starting and ending alphanumeric (or empty).
fn label_value_ok(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// A label key: optional DNS-subdomain prefix and `/`, then a name shaped
/// like a non-empty label value.
fn label_key_ok(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && label_value_ok(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn kubelet_stages_publishes_reports_stats_and_tears_down() {
    let mut t = Sanity::start_node().await;
    let (_, caps) = sidecar_start(&mut t).await;
    let pv = provision_claim(&mut t, &caps, ("apps", "web"), PvcMode::Rwop).await;
    let (_, pc) = attach_here(&mut t, &caps, &pv).await;
    let p = kubelet_mount(&t, &pv, pc, PvcMode::Rwop).await;

    // The pod writes; kubelet's stats see the space used.
    let (total, used) = kubelet_stats(&t, &pv, &p).await;
    assert!(total <= pv.capacity, "{total} > {}", pv.capacity);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(std::path::Path::new(&p.target).join("data")).unwrap();
        f.write_all(&vec![7u8; 8 << 20]).unwrap();
        f.sync_all().unwrap();
    }
    let (_, used_after) = kubelet_stats(&t, &pv, &p).await;
    assert!(used_after >= used + (8 << 20), "{used} -> {used_after}");

    kubelet_unmount(&t, &pv, &p).await;
    detach(&mut t, &pv).await;
    deprovision(&mut t, &pv).await;
    t.finish().await;
}

/// CAP_SYS_RESOURCE (bit 24) in this process's effective set: resize2fs
/// needs it to grow a mounted filesystem.
fn has_cap_sys_resource() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// Kubelet's resize: NodeGetCapabilities (EXPAND_VOLUME), then
/// NodeExpandVolume with the pod path, the staging path, the PV's new size
/// and the capability; it records capacity_bytes as the PVC's capacity
/// (0 = the size it asked for).
async fn kubelet_expand(
    t: &Sanity,
    pv: &Pv,
    p: &KubeletPaths,
    size: i64,
) -> Result<(), tonic::Status> {
    let nc = node_caps(t).await;
    assert!(nc.contains(&NodeRpc::ExpandVolume));
    let cap = fs_cap(
        csi_mode(PvcMode::Rwo, nc.contains(&NodeRpc::SingleNodeMultiWriter)),
        &[],
    );
    let ne = t
        .node_client()
        .node_expand_volume(NodeExpandVolumeRequest {
            volume_id: pv.handle.clone(),
            volume_path: p.target.clone(),
            capacity_range: Some(CapacityRange {
                required_bytes: size,
                limit_bytes: 0,
            }),
            staging_target_path: p.staging.clone(),
            volume_capability: Some(cap),
            secrets: HashMap::new(),
        })
        .await?
        .into_inner();
    assert!(
        ne.capacity_bytes == 0 || ne.capacity_bytes >= size,
        "{}",
        ne.capacity_bytes
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn external_resizer_v2_2_1_and_kubelet_expand_online() {
    let mut t = Sanity::start_node().await;
    // The resizer's start: driver name, controller service, EXPAND_VOLUME
    // (else a node-only resize), then SINGLE_NODE_MULTI_WRITER for the mode.
    let (_, caps) = sidecar_start(&mut t).await;
    assert!(caps.ctl.contains(&CtlRpc::ExpandVolume));
    let pv = provision_claim(&mut t, &caps, ("apps", "grow"), PvcMode::Rwo).await;
    let (_, pc) = attach_here(&mut t, &caps, &pv).await;
    let p = kubelet_mount(&t, &pv, pc, PvcMode::Rwo).await;
    let (total_before, _) = kubelet_stats(&t, &pv, &p).await;
    std::fs::write(std::path::Path::new(&p.target).join("before-grow"), b"kept").unwrap();

    // The PVC asks for 2 GiB: ControllerExpandVolume with the handle, only
    // required_bytes, the PV's capability and no secrets.
    let new_size = 2 * GIB;
    let r = t
        .ctl
        .controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: pv.handle.clone(),
            capacity_range: Some(CapacityRange {
                required_bytes: new_size,
                limit_bytes: 0,
            }),
            secrets: HashMap::new(),
            volume_capability: Some(fs_cap(pv.mode, &[])),
        })
        .await
        .unwrap()
        .into_inner();
    // The resizer writes capacity_bytes to the PV and, when the node must
    // grow the filesystem, leaves the PVC waiting for kubelet.
    assert!(r.capacity_bytes >= new_size, "{}", r.capacity_bytes);
    assert!(r.node_expansion_required, "a filesystem needs the node");

    let grown = r.capacity_bytes;
    let online = kubelet_expand(&t, &pv, &p, grown).await;
    let (total_after, _) = kubelet_stats(&t, &pv, &p).await;
    match online {
        Ok(()) => assert!(
            total_after > total_before + GIB / 2,
            "the filesystem grew: {total_before} -> {total_after}"
        ),
        Err(e) => {
            // This machine cannot grow a mounted ext4 (no CAP_SYS_RESOURCE,
            // docs/conformance.md §9): the node says so with a clear
            // FAILED_PRECONDITION (kubelet keeps the resize pending and
            // retries) and the mounted volume is left as it was.
            assert!(!has_cap_sys_resource(), "online grow failed: {e:?}");
            assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
            assert!(e.message().contains("CAP_SYS_RESOURCE"), "{e:?}");
            assert_eq!(total_after, total_before);
            println!(
                "online NodeExpand: this machine lacks CAP_SYS_RESOURCE (clear FAILED_PRECONDITION seen)"
            );
        }
    }
    assert_eq!(
        std::fs::read(std::path::Path::new(&p.target).join("before-grow")).unwrap(),
        b"kept"
    );

    kubelet_unmount(&t, &pv, &p).await;
    detach(&mut t, &pv).await;
    deprovision(&mut t, &pv).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubelet_maps_a_raw_block_rwx_volume_for_kubevirt() {
    let mut t = Sanity::start_node().await;
    let (_, caps) = sidecar_start(&mut t).await;
    // A `volumeMode: Block`, ReadWriteMany claim (a KubeVirt disk): the
    // provisioner sends a block capability and no fs type.
    let mut req = provision_req(&caps, "vms", "disk-0", GIB, PvcMode::Rwx, None);
    req.volume_capabilities = vec![pv_cap(Mode::MultiNodeMultiWriter, true)];
    let pv = provision(&mut t, req).await;
    assert!(pv.block);
    let (_, pc) = attach_here(&mut t, &caps, &pv).await;
    let p = kubelet_mount(&t, &pv, pc, PvcMode::Rwx).await;
    let md = std::fs::symlink_metadata(&p.target).unwrap();
    assert!(
        std::os::unix::fs::FileTypeExt::is_block_device(&md.file_type()),
        "a device node at the pod's path"
    );
    kubelet_stats(&t, &pv, &p).await;
    kubelet_unmount(&t, &pv, &p).await;
    assert!(!std::path::Path::new(&p.target).exists());
    detach(&mut t, &pv).await;
    deprovision(&mut t, &pv).await;
    t.finish().await;
}
