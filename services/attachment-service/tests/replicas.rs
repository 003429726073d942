//! Two attachment-service replicas against one fake API server (each with
//! its own client identity, so faults can hit one of them): their tables
//! converge, at most one of them leads at any instant, and a watch re-list
//! during a publish does not lose the new attachment.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use attachment_service::Config;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, PersistentVolume};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use rds_bus::{Reason, reason_of};
use rds_proto::attachment::AccessMode;
use rds_testkit::{Fault, Verb};
use serde_json::{Value, json};
use support::*;

const DRIVER: &str = "rds.csi.srvlab.io";
const LEASE_NS: &str = "rds-csi";
const LEASE: &str = "rds-csi-attachment-service";

fn cfg_for(
    fake: &FakeApi,
    dir: &std::path::Path,
    events: &Events,
    identity: &str,
    grace: Duration,
    interval: Duration,
) -> Config {
    let mut c = Config::kube(fake.kubeconfig_for(dir, identity));
    c.events_endpoint = Some(events.endpoint());
    c.lease_identity = Some(identity.to_owned());
    c.lease_namespace = LEASE_NS.to_owned();
    c.lease_duration = Duration::from_secs(2);
    c.grace_period = grace;
    c.reconcile_interval = interval;
    c
}

fn holder(fake: &FakeApi) -> Option<String> {
    fake.get_value::<Lease>(Some(LEASE_NS), LEASE)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

/// Node names, and PV `pv-<x>` for volume `pvc-<x>` (RWO).
fn seed(fake: &FakeApi, nodes: &[&str], vols: &[&str]) {
    for n in nodes {
        fake.put_value::<Node>(objects::node(n));
    }
    for x in vols {
        fake.put_value::<PersistentVolume>(objects::pv(
            &format!("pv-{x}"),
            &format!("pvc-{x}"),
            &["ReadWriteOnce"],
            false,
            Some(("apps", &format!("claim-{x}"))),
            DRIVER,
        ));
    }
}

fn attached_va(name: &str, pv: &str, node: &str) -> Value {
    objects::va(name, pv, node, true, DRIVER, "2025-01-01T00:00:00Z")
}

async fn until(what: &str, within: Duration, cond: impl Fn() -> bool) {
    eventually(within, || {
        let ok = cond();
        async move { ok.then_some(()) }
    })
    .await
    .unwrap_or_else(|| panic!("timed out ({within:?}) waiting for: {what}"));
}

/// Replicas r-a and r-b, started one after the other.
async fn two_replicas(
    fake: &FakeApi,
    dir: &std::path::Path,
    events: &Events,
    (grace, interval): (Duration, Duration),
) -> (Replica, Replica) {
    let a = Replica::start("r-a", cfg_for(fake, dir, events, "r-a", grace, interval)).await;
    let b = Replica::start("r-b", cfg_for(fake, dir, events, "r-b", grace, interval)).await;
    (a, b)
}

async fn until_a_leader(a: &Replica, b: &Replica) {
    until("a leader", Duration::from_secs(10), || {
        a.is_leader() || b.is_leader()
    })
    .await;
}

/// An attached VolumeAttachment deleted by hand (finalizer removed): both
/// replicas clear their own table within one reconcile period; the Lease
/// holder alone posts the event.
#[tokio::test(flavor = "multi_thread")]
async fn a_va_deleted_while_attached_is_cleared_from_both_tables() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApi::start().await;
    let events = Events::start(dir.path()).await;
    seed(&fake, &["n1", "n2"], &["a", "z"]);
    fake.put_value::<VolumeAttachment>(attached_va("va-a", "pv-a", "n1"));
    fake.put_value::<VolumeAttachment>(attached_va("va-z", "pv-z", "n2"));
    let (grace, interval) = (Duration::from_secs(1), Duration::from_secs(5));
    let (a, b) = two_replicas(&fake, dir.path(), &events, (grace, interval)).await;
    until("both tables rebuilt", Duration::from_secs(10), || {
        a.holds("pvc-a", "n1") && b.holds("pvc-a", "n1")
    })
    .await;
    until_a_leader(&a, &b).await;

    let deleted = Instant::now();
    fake.delete::<VolumeAttachment>(None, "va-a");
    let (mut gone_a, mut gone_b) = (None, None);
    let deadline = deleted + grace + interval;
    while (gone_a.is_none() || gone_b.is_none()) && Instant::now() < deadline {
        if gone_a.is_none() && !a.holds("pvc-a", "n1") {
            gone_a = Some(deleted.elapsed());
        }
        if gone_b.is_none() && !b.holds("pvc-a", "n1") {
            gone_b = Some(deleted.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "convergence after the VA was deleted (grace {grace:?}, reconcile interval {interval:?}): \
         replica a {gone_a:?}, replica b {gone_b:?} (polled every 5 ms)"
    );
    let (Some(ta), Some(tb)) = (gone_a, gone_b) else {
        panic!(
            "not converged within one reconcile period after the grace period: a {:?}, b {:?}",
            a.table(),
            b.table()
        );
    };
    assert!(ta >= grace && tb >= grace, "not before the grace period");
    // The other attachment is untouched on both.
    assert!(a.holds("pvc-z", "n2") && b.holds("pvc-z", "n2"));

    // Barrier: a later stale clear (pvc-z) has been posted, so any event
    // about pvc-a from either replica would have been posted by now.
    fake.delete::<VolumeAttachment>(None, "va-z");
    events.wait("StaleAttachmentCleared", "pvc-z", 1).await;
    let about_a: Vec<Value> = events
        .with_reason("StaleAttachmentCleared")
        .into_iter()
        .filter(|e| e["volume_id"] == "pvc-a")
        .collect();
    assert_eq!(about_a.len(), 1, "one event, from the leader: {about_a:#?}");
    a.stop().await;
    b.stop().await;
}

/// Samples both replicas' leadership on a plain thread until `stop`.
/// Returns (samples, overlapping samples, longest overlap, mean interval).
fn sample_leaders(
    a: tokio::sync::watch::Receiver<bool>,
    b: tokio::sync::watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, usize, Duration, Duration)> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let (mut n, mut both) = (0usize, 0usize);
        let mut run_start: Option<Instant> = None;
        let mut longest = Duration::ZERO;
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            let (la, lb) = (*a.borrow(), *b.borrow());
            n += 1;
            if la && lb {
                both += 1;
                let s = *run_start.get_or_insert(now);
                longest = longest.max(now - s);
            } else {
                run_start = None;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let mean = started.elapsed() / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        (n, both, longest, mean)
    })
}

