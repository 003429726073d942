//! The controller path against rds-sim over real SSH: round trips per call,
//! files left without a disk entry, partial deletes under any base path,
//! detached copies joined by retries, commands the RDS finishes after the
//! client gave up, replies cut at record boundaries, and no leaked channels.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use rds_bus::Reason;
use rds_proto::agent::create_volume_request::Source;
use rds_proto::agent::{
    CreateSnapshotRequest, CreateVolumeRequest, DeleteSnapshotRequest, GetVolumeRequest, Snapshot,
    Volume,
};
use rds_sim::{FaultAction, FaultRule, Garble};
use tonic::Code;

const OTHER: &str = "/storage-pool/other-class";

fn reason(s: &tonic::Status) -> Option<Reason> {
    rds_bus::reason_of(s)
}

fn two_bases() -> Opts {
    Opts {
        sim: Box::new(|c| {
            c.base_dirs = vec![
                "storage-pool/metal-csi".to_owned(),
                "storage-pool/other-class".to_owned(),
            ];
        }),
        agent_args: vec![
            "--base-paths".into(),
            OTHER.into(),
            "--managed-nqn-prefix".into(),
            "nqn.2000-02.com.mikrotik:".into(),
        ],
        ..Opts::default()
    }
}

fn snap_req(id: &str, source: &str, base: &str) -> CreateSnapshotRequest {
    CreateSnapshotRequest {
        snapshot_id: id.into(),
        source_volume_id: source.into(),
        base_path: base.into(),
    }
}

fn restore_req(id: &str, snap: &str) -> CreateVolumeRequest {
    CreateVolumeRequest {
        volume_id: id.into(),
        size_bytes: GIB,
        base_path: String::new(),
        nvme_port: 0,
        source: Some(Source::SourceSnapshotId(snap.into())),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_and_delete_take_three_commands_and_never_print_every_disk() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    // A warm connection, so only the calls' own commands are counted.
    wait_reachable(&mut c, Duration::from_secs(5))
        .await
        .unwrap();
    let before = env.commands().len();
    c.create_volume(create_req("pvc-count", GIB)).await.unwrap();
    let create: Vec<String> = env.commands()[before..].to_vec();
    let mid = env.commands().len();
    c.delete_volume(delete_req("pvc-count")).await.unwrap();
    let delete: Vec<String> = env.commands()[mid..].to_vec();
    println!("create: {create:#?}\ndelete: {delete:#?}");
    assert!(create.len() <= 3, "CreateVolume sent {create:#?}");
    assert!(delete.len() <= 3, "DeleteVolume sent {delete:#?}");
    for c in create.iter().chain(&delete) {
        assert!(
            !c.split(';').any(|p| p.trim() == "/disk print detail"),
            "unfiltered print on a hot path: {c}"
        );
    }
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_without_a_disk_entry_is_refused_and_kept() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    c.create_volume(create_req("pvc-orphan", GIB))
        .await
        .unwrap();
    env.raw("/disk remove [find slot=pvc-orphan]").await;
    let path = "/storage-pool/metal-csi/pvc-orphan.img";
    assert!(env.sim.file_exists(path));
    let err = c
        .create_volume(create_req("pvc-orphan", GIB))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains(path), "{err:?}");
    assert!(
        err.message()
            .contains("/file print detail where name=\"storage-pool/metal-csi/pvc-orphan.img\""),
        "names the inspect command: {err:?}"
    );
    assert!(env.sim.file_exists(path), "never removed automatically");
    assert_eq!(env.adds_for("pvc-orphan"), 1, "no second /disk add");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_deletes_are_finished_by_the_retry_under_any_base_path() {
    let env = env(two_bases()).await;
    let mut c = env.client();
    let mut req = create_req("pvc-partial", GIB);
    req.base_path = OTHER.into();
    c.create_volume(req).await.unwrap();
    let vfile = format!("{OTHER}/pvc-partial.img");
    assert!(env.sim.file_exists(&vfile));
    let sid = "snap-00000000-0000-5000-8000-000000000001-at-0000000001";
    let s = c
        .create_snapshot(snap_req(sid, "pvc-partial", OTHER))
        .await
        .unwrap()
        .into_inner();
    assert!(s.ready_to_use);
    assert!(env.sim.file_exists(&s.file_path));

    // The file removal fails once: the disk entry is gone, the file stays.
    let fail_rm = || {
        FaultRule::new(FaultAction::ErrorText("failure: could not remove".into()))
            .on("^/file remove")
            .once()
    };
    env.sim.faults().add(fail_rm());
    let err = c
        .delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: sid.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(
        env.sim.file_exists(&s.file_path),
        "partial state: file left"
    );
    let r = c
        .delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: sid.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.existed, "the retry sees the partial state");
    assert!(!env.sim.file_exists(&s.file_path), "snapshot file removed");

    env.sim.faults().add(fail_rm());
    // The caller names the default base path; the file is under another one.
    assert!(c.delete_volume(delete_req("pvc-partial")).await.is_err());
    assert!(env.sim.file_exists(&vfile));
    let r = c
        .delete_volume(delete_req("pvc-partial"))
        .await
        .unwrap()
        .into_inner();
    assert!(r.existed);
    assert!(!env.sim.file_exists(&vfile), "volume file removed");
    assert!(env.sim.disks().is_empty());
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn volume_paths_outside_the_base_paths_and_foreign_nqns_are_refused() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    let mut req = create_req("pvc-elsewhere", GIB);
    req.base_path = "/storage-pool/nixos".into();
    let err = c.create_volume(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("--base-paths"), "{err:?}");
    let err = c
        .create_volume(create_req("vm-disk-1", GIB))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("managed NQN prefix"), "{err:?}");
    // A disk named like ours but outside the base paths is foreign.
    env.raw("/disk add type=file file-path=/storage-pool/nixos/pvc-foreign.img file-size=1M slot=pvc-foreign")
        .await;
    let err = c
        .get_volume(GetVolumeRequest {
            volume_id: "pvc-foreign".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let r = c
        .delete_volume(delete_req("pvc-foreign"))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.existed);
    assert_eq!(env.disks_with_slot("pvc-foreign"), 1, "left untouched");
    assert_eq!(env.adds_for("vm-disk-1") + env.adds_for("pvc-elsewhere"), 0);
    env.shutdown().await;
}

