//! Flags and environment of csi-frontend, validated once into [`Config`].
//!
//! `Args` is what clap parses; [`Args::validate`] turns it into a `Config`
//! whose every value has been checked (addresses, ports, paths, ids), so the
//! handlers never see an unchecked setting. `Config` is what `--check-config`
//! prints (it holds no secrets).

use std::time::Duration;

use clap::{Parser, ValueEnum};
use rds_bus::ids::MANAGED_NQN_PREFIX;
use rds_bus::{ClusterId, HostIdentity, NodeId};
use serde::Serialize;

use crate::validate;

/// The Go driver's default CSI socket (drop-in compatible).
pub const DEFAULT_ENDPOINT: &str = "unix:///var/lib/kubelet/plugins/rds.csi.srvlab.io/csi.sock";
pub const DEFAULT_DRIVER_NAME: &str = "rds.csi.srvlab.io";
/// The Go driver's default `volumePath` (docs/csi.md §2.4).
pub const DEFAULT_BASE_PATH: &str = "/storage-pool/metal-csi";
pub const DEFAULT_NVME_PORT: u16 = 4420;
/// Volumes per node when --max-volumes-per-node is not given (why 64: the flag's help).
pub const DEFAULT_MAX_VOLUMES_PER_NODE: i64 = 64;

/// Which CSI services this process serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Identity + Controller (the controller Deployment).
    Controller,
    /// Identity + Node (the node DaemonSet).
    Node,
    /// Both on one socket (local mode).
    All,
}

impl Role {
    pub fn controller(self) -> bool {
        matches!(self, Role::Controller | Role::All)
    }
    pub fn node(self) -> bool {
        matches!(self, Role::Node | Role::All)
    }
}

/// How the node role attaches volumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataPlaneKind {
    /// NVMe/TCP to the RDS.
    Nvme,
    /// Loop devices over rds-sim's files (local mode).
    Loop,
}

/// Where ControllerPublish learns whether a node exists (docs/csi.md §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRegistry {
    /// The node ids given with `--known-node` (plus `--node-id` in role `all`).
    Local,
    /// A CSINode object listing this driver exists for the node.
    Kube,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "csi-frontend",
    version,
    about = "rds-csi CSI frontend (Identity, Controller, Node)"
)]
pub struct Args {
    /// CSI endpoint: unix:///path or tcp://host:port.
    #[arg(long, env = "CSI_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,

    /// Driver name reported by GetPluginInfo.
    #[arg(long, env = "RDS_CSI_DRIVER_NAME", default_value = DEFAULT_DRIVER_NAME)]
    pub driver_name: String,

    /// Services to serve on the endpoint.
    #[arg(long, env = "RDS_CSI_ROLE", value_enum, default_value = "controller")]
    pub role: Role,

