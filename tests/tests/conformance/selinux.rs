//! SELinux mounts (CSIDriver `seLinuxMount: true`): kubelet adds
//! `context="<label>"` to the mount flags of NodeStage and NodePublish, and
//! the node role must hand it to mount(2), on a real loop device here.
//! On a kernel with SELinux the staged filesystem carries the label; on one
//! without (as on this project's CI machines) the kernel refuses the option
//! and the call fails with a clear FAILED_PRECONDITION instead of the label
//! being dropped silently.

use std::path::Path;

use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use rds_proto::csi::v1::*;
use tonic::Code;

use crate::common::*;

const LABEL: &str = "system_u:object_r:container_file_t:s0:c11,c22";

fn ext4(flags: &[&str]) -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: "ext4".into(),
            mount_flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            ..Default::default()
        })),
    }
}

/// The mountinfo line of the filesystem mounted at `path`, if any.
fn mountinfo_at(path: &str) -> Option<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(path))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn selinux_context_mount_option_reaches_mount() {
    let mut t = Sanity::start_node().await;
    let context = format!("context=\"{LABEL}\"");
    let v = t.volume(create_req(&unique("pvc-selinux"))).await;
    let node = t.node().to_owned();
    let mut p = publish_req(&v.volume_id, &node);
    p.volume_capability = Some(ext4(&[&context]));
    p.volume_context = v.volume_context.clone();
    let pc = t.publish(p).await.unwrap().into_inner().publish_context;
    let stage = |flags: &[&str]| NodeStageVolumeRequest {
        volume_id: v.volume_id.clone(),
        publish_context: pc.clone(),
        staging_target_path: t.staging_path(),
        volume_capability: Some(ext4(flags)),
        volume_context: v.volume_context.clone(),
        ..Default::default()
    };
    let mut nc = t.node_client();

    // A label that is not one is refused before anything is mounted.
    let bad = nc.node_stage_volume(stage(&["context=\"a,b;c\""])).await;
    assert_code(bad, Code::InvalidArgument);
    assert_eq!(mountinfo_at(&t.staging_path()), None);

    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    let r = nc.node_stage_volume(stage(&["noatime", &context])).await;
    if selinux {
        r.unwrap();
        let line = mountinfo_at(&t.staging_path()).expect("staged");
        assert!(line.contains("context="), "label not on the mount: {line}");
    } else {
        // No LSM takes the option, so ext4 sees it and mount(2) says EINVAL:
        // the label did reach the kernel, and the answer names it.
        let s = assert_code(r, Code::FailedPrecondition);
        println!(
            "NodeStage with {context} on a kernel without SELinux: {}",
            s.message()
        );
        assert!(s.message().contains(&context), "{}", s.message());
        assert!(
            s.message().contains("SELinux is not enabled"),
            "{}",
            s.message()
        );
        assert_eq!(mountinfo_at(&t.staging_path()), None);
        // The same stage without the label mounts the filesystem made above
        // (only the label was refused; nothing else went wrong).
        nc.node_stage_volume(stage(&["noatime"])).await.unwrap();
        assert!(mountinfo_at(&t.staging_path()).is_some());
    }

    // NodePublish gets the label too; a bind mount shares the staged
    // superblock, whose label was set (or refused) at NodeStage.
    nc.node_publish_volume(NodePublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: t.staging_path(),
        target_path: t.target_path(),
        volume_capability: Some(ext4(&[&context])),
        volume_context: v.volume_context.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(mountinfo_at(&t.target_path()).is_some());
    t.finish().await;
}
