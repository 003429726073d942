//! How the operator commands reach the RDS and the cluster.
//!
//! - The RDS only through rds-agent's library ([`rds_agent::inspect::Inspector`]):
//!   the flags below are rds-agent's own (same names, same environment
//!   variables), validated by rds-agent's own [`rds_agent::Args::validate`], so
//!   the host-key pin and every path check are the service's.
//! - The cluster with the usual kubeconfig (`--kubeconfig`, `$KUBECONFIG`,
//!   `~/.kube/config`, or in-cluster), every request under `--kube-timeout`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use rds_agent::inspect::Inspector;

use crate::error::{CtlError, Result};
use crate::units::parse_duration;

/// The RDS, as rds-agent's flags name it.
#[derive(Args, Debug, Clone, Default)]
pub struct RdsArgs {
    /// RDS SSH address (host name or IP).
    #[arg(long, env = "RDS_ADDRESS")]
    pub rds_address: Option<String>,
    #[arg(long, env = "RDS_PORT")]
    pub rds_port: Option<u16>,
    #[arg(long, env = "RDS_USER")]
    pub rds_user: Option<String>,
    /// Private key file (OpenSSH or PEM; no passphrase).
    #[arg(long, env = "RDS_KEY_FILE")]
    pub rds_key_file: Option<PathBuf>,
    /// Pin: the RDS host public key file.
    #[arg(long, env = "RDS_HOST_KEY")]
    pub rds_host_key: Option<PathBuf>,
    /// Pin: a known_hosts file with an entry for the RDS address.
    #[arg(long, env = "RDS_KNOWN_HOSTS")]
    pub rds_known_hosts: Option<PathBuf>,
    /// Pin: the host key's SHA256 fingerprint (`SHA256:…`).
    #[arg(long, env = "RDS_HOST_KEY_FINGERPRINT")]
    pub rds_host_key_fingerprint: Option<String>,
    /// Storage pool (its mount-point).
    #[arg(long, env = "RDS_POOL")]
    pub pool: Option<String>,
    /// Default directory of backing files.
    #[arg(long, env = "RDS_VOLUME_BASE_PATH")]
    pub base_path: Option<String>,
    /// Every directory whose files the driver owns (comma-separated).
    #[arg(long, env = "RDS_BASE_PATHS", value_delimiter = ',')]
    pub base_paths: Vec<String>,
    /// Deadline of one RouterOS command.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub command_timeout: Duration,
    /// Deadline of TCP connect + SSH handshake + auth.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

impl RdsArgs {
    pub fn given(&self) -> bool {
        self.rds_address.is_some()
    }

    /// rds-agent's own argv, so its parser and validation decide.
    fn agent_argv(&self, address: &str) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["rds-agent".into(), "--rds-address".into(), address.into()];
        let mut opt = |flag: &str, value: Option<OsString>| {
            if let Some(x) = value {
                v.push(flag.into());
                v.push(x);
            }
        };
        opt("--rds-port", self.rds_port.map(|p| p.to_string().into()));
        opt("--rds-user", self.rds_user.clone().map(Into::into));
        opt("--rds-key-file", self.rds_key_file.clone().map(Into::into));
        opt("--rds-host-key", self.rds_host_key.clone().map(Into::into));
        opt(
            "--rds-known-hosts",
            self.rds_known_hosts.clone().map(Into::into),
        );
        opt(
            "--rds-host-key-fingerprint",
            self.rds_host_key_fingerprint.clone().map(Into::into),
        );
        opt("--pool", self.pool.clone().map(Into::into));
        opt("--base-path", self.base_path.clone().map(Into::into));
        if !self.base_paths.is_empty() {
            opt("--base-paths", Some(self.base_paths.join(",").into()));
        }
        let ms = |d: Duration| Some(format!("{}ms", d.as_millis().max(1)).into());
        opt("--command-timeout", ms(self.command_timeout));
        opt("--connect-timeout", ms(self.connect_timeout));
        opt("--queue-timeout", ms(self.command_timeout));
        opt("--metrics-address", Some("".into()));
        v
    }

