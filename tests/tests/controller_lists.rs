//! The controller path end to end (csi-frontend → rds-agent → rds-sim over
//! SSH, event-service with its local sink): CSI ListVolumes pages over
//! more volumes than one agent page holds, and a CreateVolume refused
//! because an orphan file sits at the target path posts a Warning event on
//! the PVC naming the file and the command that inspects it
//! (docs/decisions.md §9.5, §9.12).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use integration_tests::{Stack, StackOpts};
use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use rds_proto::csi::v1::{
    CapacityRange, CreateVolumeRequest, ListVolumesRequest, VolumeCapability,
};
use tonic::Code;

const GIB: i64 = 1 << 30;

fn create_req(name: &str, params: HashMap<String, String>) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.to_owned(),
        capacity_range: Some(CapacityRange {
            required_bytes: GIB,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![VolumeCapability {
            access_mode: Some(AccessMode {
                mode: Mode::SingleNodeWriter.into(),
            }),
            access_type: Some(AccessType::Mount(MountVolume::default())),
        }],
        parameters: params,
        ..Default::default()
    }
}

async fn stack() -> Stack {
    let opts = StackOpts {
        sim: Box::new(|c| c.sync_state = false),
        ..StackOpts::default()
    };
    Stack::start_with(opts).await.unwrap()
}

/// 1,234 volumes (three agent pages of at most 500) come back through CSI
/// pages of 300 exactly once each, in cursor order.
#[tokio::test(flavor = "multi_thread")]
async fn csi_list_volumes_pages_cover_several_agent_pages_exactly_once() {
    let s = stack().await;
    let n: usize = 1234;
    let sim = s.sim.clone();
    tokio::task::spawn_blocking(move || {
        for chunk in 0..n.div_ceil(100) {
            let line: Vec<String> = (chunk * 100..n.min(chunk * 100 + 100))
                .map(|i| {
                    let slot = format!("pvc-list-{i:05}");
                    format!(
                        "/disk add type=file file-path=/storage-pool/metal-csi/{slot}.img file-size=1M slot={slot} nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:{slot}"
                    )
                })
                .collect();
            let out = sim.console(&line.join("; "));
            assert!(out.trim().is_empty(), "{out}");
        }
    })
    .await
    .unwrap();
    let mut ctl = s.controller().unwrap();
    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let r = ctl
            .list_volumes(ListVolumesRequest {
                max_entries: 300,
                starting_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(r.entries.len() <= 300);
        seen.extend(r.entries.into_iter().map(|e| e.volume.unwrap().volume_id));
        if r.next_token.is_empty() {
            break;
        }
        token = r.next_token;
        assert!(pages < 10, "paging does not end");
    }
    let listed: Vec<&String> = seen.iter().filter(|v| v.starts_with("pvc-list-")).collect();
    assert_eq!(listed.len(), n, "every volume exactly once");
    let unique: BTreeSet<&String> = listed.iter().copied().collect();
    assert_eq!(unique.len(), n);
    assert_eq!(pages, n.div_ceil(300));
    s.stop().await;
}

/// A file left at the target path without a disk entry: CreateVolume is
/// ALREADY_EXISTS, the file is kept, and an `OrphanFileRefused` Warning on
/// the PVC names the file and the command that inspects it.
#[tokio::test(flavor = "multi_thread")]
async fn an_orphan_file_refusal_posts_a_warning_event_on_the_pvc() {
    let s = stack().await;
    let mut ctl = s.controller().unwrap();
    let params: HashMap<String, String> = [
        ("csi.storage.k8s.io/pvc/namespace", "shop"),
        ("csi.storage.k8s.io/pvc/name", "data-db-0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let id = "pvc-orphaned-0";
    ctl.create_volume(create_req(id, params.clone()))
        .await
        .unwrap();
    // The disk entry goes, its file stays (an interrupted create or copy).
    let out = s.sim.console(&format!("/disk remove [find slot={id}]"));
    assert!(out.trim().is_empty(), "{out}");
    let path = format!("/storage-pool/metal-csi/{id}.img");
    assert!(s.sim.file_exists(&path));

    let err = ctl.create_volume(create_req(id, params)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains(&path), "{err:?}");
    let ev = s
        .wait_for_event(Duration::from_secs(10), |e| {
            e["reason"] == "OrphanFileRefused" && e["volume_id"] == id
        })
        .await
        .expect("OrphanFileRefused in events.jsonl");
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["pvc_namespace"], "shop");
    assert_eq!(ev["pvc_name"], "data-db-0");
    let msg = ev["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("[{id}]: backing file {path} ")),
        "{msg}"
    );
    assert!(
        msg.ends_with(&format!(
            "inspect it with: /file print detail where name=\"storage-pool/metal-csi/{id}.img\""
        )),
        "{msg}"
    );
    assert!(s.sim.file_exists(&path), "never removed automatically");
    s.stop().await;
}
