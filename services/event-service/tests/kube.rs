//! event-service in Kubernetes mode against an in-process fake API server
//! (axum on 127.0.0.1:0) speaking real Kubernetes JSON: list + `?watch=true`
//! streaming of PersistentVolumes with resourceVersions, and POST/PATCH of
//! events.k8s.io/v1 Events with the API server's namespace and field rules.
//! The service is started from a kubeconfig file pointing at the fake, and
//! called through a real gRPC client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use event_service::{Config, DropCause, Running};
use futures::StreamExt;
use rds_proto::event::events_client::EventsClient;
use rds_proto::event::post_request::Event as Typed;
use rds_proto::event::*;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tracing::Instrument;

const DRIVER: &str = "rds.csi.srvlab.io";

// ---------------------------------------------------------------- fake API

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

#[derive(Default)]
struct FakeState {
    rv: u64,
    pvs: BTreeMap<String, Value>,
    history: Vec<(u64, &'static str, Value)>,
    /// Stored Events by (namespace, name).
    events: BTreeMap<(String, String), Value>,
    /// Creates in arrival order: (URL namespace, body as received).
    creates: Vec<(String, Value)>,
    patches: Vec<(String, String, Value)>,
    event_calls: u64,
    pv_lists: u64,
    pv_watches: u64,
    /// Anything else that was asked (e.g. a GET of one PV).
    other: Vec<String>,
    mode: Option<Mode>,
}

#[derive(Clone)]
struct Fake {
    state: Arc<Mutex<FakeState>>,
    tx: broadcast::Sender<(u64, &'static str, Value)>,
    addr: std::net::SocketAddr,
}

fn k8s_status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

impl Fake {
    async fn start() -> Fake {
        let (tx, _) = broadcast::channel(1024);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Fake {
            state: Arc::new(Mutex::new(FakeState::default())),
            tx,
            addr: listener.local_addr().unwrap(),
        };
        let app = axum::Router::new()
            .route("/api/v1/persistentvolumes", get(list_or_watch_pvs))
            .route(
                "/apis/events.k8s.io/v1/namespaces/{ns}/events",
                axum::routing::post(create_event),
            )
            .route(
                "/apis/events.k8s.io/v1/namespaces/{ns}/events/{name}",
                patch(patch_event),
            )
            .fallback(other)
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\n\
             users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Adds (or replaces) a CSI PV and tells the watchers, like the API server.
    fn put_pv(&self, name: &str, driver: &str, handle: &str, claim: Option<(&str, &str, &str)>) {
        let mut st = self.lock();
        st.rv += 1;
        let rv = st.rv;
        let mut pv = json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": rv.to_string()},
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
        let kind = if st.pvs.contains_key(name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        st.pvs.insert(name.to_owned(), pv.clone());
        st.history.push((rv, kind, pv.clone()));
        let _ = self.tx.send((rv, kind, pv));
    }

    fn set_mode(&self, mode: Mode) {
        self.lock().mode = Some(mode);
    }

    fn creates(&self) -> Vec<(String, Value)> {
        self.lock().creates.clone()
    }
}

async fn list_or_watch_pvs(State(f): State<Fake>, uri: Uri) -> Response {
    // kube's query values here need no percent-decoding.
    let q: HashMap<String, String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let watching = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    if !watching {
        let mut st = f.lock();
        st.pv_lists += 1;
        // List items carry no apiVersion/kind (like the real API server).
        let items: Vec<Value> = st
            .pvs
            .values()
            .map(|pv| {
                let mut pv = pv.clone();
                let o = pv.as_object_mut().unwrap();
                o.remove("apiVersion");
                o.remove("kind");
                pv
            })
            .collect();
        return Json(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeList",
            "metadata": {"resourceVersion": st.rv.to_string()},
            "items": items,
        }))
        .into_response();
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Subscribe and snapshot under the lock, so no event falls in between.
    let (replay, rx, last) = {
        let mut st = f.lock();
        st.pv_watches += 1;
        let replay: Vec<_> = st
            .history
            .iter()
            .filter(|(rv, ..)| *rv > from)
            .cloned()
            .collect();
        (replay, f.tx.subscribe(), st.rv)
    };
    let line = |kind: &str, obj: &Value| -> Result<Bytes, std::convert::Infallible> {
        let mut b = serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap();
        b.push(b'\n');
        Ok(Bytes::from(b))
    };
    let head = futures::stream::iter(replay.into_iter().map(move |(_, k, o)| line(k, &o)));
    let live = futures::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok((rv, k, o)) if rv > last => return Some((line(k, &o), rx)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(head.chain(live)))
        .unwrap()
}

/// The mode gate of every Event call.
async fn event_mode(f: &Fake) -> Option<Response> {
    let mode = {
        let mut st = f.lock();
        st.event_calls += 1;
        st.mode.unwrap_or(Mode::Ok)
    };
    match mode {
        Mode::Ok => None,
        Mode::Fail500 => Some(k8s_status(
            500,
            "InternalError",
            "etcdserver: request timed out",
        )),
        Mode::Forbidden => Some(k8s_status(
            403,
            "Forbidden",
            "events.events.k8s.io is forbidden: User \"system:serviceaccount:x:y\" cannot create resource",
        )),
        Mode::Hang => std::future::pending().await,
    }
}

/// events.k8s.io/v1 create validation as the API server does it
/// (pkg/apis/core/validation/events.go, for events with eventTime set).
/// A refusal: HTTP code, Status reason, message.
type Refusal = (u16, &'static str, String);

fn validate_event(ns: &str, ev: &Value) -> Result<(), Refusal> {
    let s = |p: &str| ev.pointer(p).and_then(Value::as_str).unwrap_or("");
    let invalid = |m: String| Err((422, "Invalid", m));
    if s("/apiVersion") != "events.k8s.io/v1" || s("/kind") != "Event" {
        return Err((400, "BadRequest", "expected events.k8s.io/v1 Event".into()));
    }
    let body_ns = s("/metadata/namespace");
    if !body_ns.is_empty() && body_ns != ns {
        return Err((
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        ));
    }
    let regarding_ns = s("/regarding/namespace");
    if regarding_ns.is_empty() {
        if ns != "default" && ns != "kube-system" {
            return invalid("involvedObject.namespace: does not match event.namespace".into());
        }
    } else if regarding_ns != ns {
        return invalid("involvedObject.namespace: does not match event.namespace".into());
    }
    if s("/metadata/name").is_empty() {
        return invalid("metadata.name: Required value".into());
    }
    if s("/eventTime").is_empty() {
        return invalid("eventTime: Required value".into());
    }
    for (field, limit) in [
        ("reportingController", 253),
        ("reportingInstance", 128),
        ("action", 128),
        ("reason", 128),
    ] {
        let v = s(&format!("/{field}"));
        if v.is_empty() || v.len() > limit {
            return invalid(format!("{field}: Required value or too long"));
        }
    }
    if s("/note").len() > 1024 {
        return invalid("note: Too long: may not be more than 1024 bytes".into());
    }
    if !matches!(s("/type"), "Normal" | "Warning") {
        return invalid("type: Unsupported value".into());
    }
    Ok(())
}

async fn create_event(
    State(f): State<Fake>,
    UrlPath(ns): UrlPath<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = event_mode(&f).await {
        return r;
    }
    if let Err((code, reason, message)) = validate_event(&ns, &body) {
        return k8s_status(code, reason, &message);
    }
    let mut st = f.lock();
    st.creates.push((ns.clone(), body.clone()));
    st.rv += 1;
    let mut stored = body;
    stored["metadata"]["namespace"] = json!(ns);
    stored["metadata"]["resourceVersion"] = json!(st.rv.to_string());
    stored["metadata"]["uid"] = json!(format!("event-uid-{}", st.rv));
    let name = stored["metadata"]["name"].as_str().unwrap().to_owned();
    if st.events.contains_key(&(ns.clone(), name.clone())) {
        return k8s_status(409, "AlreadyExists", "events.events.k8s.io already exists");
    }
    st.events.insert((ns, name), stored.clone());
    (StatusCode::CREATED, Json(stored)).into_response()
}

async fn patch_event(
    State(f): State<Fake>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = event_mode(&f).await {
        return r;
    }
    let mut st = f.lock();
    st.patches.push((ns.clone(), name.clone(), body.clone()));
    let Some(stored) = st.events.get_mut(&(ns, name)) else {
        return k8s_status(404, "NotFound", "events.events.k8s.io not found");
    };
    // JSON merge patch (RFC 7386) of the top-level fields the Recorder sends.
    for (k, v) in body.as_object().unwrap() {
        if k != "metadata" {
            stored[k] = v.clone();
        }
    }
    let out = stored.clone();
    Json(out).into_response()
}

async fn other(State(f): State<Fake>, method: Method, uri: Uri) -> Response {
    f.lock().other.push(format!("{method} {uri}"));
    k8s_status(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

// ---------------------------------------------------------------- helpers

struct Env {
    fake: Fake,
    running: Running,
    client: EventsClient<rds_bus::BusChannel>,
    _dir: tempfile::TempDir,
}

async fn start(fake: Fake, tweak: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::kube_sink(fake.kubeconfig(dir.path()));
    cfg.instance = Some("rds-csi-controller-0".into());
    cfg.retry_budget_ms = 2_000;
    cfg.attempt_timeout_ms = 1_000;
    cfg.drain_timeout_ms = 200;
    tweak(&mut cfg);
    let listener = rds_bus::Listener::bind("127.0.0.1:0").await.unwrap();
    let running = event_service::start(cfg, listener).await.unwrap();
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
        pvc: pvc.map(|(ns, n)| PvcRef {
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
        .post(PostRequest {
            volume_id: "pvc-b1".into(),
            event: Some(Typed::VolumeDetached(VolumeDetached {
                node_id: "worker-2".into(),
            })),
            ..Default::default()
        })
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
            .post(PostRequest {
                volume_id: "pvc-b1".into(),
                event: Some(Typed::VolumeDetached(VolumeDetached {
                    node_id: "worker-2".into(),
                })),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    eventually("21 detached", || m.posted("VolumeDetached") == 21).await;
    {
        let st = env.fake.lock();
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
    let stored = env.fake.lock().events.values().next().cloned().unwrap();
    assert_eq!(stored["metadata"]["namespace"], "default");
    assert_eq!(ev["type"], "Warning");
    assert_eq!(
        ev["regarding"],
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "name": "pvc-c1", "uid": "uid-pvc-c1"})
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
    assert_eq!(env.fake.lock().event_calls, 0);
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
    let calls = env.fake.lock().event_calls;
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
        .post(PostRequest {
            volume_id: "pvc-d1".into(),
            event: Some(Typed::VolumeDetached(VolumeDetached {
                node_id: "worker-1".into(),
            })),
            ..Default::default()
        })
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
        env.fake.lock().event_calls >= 1
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
        let st = env.fake.lock();
        assert_eq!(
            st.creates.len(),
            1,
            "the repeat is a PATCH, not a new Event"
        );
        assert_eq!(st.patches.len(), 1);
        let stored = st.events.values().next().unwrap();
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
