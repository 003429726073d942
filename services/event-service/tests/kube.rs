//! event-service in Kubernetes mode against an in-process fake API server
//! (axum on 127.0.0.1:0) speaking real Kubernetes JSON: list + `?watch=true`
//! streaming of PersistentVolumes with resourceVersions, and POST/PATCH of
//! events.k8s.io/v1 Events with the API server's namespace and field rules.
//! The service is started from a kubeconfig file pointing at the fake, and
//! called through a real gRPC client.

use std::time::{Duration, Instant};

use event_service::{Config, DropCause, Running};
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use rds_proto::event::events_client::EventsClient;
use rds_proto::event::post_request::Event as Typed;
use rds_proto::event::*;
use rds_testkit::{FakeApi, Fault, Verb};
use serde_json::{Value, json};
use tracing::Instrument;

const DRIVER: &str = "rds.csi.srvlab.io";

// ---------------------------------------------------------------- fake API

/// How the fake answers Event calls.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    /// Every Event call answers 500 InternalError.
    Fail500,
    /// Every Event call answers 403 Forbidden (RBAC missing).
    Forbidden,
    /// Every Event call never answers.
    Hang,
}

/// The test kit's fake API server, with the views these tests assert on.
struct Fake {
    api: FakeApi,
}

/// What the fake was asked, summarised.
struct Seen {
    pv_lists: usize,
    pv_watches: usize,
    event_calls: usize,
    patches: usize,
    /// Anything else that was asked (e.g. a GET of one PV).
    other: Vec<String>,
}

// `cfg(test)` marks these helpers as test code for clippy (unwrap allowed).
#[cfg(test)]
impl Fake {
    async fn start() -> Fake {
        Fake {
            api: FakeApi::start().await,
        }
    }

    fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        self.api.kubeconfig(dir)
    }

    /// Adds (or replaces) a CSI PV; watchers are told, as by the API server.
    fn put_pv(&self, name: &str, driver: &str, handle: &str, claim: Option<(&str, &str, &str)>) {
        let mut pv = json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "csi": {"driver": driver, "volumeHandle": handle, "volumeAttributes": {"nvmePort": "4420"}},
            },
            "status": {"phase": if claim.is_some() { "Bound" } else { "Available" }},
        });
        if let Some((ns, pvc, uid)) = claim {
            pv["spec"]["claimRef"] = json!({
                "kind": "PersistentVolumeClaim", "apiVersion": "v1",
                "namespace": ns, "name": pvc, "uid": uid,
            });
        }
        self.api.put_value::<PersistentVolume>(pv);
    }

    fn pv_uid(&self, name: &str) -> String {
        self.api
            .get::<PersistentVolume>(None, name)
            .and_then(|pv| pv.metadata.uid)
            .unwrap()
    }

    fn set_mode(&self, mode: Mode) {
        self.api.clear_faults();
        for verb in [Verb::Create, Verb::Patch] {
            let on = Fault::on(verb).resource("events");
            match mode {
                Mode::Ok => return,
                Mode::Fail500 => {
                    self.api
                        .inject(on.fail(500, "InternalError", "etcdserver: request timed out"));
                }
                Mode::Forbidden => {
                    self.api.inject(on.fail(
                        403,
                        "Forbidden",
                        "events.events.k8s.io is forbidden: User \"system:serviceaccount:x:y\" cannot create resource",
                    ));
                }
                Mode::Hang => {
                    self.api.inject(on.hang());
                }
            }
        }
    }

    /// Accepted creates in arrival order: (URL namespace, body as received).
    fn creates(&self) -> Vec<(String, Value)> {
        self.api
            .calls_to(Verb::Create, "events")
            .into_iter()
            .filter(|c| c.status == Some(201))
            .map(|c| (c.namespace.unwrap_or_default(), c.body.unwrap_or_default()))
            .collect()
    }

    /// Stored Events (as the API server keeps them).
    fn events(&self) -> Vec<Value> {
        self.api
            .list::<KubeEvent>()
            .into_iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect()
    }

    fn seen(&self) -> Seen {
        let calls = self.api.calls();
        let is = |c: &rds_testkit::Call, v: Verb, r: &str| {
            c.verb == Some(v) && c.resource.as_deref() == Some(r)
        };
        Seen {
            pv_lists: calls
                .iter()
                .filter(|c| is(c, Verb::List, "persistentvolumes"))
                .count(),
            pv_watches: calls
                .iter()
                .filter(|c| is(c, Verb::Watch, "persistentvolumes"))
                .count(),
            event_calls: calls
                .iter()
                .filter(|c| is(c, Verb::Create, "events") || is(c, Verb::Patch, "events"))
                .count(),
            patches: calls
                .iter()
                .filter(|c| is(c, Verb::Patch, "events"))
                .count(),
            other: calls
                .iter()
                .filter(|c| {
                    !(is(c, Verb::List, "persistentvolumes")
                        || is(c, Verb::Watch, "persistentvolumes")
                        || is(c, Verb::Create, "events")
                        || is(c, Verb::Patch, "events"))
                })
                .map(|c| format!("{} {}", c.method, c.uri))
                .collect(),
        }
    }
}

