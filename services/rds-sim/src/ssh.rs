//! The russh server handler: RouterOS-style auth (any user with an authorized key; the
//! `user+<options>` suffix is stripped and `<n>w` / `w<n>` sets the width), exec channels run
//! one console line each, shell/pty/subsystem requests are refused, channels opened and closed
//! without a request are fine. Unknown global requests (e.g. `keepalive@openssh.com`) get
//! "failure" from russh itself (docs/routeros.md §2.5).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use russh::keys::PublicKey;
use russh::server::{Auth, ChannelOpenHandle, Handler, Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tokio::sync::Notify;

use crate::config::{ExitStatusMode, SessionLimitMode};
use crate::faults::{FaultAction, FaultPoint, Garble};
use crate::server::Shared;
use crate::stream::KillSwitch;

/// Console options from the login name suffix (`admin+cet1024w`, docs/routeros.md §2.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LoginOptions {
    pub user: String,
    pub width: Option<usize>,
    pub height: Option<usize>,
}

/// Split `user+opts`; digits before `w`/`h` (MikroTik form `1024w`) or after them when none
/// precede (netmiko's `w511h4098`) set width/height.
pub(crate) fn parse_login(name: &str) -> LoginOptions {
    let Some((user, opts)) = name.split_once('+') else {
        return LoginOptions {
            user: name.to_owned(),
            ..LoginOptions::default()
        };
    };
    let mut o = LoginOptions {
        user: user.to_owned(),
        ..LoginOptions::default()
    };
    let chars: Vec<char> = opts.chars().collect();
    let mut pending = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c.is_ascii_digit() {
            pending.push(c);
            continue;
        }
        if c == 'w' || c == 'h' {
            let mut num = std::mem::take(&mut pending);
            if num.is_empty() {
                while i < chars.len() && chars[i].is_ascii_digit() {
                    num.push(chars[i]);
                    i += 1;
                }
            }
            let v = num.parse::<usize>().ok();
            if c == 'w' {
                o.width = v.or(o.width);
            } else {
                o.height = v.or(o.height);
            }
        } else {
            pending.clear();
        }
    }
    o
}

pub(crate) struct Conn {
    shared: Arc<Shared>,
    conn_id: u64,
    kill: Arc<KillSwitch>,
    width: Option<usize>,
    channels: Arc<OpenChannels>,
    open: Arc<AtomicU32>,
    closed: Arc<Notify>,
    limit_override: Option<u32>,
}

/// Channels counted against the session limit. Released when the client
/// closes a channel *or* when our exec task closes it first: russh does not
/// call `channel_close` for a channel the server already closed, so counting
/// only there would leak a slot per command.
pub(crate) struct OpenChannels {
    set: std::sync::Mutex<HashSet<ChannelId>>,
    /// The simulator-wide count ([`crate::SimHandle::open_channels`]).
    total: Arc<AtomicU32>,
}

impl OpenChannels {
    fn new(total: Arc<AtomicU32>) -> Self {
        Self {
            set: std::sync::Mutex::default(),
            total,
        }
    }

