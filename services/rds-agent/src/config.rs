//! Flags and environment (clap), validated into [`Settings`]. Secrets come
//! from files; `--check-config` prints [`Settings::summary`], which names
//! files and fingerprints but never key material.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rds_routeros::{DiskPath, PoolName, Port};
use russh::keys::PrivateKey;

use crate::error::AgentError;
use crate::ssh::HostKeyPolicy;
use crate::ssh::hostkey::{fingerprint, load_public_key, normalize_fingerprint};

/// rds-agent: serves rds.agent.v1 and runs RouterOS commands on the RDS over SSH.
#[derive(Parser, Debug, Clone)]
#[command(name = "rds-agent", version)]
pub struct Args {
    /// RDS SSH address (host name or IP).
    #[arg(long, env = "RDS_ADDRESS")]
    pub rds_address: String,
    #[arg(long, env = "RDS_PORT", default_value_t = 22)]
    pub rds_port: u16,
    #[arg(long, env = "RDS_USER", default_value = "admin")]
    pub rds_user: String,
    /// Private key file (OpenSSH or PEM; no passphrase).
    #[arg(
        long,
        env = "RDS_KEY_FILE",
        default_value = "/etc/rds-csi/ssh-key/id_rsa"
    )]
    pub rds_key_file: PathBuf,
    /// Pin: the RDS host public key file (`ssh-ed25519 AAAA…`).
    #[arg(long, env = "RDS_HOST_KEY")]
    pub rds_host_key: Option<PathBuf>,
    /// Pin: a known_hosts file with an entry for the RDS address.
    #[arg(long, env = "RDS_KNOWN_HOSTS")]
    pub rds_known_hosts: Option<PathBuf>,
    /// Pin: the host key's SHA256 fingerprint (`SHA256:…`, as ssh-keygen -l prints).
    #[arg(long, env = "RDS_HOST_KEY_FINGERPRINT")]
    pub rds_host_key_fingerprint: Option<String>,
    /// Do not verify the RDS host key (tests only; logs a warning on every connect).
    #[arg(
        long,
        env = "RDS_INSECURE_SKIP_HOST_KEY_VERIFY",
        default_value_t = false
    )]
    pub rds_insecure_skip_host_key_verify: bool,
    /// Default directory of backing files.
    #[arg(
        long,
        env = "RDS_VOLUME_BASE_PATH",
        default_value = "/storage-pool/metal-csi"
    )]
    pub base_path: String,
    /// Every directory whose files this driver owns (comma-separated); the
    /// default base path is always included. StorageClass `volumePath`s must
    /// be one of these (or inside one); disks elsewhere are foreign.
    #[arg(long, env = "RDS_BASE_PATHS", value_delimiter = ',')]
    pub base_paths: Vec<String>,
    /// NQN prefix of the volumes this driver creates; other names are refused.
    #[arg(
        long,
        env = "RDS_MANAGED_NQN_PREFIX",
        default_value = rds_bus::ids::DEFAULT_MANAGED_NQN_PREFIX
    )]
    pub managed_nqn_prefix: String,
    /// Deadline of one copy-from (snapshot, restore, clone), run detached.
    #[arg(long, env = "RDS_COPY_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub copy_timeout: Duration,
    /// Storage pool (its mount-point; base paths must lie inside it).
    #[arg(long, env = "RDS_POOL", default_value = "storage-pool")]
    pub pool: String,
    /// Default NVMe/TCP port of new volumes.
    #[arg(long, env = "RDS_NVME_PORT", default_value_t = 4420)]
    pub nvme_port: u32,
    /// Deadline of one RouterOS command (e.g. 10s, 500ms).
    #[arg(long, env = "RDS_COMMAND_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub command_timeout: Duration,
    /// Deadline of TCP connect + SSH handshake + auth.
    #[arg(long, env = "RDS_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Longest wait for a free session before answering RDS_TIMEOUT.
    #[arg(long, env = "RDS_QUEUE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub queue_timeout: Duration,
    /// SSH connections kept to the RDS.
    #[arg(long, env = "RDS_MAX_CONNECTIONS", default_value_t = 2)]
    pub max_connections: usize,
    /// RouterOS commands running at once (sessions across all connections).
    /// Default 8 across 2 connections: with two controller replicas (only the
    /// leader's agent is busy) and a human logged in, well under RouterOS's
    /// 20 sessions per service (budget in docs/decisions.md).
    #[arg(long, env = "RDS_MAX_SESSIONS", default_value_t = 8)]
    pub max_sessions: usize,
    /// An SSH connection no command used for this long is closed, so a
    /// standby replica's agent holds no login between its pool polls
    /// (docs/decisions.md §9.9); the next command reconnects. 0 = never.
    #[arg(long, env = "RDS_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_interval_or_off)]
    pub idle_timeout: Duration,
    /// Consecutive transport failures that open the circuit breaker.
    #[arg(long, env = "RDS_BREAKER_THRESHOLD", default_value_t = 3)]
    pub breaker_threshold: u32,
    #[arg(long, env = "RDS_RECONNECT_BACKOFF_INITIAL", default_value = "200ms", value_parser = parse_duration)]
    pub reconnect_backoff_initial: Duration,
    #[arg(long, env = "RDS_RECONNECT_BACKOFF_MAX", default_value = "30s", value_parser = parse_duration)]
    pub reconnect_backoff_max: Duration,
    /// Bus listen address (`host:port` or `unix:///path`).
    #[arg(long, env = "RDS_AGENT_LISTEN", default_value = "127.0.0.1:50061")]
    pub listen: String,
    /// Prometheus `/metrics` address; empty disables.
    #[arg(
        long,
        alias = "metrics-addr",
        env = "RDS_AGENT_METRICS_ADDRESS",
        default_value = "0.0.0.0:9811"
    )]
    pub metrics_address: String,
    /// How often the storage pool's size and free space are read for
    /// `/metrics` (one `/disk print` each time, never from a scrape); 0
    /// disables.
    #[arg(long, env = "RDS_POOL_METRICS_INTERVAL", default_value = "60s", value_parser = parse_interval_or_off)]
    pub pool_metrics_interval: Duration,
    /// Storage fencing (set together with attachment-service's
    /// `--storage-fencing`): new volumes, restores and clones are created
    /// with their export closed (`nvme-tcp-server-allow-host-name` = the
    /// no-host sentinel) instead of open until the attachment leader's next
    /// pass. Alone, without attachment-service fencing, nobody could ever
    /// connect to a new volume.
    #[arg(long, env = "RDS_STORAGE_FENCING", default_value_t = false, action = clap::ArgAction::Set)]
    pub storage_fencing: bool,
    /// Validate flags, env and files, print the effective config and exit.
    #[arg(long, default_value_t = false)]
    pub check_config: bool,
}