/// The leader's API calls are delayed well past its step-down time (4 s
/// against a 2 s Lease): it must stop leading by its own timer before the
/// standby can take over; sampled every ~0.5 ms, the two never lead at once.
#[tokio::test(flavor = "multi_thread")]
async fn leader_calls_delayed_past_step_down_never_two_leaders() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApi::start().await;
    let events = Events::start(dir.path()).await;
    seed(&fake, &["n1"], &[]);
    let slow = Duration::from_secs(60);
    let a = Replica::start(
        "r-a",
        cfg_for(&fake, dir.path(), &events, "r-a", slow, slow),
    )
    .await;
    until("r-a leads", Duration::from_secs(10), || {
        a.is_leader() && holder(&fake).as_deref() == Some("r-a")
    })
    .await;
    let b = Replica::start(
        "r-b",
        cfg_for(&fake, dir.path(), &events, "r-b", slow, slow),
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_leaders(a.leader_watch(), b.leader_watch(), stop.clone());
    // Let the standby watch a few healthy renewals first.
    let renewals = fake.calls_to(Verb::Update, "leases").len();
    until("two more renewals by r-a", Duration::from_secs(5), || {
        fake.calls_to(Verb::Update, "leases").len() >= renewals + 2
    })
    .await;

    let injected = Instant::now();
    fake.inject(
        Fault::on(None)
            .resource("leases")
            .client("r-a")
            .delay(Duration::from_secs(4)),
    );
    until("r-b took over", Duration::from_secs(15), || {
        b.is_leader() && holder(&fake).as_deref() == Some("r-b")
    })
    .await;
    let took_over = injected.elapsed();
    // Barrier: one of r-a's delayed Lease calls has been answered (the
    // moment the old code noticed), and r-a does not lead.
    until(
        "a delayed r-a call answered",
        Duration::from_secs(15),
        || {
            fake.calls().iter().any(|c| {
                c.client == "r-a"
                    && c.resource.as_deref() == Some("leases")
                    && c.at >= injected
                    && c.status.is_some()
            })
        },
    )
    .await;
    until("r-a not leading", Duration::from_secs(5), || !a.is_leader()).await;
    stop.store(true, Ordering::SeqCst);
    let (n, both, longest, mean) = sampler.join().unwrap();
    println!(
        "leadership sampled {n} times, every {mean:?} on average: {both} samples with two leaders, \
         longest overlap {longest:?}; r-b took over {took_over:?} after r-a's calls slowed"
    );
    assert!(n > 1000, "too few samples: {n}");
    assert_eq!(both, 0, "two leaders at once for up to {longest:?}");
    fake.clear_faults();
    a.stop().await;
    b.stop().await;
}

