//! integration-tests: the `Stack` harness — every service of rds-csi
//! in-process, talking real gRPC (127.0.0.1:0 / temp unix sockets) and real
//! SSH (rds-agent → rds-sim), laid out like `rdsctl up` (docs/local-mode.md §2):
//!
//! ```text
//! DIR/sim/            rds-sim state (local mode: metal-csi dir, copy-from data clone)
//! DIR/attachments/    attachment-service file store
//! DIR/events.jsonl    event-service sink
//! DIR/node/           csi-frontend node-role state (with `node_role`)
//! DIR/csi.sock        csi-frontend (controller role, or `all` with `node_role`)
//! ```
//!
//! The conformance suite in `tests/conformance.rs` drives csi-frontend over
//! its socket with a real CSI client. Later issues extend the harness (node
//! role, restarts). Spans of every service land in the one in-memory exporter
//! of `rds_bus::testing` (installed by [`Stack::start`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rds_agent::RunningAgent;
use rds_bus::{ClientOptions, Listener, Shutdown};
use rds_proto::agent::agent_client::AgentClient;
use rds_proto::attachment::attachments_client::AttachmentsClient;
use rds_proto::csi::v1::controller_client::ControllerClient;
use rds_proto::csi::v1::identity_client::IdentityClient;
use rds_proto::csi::v1::node_client::NodeClient;
use rds_sim::{Sim, SimConfig, SimHandle};
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use serde_json::Value;
use tokio::task::JoinHandle;

pub mod backing_fs;
pub mod deploy_checks;
pub mod pattern;
pub mod roundtrip;

pub use rds_bus::BusChannel;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The node id the stack's csi-frontend knows by default.
pub const NODE_ID: &str = "node-1";

/// Knobs of one stack.
pub struct StackOpts {
    /// Node ids csi-frontend and attachment-service know (local mode).
    pub known_nodes: Vec<String>,
    /// Extra csi-frontend flags (e.g. `--agent-timeout 1s`).
    pub frontend_args: Vec<String>,
    /// Extra rds-agent flags.
    pub agent_args: Vec<String>,
    /// Adjusts the simulator before it starts.
    pub sim: Box<dyn FnOnce(&mut SimConfig) + Send>,
    /// Leave event-service out (the event path is down).
    pub without_event_service: bool,
    /// Serve the node role too (`--role all`, loop devices over the sim's
    /// files, state in DIR/node) — needs root, like `rdsctl up`.
    pub node_role: bool,
}

impl Default for StackOpts {
    fn default() -> Self {
        StackOpts {
            known_nodes: vec![NODE_ID.to_owned()],
            frontend_args: Vec::new(),
            agent_args: Vec::new(),
            sim: Box::new(|_| {}),
            without_event_service: false,
            node_role: false,
        }
    }
}

/// A running stack. Call [`Stack::stop`] at the end (dropping it leaves the
/// tasks to die with the test's runtime).
pub struct Stack {
    /// DIR. Dropping it unmounts and detaches (loop) whatever is left under
    /// it, so a failing node test leaks no mounts.
    pub dir: rds_dataplane::testing::Scratch,
    pub sim: SimHandle,
    pub csi_endpoint: String,
    pub agent_endpoint: String,
    pub attachment_endpoint: String,
    pub event_endpoint: String,
    agent: Option<RunningAgent>,
    events: Option<event_service::Running>,
    attachment: Option<AttachmentTask>,
    csi: Option<FrontendTask>,
}

/// A fixed ed25519 key (the sim authorises it; the agent logs in with it).
fn client_key() -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]))
}

fn err(what: &str, e: impl std::fmt::Display) -> BoxError {
    format!("{what}: {e}").into()
}

fn channel(endpoint: &str) -> Result<BusChannel, BoxError> {
    rds_bus::connect(
        endpoint,
        ClientOptions {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(60),
        },
    )
    .map_err(|e| err("connect", e))
}

type AttachmentTask = (Shutdown, JoinHandle<Result<(), attachment_service::Error>>);
type FrontendTask = (
    Shutdown,
    JoinHandle<Result<(), csi_frontend::FrontendError>>,
);