/// Durations read the one grammar of every binary (docs/decisions.md §14);
/// zero is refused where a timeout must tick.
pub use rds_bus::duration::parse_positive as parse_duration;

/// A duration, or zero (`0`, `0s`, …) meaning "off" (returned as
/// [`Duration::ZERO`]).
pub fn parse_interval_or_off(s: &str) -> Result<Duration, String> {
    rds_bus::duration::parse(s)
}

/// Validated configuration. The private key is held here and nowhere else.
#[derive(Clone)]
pub struct Settings {
    pub rds_host: String,
    pub rds_port: u16,
    pub rds_user: String,
    pub key_file: PathBuf,
    pub key: Arc<PrivateKey>,
    pub host_key: HostKeyPolicy,
    /// `--rds-host-key`, re-read on rotation (crate::credentials).
    pub host_key_file: Option<PathBuf>,
    pub base_path: DiskPath,
    /// `--base-paths` plus `--base-path`, each inside the pool.
    pub base_paths: Vec<DiskPath>,
    pub managed_nqn_prefix: String,
    pub copy_timeout: Duration,
    pub pool: PoolName,
    pub nvme_port: Port,
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
    pub queue_timeout: Duration,
    pub max_connections: usize,
    pub max_sessions: usize,
    /// `None`: connections are kept however long they stay idle.
    pub idle_timeout: Option<Duration>,
    pub breaker_threshold: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub listen: String,
    pub metrics_address: Option<SocketAddr>,
    /// `None`: the storage pool gauges are not refreshed.
    pub pool_metrics_interval: Option<Duration>,
    /// `--storage-fencing`: create exports closed.
    pub storage_fencing: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary().to_string())
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
}

