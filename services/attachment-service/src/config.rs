//! Flags and environment (clap derive), validated once into [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rds_bus::NodeId;
use serde::Serialize;

use crate::error::Error;

pub const DEFAULT_DRIVER_NAME: &str = "rds.csi.srvlab.io";
/// The bus ports: rds-agent 50051, attachment-service 50052, event-service 50053.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50052";
/// Loopback by default (docs/safety.md §5.4); deployments that scrape pass 0.0.0.0:9812.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9812";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No Kubernetes: a file store in --state-dir.
    Local,
    /// VolumeAttachments are the source of truth (kubeconfig or in-cluster).
    Kube,
}

#[derive(Clone, Debug, clap::Parser, Serialize)]
#[command(
    name = "attachment-service",
    version,
    about = "rds-csi attachment-service: who holds each volume"
)]
pub struct Config {
    /// Bus address: host:port or unix:///path.
    #[arg(long, env = "ATTACHMENT_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,

    #[arg(long, env = "ATTACHMENT_MODE", value_enum, default_value = "local")]
    pub mode: Mode,

    /// Local mode: directory of the file store (rdsctl passes DIR/attachments).
    #[arg(long, env = "ATTACHMENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Kubernetes mode: kubeconfig file; without it in-cluster config (or the
    /// usual kubeconfig discovery) is used.
    #[arg(long, env = "ATTACHMENT_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// event-service bus address; without it events are only logged.
    #[arg(long, env = "ATTACHMENT_EVENTS_ENDPOINT")]
    pub events_endpoint: Option<String>,

    /// Deadline of one event post (and its connect).
    #[arg(long, env = "ATTACHMENT_EVENTS_DEADLINE", default_value = "500ms", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub events_deadline: Duration,

    /// CSI driver name (VolumeAttachment spec.attacher, PV spec.csi.driver).
    #[arg(long, env = "DRIVER_NAME", default_value = DEFAULT_DRIVER_NAME)]
    pub driver_name: String,

    /// Local mode: node ids that exist (comma separated). Attachments to
    /// other nodes are cleared by the reconciler; none → never cleared.
    #[arg(long, env = "ATTACHMENT_KNOWN_NODES", value_delimiter = ',')]
    pub known_nodes: Vec<String>,

    /// How long a node or VolumeAttachment must be gone before its
    /// attachment is cleared.
    #[arg(long, env = "ATTACHMENT_GRACE_PERIOD", default_value = "30s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub grace_period: Duration,

    #[arg(long, env = "ATTACHMENT_RECONCILE_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub reconcile_interval: Duration,

    /// Live-migration window when the Attach request does not say.
    #[arg(long, env = "ATTACHMENT_MIGRATION_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub migration_timeout: Duration,

    /// Kubernetes mode: the coordination.k8s.io Lease of the reconciler.
    #[arg(
        long,
        env = "ATTACHMENT_LEASE_NAME",
        default_value = "rds-csi-attachment-service"
    )]
    pub lease_name: String,

    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// Holder identity; default: POD_NAME, else host name + pid.
    #[arg(long, env = "POD_NAME")]
    pub lease_identity: Option<String>,

    #[arg(long, env = "ATTACHMENT_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub lease_duration: Duration,

    /// Prometheus /metrics (and /healthz) address; empty disables.
    /// `--metrics-addr` is the old spelling, kept as an alias.
    #[arg(
        long = "metrics-address",
        alias = "metrics-addr",
        env = "ATTACHMENT_METRICS_ADDR",
        default_value = DEFAULT_METRICS_ADDR
    )]
    pub metrics_addr: String,

    /// Storage fencing (off by default; the RouterOS allow-list semantics
    /// are unverified): each volume's NVMe/TCP export admits only the host
    /// NQNs of the nodes holding it (a sentinel when none), set through
    /// rds-agent before Attach answers and removed before Detach releases.
    /// Needs --agent-endpoint and --cluster-id. Off with --agent-endpoint
    /// set: the leader opens the exports it had fenced, once.
    #[arg(long, env = "ATTACHMENT_STORAGE_FENCING", default_value_t = false, action = clap::ArgAction::Set)]
    pub storage_fencing: bool,

    /// rds-agent bus address (storage fencing).
    #[arg(long, env = "ATTACHMENT_AGENT_ENDPOINT")]
    pub agent_endpoint: Option<String>,

    /// Deadline of one rds-agent call (storage fencing).
    #[arg(long, env = "ATTACHMENT_AGENT_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub agent_deadline: Duration,

    /// The cluster id the nodes derive their NVMe host identity from (the
    /// same value as the csi-frontends' RDS_CSI_CLUSTER_ID).
    #[arg(long, env = "RDS_CSI_CLUSTER_ID")]
    pub cluster_id: Option<String>,

    /// Validate flags, print the effective config and exit.
    #[arg(long)]
    #[serde(skip)]
    pub check_config: bool,
}

