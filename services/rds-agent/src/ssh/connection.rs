//! One SSH connection to the RDS: connect (with host-key pinning and key
//! auth, under a deadline) and run one command per exec channel, the way the
//! Go driver and RouterOS expect (docs/routeros.md §2.1–§2.4).
//!
//! Why russh directly instead of async-ssh2-tokio's `Client`: its handler is
//! private and its check is a bare bool (no fingerprint pin, no presented key
//! for the security log), and its `execute` throws the output away when the
//! box sends no exit-status — one of the three exit-status variants RouterOS
//! has been seen to use. Same russh version as async-ssh2-tokio (one copy).

use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, ChannelWriteHalf, Disconnect};
use tokio::time::{Instant, timeout_at};

use super::hostkey::HostKeyPolicy;
use crate::error::AgentError;

/// Where and how to log in. The private key never leaves this struct (and
/// its `Debug` does not print it).
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: Arc<PrivateKey>,
    pub host_key: HostKeyPolicy,
    pub connect_timeout: Duration,
    /// When set, `key` and `host_key` are only the start-up values: each
    /// connection takes the current files (crate::credentials).
    pub credentials: Option<Arc<crate::credentials::Credentials>>,
}

impl std::fmt::Debug for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("host_key", &self.host_key.describe())
            .finish_non_exhaustive()
    }
}

impl SshTarget {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// What an exec channel returned. RouterOS writes errors to stdout; stderr
/// is kept for completeness. `exit_status` is `None` when the box closed the
/// channel without one (a variant of docs/routeros.md §2.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_status: Option<u32>,
}

struct PinnedHandler {
    host: String,
    port: u16,
    policy: HostKeyPolicy,
}

impl client::Handler for PinnedHandler {
    type Error = AgentError;

    async fn check_server_key(&mut self, key: &PublicKey) -> Result<bool, AgentError> {
        self.policy.verify(&self.host, self.port, key)?;
        Ok(true)
    }
}

/// Largest reply accepted from one command. A `print detail` of 10,000
/// disks is about 6 MiB; anything bigger is not an answer we can use.
pub const OUTPUT_CAP: usize = 8 << 20;

/// Closes the exec channel unless the exchange finished: a timed-out,
/// oversized or cancelled (dropped) command must not keep its channel, and
/// with it one of the RDS's sessions, open.
struct ChannelGuard(Option<ChannelWriteHalf<client::Msg>>);

impl ChannelGuard {
    fn finished(&mut self) {
        self.0 = None;
    }
}

impl Drop for ChannelGuard {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_millis(500), w.close()).await;
                    });
                }
                Err(_) => drop(w),
            }
        }
    }
}

pub struct SshConnection {
    handle: Handle<PinnedHandler>,
}

fn unreachable(msg: impl Into<String>, sent: bool) -> AgentError {
    AgentError::Unreachable {
        msg: msg.into(),
        sent,
    }
}

impl SshConnection {
    /// TCP connect, key exchange (host key checked), public-key auth — all
    /// within `target.connect_timeout`.
    pub async fn connect(target: &SshTarget) -> Result<SshConnection, AgentError> {
        let deadline = Instant::now() + target.connect_timeout;
        let (key, policy) = match &target.credentials {
            Some(c) => c.current(),
            None => (target.key.clone(), target.host_key.clone()),
        };
        let over = || {
            unreachable(
                format!(
                    "connecting to {} took longer than {:?}",
                    target.address(),
                    target.connect_timeout
                ),
                false,
            )
        };
        let config = Arc::new(client::Config {
            // RouterOS does not answer keepalive@openssh.com (docs/routeros.md
            // §2.5): never send it; liveness comes from real commands.
            keepalive_interval: None,
            inactivity_timeout: None,
            nodelay: true,
            ..client::Config::default()
        });
        let handler = PinnedHandler {
            host: target.host.clone(),
            port: target.port,
            policy,
        };
        let addr = (target.host.as_str(), target.port);
        let socket = timeout_at(deadline, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| over())?
            .map_err(|e| unreachable(format!("connect {}: {e}", target.address()), false))?;
        let _ = socket.set_nodelay(true);
        let mut handle = timeout_at(deadline, client::connect_stream(config, socket, handler))
            .await
            .map_err(|_| over())?
            .map_err(|e| match e {
                AgentError::Ssh(inner) => unreachable(
                    format!("SSH handshake with {}: {inner}", target.address()),
                    false,
                ),
                other => other,
            })?;
        // Only RSA keys need the server's preferred signature hash; asking
        // costs up to 1 s on servers that never send ext-info.
        let hash = if key.algorithm().is_rsa() {
            timeout_at(deadline, handle.best_supported_rsa_hash())
                .await
                .map_err(|_| over())??
                .flatten()
        } else {
            None
        };
        let auth = timeout_at(
            deadline,
            handle
                .authenticate_publickey(target.user.clone(), PrivateKeyWithHashAlg::new(key, hash)),
        )
        .await
        .map_err(|_| over())?
        .map_err(|e| unreachable(format!("SSH auth exchange: {e}"), false))?;
        if !auth.success() {
            tracing::error!(
                target: "security",
                host = %target.host,
                user = %target.user,
                "[SECURITY] type=ssh_auth_failure severity=error outcome=denied \
                 RDS rejected our SSH key"
            );
            return Err(AgentError::AuthFailed {
                user: target.user.clone(),
            });
        }
        Ok(SshConnection { handle })
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    pub async fn disconnect(&self) {
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            self.handle.disconnect(Disconnect::ByApplication, "", "en"),
        )
        .await;
    }

