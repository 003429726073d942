//! Shared harness: rds-sim in-process (real SSH server) + rds-agent served
//! over real gRPC on 127.0.0.1:0, configured through its real flags.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rds_agent::RunningAgent;
use rds_agent::spec::{AgentSpec, HostKeyPin};
use rds_bus::{BusChannel, ClientOptions};
use rds_proto::agent::agent_client::AgentClient;
use rds_proto::agent::{CreateVolumeRequest, DeleteVolumeRequest, ProbeRequest};
use rds_sim::{Sim, SimConfig, SimHandle};
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;

pub const GIB: u64 = 1 << 30;
pub const MIB: u64 = 1 << 20;

pub fn key(seed: u8) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
}

/// How the agent pins the sim's host key.
#[derive(Clone, Debug)]
pub enum Pin {
    Fingerprint,
    /// A fingerprint of some other key (mismatch).
    WrongFingerprint,
    PublicKeyFile,
    KnownHosts,
    Insecure,
}

pub struct Opts {
    pub pin: Pin,
    /// Seed of the key the agent logs in with (the sim authorises seed 1).
    pub client_key_seed: u8,
    pub sim: Box<dyn FnOnce(&mut SimConfig) + Send>,
    pub agent_args: Vec<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            pin: Pin::Fingerprint,
            client_key_seed: 1,
            sim: Box::new(|_| {}),
            agent_args: Vec::new(),
        }
    }
}

/// The agent client every test drives.
pub type Client = AgentClient<BusChannel>;

pub struct Env {
    pub sim: SimHandle,
    pub agent: Option<RunningAgent>,
    pub client: AgentClient<BusChannel>,
    pub dir: tempfile::TempDir,
    pub key_path: PathBuf,
}

pub async fn env(opts: Opts) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(dir.path().join("sim"), vec![key(1).public_key().clone()]);
    cfg.base_dirs = vec!["storage-pool/metal-csi".to_owned()];
    (opts.sim)(&mut cfg);
    let sim = Sim::start(cfg).await.unwrap();

    let key_path = dir.path().join("id_ed25519");
    std::fs::write(
        &key_path,
        key(opts.client_key_seed)
            .to_openssh(LineEnding::LF)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let pin = match opts.pin {
        Pin::Fingerprint => HostKeyPin::Fingerprint(sim.host_key_fingerprint()),
        Pin::WrongFingerprint => {
            HostKeyPin::Fingerprint(rds_agent::ssh::fingerprint(key(99).public_key()))
        }
        Pin::PublicKeyFile => {
            let p = dir.path().join("rds_host.pub");
            std::fs::write(&p, sim.host_public_key().to_openssh().unwrap()).unwrap();
            HostKeyPin::PublicKeyFile(p)
        }
        Pin::KnownHosts => {
            let p = dir.path().join("known_hosts");
            let line = format!(
                "[127.0.0.1]:{} {}\n",
                sim.addr().port(),
                sim.host_public_key().to_openssh().unwrap()
            );
            std::fs::write(&p, line).unwrap();
            HostKeyPin::KnownHosts(p)
        }
        Pin::Insecure => HostKeyPin::InsecureSkip,
    };
    let mut spec = AgentSpec::new("127.0.0.1", sim.addr().port(), key_path.clone(), pin);
    spec.metrics_address = Some("127.0.0.1:0".into());
    spec.command_timeout = Some(Duration::from_secs(2));
    spec.connect_timeout = Some(Duration::from_secs(2));
    spec.reconnect_backoff = Some((Duration::from_millis(50), Duration::from_millis(400)));
    // The storage pool poll sends commands of its own: off here (unless the
    // test sets it) so tests see only the commands they cause.
    spec.extra_args = opts.agent_args;
    if !spec
        .extra_args
        .iter()
        .any(|a| a == "--pool-metrics-interval")
    {
        spec.extra_args
            .extend(["--pool-metrics-interval".into(), "0".into()]);
    }
    let settings = spec.settings().unwrap();
    let listener = rds_bus::Listener::bind(&settings.listen).await.unwrap();
    let agent = rds_agent::start(settings, listener, rds_bus::Shutdown::new())
        .await
        .unwrap();
    let channel = rds_bus::connect(
        &agent.endpoint,
        ClientOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(20),
        },
    )
    .unwrap();
    Env {
        sim,
        agent: Some(agent),
        client: AgentClient::new(channel),
        dir,
        key_path,
    }
}

impl Env {
    pub fn client(&self) -> AgentClient<BusChannel> {
        self.client.clone()
    }

    /// Every command line the sim received (from its commands.log).
    pub fn commands(&self) -> Vec<String> {
        std::fs::read_to_string(self.sim.commands_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(" cmd=").map(|(_, c)| c.to_owned()))
            .collect()
    }