/// Polls CreateSnapshot with a short deadline until the snapshot is ready; the
/// snapshot and each poll's `ready_to_use`.
async fn snapshot_until_ready(c: &mut Client, sid: &str) -> (Snapshot, Vec<bool>) {
    let mut polls = Vec::new();
    loop {
        let s = c
            .create_snapshot(with_timeout(
                snap_req(sid, "pvc-src", ""),
                Duration::from_millis(400),
            ))
            .await
            .unwrap()
            .into_inner();
        polls.push(s.ready_to_use);
        if s.ready_to_use {
            return (s, polls);
        }
    }
}

/// Retries a restore of `sid` into `id` with a short deadline until it succeeds; every
/// failure must be ABORTED / OPERATION_PENDING. The volume and the failures' codes.
async fn restore_until_done(c: &mut Client, id: &str, sid: &str) -> (Volume, Vec<Code>) {
    let mut codes = Vec::new();
    loop {
        match c
            .create_volume(with_timeout(
                restore_req(id, sid),
                Duration::from_millis(400),
            ))
            .await
        {
            Ok(v) => return (v.into_inner(), codes),
            Err(s) => {
                assert_eq!(s.code(), Code::Aborted, "{s:?}");
                assert_eq!(reason(&s), Some(Reason::OperationPending));
                codes.push(s.code());
            }
        }
    }
}

/// copy-from commands the sim received for `slot`.
fn copies_into(env: &Env, slot: &str) -> usize {
    env.commands()
        .iter()
        .filter(|c| c.contains("copy-from") && c.contains(&format!("slot={slot} ")))
        .count()
}

/// Barrier: the slow copy into `slot` has finished on the RDS (logged when it ends),
/// so a second copy, had one been sent, would be in the log by now.
async fn slow_copy_finished(env: &Env, slot: &str) -> bool {
    let log = env.sim.commands_log();
    eventually(Duration::from_secs(10), async || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.contains("copy-from")
                    && l.contains(&format!("slot={slot} "))
                    && l.split("latency_ms=")
                        .nth(1)
                        .and_then(|v| v.split(' ').next())
                        .and_then(|v| v.parse::<u64>().ok())
                        .is_some_and(|ms| ms >= 2500)
            })
    })
    .await
}

