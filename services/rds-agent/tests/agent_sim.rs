//! rds-agent over real gRPC talking real SSH to rds-sim: lifecycle,
//! idempotency, sizes, injection, host key / auth, breaker, metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use rds_bus::Reason;
use rds_proto::agent::create_volume_request::Source;
use rds_proto::agent::*;
use tonic::Code;

fn reason(s: &tonic::Status) -> Option<Reason> {
    rds_bus::reason_of(s)
}

/// Data-clone copy-from (what local mode uses); the sim keeps its default
/// duplicate-NQN rejection, so a snapshot that inherited the source's export
/// would fail: snapshots are created with `nvme-tcp-export=no`.
fn data_clone(c: &mut rds_sim::SimConfig) {
    c.behaviour.copy_from = rds_sim::CopyFromMode::DataClone;
}

/// A new volume: its id, size, path, NQN and export; read back by get, list and capacity.
async fn create_and_read_volume(env: &Env, c: &mut Client, id: &str) {
    let v = c
        .create_volume(create_req(id, 2 * GIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.volume_id, id);
    assert_eq!(v.size_bytes, 2 * GIB);
    assert_eq!(v.file_path, format!("/storage-pool/metal-csi/{id}.img"));
    assert_eq!(
        v.nqn,
        format!("nqn.2000-02.com.mikrotik:{id}"),
        "wrapped NQN re-joined"
    );
    assert!(v.nvme_export);
    assert_eq!(v.nvme_port, 4420);
    assert!(env.sim.file_exists(&v.file_path));

    let got = c
        .get_volume(GetVolumeRequest {
            volume_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, v);
    let listed = common::all_volumes(c).await.unwrap();
    assert_eq!(listed, vec![v.clone()]);

    let cap = c
        .get_capacity(GetCapacityRequest {
            base_path: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cap.total_bytes, rds_sim::DEFAULT_POOL_SIZE);
    assert!(cap.free_bytes <= cap.total_bytes && cap.free_bytes > 0);
}

/// Expand rounds up to MiB; a shrink is OUT_OF_RANGE.
async fn expand_grows_and_refuses_shrink(c: &mut Client, id: &str) {
    let grown = c
        .expand_volume(ExpandVolumeRequest {
            volume_id: id.into(),
            size_bytes: 3 * GIB + 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grown.size_bytes, 3 * GIB + MIB);
    let shrink = c
        .expand_volume(ExpandVolumeRequest {
            volume_id: id.into(),
            size_bytes: GIB,
        })
        .await
        .unwrap_err();
    assert_eq!(shrink.code(), Code::OutOfRange);
}

/// A snapshot under the Go driver's id: source, size, ready, creation time, file.
async fn snapshot_with_go_id(env: &Env, c: &mut Client, id: &str, snap_id: &str) -> Snapshot {
    let s = c
        .create_snapshot(CreateSnapshotRequest {
            snapshot_id: snap_id.to_owned(),
            source_volume_id: id.into(),
            base_path: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.snapshot_id, snap_id);
    assert_eq!(s.source_volume_id, id);
    assert_eq!(s.size_bytes, 3 * GIB + MIB);
    assert!(s.ready_to_use);
    let created = s.creation_time.expect("creation time from last-modified");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (created.seconds - now).abs() < 24 * 3600,
        "{created:?} vs {now}"
    );
    assert!(env.sim.file_exists(&s.file_path));

    s
}

/// Retry of the same snapshot: same answer; other source: ALREADY_EXISTS.
async fn snapshot_retry_and_other_source(c: &mut Client, id: &str, snap_id: &str, s: &Snapshot) {
    // Retry of the same snapshot: same answer; other source: ALREADY_EXISTS.
    let again = c
        .create_snapshot(CreateSnapshotRequest {
            snapshot_id: snap_id.to_owned(),
            source_volume_id: id.into(),
            base_path: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, *s);
    c.create_volume(create_req("pvc-other", GIB)).await.unwrap();
    let other = c
        .create_snapshot(CreateSnapshotRequest {
            snapshot_id: snap_id.to_owned(),
            source_volume_id: "pvc-other".into(),
            base_path: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::AlreadyExists);
    assert_eq!(reason(&other), Some(Reason::SlotExists));
}

/// Listing by source finds the snapshot; another source lists none.
async fn list_snapshots_by_source(c: &mut Client, id: &str, s: &Snapshot) {
    // Listing by source and by id.
    let by_src = c
        .list_snapshots(ListSnapshotsRequest {
            snapshot_id: String::new(),
            source_volume_id: id.into(),
        })
        .await
        .unwrap();
    let by_src = common::snapshot_pages(by_src.into_inner()).await;
    assert_eq!(by_src, vec![s.clone()]);
    let none = c
        .list_snapshots(ListSnapshotsRequest {
            snapshot_id: String::new(),
            source_volume_id: "pvc-other".into(),
        })
        .await
        .unwrap();
    assert!(common::snapshot_pages(none.into_inner()).await.is_empty());
}

/// The source mapping survives an agent restart (a fresh agent on the same sim).
async fn source_mapping_survives_restart(env: &Env, snap_id: &str, s: &Snapshot) {
    // The source mapping survives an agent restart (a fresh agent on the same sim).
    let fresh = {
        let settings = {
            let port = env.sim.addr().port().to_string();
            let fp = env.sim.host_key_fingerprint();
            <rds_agent::Args as clap::Parser>::try_parse_from([
                "rds-agent",
                "--rds-address",
                "127.0.0.1",
                "--rds-port",
                &port,
                "--rds-key-file",
                env.key_path.to_str().unwrap(),
                "--rds-host-key-fingerprint",
                &fp,
                "--listen",
                "127.0.0.1:0",
                "--metrics-address",
                "",
            ])
            .unwrap()
            .validate()
            .unwrap()
        };
        let listener = rds_bus::Listener::bind(&settings.listen).await.unwrap();
        rds_agent::start(settings, listener, rds_bus::Shutdown::new())
            .await
            .unwrap()
    };
    let mut c2 = rds_proto::agent::agent_client::AgentClient::new(
        rds_bus::connect(&fresh.endpoint, rds_bus::ClientOptions::default()).unwrap(),
    );
    let after_restart = c2
        .list_snapshots(ListSnapshotsRequest {
            snapshot_id: snap_id.to_owned(),
            source_volume_id: String::new(),
        })
        .await
        .unwrap();
    let after_restart = common::snapshot_pages(after_restart.into_inner()).await;
    assert_eq!(
        after_restart,
        vec![s.clone()],
        "same source and creation time"
    );
    fresh.stop().await.unwrap();
}

/// Restore into a new volume (at least the snapshot's size); a missing snapshot is refused.
async fn restore_from_snapshot(c: &mut Client, snap_id: &str) {
    // Restore into a new volume (at least the snapshot's size).
    let restored = c
        .create_volume(CreateVolumeRequest {
            volume_id: "pvc-restored".into(),
            size_bytes: GIB,
            base_path: String::new(),
            nvme_port: 0,
            source: Some(Source::SourceSnapshotId(snap_id.to_owned())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(restored.size_bytes, 3 * GIB + MIB);
    assert_eq!(restored.source_snapshot_id, snap_id);
    assert_eq!(restored.nqn, "nqn.2000-02.com.mikrotik:pvc-restored");
    let missing_snap = c
        .create_volume(CreateVolumeRequest {
            volume_id: "pvc-r2".into(),
            size_bytes: GIB,
            base_path: String::new(),
            nvme_port: 0,
            source: Some(Source::SourceSnapshotId("snap-nope".into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&missing_snap), Some(Reason::SnapshotNotFound));
}

/// Delete everything: neither disk nor file remains, and deletes are idempotent.
async fn delete_everything(env: &Env, c: &mut Client, id: &str, snap_id: &str, s: &Snapshot) {
    // Delete everything: neither disk nor file remains.
    let del = c
        .delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: snap_id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(del.existed);
    assert!(!env.sim.file_exists(&s.file_path));
    assert!(
        !c.delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: snap_id.to_owned()
        })
        .await
        .unwrap()
        .into_inner()
        .existed
    );
    for vol in [id, "pvc-other", "pvc-restored"] {
        let r = c.delete_volume(delete_req(vol)).await.unwrap().into_inner();
        assert!(r.existed, "{vol}");
        assert!(
            !env.sim
                .file_exists(&format!("/storage-pool/metal-csi/{vol}.img")),
            "{vol}"
        );
        let r = c.delete_volume(delete_req(vol)).await.unwrap().into_inner();
        assert!(
            !r.existed,
            "{vol}: second delete is OK and reports nothing existed"
        );
    }
    assert!(env.sim.disks().is_empty(), "{:?}", env.sim.disks());
    let gone = c
        .get_volume(GetVolumeRequest {
            volume_id: id.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(reason(&gone), Some(Reason::VolumeNotFound));
}

#[tokio::test(flavor = "multi_thread")]
async fn full_volume_and_snapshot_lifecycle() {
    let env = common::env(Opts {
        sim: Box::new(data_clone),
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    let id = "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8";

    create_and_read_volume(&env, &mut c, id).await;
    expand_grows_and_refuses_shrink(&mut c, id).await;

    // Snapshot: the Go driver's id for a CSI name.
    let snap_id = rds_bus::SnapshotId::from_name("nightly-1").to_string();
    let s = snapshot_with_go_id(&env, &mut c, id, &snap_id).await;

    snapshot_retry_and_other_source(&mut c, id, &snap_id, &s).await;

    list_snapshots_by_source(&mut c, id, &s).await;

    source_mapping_survives_restart(&env, &snap_id, &s).await;

    restore_from_snapshot(&mut c, &snap_id).await;

    delete_everything(&env, &mut c, id, &snap_id, &s).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_both_ways_and_orphan_files() {
    let env = common::env(Opts::default()).await;
    let mut c = env.client();
    let a = c
        .create_volume(create_req("pvc-idem", GIB))
        .await
        .unwrap()
        .into_inner();
    let b = c
        .create_volume(create_req("pvc-idem", GIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    let bigger = c
        .create_volume(create_req("pvc-idem", 2 * GIB))
        .await
        .unwrap_err();
    assert_eq!(bigger.code(), Code::AlreadyExists);
    assert_eq!(reason(&bigger), Some(Reason::SlotExists));
    assert_eq!(
        env.adds_for("pvc-idem"),
        1,
        "retries never send a second /disk add"
    );
    assert_eq!(env.disks_with_slot("pvc-idem"), 1);

    // An id differing only in case would share the NQN: refused, not created.
    let clash = c
        .create_volume(create_req("PVC-IDEM", GIB))
        .await
        .unwrap_err();
    assert_eq!(clash.code(), Code::AlreadyExists, "{clash:?}");
    assert!(clash.message().contains("pvc-idem"), "{clash:?}");
    assert_eq!(env.adds_for("PVC-IDEM"), 0);

    // An orphaned .img (disk entry gone, file left, as the Go driver leaked):
    // delete removes it. Make one by deleting the disk entry behind the agent's back.
    let path = "/storage-pool/metal-csi/pvc-idem.img";
    {
        use async_ssh2_tokio::client::{AuthMethod, Client, ServerCheckMethod};
        let pem = key(1)
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .unwrap();
        let bare = Client::connect(
            ("127.0.0.1", env.sim.addr().port()),
            "admin",
            AuthMethod::with_key(&pem, None),
            ServerCheckMethod::with_public_key(
                env.sim
                    .host_public_key()
                    .to_openssh()
                    .unwrap()
                    .split_whitespace()
                    .nth(1)
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
        let r = bare
            .execute("/disk remove [find slot=pvc-idem]")
            .await
            .unwrap();
        assert_eq!(r.exit_status, 0, "{r:?}");
    }
    assert!(env.sim.file_exists(path));
    let r = c
        .delete_volume(delete_req("pvc-idem"))
        .await
        .unwrap()
        .into_inner();
    assert!(r.existed);
    assert!(!env.sim.file_exists(path), "orphaned file removed");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sizes_are_exact_bytes_rounded_up_to_mib() {
    // 10 TiB needs a pool that large (sparse files, nothing is allocated).
    let env = common::env(Opts {
        sim: Box::new(|c| c.pool_size = 64 << 40),
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    for (id, req, want) in [
        ("pvc-1g", GIB, GIB),
        ("pvc-1g5", GIB + GIB / 2, GIB + GIB / 2),
        ("pvc-1g1", GIB + 1, GIB + MIB),
        ("pvc-10t", 10 << 40, 10 << 40),
        ("pvc-10t1", (10 << 40) + 1, (10 << 40) + MIB),
    ] {
        let v = c
            .create_volume(create_req(id, req))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(v.size_bytes, want, "{id}: capacity from raw size=");
        let sim = env.sim.disks().into_iter().find(|d| d.slot == id).unwrap();
        assert_eq!(sim.size, want, "{id}: the RDS really has it");
        let sent = env
            .commands()
            .into_iter()
            .find(|cmd| cmd.starts_with("/disk add") && cmd.contains(&format!("slot={id} ")))
            .unwrap();
        assert!(sent.contains(&format!("file-size={want} ")), "{sent}");
    }
    env.shutdown().await;
}

/// One result per call that names a volume or snapshot.
type Outcomes = Vec<(&'static str, Result<(), tonic::Status>)>;

/// Every call that takes a volume or snapshot id, each with `bad` as that id.
async fn id_calls(c: &mut Client, bad: &str) -> Outcomes {
    let mut calls: Outcomes = Vec::new();
    calls.push((
        "create",
        c.create_volume(create_req(bad, GIB)).await.map(|_| ()),
    ));
    calls.push(("delete", c.delete_volume(delete_req(bad)).await.map(|_| ())));
    calls.push((
        "get",
        c.get_volume(GetVolumeRequest {
            volume_id: bad.to_owned(),
        })
        .await
        .map(|_| ()),
    ));
    calls.push((
        "expand",
        c.expand_volume(ExpandVolumeRequest {
            volume_id: bad.to_owned(),
            size_bytes: GIB,
        })
        .await
        .map(|_| ()),
    ));
    calls.push((
        "snapshot id",
        c.create_snapshot(CreateSnapshotRequest {
            snapshot_id: bad.to_owned(),
            source_volume_id: "pvc-ok".into(),
            base_path: String::new(),
        })
        .await
        .map(|_| ()),
    ));
    calls.push((
        "snapshot source",
        c.create_snapshot(CreateSnapshotRequest {
            snapshot_id: "snap-1".into(),
            source_volume_id: bad.to_owned(),
            base_path: String::new(),
        })
        .await
        .map(|_| ()),
    ));
    calls.push((
        "delete snapshot",
        c.delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: bad.to_owned(),
        })
        .await
        .map(|_| ()),
    ));
    calls.push((
        "restore source",
        c.create_volume(CreateVolumeRequest {
            volume_id: "pvc-new".into(),
            size_bytes: GIB,
            base_path: String::new(),
            nvme_port: 0,
            source: Some(Source::SourceSnapshotId(bad.to_owned())),
            ..Default::default()
        })
        .await
        .map(|_| ()),
    ));
    calls
}

/// The calls that take a base path, with `bad` inside it.
async fn path_calls(c: &mut Client, bad: &str) -> Outcomes {
    let mut calls: Outcomes = Vec::new();
    let path = format!("/storage-pool/metal-csi/{bad}");
    calls.push((
        "base path",
        c.create_volume(CreateVolumeRequest {
            volume_id: "pvc-new".into(),
            size_bytes: GIB,
            base_path: path.clone(),
            nvme_port: 0,
            source: None,
            ..Default::default()
        })
        .await
        .map(|_| ()),
    ));
    calls.push((
        "delete base path",
        c.delete_volume(DeleteVolumeRequest {
            volume_id: "pvc-new".into(),
            base_path: path.clone(),
        })
        .await
        .map(|_| ()),
    ));
    calls.push((
        "capacity path",
        c.get_capacity(GetCapacityRequest { base_path: path })
            .await
            .map(|_| ()),
    ));
    calls
}

/// Create requests with a bad parameter other than the id.
fn bad_parameters() -> [(&'static str, CreateVolumeRequest); 4] {
    [
        (
            "port",
            CreateVolumeRequest {
                volume_id: "pvc-p".into(),
                size_bytes: GIB,
                base_path: String::new(),
                nvme_port: 70000,
                source: None,
                ..Default::default()
            },
        ),
        (
            "outside pool",
            CreateVolumeRequest {
                volume_id: "pvc-p".into(),
                size_bytes: GIB,
                base_path: "/flash/x".into(),
                nvme_port: 0,
                source: None,
                ..Default::default()
            },
        ),
        (
            "dotdot",
            CreateVolumeRequest {
                volume_id: "pvc-p".into(),
                size_bytes: GIB,
                base_path: "/storage-pool/../flash".into(),
                nvme_port: 0,
                source: None,
                ..Default::default()
            },
        ),
        (
            "zero size",
            CreateVolumeRequest {
                volume_id: "pvc-p".into(),
                size_bytes: 0,
                base_path: String::new(),
                nvme_port: 0,
                source: None,
                ..Default::default()
            },
        ),
    ]
}

/// The commands log holds none of the payloads, and only the valid volume's commands.
fn assert_nothing_bad_reached_the_rds(env: &Env) {
    let log = env.commands_log();
    for needle in [
        "reboot",
        "\"b",
        "a;b",
        "$x",
        "a\\b",
        "[find]",
        "a\\nb",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "pvc-new",
        "pvc-p",
        "/flash",
    ] {
        assert!(!log.contains(needle), "{needle:?} reached the RDS:\n{log}");
    }
    // Only the valid volume's commands were ever sent.
    for cmd in env.commands() {
        assert!(
            cmd.contains("pvc-ok") || cmd.starts_with("/system resource print"),
            "unexpected command {cmd:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn injection_attempts_are_invalid_argument_and_never_reach_the_rds() {
    let env = common::env(Opts::default()).await;
    let mut c = env.client();
    // One real command first, so the log exists and the agent is connected.
    c.create_volume(create_req("pvc-ok", GIB)).await.unwrap();
    let long = format!("pvc-{}", "a".repeat(300));
    let evil: Vec<String> = vec![
        "pvc-a\"b".into(),
        "pvc-a;b".into(),
        "pvc-$x".into(),
        "pvc-a\\b".into(),
        "pvc-[find]".into(),
        "pvc-a\nb".into(),
        "/system reboot".into(),
        "pvc-x; /system reboot".into(),
        "pvc-x\"; /system reboot; \"".into(),
        long.clone(),
    ];
    let mut tried = 0;
    for bad in &evil {
        let mut calls = id_calls(&mut c, bad).await;
        calls.extend(path_calls(&mut c, bad).await);
        for (what, r) in calls {
            let s = r.expect_err(&format!("{what} with {bad:?} must fail"));
            assert_eq!(s.code(), Code::InvalidArgument, "{what} {bad:?}: {s:?}");
            assert_eq!(reason(&s), Some(Reason::InvalidArgument), "{what} {bad:?}");
            tried += 1;
        }
    }
    // Parameters: a port out of range, a path outside the pool, ../
    for (what, req) in bad_parameters() {
        let s = c.create_volume(req).await.unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument, "{what}");
        tried += 1;
    }
    assert!(tried > 100);
    assert_nothing_bad_reached_the_rds(&env);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn host_key_pins_accept_the_right_key_and_refuse_a_mismatch() {
    for pin in [
        Pin::Fingerprint,
        Pin::PublicKeyFile,
        Pin::KnownHosts,
        Pin::Insecure,
    ] {
        let env = common::env(Opts {
            pin: pin.clone(),
            ..Opts::default()
        })
        .await;
        let mut c = env.client();
        c.create_volume(create_req("pvc-hk", GIB))
            .await
            .unwrap_or_else(|e| panic!("{pin:?}: {e:?}"));
        env.shutdown().await;
    }

    let env = common::env(Opts {
        pin: Pin::WrongFingerprint,
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    let s = c
        .create_volume(create_req("pvc-mitm", GIB))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable);
    assert_eq!(reason(&s), Some(Reason::RdsHostKeyMismatch), "{s:?}");
    assert!(
        s.message().contains(&env.sim.host_key_fingerprint()),
        "presented fingerprint named: {}",
        s.message()
    );
    // Refused before authenticating: nothing ran.
    assert!(env.commands().is_empty(), "{:?}", env.commands());
    // And fast on the next call (breaker open, same reason).
    let t = Instant::now();
    let s = c
        .create_volume(create_req("pvc-mitm", GIB))
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_millis(200));
    assert_eq!(reason(&s), Some(Reason::RdsHostKeyMismatch));
    let p = c.probe(ProbeRequest {}).await.unwrap().into_inner();
    assert!(!p.reachable && p.detail.contains("host key"), "{p:?}");
    env.shutdown().await;

    // The sim changes its host key mid-life (HostKeyChange fault): refused too.
    let env = common::env(Opts::default()).await;
    let mut c = env.client();
    c.create_volume(create_req("pvc-before", GIB))
        .await
        .unwrap();
    env.sim
        .faults()
        .add(rds_sim::FaultRule::new(rds_sim::FaultAction::HostKeyChange));
    // Existing connections keep working; force new ones by rebooting the sim.
    env.sim.reboot(Duration::from_millis(100)).await;
    assert!(env.sim.wait_up(Duration::from_secs(5)).await);
    let s = loop {
        match c.create_volume(create_req("pvc-after", GIB)).await {
            Err(s) if reason(&s) == Some(Reason::RdsHostKeyMismatch) => break s,
            Err(s) if s.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => panic!("expected a host key mismatch, got {other:?}"),
        }
    };
    assert_eq!(s.code(), Code::Unavailable);
    assert_eq!(env.adds_for("pvc-after"), 0);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_client_key_is_refused() {
    let env = common::env(Opts {
        client_key_seed: 42,
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    let s = c
        .create_volume(create_req("pvc-auth", GIB))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable);
    assert_eq!(reason(&s), Some(Reason::RdsAuthFailed), "{s:?}");
    assert!(env.commands().is_empty());
    env.shutdown().await;
}

/// The first calls find the connection gone and open the breaker.
async fn calls_open_the_breaker(c: &mut Client) {
    // The first calls find the connection gone and open the breaker.
    let mut opened = false;
    for _ in 0..10 {
        let s = c
            .create_volume(create_req("pvc-down", GIB))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::Unavailable, "{s:?}");
        assert_eq!(reason(&s), Some(Reason::RdsUnreachable));
        if s.message().contains("circuit open") {
            opened = true;
            break;
        }
    }
    assert!(opened, "breaker opened");
}

/// While open: answered at once, without touching the network; probe and metrics say so.
async fn open_breaker_fails_fast(env: &Env, c: &mut Client) {
    // While open: answered at once, without touching the network.
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let s = c
            .get_volume(GetVolumeRequest {
                volume_id: "pvc-up".into(),
            })
            .await
            .unwrap_err();
        worst = worst.max(t.elapsed());
        assert_eq!(s.code(), Code::Unavailable);
    }
    assert!(
        worst < Duration::from_millis(100),
        "fast fail took {worst:?}"
    );
    let p = c.probe(ProbeRequest {}).await.unwrap().into_inner();
    assert!(!p.reachable && p.detail.contains("circuit open"), "{p:?}");
    let m = env.metrics_text().await;
    assert!(m.contains("rds_csi_rds_circuit_open 1"), "{m}");
    assert!(
        m.contains("rds_csi_rds_connection_state{address=\"127.0.0.1:"),
        "{m}"
    );
}

/// After recovery the breaker gauge is 0 and the outage was counted.
async fn outage_was_counted(env: &Env) {
    let m = env.metrics_text().await;
    assert!(m.contains("rds_csi_rds_circuit_open 0"), "{m}");
    // These series exist from the start at 0: the outage must have counted.
    for series in [
        "rds_csi_rds_reconnect_total{status=\"success\"}",
        "rds_csi_rds_errors_total{reason=\"RDS_UNREACHABLE\"}",
    ] {
        let n: f64 = m
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(n >= 1.0, "{series} not counted:\n{m}");
    }
    assert!(
        m.contains("rds_csi_rds_command_duration_seconds_bucket{le=")
            || m.contains("rds_csi_rds_command_duration_seconds_count{verb=\"disk add\"}"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rds_down_answers_unavailable_fast_and_recovers_by_itself() {
    let env = common::env(Opts::default()).await;
    let mut c = env.client();
    c.create_volume(create_req("pvc-up", GIB)).await.unwrap();
    assert!(
        c.probe(ProbeRequest {})
            .await
            .unwrap()
            .into_inner()
            .reachable
    );

    let downtime = Duration::from_secs(3);
    env.sim.reboot(downtime).await;
    let down_at = Instant::now();
    calls_open_the_breaker(&mut c).await;
    open_breaker_fails_fast(&env, &mut c).await;

    // Back by itself: no call needed to close the breaker (half-open probe).
    assert!(env.sim.wait_up(downtime + Duration::from_secs(5)).await);
    let back = wait_reachable(&mut c, Duration::from_secs(10)).await;
    assert!(back.is_some(), "breaker never closed");
    println!(
        "down for {:?}; reachable {:?} after the sim returned",
        down_at.elapsed(),
        back
    );
    let v = c
        .get_volume(GetVolumeRequest {
            volume_id: "pvc-up".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.size_bytes, GIB);
    c.create_volume(create_req("pvc-down", GIB)).await.unwrap();
    outage_was_counted(&env).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_binary_validates_without_serving() {
    let env = common::env(Opts::default()).await;
    let bin = env!("CARGO_BIN_EXE_rds-agent");
    let fp = env.sim.host_key_fingerprint();
    let out = std::process::Command::new(bin)
        .args([
            "--check-config",
            "--rds-address",
            "127.0.0.1",
            "--rds-key-file",
            env.key_path.to_str().unwrap(),
            "--rds-host-key-fingerprint",
            &fp,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cfg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(cfg["host_key"], format!("fingerprint {fp}"));
    let key_text = std::fs::read_to_string(&env.key_path).unwrap();
    assert!(
        !stdout.contains(key_text.lines().nth(1).unwrap()),
        "no key material"
    );
    let bad = std::process::Command::new(bin)
        .args([
            "--check-config",
            "--rds-address",
            "127.0.0.1",
            "--rds-key-file",
            env.key_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must be pinned"));
    env.shutdown().await;
}
