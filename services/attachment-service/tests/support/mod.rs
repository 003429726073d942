//! Shared test support: a fake Kubernetes API server, the real event-service
//! (file sink) to receive events, and attachment-service started in-process
//! in its own runtime so a test can "crash" it (drop the runtime: no cleanup
//! code runs, leases are not released).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::result_large_err
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use attachment_service::Config;
use rds_bus::{ClientOptions, Listener, Shutdown};
use rds_proto::attachment::attachments_client::AttachmentsClient;
use rds_proto::attachment::{self as pb, AccessMode};
use serde_json::Value;

pub type Client = AttachmentsClient<rds_bus::BusChannel>;

/// Polls `f` every 20 ms until it returns Some or `within` passes.
pub async fn eventually<T, F, Fut>(within: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real event-service with its local JSON-lines sink.
pub struct Events {
    pub running: event_service::Running,
    pub path: PathBuf,
}

impl Events {
    pub async fn start(dir: &Path) -> Events {
        let path = dir.join("events.jsonl");
        let listener = Listener::bind("127.0.0.1:0").await.unwrap();
        let running = event_service::start(event_service::Config::file_sink(&path), listener)
            .await
            .unwrap();
        Events { running, path }
    }

    pub fn endpoint(&self) -> String {
        self.running.endpoint().to_owned()
    }

    pub fn all(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn with_reason(&self, reason: &str) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|e| e["reason"] == reason)
            .collect()
    }

    /// Waits (≤ 5 s) for the `n`-th event with `reason` for `volume`.
    pub async fn wait(&self, reason: &str, volume: &str, n: usize) -> Vec<Value> {
        eventually(Duration::from_secs(5), || async {
            let v: Vec<Value> = self
                .with_reason(reason)
                .into_iter()
                .filter(|e| e["volume_id"] == volume)
                .collect();
            (v.len() >= n).then_some(v)
        })
        .await
        .unwrap_or_else(|| panic!("no {reason} #{n} for {volume}; got {:#?}", self.all()))
    }
}

/// attachment-service in its own runtime, served through the public
/// `serve()`.
pub struct Proc {
    pub endpoint: String,
    rt: Option<tokio::runtime::Runtime>,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<Result<(), attachment_service::Error>>>,
}

impl Proc {
    pub fn start(cfg: Config) -> Proc {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let listener = {
            let _g = rt.enter();
            Listener::Tcp(tokio::net::TcpListener::from_std(std_listener).unwrap())
        };
        let endpoint = listener.endpoint();
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        let task =
            rt.spawn(async move { attachment_service::serve(cfg, listener, s.wait()).await });
        Proc {
            endpoint,
            rt: Some(rt),
            shutdown,
            task: Some(task),
        }
    }

    pub fn client(&self) -> Client {
        AttachmentsClient::new(
            rds_bus::connect(
                &self.endpoint,
                ClientOptions {
                    connect_timeout: Duration::from_secs(2),
                    request_timeout: Duration::from_secs(10),
                },
            )
            .unwrap(),
        )
    }

    /// A crash: the runtime goes away with every task, cancelled wherever
    /// it was; no shutdown path runs (nothing flushed, no Lease released).
    /// Returns once the runtime is gone, as the kernel would have closed a
    /// dead process's files.
    pub async fn kill(mut self) {
        if let Some(rt) = self.rt.take() {
            tokio::task::spawn_blocking(move || rt.shutdown_timeout(Duration::from_secs(5)))
                .await
                .unwrap();
        }
    }

    /// Graceful stop through the shutdown future; returns serve()'s result.
    pub async fn stop(mut self) -> Result<(), attachment_service::Error> {
        self.shutdown.trigger();
        let res = self.task.take().unwrap().await.unwrap();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
        res
    }

