//! What rdsctl's sim-backed tests share: an rds-sim with a client key on
//! disk, the `--rds-*` flags that reach it, and a console line planted through
//! rds-agent's own SSH layer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use serde_json::Value;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub sim: rds_sim::SimHandle,
    pub key_file: PathBuf,
}

pub fn client_key() -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[42; 32]))
}

pub async fn sim_env(tune: impl FnOnce(&mut rds_sim::SimConfig)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let key = client_key();
    let key_file = dir.path().join("id_ed25519");
    std::fs::write(
        &key_file,
        key.to_openssh(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    let mut cfg = rds_sim::SimConfig::new(dir.path().join("sim"), vec![key.public_key().clone()])
        .local_mode();
    tune(&mut cfg);
    let sim = rds_sim::Sim::start(cfg).await.unwrap();
    Env { dir, sim, key_file }
}

impl Env {
    pub fn rds_args(&self) -> Vec<String> {
        vec![
            "--rds-address".into(),
            "127.0.0.1".into(),
            "--rds-port".into(),
            self.sim.addr().port().to_string(),
            "--rds-user".into(),
            "admin".into(),
            "--rds-key-file".into(),
            self.key_file.display().to_string(),
            "--rds-host-key-fingerprint".into(),
            self.sim.host_key_fingerprint(),
            "--connect-timeout".into(),
            "3s".into(),
            "--command-timeout".into(),
            "5s".into(),
        ]
    }

    /// Runs a console line on the sim through rds-agent's own SSH layer.
    pub async fn plant(&self, line: &str) {
        let args = <rds_agent::Args as clap::Parser>::try_parse_from(
            std::iter::once("rds-agent".to_owned()).chain(self.rds_args().into_iter().filter(
                |a| a != "--connect-timeout" && a != "--command-timeout" && a != "3s" && a != "5s",
            )),
        )
        .unwrap();
        let s = args.validate().unwrap();
        let target = rds_agent::ssh::SshTarget {
            host: s.rds_host.clone(),
            port: s.rds_port,
            user: s.rds_user.clone(),
            key: s.key.clone(),
            host_key: s.host_key.clone(),
            connect_timeout: Duration::from_secs(5),
            credentials: None,
        };
        let conn = rds_agent::ssh::SshConnection::connect(&target)
            .await
            .unwrap();
        let t = Duration::from_secs(5);
        let out = conn
            .exec(
                "plant",
                line,
                tokio::time::Instant::now() + t,
                t,
                rds_agent::ssh::OUTPUT_CAP,
            )
            .await
            .unwrap();
        assert!(out.stdout.trim().is_empty(), "{line}: {}", out.stdout);
    }
}

/// Runs the real rdsctl binary (no kubeconfig, no home) under a deadline;
/// its stdout and stderr as one text for assertion messages.
pub async fn rdsctl(args: &[String]) -> (Output, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rdsctl"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("rdsctl finished")
        .unwrap();
    let text = format!(
        "{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// The doctor check `name` of a JSON report.
pub fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}
