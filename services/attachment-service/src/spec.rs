//! [`Config`] back to flags, so `rdsctl up` starts the child process from
//! the same typed settings the tests give [`crate::start`] in process. Every
//! flag is written (defaults included), so the child's parser sees exactly
//! this Config whatever its own defaults or environment say.

use std::time::Duration;

use clap::ValueEnum;

use crate::config::Config;

fn duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

impl Config {
    /// The flags (without the program name) that give this Config.
    pub fn to_args(&self) -> Vec<String> {
        let mode = self
            .mode
            .to_possible_value()
            .map(|p| p.get_name().to_owned())
            .unwrap_or_default();
        let mut a: Vec<String> = vec![
            "--listen".into(),
            self.listen.clone(),
            "--mode".into(),
            mode,
            "--events-deadline".into(),
            duration(self.events_deadline),
            "--driver-name".into(),
            self.driver_name.clone(),
            "--grace-period".into(),
            duration(self.grace_period),
            "--reconcile-interval".into(),
            duration(self.reconcile_interval),
            "--migration-timeout".into(),
            duration(self.migration_timeout),
            "--lease-name".into(),
            self.lease_name.clone(),
            "--lease-namespace".into(),
            self.lease_namespace.clone(),
            "--lease-duration".into(),
            duration(self.lease_duration),
            "--metrics-address".into(),
            self.metrics_addr.clone(),
            "--storage-fencing".into(),
            self.storage_fencing.to_string(),
            "--agent-deadline".into(),
            duration(self.agent_deadline),
        ];
        let optional = [
            (
                "--state-dir",
                self.state_dir.as_ref().map(|p| p.display().to_string()),
            ),
            (
                "--kubeconfig",
                self.kubeconfig.as_ref().map(|p| p.display().to_string()),
            ),
            ("--events-endpoint", self.events_endpoint.clone()),
            ("--lease-identity", self.lease_identity.clone()),
            ("--agent-endpoint", self.agent_endpoint.clone()),
            ("--cluster-id", self.cluster_id.clone()),
        ];
        for (flag, value) in optional {
            if let Some(v) = value {
                a.extend([flag.to_owned(), v]);
            }
        }
        if !self.known_nodes.is_empty() {
            a.extend(["--known-nodes".into(), self.known_nodes.join(",")]);
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // validate() builds the bus clients, which needs a runtime.
    #[tokio::test]
    async fn to_args_parses_back_into_the_same_config() {
        let mut cfg = Config::local("/tmp/attachment-spec/state");
        cfg.listen = "unix:///tmp/attachment-spec/attachment.sock".into();
        cfg.events_endpoint = Some("unix:///tmp/attachment-spec/events.sock".into());
        cfg.known_nodes = vec!["node-a".into(), "node-b".into()];
        cfg.events_deadline = Duration::from_millis(750);
        cfg.storage_fencing = true;
        cfg.agent_endpoint = Some("unix:///tmp/attachment-spec/agent.sock".into());
        cfg.cluster_id = Some("spec-cluster".into());
        cfg.metrics_addr = "127.0.0.1:9899".into();

        let argv = std::iter::once("attachment-service".to_owned()).chain(cfg.to_args());
        let parsed = <Config as clap::Parser>::try_parse_from(argv).expect("flags parse");
        assert_eq!(
            serde_json::to_value(&parsed).expect("json"),
            serde_json::to_value(&cfg).expect("json")
        );
        let settings = parsed.validate().expect("valid");
        assert_eq!(settings.known_nodes.len(), 2);
    }
}
