//! Flags and environment of event-service, and their validation into
//! [`Settings`] (what the service actually runs with).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// Default bus address (loopback; the controller pod's containers talk over
/// it). The bus ports: rds-agent 50051, attachment-service 50052,
/// event-service 50053.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50053";
/// Default Prometheus address. Loopback by default (docs/safety.md §5.4); deployments
/// that scrape it pass `--metrics-address 0.0.0.0:9813`. The Go driver's single
/// process used 9809; each of our containers needs its own port.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9813";
/// Go-driver compatible driver name (docs/csi.md §2.1).
pub const DEFAULT_DRIVER_NAME: &str = "rds.csi.srvlab.io";

/// Command line / environment of event-service.
#[derive(Debug, Clone, clap::Parser, Serialize)]
#[command(
    name = "event-service",
    about = "Posts volume events to Kubernetes (or a JSON-lines file in local mode)"
)]
pub struct Config {
    /// Bus address to serve on: host:port or unix:///path.
    #[arg(long, env = "EVENT_SERVICE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,

    /// Where events go: `file:PATH` (local mode, one JSON object per line) or
    /// `kube` (events.k8s.io Events). Default: `kube` when --kubeconfig is
    /// given or when running in a cluster (KUBERNETES_SERVICE_HOST set).
    #[arg(long, env = "EVENT_SERVICE_SINK")]
    pub sink: Option<String>,

    /// Kubeconfig file for the `kube` sink; without it the in-cluster
    /// service account (or the usual KUBECONFIG inference) is used.
    #[arg(long, env = "EVENT_SERVICE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// CSI driver name: the events' reporting controller, and the
    /// `spec.csi.driver` of the PVs this service resolves.
    #[arg(long, env = "DRIVER_NAME", default_value = DEFAULT_DRIVER_NAME)]
    pub driver_name: String,

    /// Reporting instance (pod or node name). Default: $POD_NAME, else
    /// $NODE_NAME, else the host name.
    #[arg(long, env = "EVENT_SERVICE_INSTANCE")]
    pub instance: Option<String>,

    /// Events waiting for the sink; when full the oldest is dropped (counted).
    #[arg(long, env = "EVENT_SERVICE_QUEUE_SIZE", default_value_t = 1024)]
    pub queue_size: usize,

    /// How long one event may be retried (API server down) before it is
    /// dropped with a log line and a metric (a duration: `30s`, `1m`, …;
    /// default 30s). Wins over `--retry-budget-ms`.
    #[arg(long, env = "EVENT_SERVICE_RETRY_BUDGET", value_parser = rds_bus::duration::parse, conflicts_with = "retry_budget_ms")]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_millis")]
    pub retry_budget: Option<Duration>,
    /// The old spelling of `--retry-budget`, in whole milliseconds.
    #[arg(long, env = "EVENT_SERVICE_RETRY_BUDGET_MS", default_value_t = 30_000)]
    pub retry_budget_ms: u64,

    /// Deadline of each Kubernetes call (and each file write); a duration,
    /// default 5s. Wins over `--attempt-timeout-ms`.
    #[arg(long, env = "EVENT_SERVICE_ATTEMPT_TIMEOUT", value_parser = rds_bus::duration::parse_positive, conflicts_with = "attempt_timeout_ms")]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_millis")]
    pub attempt_timeout: Option<Duration>,
    /// The old spelling of `--attempt-timeout`, in whole milliseconds.
    #[arg(
        long,
        env = "EVENT_SERVICE_ATTEMPT_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub attempt_timeout_ms: u64,

    /// On shutdown, how long queued events may still be delivered; a
    /// duration, default 5s. Wins over `--drain-timeout-ms`.
    #[arg(long, env = "EVENT_SERVICE_DRAIN_TIMEOUT", value_parser = rds_bus::duration::parse, conflicts_with = "drain_timeout_ms")]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_millis")]
    pub drain_timeout: Option<Duration>,
    /// The old spelling of `--drain-timeout`, in whole milliseconds.
    #[arg(long, env = "EVENT_SERVICE_DRAIN_TIMEOUT_MS", default_value_t = 5_000)]
    pub drain_timeout_ms: u64,

    /// Prometheus /metrics (and /healthz) address; empty disables.
    /// `--metrics-addr` is the old spelling, kept as an alias.
    #[arg(
        long = "metrics-address",
        alias = "metrics-addr",
        env = "EVENT_SERVICE_METRICS_ADDR",
        default_value = DEFAULT_METRICS_ADDR
    )]
    pub metrics_addr: String,

    /// How a volume's PV is found: `watch` keeps a cache of all PVs by a
    /// cluster-wide list + watch (controller; RBAC list/watch on PVs);
    /// `get` fetches one PV by name with the attempt deadline and keeps it
    /// briefly (node pods; RBAC get on PVs only).
    #[arg(long, env = "EVENT_SERVICE_PV_LOOKUP", value_enum, default_value_t = PvLookupMode::Watch)]
    pub pv_lookup: PvLookupMode,

    /// Validate flags and environment, print the effective config, exit.
    #[arg(long)]
    #[serde(skip)]
    pub check_config: bool,
}

