//! Kubernetes mode against the in-process fake API server (real Kubernetes
//! JSON over HTTP, kube's own client and watcher), with the real
//! event-service (file sink) receiving the events.

// `cfg(test)` lets clippy.toml's unwrap/expect allowance cover the helpers.
#![cfg(test)]

mod support;

use std::time::{Duration, Instant};

use attachment_service::Config;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, PersistentVolume};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use rds_bus::{Reason, reason_of};
use rds_proto::attachment::{self as pb, AccessMode};
use rds_testkit::Verb;
use serde_json::{Value, json};
use support::*;
use tonic::Code;

const DRIVER: &str = "rds.csi.srvlab.io";
const LEASE_NS: &str = "rds-csi";
const LEASE: &str = "rds-csi-attachment-service";

fn kube_cfg(fake: &FakeApi, dir: &std::path::Path, events: &Events, identity: &str) -> Config {
    let mut c = Config::kube(fake.kubeconfig_for(dir, identity));
    c.events_endpoint = Some(events.endpoint());
    c.lease_identity = Some(identity.to_owned());
    c.lease_namespace = LEASE_NS.to_owned();
    c.lease_duration = Duration::from_secs(2);
    c.grace_period = Duration::from_secs(1);
    c.reconcile_interval = Duration::from_secs(60);
    c
}