/// copy-from slower than the caller's deadline: the first call answers
/// "still running" (ABORTED / ready_to_use=false), retries join the same
/// copy, and exactly one copy is ever sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_slower_than_the_call_is_joined_by_retries_never_resent() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    c.create_volume(create_req("pvc-src", GIB)).await.unwrap();
    let slow = || {
        FaultRule::new(FaultAction::Latency(Duration::from_millis(2500)))
            .on("copy-from")
            .once()
    };
    let sid = "snap-00000000-0000-5000-8000-000000000002-at-0000000002";
    env.sim.faults().add(slow());
    let (snap, polls) = snapshot_until_ready(&mut c, sid).await;
    assert_eq!(polls.first(), Some(&false), "first answer: still copying");
    assert!(snap.creation_time.is_some());
    assert!(slow_copy_finished(&env, sid).await, "the slow copy ran");
    assert_eq!(
        copies_into(&env, sid),
        1,
        "one copy for {} polls",
        polls.len()
    );

    env.sim.faults().add(slow());
    let (vol, codes) = restore_until_done(&mut c, "pvc-restored", sid).await;
    assert!(!codes.is_empty(), "the first attempt was still running");
    assert_eq!(vol.source_snapshot_id, sid);
    assert!(
        slow_copy_finished(&env, "pvc-restored").await,
        "the slow copy ran"
    );
    assert_eq!(
        copies_into(&env, "pvc-restored"),
        1,
        "retries joined: {codes:?}"
    );
    assert_eq!(env.disks_with_slot("pvc-restored"), 1);
    // The source cannot be deleted under a running copy; afterwards it can.
    c.delete_snapshot(DeleteSnapshotRequest {
        snapshot_id: sid.into(),
    })
    .await
    .unwrap();
    env.shutdown().await;
}

/// `/disk add` slower than the caller's deadline: the RDS completes it
/// after the client gave up. Immediate retries end with exactly one disk.
#[tokio::test(flavor = "multi_thread")]
async fn the_rds_finishing_an_add_after_the_client_gave_up_leaves_one_disk() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    env.sim.faults().add(
        FaultRule::new(FaultAction::Latency(Duration::from_millis(1500)))
            .on("^/disk add")
            .once(),
    );
    let first = c
        .create_volume(with_timeout(
            create_req("pvc-late", GIB),
            Duration::from_millis(300),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(first.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{first:?}"
    );
    let (res, codes) = create_until_ok(&mut c, "pvc-late", GIB, Duration::from_secs(10)).await;
    res.unwrap();
    // Barrier: the delayed add has run on the RDS (logged when it ended).
    assert!(
        eventually(Duration::from_secs(5), async || {
            env.commands_log()
                .lines()
                .filter(|l| l.contains("cmd=/disk add") && l.contains("slot=pvc-late"))
                .any(|l| {
                    l.split("latency_ms=")
                        .nth(1)
                        .and_then(|v| v.split(' ').next())
                        .and_then(|v| v.parse::<u64>().ok())
                        .is_some_and(|ms| ms >= 1500)
                })
        })
        .await
    );
    assert_eq!(env.disks_with_slot("pvc-late"), 1, "retries: {codes:?}");
    let v = c
        .get_volume(GetVolumeRequest {
            volume_id: "pvc-late".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.size_bytes, GIB);
    env.shutdown().await;
}

/// Every cut of the reply at a line (record) boundary is detected: an
/// existing volume is never reported as missing.
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_cut_at_any_record_boundary_is_never_no_such_disk() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    c.create_volume(create_req("pvc-cut", GIB)).await.unwrap();
    let full = env
        .raw("/disk print detail where slot=pvc-cut; :put \"rds-csi:end\"")
        .await;
    let cuts: Vec<usize> = full.match_indices('\n').map(|(i, _)| i + 1).collect();
    assert!(cuts.len() > 4, "{full}");
    for cut in cuts.iter().copied().filter(|c| *c < full.len()) {
        // Every attempt of the read is cut the same way.
        let id = env.sim.faults().add(
            FaultRule::new(FaultAction::Garble(Garble::Truncate(cut))).on("where slot=pvc-cut"),
        );
        let r = c
            .get_volume(GetVolumeRequest {
                volume_id: "pvc-cut".into(),
            })
            .await;
        env.sim.faults().remove(id);
        match r {
            Ok(v) => panic!("cut at {cut} answered {v:?}"),
            Err(s) => assert_ne!(s.code(), Code::NotFound, "cut at {cut}: {s:?}"),
        }
    }
    env.shutdown().await;
}

/// A call dropped mid-command closes its SSH channel and ends its session
/// gauge; the sim sees no channel left open.
#[tokio::test(flavor = "multi_thread")]
async fn calls_that_give_up_leak_no_channel_and_no_session() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    wait_reachable(&mut c, Duration::from_secs(5))
        .await
        .unwrap();
    env.sim
        .faults()
        .add(FaultRule::new(FaultAction::Hang).on("slot=pvc-hang"));
    for _ in 0..3 {
        // The caller drops the call (no grpc-timeout: the agent's own 2 s
        // command deadline is still far away when the call is cancelled).
        let dropped = tokio::time::timeout(
            Duration::from_millis(300),
            c.get_volume(GetVolumeRequest {
                volume_id: "pvc-hang".into(),
            }),
        )
        .await;
        assert!(dropped.is_err(), "the call hung until dropped");
    }
    let closed = eventually(Duration::from_secs(5), async || {
        env.sim.open_channels() == 0 && env.metric("rds_csi_rds_sessions_active").await == Some(0.0)
    })
    .await;
    assert!(
        closed,
        "open channels {}, sessions gauge {:?}",
        env.sim.open_channels(),
        env.metric("rds_csi_rds_sessions_active").await
    );
    env.shutdown().await;
}