    /// rds-agent bus endpoint.
    #[arg(
        long,
        env = "RDS_AGENT_ENDPOINT",
        default_value = "http://127.0.0.1:50061"
    )]
    pub agent_endpoint: String,

    /// attachment-service bus endpoint.
    #[arg(
        long,
        env = "RDS_ATTACHMENT_ENDPOINT",
        default_value = "http://127.0.0.1:50052"
    )]
    pub attachment_endpoint: String,

    /// event-service bus endpoint.
    #[arg(
        long,
        env = "RDS_EVENT_ENDPOINT",
        default_value = "http://127.0.0.1:50053"
    )]
    pub event_endpoint: String,

    /// This node's id (node role; required for roles `node` and `all`).
    #[arg(long, env = "RDS_CSI_NODE_ID")]
    pub node_id: Option<String>,

    /// Node ids known to the controller in local mode (repeatable or comma separated).
    #[arg(
        long = "known-node",
        env = "RDS_CSI_KNOWN_NODES",
        value_delimiter = ','
    )]
    pub known_nodes: Vec<String>,

    /// Where ControllerPublish checks that a node exists.
    #[arg(
        long,
        env = "RDS_CSI_NODE_REGISTRY",
        value_enum,
        default_value = "local"
    )]
    pub node_registry: NodeRegistry,

    /// Kubernetes mode: kubeconfig for the CSINode lookup (default: in-cluster
    /// or the usual kubeconfig discovery).
    #[arg(long, env = "RDS_CSI_KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// Upper bound of each Kubernetes API call.
    #[arg(long, env = "RDS_CSI_KUBE_TIMEOUT", default_value = "5s")]
    pub kube_timeout: String,

    /// Default directory of backing files (StorageClass `volumePath` overrides).
    #[arg(long, env = "RDS_VOLUME_BASE_PATH", default_value = DEFAULT_BASE_PATH)]
    pub base_path: String,

    /// RDS management address written to volume_context `rdsAddress`.
    #[arg(long, env = "RDS_ADDRESS")]
    pub rds_address: Option<String>,

    /// NVMe/TCP address for volume_context `nvmeAddress` (default: the RDS address).
    #[arg(long, env = "RDS_NVME_ADDRESS")]
    pub nvme_address: Option<String>,

    /// NVMe/TCP port for volume_context `nvmePort`.
    #[arg(long, env = "RDS_NVME_PORT", default_value_t = DEFAULT_NVME_PORT)]
    pub nvme_port: u16,

    /// Deadline for connecting to a bus service (e.g. 3s, 500ms).
    #[arg(long, env = "RDS_BUS_CONNECT_TIMEOUT", default_value = "3s")]
    pub connect_timeout: String,

    /// Upper bound of each rds-agent call (the CSI call's own deadline shrinks it).
    #[arg(long, env = "RDS_AGENT_TIMEOUT", default_value = "60s")]
    pub agent_timeout: String,

    /// Upper bound of each attachment-service call.
    #[arg(long, env = "RDS_ATTACHMENT_TIMEOUT", default_value = "15s")]
    pub attachment_timeout: String,

    /// Upper bound of each event-service call (best effort, kept short).
    #[arg(long, env = "RDS_EVENT_TIMEOUT", default_value = "2s")]
    pub event_timeout: String,

    /// Upper bound of the rds-agent call behind CSI Probe.
    #[arg(long, env = "RDS_PROBE_TIMEOUT", default_value = "5s")]
    pub probe_timeout: String,

    /// Node role: how volumes are attached (nvme for the RDS, loop for rds-sim).
    #[arg(long, env = "RDS_CSI_DATA_PLANE", value_enum, default_value = "nvme")]
    pub data_plane: DataPlaneKind,

    /// Node role: state directory (staged volumes; local mode: DIR/node).
    #[arg(
        long,
        env = "RDS_CSI_NODE_STATE_DIR",
        default_value = "/var/lib/rds-csi/node"
    )]
    pub node_state_dir: std::path::PathBuf,

    /// Node role: only NVMe subsystems whose NQN starts with this are ever
    /// connected, disconnected, rescanned or swept (never a node's boot disk
    /// on the same RDS). Test suites whose volume names do not start with
    /// `pvc-` set their own.
    #[arg(long, env = "RDS_CSI_MANAGED_NQN_PREFIX", default_value = rds_dataplane::DEFAULT_MANAGED_NQN_PREFIX)]
    pub managed_nqn_prefix: String,

    /// Cluster id: with the node id, derives this node's NVMe host identity
    /// (set it when several clusters with the same node names share an RDS).
    #[arg(long, env = "RDS_CSI_CLUSTER_ID", default_value = "default")]
    pub cluster_id: String,

    /// Node role: explicit NVMe host NQN instead of the derived one (with --host-id).
    #[arg(long, env = "RDS_CSI_HOST_NQN")]
    pub host_nqn: Option<String>,

    /// Node role: explicit NVMe host id (a UUID) instead of the derived one (with --host-nqn).
    #[arg(long, env = "RDS_CSI_HOST_ID")]
    pub host_id: Option<String>,

    /// Node role, loop data plane: rds-sim's files root (DIR/sim/files).
    #[arg(long, env = "RDS_CSI_LOOP_FILES_ROOT")]
    pub loop_files_root: Option<std::path::PathBuf>,

    /// Volumes one node may hold: NodeGetInfo reports it (the scheduler
    /// counts it) and ControllerPublish refuses more (RESOURCE_EXHAUSTED);
    /// 0 = no limit. Give both roles the same value. Default 64: every
    /// volume is its own NVMe/TCP controller with a TCP connection per CPU
    /// (I/O queue) to the one RDS, all reconnecting at once after an RDS
    /// restart; 64 keeps that bounded yet exceeds what PVC-heavy nodes hold.
    #[arg(
        long,
        env = "RDS_CSI_MAX_VOLUMES_PER_NODE",
        default_value_t = DEFAULT_MAX_VOLUMES_PER_NODE
    )]
    pub max_volumes_per_node: i64,

    /// Prometheus `/metrics` (and `/healthz`) address (e.g. 127.0.0.1:9809);
    /// empty disables. `--metrics-addr` is kept as an alias.
    #[arg(
        long,
        alias = "metrics-addr",
        env = "RDS_CSI_METRICS_ADDRESS",
        default_value = ""
    )]
    pub metrics_address: String,

    /// Validate flags and environment, print the effective config, exit.
    #[arg(long)]
    pub check_config: bool,
}

