//! One in-process fake Kubernetes API server for every crate's tests.
//!
//! - Real paths and JSON: objects are stored as the API server returns
//!   them (apiVersion, kind, metadata with uid, resourceVersion,
//!   creationTimestamp); typed helpers take and return k8s-openapi types.
//! - get, list, watch (resourceVersion, bookmarks, 410 Gone), create,
//!   update (409 on a stale resourceVersion), update of `/status`, merge
//!   patch, delete (finalizers honoured).
//! - Faults per verb/resource/name/client: delay, delayed answer, hang,
//!   failure ([`Fault`]); a switch that fails everything with 503;
//!   [`FakeApi::expire_watches`] to force re-lists.
//! - Every request is logged ([`Call`]) with the client that sent it (its
//!   bearer token), so two clients can be told apart.
//! - Plain HTTP with a kubeconfig ([`FakeApi::start`]), or HTTPS with a CA
//!   and a token laid out as in a pod ([`FakeApi::start_tls`],
//!   [`incluster`]).

pub mod faults;
pub mod incluster;
pub mod objects;
pub mod proxy;
pub mod resources;
mod server;
mod store;
pub mod tls;
mod watch;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{broadcast, watch as tokio_watch};

pub use faults::{Fault, FaultId, Verb};
pub use resources::ResourceType;
pub use store::Refusal;
pub use tls::PodFiles;

use store::{Change, Db, WriteMode};

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Call {
    /// The bearer token, or `anonymous`.
    pub client: String,
    pub method: String,
    pub uri: String,
    pub verb: Option<Verb>,
    /// The URL plural (`volumeattachments`).
    pub resource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The body as received, when JSON.
    pub body: Option<Value>,
    /// The answer's HTTP code (None while in flight).
    pub status: Option<u16>,
    pub at: Instant,
}

/// Extra admission on create (the API server's validation of a type).
pub type Admission = Arc<dyn Fn(&str, &Value) -> Result<(), Refusal> + Send + Sync>;