    /// serve() returned (e.g. refused to start): its result.
    pub async fn exited(
        &mut self,
        within: Duration,
    ) -> Option<Result<(), attachment_service::Error>> {
        let task = self.task.as_mut()?;
        match tokio::time::timeout(within, task).await {
            Ok(res) => {
                self.task = None;
                Some(res.unwrap())
            }
            Err(_) => None,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Waits until the service answers List (its store is ready).
pub async fn ready(client: &mut Client) {
    eventually(Duration::from_secs(10), || {
        let mut c = client.clone();
        async move { c.list(pb::ListRequest::default()).await.ok().map(|_| ()) }
    })
    .await
    .expect("attachment-service never became ready");
}

pub fn attach_req(vol: &str, node: &str, mode: AccessMode, block: bool) -> pb::AttachRequest {
    pb::AttachRequest {
        volume_id: vol.to_owned(),
        node_id: node.to_owned(),
        access_mode: mode as i32,
        block,
        readonly: false,
        pvc: Some(pb::PvcRef {
            namespace: "team-a".to_owned(),
            name: format!("claim-{vol}"),
        }),
        migration_timeout_seconds: 0,
    }
}

pub fn detach_req(vol: &str, node: &str) -> pb::DetachRequest {
    pb::DetachRequest {
        volume_id: vol.to_owned(),
        node_id: node.to_owned(),
    }
}

pub async fn list(client: &mut Client) -> Vec<pb::Attachment> {
    let mut v = client
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .attachments;
    v.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
    v
}

pub fn nodes_of(a: &pb::Attachment) -> Vec<String> {
    a.nodes.iter().map(|n| n.node_id.clone()).collect()
}

/// A free TCP port on loopback (for the metrics server).
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// GET http://addr/metrics with a plain HTTP/1.1 request (no client crate).
pub async fn scrape(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// A small in-process Kubernetes API server speaking real JSON: list, get,
/// watch (`?watch=true`, newline-delimited WatchEvents from a
/// resourceVersion), create, replace (with resourceVersion conflicts) and
/// delete, for any resource path; metadata-only (`as=PartialObjectMetadata`)
/// answers; and a switch that makes every request fail with 503.
pub mod fake_kube {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::body::{Body, Bytes};
    use axum::extract::{Request, State};
    use axum::http::{Method, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use serde_json::{Value, json};
    use tokio::sync::broadcast;

    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct Key {
        group: String,
        plural: String,
        namespace: String,
        name: String,
    }

    #[derive(Clone)]
    struct Change {
        group: String,
        plural: String,
        namespace: String,
        rv: u64,
        line: String,
    }

    #[derive(Default)]
    struct Db {
        rv: u64,
        objects: BTreeMap<Key, Value>,
        history: Vec<Change>,
    }

    pub struct Inner {
        db: Mutex<Db>,
        changes: broadcast::Sender<Change>,
        failing: AtomicBool,
        /// (method, path) of every request, for assertions.
        pub requests: Mutex<Vec<(String, String)>>,
    }

    #[derive(Clone)]
    pub struct FakeKube {
        pub inner: Arc<Inner>,
        pub url: String,
    }

    fn kind_of(plural: &str) -> &'static str {
        match plural {
            "volumeattachments" => "VolumeAttachment",
            "nodes" => "Node",
            "persistentvolumes" => "PersistentVolume",
            "persistentvolumeclaims" => "PersistentVolumeClaim",
            "leases" => "Lease",
            "events" => "Event",
            _ => "Unknown",
        }
    }

    fn api_version(group: &str) -> String {
        if group.is_empty() {
            "v1".to_owned()
        } else {
            group.to_owned()
        }
    }

    fn status(code: StatusCode, reason: &str, message: &str) -> Response {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code.as_u16()
        });
        (
            code,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }

    fn ok_json(code: StatusCode, v: &Value) -> Response {
        (
            code,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response()
    }

    /// Parsed `/api/v1/...` or `/apis/{group}/{version}/...`.
    struct Target {
        group: String,
        plural: String,
        namespace: String,
        name: Option<String>,
    }

    fn parse_path(path: &str) -> Option<Target> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, rest) = match segs.as_slice() {
            ["api", "v1", rest @ ..] => (String::new(), rest),
            ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (ns.to_string(), rest),
            _ => (String::new(), rest),
        };
        let plural = rest.first()?.to_string();
        Some(Target {
            group,
            plural,
            namespace,
            name: rest.get(1).map(|s| s.to_string()),
        })
    }

    fn query(req: &Request) -> BTreeMap<String, String> {
        req.uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Metadata-only clients get PartialObjectMetadata, like the real server.
    fn shape(obj: &Value, meta_only: bool) -> Value {
        if meta_only {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]})
        } else {
            obj.clone()
        }
    }