/// event-service with the JSON-lines sink under `dir`; without it, an
/// endpoint nothing listens on (every post fails fast: connection refused).
async fn start_events(
    dir: &Path,
    without: bool,
) -> Result<(Option<event_service::Running>, String), BoxError> {
    if without {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        drop(l);
        return Ok((None, format!("http://{addr}")));
    }
    let listener = Listener::bind("127.0.0.1:0").await?;
    let cfg = event_service::Config::file_sink(dir.join("events.jsonl"));
    let settings = cfg.validate().map_err(|e| err("event-service config", e))?;
    let running = event_service::start(settings, listener, Shutdown::new())
        .await
        .map_err(|e| err("event-service", e))?;
    let ep = running.endpoint().to_owned();
    Ok((Some(running), ep))
}

/// attachment-service, local file store under `dir`. Returns its endpoint.
async fn start_attachment(
    dir: &Path,
    event_endpoint: &str,
    known_nodes: &[String],
) -> Result<(String, AttachmentTask), BoxError> {
    let mut att_cfg = attachment_service::Config::local(dir.join("attachments"));
    att_cfg.events_endpoint = Some(event_endpoint.to_owned());
    att_cfg.known_nodes = known_nodes.to_vec();
    let att_listener = Listener::bind("127.0.0.1:0").await?;
    let attachment_endpoint = att_listener.endpoint();
    let att_shutdown = Shutdown::new();
    let sd = att_shutdown.clone();
    let att_settings = att_cfg
        .validate()
        .map_err(|e| err("attachment-service config", e))?;
    let att_task = tokio::spawn(async move {
        attachment_service::start(att_settings, att_listener, sd)
            .await?
            .wait()
            .await
    });
    Ok((attachment_endpoint, (att_shutdown, att_task)))
}

/// rds-agent over real SSH to the sim, host key pinned by fingerprint.
async fn start_agent(
    dir: &Path,
    key: &PrivateKey,
    sim: &SimHandle,
    extra_args: Vec<String>,
) -> Result<RunningAgent, BoxError> {
    let key_path = dir.join("id_ed25519");
    std::fs::write(&key_path, key.to_openssh(LineEnding::LF)?.as_bytes())?;
    let mut spec = rds_agent::spec::AgentSpec::new(
        "127.0.0.1",
        sim.addr().port(),
        key_path.clone(),
        rds_agent::spec::HostKeyPin::Fingerprint(sim.host_key_fingerprint()),
    );
    spec.command_timeout = Some(Duration::from_secs(5));
    spec.connect_timeout = Some(Duration::from_secs(3));
    spec.reconnect_backoff = Some((Duration::from_millis(50), Duration::from_millis(500)));
    // csi-sanity style names (not only pvc-<uuid>) are created here.
    spec.managed_nqn_prefix = Some(rds_bus::MANAGED_NQN_PREFIX.into());
    spec.extra_args = extra_args;
    let settings = spec.settings().map_err(|e| err("rds-agent config", e))?;
    let agent_listener = Listener::bind(&settings.listen).await?;
    rds_agent::start(settings, agent_listener, Shutdown::new())
        .await
        .map_err(|e| err("rds-agent", e))
}

/// The services csi-frontend talks to.
struct FrontendEndpoints<'a> {
    agent: &'a str,
    attachment: &'a str,
    event: &'a str,
}

/// csi-frontend, controller role (and the loop node role with
/// `node_role`), on a unix socket in `dir`. Returns its endpoint.
async fn start_frontend(
    dir: &Path,
    sim: &SimHandle,
    endpoints: FrontendEndpoints<'_>,
    known_nodes: Vec<String>,
    node_role: bool,
    extra_args: Vec<String>,
) -> Result<(String, FrontendTask), BoxError> {
    let csi_endpoint = format!("unix://{}", path_str(&dir.join("csi.sock"))?);
    let mut fe = csi_frontend::spec::FrontendSpec::new(
        &csi_endpoint,
        endpoints.agent,
        endpoints.attachment,
        endpoints.event,
    );
    fe.rds_address = Some("127.0.0.1".into());
    fe.known_nodes = known_nodes;
    if node_role {
        fe = fe.with_loop_node(NODE_ID, sim.state_dir().join("files"), dir.join("node"));
    }
    fe.extra_args = extra_args;
    let cfg = fe.settings().map_err(|e| err("csi-frontend config", e))?;
    let csi_listener = Listener::bind(&cfg.endpoint).await?;
    let csi_shutdown = Shutdown::new();
    let sd = csi_shutdown.clone();
    let csi_task = tokio::spawn(async move {
        csi_frontend::start(cfg, csi_listener, sd)
            .await?
            .wait()
            .await
    });
    Ok((csi_endpoint, (csi_shutdown, csi_task)))
}

