//! Storage fencing at create (`--storage-fencing=true`): a new volume, a
//! restore and a clone are created with their export already closed (the
//! no-host sentinel), so no host is admitted before attachment-service's
//! leader runs a pass. rds-sim mirrors exports into a plain directory tree
//! shaped like configfs, so the test also sees what the kernel target would
//! be told (`attr_allow_any_host`, `allowed_hosts/`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use rds_proto::agent::create_volume_request::Source;
use rds_proto::agent::{CreateSnapshotRequest, CreateVolumeRequest};
use rds_routeros::{NO_HOST_NQN, parse_allow_hosts, parse_disk_print_detail};
use tonic::Code;

const BASE: &str = "/storage-pool/metal-csi";

/// The sim with its nvmet export on a plain tree under the returned path;
/// the agent with `--storage-fencing=<on>`.
fn opts(configfs: PathBuf, on: bool) -> Opts {
    Opts {
        sim: Box::new(move |c| {
            std::fs::create_dir_all(configfs.join("nvmet/subsystems")).unwrap();
            std::fs::create_dir_all(configfs.join("nvmet/ports")).unwrap();
            c.nvmet = rds_sim::NvmetExportConfig {
                enabled: true,
                configfs_root: configfs,
                ..rds_sim::NvmetExportConfig::default()
            };
        }),
        agent_args: vec![format!("--storage-fencing={on}")],
        ..Opts::default()
    }
}

/// The disk's allow list as the RDS prints it (behind the agent's back).
async fn allow_list(env: &Env, slot: &str) -> Vec<String> {
    let out = env
        .raw(&format!("/disk print detail where slot={slot}"))
        .await;
    let disks = parse_disk_print_detail(&out).unwrap();
    assert_eq!(disks.len(), 1, "{out}");
    parse_allow_hosts(
        disks[0]
            .nvme_tcp_server_allow_host_name
            .as_deref()
            .unwrap_or(""),
    )
}

/// What the target is told for the volume's subsystem: `attr_allow_any_host`
/// and the hosts linked under `allowed_hosts/`.
fn target(configfs: &Path, slot: &str) -> (String, Vec<String>) {
    let sub = configfs.join(format!("nvmet/subsystems/nqn.2000-02.com.mikrotik:{slot}"));
    let any = std::fs::read_to_string(sub.join("attr_allow_any_host"))
        .unwrap_or_else(|e| panic!("{}: {e}", sub.display()));
    let mut hosts: Vec<String> = std::fs::read_dir(sub.join("allowed_hosts"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    hosts.sort();
    (any.trim().to_owned(), hosts)
}

fn from(id: &str, source: Source) -> CreateVolumeRequest {
    CreateVolumeRequest {
        volume_id: id.into(),
        size_bytes: GIB,
        base_path: String::new(),
        nvme_port: 0,
        source: Some(source),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_fencing_new_restored_and_cloned_volumes_admit_nobody_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let configfs = dir.path().join("config");
    let env = env(opts(configfs.clone(), true)).await;
    let mut c = env.client();
    let closed = (String::from("0"), vec![NO_HOST_NQN.to_owned()]);

    c.create_volume(create_req("pvc-fenced", GIB))
        .await
        .unwrap();
    let adds: Vec<String> = env
        .commands()
        .into_iter()
        .filter(|l| l.starts_with("/disk add"))
        .collect();
    assert_eq!(adds.len(), 1, "{adds:#?}");
    assert!(
        adds[0].ends_with(&format!(
            " nvme-tcp-server-allow-host-name=\"{NO_HOST_NQN}\""
        )),
        "the add itself closes the export: {}",
        adds[0]
    );
    assert_eq!(allow_list(&env, "pvc-fenced").await, vec![NO_HOST_NQN]);
    assert_eq!(target(&configfs, "pvc-fenced"), closed);

    // A snapshot is not exported at all; its restore and a clone are closed.
    let snap = rds_bus::SnapshotId::from_name("fence-1").to_string();
    c.create_snapshot(CreateSnapshotRequest {
        snapshot_id: snap.clone(),
        source_volume_id: "pvc-fenced".into(),
        base_path: BASE.into(),
    })
    .await
    .unwrap();
    assert!(
        !configfs
            .join(format!("nvmet/subsystems/nqn.2000-02.com.mikrotik:{snap}"))
            .exists()
    );
    c.create_volume(from("pvc-restored", Source::SourceSnapshotId(snap)))
        .await
        .unwrap();
    assert_eq!(allow_list(&env, "pvc-restored").await, vec![NO_HOST_NQN]);
    assert_eq!(target(&configfs, "pvc-restored"), closed);
    c.create_volume(from(
        "pvc-clone",
        Source::SourceVolumeId("pvc-fenced".into()),
    ))
    .await
    .unwrap();
    assert_eq!(allow_list(&env, "pvc-clone").await, vec![NO_HOST_NQN]);
    assert_eq!(target(&configfs, "pvc-clone"), closed);

    // A retried create of a volume that admits any host (made open behind
    // the agent's back, e.g. before fencing was on) is not reported fenced.
    env.raw(&format!(
        "/disk add type=file file-path={BASE}/pvc-open.img file-size=1048576 slot=pvc-open \
         nvme-tcp-export=yes nvme-tcp-server-port=4420 \
         nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:pvc-open"
    ))
    .await;
    let err = c
        .create_volume(create_req("pvc-open", MIB))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(err.message().contains("admits any host"), "{err:?}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_fencing_create_is_unchanged_and_the_export_admits_any_host() {
    let dir = tempfile::tempdir().unwrap();
    let configfs = dir.path().join("config");
    let env = env(opts(configfs.clone(), false)).await;
    let mut c = env.client();
    c.create_volume(create_req("pvc-open", GIB)).await.unwrap();
    let adds: Vec<String> = env
        .commands()
        .into_iter()
        .filter(|l| l.starts_with("/disk add"))
        .collect();
    assert_eq!(adds.len(), 1, "{adds:#?}");
    assert!(!adds[0].contains("allow-host-name"), "{}", adds[0]);
    assert!(allow_list(&env, "pvc-open").await.is_empty());
    assert_eq!(target(&configfs, "pvc-open"), ("1".to_owned(), vec![]));
    env.shutdown().await;
}
