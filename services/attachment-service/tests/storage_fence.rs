//! Storage fencing end to end: attachment-service (local mode) → real
//! rds-agent over SSH → rds-sim. The allow list on the simulated RDS follows
//! Attach/Detach, drift made behind the driver's back is repaired with an
//! event, turning the option off opens the lists it set, and an RDS outage
//! fails Attach/Detach with UNAVAILABLE while keeping the stricter state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use attachment_service::Config;
use attachment_service::storage_fence::NO_HOST_NQN;
use rds_bus::{ClientOptions, ClusterId, HostIdentity, NodeId};
use rds_proto::agent::agent_client::AgentClient;
use rds_proto::agent::{CreateVolumeRequest, ListAllowedHostsRequest};
use rds_proto::attachment::AccessMode;
use rds_sim::{Sim, SimConfig, SimHandle};
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use support::{Events, Proc, attach_req, detach_req, eventually};
use tonic::Code;

const CLUSTER: &str = "test-cluster";

fn nqn(node: &str) -> String {
    HostIdentity::derive(
        &ClusterId::parse(CLUSTER).unwrap(),
        &NodeId::parse(node).unwrap(),
    )
    .host_nqn()
    .to_owned()
}

struct Rds {
    sim: SimHandle,
    _agent: rds_agent::RunningAgent,
    endpoint: String,
    dir: tempfile::TempDir,
}

impl Rds {
    async fn start() -> Rds {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[9; 32]));
        let cfg =
            SimConfig::new(dir.path().join("sim"), vec![key.public_key().clone()]).local_mode();
        let sim = Sim::start(cfg).await.unwrap();
        let key_path = dir.path().join("id_ed25519");
        std::fs::write(
            &key_path,
            key.to_openssh(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        let mut spec = rds_agent::spec::AgentSpec::new(
            "127.0.0.1",
            sim.addr().port(),
            key_path,
            rds_agent::spec::HostKeyPin::Fingerprint(sim.host_key_fingerprint()),
        );
        spec.command_timeout = Some(Duration::from_secs(2));
        spec.connect_timeout = Some(Duration::from_secs(1));
        spec.reconnect_backoff = Some((Duration::from_millis(50), Duration::from_millis(300)));
        let settings = spec.settings().unwrap();
        let listener = rds_bus::Listener::bind(&settings.listen).await.unwrap();
        let agent = rds_agent::start(settings, listener, rds_bus::Shutdown::new())
            .await
            .unwrap();
        let endpoint = agent.endpoint.clone();
        Rds {
            sim,
            _agent: agent,
            endpoint,
            dir,
        }
    }

    fn client(&self) -> AgentClient<rds_bus::BusChannel> {
        AgentClient::new(rds_bus::connect(&self.endpoint, ClientOptions::default()).unwrap())
    }

    async fn create(&self, vol: &str) {
        self.client()
            .create_volume(CreateVolumeRequest {
                volume_id: vol.into(),
                size_bytes: 16 << 20,
                ..Default::default()
            })
            .await
            .unwrap();
    }

    /// The allow list of `vol` as rds-agent reads it from the sim.
    async fn hosts(&self, vol: &str) -> Vec<String> {
        let all = self
            .client()
            .list_allowed_hosts(ListAllowedHostsRequest {})
            .await
            .unwrap()
            .into_inner()
            .volumes;
        all.into_iter()
            .find(|a| a.volume_id == vol)
            .map(|a| a.host_nqns)
            .unwrap_or_else(|| panic!("{vol} not listed"))
    }

    /// The raw property line as the sim prints it (what an operator sees).
    /// Whitespace removed: the print wraps long values across lines.
    fn printed(&self, vol: &str) -> String {
        self.sim
            .console(&format!("/disk print detail where slot={vol}"))
            .split_whitespace()
            .collect()
    }

    async fn wait_hosts(&self, vol: &str, want: &[String]) {
        let ok = eventually(Duration::from_secs(10), || async {
            (self.hosts(vol).await == want).then_some(())
        })
        .await;
        assert!(
            ok.is_some(),
            "{vol}: want {want:?}, RDS has {:?}",
            self.hosts(vol).await
        );
    }
}