/// Durations read the one grammar of every binary (docs/decisions.md §14).
pub use rds_bus::duration::parse as parse_duration;

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    if d.subsec_millis() == 0 {
        s.serialize_str(&format!("{}s", d.as_secs()))
    } else {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }
}

/// The validated configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    #[serde(flatten)]
    pub raw: Config,
    #[serde(skip)]
    pub known_nodes: Vec<NodeId>,
    /// Shown through `raw.lease_identity` (filled in by `validate`).
    #[serde(skip)]
    pub lease_identity: String,
    #[serde(skip)]
    pub metrics_addr: Option<SocketAddr>,
}

impl Config {
    /// The defaults of every flag, without reading the command line or the
    /// environment (for embedding and tests).
    pub fn defaults() -> Config {
        Config {
            listen: DEFAULT_LISTEN.to_owned(),
            mode: Mode::Local,
            state_dir: None,
            kubeconfig: None,
            events_endpoint: None,
            events_deadline: Duration::from_millis(500),
            driver_name: DEFAULT_DRIVER_NAME.to_owned(),
            known_nodes: Vec::new(),
            grace_period: Duration::from_secs(30),
            reconcile_interval: Duration::from_secs(300),
            migration_timeout: Duration::from_secs(300),
            lease_name: "rds-csi-attachment-service".to_owned(),
            lease_namespace: "default".to_owned(),
            lease_identity: None,
            lease_duration: Duration::from_secs(15),
            metrics_addr: String::new(),
            storage_fencing: false,
            agent_endpoint: None,
            agent_deadline: Duration::from_secs(10),
            cluster_id: None,
            check_config: false,
        }
    }

    /// Local mode with a file store in `state_dir` (no metrics server).
    pub fn local(state_dir: impl Into<PathBuf>) -> Config {
        Config {
            state_dir: Some(state_dir.into()),
            ..Config::defaults()
        }
    }

    /// Kubernetes mode using `kubeconfig` (no metrics server).
    pub fn kube(kubeconfig: impl Into<PathBuf>) -> Config {
        Config {
            mode: Mode::Kube,
            kubeconfig: Some(kubeconfig.into()),
            ..Config::defaults()
        }
    }

