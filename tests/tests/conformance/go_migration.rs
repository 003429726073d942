//! Migration from the Go driver: what it left behind is served unchanged.
//!
//! - A volume the Go driver created (its exact `/disk add`, sent to the RDS
//!   over a separate SSH login) and its PV as the Go driver wrote it: the
//!   nine volume attributes of the Go CreateVolume, nothing else. That PV
//!   is published, staged, written, expanded, snapshotted, unstaged and
//!   deleted by this driver.
//! - A StorageClass with the Go driver's parameters (including the ones it
//!   documented but ignored) provisions.
//!
//! The node steps use loop devices (root); as a normal user they are
//! reported as "needs root" and the controller steps still run.

use std::collections::HashMap;
use std::io::{Read, Write};

use async_ssh2_tokio::client::{AuthMethod, Client, ServerCheckMethod};
use integration_tests::Stack;
use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use rds_proto::csi::v1::*;
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;

use crate::common::*;

const GO_RDS_ADDRESS: &str = "10.42.241.3";
const GO_NVME_ADDRESS: &str = "10.42.68.1";

/// A `pvc-<uuid>` id as the external-provisioner names Go volumes.
fn go_volume_id() -> String {
    format!("pvc-{}", uuid::Uuid::new_v4().hyphenated())
}