    fn insert(&self, id: ChannelId) {
        if let Ok(mut set) = self.set.lock()
            && set.insert(id)
        {
            self.total.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// True when `id` was open (so the caller decrements exactly once).
    fn remove(&self, id: &ChannelId) -> bool {
        let was = self.set.lock().map(|mut s| s.remove(id)).unwrap_or(false);
        if was {
            self.total.fetch_sub(1, Ordering::SeqCst);
        }
        was
    }
}

impl Drop for OpenChannels {
    /// A connection that ends takes its channels with it.
    fn drop(&mut self) {
        let n = self.set.lock().map(|s| s.len()).unwrap_or(0);
        self.total
            .fetch_sub(u32::try_from(n).unwrap_or(0), Ordering::SeqCst);
    }
}

fn release_channel(channels: &OpenChannels, open: &AtomicU32, closed: &Notify, channel: ChannelId) {
    if channels.remove(&channel) {
        open.fetch_sub(1, Ordering::SeqCst);
        closed.notify_waiters();
    }
}

impl Conn {
    pub(crate) fn new(shared: Arc<Shared>, conn_id: u64, kill: Arc<KillSwitch>) -> Self {
        let channels = Arc::new(OpenChannels::new(shared.open_channels.clone()));
        Self {
            shared,
            conn_id,
            kill,
            width: None,
            channels,
            open: Arc::new(AtomicU32::new(0)),
            closed: Arc::new(Notify::new()),
            limit_override: None,
        }
    }

    fn release(&mut self, channel: ChannelId) {
        release_channel(&self.channels, &self.open, &self.closed, channel);
    }
}

impl Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        key: &PublicKey,
    ) -> Result<Auth, Self::Error> {
        Ok(if self.shared.is_authorized(key) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(&mut self, user: &str, key: &PublicKey) -> Result<Auth, Self::Error> {
        let login = parse_login(user);
        let faults = self.shared.faults.check(FaultPoint::Auth, &login.user);
        if faults.contains(&FaultAction::RejectAuth) {
            tracing::info!(conn = self.conn_id, user = %login.user, "fault: rejecting auth");
            return Ok(Auth::reject());
        }
        if !self.shared.is_authorized(key) {
            return Ok(Auth::reject());
        }
        self.width = login.width;
        self.shared.logins.authenticated(self.conn_id, &login.user);
        tracing::debug!(conn = self.conn_id, user = %login.user, width = ?login.width, "authenticated");
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        for a in self.shared.faults.check(FaultPoint::ChannelOpen, "") {
            if let FaultAction::SessionLimit(n) = a {
                self.limit_override = Some(self.limit_override.map_or(n, |o| o.min(n)));
            }
        }
        let limit = match (self.shared.behaviour().session_limit, self.limit_override) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let id = channel.id();
        // The channel object is not needed: output goes through the session handle.
        drop(channel);
        if let Some(limit) = limit
            && self.open.load(Ordering::SeqCst) >= limit
        {
            let refuse = self.limit_override.is_some()
                || self.shared.behaviour().session_limit_mode == SessionLimitMode::Refuse;
            if refuse {
                tracing::info!(
                    conn = self.conn_id,
                    limit,
                    "session limit: refusing channel"
                );
                reply.reject(ChannelOpenFailure::ResourceShortage).await;
                return Ok(());
            }
            // Block: accept once a channel closes (in a task, so the connection keeps running).
            let open = self.open.clone();
            let closed = self.closed.clone();
            open.fetch_add(1, Ordering::SeqCst);
            self.channels.insert(id);
            tokio::spawn(async move {
                loop {
                    let n = closed.notified();
                    if open.load(Ordering::SeqCst) <= limit {
                        break;
                    }
                    n.await;
                }
                reply.accept().await;
            });
            return Ok(());
        }
        self.open.fetch_add(1, Ordering::SeqCst);
        self.channels.insert(id);
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.release(channel);
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The interactive console (docs/routeros.md §2.7) is not simulated.
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let line = String::from_utf8_lossy(data).into_owned();
        let handle = session.handle();
        let shared = self.shared.clone();
        let kill = self.kill.clone();
        let conn_id = self.conn_id;
        let width = self.width;
        let (channels, open, closed) = (
            self.channels.clone(),
            self.open.clone(),
            self.closed.clone(),
        );
        tokio::spawn(async move {
            let release = || release_channel(&channels, &open, &closed, channel);
            run_exec(
                shared, kill, conn_id, width, handle, channel, line, &release,
            )
            .await;
            release();
        });
        Ok(())
    }
}

/// The command-point faults that shape an exec's reply (the others end it at once).
#[derive(Default)]
struct ReplyFaults {
    garbles: Vec<Garble>,
    exit_override: Option<Option<u32>>,
    fail_text: Option<String>,
    drop_after: bool,
}

/// Apply the command-point faults. `None`: a fault ended the exec (hang, drop, reboot).
async fn command_faults(
    shared: &Arc<Shared>,
    kill: &KillSwitch,
    conn_id: u64,
    line: &str,
    started: Instant,
) -> Option<ReplyFaults> {
    let mut r = ReplyFaults::default();
    for f in shared.faults.check(FaultPoint::Command, line) {
        match f {
            FaultAction::Latency(d) => tokio::time::sleep(d).await,
            FaultAction::Hang => {
                shared.log.record(conn_id, line, "hang", started.elapsed());
                // Never reply; end with the connection.
                kill.killed().await;
                return None;
            }
            FaultAction::DropBeforeEffect => {
                shared
                    .log
                    .record(conn_id, line, "dropped-before", started.elapsed());
                kill.kill();
                return None;
            }
            FaultAction::Reboot(d) => {
                shared
                    .log
                    .record(conn_id, line, "reboot", started.elapsed());
                crate::server::reboot(shared, d).await;
                return None;
            }
            FaultAction::DropAfterEffect => r.drop_after = true,
            FaultAction::DiskFull => {
                r.fail_text
                    .get_or_insert_with(|| shared.behaviour().texts.not_enough_space.clone());
            }
            FaultAction::ErrorText(t) => {
                r.fail_text.get_or_insert(t);
            }
            FaultAction::ExitStatus(s) => r.exit_override = Some(s),
            FaultAction::Garble(g) => r.garbles.push(g),
            // Not command-point actions.
            FaultAction::RejectAuth
            | FaultAction::HostKeyChange
            | FaultAction::SessionLimit(_)
            | FaultAction::HandshakeDelay(_)
            | FaultAction::CloseAfterIdent => {}
        }
    }
    Some(r)
}

/// Run the line on the console (or answer the injected error text instead).
async fn console_outcome(
    shared: &Arc<Shared>,
    width: Option<usize>,
    faults: &ReplyFaults,
    line: &str,
) -> crate::console::Outcome {
    if let Some(t) = &faults.fail_text {
        return crate::console::Outcome {
            output: format!("{t}\r\n"),
            error: true,
            ..Default::default()
        };
    }
    let mut layout = shared.layout(width);
    for g in &faults.garbles {
        match g {
            Garble::Width(w) => layout.width = *w,
            Garble::CutBeforeSeparator => layout.cut_rule = rds_routeros::CutRule::BeforeSeparator,
            _ => {}
        }
    }
    let sh = shared.clone();
    let l = line.to_owned();
    match tokio::task::spawn_blocking(move || sh.run_line(&l, layout)).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "console task failed");
            crate::console::Outcome {
                output: "failure: internal error\r\n".into(),
                error: true,
                ..Default::default()
            }
        }
    }
}