    pub fn validate(&self) -> Result<Settings, Error> {
        let bad = |m: String| Err(Error::Config(m));
        match self.mode {
            Mode::Local if self.state_dir.is_none() => {
                return bad("--state-dir is required in local mode".into());
            }
            Mode::Kube if !self.known_nodes.is_empty() => {
                return bad(
                    "--known-nodes is for local mode; Kubernetes mode watches Nodes".into(),
                );
            }
            _ => {}
        }
        if !is_dns_subdomain(&self.driver_name) {
            return bad(format!(
                "--driver-name {:?} is not a DNS subdomain",
                self.driver_name
            ));
        }
        let known_nodes = self
            .known_nodes
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| NodeId::parse(s.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Config(format!("--known-nodes: {e}")))?;
        if self.reconcile_interval < Duration::from_millis(100) {
            return bad("--reconcile-interval must be at least 100ms".into());
        }
        if self.migration_timeout.as_secs() < 1
            || self.migration_timeout.as_secs() > u64::from(u32::MAX)
        {
            return bad("--migration-timeout must be between 1s and u32::MAX seconds".into());
        }
        if self.events_deadline.is_zero() {
            return bad("--events-deadline must be positive".into());
        }
        if self.lease_duration < Duration::from_secs(1) {
            return bad("--lease-duration must be at least 1s".into());
        }
        if !is_dns_subdomain(&self.lease_name) || !is_dns_subdomain(&self.lease_namespace) {
            return bad("--lease-name and --lease-namespace must be DNS names".into());
        }
        if let Some(ep) = &self.events_endpoint {
            rds_bus::connect(ep, rds_bus::ClientOptions::default())
                .map_err(|e| Error::Config(format!("--events-endpoint: {e}")))?;
        }
        if let Some(ep) = &self.agent_endpoint {
            rds_bus::connect(ep, rds_bus::ClientOptions::default())
                .map_err(|e| Error::Config(format!("--agent-endpoint: {e}")))?;
        }
        if let Some(c) = &self.cluster_id {
            rds_bus::ClusterId::parse(c)
                .map_err(|e| Error::Config(format!("--cluster-id: {e}")))?;
        }
        if self.storage_fencing && (self.agent_endpoint.is_none() || self.cluster_id.is_none()) {
            return bad("--storage-fencing needs --agent-endpoint and --cluster-id".into());
        }
        if self.agent_deadline.is_zero() {
            return bad("--agent-deadline must be positive".into());
        }
        let metrics_addr = match self.metrics_addr.trim() {
            "" => None,
            a => Some(
                a.parse::<SocketAddr>()
                    .map_err(|e| Error::Config(format!("--metrics-address {a:?}: {e}")))?,
            ),
        };
        let lease_identity = self
            .lease_identity
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(default_identity);
        let mut raw = self.clone();
        raw.lease_identity = Some(lease_identity.clone());
        Ok(Settings {
            raw,
            known_nodes,
            lease_identity,
            metrics_addr,
        })
    }
}

impl Settings {
    pub fn migration_timeout_secs(&self) -> u32 {
        u32::try_from(self.raw.migration_timeout.as_secs()).unwrap_or(u32::MAX)
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "attachment-service".to_owned());
    format!("{host}-{}", std::process::id())
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_match_the_flag_defaults() {
        let parsed = Config::try_parse_from(["x"]).unwrap();
        let mut d = Config::defaults();
        d.metrics_addr = DEFAULT_METRICS_ADDR.to_owned();
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            serde_json::to_value(&d).unwrap()
        );
    }

    /// `--metrics-address` is the one name; `--metrics-addr` stays an alias
    /// (docs/decisions.md §14).
    #[test]
    fn metrics_address_and_its_old_alias_set_the_same_value() {
        for flag in ["--metrics-address", "--metrics-addr"] {
            let c = Config::try_parse_from(["x", flag, "127.0.0.1:9999"]).unwrap();
            assert_eq!(c.metrics_addr, "127.0.0.1:9999", "{flag}");
        }
        let both = ["x", "--metrics-address", "a:1", "--metrics-addr", "b:2"];
        assert!(Config::try_parse_from(both).is_err(), "one value, one flag");
    }

    #[test]
    fn durations_parse_in_the_usual_spellings() {
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn local_mode_needs_a_state_dir_and_nodes_are_validated() {
        let c = Config::try_parse_from(["x"]).unwrap();
        assert!(c.validate().is_err());
        let c =
            Config::try_parse_from(["x", "--state-dir", "/tmp/x", "--known-nodes", "a,b"]).unwrap();
        assert_eq!(c.validate().unwrap().known_nodes.len(), 2);
        let c = Config::try_parse_from(["x", "--state-dir", "/tmp/x", "--known-nodes", "a,b c"])
            .unwrap();
        assert!(c.validate().is_err());
        let c =
            Config::try_parse_from(["x", "--mode", "kube", "--driver-name", "Bad_Name"]).unwrap();
        assert!(c.validate().is_err());
    }
}