    impl FakeKube {
        pub async fn start() -> FakeKube {
            let (changes, _) = broadcast::channel(4096);
            let inner = Arc::new(Inner {
                db: Mutex::new(Db::default()),
                changes,
                failing: AtomicBool::new(false),
                requests: Mutex::new(Vec::new()),
            });
            let app = axum::Router::new()
                .fallback(handle)
                .with_state(inner.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            FakeKube { inner, url }
        }

        /// A kubeconfig pointing at this server (plain HTTP, no auth).
        pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
            let path = dir.join("kubeconfig");
            std::fs::write(
                &path,
                format!(
                    "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
                     contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
                     current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
                    self.url
                ),
            )
            .unwrap();
            path
        }

        pub fn set_failing(&self, on: bool) {
            self.inner.failing.store(on, Ordering::SeqCst);
        }

        pub fn writes(&self) -> Vec<(String, String)> {
            self.inner
                .requests
                .lock()
                .unwrap()
                .iter()
                .filter(|(m, _)| m != "GET")
                .cloned()
                .collect()
        }

        /// Creates or replaces an object directly (as another controller would).
        pub fn put(&self, group: &str, plural: &str, namespace: &str, obj: Value) -> Value {
            self.inner
                .upsert(group, plural, namespace, obj, None)
                .unwrap()
        }

        pub fn delete(&self, group: &str, plural: &str, namespace: &str, name: &str) {
            self.inner.remove(group, plural, namespace, name).unwrap();
        }

        pub fn get(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
            let db = self.inner.db.lock().unwrap();
            db.objects
                .get(&Key {
                    group: group.into(),
                    plural: plural.into(),
                    namespace: namespace.into(),
                    name: name.into(),
                })
                .cloned()
        }
    }

    impl Inner {
        fn record(
            &self,
            db: &mut Db,
            group: &str,
            plural: &str,
            namespace: &str,
            kind: &str,
            obj: &Value,
        ) {
            let line = json!({"type": kind, "object": obj}).to_string();
            let change = Change {
                group: group.into(),
                plural: plural.into(),
                namespace: namespace.into(),
                rv: db.rv,
                line,
            };
            db.history.push(change.clone());
            let _ = self.changes.send(change);
        }

