//! Node data safety through CSI (issue: never pull a device from a live
//! consumer, never format what might hold data), node role on real loop
//! devices: a restore that reads blank is refused unless the StorageClass
//! allows it, and unstage/unpublish are refused while a process holds the
//! volume — the refusal names it, and the calls succeed once it is gone.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use rds_proto::csi::v1::volume_content_source::{SnapshotSource, Type as SourceType};
use rds_proto::csi::v1::*;
use tonic::Code;

use crate::common::*;
use crate::node::{create, node_publish_req, publish_everywhere, stage_req};

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

/// `sh` opens `path` on fd 3, says so, then becomes `sleep` (fd kept).
struct Holder(Child);

impl Holder {
    fn open(path: &str) -> Holder {
        let mut child = Command::new("sh")
            .args([
                "-c",
                "exec 3<\"$1\" && echo ready && exec sleep 600",
                "sh",
                path,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Holder(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn restore_req(name: &str, snapshot_id: &str) -> CreateVolumeRequest {
    let mut req = create_req(&unique(name));
    req.volume_capabilities = vec![ext4()];
    req.volume_content_source = Some(VolumeContentSource {
        r#type: Some(SourceType::Snapshot(SnapshotSource {
            snapshot_id: snapshot_id.to_owned(),
        })),
    });
    req
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_from_an_empty_snapshot_is_refused_not_formatted() {
    let mut t = Sanity::start_node().await;
    // Never staged: its snapshot is all zeros.
    let empty = create(&mut t, "never-used", ext4()).await;
    let snap = t.snapshot(&unique("empty-snap"), &empty.volume_id).await;
    let r = t.volume(restore_req("restored", &snap.snapshot_id)).await;
    let mut nc = t.node_client();
    let e = nc
        .node_stage_volume(stage_req(&t, &r, ext4(), HashMap::new()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains(&snap.snapshot_id), "{}", e.message());

    // A StorageClass that allows it (users who snapshot never-used volumes).
    let mut req = restore_req("restored-ok", &snap.snapshot_id);
    req.parameters
        .insert("formatBlankRestore".into(), "true".into());
    let ok = t.volume(req).await;
    assert_eq!(ok.volume_context["formatBlankRestore"], "true");
    nc.node_stage_volume(stage_req(&t, &ok, ext4(), HashMap::new()))
        .await
        .unwrap();
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unpublish_and_unstage_are_refused_while_a_process_holds_a_file() {
    let mut t = Sanity::start_node().await;
    let v = create(&mut t, "held", ext4()).await;
    publish_everywhere(&mut t, &v, ext4()).await;
    let file = format!("{}/held.txt", t.target_path());
    std::fs::write(&file, b"in use").unwrap();
    let mut nc = t.node_client();
    let unpublish = NodeUnpublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        target_path: t.target_path(),
    };
    let unstage = NodeUnstageVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: t.staging_path(),
    };

    let holder = Holder::open(&file);
    let e = nc
        .node_unpublish_volume(unpublish.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains(&format!("pid {}", holder.0.id())),
        "{}",
        e.message()
    );
    drop(holder);
    nc.node_unpublish_volume(unpublish).await.unwrap();

    // The same file through the staging mount.
    let holder = Holder::open(&format!("{}/held.txt", t.staging_path()));
    let e = nc.node_unstage_volume(unstage.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    // The pid, not the command name: "ready" is printed just before the
    // shell execs sleep, so the name may still read "sh".
    assert!(
        e.message().contains(&format!("pid {}", holder.0.id())),
        "{}",
        e.message()
    );
    assert_eq!(
        std::fs::read(format!("{}/held.txt", t.staging_path())).unwrap(),
        b"in use",
        "still mounted, data intact"
    );
    drop(holder);
    nc.node_unstage_volume(unstage).await.unwrap();
    // Restage: the data is there (never reformatted).
    nc.node_stage_volume(stage_req(&t, &v, ext4(), HashMap::new()))
        .await
        .unwrap();
    nc.node_publish_volume(node_publish_req(&t, &v, ext4(), false))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"in use");
    t.finish().await;
}