/// The PV `volumeAttributes` the Go driver's CreateVolume returned: exactly
/// these nine keys, all strings (reference: the Go driver's volume context).
fn go_volume_attributes(id: &str) -> HashMap<String, String> {
    [
        ("rdsAddress", GO_RDS_ADDRESS.to_owned()),
        ("nvmeAddress", GO_NVME_ADDRESS.to_owned()),
        ("nvmePort", "4420".to_owned()),
        ("nqn", format!("nqn.2000-02.com.mikrotik:{id}")),
        ("volumePath", format!("/storage-pool/metal-csi/{id}.img")),
        ("ctrlLossTmo", "-1".to_owned()),
        ("reconnectDelay", "5".to_owned()),
        ("keepAliveTmo", "0".to_owned()),
        ("migrationTimeoutSeconds", "300".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The Go driver's example StorageClass `rds-nvme` parameters (Helm chart
/// defaults), including the keys it accepted and ignored.
fn go_storage_class_parameters() -> HashMap<String, String> {
    [
        ("csi.storage.k8s.io/fstype", "ext4"),
        ("nvmeAddress", GO_NVME_ADDRESS),
        ("nvmePort", "4420"),
        ("volumePath", "/storage-pool/metal-csi"),
        ("rdsAddress", GO_RDS_ADDRESS),
        ("migrationTimeoutSeconds", "300"),
        ("sshPort", "22"),
        ("nqnPrefix", "nqn.2000-02.com.mikrotik:pvc-"),
        ("fsType", "ext4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Runs one RouterOS command on the sim as the Go driver would (its own SSH
/// login with the key the stack's sim authorises).
async fn go_driver_runs(stack: &Stack, cmd: &str) -> String {
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]));
    let pem = key.to_openssh(LineEnding::LF).unwrap();
    let host = stack.sim.host_public_key().to_openssh().unwrap();
    let c = Client::connect(
        ("127.0.0.1", stack.sim.addr().port()),
        "admin",
        AuthMethod::with_key(&pem, None),
        ServerCheckMethod::with_public_key(host.split_whitespace().nth(1).unwrap()),
    )
    .await
    .unwrap();
    let r = c.execute(cmd).await.unwrap();
    assert_eq!(r.exit_status, 0, "{cmd}: {}", r.stdout);
    r.stdout
}

/// CAP_SYS_RESOURCE (bit 24) in this process's effective set.
fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

fn ext4() -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: "ext4".into(),
            ..Default::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_go_driver_pv_is_published_staged_expanded_snapshotted_and_deleted() {
    let root = nix::unistd::geteuid().is_root();
    let mut t = if root {
        Sanity::start_node().await
    } else {
        println!(
            "needs root: go_migration node steps (loop devices, mounts): controller steps only"
        );
        Sanity::start().await
    };
    let v = create_as_the_go_driver(&t).await;
    let id = v.volume_id.clone();
    let cap = ext4();
    let node = t.node().to_owned();

    let mut p = publish_req(&id, &node);
    p.volume_capability = Some(cap.clone());
    p.volume_context = v.volume_context.clone();
    let pc = t.publish(p).await.unwrap().into_inner().publish_context;
    if root {
        stage_publish_and_write(&t, &v, &cap, pc).await;
    }

    expand_on_controller(&mut t, &id, &cap).await;
    if root {
        expand_on_node_and_read_back(&t, &id, &cap).await;
    }

    // Snapshot of the Go volume (VolumeSnapshotClass of the Go driver: no parameters).
    let snap = t.snapshot(&unique("go-snap"), &id).await;
    assert_eq!(snap.source_volume_id, id);

    if root {
        unpublish_and_unstage(&t, &id).await;
    }
    unpublish_and_delete(&mut t, &id, node, &snap.snapshot_id).await;
    assert_go_volume_gone(&t, &id).await;
    t.finish().await;
}

/// A 1 GiB volume made by the Go driver's exact `/disk add`, and its PV as
/// the Go driver wrote it.
async fn create_as_the_go_driver(t: &Sanity) -> Volume {
    let id = go_volume_id();
    // What the Go driver sent for a 1 GiB volume.
    go_driver_runs(
        &t.stack,
        &format!(
            "/disk add type=file file-path=/storage-pool/metal-csi/{id}.img file-size=1G \
             slot={id} nvme-tcp-export=yes nvme-tcp-server-port=4420 \
             nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:{id}"
        ),
    )
    .await;
    let attrs = go_volume_attributes(&id);
    Volume {
        volume_id: id,
        capacity_bytes: GIB,
        volume_context: attrs,
        ..Default::default()
    }
}

async fn stage_publish_and_write(
    t: &Sanity,
    v: &Volume,
    cap: &VolumeCapability,
    pc: HashMap<String, String>,
) {
    let mut nc = t.node_client();
    nc.node_stage_volume(crate::node::stage_req(t, v, cap.clone(), pc))
        .await
        .unwrap();
    nc.node_publish_volume(crate::node::node_publish_req(t, v, cap.clone(), false))
        .await
        .unwrap();
    let file = std::path::Path::new(&t.target_path()).join("from-go.txt");
    std::fs::File::create(&file)
        .unwrap()
        .write_all(b"written after the cut-over")
        .unwrap();
}

async fn expand_on_controller(t: &mut Sanity, id: &str, cap: &VolumeCapability) {
    let grown = t
        .ctl
        .controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: id.to_owned(),
            capacity_range: range(2 * GIB, 0),
            volume_capability: Some(cap.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(grown.capacity_bytes >= 2 * GIB, "{grown:?}");
}

/// Online node expansion (or its clear refusal without CAP_SYS_RESOURCE);
/// the file written before is still there.
async fn expand_on_node_and_read_back(t: &Sanity, id: &str, cap: &VolumeCapability) {
    let mut nc = t.node_client();
    let r = nc
        .node_expand_volume(NodeExpandVolumeRequest {
            volume_id: id.to_owned(),
            volume_path: t.target_path(),
            capacity_range: range(2 * GIB, 0),
            staging_target_path: t.staging_path(),
            volume_capability: Some(cap.clone()),
            ..Default::default()
        })
        .await;
    if has_cap_sys_resource() {
        let r = r.unwrap().into_inner();
        assert!(r.capacity_bytes >= 2 * GIB, "{r:?}");
    } else {
        // This machine cannot grow a mounted ext4 (no CAP_SYS_RESOURCE):
        // the node says so instead of failing vaguely.
        let e = r.unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
        assert!(e.message().contains("CAP_SYS_RESOURCE"), "{e:?}");
        println!(
            "NodeExpand: this machine lacks CAP_SYS_RESOURCE (clear FAILED_PRECONDITION seen)"
        );
    }
    let mut got = String::new();
    std::fs::File::open(std::path::Path::new(&t.target_path()).join("from-go.txt"))
        .unwrap()
        .read_to_string(&mut got)
        .unwrap();
    assert_eq!(got, "written after the cut-over");
}

async fn unpublish_and_unstage(t: &Sanity, id: &str) {
    let mut nc = t.node_client();
    nc.node_unpublish_volume(NodeUnpublishVolumeRequest {
        volume_id: id.to_owned(),
        target_path: t.target_path(),
    })
    .await
    .unwrap();
    nc.node_unstage_volume(NodeUnstageVolumeRequest {
        volume_id: id.to_owned(),
        staging_target_path: t.staging_path(),
    })
    .await
    .unwrap();
}

/// ControllerUnpublish, then the snapshot and the volume are deleted.
async fn unpublish_and_delete(t: &mut Sanity, id: &str, node: String, snapshot_id: &str) {
    let ctl = &mut t.ctl;
    ctl.controller_unpublish_volume(ControllerUnpublishVolumeRequest {
        volume_id: id.to_owned(),
        node_id: node,
        ..Default::default()
    })
    .await
    .unwrap();
    ctl.delete_snapshot(DeleteSnapshotRequest {
        snapshot_id: snapshot_id.to_owned(),
        ..Default::default()
    })
    .await
    .unwrap();
    ctl.delete_volume(DeleteVolumeRequest {
        volume_id: id.to_owned(),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Neither the disk nor its backing file is left on the RDS.
async fn assert_go_volume_gone(t: &Sanity, id: &str) {
    let left = go_driver_runs(&t.stack, &format!("/disk print detail where slot={id}")).await;
    assert!(!left.contains(id), "the Go volume's disk is gone: {left}");
    assert!(
        !t.stack
            .sim
            .file_exists(&format!("/storage-pool/metal-csi/{id}.img")),
        "its backing file is gone too"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_go_driver_storage_class_provisions() {
    let mut t = Sanity::start().await;
    let mut req = create_req(&go_volume_id());
    req.parameters = go_storage_class_parameters();
    let v = t.volume(req).await;
    let ctx = &v.volume_context;
    // Everything the Go node plugin needs is in the context, with Go's names.
    for (k, want) in [
        ("nvmeAddress", GO_NVME_ADDRESS.to_owned()),
        ("nvmePort", "4420".to_owned()),
        ("rdsAddress", GO_RDS_ADDRESS.to_owned()),
        ("nqn", format!("nqn.2000-02.com.mikrotik:{}", v.volume_id)),
        (
            "volumePath",
            format!("/storage-pool/metal-csi/{}.img", v.volume_id),
        ),
    ] {
        assert_eq!(ctx.get(k), Some(&want), "{k} in {ctx:?}");
    }
    t.finish().await;
}
