//! Typed csi-frontend settings for everything that starts a frontend: tests
//! (in process) and `rdsctl up` (a child process). One builder, two outputs —
//! [`FrontendSpec::settings`] and [`FrontendSpec::to_args`] — and both go
//! through the binary's own flag parser and validation, so a test cannot
//! start a frontend the binary would refuse.

use std::path::PathBuf;

use clap::ValueEnum;

use crate::config::{Args, Config, DataPlaneKind, Role};

/// csi-frontend's settings as typed values (flags not set here keep their
/// defaults).
#[derive(Debug, Clone)]
pub struct FrontendSpec {
    /// CSI endpoint (`unix:///path` or `tcp://host:port`).
    pub endpoint: String,
    pub role: Role,
    pub node_id: Option<String>,
    /// RDS address for volume_context (required for the controller role).
    pub rds_address: Option<String>,
    pub agent_endpoint: String,
    pub attachment_endpoint: String,
    pub event_endpoint: String,
    /// Node ids the local node registry knows.
    pub known_nodes: Vec<String>,
    pub data_plane: Option<DataPlaneKind>,
    pub loop_files_root: Option<PathBuf>,
    pub node_state_dir: Option<PathBuf>,
    pub managed_nqn_prefix: Option<String>,
    /// `None` = no metrics endpoint.
    pub metrics_address: Option<String>,
    /// Flags this struct does not model yet (kept last, so they win).
    pub extra_args: Vec<String>,
}

fn value_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

impl FrontendSpec {
    /// A controller-role frontend on `endpoint` talking to the three bus
    /// services, without metrics.
    pub fn new(
        endpoint: &str,
        agent_endpoint: &str,
        attachment_endpoint: &str,
        event_endpoint: &str,
    ) -> FrontendSpec {
        FrontendSpec {
            endpoint: endpoint.to_owned(),
            role: Role::Controller,
            node_id: None,
            rds_address: None,
            agent_endpoint: agent_endpoint.to_owned(),
            attachment_endpoint: attachment_endpoint.to_owned(),
            event_endpoint: event_endpoint.to_owned(),
            known_nodes: Vec::new(),
            data_plane: None,
            loop_files_root: None,
            node_state_dir: None,
            managed_nqn_prefix: None,
            metrics_address: None,
            extra_args: Vec::new(),
        }
    }

    /// Serve the node role too (role `all`) as `node_id`, attaching volumes
    /// as loop devices over `files_root` (rds-sim's files; local mode).
    pub fn with_loop_node(
        mut self,
        node_id: &str,
        files_root: PathBuf,
        state_dir: PathBuf,
    ) -> Self {
        self.role = Role::All;
        self.node_id = Some(node_id.to_owned());
        self.data_plane = Some(DataPlaneKind::Loop);
        self.loop_files_root = Some(files_root);
        self.node_state_dir = Some(state_dir);
        self
    }

    /// The flags (without the program name) that give these settings.
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--endpoint".into(),
            self.endpoint.clone(),
            "--role".into(),
            value_name(&self.role),
            "--agent-endpoint".into(),
            self.agent_endpoint.clone(),
            "--attachment-endpoint".into(),
            self.attachment_endpoint.clone(),
            "--event-endpoint".into(),
            self.event_endpoint.clone(),
            "--metrics-address".into(),
            self.metrics_address.clone().unwrap_or_default(),
        ];
        if let Some(n) = &self.node_id {
            a.extend(["--node-id".into(), n.clone()]);
        }
        if let Some(r) = &self.rds_address {
            a.extend(["--rds-address".into(), r.clone()]);
        }
        for n in &self.known_nodes {
            a.extend(["--known-node".into(), n.clone()]);
        }
        if let Some(d) = &self.data_plane {
            a.extend(["--data-plane".into(), value_name(d)]);
        }
        if let Some(p) = &self.loop_files_root {
            a.extend(["--loop-files-root".into(), p.display().to_string()]);
        }
        if let Some(p) = &self.node_state_dir {
            a.extend(["--node-state-dir".into(), p.display().to_string()]);
        }
        if let Some(p) = &self.managed_nqn_prefix {
            a.extend(["--managed-nqn-prefix".into(), p.clone()]);
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }

    /// Validated settings for an in-process frontend ([`crate::serve`]),
    /// parsed from [`FrontendSpec::to_args`] exactly as the binary parses
    /// its flags.
    pub fn settings(&self) -> Result<Config, String> {
        let argv = std::iter::once("csi-frontend".to_owned()).chain(self.to_args());
        let args = <Args as clap::Parser>::try_parse_from(argv).map_err(|e| e.to_string())?;
        args.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_settings_round_trip_through_the_flags() {
        let mut spec = FrontendSpec::new(
            "unix:///tmp/fe-spec/csi.sock",
            "unix:///tmp/fe-spec/agent.sock",
            "unix:///tmp/fe-spec/attachment.sock",
            "unix:///tmp/fe-spec/events.sock",
        )
        .with_loop_node(
            "node-a",
            PathBuf::from("/tmp/fe-spec/files"),
            PathBuf::from("/tmp/fe-spec/node"),
        );
        spec.rds_address = Some("127.0.0.1".into());
        spec.known_nodes = vec!["node-b".into()];
        spec.managed_nqn_prefix = Some(format!(
            "{}spec-",
            rds_dataplane::DEFAULT_MANAGED_NQN_PREFIX
        ));
        spec.metrics_address = Some("127.0.0.1:9811".into());

        let cfg = spec.settings().expect("valid spec");
        assert_eq!(cfg.endpoint, spec.endpoint);
        assert_eq!(cfg.role, Role::All);
        assert_eq!(cfg.node_id.as_deref(), Some("node-a"));
        assert_eq!(cfg.rds_address, "127.0.0.1");
        assert_eq!(cfg.agent_endpoint, spec.agent_endpoint);
        assert_eq!(cfg.attachment_endpoint, spec.attachment_endpoint);
        assert_eq!(cfg.event_endpoint, spec.event_endpoint);
        assert!(cfg.known_nodes.iter().any(|n| n == "node-b"));

        assert_eq!(cfg.data_plane, DataPlaneKind::Loop);
        assert_eq!(cfg.loop_files_root, spec.loop_files_root);
        assert_eq!(Some(cfg.node_state_dir.clone()), spec.node_state_dir);
        assert_eq!(
            Some(cfg.managed_nqn_prefix.clone()),
            spec.managed_nqn_prefix
        );
        assert_eq!(
            cfg.metrics_address.map(|a| a.to_string()),
            spec.metrics_address
        );
    }

    #[test]
    fn a_controller_without_an_rds_address_is_refused_like_the_binary() {
        let mut spec = FrontendSpec::new(
            "unix:///tmp/x.sock",
            "unix:///tmp/a.sock",
            "unix:///tmp/b.sock",
            "unix:///tmp/c.sock",
        );
        let err = spec.settings().expect_err("no --rds-address");
        assert!(err.contains("--rds-address"), "{err}");
        // A value the binary's validation refuses is refused here too.
        spec.rds_address = Some("127.0.0.1".into());
        spec.agent_endpoint = "not-an-endpoint".into();
        let err = spec.settings().expect_err("bad agent endpoint");
        assert!(err.contains("--agent-endpoint"), "{err}");
    }
}