/// The validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub endpoint: String,
    pub driver_name: String,
    pub vendor_version: String,
    pub role: Role,
    pub agent_endpoint: String,
    pub attachment_endpoint: String,
    pub event_endpoint: String,
    pub node_id: Option<String>,
    pub known_nodes: Vec<String>,
    pub node_registry: NodeRegistry,
    pub kubeconfig: Option<std::path::PathBuf>,
    #[serde(serialize_with = "ser_duration")]
    pub kube_timeout: Duration,
    pub base_path: String,
    /// First component of `base_path` (`/storage-pool`): every path must stay under it.
    pub pool_root: String,
    pub rds_address: String,
    pub nvme_address: String,
    pub nvme_port: u16,
    #[serde(serialize_with = "ser_duration")]
    pub connect_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub agent_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub attachment_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub event_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub probe_timeout: Duration,
    pub data_plane: DataPlaneKind,
    pub node_state_dir: std::path::PathBuf,
    pub loop_files_root: Option<std::path::PathBuf>,
    pub managed_nqn_prefix: String,
    pub cluster_id: String,
    /// This node's NVMe host identity (node role): derived, or the explicit one.
    pub host_nqn: Option<String>,
    pub host_id: Option<String>,
    pub max_volumes_per_node: i64,
    pub metrics_address: Option<std::net::SocketAddr>,
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}ms", d.as_millis()))
}

