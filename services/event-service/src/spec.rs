//! [`Config`] back to flags, so `rdsctl up` starts the child process from
//! the same typed settings the tests give [`crate::start`] in process. Every
//! flag is written (defaults included), so the child's parser sees exactly
//! this Config whatever its own defaults or environment say.

use clap::ValueEnum;

use crate::config::Config;

impl Config {
    /// The flags (without the program name) that give this Config.
    pub fn to_args(&self) -> Vec<String> {
        let pv_lookup = self
            .pv_lookup
            .to_possible_value()
            .map(|p| p.get_name().to_owned())
            .unwrap_or_default();
        let mut a: Vec<String> = vec![
            "--listen".into(),
            self.listen.clone(),
            "--driver-name".into(),
            self.driver_name.clone(),
            "--queue-size".into(),
            self.queue_size.to_string(),
            "--retry-budget-ms".into(),
            self.retry_budget_ms.to_string(),
            "--attempt-timeout-ms".into(),
            self.attempt_timeout_ms.to_string(),
            "--drain-timeout-ms".into(),
            self.drain_timeout_ms.to_string(),
            "--metrics-address".into(),
            self.metrics_addr.clone(),
            "--pv-lookup".into(),
            pv_lookup,
        ];
        let optional = [
            ("--sink", self.sink.clone()),
            (
                "--kubeconfig",
                self.kubeconfig.as_ref().map(|p| p.display().to_string()),
            ),
            ("--instance", self.instance.clone()),
            (
                "--retry-budget",
                self.retry_budget.map(rds_bus::duration::format),
            ),
            (
                "--attempt-timeout",
                self.attempt_timeout.map(rds_bus::duration::format),
            ),
            (
                "--drain-timeout",
                self.drain_timeout.map(rds_bus::duration::format),
            ),
        ];
        for (flag, value) in optional {
            if let Some(v) = value {
                a.extend([flag.to_owned(), v]);
            }
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_args_parses_back_into_the_same_config() {
        let mut cfg = Config::file_sink("/tmp/event-spec/events.jsonl");
        cfg.listen = "unix:///tmp/event-spec/events.sock".into();
        cfg.instance = Some("node-a".into());
        cfg.queue_size = 7;
        cfg.drain_timeout_ms = 1234;
        cfg.metrics_addr = "127.0.0.1:9898".into();

        let argv = std::iter::once("event-service".to_owned()).chain(cfg.to_args());
        let parsed = <Config as clap::Parser>::try_parse_from(argv).expect("flags parse");
        assert_eq!(
            serde_json::to_value(&parsed).expect("json"),
            serde_json::to_value(&cfg).expect("json")
        );
        parsed.validate().expect("valid");
    }
}
