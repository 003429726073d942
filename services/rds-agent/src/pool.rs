//! Bounded SSH access to the RDS: a fixed number of connections, a fixed
//! number of concurrent sessions (commands) across them, a deadline on every
//! command, the circuit breaker, and a recovery task that reconnects with
//! exponential backoff while the breaker is open (the half-open probe).
//!
//! The Go driver kept one connection and serialised session creation behind a
//! mutex after 19 concurrent sessions made scrapes time out (docs/routeros.md §8.7);
//! here the session count is a semaphore, so the bound holds by construction
//! and nothing queues forever (queue wait has its own deadline).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use rds_routeros::{Command, DiskSelector};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use crate::breaker::{Breaker, Transition};
use crate::error::AgentError;
use crate::metrics::Metrics;
use crate::ssh::{OUTPUT_CAP, RawOutput, SshConnection, SshTarget};
use rds_bus::Backoff;

/// Output cap of the list verbs (the unfiltered `/disk print detail` behind
/// ListVolumes, ListSnapshots and ListAllowedHosts): a record with a
/// `pvc-<uuid>` slot is about 880 bytes, so 32 MiB is about 38,000 disks. Only one such command runs at a
/// time ([`Inner::list_gate`]), so one reply and its parse bound the
/// memory it costs (docs/decisions.md §9.12). Every other command keeps
/// [`OUTPUT_CAP`].
pub const LIST_OUTPUT_CAP: usize = 32 << 20;

/// Whether `cmd` is the listing that gets [`LIST_OUTPUT_CAP`].
fn is_listing(cmd: &Command) -> bool {
    matches!(cmd, Command::DiskPrint(DiskSelector::All))
}

/// Raw command execution towards the RDS. The real one is [`Pool`]; tests of
/// the volume logic use an in-memory RDS behind the same trait.
pub trait Transport: Send + Sync {
    /// Runs `cmd`, whose validated text is `text`, and returns what the exec
    /// channel produced, within `budget` (queue wait excluded; the queue has
    /// its own deadline). (The typed command is passed along so an in-memory
    /// RDS can act on it without a second parser.)
    fn exec<'a>(
        &'a self,
        cmd: &'a Command,
        text: &'a str,
        budget: Duration,
    ) -> BoxFuture<'a, Result<RawOutput, AgentError>>;

    /// Human-readable health (`connected`, `circuit open: …`).
    fn describe(&self) -> String;

    /// True while commands are refused without trying (breaker open).
    fn is_down(&self) -> bool;
}

#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// SSH connections kept to the RDS (≥ 1).
    pub max_connections: usize,
    /// Commands running at once across all connections (≥ 1).
    pub max_sessions: usize,
    /// Deadline of one command (session open + exec + output).
    pub command_timeout: Duration,
    /// Longest wait for a free session.
    pub queue_timeout: Duration,
    /// Consecutive transport failures that open the breaker.
    pub breaker_threshold: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A connection no command used for this long is closed (`None`:
    /// never); the next command reconnects.
    pub idle_timeout: Option<Duration>,
}

pub struct Pool {
    inner: Arc<Inner>,
}

/// One connection and its share of the sessions, so no connection ever
/// carries more than `ceil(max_sessions / max_connections)` channels (the
/// RDS's per-connection channel limit is unknown, docs/routeros.md §2.1).
struct Slot {
    conn: Mutex<Option<Arc<SshConnection>>>,
    sessions: Semaphore,
    /// When a command last finished on this slot's connection (or it was
    /// opened): the idle reaper's clock.
    last_used: std::sync::Mutex<Instant>,
}

impl Slot {
    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

struct Inner {
    target: SshTarget,
    cfg: PoolConfig,
    slots: Vec<Slot>,
    /// Sessions per connection (each slot's semaphore starts with this many).
    per_conn: usize,
    sessions: Semaphore,
    /// One listing at a time: each may hold up to [`LIST_OUTPUT_CAP`].
    list_gate: Semaphore,
    reaper: AtomicBool,
    next: AtomicUsize,
    breaker: Breaker,
    backoff: std::sync::Mutex<Backoff>,
    recovering: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Pool {
    /// Creates the pool; connections are made lazily on first use, so the
    /// agent starts (and answers Probe) while the RDS is still down.
    pub fn new(target: SshTarget, cfg: PoolConfig, metrics: Arc<Metrics>) -> Pool {
        let n = cfg.max_connections.max(1);
        let sessions = cfg.max_sessions.max(1);
        let per_conn = sessions.div_ceil(n);
        metrics.set_sessions_max(sessions);
        // Jittered: every agent that lost the RDS (a reboot) reconnects at once otherwise.
        let backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max).jittered();
        Pool {
            inner: Arc::new(Inner {
                target,
                slots: (0..n)
                    .map(|_| Slot {
                        conn: Mutex::new(None),
                        sessions: Semaphore::new(per_conn),
                        last_used: std::sync::Mutex::new(Instant::now()),
                    })
                    .collect(),
                per_conn,
                sessions: Semaphore::new(sessions),
                list_gate: Semaphore::new(1),
                reaper: AtomicBool::new(false),
                next: AtomicUsize::new(0),
                breaker: Breaker::new(cfg.breaker_threshold),
                backoff: std::sync::Mutex::new(backoff),
                recovering: AtomicBool::new(false),
                metrics,
                cfg,
            }),
        }
    }

