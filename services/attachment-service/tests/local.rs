//! Local mode (file store), real gRPC to attachment-service and from it to
//! the real event-service (JSON-lines sink).

// `cfg(test)` lets clippy.toml's unwrap/expect allowance cover the helpers.
#![cfg(test)]

mod support;

use std::time::{Duration, Instant};

use attachment_service::Config;
use rds_bus::{Reason, reason_of};
use rds_proto::attachment::{self as pb, AccessMode};
use support::*;
use tonic::Code;

fn local(dir: &std::path::Path, events: Option<&Events>) -> Config {
    let mut c = Config::local(dir.join("attachments"));
    c.events_endpoint = events.map(Events::endpoint);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn attach_and_detach_post_events_on_the_pvc_in_the_callers_trace() {
    let _tel = rds_bus::testing::telemetry();
    let dir = tempfile::tempdir().unwrap();
    let events = Events::start(dir.path()).await;
    let svc = Proc::start(local(dir.path(), Some(&events)));
    let mut c = svc.client();
    ready(&mut c).await;

    let span = tracing::info_span!("csi.ControllerPublishVolume");
    let trace_id = rds_bus::testing::trace_id_of(&span);
    let resp = {
        use tracing::Instrument;
        c.attach(attach_req(
            "pvc-a",
            "node-1",
            AccessMode::SingleNodeWriter,
            false,
        ))
        .instrument(span)
        .await
        .unwrap()
        .into_inner()
    };
    assert!(!resp.already_attached);
    assert_eq!(nodes_of(resp.attachment.as_ref().unwrap()), ["node-1"]);

    let ev = &events.wait("VolumeAttached", "pvc-a", 1).await[0];
    assert_eq!(ev["type"], "Normal");
    assert_eq!(ev["pvc_namespace"], "team-a");
    assert_eq!(ev["pvc_name"], "claim-pvc-a");
    assert_eq!(ev["node_id"], "node-1");
    let msg = ev["message"].as_str().unwrap();
    assert!(
        msg.starts_with("[pvc-a]: Attached to node node-1 (duration: "),
        "{msg}"
    );
    assert_eq!(
        ev["trace_id"],
        trace_id.to_string(),
        "event belongs to the caller's trace"
    );

    // Detach carries no PVC: the record's is used.
    let d = c
        .detach(detach_req("pvc-a", "node-1"))
        .await
        .unwrap()
        .into_inner();
    assert!(d.was_attached);
    let ev = &events.wait("VolumeDetached", "pvc-a", 1).await[0];
    assert_eq!(ev["message"], "[pvc-a]: Detached from node node-1");
    assert_eq!(ev["type"], "Normal");
    assert_eq!(ev["pvc_name"], "claim-pvc-a");
    assert_eq!(ev["pvc_namespace"], "team-a");
    svc.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn fencing_rules_idempotency_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let events = Events::start(dir.path()).await;
    let metrics = free_addr();
    let mut cfg = local(dir.path(), Some(&events));
    cfg.metrics_addr = metrics.clone();
    let svc = Proc::start(cfg);
    let mut c = svc.client();
    ready(&mut c).await;

    rwo_rules(&mut c, &events).await;

    rwx_rules(&mut c).await;

    bad_input_reads_and_detach(&mut c).await;
    let text = scrape(&metrics).await;
    for want in [
        "rds_csi_attachment_attach_total{status=\"success\"} 3",
        "rds_csi_attachment_detach_total{status=\"success\"} 1",
        "rds_csi_attachment_conflicts_total 1",
        "rds_csi_migration_active_migrations 1",
        "rds_csi_nvme_connections_active 1",
        "rds_csi_attachment_operation_duration_seconds_count{operation=\"attach_secondary\"} 1",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }

    // An idempotent repeat posts nothing new: a sentinel attach posted
    // after them is the barrier.
    c.attach(attach_req(
        "sentinel",
        "n1",
        AccessMode::SingleNodeWriter,
        false,
    ))
    .await
    .unwrap();
    events.wait("VolumeAttached", "sentinel", 1).await;
    assert_eq!(
        events.with_reason("VolumeAttached").len(),
        3,
        "{:#?}",
        events.all()
    );
    assert_eq!(events.with_reason("VolumeDetached").len(), 1);
    svc.stop().await.unwrap();
}

/// RWO: idempotent repeat, conflict naming the holder, event; same node
/// with the other readonly flag is ALREADY_EXISTS.
async fn rwo_rules(c: &mut Client, events: &Events) {
    let rwo = AccessMode::SingleNodeWriter;
    c.attach(attach_req("vol-1", "n1", rwo, false))
        .await
        .unwrap();
    let again = c
        .attach(attach_req("vol-1", "n1", rwo, false))
        .await
        .unwrap()
        .into_inner();
    assert!(again.already_attached);
    let err = c
        .attach(attach_req("vol-1", "n2", rwo, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason_of(&err), Some(Reason::AttachedElsewhere));
    assert!(
        err.message().contains("attached to node n1"),
        "{}",
        err.message()
    );
    let conflict = &events.wait("AttachmentConflict", "vol-1", 1).await[0];
    assert_eq!(conflict["type"], "Warning");
    assert_eq!(
        conflict["message"],
        "[vol-1]: Attachment to node n2 rejected - volume already attached to node n1. Delete the pod on n1 to release the volume."
    );
    assert_eq!(conflict["pvc_name"], "claim-vol-1");
    // Same node, other readonly flag: CSI's ALREADY_EXISTS.
    let mut ro = attach_req("vol-1", "n1", rwo, false);
    ro.readonly = true;
    assert_eq!(c.attach(ro).await.unwrap_err().code(), Code::AlreadyExists);
}

/// RWX filesystem refused; RWX block: two nodes, not three.
async fn rwx_rules(c: &mut Client) {
    let rwx = AccessMode::MultiNodeMultiWriter;
    let err = c
        .attach(attach_req("vol-2", "n1", rwx, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason_of(&err), Some(Reason::AccessModeUnsupported));
    c.attach(attach_req("vol-2", "n1", rwx, true))
        .await
        .unwrap();
    let two = c
        .attach(attach_req("vol-2", "n2", rwx, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(nodes_of(two.attachment.as_ref().unwrap()), ["n1", "n2"]);
    assert!(two.attachment.unwrap().migration_started_at.is_some());
    let err = c
        .attach(attach_req("vol-2", "n3", rwx, true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason_of(&err), Some(Reason::MigrationLimit));
    assert!(err.message().contains("n1, n2"), "{}", err.message());
    assert!(
        c.attach(attach_req("vol-2", "n2", rwx, true))
            .await
            .unwrap()
            .into_inner()
            .already_attached
    );
}

/// Bad input, Get/List, idempotent detach.
async fn bad_input_reads_and_detach(c: &mut Client) {
    let rwo = AccessMode::SingleNodeWriter;
    let err = c
        .attach(attach_req("bad id!", "n1", rwo, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut unspecified = attach_req("vol-3", "n1", rwo, false);
    unspecified.access_mode = AccessMode::Unspecified as i32;
    assert_eq!(
        c.attach(unspecified).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let err = c
        .get(pb::GetRequest {
            volume_id: "vol-9".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let on_n2 = c
        .list(pb::ListRequest {
            node_id: "n2".into(),
            volume_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .attachments;
    assert_eq!(
        on_n2
            .iter()
            .map(|a| a.volume_id.as_str())
            .collect::<Vec<_>>(),
        ["vol-2"]
    );
    assert!(
        c.detach(detach_req("vol-1", "n1"))
            .await
            .unwrap()
            .into_inner()
            .was_attached
    );
    assert!(
        !c.detach(detach_req("vol-1", "n1"))
            .await
            .unwrap()
            .into_inner()
            .was_attached
    );
    assert!(
        !c.detach(detach_req("never", "n1"))
            .await
            .unwrap()
            .into_inner()
            .was_attached
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migration_completes_and_times_out_with_events() {
    let dir = tempfile::tempdir().unwrap();
    let events = Events::start(dir.path()).await;
    let svc = Proc::start(local(dir.path(), Some(&events)));
    let mut c = svc.client();
    ready(&mut c).await;
    let rwx = AccessMode::MultiNodeMultiWriter;

    migration_completes(&mut c, &events).await;

    migration_times_out(&mut c, &events).await;

    // The timed-out mark is durable: a crash and restart report it once.
    svc.kill().await;
    let svc = Proc::start(local(dir.path(), Some(&events)));
    let mut c = svc.client();
    ready(&mut c).await;
    // Barrier: a new 1 s window (vm-s) times out and is reported by the
    // restarted watchdog; vm-2's expired window would have been reported
    // before that (on the first pass after the restart).
    c.attach(attach_req("vm-s", "src", rwx, true))
        .await
        .unwrap();
    let mut second = attach_req("vm-s", "dst", rwx, true);
    second.migration_timeout_seconds = 1;
    c.attach(second).await.unwrap();
    events.wait("MigrationFailed", "vm-s", 1).await;
    assert_eq!(
        events
            .with_reason("MigrationFailed")
            .iter()
            .filter(|e| e["volume_id"] == "vm-2")
            .count(),
        1,
        "{:#?}",
        events.all()
    );

    // Detaching one node ends it: a plain detach of that node.
    c.detach(detach_req("vm-2", "src")).await.unwrap();
    let ev = &events.wait("VolumeDetached", "vm-2", 1).await[0];
    assert_eq!(ev["message"], "[vm-2]: Detached from node src");
    assert!(
        events
            .with_reason("MigrationCompleted")
            .iter()
            .all(|e| e["volume_id"] != "vm-2")
    );

    // The target leaving first is an abandoned migration.
    c.attach(attach_req("vm-3", "src", rwx, true))
        .await
        .unwrap();
    c.attach(attach_req("vm-3", "dst", rwx, true))
        .await
        .unwrap();
    c.detach(detach_req("vm-3", "dst")).await.unwrap();
    let ev = &events.wait("MigrationFailed", "vm-3", 1).await[0];
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .contains("reason: target detached before the source")
    );
    svc.stop().await.unwrap();
}

/// Completed: the source leaves first.
async fn migration_completes(c: &mut Client, events: &Events) {
    let rwx = AccessMode::MultiNodeMultiWriter;
    c.attach(attach_req("vm-1", "src", rwx, true))
        .await
        .unwrap();
    c.attach(attach_req("vm-1", "dst", rwx, true))
        .await
        .unwrap();
    let started = &events.wait("MigrationStarted", "vm-1", 1).await[0];
    assert_eq!(
        started["message"],
        "[vm-1]: KubeVirt live migration started - source: src, target: dst, timeout: 5m0s"
    );
    c.detach(detach_req("vm-1", "src")).await.unwrap();
    let done = &events.wait("MigrationCompleted", "vm-1", 1).await[0];
    assert_eq!(
        done["message"],
        "[vm-1]: KubeVirt live migration completed - source: src -> target: dst (duration: 0s)"
    );
    assert_eq!(done["pvc_name"], "claim-vm-1");
    let left = c
        .get(pb::GetRequest {
            volume_id: "vm-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(nodes_of(&left), ["dst"]);
    assert!(left.migration_started_at.is_none());
}

/// Timed out: both stay attached, MigrationFailed, a third node refused.
async fn migration_times_out(c: &mut Client, events: &Events) {
    let rwx = AccessMode::MultiNodeMultiWriter;
    let mut req = attach_req("vm-2", "dst", rwx, true);
    req.migration_timeout_seconds = 1;
    c.attach(attach_req("vm-2", "src", rwx, true))
        .await
        .unwrap();
    c.attach(req).await.unwrap();
    let failed = &events.wait("MigrationFailed", "vm-2", 1).await[0];
    assert_eq!(failed["type"], "Warning");
    let msg = failed["message"].as_str().unwrap();
    assert!(
        msg.starts_with("[vm-2]: KubeVirt live migration failed - source: src, attempted target: dst, reason: timeout, elapsed: 1"),
        "{msg}"
    );
    let held = c
        .get(pb::GetRequest {
            volume_id: "vm-2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        nodes_of(&held),
        ["src", "dst"],
        "nothing is dropped on timeout"
    );
    let err = c
        .attach(attach_req("vm-2", "other", rwx, true))
        .await
        .unwrap_err();
    assert_eq!(reason_of(&err), Some(Reason::MigrationLimit));
    assert!(err.message().contains("timed out"), "{}", err.message());
}

/// Attach and Detach with event-service absent (connection refused) and
/// hanging (accepts, never answers): both stay fast.
#[tokio::test(flavor = "multi_thread")]
async fn event_service_down_or_hanging_never_slows_attach() {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_addr = hang.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hang.accept().await {
            held.push(s);
        }
    });

    for (name, endpoint) in [("refused", refused), ("hanging", hang_addr)] {
        let dir = tempfile::tempdir().unwrap();
        let metrics = free_addr();
        let mut cfg = local(dir.path(), None);
        cfg.events_endpoint = Some(endpoint);
        cfg.metrics_addr = metrics.clone();
        let svc = Proc::start(cfg);
        let mut c = svc.client();
        ready(&mut c).await;
        let mut worst = Duration::ZERO;
        let mut total = Duration::ZERO;
        for i in 0..40 {
            let vol = format!("vol-{i}");
            let t = Instant::now();
            c.attach(attach_req(&vol, "n1", AccessMode::SingleNodeWriter, false))
                .await
                .unwrap();
            c.detach(detach_req(&vol, "n1")).await.unwrap();
            let took = t.elapsed();
            worst = worst.max(took);
            total += took;
        }
        println!(
            "event-service {name}: 40 attach+detach, mean {:?}, worst {:?}",
            total / 40,
            worst
        );
        assert!(
            worst < Duration::from_millis(400),
            "{name}: worst attach+detach {worst:?}"
        );
        // The posts were attempted and failed in the background.
        let text = support::eventually(Duration::from_secs(5), || {
            let m = metrics.clone();
            async move {
                let t = scrape(&m).await;
                t.contains("rds_csi_attachment_events_total{result=\"failed\"}")
                    .then_some(t)
            }
        })
        .await;
        assert!(text.is_some(), "{name}: no failed event posts counted");
        svc.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_after_a_crash_rebuilds_the_same_table() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Proc::start(local(dir.path(), None));
    let mut c = svc.client();
    ready(&mut c).await;
    c.attach(attach_req("a", "n1", AccessMode::SingleNodeWriter, false))
        .await
        .unwrap();
    let mut ro = attach_req("b", "n2", AccessMode::SingleNodeReaderOnly, false);
    ro.readonly = true;
    c.attach(ro).await.unwrap();
    c.attach(attach_req(
        "c",
        "n1",
        AccessMode::MultiNodeMultiWriter,
        true,
    ))
    .await
    .unwrap();
    c.attach(attach_req(
        "c",
        "n2",
        AccessMode::MultiNodeMultiWriter,
        true,
    ))
    .await
    .unwrap();
    c.attach(attach_req("d", "n3", AccessMode::SingleNodeWriter, false))
        .await
        .unwrap();
    c.detach(detach_req("d", "n3")).await.unwrap();
    let before = list(&mut c).await;
    assert_eq!(before.len(), 3);
    svc.kill().await;

    let svc = Proc::start(local(dir.path(), None));
    let mut c = svc.client();
    ready(&mut c).await;
    assert_eq!(list(&mut c).await, before);
    // And it still fences after the restart.
    let err = c
        .attach(attach_req("a", "n9", AccessMode::SingleNodeWriter, false))
        .await
        .unwrap_err();
    assert_eq!(reason_of(&err), Some(Reason::AttachedElsewhere));
    svc.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_file_store_survives_a_kill_between_write_and_rename() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("attachments");
    let svc = Proc::start(local(dir.path(), None));
    let mut c = svc.client();
    ready(&mut c).await;
    c.attach(attach_req(
        "pvc-a",
        "n1",
        AccessMode::SingleNodeWriter,
        false,
    ))
    .await
    .unwrap();
    let acked = list(&mut c).await;
    svc.kill().await;

    // What a kill between write and rename leaves: a torn temp file of the
    // next state of pvc-a, and one of an Attach of pvc-b never acknowledged.
    let good = std::fs::read_to_string(store.join("pvc-a.json")).unwrap();
    let torn = good.replace("n1", "n2");
    std::fs::write(store.join(".pvc-a.json.tmp"), &torn[..torn.len() / 2]).unwrap();
    std::fs::write(store.join(".pvc-b.json.tmp"), "{\"version\":1,\"volu").unwrap();

    let svc = Proc::start(local(dir.path(), None));
    let mut c = svc.client();
    ready(&mut c).await;
    assert_eq!(list(&mut c).await, acked);
    let mut names: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".lock", "pvc-a.json"],
        "temp files are removed at load"
    );
    svc.kill().await;

    // A damaged real file is never guessed around: the service refuses to start.
    std::fs::write(store.join("pvc-a.json"), &good[..good.len() / 2]).unwrap();
    let mut svc = Proc::start(local(dir.path(), None));
    let res = svc
        .exited(Duration::from_secs(5))
        .await
        .expect("must refuse to start");
    let err = res.unwrap_err().to_string();
    assert!(err.contains("pvc-a.json"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn attachments_to_unknown_nodes_are_cleared_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let events = Events::start(dir.path()).await;
    let mut cfg = local(dir.path(), Some(&events));
    cfg.known_nodes = vec!["n1".into(), "n2".into()];
    let svc = Proc::start(cfg.clone());
    let mut c = svc.client();
    ready(&mut c).await;
    c.attach(attach_req(
        "keep",
        "n1",
        AccessMode::SingleNodeWriter,
        false,
    ))
    .await
    .unwrap();
    c.attach(attach_req(
        "gone",
        "n2",
        AccessMode::SingleNodeWriter,
        false,
    ))
    .await
    .unwrap();
    svc.stop().await.unwrap();

    // n2 was removed from the node set.
    cfg.known_nodes = vec!["n1".into()];
    cfg.grace_period = Duration::from_millis(1500);
    cfg.reconcile_interval = Duration::from_millis(200);
    let started = Instant::now();
    let svc = Proc::start(cfg);
    let mut c = svc.client();
    ready(&mut c).await;
    let err = c
        .attach(attach_req("new", "n2", AccessMode::SingleNodeWriter, false))
        .await
        .unwrap_err();
    assert_eq!(reason_of(&err), Some(Reason::NodeNotFound));

    // Not before the grace period: wait for the clear, then compare times.
    support::eventually(Duration::from_secs(10), || {
        let mut c = c.clone();
        async move { (list(&mut c).await.len() == 1).then_some(()) }
    })
    .await
    .expect("cleared");
    assert!(started.elapsed() >= Duration::from_millis(1500));

    let ev = &events.wait("StaleAttachmentCleared", "gone", 1).await[0];
    assert_eq!(
        ev["message"],
        "[gone]: Cleared stale attachment from deleted node n2"
    );
    assert_eq!(ev["pvc_name"], "claim-gone");
    // Durable before the event: the file is gone already.
    assert!(!dir.path().join("attachments/gone.json").exists());
    let left = list(&mut c).await;
    assert_eq!(
        left.iter()
            .map(|a| a.volume_id.as_str())
            .collect::<Vec<_>>(),
        ["keep"]
    );
    svc.stop().await.unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Numbers for the closing note:
/// `cargo test -p attachment-service --test local -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn bench_attach_latency_and_reconcile_10k() {
    use attachment_service::cluster::KnownNodes;
    use attachment_service::events::EventPoster;
    use attachment_service::metrics::Metrics;
    use attachment_service::reconcile::Reconciler;
    use attachment_service::store::file::FileStore;
    use std::sync::Arc;

    // 1. Attach p50/p99 over 1,000 calls, real gRPC, event path on.
    let dir = tempfile::tempdir().unwrap();
    let events = Events::start(dir.path()).await;
    attach_1000_over_grpc(dir.path(), &events).await;

    // 2. Reconcile over 10,000 attachments.
    let dir2 = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(dir2.path()).unwrap());
    let loaded = write_then_load(store.as_ref(), &ten_thousand_records()).await;

    let metrics = Arc::new(Metrics::new());
    let poster = EventPoster::new(
        Some(&events.endpoint()),
        Duration::from_millis(500),
        metrics.clone(),
    )
    .unwrap();
    let n1 = rds_bus::NodeId::parse("n1").unwrap();
    let n2 = rds_bus::NodeId::parse("n2").unwrap();
    let present = Arc::new(KnownNodes::new(&[n1]));
    let manager = attachment_service::Manager::new(
        store.clone(),
        poster.clone(),
        metrics.clone(),
        present.clone(),
        300,
    );
    manager.install(loaded);
    let mut r = Reconciler::new(manager.clone(), present, Duration::ZERO);
    let rep = r.pass().await.unwrap();
    println!(
        "reconcile pass, 10,000 attachments, none stale: {:?} (cleared {})",
        rep.took, rep.cleared
    );
    assert_eq!(rep.cleared, 0);

    let gone = Arc::new(KnownNodes::new(&[n2]));
    let mut r = Reconciler::new(manager.clone(), gone, Duration::ZERO);
    let rep = r.pass().await.unwrap();
    println!(
        "reconcile pass, 10,000 attachments, all stale (durable clear + 10,000 events queued): {:?}",
        rep.took
    );
    assert_eq!(rep.cleared, 10_000);
    assert!(manager.is_empty());
    let arrived = support::eventually(Duration::from_secs(60), || async {
        let n = events.with_reason("StaleAttachmentCleared").len();
        (n >= 10_000).then_some(n)
    })
    .await
    .unwrap_or_else(|| events.with_reason("StaleAttachmentCleared").len());
    let text = metrics.render();
    let posts: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("rds_csi_attachment_events_total"))
        .collect();
    println!(
        "StaleAttachmentCleared lines in events.jsonl: {arrived}; our post counters: {posts:?}"
    );
    assert_eq!(
        std::fs::read_dir(dir2.path()).unwrap().count(),
        1,
        "only .lock is left"
    );
}

/// Attach p50/p99 over 1,000 calls, real gRPC, event path on.
async fn attach_1000_over_grpc(dir: &std::path::Path, events: &Events) {
    let svc = Proc::start(local(dir, Some(events)));
    let mut c = svc.client();
    ready(&mut c).await;
    let mut lat = Vec::with_capacity(1000);
    for i in 0..1000 {
        let t = Instant::now();
        c.attach(attach_req(
            &format!("bench-{i}"),
            "n1",
            AccessMode::SingleNodeWriter,
            false,
        ))
        .await
        .unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "Attach over gRPC, local file store, event path on: n=1000 p50={:?} p99={:?} max={:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[999]
    );
    support::eventually(Duration::from_secs(30), || async {
        (events.with_reason("VolumeAttached").len() >= 1000).then_some(())
    })
    .await
    .expect("all 1000 VolumeAttached events arrive");
    svc.stop().await.unwrap();
}

/// Writes the records in one batch and loads them back, printing both times.
async fn write_then_load(
    store: &attachment_service::store::file::FileStore,
    recs: &[attachment_service::model::Record],
) -> Vec<attachment_service::model::Record> {
    use attachment_service::store::{Batch, Store};
    let t = Instant::now();
    store
        .commit(Batch {
            put: recs,
            remove: &[],
        })
        .await
        .unwrap();
    println!(
        "write 10,000 records (one fsynced file each): {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let loaded = store.load().await.unwrap();
    println!("load 10,000 records: {:?}", t.elapsed());
    loaded
}

/// 10,000 RWO records on n1, volumes pvc-00000 and up.
fn ten_thousand_records() -> Vec<attachment_service::model::Record> {
    let template = {
        attachment_service::model::Record {
            volume: rds_bus::VolumeId::parse("x").unwrap(),
            nodes: vec![attachment_service::model::NodeAttachment {
                node: rds_bus::NodeId::parse("n1").unwrap(),
                attached_at: jiff::Timestamp::now(),
                readonly: false,
            }],
            access_mode: attachment_service::model::AccessMode::SingleNodeWriter,
            block: false,
            pvc: attachment_service::model::PvcRef::new("ns", "c"),
            migration_timeout_secs: 300,
            migration: None,
            inferred: false,
        }
    };
    let recs: Vec<_> = (0..10_000)
        .map(|i| {
            let mut r = template.clone();
            r.volume = rds_bus::VolumeId::parse(&format!("pvc-{i:05}")).unwrap();
            r
        })
        .collect();
    recs
}

/// `clear_stale` decides again under the volume's lock: a pair attached
/// after it was first seen missing is kept (a new Attach served meanwhile),
/// and so is a pair whose node is no longer seen gone.
#[tokio::test(flavor = "multi_thread")]
async fn clear_stale_re_checks_under_the_volume_lock() {
    use attachment_service::cluster::{Cluster, Presence};
    use attachment_service::events::EventPoster;
    use attachment_service::metrics::Metrics;
    use attachment_service::model::{AccessMode as Mode, NodeAttachment, Record};
    use attachment_service::store::file::FileStore;
    use rds_bus::{NodeId, VolumeId};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct NodeGone(AtomicBool);
    impl Cluster for NodeGone {
        fn node(&self, _: &NodeId) -> Presence {
            if self.0.load(Ordering::SeqCst) {
                Presence::Gone
            } else {
                Presence::Present
            }
        }
        fn attachment_object(&self, _: &VolumeId, _: &NodeId) -> Presence {
            Presence::Unknown
        }
    }
    let rec = |vol: &str, at: jiff::Timestamp| Record {
        volume: VolumeId::parse(vol).unwrap(),
        nodes: vec![NodeAttachment {
            node: NodeId::parse("n1").unwrap(),
            attached_at: at,
            readonly: false,
        }],
        access_mode: Mode::SingleNodeWriter,
        block: false,
        pvc: None,
        migration_timeout_secs: 300,
        migration: None,
        inferred: false,
    };
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let cluster = Arc::new(NodeGone(AtomicBool::new(true)));
    let manager = attachment_service::Manager::new(
        Arc::new(FileStore::open(dir.path()).unwrap()),
        EventPoster::new(None, Duration::from_secs(1), metrics.clone()).unwrap(),
        metrics,
        cluster.clone(),
        300,
    );
    let seen_missing = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    let before = seen_missing - jiff::SignedDuration::from_secs(60);
    let after = seen_missing + jiff::SignedDuration::from_secs(1);
    manager.install(vec![
        rec("old", before),
        rec("new", after),
        rec("back", before),
    ]);
    let n1 = NodeId::parse("n1").unwrap();
    let pair = |v: &str| (VolumeId::parse(v).unwrap(), n1.clone(), seen_missing);

    let cleared = manager
        .clear_stale(&[pair("old"), pair("new")], false)
        .await
        .unwrap();
    assert_eq!(cleared, [(VolumeId::parse("old").unwrap(), n1.clone())]);

    // The node is back by the time the clear runs: nothing is cleared.
    cluster.0.store(false, Ordering::SeqCst);
    let cleared = manager.clear_stale(&[pair("back")], false).await.unwrap();
    assert!(cleared.is_empty());
    let held: Vec<String> = manager
        .list(None, None)
        .unwrap()
        .into_iter()
        .map(|r| r.volume.to_string())
        .collect();
    assert_eq!(held, ["back", "new"]);
}

/// A cancelled Attach never leaves disk and memory disagreeing. The store
/// below finishes its write on a task of its own, as the file store's
/// blocking thread does after its caller is dropped; the call is dropped
/// while that write is held back. Once the write has landed, a second Attach
/// of the same pair must find it (already attached): the first call's work
/// ran to its end, table included, under the volume lock.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_attach_completes_in_memory_as_on_disk() {
    use attachment_service::AttachmentsService;
    use attachment_service::cluster::KnownNodes;
    use attachment_service::events::EventPoster;
    use attachment_service::metrics::Metrics;
    use attachment_service::store::file::FileStore;
    use held::HeldStore;
    use rds_proto::attachment::attachments_server::Attachments;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::sync::Semaphore;

    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let landed = Arc::new(AtomicBool::new(false));
    let store = Arc::new(HeldStore {
        inner: Arc::new(FileStore::open(dir.path()).unwrap()),
        gate: gate.clone(),
        landed: landed.clone(),
    });
    let metrics = Arc::new(Metrics::new());
    let manager = attachment_service::Manager::new(
        store,
        EventPoster::new(None, Duration::from_secs(1), metrics.clone()).unwrap(),
        metrics,
        Arc::new(KnownNodes::new(&[])),
        300,
    );
    manager.install(vec![]);
    let svc = AttachmentsService::new(manager.clone());
    let req = || pb::AttachRequest {
        volume_id: "pvc-cancelled".into(),
        node_id: "node-a".into(),
        access_mode: AccessMode::SingleNodeWriter as i32,
        ..Default::default()
    };

    // The caller gives up while the write is held back.
    let first = tokio::time::timeout(
        Duration::from_millis(200),
        svc.attach(tonic::Request::new(req())),
    )
    .await;
    assert!(
        first.is_err(),
        "the call must still be waiting on the store"
    );
    gate.add_permits(10);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !landed.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the held write never landed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(dir.path().join("pvc-cancelled.json").exists());

    let again = svc
        .attach(tonic::Request::new(req()))
        .await
        .unwrap()
        .into_inner();
    assert!(
        again.already_attached,
        "memory must hold what the cancelled call wrote to disk"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A store that finishes its write on a task of its own once `gate` lets it
/// (as the file store's blocking thread does after its caller is dropped).
mod held {
    use attachment_service::error::Error;
    use attachment_service::model::Record;
    use attachment_service::store::file::FileStore;
    use attachment_service::store::{Batch, Store};
    use futures::FutureExt;
    use futures::future::BoxFuture;
    use rds_bus::VolumeId;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::sync::Semaphore;

    pub struct HeldStore {
        pub inner: Arc<FileStore>,
        pub gate: Arc<Semaphore>,
        pub landed: Arc<AtomicBool>,
    }
    impl Store for HeldStore {
        fn load(&self) -> BoxFuture<'_, Result<Vec<Record>, Error>> {
            self.inner.load()
        }
        fn commit<'a>(&'a self, batch: Batch<'a>) -> BoxFuture<'a, Result<(), Error>> {
            let (inner, gate, landed) =
                (self.inner.clone(), self.gate.clone(), self.landed.clone());
            let (put, remove): (Vec<Record>, Vec<VolumeId>) =
                (batch.put.to_vec(), batch.remove.to_vec());
            let write = tokio::spawn(async move {
                let _permit = gate.acquire().await;
                let r = inner
                    .commit(Batch {
                        put: &put,
                        remove: &remove,
                    })
                    .await;
                landed.store(true, Ordering::SeqCst);
                r
            });
            async move { write.await.map_err(|e| Error::Internal(e.to_string()))? }.boxed()
        }
        fn describe(&self) -> String {
            "held file store".into()
        }
    }
}