impl Stack {
    pub async fn start() -> Result<Stack, BoxError> {
        Stack::start_with(StackOpts::default()).await
    }

    pub async fn start_with(opts: StackOpts) -> Result<Stack, BoxError> {
        // Spans of every service go to the one test exporter.
        let _ = rds_bus::testing::telemetry();
        let dir = rds_dataplane::testing::Scratch::new();

        // rds-sim, local mode (docs/local-mode.md §7).
        let key = client_key();
        let mut sim_cfg =
            SimConfig::new(dir.path().join("sim"), vec![key.public_key().clone()]).local_mode();
        (opts.sim)(&mut sim_cfg);
        let sim = Sim::start(sim_cfg).await.map_err(|e| err("rds-sim", e))?;

        let (events, event_endpoint) = start_events(dir.path(), opts.without_event_service).await?;
        let (attachment_endpoint, attachment) =
            start_attachment(dir.path(), &event_endpoint, &opts.known_nodes).await?;
        let agent = start_agent(dir.path(), &key, &sim, opts.agent_args).await?;
        let agent_endpoint = agent.endpoint.clone();
        let endpoints = FrontendEndpoints {
            agent: &agent_endpoint,
            attachment: &attachment_endpoint,
            event: &event_endpoint,
        };
        let (csi_endpoint, csi) = start_frontend(
            dir.path(),
            &sim,
            endpoints,
            opts.known_nodes,
            opts.node_role,
            opts.frontend_args,
        )
        .await?;

        Ok(Stack {
            dir,
            sim,
            csi_endpoint,
            agent_endpoint,
            attachment_endpoint,
            event_endpoint,
            agent: Some(agent),
            events,
            attachment: Some(attachment),
            csi: Some(csi),
        })
    }

    /// A CSI Controller client over the socket.
    pub fn controller(&self) -> Result<ControllerClient<BusChannel>, BoxError> {
        Ok(ControllerClient::new(channel(&self.csi_endpoint)?))
    }

    /// A CSI Identity client over the socket.
    pub fn identity(&self) -> Result<IdentityClient<BusChannel>, BoxError> {
        Ok(IdentityClient::new(channel(&self.csi_endpoint)?))
    }

    /// A CSI Node client over the socket (node role only).
    pub fn node(&self) -> Result<NodeClient<BusChannel>, BoxError> {
        Ok(NodeClient::new(channel(&self.csi_endpoint)?))
    }

    /// rds-agent directly (to look behind csi-frontend).
    pub fn agent(&self) -> Result<AgentClient<BusChannel>, BoxError> {
        Ok(AgentClient::new(channel(&self.agent_endpoint)?))
    }

    /// attachment-service directly.
    pub fn attachments(&self) -> Result<AttachmentsClient<BusChannel>, BoxError> {
        Ok(AttachmentsClient::new(channel(&self.attachment_endpoint)?))
    }

    pub fn events_path(&self) -> PathBuf {
        self.dir.path().join("events.jsonl")
    }

    /// Every event in the sink, oldest first.
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.events_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits (up to `timeout`) for an event matching `pred`.
    pub async fn wait_for_event(
        &self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return Some(e);
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The sim's RouterOS commands (from its commands.log).
    pub fn sim_commands(&self) -> Vec<String> {
        std::fs::read_to_string(self.sim.commands_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(" cmd=").map(|(_, c)| c.to_owned()))
            .collect()
    }

    /// Stops everything, front to back.
    pub async fn stop(mut self) {
        if let Some((sd, task)) = self.csi.take() {
            sd.trigger();
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if let Some(agent) = self.agent.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), agent.stop()).await;
        }
        if let Some((sd, task)) = self.attachment.take() {
            sd.trigger();
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if let Some(ev) = self.events.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), ev.stop()).await;
        }
        self.sim.clone().stop().await;
    }
}

fn path_str(p: &Path) -> Result<String, BoxError> {
    p.to_str()
        .map(str::to_owned)
        .ok_or_else(|| err("path", "not UTF-8"))
}