    /// Connects one connection now (start-up warm-up); failures only feed
    /// the breaker, the agent keeps serving.
    pub async fn warm_up(&self) -> Result<(), AgentError> {
        let inner = &self.inner;
        let mut slot = inner.slots[0].conn.lock().await;
        match inner.open_connection().await {
            Ok(c) => {
                *slot = Some(c);
                inner.slots[0].touch();
                inner.start_reaper();
                Ok(())
            }
            Err(e) => {
                inner.failed(&e);
                Err(e)
            }
        }
    }

    /// Closes every connection (shutdown).
    pub async fn close(&self) {
        for s in &self.inner.slots {
            if let Some(c) = s.conn.lock().await.take() {
                c.disconnect().await;
            }
        }
    }
}

impl Inner {
    /// A new connection; the caller feeds a failure to the breaker (once).
    async fn open_connection(self: &Arc<Self>) -> Result<Arc<SshConnection>, AgentError> {
        let c = SshConnection::connect(&self.target).await?;
        self.metrics.set_connected(true);
        Ok(Arc::new(c))
    }

    fn backoff_peek(&self) -> Duration {
        self.backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .peek()
    }

    /// Feeds a failure to the breaker; opening it starts the recovery task.
    fn failed(self: &Arc<Self>, err: &AgentError) {
        if self.breaker.record_failure(err, self.backoff_peek()) == Transition::Opened {
            tracing::warn!(error = %err, "RDS circuit opened: answering UNAVAILABLE until a probe succeeds");
            self.metrics.set_connected(false);
            self.metrics.set_circuit_open(true);
            self.start_recovery();
        }
    }

    fn succeeded(&self) {
        if self.breaker.record_success() == Transition::Closed {
            self.metrics.set_circuit_open(false);
            tracing::info!("RDS circuit closed");
        }
        self.metrics.set_connected(true);
    }