fn config(dir: &std::path::Path, rds: &Rds, events: &Events, fencing: bool) -> Config {
    let mut c = Config::local(dir.join("attachments"));
    c.events_endpoint = Some(events.endpoint());
    c.storage_fencing = fencing;
    c.agent_endpoint = Some(rds.endpoint.clone());
    c.cluster_id = Some(CLUSTER.into());
    c.agent_deadline = Duration::from_secs(4);
    c.reconcile_interval = Duration::from_millis(200);
    c
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_list_follows_attach_migration_and_detach() {
    let rds = Rds::start().await;
    rds.create("pvc-a").await;
    rds.create("pvc-idle").await;
    let events = Events::start(rds.dir.path()).await;
    let p = Proc::start(config(rds.dir.path(), &rds, &events, true));
    let mut c = p.client();
    // Before any publish the export admits any host; the leader closes it.
    rds.wait_hosts("pvc-idle", &[NO_HOST_NQN.to_owned()]).await;

    let mm = AccessMode::MultiNodeMultiWriter;
    c.attach(attach_req("pvc-a", "n1", mm, true)).await.unwrap();
    // OK means the RDS already reports it (no waiting).
    assert_eq!(rds.hosts("pvc-a").await, vec![nqn("n1")]);
    let printed = rds.printed("pvc-a");
    assert!(
        printed.contains(&format!(
            "nvme-tcp-server-allow-host-name=\"{}\"",
            nqn("n1")
        )),
        "{printed}"
    );
    // Migration window: both nodes.
    c.attach(attach_req("pvc-a", "n2", mm, true)).await.unwrap();
    assert_eq!(rds.hosts("pvc-a").await, sorted(vec![nqn("n1"), nqn("n2")]));
    c.detach(detach_req("pvc-a", "n1")).await.unwrap();
    assert_eq!(rds.hosts("pvc-a").await, vec![nqn("n2")]);
    c.detach(detach_req("pvc-a", "n2")).await.unwrap();
    assert_eq!(rds.hosts("pvc-a").await, vec![NO_HOST_NQN.to_owned()]);
    p.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_on_the_rds_is_repaired_with_an_event() {
    let rds = Rds::start().await;
    rds.create("pvc-d").await;
    let events = Events::start(rds.dir.path()).await;
    let p = Proc::start(config(rds.dir.path(), &rds, &events, true));
    let mut c = p.client();
    c.attach(attach_req(
        "pvc-d",
        "n1",
        AccessMode::SingleNodeWriter,
        false,
    ))
    .await
    .unwrap();
    assert_eq!(rds.hosts("pvc-d").await, vec![nqn("n1")]);
    // Behind the driver's back: someone opens the export to any host.
    let out = rds.sim.console(
        "/disk set [find slot=pvc-d] nvme-tcp-server-allow-host-name=\"nqn.2014-08.com.example:intruder\"",
    );
    assert!(out.trim().is_empty(), "console: {out}");
    let ev = events.wait("StorageFenceRepaired", "pvc-d", 1).await;
    assert!(
        ev[0]["message"]
            .as_str()
            .unwrap()
            .contains("nqn.2014-08.com.example:intruder"),
        "{ev:?}"
    );
    rds.wait_hosts("pvc-d", &[nqn("n1")]).await;
    p.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn turning_fencing_off_opens_the_lists_it_set_and_leaves_others() {
    let rds = Rds::start().await;
    rds.create("pvc-x").await;
    rds.create("pvc-y").await;
    rds.create("pvc-op").await;
    let events = Events::start(rds.dir.path()).await;
    let p = Proc::start(config(rds.dir.path(), &rds, &events, true));
    let mut c = p.client();
    c.attach(attach_req(
        "pvc-x",
        "n1",
        AccessMode::SingleNodeWriter,
        false,
    ))
    .await
    .unwrap();
    rds.wait_hosts("pvc-y", &[NO_HOST_NQN.to_owned()]).await;
    p.stop().await.unwrap();
    // An operator's own list on a driver volume.
    rds.sim.console(
        "/disk set [find slot=pvc-op] nvme-tcp-server-allow-host-name=\"nqn.2014-08.com.example:op\"",
    );

    let p = Proc::start(config(rds.dir.path(), &rds, &events, false));
    rds.wait_hosts("pvc-x", &[]).await;
    rds.wait_hosts("pvc-y", &[]).await;
    assert_eq!(
        rds.hosts("pvc-op").await,
        vec!["nqn.2014-08.com.example:op".to_owned()]
    );
    // Off: Attach no longer touches the RDS.
    let mut c = p.client();
    c.attach(attach_req(
        "pvc-y",
        "n2",
        AccessMode::SingleNodeWriter,
        false,
    ))
    .await
    .unwrap();
    assert!(rds.hosts("pvc-y").await.is_empty());
    p.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn rds_outage_fails_attach_and_detach_clearly_and_keeps_the_stricter_state() {
    let rds = Rds::start().await;
    rds.create("pvc-o").await;
    rds.create("pvc-p").await;
    let events = Events::start(rds.dir.path()).await;
    let p = Proc::start(config(rds.dir.path(), &rds, &events, true));
    let mut c = p.client();
    let sw = AccessMode::SingleNodeWriter;
    c.attach(attach_req("pvc-o", "n1", sw, false))
        .await
        .unwrap();

    rds.sim.reboot(Duration::from_secs(600)).await;
    let e = c
        .attach(attach_req("pvc-p", "n1", sw, false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("storage fencing"), "{}", e.message());
    assert!(e.message().contains("pvc-p"), "{}", e.message());
    let e = c.detach(detach_req("pvc-o", "n1")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("storage fencing"), "{}", e.message());
    // Stricter state: the detach did not release n1 ...
    let held = c
        .get(rds_proto::attachment::GetRequest {
            volume_id: "pvc-o".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.nodes[0].node_id, "n1");
    // ... so nobody else can take the volume meanwhile.
    let e = c
        .attach(attach_req("pvc-o", "n2", sw, false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    p.stop().await.unwrap();
}

/// Failed agent calls so far (any reason), from rds-agent's own counter.
fn agent_errors(rds: &Rds) -> u64 {
    rds._agent
        .metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("rds_csi_rds_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_clear_waits_for_the_rds_to_stop_admitting_the_gone_node() {
    let rds = Rds::start().await;
    rds.create("pvc-s").await;
    let events = Events::start(rds.dir.path()).await;
    let mut cfg = config(rds.dir.path(), &rds, &events, true);
    cfg.known_nodes = vec!["n1".into(), "n2".into()];
    let p = Proc::start(cfg.clone());
    p.client()
        .attach(attach_req(
            "pvc-s",
            "n2",
            AccessMode::SingleNodeWriter,
            false,
        ))
        .await
        .unwrap();
    assert_eq!(rds.hosts("pvc-s").await, vec![nqn("n2")]);
    p.stop().await.unwrap();

    // n2 is gone while the RDS is down: the clear is tried and must not release n2.
    rds.sim.reboot(Duration::from_secs(12)).await;
    cfg.known_nodes = vec!["n1".into()];
    cfg.grace_period = Duration::from_millis(100);
    let before = agent_errors(&rds);
    let p = Proc::start(cfg);
    let mut c = p.client();
    // Barrier: two failed agent calls = at least one whole reconciler pass (the clear's
    // SetAllowedHosts, then the repair's ListAllowedHosts) ran against the dead RDS.
    let tried = eventually(Duration::from_secs(8), || async {
        (agent_errors(&rds) >= before + 2).then_some(())
    })
    .await;
    assert!(tried.is_some(), "the reconciler never reached the agent");
    let held = c
        .get(rds_proto::attachment::GetRequest {
            volume_id: "pvc-s".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        held.nodes[0].node_id, "n2",
        "released before the RDS confirmed"
    );
    assert!(rds.sim.wait_up(Duration::from_secs(30)).await);
    // Back: cleared, and the RDS no longer admits n2.
    events.wait("StaleAttachmentCleared", "pvc-s", 1).await;
    assert_eq!(rds.hosts("pvc-s").await, vec![NO_HOST_NQN.to_owned()]);
    p.stop().await.unwrap();
}