    /// Validated settings (rds-agent's checks), then the read-only inspector.
    pub fn inspector(&self) -> Result<Inspector> {
        let Some(address) = &self.rds_address else {
            return Err(CtlError::Usage(
                "give the RDS with --rds-address (or $RDS_ADDRESS), its key and host-key pin"
                    .into(),
            ));
        };
        let args = rds_agent::Args::try_parse_from_argv(self.agent_argv(address))?;
        let settings = args
            .validate()
            .map_err(|e| CtlError::Usage(e.to_string()))?;
        Ok(Inspector::new(&settings))
    }
}

/// Parses rds-agent's argv (a clap error becomes a usage error).
trait ParseAgent: Sized {
    fn try_parse_from_argv(argv: Vec<OsString>) -> Result<Self>;
}

impl ParseAgent for rds_agent::Args {
    fn try_parse_from_argv(argv: Vec<OsString>) -> Result<Self> {
        <rds_agent::Args as clap::Parser>::try_parse_from(argv)
            .map_err(|e| CtlError::Usage(e.to_string()))
    }
}

/// The cluster.
#[derive(Args, Debug, Clone)]
pub struct KubeArgs {
    /// kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace of the driver's pods.
    #[arg(long, default_value = "rds-csi")]
    pub namespace: String,
    /// CSI driver name.
    #[arg(long, default_value = "rds.csi.srvlab.io")]
    pub driver: String,
    /// Deadline of each Kubernetes request.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub kube_timeout: Duration,
}

impl Default for KubeArgs {
    fn default() -> Self {
        KubeArgs {
            kubeconfig: None,
            context: None,
            namespace: "rds-csi".into(),
            driver: "rds.csi.srvlab.io".into(),
            kube_timeout: Duration::from_secs(15),
        }
    }
}

/// How much longer the client's own deadline is than `--kube-timeout`.
const CLIENT_MARGIN: Duration = Duration::from_secs(2);

impl KubeArgs {
    /// A client from the kubeconfig (rds-bus's one builder); `Ok(None)` when
    /// none can be found and none was asked for (doctor then skips the
    /// cluster checks). The client's own connect/read/write deadline is the
    /// per-request one plus [`CLIENT_MARGIN`]: every request goes through
    /// [`KubeArgs::call`], whose `--kube-timeout` must be the one that reports
    /// ("no answer within 5s"), never a race between two equal timers
    /// (docs/decisions.md §14.4). The margin is the backstop for a request
    /// made outside `call`.
    pub async fn client(&self, required: bool) -> Result<Option<kube::Client>> {
        let opts = rds_bus::kube_client::KubeOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            timeout: Some(self.kube_timeout + CLIENT_MARGIN),
        };
        match rds_bus::kube_client::client_with(&opts).await {
            Ok(c) => Ok(Some(c)),
            Err(rds_bus::kube_client::KubeClientError::Kubeconfig { path, msg }) => Err(
                CtlError::Usage(format!("--kubeconfig {}: {msg}", path.display())),
            ),
            Err(rds_bus::kube_client::KubeClientError::Infer(e)) if required => {
                Err(CtlError::Usage(format!(
                    "no Kubernetes configuration found ({e}); give --kubeconfig"
                )))
            }
            Err(rds_bus::kube_client::KubeClientError::Infer(_)) => Ok(None),
            Err(e) => Err(CtlError::Kube(format!("cannot build a client: {e}"))),
        }
    }

    /// One API request under `--kube-timeout`.
    pub async fn call<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = kube::Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.kube_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CtlError::Kube(format!("{what}: {e}"))),
            Err(_) => Err(CtlError::Kube(format!(
                "{what}: no answer within {:?}",
                self.kube_timeout
            ))),
        }
    }
}