    /// Runs one command on a new exec channel and collects its output until
    /// the channel closes, all before `deadline`. Errors say whether the
    /// command had been sent (`sent`): after that point the outcome is
    /// unknown to us. Output beyond `cap` ([`OUTPUT_CAP`], or the pool's
    /// larger cap for the listing) is refused (BAD_OUTPUT)
    /// and the channel closed. If this future is dropped (the call was
    /// cancelled), the channel is closed too ([`ChannelGuard`]).
    pub async fn exec(
        &self,
        verb: &'static str,
        command: &str,
        deadline: Instant,
        budget: Duration,
        cap: usize,
    ) -> Result<RawOutput, AgentError> {
        let timeout = |sent| AgentError::Timeout {
            verb,
            after: budget,
            sent,
        };
        let channel = timeout_at(deadline, self.handle.channel_open_session())
            .await
            .map_err(|_| timeout(false))?
            .map_err(|e| match e {
                russh::Error::ChannelOpenFailure(why) => {
                    AgentError::SessionRefused(format!("{why:?}"))
                }
                other => unreachable(format!("opening an SSH session: {other}"), false),
            })?;
        let (mut read, write) = channel.split();
        if let Err(e) = write.exec(true, command.as_bytes()).await {
            return Err(unreachable(format!("sending the command: {e}"), false));
        }
        let mut guard = ChannelGuard(Some(write));
        let mut out = RawOutput::default();
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut closed = false;
        let mut eof = false;
        loop {
            let msg = match timeout_at(deadline, read.wait()).await {
                Ok(m) => m,
                Err(_) => return Err(timeout(true)),
            };
            match msg {
                Some(ChannelMsg::Data { data }) => stdout.extend_from_slice(&data),
                Some(ChannelMsg::ExtendedData { data, ext }) => {
                    if ext == 1 {
                        stderr.extend_from_slice(&data);
                    }
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => out.exit_status = Some(exit_status),
                Some(ChannelMsg::Failure) => {
                    // The exec request itself was refused: nothing ran.
                    return Err(unreachable("the RDS refused the exec request", false));
                }
                Some(ChannelMsg::Eof) => eof = true,
                Some(ChannelMsg::Close) => {
                    closed = true;
                }
                Some(_) => {}
                None => break,
            }
            if stdout.len() + stderr.len() > cap {
                return Err(AgentError::BadOutput {
                    verb,
                    detail: format!("more than {cap} bytes of output; refused"),
                    sent: true,
                });
            }
            if closed {
                break;
            }
        }
        guard.finished();
        if !closed && !eof && self.handle.is_closed() {
            // The connection died under the command: it may or may not have run.
            return Err(unreachable(
                "the SSH connection dropped while the command was running",
                true,
            ));
        }
        if !closed && !eof && out.exit_status.is_none() {
            return Err(unreachable(
                "the SSH channel ended without output end, close or exit status",
                true,
            ));
        }
        out.stdout = String::from_utf8_lossy(&stdout).into_owned();
        out.stderr = String::from_utf8_lossy(&stderr).into_owned();
        Ok(out)
    }
}