impl Config {
    /// A local-mode config (file sink, no metrics server) with defaults, for
    /// tests and for embedding (`rdsctl`).
    pub fn file_sink(path: impl Into<PathBuf>) -> Config {
        Config {
            listen: DEFAULT_LISTEN.to_owned(),
            sink: Some(format!("file:{}", path.into().display())),
            kubeconfig: None,
            driver_name: DEFAULT_DRIVER_NAME.to_owned(),
            instance: Some("event-service".to_owned()),
            queue_size: 1024,
            retry_budget: None,
            retry_budget_ms: 30_000,
            attempt_timeout: None,
            attempt_timeout_ms: 5_000,
            drain_timeout: None,
            drain_timeout_ms: 5_000,
            metrics_addr: String::new(),
            pv_lookup: PvLookupMode::Watch,
            check_config: false,
        }
    }

    /// A Kubernetes-mode config using `kubeconfig`, for tests and embedding.
    pub fn kube_sink(kubeconfig: impl Into<PathBuf>) -> Config {
        Config {
            sink: Some("kube".to_owned()),
            kubeconfig: Some(kubeconfig.into()),
            ..Config::file_sink("")
        }
    }

    /// Validates everything that can be checked without serving.
    pub fn validate(&self) -> Result<Settings, String> {
        let sink = self.sink_spec()?;
        if let Some(p) = &self.kubeconfig
            && !p.is_file()
        {
            return Err(format!("--kubeconfig {}: no such file", p.display()));
        }
        check_qualified_name(&self.driver_name)
            .map_err(|why| format!("--driver-name {:?}: {why}", self.driver_name))?;
        let instance = self.reporting_instance()?;
        if self.queue_size == 0 {
            return Err("--queue-size must be at least 1".to_owned());
        }
        let attempt_timeout = self
            .attempt_timeout
            .unwrap_or(Duration::from_millis(self.attempt_timeout_ms));
        if attempt_timeout.is_zero() {
            return Err("--attempt-timeout-ms must be at least 1".to_owned());
        }
        if self.listen.trim().is_empty() {
            return Err("--listen must not be empty".to_owned());
        }
        let metrics_addr = self.metrics_socket()?;
        Ok(Settings {
            listen: self.listen.clone(),
            sink,
            driver_name: self.driver_name.clone(),
            instance,
            queue_size: self.queue_size,
            retry_budget: self
                .retry_budget
                .unwrap_or(Duration::from_millis(self.retry_budget_ms)),
            attempt_timeout,
            drain_timeout: self
                .drain_timeout
                .unwrap_or(Duration::from_millis(self.drain_timeout_ms)),
            metrics_addr,
            pv_lookup: self.pv_lookup,
        })
    }

    /// `--sink`, or Kubernetes when a kubeconfig is given or we run in a pod.
    fn sink_spec(&self) -> Result<SinkSpec, String> {
        match self.sink.as_deref().map(str::trim) {
            Some("kube") => Ok(SinkSpec::Kube {
                kubeconfig: self.kubeconfig.clone(),
            }),
            Some(s) if s.starts_with("file:") => {
                let path = &s["file:".len()..];
                if path.is_empty() {
                    return Err("--sink file:PATH needs a path".to_owned());
                }
                if self.kubeconfig.is_some() {
                    return Err("--kubeconfig is only used with --sink kube".to_owned());
                }
                Ok(SinkSpec::File(PathBuf::from(path)))
            }
            Some(other) => Err(format!("--sink {other:?}: expected `file:PATH` or `kube`")),
            None if self.kubeconfig.is_some()
                || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() =>
            {
                Ok(SinkSpec::Kube {
                    kubeconfig: self.kubeconfig.clone(),
                })
            }
            None => Err("no sink: pass --sink file:PATH (local mode) or --sink kube".to_owned()),
        }
    }

    /// `--instance` or the pod/node/host name, within events.k8s.io's limit.
    fn reporting_instance(&self) -> Result<String, String> {
        let instance = match &self.instance {
            Some(i) => i.clone(),
            None => {
                default_instance().ok_or("no --instance, $POD_NAME, $NODE_NAME or host name")?
            }
        };
        if instance.is_empty() || instance.len() > 128 {
            return Err(format!(
                "--instance {instance:?}: must be 1 to 128 bytes (events.k8s.io reportingInstance)"
            ));
        }
        Ok(instance)
    }

    /// `--metrics-address`; empty means no metrics server.
    fn metrics_socket(&self) -> Result<Option<std::net::SocketAddr>, String> {
        match self.metrics_addr.trim() {
            "" => Ok(None),
            a => a
                .parse::<std::net::SocketAddr>()
                .map(Some)
                .map_err(|e| format!("--metrics-address {a:?}: {e}")),
        }
    }
}

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkSpec {
    /// Local mode: JSON lines appended to this file (docs/local-mode.md §3).
    File(PathBuf),
    /// Kubernetes mode: events.k8s.io Events via kube's Recorder.
    Kube { kubeconfig: Option<PathBuf> },
}