/// Parse a 10,000-disk `/disk print detail` (ignored; prints the time).
#[test]
#[ignore]
fn bench_parse_10000_disk_print_detail() {
    use rds_routeros::{DiskRecord, Legend, RenderOptions, render_disk_print};
    let legend = Legend::rose_storage();
    let disks: Vec<DiskRecord> = (0..10_000)
        .map(|i| {
            let slot = format!("pvc-{i:08}-922a-5dd8-b376-c2c6ccb56dd8");
            let mut d = DiskRecord::file_disk(
                &legend,
                &slot,
                &format!("/storage-pool/metal-csi/{slot}.img"),
                5 << 30,
                Some((4420, &format!("nqn.2000-02.com.mikrotik:{slot}"))),
            );
            d.number = Some(i);
            d
        })
        .collect();
    let text = render_disk_print(&legend, &disks, &RenderOptions::default());
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let parsed = rds_agent::rds::parse_disks_strict(&text).unwrap();
        best = best.min(t.elapsed());
        assert_eq!(parsed.len(), 10_000);
    }
    println!(
        "parse a 10,000-disk print detail ({:.1} MiB): best of 5 {:.1} ms (goal <= 50 ms)",
        text.len() as f64 / (1 << 20) as f64,
        best.as_secs_f64() * 1000.0
    );
}

/// A reply larger than the 8 MiB output cap is refused (BAD_OUTPUT, never
/// buffered without bound) and its channel is closed.
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_over_the_output_cap_is_refused_and_its_channel_closed() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    c.create_volume(create_req("pvc-big", GIB)).await.unwrap();
    let rule = env.sim.faults().add(
        FaultRule::new(FaultAction::Garble(Garble::Oversize(9 << 20))).on("where slot=pvc-big"),
    );
    let err = c
        .get_volume(GetVolumeRequest {
            volume_id: "pvc-big".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert_eq!(reason(&err), Some(Reason::RdsBadOutput), "{err:?}");
    assert!(err.message().contains("8388608 bytes"), "{err:?}");
    assert!(env.sim.faults().fired(rule) > 0);
    assert!(
        eventually(Duration::from_secs(5), async || env.sim.open_channels()
            == 0)
        .await,
        "open channels: {}",
        env.sim.open_channels()
    );
    env.sim.faults().remove(rule);
    c.get_volume(GetVolumeRequest {
        volume_id: "pvc-big".into(),
    })
    .await
    .unwrap();
    env.shutdown().await;
}