impl Args {
    /// Checks every value; the error names the flag and why.
    pub fn validate(&self) -> Result<Config, String> {
        self.check_endpoints()?;
        let (node_id, known_nodes) = self.node_ids()?;

        let pool_root =
            validate::pool_root_of(&self.base_path).map_err(|e| format!("--base-path: {e}"))?;
        validate::storage_path(&self.base_path, &pool_root)
            .map_err(|e| format!("--base-path: {e}"))?;

        let (rds_address, nvme_address) = self.rds_addresses()?;
        if self.nvme_port == 0 {
            return Err("--nvme-port: must be 1-65535".into());
        }
        let dur = |flag: &str, v: &str| validate::duration(v).map_err(|e| format!("{flag}: {e}"));
        if self.max_volumes_per_node < 0 {
            return Err("--max-volumes-per-node: must be 0 (no limit) or more".into());
        }
        self.check_node_paths()?;
        let (managed_nqn_prefix, cluster_id, host) = self.nvme_identity(node_id.as_deref())?;
        if self.kubeconfig.is_some() && self.node_registry != NodeRegistry::Kube {
            return Err("--kubeconfig is only used with --node-registry kube".into());
        }
        Ok(Config {
            endpoint: self.endpoint.clone(),
            driver_name: self.driver_name.clone(),
            vendor_version: env!("CARGO_PKG_VERSION").to_owned(),
            role: self.role,
            agent_endpoint: self.agent_endpoint.clone(),
            attachment_endpoint: self.attachment_endpoint.clone(),
            event_endpoint: self.event_endpoint.clone(),
            node_id,
            known_nodes,
            node_registry: self.node_registry,
            kubeconfig: self.kubeconfig.clone(),
            kube_timeout: dur("--kube-timeout", &self.kube_timeout)?,
            base_path: self.base_path.clone(),
            pool_root,
            rds_address,
            nvme_address,
            nvme_port: self.nvme_port,
            connect_timeout: dur("--connect-timeout", &self.connect_timeout)?,
            agent_timeout: dur("--agent-timeout", &self.agent_timeout)?,
            attachment_timeout: dur("--attachment-timeout", &self.attachment_timeout)?,
            event_timeout: dur("--event-timeout", &self.event_timeout)?,
            probe_timeout: dur("--probe-timeout", &self.probe_timeout)?,
            data_plane: self.data_plane,
            node_state_dir: self.node_state_dir.clone(),
            loop_files_root: self.loop_files_root.clone(),
            managed_nqn_prefix,
            cluster_id,
            host_nqn: host.as_ref().map(|h| h.host_nqn().to_owned()),
            host_id: host.as_ref().map(HostIdentity::host_id),
            max_volumes_per_node: self.max_volumes_per_node,
            metrics_address: match self.metrics_address.as_str() {
                "" => None,
                a => Some(a.parse().map_err(|_| {
                    format!("--metrics-address: {a:?} is not host:port (empty disables)")
                })?),
            },
        })
    }
}

impl Args {
    /// The own gRPC endpoint, the driver name and the backend endpoints.
    fn check_endpoints(&self) -> Result<(), String> {
        validate::endpoint(&self.endpoint).map_err(|e| format!("--endpoint: {e}"))?;
        validate::driver_name(&self.driver_name).map_err(|e| format!("--driver-name: {e}"))?;
        for (flag, ep) in [
            ("--agent-endpoint", &self.agent_endpoint),
            ("--attachment-endpoint", &self.attachment_endpoint),
            ("--event-endpoint", &self.event_endpoint),
        ] {
            validate::endpoint(ep).map_err(|e| format!("{flag}: {e}"))?;
        }
        Ok(())
    }

    /// `--node-id` (required for the node role) and the sorted, deduplicated
    /// `--known-node` list.
    fn node_ids(&self) -> Result<(Option<String>, Vec<String>), String> {
        let node_id = match &self.node_id {
            Some(n) => Some(
                NodeId::parse(n)
                    .map_err(|e| format!("--node-id: {e}"))?
                    .to_string(),
            ),
            None => None,
        };
        if self.role.node() && node_id.is_none() {
            return Err("--node-id is required for role node/all".into());
        }
        let mut known_nodes = Vec::new();
        for n in self.known_nodes.iter().filter(|n| !n.is_empty()) {
            let id = NodeId::parse(n).map_err(|e| format!("--known-node: {e}"))?;
            known_nodes.push(id.to_string());
        }
        // In local mode the node role of this very process is a known node.
        if self.role == Role::All
            && let Some(n) = &node_id
            && !known_nodes.contains(n)
        {
            known_nodes.push(n.clone());
        }
        known_nodes.sort();
        known_nodes.dedup();
        Ok((node_id, known_nodes))
    }

    /// `--rds-address` (required for the controller role) and
    /// `--nvme-address` (defaults to the RDS address).
    fn rds_addresses(&self) -> Result<(String, String), String> {
        let rds_address = match &self.rds_address {
            Some(a) => {
                validate::address(a).map_err(|e| format!("--rds-address: {e}"))?;
                a.clone()
            }
            None if self.role.controller() => {
                return Err(
                    "--rds-address is required for the controller role (it goes into volume_context)"
                        .into(),
                );
            }
            None => String::new(),
        };
        let nvme_address = match &self.nvme_address {
            Some(a) => {
                validate::address(a).map_err(|e| format!("--nvme-address: {e}"))?;
                a.clone()
            }
            None => rds_address.clone(),
        };
        Ok((rds_address, nvme_address))
    }