fn holder(fake: &FakeApi) -> Option<String> {
    fake.get_value::<Lease>(Some(LEASE_NS), LEASE)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

async fn wait_holder(fake: &FakeApi, who: &str, within: Duration) {
    eventually(within, || async {
        (holder(fake).as_deref() == Some(who)).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{who} never held the Lease; holder {:?}", holder(fake)));
}

fn seed_nodes(fake: &FakeApi, names: &[&str]) {
    for n in names {
        fake.put_value::<Node>(objects::node(n));
    }
}

/// PV `pv-<x>` for volume `pvc-<x>`: the PV name differs from the volume
/// handle on purpose, so the mapping must go through the PV.
fn seed_rwo(fake: &FakeApi, x: &str) {
    let pvc = format!("claim-{x}");
    fake.put_value::<PersistentVolume>(objects::pv(
        &format!("pv-{x}"),
        &format!("pvc-{x}"),
        &["ReadWriteOnce"],
        false,
        Some(("apps", &pvc)),
        DRIVER,
    ));
}

/// An attached VolumeAttachment of this driver, created at `at`.
fn put_attached_va(fake: &FakeApi, name: &str, pv: &str, node: &str, at: &str) {
    fake.put_value::<VolumeAttachment>(objects::va(name, pv, node, true, DRIVER, at));
}

/// A single-node-writer filesystem attach.
fn rwo(volume: &str, node: &str) -> pb::AttachRequest {
    attach_req(volume, node, AccessMode::SingleNodeWriter, false)
}

/// Waits (≤ `within`) until the attachment table satisfies `ok`; returns it.
async fn until_table(
    c: &Client,
    within: Duration,
    what: &str,
    ok: impl Fn(&[pb::Attachment]) -> bool,
) -> Vec<pb::Attachment> {
    let ok = &ok;
    support::eventually(within, || {
        let mut c = c.clone();
        async move { Some(list(&mut c).await).filter(|l| ok(l)) }
    })
    .await
    .unwrap_or_else(|| panic!("timed out ({within:?}) waiting for: {what}"))
}

fn set_attached(mut va: Value, attached: bool) -> Value {
    va["status"]["attached"] = json!(attached);
    va
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_from_volume_attachments_and_again_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApi::start().await;
    let events = Events::start(dir.path()).await;
    seed_rebuild_world(&fake);
    let svc = Proc::start(kube_cfg(&fake, dir.path(), &events, "r1"));
    let mut c = svc.client();
    ready(&mut c).await;
    let table = list(&mut c).await;
    assert_eq!(
        table
            .iter()
            .map(|a| a.volume_id.as_str())
            .collect::<Vec<_>>(),
        ["pvc-a", "pvc-b"]
    );
    assert_rebuilt(&table);
    fences_from_the_rebuilt_table(&mut c).await;
    // Nothing but the Lease was written to the API.
    assert!(
        fake.writes()
            .iter()
            .all(|(_, path)| path.contains("/leases")),
        "{:?}",
        fake.writes()
    );
    svc.kill().await;

    let svc = Proc::start(kube_cfg(&fake, dir.path(), &events, "r2"));
    let mut c = svc.client();
    ready(&mut c).await;
    assert_eq!(list(&mut c).await, table);
}

/// Nodes n1-n3; pvc-a (RWO, n1), pvc-b (RWX block, PVC in claimRef only,
/// n1 then n2: a migration), pvc-c (refused earlier: never attached) and
/// pvc-z of another driver.
fn seed_rebuild_world(fake: &FakeApi) {
    seed_nodes(fake, &["n1", "n2", "n3"]);
    seed_rwo(fake, "a");
    // RWX block with the PVC only in claimRef.
    let mut pv_b = objects::pv("pv-b", "pvc-b", &["ReadWriteMany"], true, None, DRIVER);
    pv_b["spec"]["claimRef"] =
        json!({"kind": "PersistentVolumeClaim", "namespace": "vms", "name": "disk-b"});
    pv_b["spec"]["csi"]["volumeAttributes"]["migrationTimeoutSeconds"] = json!("120");
    fake.put_value::<PersistentVolume>(pv_b);
    seed_rwo(fake, "c");
    fake.put_value::<PersistentVolume>(objects::pv(
        "pv-z",
        "pvc-z",
        &["ReadWriteOnce"],
        false,
        None,
        "other.csi.io",
    ));
    put_attached_va(fake, "va-a", "pv-a", "n1", "2025-01-01T00:00:00Z");
    put_attached_va(fake, "va-b1", "pv-b", "n1", "2025-01-01T00:00:00Z");
    put_attached_va(fake, "va-b2", "pv-b", "n2", "2025-01-01T00:00:30Z");
    // Refused by us earlier: attachError set, never attached.
    let mut refused = objects::va("va-c", "pv-c", "n2", false, DRIVER, "2025-01-01T00:00:00Z");
    refused["status"]["attachError"] =
        json!({"message": "ATTACHED_ELSEWHERE", "time": "2025-01-01T00:00:01Z"});
    fake.put_value::<VolumeAttachment>(refused);
    fake.put_value::<VolumeAttachment>(objects::va(
        "va-z",
        "pv-z",
        "n1",
        true,
        "other.csi.io",
        "2025-01-01T00:00:00Z",
    ));
}

/// The table rebuilt from [`seed_rebuild_world`].
fn assert_rebuilt(table: &[pb::Attachment]) {
    let (a, b) = (&table[0], &table[1]);
    assert_eq!(nodes_of(a), ["n1"]);
    assert_eq!(a.access_mode, AccessMode::SingleNodeWriter as i32);
    assert_eq!(
        a.pvc,
        Some(rds_proto::common::PvcRef {
            namespace: "apps".into(),
            name: "claim-a".into()
        })
    );
    assert_eq!(nodes_of(b), ["n1", "n2"], "source (older VA) first");
    assert_eq!(b.access_mode, AccessMode::MultiNodeMultiWriter as i32);
    assert!(b.block);
    assert_eq!(
        b.pvc,
        Some(rds_proto::common::PvcRef {
            namespace: "vms".into(),
            name: "disk-b".into()
        })
    );
    assert_eq!(b.migration_timeout_seconds, 120);
    let expect_started = jiff::Timestamp::from_second(1_735_689_630).unwrap();
    assert_eq!(
        b.migration_started_at.as_ref().unwrap().seconds,
        expect_started.as_second()
    );
}

/// It fences from the rebuilt table; the holder's own repeat with its real
/// access mode is accepted (the rebuilt mode was only inferred).
async fn fences_from_the_rebuilt_table(c: &mut Client) {
    let err = c.attach(rwo("pvc-a", "n2")).await.unwrap_err();
    assert_eq!(reason_of(&err), Some(Reason::AttachedElsewhere));
    assert!(err.message().contains("node n1"), "{}", err.message());
    let third = c
        .attach(attach_req(
            "pvc-b",
            "n3",
            AccessMode::MultiNodeMultiWriter,
            true,
        ))
        .await
        .unwrap_err();
    assert_eq!(reason_of(&third), Some(Reason::MigrationLimit));
    let again = c
        .attach(attach_req(
            "pvc-a",
            "n1",
            AccessMode::SingleNodeMultiWriter,
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(again.already_attached);
}

#[tokio::test(flavor = "multi_thread")]
async fn unavailable_until_the_api_answers_then_fast_even_if_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApi::start().await;
    let events = Events::start(dir.path()).await;
    seed_nodes(&fake, &["n1"]);
    seed_rwo(&fake, "a");
    fake.set_failing(true);
    let svc = Proc::start(kube_cfg(&fake, dir.path(), &events, "r1"));
    let mut c = svc.client();
    for _ in 0..5 {
        let err = support::eventually(Duration::from_secs(5), || {
            let mut c = c.clone();
            async move { c.attach(rwo("pvc-a", "n1")).await.err() }
        })
        .await
        .expect("attach must not succeed while the API fails");
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert_eq!(reason_of(&err), Some(Reason::StoreNotReady));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fake.set_failing(false);
    let ok = support::eventually(Duration::from_secs(15), || {
        let mut c = c.clone();
        async move { c.attach(rwo("pvc-a", "n1")).await.ok() }
    })
    .await;
    assert!(ok.is_some(), "rebuild is retried until it succeeds");

    // Once rebuilt, the API failing does not slow Attach/Detach down.
    fake.set_failing(true);
    let t = Instant::now();
    c.detach(detach_req("pvc-a", "n1")).await.unwrap();
    c.attach(rwo("pvc-a", "n1")).await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    let ev = &events.wait("VolumeAttached", "pvc-a", 2).await[1];
    assert_eq!(ev["pvc_name"], "claim-pvc-a");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_node_is_cleared_after_the_grace_period_with_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApi::start().await;
    let events = Events::start(dir.path()).await;
    seed_nodes(&fake, &["n1", "n2"]);
    seed_rwo(&fake, "a");
    put_attached_va(&fake, "va-a", "pv-a", "n2", "2025-01-01T00:00:00Z");
    let svc = Proc::start(kube_cfg(&fake, dir.path(), &events, "r1"));
    let mut c = svc.client();
    ready(&mut c).await;
    wait_holder(&fake, "r1", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let deleted = Instant::now();
    fake.delete::<Node>(None, "n2");
    // Kept within the grace period: the moment it left the table is at or
    // after the grace period (a positive wait, then the comparison).
    until_table(&c, Duration::from_secs(10), "cleared", <[_]>::is_empty).await;
    let cleared_after = deleted.elapsed();
    assert!(cleared_after >= Duration::from_secs(1), "{cleared_after:?}");
    let ev = &events.wait("StaleAttachmentCleared", "pvc-a", 1).await[0];
    let after = deleted.elapsed();
    assert!(
        after >= Duration::from_secs(1) && after < Duration::from_secs(10),
        "{after:?}"
    );
    assert_eq!(
        ev["message"],
        "[pvc-a]: Cleared stale attachment from deleted node n2"
    );
    assert_eq!(
        (ev["pvc_namespace"].as_str(), ev["pvc_name"].as_str()),
        (Some("apps"), Some("claim-a"))
    );
    let err = c
        .get(pb::GetRequest {
            volume_id: "pvc-a".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Another node may take it now.
    c.attach(rwo("pvc-a", "n1")).await.unwrap();
    svc.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_watch_adopts_forgets_and_a_vanished_attached_va_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApi::start().await;
    let events = Events::start(dir.path()).await;
    seed_nodes(&fake, &["n1", "n2"]);
    seed_rwo(&fake, "x");
    seed_rwo(&fake, "y");
    let svc = Proc::start(kube_cfg(&fake, dir.path(), &events, "r1"));
    let mut c = svc.client();
    ready(&mut c).await;
    assert!(list(&mut c).await.is_empty());

    // Another replica attached pvc-x on n1: the VA shows it.
    let va_x = objects::va("va-x", "pv-x", "n1", false, DRIVER, "2025-01-01T00:00:00Z");
    fake.put_value::<VolumeAttachment>(va_x.clone());
    fake.put_value::<VolumeAttachment>(set_attached(va_x.clone(), true));
    let adopted = until_table(&c, Duration::from_secs(5), "attached VA adopted", |l| {
        !l.is_empty()
    })
    .await;
    assert_eq!(nodes_of(&adopted[0]), ["n1"]);
    let err = c.attach(rwo("pvc-x", "n2")).await.unwrap_err();
    assert_eq!(reason_of(&err), Some(Reason::AttachedElsewhere));

    // ...and detached it: attached=false, then the VA goes away.
    fake.put_value::<VolumeAttachment>(set_attached(va_x, false));
    fake.delete::<VolumeAttachment>(None, "va-x");
    until_table(
        &c,
        Duration::from_secs(5),
        "detached VA forgotten",
        <[_]>::is_empty,
    )
    .await;

    // A VA removed while still attached: stale after the grace period.
    put_attached_va(&fake, "va-y", "pv-y", "n1", "2025-01-01T00:00:00Z");
    c.attach(rwo("pvc-y", "n1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deleted = Instant::now();
    fake.delete::<VolumeAttachment>(None, "va-y");
    let ev = &events.wait("StaleAttachmentCleared", "pvc-y", 1).await[0];
    // After the grace period (1 s), long before the 60 s interval: the
    // deletion itself asked for a pass.
    let after = deleted.elapsed();
    assert!(
        after >= Duration::from_secs(1) && after < Duration::from_secs(10),
        "{after:?}"
    );
    assert_eq!(ev["node_id"], "n1");
    assert!(
        events
            .with_reason("StaleAttachmentCleared")
            .iter()
            .all(|e| e["volume_id"] != "pvc-x")
    );
    assert!(
        events.with_reason("VolumeDetached").is_empty(),
        "forgetting is silent"
    );
    svc.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_lease_holder_reconciles_and_a_standby_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApi::start().await;
    let events = Events::start(dir.path()).await;
    seed_nodes(&fake, &["n1", "n2"]);
    seed_rwo(&fake, "a");
    seed_rwo(&fake, "b");
    put_attached_va(&fake, "va-a", "pv-a", "n2", "2025-01-01T00:00:00Z");
    put_attached_va(&fake, "va-b", "pv-b", "n1", "2025-01-01T00:00:00Z");

    let a = Proc::start(kube_cfg(&fake, dir.path(), &events, "replica-a"));
    wait_holder(&fake, "replica-a", Duration::from_secs(5)).await;
    let b = Proc::start(kube_cfg(&fake, dir.path(), &events, "replica-b"));
    let (mut ca, mut cb) = (a.client(), b.client());
    ready(&mut ca).await;
    ready(&mut cb).await;
    // Three lease durations of the standby's reads later (one read per
    // third of a duration), it has not taken the Lease.
    let reads = |who: &str| {
        fake.calls_to(Verb::Get, "leases")
            .iter()
            .filter(|c| c.client == who && c.status.is_some())
            .count()
    };
    let before = reads("replica-b");
    support::eventually(Duration::from_secs(10), || {
        let n = reads("replica-b");
        async move { (n >= before + 9).then_some(()) }
    })
    .await
    .expect("the standby keeps reading the Lease");
    assert_eq!(holder(&fake).as_deref(), Some("replica-a"));

    // A node goes: every replica clears its own table; the leader alone
    // posts the event.
    fake.delete::<Node>(None, "n2");
    events.wait("StaleAttachmentCleared", "pvc-a", 1).await;
    for (who, c) in [("leader", &ca), ("standby", &cb)] {
        support::eventually(Duration::from_secs(10), || {
            let mut c = c.clone();
            async move {
                let held = list(&mut c).await;
                held.iter().all(|x| x.volume_id != "pvc-a").then_some(())
            }
        })
        .await
        .unwrap_or_else(|| panic!("the {who} keeps the stale attachment"));
    }

    // The leader crashes without releasing: the standby takes over after the
    // lease duration and does the leader's work.
    let crashed = Instant::now();
    a.kill().await;
    wait_holder(&fake, "replica-b", Duration::from_secs(10)).await;
    // Not before the record went unrenewed for a lease duration (2 s),
    // measured from B's last sight of A's last renewal (≤ 1/3 before).
    assert!(
        crashed.elapsed() >= Duration::from_millis(1200),
        "{:?}",
        crashed.elapsed()
    );
    let lease = fake.get_value::<Lease>(Some(LEASE_NS), LEASE).unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    fake.delete::<Node>(None, "n1");
    events.wait("StaleAttachmentCleared", "pvc-b", 1).await;
    support::eventually(Duration::from_secs(10), || {
        let mut cb = cb.clone();
        async move { list(&mut cb).await.is_empty().then_some(()) }
    })
    .await
    .expect("the new leader reconciles");
    // The later event is the barrier: pvc-a's clear was posted once, by the
    // leader of the time, not once per replica.
    let about_a = events
        .with_reason("StaleAttachmentCleared")
        .into_iter()
        .filter(|e| e["volume_id"] == "pvc-a")
        .count();
    assert_eq!(about_a, 1);

    // A graceful stop hands the Lease back at once.
    b.stop().await.unwrap();
    assert_eq!(holder(&fake), None);
}

/// Watch events arrive late relative to calls served here: neither may
/// resurrect a detached attachment nor drop a re-attached one. (A long grace
/// period keeps the reconciler out of it.)
#[tokio::test(flavor = "multi_thread")]
async fn late_watch_events_neither_resurrect_nor_drop_attachments() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApi::start().await;
    let events = Events::start(dir.path()).await;
    seed_nodes(&fake, &["n1"]);
    seed_rwo(&fake, "w");
    seed_rwo(&fake, "v");
    seed_rwo(&fake, "q");
    let mut cfg = kube_cfg(&fake, dir.path(), &events, "r1");
    cfg.grace_period = Duration::from_secs(30);
    let metrics = free_addr();
    cfg.metrics_addr = metrics.clone();
    let svc = Proc::start(cfg);
    let mut c = svc.client();
    ready(&mut c).await;

    // Late events around a detach served here must not resurrect it.
    let va_w = objects::va("va-w", "pv-w", "n1", true, DRIVER, "2025-01-01T00:00:00Z");
    fake.put_value::<VolumeAttachment>(va_w.clone());
    until_table(&c, Duration::from_secs(5), "va-w adopted", |l| l.len() == 1).await;
    assert!(
        c.detach(detach_req("pvc-w", "n1"))
            .await
            .unwrap()
            .into_inner()
            .was_attached
    );
    let mut deleting = va_w.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2025-01-01T01:00:00Z");
    fake.put_value::<VolumeAttachment>(deleting);
    // Barrier: a later VA (another volume) has been adopted, so the watch
    // has delivered the deleting one before it.
    put_attached_va(&fake, "va-q", "pv-q", "n1", "2025-01-01T00:00:00Z");
    let held = until_table(&c, Duration::from_secs(5), "va-q adopted", |l| {
        l.iter().any(|a| a.volume_id == "pvc-q")
    })
    .await;
    assert!(
        held.iter().all(|a| a.volume_id != "pvc-w"),
        "a VA being deleted is not adopted"
    );

    // Re-attach to the same node: the old VA's deletion (same name) arrives
    // after the new Attach was served here; the new attachment survives.
    fake.put_value::<VolumeAttachment>(set_attached(va_w, false));
    fake.delete::<VolumeAttachment>(None, "va-w");
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.attach(rwo("pvc-w", "n1")).await.unwrap();
    // Barrier: the watch's decision about the old VA was made.
    wait_metric(
        &metrics,
        "rds_csi_attachment_reconcile_total{action=\"forget_kept\"} 1",
    )
    .await;
    assert!(
        list(&mut c).await.iter().any(|a| a.volume_id == "pvc-w"),
        "attached after the old VA was seen gone"
    );
    a_newer_va_keeps_the_pair(&fake, &mut c, &metrics).await;
    c.detach(detach_req("pvc-v", "n1")).await.unwrap();
    c.detach(detach_req("pvc-w", "n1")).await.unwrap();

    svc.stop().await.unwrap();
}

/// pvc-v attached here while its old VA is detached and deleted and a newer
/// VA for the same pair appears: the pair is kept, nothing forgotten.
async fn a_newer_va_keeps_the_pair(fake: &FakeApi, c: &mut Client, metrics: &str) {
    let old = objects::va("va-v", "pv-v", "n1", true, DRIVER, "2025-01-01T00:00:00Z");
    fake.put_value::<VolumeAttachment>(old.clone());
    c.attach(rwo("pvc-v", "n1")).await.unwrap();
    fake.put_value::<VolumeAttachment>(set_attached(old, false));
    fake.delete::<VolumeAttachment>(None, "va-v");
    fake.put_value::<VolumeAttachment>(objects::va(
        "va-v",
        "pv-v",
        "n1",
        false,
        DRIVER,
        "2025-01-01T02:00:00Z",
    ));
    wait_metric(
        metrics,
        "rds_csi_attachment_reconcile_total{action=\"forget_kept\"} 2",
    )
    .await;
    let held: Vec<String> = list(c).await.into_iter().map(|a| a.volume_id).collect();
    assert_eq!(
        held,
        ["pvc-q", "pvc-v", "pvc-w"],
        "a newer VA for the pair keeps it"
    );
    assert!(
        !scrape(metrics).await.contains("action=\"forget\""),
        "nothing forgotten"
    );
}

/// Waits (≤ 10 s) until the metrics page shows `line`.
async fn wait_metric(addr: &str, line: &str) {
    support::eventually(Duration::from_secs(10), || async move {
        scrape(addr).await.contains(line).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("metric never showed {line}"));
}
