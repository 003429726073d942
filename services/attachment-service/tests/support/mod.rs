//! Shared test support: a fake Kubernetes API server, the real event-service
//! (file sink) to receive events, and attachment-service started in-process
//! in its own runtime so a test can "crash" it (drop the runtime: no cleanup
//! code runs, leases are not released). The Kubernetes API is rds-testkit's
//! fake.
// Test code throughout: `cfg(test)` lets clippy.toml's unwrap/expect
// allowance cover these helpers too.
#![cfg(test)]
#![allow(dead_code, clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use attachment_service::Config;
use rds_bus::{ClientOptions, Listener, Shutdown};
use rds_proto::attachment::attachments_client::AttachmentsClient;
use rds_proto::attachment::{self as pb, AccessMode};
use serde_json::Value;

pub type Client = AttachmentsClient<rds_bus::BusChannel>;

pub use rds_testkit::eventually;
// Not every test file uses the fake API.
#[allow(unused_imports)]
pub use rds_testkit::{FakeApi, kube::objects};

/// The real event-service with its local JSON-lines sink.
pub struct Events {
    pub running: event_service::Running,
    pub path: PathBuf,
}

impl Events {
    pub async fn start(dir: &Path) -> Events {
        let path = dir.join("events.jsonl");
        let listener = Listener::bind("127.0.0.1:0").await.unwrap();
        let settings = event_service::Config::file_sink(&path).validate().unwrap();
        let running = event_service::start(settings, listener, Shutdown::new())
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

/// The service's own runtime (dropping it is a crash: no cleanup runs) and
/// a TCP listener on a free loopback port, registered with that runtime.
fn runtime_and_listener() -> (tokio::runtime::Runtime, Listener) {
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
    (rt, listener)
}

/// A client of the service at `endpoint` (2 s to connect, 10 s a call).
fn client_of(endpoint: &str) -> Client {
    AttachmentsClient::new(
        rds_bus::connect(
            endpoint,
            ClientOptions {
                connect_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(10),
            },
        )
        .unwrap(),
    )
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
        let (rt, listener) = runtime_and_listener();
        let endpoint = listener.endpoint();
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        let task = rt.spawn(async move {
            let settings = cfg.validate()?;
            attachment_service::start(settings, listener, s)
                .await?
                .wait()
                .await
        });
        Proc {
            endpoint,
            rt: Some(rt),
            shutdown,
            task: Some(task),
        }
    }

    pub fn client(&self) -> Client {
        client_of(&self.endpoint)
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

/// attachment-service in its own runtime through the public `start()`, with
/// the bus served on top, so a test can watch whether it leads.
pub struct Replica {
    pub endpoint: String,
    pub name: String,
    leader: tokio::sync::watch::Receiver<bool>,
    manager: std::sync::Arc<attachment_service::Manager>,
    rt: Option<tokio::runtime::Runtime>,
    shutdown: Shutdown,
    serving: Option<tokio::task::JoinHandle<()>>,
}

impl Replica {
    pub async fn start(name: &str, cfg: Config) -> Replica {
        let (rt, listener) = runtime_and_listener();
        let endpoint = listener.endpoint();
        let shutdown = Shutdown::new();
        let settings = cfg.validate().unwrap();
        let s = shutdown.clone();
        let running = rt
            .spawn(async move { attachment_service::start(settings, listener, s).await })
            .await
            .unwrap()
            .unwrap();
        let (leader, manager) = (running.leader_watch(), running.manager().clone());
        let serving = rt.spawn(async move {
            let _ = running.wait().await;
        });
        Replica {
            endpoint,
            name: name.to_owned(),
            leader,
            manager,
            rt: Some(rt),
            shutdown,
            serving: Some(serving),
        }
    }

    /// Whether it believes it leads right now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    pub fn manager(&self) -> std::sync::Arc<attachment_service::Manager> {
        self.manager.clone()
    }

    /// A handle for sampling leadership from another thread.
    pub fn leader_watch(&self) -> tokio::sync::watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Its table, read directly (no RPC): (volume, nodes).
    pub fn table(&self) -> Vec<(String, Vec<String>)> {
        self.manager
            .list(None, None)
            .map(|recs| {
                recs.into_iter()
                    .map(|r| {
                        (
                            r.volume.to_string(),
                            r.nodes.iter().map(|n| n.node.to_string()).collect(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn holds(&self, volume: &str, node: &str) -> bool {
        self.table()
            .iter()
            .any(|(v, nodes)| v == volume && nodes.iter().any(|n| n == node))
    }

    pub fn client(&self) -> Client {
        client_of(&self.endpoint)
    }

    /// Graceful stop (the leader releases its Lease).
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.serving.take() {
            let _ = tokio::time::timeout(Duration::from_secs(6), t).await;
        }
        if let Some(rt) = self.rt.take() {
            tokio::task::spawn_blocking(move || rt.shutdown_timeout(Duration::from_secs(6)))
                .await
                .unwrap();
        }
    }
}

impl Drop for Replica {
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
        pvc: Some(rds_proto::common::PvcRef {
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