    /// The node role's local paths: the state directory, and the loop files
    /// root with the loop data plane.
    fn check_node_paths(&self) -> Result<(), String> {
        if !self.role.node() {
            return Ok(());
        }
        if !self.node_state_dir.is_absolute() {
            return Err("--node-state-dir: must be an absolute path".into());
        }
        if self.data_plane == DataPlaneKind::Loop {
            match &self.loop_files_root {
                Some(p) if p.is_absolute() => {}
                Some(_) => return Err("--loop-files-root: must be an absolute path".into()),
                None => {
                    return Err("--loop-files-root is required with --data-plane loop".into());
                }
            }
        }
        Ok(())
    }

    /// `--managed-nqn-prefix`, `--cluster-id` and the node's host identity
    /// (derived from the cluster id and the node id unless both
    /// `--host-nqn` and `--host-id` are given).
    fn nvme_identity(
        &self,
        node_id: Option<&str>,
    ) -> Result<(String, String, Option<HostIdentity>), String> {
        let p = &self.managed_nqn_prefix;
        let prefix_ok = p.starts_with(MANAGED_NQN_PREFIX)
            && p.len() <= 200
            && p.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | ':' | '-' | '_')
            });
        if !prefix_ok {
            return Err(format!(
                "--managed-nqn-prefix: {:?} must start with {MANAGED_NQN_PREFIX} and use only [a-z0-9.:_-]",
                validate::truncate(p)
            ));
        }
        let cluster =
            ClusterId::parse(&self.cluster_id).map_err(|e| format!("--cluster-id: {e}"))?;
        let host = match (&self.host_nqn, &self.host_id, node_id) {
            (Some(n), Some(i), _) => Some(
                HostIdentity::explicit(n, i).map_err(|e| format!("--host-nqn/--host-id: {e}"))?,
            ),
            (None, None, Some(node)) => {
                let node = NodeId::parse(node).map_err(|e| format!("--node-id: {e}"))?;
                Some(HostIdentity::derive(&cluster, &node))
            }
            (None, None, None) => None,
            _ => return Err("--host-nqn and --host-id go together".into()),
        };
        Ok((p.clone(), cluster.to_string(), host))
    }
}

impl Config {
    /// A controller-role config for tests and embedding: every other value
    /// takes its default.
    pub fn for_tests(
        agent_endpoint: &str,
        attachment_endpoint: &str,
        event_endpoint: &str,
        known_nodes: &[&str],
    ) -> Result<Config, String> {
        let mut args = Args::parse_from(["csi-frontend", "--rds-address", "127.0.0.1"]);
        args.endpoint = "tcp://127.0.0.1:0".into();
        args.agent_endpoint = agent_endpoint.into();
        args.attachment_endpoint = attachment_endpoint.into();
        args.event_endpoint = event_endpoint.into();
        args.known_nodes = known_nodes.iter().map(|s| s.to_string()).collect();
        args.validate()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["csi-frontend"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).unwrap()
    }