    /// The half-open probe: reconnect with exponential backoff and run one
    /// cheap read; success installs the connection and closes the breaker.
    /// Holds only a weak reference, so a dropped pool stops it.
    fn start_recovery(self: &Arc<Self>) {
        if self.recovering.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(self);
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                let delay = {
                    let Some(inner) = weak.upgrade() else { return };
                    let mut b = inner.backoff.lock().unwrap_or_else(|p| p.into_inner());
                    b.next_delay()
                };
                tokio::time::sleep(delay).await;
                let Some(inner) = weak.upgrade() else { return };
                match inner.probe().await {
                    Ok(conn) => {
                        for s in &inner.slots {
                            let mut g = s.conn.lock().await;
                            if g.as_ref().is_some_and(|c| c.is_closed()) {
                                *g = None;
                            }
                        }
                        *inner.slots[0].conn.lock().await = Some(conn);
                        inner.slots[0].touch();
                        inner.start_reaper();
                        inner
                            .backoff
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .reset();
                        inner.recovering.store(false, Ordering::SeqCst);
                        inner.succeeded();
                        inner
                            .metrics
                            .reconnect(true, Some(started.elapsed().as_secs_f64()));
                        tracing::info!(
                            after = ?started.elapsed(),
                            "RDS reachable again"
                        );
                        return;
                    }
                    Err(e) => {
                        inner.metrics.reconnect(false, None);
                        inner.breaker.record_failure(&e, inner.backoff_peek());
                        tracing::debug!(error = %e, "RDS probe failed");
                    }
                }
            }
        });
    }

    async fn probe(&self) -> Result<Arc<SshConnection>, AgentError> {
        let conn = SshConnection::connect(&self.target).await?;
        let budget = self.cfg.command_timeout;
        let cmd = Command::SystemResourcePrint;
        conn.exec(
            cmd.verb(),
            &cmd.to_string(),
            Instant::now() + budget,
            budget,
            OUTPUT_CAP,
        )
        .await?;
        Ok(Arc::new(conn))
    }

    /// A live connection of slot `i`, connecting it if needed. The slot lock
    /// makes concurrent users of a dead slot wait for one connect instead of
    /// storming the RDS.
    async fn connection(self: &Arc<Self>, i: usize) -> Result<Arc<SshConnection>, AgentError> {
        let mut slot = self.slots[i].conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        self.breaker.check()?;
        let c = self.open_connection().await?;
        *slot = Some(c.clone());
        self.slots[i].touch();
        self.start_reaper();
        Ok(c)
    }

    /// Starts (once) the task that closes connections idle for longer than
    /// `idle_timeout`, so an agent nobody calls — a standby replica's —
    /// holds no SSH login (docs/decisions.md §9.9). Holds only a weak
    /// reference, so a dropped pool stops it.
    fn start_reaper(self: &Arc<Self>) {
        let Some(idle) = self.cfg.idle_timeout else {
            return;
        };
        if self.reaper.swap(true, Ordering::SeqCst) {
            return;
        }
        let tick = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
        let weak: Weak<Inner> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                let Some(inner) = weak.upgrade() else { return };
                inner.close_idle(idle).await;
            }
        });
    }

    /// Closes each connection with no command running whose last command
    /// ended at least `idle` ago. A caller takes its slot permit before it
    /// looks at the connection, so a free permit count under the slot lock
    /// means nobody is using (or about to use) this connection.
    async fn close_idle(&self, idle: Duration) {
        for (i, s) in self.slots.iter().enumerate() {
            let mut g = s.conn.lock().await;
            let idle_now = s.sessions.available_permits() == self.per_conn && s.idle_for() >= idle;
            if g.is_none() || !idle_now {
                continue;
            }
            if let Some(c) = g.take() {
                drop(g);
                tracing::debug!(connection = i, after = ?idle, "closing an idle RDS connection");
                c.disconnect().await;
            }
        }
    }

    /// Forgets a broken connection; `hard` also disconnects it (a timed-out
    /// connection may be wedged, e.g. black-holed TCP).
    async fn drop_connection(&self, i: usize, conn: &Arc<SshConnection>, hard: bool) {
        let mut slot = self.slots[i].conn.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *slot = None;
        }
        drop(slot);
        if hard {
            conn.disconnect().await;
        }
    }

    /// A slot with a free session. The global permit guarantees one exists
    /// (per-slot shares add up to at least `max_sessions`); start at the
    /// round-robin position to spread load.
    fn pick_slot(&self) -> Option<(usize, tokio::sync::SemaphorePermit<'_>)> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n).find_map(|k| {
            let i = (start + k) % n;
            self.slots[i].sessions.try_acquire().ok().map(|p| (i, p))
        })
    }

    async fn exec(
        self: &Arc<Self>,
        verb: &'static str,
        command: &str,
        budget: Duration,
        listing: bool,
    ) -> Result<RawOutput, AgentError> {
        self.breaker.check()?;
        // The queue is FIFO (tokio's semaphore is fair) and bounded in time:
        // never longer than the queue deadline nor the command's own budget.
        let wait = self.cfg.queue_timeout.min(budget);
        let queued = Instant::now();
        let _list_permit = if listing {
            Some(
                tokio::time::timeout(wait, self.list_gate.acquire())
                    .await
                    .map_err(|_| AgentError::QueueTimeout(wait))?
                    .map_err(|_| AgentError::Internal("list gate closed".into()))?,
            )
        } else {
            None
        };
        let left = wait.saturating_sub(queued.elapsed());
        let permit = tokio::time::timeout(left, self.sessions.acquire())
            .await
            .map_err(|_| AgentError::QueueTimeout(wait))?
            .map_err(|_| AgentError::Internal("session semaphore closed".into()))?;
        let cap = if listing { LIST_OUTPUT_CAP } else { OUTPUT_CAP };
        // The breaker may have opened while we queued.
        self.breaker.check()?;
        // Ends the sessions gauge however this future ends (a dropped call too).
        let _gauge = SessionGauge::start(&self.metrics);
        let result = async {
            let (i, _slot_permit) = self
                .pick_slot()
                .ok_or_else(|| AgentError::Internal("no free session slot".into()))?;
            let conn = self.connection(i).await?;
            let res = conn
                .exec(verb, command, Instant::now() + budget, budget, cap)
                .await;
            self.slots[i].touch();
            if let Err(e) = &res {
                let timed_out = matches!(e, AgentError::Timeout { .. });
                if timed_out || conn.is_closed() {
                    self.drop_connection(i, &conn, timed_out).await;
                }
            }
            res
        }
        .await;
        drop(_gauge);
        drop(permit);
        match &result {
            Ok(_) => self.succeeded(),
            Err(e) => self.failed(e),
        }
        result
    }
}

/// The `sessions_active` gauge for one command: up on start, down on drop,
/// so a call cancelled mid-command does not leave it counted forever.
struct SessionGauge<'a>(&'a Metrics);

impl<'a> SessionGauge<'a> {
    fn start(m: &'a Metrics) -> Self {
        m.session_started();
        SessionGauge(m)
    }
}

impl Drop for SessionGauge<'_> {
    fn drop(&mut self) {
        self.0.session_ended();
    }
}

impl Transport for Pool {
    fn exec<'a>(
        &'a self,
        cmd: &'a Command,
        text: &'a str,
        budget: Duration,
    ) -> BoxFuture<'a, Result<RawOutput, AgentError>> {
        Box::pin(self.inner.exec(cmd.verb(), text, budget, is_listing(cmd)))
    }

    fn describe(&self) -> String {
        if self.inner.breaker.is_open() {
            self.inner.breaker.describe()
        } else {
            format!(
                "{} ({} connections, {} of {} sessions free)",
                self.inner.breaker.describe(),
                self.inner.slots.len(),
                self.inner.sessions.available_permits(),
                self.inner.cfg.max_sessions.max(1)
            )
        }
    }

    fn is_down(&self) -> bool {
        self.inner.breaker.is_open()
    }
}