/// The validated configuration (printed by `--check-config`).
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub listen: String,
    pub sink: SinkSpec,
    pub driver_name: String,
    pub instance: String,
    pub queue_size: usize,
    #[serde(serialize_with = "millis")]
    pub retry_budget: Duration,
    #[serde(serialize_with = "millis")]
    pub attempt_timeout: Duration,
    #[serde(serialize_with = "millis")]
    pub drain_timeout: Duration,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub pv_lookup: PvLookupMode,
}

/// `--pv-lookup`: see [`Config::pv_lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PvLookupMode {
    Watch,
    Get,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}ms", d.as_millis()))
}

fn opt_millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => millis(d, s),
        None => s.serialize_none(),
    }
}

fn default_instance() -> Option<String> {
    ["POD_NAME", "NODE_NAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
}

/// Kubernetes "qualified name" (what the API server requires of an event's
/// reportingController): `[prefix/]name`, name ≤ 63 of `[A-Za-z0-9_.-]`
/// starting and ending alphanumeric, prefix a DNS subdomain.
fn check_qualified_name(s: &str) -> Result<(), &'static str> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix
        && !crate::validate::is_dns_subdomain(p)
    {
        return Err("prefix must be a DNS subdomain");
    }
    let ok_edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty()
        || name.len() > 63
        || !ok_edge(name.chars().next())
        || !ok_edge(name.chars().last())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("must be a Kubernetes qualified name (≤ 63 of [A-Za-z0-9_.-])");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sink_validates() {
        let s = Config::file_sink("/tmp/x/events.jsonl").validate();
        let s = s.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.sink, SinkSpec::File("/tmp/x/events.jsonl".into()));
        assert_eq!(s.driver_name, DEFAULT_DRIVER_NAME);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let mut c = Config::file_sink("/tmp/e.jsonl");
        c.sink = Some("syslog".into());
        assert!(c.validate().is_err_and(|e| e.contains("--sink")));
        let mut c = Config::file_sink("/tmp/e.jsonl");
        c.driver_name = "bad name!".into();
        assert!(c.validate().is_err_and(|e| e.contains("--driver-name")));
        let mut c = Config::file_sink("/tmp/e.jsonl");
        c.queue_size = 0;
        assert!(c.validate().is_err_and(|e| e.contains("--queue-size")));
        let mut c = Config::file_sink("/tmp/e.jsonl");
        c.metrics_addr = "nope".into();
        assert!(c.validate().is_err_and(|e| e.contains("--metrics-addr")));
        let c = Config::kube_sink("/nonexistent/kubeconfig");
        assert!(c.validate().is_err_and(|e| e.contains("--kubeconfig")));
    }

    fn parsed(flags: &[&str]) -> Settings {
        let argv = [
            "event-service",
            "--sink",
            "file:/tmp/e.jsonl",
            "--instance",
            "x",
        ];
        let cfg = <Config as clap::Parser>::try_parse_from(argv.iter().chain(flags))
            .unwrap_or_else(|e| panic!("{flags:?}: {e}"));
        cfg.validate().unwrap_or_else(|e| panic!("{flags:?}: {e}"))
    }

    /// The old millisecond flags keep their meaning next to the duration
    /// flags (docs/decisions.md §14); `--metrics-addr` stays an alias.
    #[test]
    fn old_millisecond_flags_and_new_durations_agree() {
        let old = parsed(&[
            "--retry-budget-ms",
            "90000",
            "--attempt-timeout-ms",
            "1500",
            "--drain-timeout-ms",
            "200",
            "--metrics-addr",
            "127.0.0.1:9999",
        ]);
        let new = parsed(&[
            "--retry-budget",
            "1m30s",
            "--attempt-timeout",
            "1500ms",
            "--drain-timeout",
            "200ms",
            "--metrics-address",
            "127.0.0.1:9999",
        ]);
        for s in [&old, &new] {
            assert_eq!(s.retry_budget, Duration::from_secs(90));
            assert_eq!(s.attempt_timeout, Duration::from_millis(1500));
            assert_eq!(s.drain_timeout, Duration::from_millis(200));
            assert_eq!(
                s.metrics_addr,
                Some("127.0.0.1:9999".parse().unwrap_or_else(|e| panic!("{e}")))
            );
        }
        let defaults = parsed(&[]);
        assert_eq!(defaults.retry_budget, Duration::from_secs(30));
        assert_eq!(defaults.attempt_timeout, Duration::from_secs(5));
        let both = [
            "event-service",
            "--retry-budget",
            "1s",
            "--retry-budget-ms",
            "5",
        ];
        assert!(
            <Config as clap::Parser>::try_parse_from(both).is_err(),
            "one value, one spelling"
        );
    }
}