pub(crate) struct Inner {
    db: Mutex<Db>,
    changes: broadcast::Sender<Change>,
    expire: tokio_watch::Sender<u64>,
    bookmark_now: tokio_watch::Sender<u64>,
    bookmark_every: Mutex<Option<Duration>>,
    resources: Mutex<Vec<ResourceType>>,
    admissions: Mutex<Vec<(String, Admission)>>,
    faults: Mutex<Vec<(u64, Fault)>>,
    next_fault: AtomicU64,
    failing: AtomicBool,
    calls: Mutex<Vec<Call>>,
    /// HTTPS mode: the tokens accepted (401 otherwise). Plain HTTP: any.
    tokens: Option<Mutex<HashSet<String>>>,
    /// Planted pod proxy answers by [`proxy::key`].
    proxies: Mutex<std::collections::HashMap<String, proxy::ProxyReply>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn new(tokens: Option<HashSet<String>>) -> Inner {
        let (changes, _) = broadcast::channel(8192);
        Inner {
            db: Mutex::new(Db::new()),
            changes,
            expire: tokio_watch::channel(0).0,
            bookmark_now: tokio_watch::channel(0).0,
            bookmark_every: Mutex::new(Some(Duration::from_secs(1))),
            resources: Mutex::new(resources::defaults()),
            admissions: Mutex::new(vec![(
                "events".to_owned(),
                Arc::new(objects::validate_event) as Admission,
            )]),
            faults: Mutex::new(Vec::new()),
            next_fault: AtomicU64::new(1),
            failing: AtomicBool::new(false),
            calls: Mutex::new(Vec::new()),
            tokens: tokens.map(Mutex::new),
            proxies: Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub(crate) fn pod_proxy(
        &self,
        ns: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> Option<proxy::ProxyReply> {
        lock(&self.proxies)
            .get(&proxy::key(ns, pod, port, path))
            .cloned()
    }

    pub(crate) fn db(&self) -> MutexGuard<'_, Db> {
        lock(&self.db)
    }

    fn log(&self, call: Call) -> usize {
        let mut calls = lock(&self.calls);
        calls.push(call);
        calls.len() - 1
    }

    fn set_status(&self, idx: usize, code: u16) {
        if let Some(c) = lock(&self.calls).get_mut(idx) {
            c.status = Some(code);
        }
    }

    fn authorized(&self, token: Option<&str>) -> bool {
        match &self.tokens {
            None => true,
            Some(set) => token.is_some_and(|t| lock(set).contains(t)),
        }
    }

    fn failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    fn take_fault(
        &self,
        verb: Verb,
        resource: &str,
        name: Option<&str>,
        client: &str,
    ) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let (_, f) = faults
            .iter_mut()
            .find(|(_, f)| f.matches(verb, resource, name, client))?;
        if let Some(n) = f.times.as_mut() {
            *n -= 1;
        }
        Some(f.clone())
    }

    fn resource(&self, api_version: &str, plural: &str) -> Option<ResourceType> {
        lock(&self.resources)
            .iter()
            .find(|r| r.api_version == api_version && r.plural == plural)
            .cloned()
    }

    fn bookmark_interval(&self) -> Option<Duration> {
        *lock(&self.bookmark_every)
    }

    fn admit(&self, rt: &ResourceType, ns: &str, obj: &Value) -> Result<(), Refusal> {
        let checks: Vec<Admission> = lock(&self.admissions)
            .iter()
            .filter(|(p, _)| *p == rt.plural && rt.api_version == "events.k8s.io/v1")
            .map(|(_, a)| a.clone())
            .collect();
        checks.iter().try_for_each(|a| a(ns, obj))
    }

    fn write(
        &self,
        rt: &ResourceType,
        ns: &str,
        obj: Value,
        mode: WriteMode,
    ) -> Result<Value, Refusal> {
        self.db().write(&self.changes, rt, ns, obj, mode)
    }

    fn delete(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, Refusal> {
        self.db().delete(&self.changes, rt, ns, name)
    }
}

/// A running fake API server. Dropping it leaves the server task running
/// until the test's runtime ends.
pub struct FakeApi {
    inner: Arc<Inner>,
    url: String,
    addr: std::net::SocketAddr,
    pod: Option<PodFiles>,
    dir: tempfile::TempDir,
}

/// The namespace written to the pod's `namespace` file.
pub const POD_NAMESPACE: &str = "rds-csi";

impl FakeApi {
    /// Plain HTTP on 127.0.0.1 (no authentication).
    pub async fn start() -> FakeApi {
        let listener = bind().await;
        let addr = local(&listener);
        let inner = Arc::new(Inner::new(None));
        let app = router(&inner);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeApi {
            inner,
            url: format!("http://{addr}"),
            addr,
            pod: None,
            dir: tempdir(),
        }
    }

    /// HTTPS on 127.0.0.1 with a fresh CA; the pod's service-account files
    /// (ca.crt, token, namespace) are written to [`FakeApi::pod_files`].
    /// Requests must carry that token, or one from
    /// [`FakeApi::kubeconfig_for`] (401 otherwise).
    pub async fn start_tls() -> FakeApi {
        let dir = tempdir();
        let token = format!("sa-token-{}", std::process::id());
        let made = tls::make(dir.path(), &token, POD_NAMESPACE)
            .unwrap_or_else(|e| panic!("fake API certificates: {e}"));
        let listener = bind().await;
        let addr = local(&listener);
        let inner = Arc::new(Inner::new(Some(HashSet::from([token]))));
        let app = router(&inner);
        let tls_listener = tls::TlsListener::new(listener, made.acceptor)
            .unwrap_or_else(|e| panic!("fake API TLS listener: {e}"));
        tokio::spawn(async move {
            let _ = axum::serve(tls_listener, app).await;
        });
        FakeApi {
            inner,
            url: format!("https://{addr}"),
            addr,
            pod: Some(made.files),
            dir,
        }
    }

    /// Plants the answer of `GET /api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy<path>`
    /// (the API server's pod proxy; `path` starts with `/`). Unplanted targets answer 503.
    pub fn set_pod_proxy(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
        reply: proxy::ProxyReply,
    ) {
        lock(&self.inner.proxies).insert(proxy::key(namespace, pod, port, path), reply);
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// HTTPS mode: the pod's files (None in plain HTTP mode).
    pub fn pod_files(&self) -> Option<&PodFiles> {
        self.pod.as_ref()
    }

    /// The environment a pod gets for this server:
    /// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT.
    pub fn service_env(&self) -> [(&'static str, String); 2] {
        [
            ("KUBERNETES_SERVICE_HOST", self.addr.ip().to_string()),
            ("KUBERNETES_SERVICE_PORT", self.addr.port().to_string()),
        ]
    }

    /// A kubeconfig for the default client (in HTTPS mode: the CA file
    /// and the service-account token).
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let token = self.pod.as_ref().map(|p| p.token.clone());
        self.write_kubeconfig(dir, "kubeconfig", token.as_deref())
    }

    /// A kubeconfig whose requests carry `client` as bearer token, so
    /// faults and the call log can tell this client apart.
    pub fn kubeconfig_for(&self, dir: &Path, client: &str) -> PathBuf {
        if let Some(set) = &self.inner.tokens {
            lock(set).insert(client.to_owned());
        }
        self.write_kubeconfig(dir, &format!("kubeconfig-{client}"), Some(client))
    }

    fn write_kubeconfig(&self, dir: &Path, file: &str, token: Option<&str>) -> PathBuf {
        let path = dir.join(file);
        let ca = match &self.pod {
            Some(p) => format!(
                "    certificate-authority: {}\n",
                p.sa_dir.join("ca.crt").display()
            ),
            None => String::new(),
        };
        let user = match token {
            Some(t) => format!("\n    token: {t}\n"),
            None => " {}\n".to_owned(),
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n{ca}\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\nusers:\n- name: fake\n  user:{user}",
            self.url
        );
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// A kube client for the default client identity (HTTPS: trusts the CA
    /// and sends the service-account token).
    pub fn client(&self) -> kube::Client {
        let token = self.pod.as_ref().map(|p| p.token.clone());
        self.client_as(token.as_deref())
    }

    /// A kube client sending `token` (None: no Authorization header).
    pub fn client_as(&self, token: Option<&str>) -> kube::Client {
        let mut cfg = kube::Config::new(
            self.url
                .parse()
                .unwrap_or_else(|e| panic!("fake API url: {e}")),
        );
        if let Some(p) = &self.pod {
            cfg.root_cert = Some(vec![p.ca_der.clone()]);
        }
        if let Some(t) = token {
            if let Some(set) = &self.inner.tokens {
                lock(set).insert(t.to_owned());
            }
            let file = self.dir.path().join(format!("token-{t}"));
            std::fs::write(&file, t).unwrap_or_else(|e| panic!("token file: {e}"));
            cfg.auth_info.token_file = Some(file.display().to_string());
        }
        kube::Client::try_from(cfg).unwrap_or_else(|e| panic!("kube client: {e}"))
    }

    // ---- seeding and inspecting (as another controller or a user would)

    /// Creates or replaces an object (no resourceVersion check); returns it
    /// as stored.
    pub fn put<K>(&self, obj: &K) -> K
    where
        K: Resource + Serialize + DeserializeOwned,
        K::Scope: 'static,
    {
        let v = serde_json::to_value(obj).unwrap_or_else(|e| panic!("serialize: {e}"));
        from_value(self.put_value::<K>(v))
    }

    /// Like [`FakeApi::put`] from JSON; the JSON must parse as `K` (the
    /// real shape), else this panics.
    pub fn put_value<K>(&self, obj: Value) -> Value
    where
        K: Resource + DeserializeOwned,
        K::Scope: 'static,
    {
        let _: K = from_value(obj.clone());
        let rt = self.registered::<K>();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        self.inner
            .write(&rt, &ns, obj, WriteMode::Upsert)
            .unwrap_or_else(|r| panic!("put {}: {} {}", rt.plural, r.code, r.message))
    }

    pub fn get<K>(&self, namespace: Option<&str>, name: &str) -> Option<K>
    where
        K: Resource + DeserializeOwned,
        K::Scope: 'static,
    {
        self.get_value::<K>(namespace, name).map(from_value)
    }

    pub fn get_value<K>(&self, namespace: Option<&str>, name: &str) -> Option<Value>
    where
        K: Resource,
        K::Scope: 'static,
    {
        let rt = self.registered::<K>();
        let key = Db::key(&rt, namespace.unwrap_or(""), name);
        self.inner.db().objects.get(&key).cloned()
    }

    pub fn list<K>(&self) -> Vec<K>
    where
        K: Resource + DeserializeOwned,
        K::Scope: 'static,
    {
        let rt = self.registered::<K>();
        self.inner
            .db()
            .list(&rt, "")
            .into_iter()
            .map(from_value)
            .collect()
    }

    /// Deletes an object (finalizers keep it, marked deleting); panics when
    /// it does not exist.
    pub fn delete<K>(&self, namespace: Option<&str>, name: &str)
    where
        K: Resource,
        K::Scope: 'static,
    {
        let rt = self.registered::<K>();
        self.inner
            .delete(&rt, namespace.unwrap_or(""), name)
            .unwrap_or_else(|r| panic!("delete {} {name}: {}", rt.plural, r.message));
    }

    /// The current resourceVersion of the store.
    pub fn resource_version(&self) -> u64 {
        self.inner.db().rv
    }

    /// Serves one more resource type (the defaults are PV, PVC,
    /// VolumeAttachment, Lease, Event (both groups), Node, CSINode, Pod).
    pub fn register(&self, rt: ResourceType) {
        let mut all = lock(&self.inner.resources);
        if !all.contains(&rt) {
            all.push(rt);
        }
    }

    fn registered<K>(&self) -> ResourceType
    where
        K: Resource,
        K::Scope: 'static,
    {
        let rt = ResourceType::of::<K>();
        self.inner
            .resource(&rt.api_version, &rt.plural)
            .unwrap_or_else(|| {
                self.register(rt.clone());
                rt
            })
    }

    // ---- faults

    /// Adds a fault rule; the first matching rule applies to a request.
    pub fn inject(&self, fault: Fault) -> FaultId {
        let id = self.inner.next_fault.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.faults).push((id, fault));
        FaultId(id)
    }

    pub fn remove_fault(&self, id: FaultId) {
        lock(&self.inner.faults).retain(|(i, _)| *i != id.0);
    }

    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// Every request answers 503 while on.
    pub fn set_failing(&self, on: bool) {
        self.inner.failing.store(on, Ordering::SeqCst);
    }

    /// Ends every open watch with a 410 ERROR event and forgets the
    /// history, so clients re-list.
    pub fn expire_watches(&self) {
        self.inner.db().compact();
        self.inner.expire.send_modify(|g| *g += 1);
    }

    /// Forgets the history only: a watch resuming from an older
    /// resourceVersion gets 410.
    pub fn compact(&self) {
        self.inner.db().compact();
    }

    /// Every open watch that asked for bookmarks gets one now.
    pub fn send_bookmarks(&self) {
        self.inner.bookmark_now.send_modify(|g| *g += 1);
    }

    /// How often watches get a BOOKMARK (None: only on request).
    pub fn set_bookmark_interval(&self, every: Option<Duration>) {
        *lock(&self.inner.bookmark_every) = every;
    }

    // ---- the request log

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.inner.calls).clone()
    }

    /// Requests with this verb on this resource (URL plural).
    pub fn calls_to(&self, verb: Verb, resource: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.verb == Some(verb) && c.resource.as_deref() == Some(resource))
            .collect()
    }

    /// (method, uri) of every request that changes something.
    pub fn writes(&self) -> Vec<(String, String)> {
        self.calls()
            .into_iter()
            .filter(|c| c.verb.is_some_and(Verb::is_write))
            .map(|c| (c.method, c.uri))
            .collect()
    }
}

fn from_value<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("not the real shape: {e}"))
}

fn router(inner: &Arc<Inner>) -> axum::Router {
    axum::Router::new()
        .fallback(server::handle)
        .with_state(inner.clone())
}

async fn bind() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"))
}

fn local(l: &tokio::net::TcpListener) -> std::net::SocketAddr {
    l.local_addr().unwrap_or_else(|e| panic!("local_addr: {e}"))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}
