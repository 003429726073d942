//! What each child process is started with: the one place that knows every
//! service's flags in local mode. Bus addresses are unix sockets under
//! DIR/run (no ports to collide, private to the user); rds-sim needs TCP
//! (SSH, control), on 127.0.0.1 ports picked free at `up`.

use std::net::SocketAddr;

use crate::stack::layout::{Endpoints, Layout};

/// The five services, in start order (stop order is the reverse: the CSI
/// socket goes first, the sim last).
pub const SERVICES: [&str; 5] = [
    "rds-sim",
    "event-service",
    "attachment-service",
    "rds-agent",
    "csi-frontend",
];

#[derive(Clone, Debug)]
pub struct ServiceSpec {
    /// Also its OTEL_SERVICE_NAME and the `rdsctl serve <name>` argument.
    pub name: &'static str,
    pub args: Vec<String>,
}

/// Where everything listens, decided once per `up`.
pub fn endpoints(
    layout: &Layout,
    csi: String,
    node_id: String,
    sim_ssh: SocketAddr,
    sim_control: SocketAddr,
    host_key_fingerprint: String,
    metrics: std::collections::BTreeMap<String, String>,
) -> Endpoints {
    Endpoints {
        csi,
        node_id,
        agent: layout.socket("agent"),
        attachment: layout.socket("attachment"),
        events: layout.socket("events"),
        sim_ssh: sim_ssh.to_string(),
        sim_control: sim_control.to_string(),
        sim_host_key_fingerprint: host_key_fingerprint,
        metrics,
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

fn path(p: std::path::PathBuf) -> String {
    p.display().to_string()
}

/// rds-agent's typed settings (the builder the tests use in-process too).
fn agent_spec(
    layout: &Layout,
    ep: &Endpoints,
    sim_host: &str,
    sim_port: &str,
    metrics: &str,
) -> rds_agent::spec::AgentSpec {
    let mut spec = rds_agent::spec::AgentSpec::new(
        sim_host,
        sim_port.parse().unwrap_or(22),
        layout.client_key(),
        rds_agent::spec::HostKeyPin::Fingerprint(ep.sim_host_key_fingerprint.clone()),
    );
    spec.listen = ep.agent.clone();
    spec.metrics_address = Some(metrics.to_owned());
    // Local mode: any volume name a user types, not only pvc-<uuid>.
    spec.managed_nqn_prefix = Some(rds_bus::MANAGED_NQN_PREFIX.into());
    spec
}

/// csi-frontend's typed settings (the builder the tests use in-process too):
/// both roles on one socket, the node role on loop devices over the sim's
/// files (local mode).
fn frontend_spec(
    layout: &Layout,
    ep: &Endpoints,
    sim_host: &str,
    metrics: &str,
) -> csi_frontend::spec::FrontendSpec {
    let mut spec =
        csi_frontend::spec::FrontendSpec::new(&ep.csi, &ep.agent, &ep.attachment, &ep.events)
            .with_loop_node(&ep.node_id, layout.sim_files(), layout.node_dir());
    spec.rds_address = Some(sim_host.to_owned());
    spec.metrics_address = Some(metrics.to_owned()).filter(|m| !m.is_empty());
    spec
}

/// event-service's typed settings (the Config the tests start in process):
/// events to a JSON-lines file under DIR.
fn event_config(layout: &Layout, ep: &Endpoints, metrics: &str) -> event_service::Config {
    let mut cfg = event_service::Config::file_sink(layout.events_file());
    cfg.listen = ep.events.clone();
    cfg.instance = Some(ep.node_id.clone());
    cfg.metrics_addr = metrics.to_owned();
    cfg
}

/// attachment-service's typed settings (the Config the tests serve in
/// process): local mode, a file store under DIR, the one local node.
fn attachment_config(layout: &Layout, ep: &Endpoints, metrics: &str) -> attachment_service::Config {
    let mut cfg = attachment_service::Config::local(layout.attachments_dir());
    cfg.listen = ep.attachment.clone();
    cfg.events_endpoint = Some(ep.events.clone());
    cfg.known_nodes = vec![ep.node_id.clone()];
    cfg.metrics_addr = metrics.to_owned();
    cfg
}

pub fn services(layout: &Layout, ep: &Endpoints) -> Vec<ServiceSpec> {
    let (sim_host, sim_port) = ep.sim_ssh.rsplit_once(':').unwrap_or(("127.0.0.1", "22"));
    // Empty disables a service's metrics listener.
    let metrics = |name: &str| ep.metrics.get(name).cloned().unwrap_or_default();
    let (m_events, m_attach) = (metrics("event-service"), metrics("attachment-service"));
    let (m_agent, m_frontend) = (metrics("rds-agent"), metrics("csi-frontend"));
    vec![
        ServiceSpec {
            name: "rds-sim",
            args: [
                s(&["--listen", &ep.sim_ssh, "--state-dir"]),
                vec![path(layout.sim_dir())],
                s(&["--authorized-keys"]),
                vec![path(layout.client_pub())],
                s(&["--host-key"]),
                vec![path(layout.sim_host_key())],
                s(&["--local-mode", "--control", &ep.sim_control]),
            ]
            .concat(),
        },
        ServiceSpec {
            name: "event-service",
            args: event_config(layout, ep, &m_events).to_args(),
        },
        ServiceSpec {
            name: "attachment-service",
            args: attachment_config(layout, ep, &m_attach).to_args(),
        },
        ServiceSpec {
            name: "rds-agent",
            args: agent_spec(layout, ep, sim_host, sim_port, &m_agent).to_args(),
        },
        ServiceSpec {
            name: "csi-frontend",
            args: frontend_spec(layout, ep, sim_host, &m_frontend).to_args(),
        },
    ]
}