impl Args {
    pub fn validate(&self) -> Result<Settings, AgentError> {
        let cfg = |m: String| AgentError::Config(m);
        self.check_login()?;
        let key_text = rds_bus::config::read_secret_file(&self.rds_key_file).map_err(cfg)?;
        let key = russh::keys::decode_secret_key(&key_text, None).map_err(|e| {
            cfg(format!(
                "--rds-key-file {}: not a usable private key ({e})",
                self.rds_key_file.display()
            ))
        })?;
        let host_key = self.host_key_policy()?;
        let pool = PoolName::new(&self.pool).map_err(|e| cfg(format!("--pool: {e}")))?;
        let (base_path, base_paths) = self.base_paths(&pool)?;
        self.check_nqn_prefix()?;
        let nvme_port = Port::new(self.nvme_port).map_err(|e| cfg(format!("--nvme-port: {e}")))?;
        if self.max_connections == 0 || self.max_sessions == 0 {
            return Err(cfg(
                "--max-connections and --max-sessions must be at least 1".into(),
            ));
        }
        if self.listen.is_empty() {
            return Err(cfg("--listen must not be empty".into()));
        }
        let metrics_address = self.metrics_address()?;
        Ok(Settings {
            rds_host: self.rds_address.clone(),
            rds_port: self.rds_port,
            rds_user: self.rds_user.clone(),
            key_file: self.rds_key_file.clone(),
            key: Arc::new(key),
            host_key,
            host_key_file: self.rds_host_key.clone(),
            base_path,
            base_paths,
            managed_nqn_prefix: self.managed_nqn_prefix.clone(),
            copy_timeout: self.copy_timeout,
            pool,
            nvme_port,
            command_timeout: self.command_timeout,
            connect_timeout: self.connect_timeout,
            queue_timeout: self.queue_timeout,
            max_connections: self.max_connections,
            max_sessions: self.max_sessions,
            idle_timeout: Some(self.idle_timeout).filter(|d| !d.is_zero()),
            breaker_threshold: self.breaker_threshold.max(1),
            backoff_initial: self.reconnect_backoff_initial,
            backoff_max: self.reconnect_backoff_max,
            listen: self.listen.clone(),
            metrics_address,
            pool_metrics_interval: Some(self.pool_metrics_interval).filter(|d| !d.is_zero()),
            storage_fencing: self.storage_fencing,
        })
    }

    /// The RDS address must be a host name or IP and the user a plain login name.
    fn check_login(&self) -> Result<(), AgentError> {
        let cfg = |m: String| AgentError::Config(m);
        if !valid_host(&self.rds_address) {
            return Err(cfg(format!(
                "--rds-address {:?} is not a host name or IP address",
                self.rds_address
            )));
        }
        // `+` allows RouterOS console options in the login name (user+cet…).
        if self.rds_user.is_empty()
            || !self
                .rds_user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
        {
            return Err(cfg(format!(
                "--rds-user {:?} is not a valid user name",
                self.rds_user
            )));
        }
        Ok(())
    }

    /// `--base-path` (the default) followed by the extra `--base-paths`, each inside the pool.
    fn base_paths(&self, pool: &PoolName) -> Result<(DiskPath, Vec<DiskPath>), AgentError> {
        let cfg = |m: String| AgentError::Config(m);
        let base_path =
            DiskPath::new(&self.base_path).map_err(|e| cfg(format!("--base-path: {e}")))?;
        let pool_root = DiskPath::new(&format!("/{pool}")).map_err(|e| cfg(e.to_string()))?;
        if !base_path.is_under(&pool_root) {
            return Err(cfg(format!(
                "--base-path {base_path} is not inside the pool {pool_root}"
            )));
        }
        let mut base_paths = vec![base_path.clone()];
        for b in self
            .base_paths
            .iter()
            .map(|b| b.trim())
            .filter(|b| !b.is_empty())
        {
            let p = DiskPath::new(b).map_err(|e| cfg(format!("--base-paths {b:?}: {e}")))?;
            if !p.is_under(&pool_root) || p == pool_root {
                return Err(cfg(format!(
                    "--base-paths {p} is not a directory inside the pool {pool_root}"
                )));
            }
            if !base_paths.contains(&p) {
                base_paths.push(p);
            }
        }
        Ok((base_path, base_paths))
    }