    #[test]
    fn defaults_match_the_go_driver() {
        let cfg = args(&["--rds-address", "10.0.0.1"]).validate().unwrap();
        assert_eq!(cfg.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(cfg.driver_name, "rds.csi.srvlab.io");
        assert_eq!(cfg.base_path, "/storage-pool/metal-csi");
        assert_eq!(cfg.pool_root, "/storage-pool");
        assert_eq!(cfg.nvme_port, 4420);
        assert_eq!(
            cfg.nvme_address, "10.0.0.1",
            "nvme address falls back to the RDS address"
        );
        assert_eq!(cfg.role, Role::Controller);
    }

    #[test]
    fn controller_needs_an_rds_address_and_node_needs_an_id() {
        let e = args(&[]).validate().unwrap_err();
        assert!(e.contains("--rds-address"), "{e}");
        let e = args(&["--role", "node"]).validate().unwrap_err();
        assert!(e.contains("--node-id"), "{e}");
        assert!(
            args(&["--role", "node", "--node-id", "n1"])
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn role_all_knows_its_own_node() {
        let cfg = args(&[
            "--role",
            "all",
            "--node-id",
            "n1",
            "--rds-address",
            "h",
            "--known-node",
            "n2,n3",
        ])
        .validate()
        .unwrap();
        assert_eq!(cfg.known_nodes, vec!["n1", "n2", "n3"]);
    }

    #[test]
    fn bad_values_name_their_flag() {
        for (extra, flag) in [
            (vec!["--endpoint", "nonsense"], "--endpoint"),
            (vec!["--driver-name=-bad-"], "--driver-name"),
            (vec!["--base-path", "relative/x"], "--base-path"),
            (vec!["--base-path", "/storage-pool/a b"], "--base-path"),
            (vec!["--base-path", "/storage-pool/../etc"], "--base-path"),
            (vec!["--rds-address", "bad host!"], "--rds-address"),
            (vec!["--nvme-address", "x;y"], "--nvme-address"),
            (vec!["--agent-timeout", "soon"], "--agent-timeout"),
            (vec!["--known-node", "a/b"], "--known-node"),
            (vec!["--nvme-port", "0"], "--nvme-port"),
        ] {
            let mut all = extra.clone();
            if !extra.contains(&"--rds-address") {
                all.extend(["--rds-address", "10.0.0.1"]);
            }
            let e = args(&all).validate().unwrap_err();
            assert!(e.contains(flag), "{flag}: {e}");
        }
    }

    #[test]
    fn each_node_gets_its_own_nvme_host_identity() {
        let node = |n: &str, extra: &[&str]| {
            let mut a = vec!["--role", "node", "--node-id", n];
            a.extend_from_slice(extra);
            args(&a).validate().unwrap()
        };
        let (a, b) = (node("worker-a", &[]), node("worker-b", &[]));
        assert_eq!(a.managed_nqn_prefix, "nqn.2000-02.com.mikrotik:pvc-");
        assert_ne!(a.host_nqn, b.host_nqn);
        assert_ne!(a.host_id, b.host_id);
        assert_eq!(a.host_nqn, node("worker-a", &[]).host_nqn, "deterministic");
        let other = node("worker-a", &["--cluster-id", "eu-2"]);
        assert_ne!(a.host_nqn, other.host_nqn);
        let explicit = node(
            "worker-a",
            &[
                "--host-nqn",
                "nqn.2014-08.org.nvmexpress:uuid:6f1c0d6e-1111-4222-8333-944455556666",
                "--host-id",
                "6f1c0d6e-1111-4222-8333-944455556666",
            ],
        );
        assert_eq!(
            explicit.host_id.as_deref(),
            Some("6f1c0d6e-1111-4222-8333-944455556666")
        );
        for (extra, flag) in [
            (vec!["--host-nqn", "nqn.2014-08.org.x:y"], "--host-nqn"),
            (
                vec!["--managed-nqn-prefix", "nqn.2014-08.org.x:"],
                "--managed-nqn-prefix",
            ),
            (vec!["--cluster-id", "a b"], "--cluster-id"),
        ] {
            let mut a = vec!["--role", "node", "--node-id", "n1"];
            a.extend(extra);
            let e = args(&a).validate().unwrap_err();
            assert!(e.contains(flag), "{flag}: {e}");
        }
    }

    #[test]
    fn durations_parse() {
        let cfg = args(&[
            "--rds-address",
            "h",
            "--agent-timeout",
            "1500ms",
            "--probe-timeout",
            "2",
        ])
        .validate()
        .unwrap();
        assert_eq!(cfg.agent_timeout, Duration::from_millis(1500));
        assert_eq!(cfg.probe_timeout, Duration::from_secs(2));
    }
}