    /// Raw commands.log text.
    pub fn commands_log(&self) -> String {
        std::fs::read_to_string(self.sim.commands_log()).unwrap_or_default()
    }

    /// `/disk add` commands received for `slot`.
    pub fn adds_for(&self, slot: &str) -> usize {
        let needle = format!("slot={slot}");
        self.commands()
            .iter()
            .filter(|c| c.starts_with("/disk add") && c.split(' ').any(|t| t == needle))
            .count()
    }

    pub fn disks_with_slot(&self, slot: &str) -> usize {
        self.sim.disks().iter().filter(|d| d.slot == slot).count()
    }

    pub async fn metrics_text(&self) -> String {
        let addr = self.agent.as_ref().unwrap().metrics_addr.unwrap();
        http_get(addr, "/metrics").await
    }

    pub async fn shutdown(mut self) {
        if let Some(a) = self.agent.take() {
            a.stop().await.unwrap();
        }
        self.sim.clone().stop().await;
    }
}

pub fn create_req(id: &str, size: u64) -> CreateVolumeRequest {
    CreateVolumeRequest {
        volume_id: id.to_owned(),
        size_bytes: size,
        base_path: String::new(),
        nvme_port: 0,
        source: None,
        ..Default::default()
    }
}

pub fn delete_req(id: &str) -> DeleteVolumeRequest {
    DeleteVolumeRequest {
        volume_id: id.to_owned(),
        base_path: String::new(),
    }
}

/// Polls Probe until reachable (or `within` passes); returns how long it took.
pub async fn wait_reachable(
    client: &mut AgentClient<BusChannel>,
    within: Duration,
) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Ok(r) = client.probe(ProbeRequest {}).await
            && r.get_ref().reachable
        {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Like a CSI sidecar: retry CreateVolume on retryable codes until OK.
pub async fn create_until_ok(
    client: &mut AgentClient<BusChannel>,
    id: &str,
    size: u64,
    within: Duration,
) -> (
    Result<rds_proto::agent::Volume, tonic::Status>,
    Vec<tonic::Code>,
) {
    let t = Instant::now();
    let mut codes = Vec::new();
    loop {
        match client.create_volume(create_req(id, size)).await {
            Ok(v) => return (Ok(v.into_inner()), codes),
            Err(s) => {
                codes.push(s.code());
                let retryable = matches!(
                    s.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Internal
                );
                if !retryable || t.elapsed() > within {
                    return (Err(s), codes);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Minimal HTTP/1.1 GET (no client crate needed).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

impl Env {
    /// Runs one command on the sim over a separate SSH login (behind the
    /// agent's back), returning its output.
    pub async fn raw(&self, cmd: &str) -> String {
        use async_ssh2_tokio::client::{AuthMethod, Client, ServerCheckMethod};
        let pem = key(1)
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .unwrap();
        let host_key = self.sim.host_public_key().to_openssh().unwrap();
        let bare = Client::connect(
            ("127.0.0.1", self.sim.addr().port()),
            "admin",
            AuthMethod::with_key(&pem, None),
            ServerCheckMethod::with_public_key(host_key.split_whitespace().nth(1).unwrap()),
        )
        .await
        .unwrap();
        let r = bare.execute(cmd).await.unwrap();
        r.stdout
    }

    /// The value of a metric line `name ...` (first match), if present.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics_text().await;
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.trim().parse().ok())
    }
}

/// A request carrying a caller deadline (`grpc-timeout`), like a CSI sidecar.
pub fn with_timeout<T>(msg: T, t: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(t);
    r
}

/// Polls `f` until it is true or `within` passes (a positive barrier).
pub async fn eventually(within: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Every volume of the ListVolumes stream, with the size of each page.
pub async fn volume_pages(
    client: &mut AgentClient<BusChannel>,
) -> Result<(Vec<rds_proto::agent::Volume>, Vec<usize>), tonic::Status> {
    let mut stream = client
        .list_volumes(rds_proto::agent::ListVolumesRequest {})
        .await?
        .into_inner();
    let (mut all, mut sizes) = (Vec::new(), Vec::new());
    while let Some(page) = stream.message().await? {
        sizes.push(page.volumes.len());
        all.extend(page.volumes);
    }
    Ok((all, sizes))
}

/// Every volume of the ListVolumes stream.
pub async fn all_volumes(
    client: &mut AgentClient<BusChannel>,
) -> Result<Vec<rds_proto::agent::Volume>, tonic::Status> {
    volume_pages(client).await.map(|(all, _)| all)
}

/// Every snapshot of a ListSnapshots stream.
pub async fn snapshot_pages(
    mut stream: tonic::Streaming<rds_proto::agent::ListSnapshotsResponse>,
) -> Vec<rds_proto::agent::Snapshot> {
    let mut all = Vec::new();
    while let Some(page) = stream.message().await.unwrap() {
        all.extend(page.snapshots);
    }
    all
}