/// One exec: faults, console, garbling, output, exit status, EOF, close, log line.
#[allow(clippy::too_many_arguments)]
async fn run_exec(
    shared: Arc<Shared>,
    kill: Arc<KillSwitch>,
    conn_id: u64,
    width: Option<usize>,
    handle: russh::server::Handle,
    channel: ChannelId,
    line: String,
    release: &(dyn Fn() + Send + Sync),
) {
    let started = Instant::now();
    let Some(faults) = command_faults(&shared, &kill, conn_id, &line, started).await else {
        return;
    };
    let outcome = console_outcome(&shared, width, &faults, &line).await;
    let ended = if outcome.hang {
        Some("hang")
    } else if faults.drop_after {
        Some("dropped-after")
    } else if outcome.reboot {
        Some("reboot")
    } else {
        None
    };
    if let Some(how) = ended {
        shared.log.record(conn_id, &line, how, started.elapsed());
        match how {
            "hang" => kill.killed().await,
            "dropped-after" => kill.kill(),
            _ => {
                let d = shared.behaviour().reboot_downtime();
                crate::server::reboot(&shared, d).await;
            }
        }
        return;
    }
    let mut bytes = outcome.output.into_bytes();
    for g in &faults.garbles {
        bytes = garble(bytes, g);
    }
    let stderr = faults.garbles.contains(&Garble::Stderr);
    let status = match faults.exit_override {
        Some(s) => s,
        None => match shared.behaviour().exit_status {
            ExitStatusMode::ZeroOrOne => Some(u32::from(outcome.error)),
            ExitStatusMode::AlwaysZero => Some(0),
            ExitStatusMode::Missing => None,
        },
    };
    let reply = Reply {
        handle: &handle,
        channel,
        release,
    };
    if reply.send(bytes, stderr, status).await.is_err() {
        tracing::debug!(conn = conn_id, "client went away before the reply was sent");
    }
    let exit = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
    shared.log.record(conn_id, &line, &exit, started.elapsed());
}