    /// The NQN prefix that marks disks as managed must look like an NQN.
    fn check_nqn_prefix(&self) -> Result<(), AgentError> {
        let cfg = |m: String| AgentError::Config(m);
        let prefix = &self.managed_nqn_prefix;
        if !prefix.starts_with("nqn.")
            || !prefix.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | ':' | '_')
            })
        {
            return Err(cfg(format!(
                "--managed-nqn-prefix {prefix:?} must start with \"nqn.\" and use [a-z0-9.:_-]"
            )));
        }
        Ok(())
    }

    /// `--metrics-address`: empty turns the metrics endpoint off.
    fn metrics_address(&self) -> Result<Option<SocketAddr>, AgentError> {
        let cfg = |m: String| AgentError::Config(m);
        let metrics_address = if self.metrics_address.is_empty() {
            None
        } else {
            Some(self.metrics_address.parse().map_err(|_| {
                cfg(format!(
                    "--metrics-address {:?} is not host:port",
                    self.metrics_address
                ))
            })?)
        };
        Ok(metrics_address)
    }

    fn host_key_policy(&self) -> Result<HostKeyPolicy, AgentError> {
        let mut pins = Vec::new();
        if let Some(p) = &self.rds_host_key {
            pins.push(HostKeyPolicy::PublicKey(load_public_key(p)?));
        }
        if let Some(p) = &self.rds_known_hosts {
            let entries =
                russh::keys::known_hosts::known_host_keys_path(&self.rds_address, self.rds_port, p)
                    .map_err(|e| {
                        AgentError::Config(format!("--rds-known-hosts {}: {e}", p.display()))
                    })?;
            if !p.is_file() || entries.is_empty() {
                return Err(AgentError::Config(format!(
                    "--rds-known-hosts {} has no entry for {}:{}",
                    p.display(),
                    self.rds_address,
                    self.rds_port
                )));
            }
            pins.push(HostKeyPolicy::KnownHosts(p.clone()));
        }
        if let Some(f) = &self.rds_host_key_fingerprint {
            pins.push(HostKeyPolicy::Fingerprint(normalize_fingerprint(f)?));
        }
        match (pins.len(), self.rds_insecure_skip_host_key_verify) {
            (1, false) => Ok(pins.remove(0)),
            (0, true) => {
                tracing::warn!(
                    target: "security",
                    "[SECURITY] --rds-insecure-skip-host-key-verify is set: the RDS host key \
                     will NOT be verified; use only for tests"
                );
                Ok(HostKeyPolicy::InsecureSkip)
            }
            (0, false) => Err(AgentError::Config(
                "the RDS host key must be pinned: give one of --rds-host-key, \
                 --rds-known-hosts or --rds-host-key-fingerprint \
                 (or --rds-insecure-skip-host-key-verify for tests)"
                    .into(),
            )),
            (_, true) => Err(AgentError::Config(
                "--rds-insecure-skip-host-key-verify contradicts a host key pin".into(),
            )),
            _ => Err(AgentError::Config(
                "give only one of --rds-host-key, --rds-known-hosts, --rds-host-key-fingerprint"
                    .into(),
            )),
        }
    }
}