/// A VA deleted while attached, then the VA watch breaks (410) and its
/// re-list is slow; meanwhile the external-attacher creates a new VA for
/// the same node and publishes. The new attachment must survive on both
/// replicas: no clear decided on the half-listed cache, and the publish
/// waits (UNAVAILABLE, retried) until the list completed.
#[tokio::test(flavor = "multi_thread")]
async fn a_re_list_during_a_publish_keeps_the_new_attachment() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApi::start().await;
    let events = Events::start(dir.path()).await;
    seed(&fake, &["n1", "n2"], &["r", "s", "t"]);
    fake.put_value::<VolumeAttachment>(attached_va("va-r", "pv-r", "n1"));
    fake.put_value::<VolumeAttachment>(attached_va("va-s", "pv-s", "n1"));
    // The grace period is long enough for the watch to break and start its
    // re-list (after kube's backoff: 0.8 s plus up to 0.8 s of jitter) before the
    // old VA counts as stale.
    let (grace, interval) = (Duration::from_secs(4), Duration::from_secs(30));
    let (a, b) = two_replicas(&fake, dir.path(), &events, (grace, interval)).await;
    until("both tables rebuilt", Duration::from_secs(10), || {
        a.holds("pvc-r", "n1")
            && b.holds("pvc-r", "n1")
            && a.holds("pvc-s", "n1")
            && b.holds("pvc-s", "n1")
    })
    .await;
    until_a_leader(&a, &b).await;

    // The stuck VA is removed by hand while attached...
    fake.delete::<VolumeAttachment>(None, "va-r");
    // ...and both watches have delivered that (a later change arrived).
    fake.put_value::<VolumeAttachment>(attached_va("va-t", "pv-t", "n2"));
    until("va-t adopted by both", Duration::from_secs(5), || {
        a.holds("pvc-t", "n2") && b.holds("pvc-t", "n2")
    })
    .await;

    let lists_before = break_va_watch_with_slow_relists(&fake).await;

    // Watch both tables from now on.
    let stop = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicBool::new(false));
    let watcher = watch_held(&a, &b, "pvc-r", stop.clone(), lost.clone());

    // The attacher: a new VA for the same node, then ControllerPublish
    // (retried while UNAVAILABLE), then attached=true.
    let va_r2 = objects::va("va-r2", "pv-r", "n1", false, DRIVER, "2026-01-01T00:00:00Z");
    fake.put_value::<VolumeAttachment>(va_r2.clone());
    let published = Instant::now();
    let unavailable = attach_while_not_ready(&b, "pvc-r", "n1").await;
    let mut done = va_r2;
    done["status"]["attached"] = json!(true);
    fake.put_value::<VolumeAttachment>(done);
    println!(
        "publish during the re-list: {unavailable} UNAVAILABLE answers, served after {:?}",
        published.elapsed()
    );

    relists_answered_then_pvc_s_cleared(&fake, &events, lists_before).await;
    // The leader has passed the grace deadlines of both VAs by now.
    assert!(
        !lost.load(Ordering::SeqCst),
        "pvc-r was missing from a table meanwhile (a {:?}, b {:?}; events {:#?})",
        a.table(),
        b.table(),
        events.with_reason("StaleAttachmentCleared")
    );
    until("pvc-s cleared on both", Duration::from_secs(10), || {
        !a.holds("pvc-s", "n1") && !b.holds("pvc-s", "n1")
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();

    assert!(
        a.holds("pvc-r", "n1") && b.holds("pvc-r", "n1"),
        "a {:?} b {:?}",
        a.table(),
        b.table()
    );
    assert!(
        !lost.load(Ordering::SeqCst),
        "pvc-r was missing from a table meanwhile"
    );
    assert!(
        events
            .with_reason("StaleAttachmentCleared")
            .iter()
            .all(|e| e["volume_id"] != "pvc-r"),
        "{:#?}",
        events.with_reason("StaleAttachmentCleared")
    );
    a.stop().await;
    b.stop().await;
}

/// Flags `lost` whenever either replica's table lacks `volume`, until `stop`.
fn watch_held(
    a: &Replica,
    b: &Replica,
    volume: &'static str,
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let (ma, mb) = (a.manager(), b.manager());
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            for m in [&ma, &mb] {
                let held = m
                    .list(None, None)
                    .map(|l| l.iter().any(|r| r.volume.as_str() == volume))
                    .unwrap_or(true);
                if !held {
                    lost.store(true, Ordering::SeqCst);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// The attacher's ControllerPublish, retried while the replica answers
/// STORE_NOT_READY (UNAVAILABLE), at most 15 s. Returns how many times.
async fn attach_while_not_ready(r: &Replica, volume: &str, node: &str) -> u32 {
    let mut c = r.client();
    let mut unavailable = 0;
    let published = Instant::now();
    loop {
        match c
            .attach(attach_req(
                volume,
                node,
                AccessMode::SingleNodeWriter,
                false,
            ))
            .await
        {
            Ok(_) => return unavailable,
            Err(e) if reason_of(&e) == Some(Reason::StoreNotReady) => {
                assert_eq!(e.code(), tonic::Code::Unavailable);
                unavailable += 1;
                assert!(published.elapsed() < Duration::from_secs(15), "{e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// Barrier: both re-lists answered, then a later stale clear (pvc-s) has
/// been made by the leader.
async fn relists_answered_then_pvc_s_cleared(fake: &FakeApi, events: &Events, lists_before: usize) {
    until("re-lists answered", Duration::from_secs(10), || {
        fake.calls_to(Verb::List, "volumeattachments")
            .iter()
            .skip(lists_before)
            .filter(|c| c.status == Some(200))
            .count()
            >= 2
    })
    .await;
    fake.delete::<VolumeAttachment>(None, "va-s");
    until(
        "pvc-s cleared by the leader",
        Duration::from_secs(15),
        || {
            events
                .with_reason("StaleAttachmentCleared")
                .iter()
                .any(|e| e["volume_id"] == "pvc-s")
        },
    )
    .await;
}

/// The VA watch breaks; its re-list takes 6 s (past the grace deadline).
/// Returns how many VA lists there were before.
async fn break_va_watch_with_slow_relists(fake: &FakeApi) -> usize {
    let lists_before = fake.calls_to(Verb::List, "volumeattachments").len();
    fake.inject(
        Fault::on(Verb::List)
            .resource("volumeattachments")
            .delay(Duration::from_secs(6))
            .times(2),
    );
    fake.expire_watches();
    until("both re-lists in flight", Duration::from_secs(5), || {
        fake.calls_to(Verb::List, "volumeattachments").len() >= lists_before + 2
    })
    .await;
    lists_before
}