// ---------------------------------------------------------------- helpers

struct Env {
    fake: Fake,
    running: Running,
    client: EventsClient<rds_bus::BusChannel>,
    _dir: tempfile::TempDir,
}

#[cfg(test)]
async fn start(fake: Fake, tweak: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::kube_sink(fake.kubeconfig(dir.path()));
    cfg.instance = Some("rds-csi-controller-0".into());
    cfg.retry_budget_ms = 2_000;
    cfg.attempt_timeout_ms = 1_000;
    cfg.drain_timeout_ms = 200;
    tweak(&mut cfg);
    let listener = rds_bus::Listener::bind("127.0.0.1:0").await.unwrap();
    let settings = cfg.validate().unwrap();
    let running = event_service::start(settings, listener, rds_bus::Shutdown::new())
        .await
        .unwrap();
    let client =
        EventsClient::new(rds_bus::connect(running.endpoint(), Default::default()).unwrap());
    Env {
        fake,
        running,
        client,
        _dir: dir,
    }
}

fn attached(vol: &str, node: &str, pvc: Option<(&str, &str)>) -> PostRequest {
    PostRequest {
        volume_id: vol.into(),
        node_id: String::new(),
        pvc: pvc.map(|(ns, n)| rds_proto::common::PvcRef {
            namespace: ns.into(),
            name: n.into(),
        }),
        event: Some(Typed::VolumeAttached(VolumeAttached {
            node_id: node.into(),
            duration_ms: 812,
        })),
    }
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

// ---------------------------------------------------------------- tests

/// A VolumeDetached post with no PVC named (the PV names it).
fn detached(volume: &str, node: &str) -> PostRequest {
    PostRequest {
        volume_id: volume.into(),
        event: Some(Typed::VolumeDetached(VolumeDetached {
            node_id: node.into(),
        })),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pvc_from_request_keys_gets_the_uid_from_the_pv_cache() {
    let telemetry = rds_bus::testing::telemetry();
    let fake = Fake::start().await;
    fake.put_pv(
        "pvc-a1",
        DRIVER,
        "pvc-a1",
        Some(("apps", "data-db-0", "uid-pvc-data-db-0")),
    );
    let mut env = start(fake, |_| {}).await;
    let span = tracing::info_span!("grpc.client", otel.kind = "client");
    let caller = rds_bus::testing::trace_id_of(&span);
    let t = Instant::now();
    env.client
        .post(attached("pvc-a1", "worker-1", Some(("apps", "data-db-0"))))
        .instrument(span)
        .await
        .unwrap();
    let post_latency = t.elapsed();
    let m = env.running.metrics();
    eventually("posted", || m.posted("VolumeAttached") == 1).await;

    let creates = env.fake.creates();
    assert_eq!(creates.len(), 1);
    let (url_ns, ev) = &creates[0];
    assert_eq!(url_ns, "apps");
    assert_eq!(ev["metadata"]["namespace"], "apps");
    assert_eq!(ev["reason"], "VolumeAttached");
    assert_eq!(ev["type"], "Normal");
    assert_eq!(ev["action"], "Attach");
    assert_eq!(
        ev["note"],
        "[pvc-a1]: Attached to node worker-1 (duration: 812ms)"
    );
    assert_eq!(ev["reportingController"], DRIVER);
    assert_eq!(ev["reportingInstance"], "rds-csi-controller-0");
    assert_eq!(
        ev["regarding"],
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "apps",
               "name": "data-db-0", "uid": "uid-pvc-data-db-0"})
    );
    assert_eq!(
        ev["related"],
        json!({"apiVersion": "v1", "kind": "Node", "name": "worker-1"})
    );
    assert!(post_latency < Duration::from_secs(1), "{post_latency:?}");

    // A PVC named by the request but not (yet) in any PV still gets its event.
    env.client
        .post(attached("pvc-unknown", "worker-1", Some(("apps", "fresh"))))
        .await
        .unwrap();
    eventually("second post", || m.posted("VolumeAttached") == 2).await;
    let (ns, ev) = env.fake.creates().pop().unwrap();
    assert_eq!(ns, "apps");
    assert_eq!(ev["regarding"]["name"], "fresh");
    assert!(ev["regarding"].get("uid").is_none());

    // The Kubernetes call is a span of the caller's trace, under delivery.
    let spans = telemetry
        .wait_for(caller, |s| {
            s.iter().any(|s| s.name == "kube.events.publish")
        })
        .await;
    let deliver = spans
        .iter()
        .find(|s| s.name == "event.deliver")
        .expect("event.deliver");
    let publish = spans
        .iter()
        .find(|s| s.name == "kube.events.publish")
        .expect("kube span");
    assert_eq!(publish.parent_span_id, deliver.span_context.span_id());
    env.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pvc_from_the_watched_pv_cache_without_keys_and_no_get_per_event() {
    let fake = Fake::start().await;
    fake.put_pv("pvc-b1", DRIVER, "pvc-b1", Some(("db", "pg-0", "uid-pg-0")));
    let mut env = start(fake, |_| {}).await;
    let m = env.running.metrics();
    env.client
        .post(detached("pvc-b1", "worker-2"))
        .await
        .unwrap();
    eventually("detached posted", || m.posted("VolumeDetached") == 1).await;
    let (ns, ev) = env.fake.creates().pop().unwrap();
    assert_eq!(ns, "db");
    assert_eq!(ev["regarding"]["kind"], "PersistentVolumeClaim");
    assert_eq!(ev["regarding"]["name"], "pg-0");
    assert_eq!(ev["regarding"]["uid"], "uid-pg-0");
    assert_eq!(ev["note"], "[pvc-b1]: Detached from node worker-2");

    // A PV created after start reaches the cache through the watch.
    env.fake
        .put_pv("pvc-b2", DRIVER, "pvc-b2", Some(("db", "pg-1", "uid-pg-1")));
    let mut posted = false;
    for _ in 0..100 {
        let before = m.dropped("StaleAttachmentCleared", DropCause::NoObject);
        env.client
            .post(PostRequest {
                volume_id: "pvc-b2".into(),
                event: Some(Typed::StaleAttachmentCleared(StaleAttachmentCleared {
                    node_id: "gone-1".into(),
                })),
                ..Default::default()
            })
            .await
            .unwrap();
        eventually("delivery", || {
            m.posted("StaleAttachmentCleared") == 1
                || m.dropped("StaleAttachmentCleared", DropCause::NoObject) > before
        })
        .await;
        if m.posted("StaleAttachmentCleared") == 1 {
            posted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(posted, "the watched PV never reached the cache");
    let (ns, ev) = env.fake.creates().pop().unwrap();
    assert_eq!(
        (ns.as_str(), ev["regarding"]["name"].as_str()),
        ("db", Some("pg-1"))
    );
    assert_eq!(
        ev["note"],
        "[pvc-b2]: Cleared stale attachment from deleted node gone-1"
    );

    // Many events, one list: resolution never GETs a PV or PVC.
    for _ in 0..20 {
        env.client
            .post(detached("pvc-b1", "worker-2"))
            .await
            .unwrap();
    }
    eventually("21 detached", || m.posted("VolumeDetached") == 21).await;
    {
        let st = env.fake.seen();
        assert_eq!(st.pv_lists, 1, "one initial list");
        assert!(st.pv_watches >= 1, "then a watch");
        assert!(st.other.is_empty(), "unexpected API calls: {:?}", st.other);
    }
    env.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_claim_the_event_goes_on_the_pv_in_default() {
    let fake = Fake::start().await;
    fake.put_pv("pvc-c1", DRIVER, "pvc-c1", None);
    // Same handle, other driver: must not be picked.
    fake.put_pv(
        "other-pv",
        "other.csi.example.com",
        "pvc-c2",
        Some(("x", "y", "uid-y")),
    );
    let mut env = start(fake, |_| {}).await;
    let m = env.running.metrics();
    env.client
        .post(PostRequest {
            volume_id: "pvc-c1".into(),
            event: Some(Typed::AttachmentConflict(AttachmentConflict {
                requested_node: "worker-2".into(),
                attached_node: "worker-1".into(),
            })),
            ..Default::default()
        })
        .await
        .unwrap();
    eventually("posted on PV", || m.posted("AttachmentConflict") == 1).await;
    let (ns, ev) = env.fake.creates().pop().unwrap();
    assert_eq!(ns, "default");
    // The Recorder leaves the body's namespace empty; the API server fills it
    // from the URL, so the stored event has one.
    assert!(ev["metadata"].get("namespace").is_none());
    let stored = env.fake.events().into_iter().next().unwrap();
    assert_eq!(stored["metadata"]["namespace"], "default");
    assert_eq!(ev["type"], "Warning");
    assert_eq!(
        ev["regarding"],
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "name": "pvc-c1", "uid": env.fake.pv_uid("pvc-c1")})
    );

    // The other driver's PV is not ours: nothing to post on.
    env.client
        .post(attached("pvc-c2", "worker-1", None))
        .await
        .unwrap();
    eventually("no object", || {
        m.dropped("VolumeAttached", DropCause::NoObject) == 1
    })
    .await;
    assert_eq!(env.fake.creates().len(), 1);
    env.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_found_is_counted_and_not_posted() {
    let fake = Fake::start().await;
    let mut env = start(fake, |_| {}).await;
    let m = env.running.metrics();
    for node in ["a", "b", "c"] {
        env.client
            .post(attached("pvc-nowhere", node, None))
            .await
            .unwrap();
    }
    eventually("3 no_object drops", || {
        m.dropped("VolumeAttached", DropCause::NoObject) == 3
    })
    .await;
    assert_eq!(m.posted("VolumeAttached"), 0);
    assert_eq!(m.failed("VolumeAttached"), 0);
    assert!(env.fake.creates().is_empty());
    assert_eq!(env.fake.seen().event_calls, 0);
    env.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn api_failures_are_retried_for_a_bounded_time_then_dropped() {
    let fake = Fake::start().await;
    fake.put_pv(
        "pvc-d1",
        DRIVER,
        "pvc-d1",
        Some(("apps", "web-0", "uid-web-0")),
    );
    fake.set_mode(Mode::Fail500);
    let mut env = start(fake, |c| c.retry_budget_ms = 1_000).await;
    let m = env.running.metrics();
    let t = Instant::now();
    env.client
        .post(attached("pvc-d1", "worker-1", None))
        .await
        .unwrap();
    let post_latency = t.elapsed();
    eventually("retry_exhausted", || {
        m.dropped("VolumeAttached", DropCause::RetryExhausted) == 1
    })
    .await;
    let gave_up_after = t.elapsed();
    let calls = env.fake.seen().event_calls as u64;
    println!(
        "API answering 500: Post returned in {post_latency:?}; {calls} attempts, dropped after {gave_up_after:?} (budget 1s)"
    );
    // Backoff 100 ms doubling inside a 1 s budget: a handful of attempts.
    assert!((3..=8).contains(&calls), "{calls} attempts");
    assert_eq!(m.failed("VolumeAttached"), calls);
    assert_eq!(m.posted("VolumeAttached"), 0);
    assert!(gave_up_after < Duration::from_secs(3), "{gave_up_after:?}");
    assert!(
        post_latency < Duration::from_millis(500),
        "{post_latency:?}"
    );

    // A refusal (403) is not retried: one attempt, dropped as rejected.
    env.fake.set_mode(Mode::Forbidden);
    env.client
        .post(detached("pvc-d1", "worker-1"))
        .await
        .unwrap();
    eventually("rejected", || {
        m.dropped("VolumeDetached", DropCause::Rejected) == 1
    })
    .await;
    assert_eq!(m.failed("VolumeDetached"), 1);

    // The API recovers: events flow again.
    env.fake.set_mode(Mode::Ok);
    env.client
        .post(attached("pvc-d1", "worker-1", None))
        .await
        .unwrap();
    eventually("posted after recovery", || m.posted("VolumeAttached") == 1).await;
    assert_eq!(env.fake.creates().len(), 1);
    env.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn post_returns_at_once_while_the_api_hangs() {
    let fake = Fake::start().await;
    fake.put_pv(
        "pvc-e1",
        DRIVER,
        "pvc-e1",
        Some(("apps", "vm-disk", "uid-vm")),
    );
    fake.set_mode(Mode::Hang);
    let mut env = start(fake, |c| {
        c.queue_size = 16;
        c.attempt_timeout_ms = 300;
        c.retry_budget_ms = 600;
    })
    .await;
    let m = env.running.metrics();
    // Warm-up (connection set-up is not what is measured).
    env.client
        .post(attached("pvc-e1", "warm", None))
        .await
        .unwrap();
    eventually("worker stuck on the hanging API", || {
        env.fake.seen().event_calls >= 1
    })
    .await;
    let n = 200;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        env.client
            .post(attached("pvc-e1", &format!("node-{i}"), None))
            .await
            .unwrap();
        lat.push(t.elapsed());
    }
    lat.sort_unstable();
    let (p50, p99, max) = (lat[n / 2], lat[n * 99 / 100], lat[n - 1]);
    println!("API hanging: Post latency over {n} calls p50 {p50:?}, p99 {p99:?}, max {max:?}");
    // Any Post that waited on the API would take the 300 ms attempt timeout.
    assert!(p50 < Duration::from_millis(5), "p50 {p50:?}");
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    assert!(max < Duration::from_millis(250), "max {max:?}");
    // The hanging calls time out, are retried within the budget, then dropped;
    // the queue overflowed meanwhile and dropped its oldest.
    eventually("first drop", || {
        m.dropped("VolumeAttached", DropCause::RetryExhausted) >= 1
    })
    .await;
    assert!(m.dropped("VolumeAttached", DropCause::QueueFull) >= (n + 1 - 16 - 2) as u64);
    assert_eq!(m.posted("VolumeAttached"), 0);
    let stop = Instant::now();
    env.running.stop().await.unwrap();
    // Stopping is bounded by the drain deadline even with the API hanging.
    assert!(
        stop.elapsed() < Duration::from_secs(2),
        "{:?}",
        stop.elapsed()
    );
    assert!(m.dropped("VolumeAttached", DropCause::Shutdown) >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_recorder_dedups_repeats_into_a_series() {
    let fake = Fake::start().await;
    fake.put_pv(
        "pvc-f1",
        DRIVER,
        "pvc-f1",
        Some(("apps", "cache-0", "uid-cache-0")),
    );
    let mut env = start(fake, |_| {}).await;
    let m = env.running.metrics();
    let conflict = || PostRequest {
        volume_id: "pvc-f1".into(),
        event: Some(Typed::AttachmentConflict(AttachmentConflict {
            requested_node: "worker-2".into(),
            attached_node: "worker-1".into(),
        })),
        ..Default::default()
    };
    env.client.post(conflict()).await.unwrap();
    env.client.post(conflict()).await.unwrap();
    eventually("2 posted", || m.posted("AttachmentConflict") == 2).await;
    {
        assert_eq!(
            env.fake.creates().len(),
            1,
            "the repeat is a PATCH, not a new Event"
        );
        assert_eq!(env.fake.seen().patches, 1);
        let stored = env.fake.events().into_iter().next().unwrap();
        assert_eq!(stored["series"]["count"], 2);
    }
    // Same reason about another node: its own Event (related differs).
    env.client
        .post(PostRequest {
            volume_id: "pvc-f1".into(),
            event: Some(Typed::AttachmentConflict(AttachmentConflict {
                requested_node: "worker-3".into(),
                attached_node: "worker-1".into(),
            })),
            ..Default::default()
        })
        .await
        .unwrap();
    eventually("3 posted", || m.posted("AttachmentConflict") == 3).await;
    let creates = env.fake.creates();
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[1].1["related"]["name"], "worker-3");
    env.running.stop().await.unwrap();
}

/// pvc-g1 and pvc-g3 of this driver (claims apps/data-0, apps/data-3),
/// pvc-g2 of another driver.
fn seed_get_mode_pvs(fake: &Fake) {
    fake.put_pv(
        "pvc-g1",
        DRIVER,
        "pvc-g1",
        Some(("apps", "data-0", "uid-data-0")),
    );
    // A PV of that name but another driver is not ours.
    fake.put_pv(
        "pvc-g2",
        "other.csi.example.com",
        "pvc-g2",
        Some(("x", "y", "uid-y")),
    );
    fake.put_pv(
        "pvc-g3",
        DRIVER,
        "pvc-g3",
        Some(("apps", "data-3", "uid-data-3")),
    );
}

/// `--pv-lookup=get` (the node pod): the PV behind an event is one GET by
/// name with the attempt deadline, reused for a while; PVs are never listed
/// or watched (the node's ServiceAccount has `get` on PVs only).
#[tokio::test(flavor = "multi_thread")]
async fn get_mode_resolves_by_one_bounded_get_and_never_lists_or_watches_pvs() {
    let fake = Fake::start().await;
    seed_get_mode_pvs(&fake);
    let mut env = start(fake, |c| c.pv_lookup = event_service::PvLookupMode::Get).await;
    let m = env.running.metrics();

    // No PVC in the request: the PV's claimRef names it, with its uid.
    env.client
        .post(detached("pvc-g1", "worker-2"))
        .await
        .unwrap();
    eventually("detached posted", || m.posted("VolumeDetached") == 1).await;
    let (ns, ev) = env.fake.creates().pop().unwrap();
    assert_eq!(ns, "apps");
    assert_eq!(
        ev["regarding"],
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "apps",
               "name": "data-0", "uid": "uid-data-0"})
    );

    // More events about the same volume, with and without the PVC named:
    // the fetched PV is reused, no further GET.
    for _ in 0..5 {
        env.client
            .post(detached("pvc-g1", "worker-2"))
            .await
            .unwrap();
    }
    env.client
        .post(attached("pvc-g1", "worker-2", Some(("apps", "data-0"))))
        .await
        .unwrap();
    eventually("6 detached + 1 attached", || {
        m.posted("VolumeDetached") == 6 && m.posted("VolumeAttached") == 1
    })
    .await;
    let (_, ev) = env.fake.creates().pop().unwrap();
    assert_eq!(ev["regarding"]["uid"], "uid-data-0");

    // Another driver's PV of that name: nothing to post on.
    env.client
        .post(detached("pvc-g2", "worker-2"))
        .await
        .unwrap();
    eventually("no object", || {
        m.dropped("VolumeDetached", DropCause::NoObject) == 1
    })
    .await;

    // A GET that never answers is cut at the attempt deadline; an event that
    // names its PVC still goes out (without the uid).
    env.fake.api.inject(
        Fault::on(Verb::Get)
            .resource("persistentvolumes")
            .name("pvc-g3")
            .hang(),
    );
    env.client
        .post(attached("pvc-g3", "worker-2", Some(("apps", "data-3"))))
        .await
        .unwrap();
    eventually("posted despite the hung GET", || {
        m.posted("VolumeAttached") == 2
    })
    .await;
    let (_, ev) = env.fake.creates().pop().unwrap();
    assert_eq!(ev["regarding"]["name"], "data-3");
    assert!(ev["regarding"].get("uid").is_none());

    let st = env.fake.seen();
    assert_eq!(st.pv_lists, 0, "PVs must never be listed in get mode");
    assert_eq!(st.pv_watches, 0, "PVs must never be watched in get mode");
    let gets = |name: &str| {
        env.fake
            .api
            .calls_to(Verb::Get, "persistentvolumes")
            .iter()
            .filter(|c| c.name.as_deref() == Some(name))
            .count()
    };
    assert_eq!(gets("pvc-g1"), 1, "one GET, then the cached PV");
    assert_eq!(gets("pvc-g2"), 1);
    assert_eq!(gets("pvc-g3"), 1);
    env.running.stop().await.unwrap();
}