impl Settings {
    /// The effective configuration for `--check-config` and logs (public
    /// data only: the key's path and fingerprint, never the key).
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "rds_address": self.rds_host,
            "rds_port": self.rds_port,
            "rds_user": self.rds_user,
            "rds_key_file": self.key_file.display().to_string(),
            "rds_key_fingerprint": fingerprint(self.key.public_key()),
            "host_key": self.host_key.describe(),
            "base_path": self.base_path.as_str(),
            "base_paths": self.base_paths.iter().map(|b| b.as_str()).collect::<Vec<_>>(),
            "managed_nqn_prefix": self.managed_nqn_prefix,
            "copy_timeout_ms": self.copy_timeout.as_millis() as u64,
            "pool": self.pool.as_str(),
            "nvme_port": self.nvme_port.get(),
            "command_timeout_ms": self.command_timeout.as_millis() as u64,
            "connect_timeout_ms": self.connect_timeout.as_millis() as u64,
            "queue_timeout_ms": self.queue_timeout.as_millis() as u64,
            "max_connections": self.max_connections,
            "max_sessions": self.max_sessions,
            "idle_timeout_ms": self.idle_timeout.map(|d| d.as_millis() as u64),
            "breaker_threshold": self.breaker_threshold,
            "reconnect_backoff_initial_ms": self.backoff_initial.as_millis() as u64,
            "reconnect_backoff_max_ms": self.backoff_max.as_millis() as u64,
            "listen": self.listen,
            "metrics_address": self.metrics_address.map(|a| a.to_string()),
            "pool_metrics_interval_ms": self.pool_metrics_interval.map(|d| d.as_millis() as u64),
            "storage_fencing": self.storage_fencing,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use russh::keys::ssh_key::LineEnding;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    fn key_file(dir: &std::path::Path) -> PathBuf {
        let k = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]));
        let p = dir.join("id_ed25519");
        std::fs::write(&p, k.to_openssh(LineEnding::LF).unwrap().as_bytes()).unwrap();
        p
    }

    fn args(extra: &[&str], key: &std::path::Path) -> Result<Settings, AgentError> {
        let mut v = vec![
            "rds-agent",
            "--rds-address",
            "10.0.0.5",
            "--rds-key-file",
            key.to_str().unwrap(),
        ];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).unwrap().validate()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_interval_or_off("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_interval_or_off("0s").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_interval_or_off("90s").unwrap(),
            Duration::from_secs(90)
        );
        assert!(parse_interval_or_off("never").is_err());
    }

    #[test]
    fn pool_metrics_interval_defaults_to_a_minute_and_zero_turns_it_off() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path());
        let pin = "--rds-insecure-skip-host-key-verify";
        let s = args(&[pin], &key).unwrap();
        assert_eq!(s.pool_metrics_interval, Some(Duration::from_secs(60)));
        for off in ["0", "0s", "0ms"] {
            let s = args(&[pin, "--pool-metrics-interval", off], &key).unwrap();
            assert_eq!(s.pool_metrics_interval, None, "{off}");
        }
        let s = args(&[pin, "--pool-metrics-interval", "5m"], &key).unwrap();
        assert_eq!(s.pool_metrics_interval, Some(Duration::from_secs(300)));
    }

    #[test]
    fn host_key_must_be_pinned_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path());
        let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
        assert!(
            args(&[], &key)
                .unwrap_err()
                .to_string()
                .contains("must be pinned")
        );
        let s = args(&["--rds-host-key-fingerprint", fp], &key).unwrap();
        assert!(matches!(s.host_key, HostKeyPolicy::Fingerprint(_)));
        assert!(args(&["--rds-insecure-skip-host-key-verify"], &key).is_ok());
        assert!(
            args(
                &[
                    "--rds-insecure-skip-host-key-verify",
                    "--rds-host-key-fingerprint",
                    fp
                ],
                &key
            )
            .is_err()
        );
        let kh = dir.path().join("known_hosts");
        std::fs::write(&kh, "otherhost ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n").unwrap();
        let err = args(&["--rds-known-hosts", kh.to_str().unwrap()], &key).unwrap_err();
        assert!(err.to_string().contains("no entry"), "{err}");
    }

    #[test]
    fn paths_and_summary_without_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path());
        let pin = ["--rds-insecure-skip-host-key-verify"];
        for bad in [
            "/other/x",
            "relative",
            "/storage-pool/a;b",
            "/storage-pool/../etc",
        ] {
            let mut a = pin.to_vec();
            a.extend(["--base-path", bad]);
            assert!(args(&a, &key).is_err(), "{bad}");
        }
        let s = args(&pin, &key).unwrap();
        let text = s.summary().to_string();
        let key_text = std::fs::read_to_string(&key).unwrap();
        let body: String = key_text.lines().nth(1).unwrap().chars().take(20).collect();
        assert!(!text.contains(&body), "summary leaks key material");
        assert!(text.contains("NOT VERIFIED"));
        std::fs::write(&key, "garbage").unwrap();
        let err = args(&pin, &key).unwrap_err().to_string();
        assert!(
            err.contains("not a usable private key") && !err.contains("garbage"),
            "{err}"
        );
    }
}
