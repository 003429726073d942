//! Typed rds-agent settings for everything that starts an agent: tests (in
//! process) and `rdsctl up` (a child process). One builder, two outputs —
//! [`AgentSpec::settings`] and [`AgentSpec::to_args`] — and both go through
//! the same flag parser and validation as the binary, so a test cannot start
//! an agent the binary would refuse.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Args, Settings};
use crate::error::AgentError;

/// How the agent pins the RDS host key.
#[derive(Debug, Clone)]
pub enum HostKeyPin {
    /// `SHA256:…` as ssh-keygen -l prints it.
    Fingerprint(String),
    /// A `ssh-ed25519 AAAA…` public key file.
    PublicKeyFile(PathBuf),
    /// A known_hosts file with an entry for the address.
    KnownHosts(PathBuf),
    /// No verification (tests only).
    InsecureSkip,
}

/// rds-agent's settings as typed values (flags not set here keep their
/// defaults).
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub rds_address: String,
    pub rds_port: u16,
    pub rds_user: String,
    pub key_file: PathBuf,
    pub host_key: HostKeyPin,
    /// Bus address (`host:port`, `unix:///path`).
    pub listen: String,
    /// `None` = no metrics endpoint.
    pub metrics_address: Option<String>,
    pub command_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    /// (initial, max) reconnect backoff.
    pub reconnect_backoff: Option<(Duration, Duration)>,
    pub managed_nqn_prefix: Option<String>,
    pub base_paths: Vec<String>,
    /// Flags this struct does not model yet (kept last, so they win).
    pub extra_args: Vec<String>,
}

fn duration(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

impl AgentSpec {
    /// An agent for `address:port` logging in as `admin` with `key_file`,
    /// listening on an ephemeral local port, without metrics.
    pub fn new(address: &str, port: u16, key_file: PathBuf, host_key: HostKeyPin) -> AgentSpec {
        AgentSpec {
            rds_address: address.to_owned(),
            rds_port: port,
            rds_user: "admin".to_owned(),
            key_file,
            host_key,
            listen: "127.0.0.1:0".to_owned(),
            metrics_address: None,
            command_timeout: None,
            connect_timeout: None,
            reconnect_backoff: None,
            managed_nqn_prefix: None,
            base_paths: Vec::new(),
            extra_args: Vec::new(),
        }
    }

    /// The flags (without the program name) that give these settings.
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--rds-address".into(),
            self.rds_address.clone(),
            "--rds-port".into(),
            self.rds_port.to_string(),
            "--rds-user".into(),
            self.rds_user.clone(),
            "--rds-key-file".into(),
            self.key_file.display().to_string(),
            "--listen".into(),
            self.listen.clone(),
            "--metrics-address".into(),
            self.metrics_address.clone().unwrap_or_default(),
        ];
        match &self.host_key {
            HostKeyPin::Fingerprint(f) => {
                a.extend(["--rds-host-key-fingerprint".into(), f.clone()])
            }
            HostKeyPin::PublicKeyFile(p) => {
                a.extend(["--rds-host-key".into(), p.display().to_string()])
            }
            HostKeyPin::KnownHosts(p) => {
                a.extend(["--rds-known-hosts".into(), p.display().to_string()])
            }
            HostKeyPin::InsecureSkip => a.push("--rds-insecure-skip-host-key-verify".into()),
        }
        if let Some(d) = self.command_timeout {
            a.extend(["--command-timeout".into(), duration(d)]);
        }
        if let Some(d) = self.connect_timeout {
            a.extend(["--connect-timeout".into(), duration(d)]);
        }
        if let Some((initial, max)) = self.reconnect_backoff {
            a.extend(["--reconnect-backoff-initial".into(), duration(initial)]);
            a.extend(["--reconnect-backoff-max".into(), duration(max)]);
        }
        if let Some(p) = &self.managed_nqn_prefix {
            a.extend(["--managed-nqn-prefix".into(), p.clone()]);
        }
        if !self.base_paths.is_empty() {
            a.extend(["--base-paths".into(), self.base_paths.join(",")]);
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }

    /// Validated settings for an in-process agent ([`crate::start`]), parsed
    /// from [`AgentSpec::to_args`] exactly as the binary parses its flags.
    pub fn settings(&self) -> Result<Settings, AgentError> {
        let argv = std::iter::once("rds-agent".to_owned()).chain(self.to_args());
        let args = <Args as clap::Parser>::try_parse_from(argv)
            .map_err(|e| AgentError::Config(e.to_string()))?;
        args.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_settings_round_trip_through_the_flags() {
        let dir = std::env::temp_dir().join(format!("rds-agent-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let key = dir.join("id");
        let pem = russh::keys::PrivateKey::from(
            russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&[3; 32]),
        )
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map(|z| z.to_string())
        .unwrap_or_default();
        std::fs::write(&key, pem).ok();
        let mut spec = AgentSpec::new("127.0.0.1", 2222, key, HostKeyPin::InsecureSkip);
        spec.command_timeout = Some(Duration::from_millis(1500));
        spec.base_paths = vec!["/storage-pool/other".into()];
        spec.managed_nqn_prefix = Some("nqn.2000-02.com.mikrotik:".into());
        let s = spec.settings();
        std::fs::remove_dir_all(&dir).ok();
        let s = match s {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(s.rds_port, 2222);
        assert_eq!(s.command_timeout, Duration::from_millis(1500));
        assert_eq!(s.base_paths.len(), 2, "the default base path is kept");
        assert_eq!(s.managed_nqn_prefix, "nqn.2000-02.com.mikrotik:");
        assert!(s.metrics_address.is_none());
    }
}
