//! Shared helpers for the rds-sim integration tests: a real SSH client (async-ssh2-tokio).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::Path;
use std::time::Duration;

use async_ssh2_tokio::client::{AuthMethod, Client, ServerCheckMethod};
use rds_sim::{Sim, SimConfig, SimHandle};
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;

pub const T: Duration = Duration::from_secs(10);

pub fn key(n: u8) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[n; 32]))
}

pub fn config(dir: &Path) -> SimConfig {
    SimConfig::new(dir, vec![key(1).public_key().clone()])
}

pub async fn start(cfg: SimConfig) -> SimHandle {
    Sim::start(cfg).await.expect("sim starts")
}

pub fn host_key_b64(sim: &SimHandle) -> String {
    let line = sim.host_public_key().to_openssh().unwrap();
    line.split_whitespace().nth(1).unwrap().to_owned()
}

pub async fn try_connect_as(
    sim: &SimHandle,
    user: &str,
    k: &PrivateKey,
) -> Result<Client, async_ssh2_tokio::Error> {
    let pem = k.to_openssh(LineEnding::LF).unwrap();
    let check = ServerCheckMethod::PublicKey(host_key_b64(sim));
    tokio::time::timeout(
        T,
        Client::connect(sim.addr(), user, AuthMethod::with_key(&pem, None), check),
    )
    .await
    .expect("connect within deadline")
}

pub async fn connect(sim: &SimHandle) -> Client {
    try_connect_as(sim, "admin", &key(1))
        .await
        .expect("connect")
}

/// Run a command: (stdout, exit status).
pub async fn run(c: &Client, cmd: &str) -> (String, u32) {
    let r = tokio::time::timeout(T, c.execute(cmd))
        .await
        .expect("exec within deadline")
        .expect("exec");
    assert!(r.stderr.is_empty(), "nothing on stderr: {:?}", r.stderr);
    (r.stdout, r.exit_status)
}

/// Run a command that must succeed silently (add/set/remove).
pub async fn ok(c: &Client, cmd: &str) {
    let (out, st) = run(c, cmd).await;
    assert_eq!((out.as_str(), st), ("", 0), "command {cmd}");
}

/// Raw exec: stdout bytes, stderr bytes, exit status (None = none sent), without the
/// client's UTF-8 conversion.
pub async fn raw(c: &Client, cmd: &str) -> (Vec<u8>, Vec<u8>, Option<u32>) {
    let fut = async {
        let mut ch = c.get_channel().await?;
        ch.exec(true, cmd).await?;
        let (mut out, mut err, mut st) = (Vec::new(), Vec::new(), None);
        while let Some(msg) = ch.wait().await {
            match msg {
                russh::ChannelMsg::Data { data } => out.extend_from_slice(&data),
                russh::ChannelMsg::ExtendedData { data, ext: 1 } => err.extend_from_slice(&data),
                russh::ChannelMsg::ExitStatus { exit_status } => st = Some(exit_status),
                _ => {}
            }
        }
        Ok::<_, async_ssh2_tokio::Error>((out, err, st))
    };
    tokio::time::timeout(T, fut)
        .await
        .expect("raw exec within deadline")
        .expect("raw exec")
}

pub const UUID: &str = "0f923194-922a-5dd8-b376-c2c6ccb56dd8";

pub fn add_cmd(slot: &str, size: &str) -> String {
    format!(
        "/disk add type=file file-path=/storage-pool/metal-csi/{slot}.img file-size={size} slot={slot} \
         nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:{slot}"
    )
}