        /// `expect_rv` Some: a replace that must match (409 otherwise).
        fn upsert(
            &self,
            group: &str,
            plural: &str,
            namespace: &str,
            mut obj: Value,
            expect_rv: Option<Option<String>>,
        ) -> Result<Value, Response> {
            let mut db = self.db.lock().unwrap();
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
            if name.is_empty() {
                return Err(status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "metadata.name required",
                ));
            }
            let key = Key {
                group: group.into(),
                plural: plural.into(),
                namespace: namespace.into(),
                name: name.clone(),
            };
            let old = db.objects.get(&key).cloned();
            match (&expect_rv, &old) {
                (Some(_), None) => {
                    return Err(status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        &format!("{plural} {name} not found"),
                    ));
                }
                (Some(Some(want)), Some(old))
                    if old["metadata"]["resourceVersion"] != json!(want) =>
                {
                    return Err(status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        &format!(
                            "Operation cannot be fulfilled on {plural} {name:?}: the object has been modified"
                        ),
                    ));
                }
                _ => {}
            }
            db.rv += 1;
            let rv = db.rv;
            let meta = obj["metadata"].as_object_mut().unwrap();
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
            if !namespace.is_empty() {
                meta.insert("namespace".into(), json!(namespace));
            }
            let created = old
                .as_ref()
                .map(|o| o["metadata"]["creationTimestamp"].clone())
                .filter(|v| !v.is_null())
                .or_else(|| {
                    meta.get("creationTimestamp")
                        .cloned()
                        .filter(|v| !v.is_null())
                })
                .unwrap_or_else(|| {
                    json!(
                        jiff::Timestamp::now()
                            .strftime("%Y-%m-%dT%H:%M:%SZ")
                            .to_string()
                    )
                });
            meta.insert("creationTimestamp".into(), created);
            let uid = old
                .as_ref()
                .map(|o| o["metadata"]["uid"].clone())
                .unwrap_or_else(|| json!(format!("uid-{rv}")));
            meta.insert("uid".into(), uid);
            if obj.get("kind").is_none() {
                obj["kind"] = json!(kind_of(plural));
                obj["apiVersion"] = json!(api_version(group));
            }
            db.objects.insert(key, obj.clone());
            let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
            self.record(&mut db, group, plural, namespace, kind, &obj);
            Ok(obj)
        }

        fn remove(
            &self,
            group: &str,
            plural: &str,
            namespace: &str,
            name: &str,
        ) -> Result<Value, Response> {
            let mut db = self.db.lock().unwrap();
            let key = Key {
                group: group.into(),
                plural: plural.into(),
                namespace: namespace.into(),
                name: name.into(),
            };
            let Some(mut obj) = db.objects.remove(&key) else {
                return Err(status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("{plural} {name} not found"),
                ));
            };
            db.rv += 1;
            obj["metadata"]["resourceVersion"] = json!(db.rv.to_string());
            self.record(&mut db, group, plural, namespace, "DELETED", &obj);
            Ok(obj)
        }
    }

    async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
        let path = req.uri().path().to_owned();
        inner
            .requests
            .lock()
            .unwrap()
            .push((req.method().to_string(), req.uri().to_string()));
        if inner.failing.load(Ordering::SeqCst) {
            return status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "fake API server is failing",
            );
        }
        let Some(t) = parse_path(&path) else {
            return status(StatusCode::NOT_FOUND, "NotFound", "unknown path");
        };
        let q = query(&req);
        let meta_only = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("as=PartialObjectMetadata"));
        let method = req.method().clone();
        let body = axum::body::to_bytes(req.into_body(), 16 << 20)
            .await
            .unwrap_or_default();
        match (method, &t.name) {
            (Method::GET, None) if q.get("watch").is_some_and(|v| v == "true" || v == "1") => {
                watch(
                    inner,
                    t,
                    q.get("resourceVersion")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    meta_only,
                )
            }
            (Method::GET, None) => {
                let db = inner.db.lock().unwrap();
                let items: Vec<Value> = db
                    .objects
                    .iter()
                    .filter(|(k, _)| {
                        k.group == t.group
                            && k.plural == t.plural
                            && (t.namespace.is_empty() || k.namespace == t.namespace)
                    })
                    .map(|(_, v)| shape(v, meta_only))
                    .collect();
                let (kind, av) = if meta_only {
                    (
                        "PartialObjectMetadataList".to_owned(),
                        "meta.k8s.io/v1".to_owned(),
                    )
                } else {
                    (format!("{}List", kind_of(&t.plural)), api_version(&t.group))
                };
                ok_json(
                    StatusCode::OK,
                    &json!({"kind": kind, "apiVersion": av,
                            "metadata": {"resourceVersion": db.rv.to_string()}, "items": items}),
                )
            }
            (Method::GET, Some(name)) => {
                let db = inner.db.lock().unwrap();
                let key = Key {
                    group: t.group.clone(),
                    plural: t.plural.clone(),
                    namespace: t.namespace.clone(),
                    name: name.clone(),
                };
                match db.objects.get(&key) {
                    Some(v) => ok_json(StatusCode::OK, &shape(v, meta_only)),
                    None => status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        &format!("{} {name} not found", t.plural),
                    ),
                }
            }
            (Method::POST, None) => {
                let Ok(obj) = serde_json::from_slice::<Value>(&body) else {
                    return status(StatusCode::BAD_REQUEST, "BadRequest", "bad json");
                };
                let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
                if inner.db.lock().unwrap().objects.contains_key(&Key {
                    group: t.group.clone(),
                    plural: t.plural.clone(),
                    namespace: t.namespace.clone(),
                    name: name.clone(),
                }) {
                    return status(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        &format!("{} {name:?} already exists", t.plural),
                    );
                }
                match inner.upsert(&t.group, &t.plural, &t.namespace, obj, None) {
                    Ok(v) => ok_json(StatusCode::CREATED, &v),
                    Err(r) => r,
                }
            }
            (Method::PUT, Some(_)) => {
                let Ok(obj) = serde_json::from_slice::<Value>(&body) else {
                    return status(StatusCode::BAD_REQUEST, "BadRequest", "bad json");
                };
                let rv = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_owned);
                match inner.upsert(&t.group, &t.plural, &t.namespace, obj, Some(rv)) {
                    Ok(v) => ok_json(StatusCode::OK, &v),
                    Err(r) => r,
                }
            }
            (Method::DELETE, Some(name)) => {
                match inner.remove(&t.group, &t.plural, &t.namespace, name) {
                    Ok(v) => ok_json(StatusCode::OK, &v),
                    Err(r) => r,
                }
            }
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "not supported by the fake",
            ),
        }
    }

    fn watch(inner: Arc<Inner>, t: Target, from_rv: u64, meta_only: bool) -> Response {
        let mut live = inner.changes.subscribe();
        let backlog: Vec<Change> = inner
            .db
            .lock()
            .unwrap()
            .history
            .iter()
            .filter(|c| c.rv > from_rv)
            .cloned()
            .collect();
        let matches = move |c: &Change| {
            c.group == t.group
                && c.plural == t.plural
                && (t.namespace.is_empty() || c.namespace == t.namespace)
        };
        let render = move |c: &Change| -> Bytes {
            let mut v: Value = serde_json::from_str(&c.line).unwrap();
            v["object"] = shape(&v["object"], meta_only);
            Bytes::from(format!("{v}\n"))
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        tokio::spawn(async move {
            let mut last = from_rv;
            for c in backlog.iter().filter(|c| matches(c)) {
                last = c.rv;
                if tx.send(Ok(render(c))).await.is_err() {
                    return;
                }
            }
            loop {
                match live.recv().await {
                    Ok(c) if c.rv > last && matches(&c) => {
                        last = c.rv;
                        if tx.send(Ok(render(&c))).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(stream))
            .unwrap()
    }

    // ---- object builders (real Kubernetes JSON) ----

    pub const STORAGE: &str = "storage.k8s.io/v1";
    pub const COORD: &str = "coordination.k8s.io/v1";

    pub fn node(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
               "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    }

    /// A PV of our driver; `pvc` goes into the volume attributes.
    pub fn pv(
        name: &str,
        handle: &str,
        modes: &[&str],
        block: bool,
        pvc: Option<(&str, &str)>,
        driver: &str,
    ) -> Value {
        let mut attrs = serde_json::Map::new();
        attrs.insert(
            "volumePath".into(),
            json!(format!("/storage-pool/metal-csi/{handle}.img")),
        );
        if let Some((ns, n)) = pvc {
            attrs.insert("csi.storage.k8s.io/pvc/namespace".into(), json!(ns));
            attrs.insert("csi.storage.k8s.io/pvc/name".into(), json!(n));
        }
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
               "spec": {"accessModes": modes, "volumeMode": if block {"Block"} else {"Filesystem"},
                        "capacity": {"storage": "1Gi"},
                        "csi": {"driver": driver, "volumeHandle": handle, "volumeAttributes": attrs}}})
    }

    /// A VolumeAttachment as the external-attacher leaves it.
    pub fn va(
        name: &str,
        pv: &str,
        node: &str,
        attached: bool,
        driver: &str,
        created: &str,
    ) -> Value {
        json!({"apiVersion": STORAGE, "kind": "VolumeAttachment",
               "metadata": {"name": name, "creationTimestamp": created},
               "spec": {"attacher": driver, "nodeName": node, "source": {"persistentVolumeName": pv}},
               "status": {"attached": attached}})
    }
}