/// Where an exec's reply goes.
struct Reply<'a> {
    handle: &'a russh::server::Handle,
    channel: ChannelId,
    release: &'a (dyn Fn() + Send + Sync),
}

impl Reply<'_> {
    /// Output (stdout or stderr), exit status, EOF, close.
    async fn send(&self, bytes: Vec<u8>, stderr: bool, status: Option<u32>) -> Result<(), ()> {
        let (handle, channel) = (self.handle, self.channel);
        if !bytes.is_empty() {
            if stderr {
                handle
                    .extended_data(channel, 1, bytes)
                    .await
                    .map_err(|_| ())?;
            } else {
                handle.data(channel, bytes).await.map_err(|_| ())?;
            }
        }
        if let Some(s) = status {
            handle.exit_status_request(channel, s).await?;
        }
        handle.eof(channel).await?;
        // Free the session slot before the client can see the close and
        // open its next channel.
        (self.release)();
        handle.close(channel).await
    }
}

fn garble(bytes: Vec<u8>, g: &Garble) -> Vec<u8> {
    match g {
        Garble::LfLineEndings => {
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                    continue;
                }
                out.push(bytes[i]);
                i += 1;
            }
            out
        }
        Garble::ExtraBlankLine => {
            let mut b = bytes;
            b.extend_from_slice(b"\r\n");
            b
        }
        Garble::NoTrailingBlankLine => {
            let mut b = bytes;
            if b.ends_with(b"\r\n\r\n") {
                b.truncate(b.len() - 2);
            }
            b
        }
        Garble::Truncate(n) => {
            let mut b = bytes;
            b.truncate(*n);
            b
        }
        Garble::Oversize(n) => {
            let mut b = bytes;
            let line = [b"#".repeat(78), b"\r\n".to_vec()].concat();
            while b.len() < *n {
                b.extend_from_slice(&line);
            }
            b
        }
        Garble::InvalidUtf8 => {
            let mut b = vec![0xff, 0xfe, b'\r', b'\n'];
            b.extend(bytes);
            b
        }
        Garble::AnsiEscapes => {
            let mut b = b"\x1b[9999B\x1b[m".to_vec();
            b.extend(bytes);
            b.extend_from_slice(b"\x1b[m");
            b
        }
        Garble::ConsoleLogLine => {
            let now = jiff::Zoned::now();
            let mut b = format!(
                "{} system,error,critical login failure for user root via ssh\r\n",
                now.strftime("%H:%M:%S")
            )
            .into_bytes();
            b.extend(bytes);
            b
        }
        Garble::Width(_) | Garble::CutBeforeSeparator | Garble::Stderr => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_suffix() {
        assert_eq!(
            parse_login("admin"),
            LoginOptions {
                user: "admin".into(),
                width: None,
                height: None
            }
        );
        assert_eq!(
            parse_login("admin+cet1024w"),
            LoginOptions {
                user: "admin".into(),
                width: Some(1024),
                height: None
            }
        );
        assert_eq!(
            parse_login("admin+cetw511h4098"),
            LoginOptions {
                user: "admin".into(),
                width: Some(511),
                height: Some(4098)
            }
        );
        assert_eq!(
            parse_login("bob+ct80w40h"),
            LoginOptions {
                user: "bob".into(),
                width: Some(80),
                height: Some(40)
            }
        );
    }

    #[test]
    fn garbles() {
        assert_eq!(
            garble(b"a\r\nb\r\n\r\n".to_vec(), &Garble::LfLineEndings),
            b"a\nb\n\n"
        );
        assert_eq!(
            garble(b"a\r\n\r\n".to_vec(), &Garble::NoTrailingBlankLine),
            b"a\r\n"
        );
        assert_eq!(garble(b"abcdef".to_vec(), &Garble::Truncate(3)), b"abc");
        assert!(String::from_utf8(garble(b"x".to_vec(), &Garble::InvalidUtf8)).is_err());
    }
}
