//! Listener, connections, persistence glue, reboot and stop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use russh::keys::{PrivateKey, PublicKey};
use russh::{MethodKind, MethodSet, SshId};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cmdlog::CommandLog;
use crate::config::{Behaviour, SimConfig};
use crate::console::{Session, run_line};
use crate::error::SimError;
use crate::export::Export;
use crate::faults::{FaultAction, FaultPoint, Faults};
use crate::model::{Device, DiskSummary, POOL, State};
use crate::persist::Persister;
use crate::render::Layout;
use crate::store::Store;
use crate::stream::{KillSwitch, KillableStream};

/// RouterOS's identification string (docs/routeros.md §2.1).
pub(crate) const SSH_IDENT: &str = "SSH-2.0-ROSSSH";

pub(crate) struct Shared {
    cfg: SimConfig,
    pub(crate) store: Store,
    persist: Persister,
    state: crate::persist::SharedState,
    pub(crate) faults: Faults,
    export: Export,
    pub(crate) log: CommandLog,
    pub(crate) host_key: PrivateKey,
    ssh_cfg: Arc<russh::server::Config>,
    alt_ssh_cfg: Arc<russh::server::Config>,
    addr: Mutex<Option<SocketAddr>>,
    conns: Mutex<HashMap<u64, Arc<KillSwitch>>>,
    next_conn: AtomicU64,
    boot: Mutex<Instant>,
    up: watch::Sender<bool>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    generation: AtomicU64,
    stopped: AtomicBool,
    /// SSH channels open right now, over every connection (tests check that
    /// a client's cancelled commands leak none).
    pub(crate) open_channels: Arc<std::sync::atomic::AtomicU32>,
    /// Logged-in connections (`/user active`, crate::setup).
    pub(crate) logins: crate::setup::Logins,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only follows a panic elsewhere; the data is still consistent enough to serve.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ssh_config(key: PrivateKey) -> russh::server::Config {
    russh::server::Config {
        server_id: SshId::Standard(SSH_IDENT.into()),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(10),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        // The real idle timeout is unknown (docs/routeros.md §2.6); none here.
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    }
}

impl Shared {
    pub(crate) fn open(cfg: SimConfig) -> Result<Self, SimError> {
        std::fs::create_dir_all(&cfg.state_dir)
            .map_err(|e| SimError::io("creating", &cfg.state_dir, e))?;
        let store = Store::open(&cfg.state_dir, POOL)?.with_sync(cfg.sync_state);
        let state = Arc::new(Mutex::new(load_state(&store)?));
        let host_key = match &cfg.host_key {
            Some(k) => k.clone(),
            None => crate::hostkey::load_or_generate_host_key(&cfg.state_dir.join("host_key"))?,
        };
        let alt = crate::hostkey::alternate_key(&host_key);
        let log = CommandLog::open(cfg.state_dir.join("commands.log"))?;
        let export = Export::start(&cfg.nvmet, &cfg.state_dir, &lock(&state), &store)?;
        let persist = Persister::new(store.state_path(), cfg.sync_state, state.clone())?;
        let shared = Self {
            persist,
            store,
            state,
            faults: Faults::default(),
            export,
            log,
            ssh_cfg: Arc::new(ssh_config(host_key.clone())),
            alt_ssh_cfg: Arc::new(ssh_config(alt)),
            host_key,
            addr: Mutex::new(None),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            boot: Mutex::new(Instant::now()),
            up: watch::Sender::new(false),
            accept_task: Mutex::new(None),
            generation: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            open_channels: Arc::default(),
            logins: crate::setup::Logins::default(),
            cfg,
        };
        for dir in &shared.cfg.base_dirs {
            let rel = crate::store::normalise(dir)
                .ok_or_else(|| SimError::Invalid(format!("base dir {dir}")))?;
            shared
                .store
                .mkdir_p(&rel)
                .map_err(|e| SimError::io("creating", rel.clone(), e))?;
        }
        shared.save(&lock(&shared.state))?;
        Ok(shared)
    }

    pub(crate) fn behaviour(&self) -> &Behaviour {
        &self.cfg.behaviour
    }

    pub(crate) fn is_authorized(&self, key: &PublicKey) -> bool {
        self.cfg
            .authorized_keys
            .iter()
            .any(|k| k.key_data() == key.key_data())
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        lock(&self.addr).unwrap_or(self.cfg.listen)
    }

    pub(crate) fn layout(&self, width: Option<usize>) -> Layout {
        let b = self.behaviour();
        Layout {
            width: width.unwrap_or(b.width).max(20),
            cut_rule: match b.cut_rule {
                crate::config::CutRule::AtLimit => rds_routeros::CutRule::AtLimit,
                crate::config::CutRule::BeforeSeparator => rds_routeros::CutRule::BeforeSeparator,
            },
            file_trailing_space: b.file_trailing_space,
        }
    }

    fn save(&self, state: &State) -> Result<(), SimError> {
        self.persist.save(state)
    }

    /// Run one console line under the state lock (blocking: file I/O).
    pub(crate) fn run_line(&self, line: &str, layout: Layout) -> crate::console::Outcome {
        let uptime_secs = lock(&self.boot).elapsed().as_secs();
        let sess = Session {
            layout,
            uptime_secs,
            logins: self.logins.snapshot(),
        };
        let mut state = lock(&self.state);
        let mut dev = Device {
            state: &mut state,
            store: &self.store,
            behaviour: &self.cfg.behaviour,
            pool_size: self.cfg.pool_size,
            dirty: false,
        };
        let out = run_line(&mut dev, &sess, line);
        if dev.dirty {
            if let Err(e) = self.save(&state) {
                tracing::error!(error = %e, "cannot persist state");
            }
            self.export.sync(&state, &self.store);
        }
        out
    }

    pub(crate) fn disks(&self) -> Vec<DiskSummary> {
        let mut state = lock(&self.state);
        let dev = Device {
            state: &mut state,
            store: &self.store,
            behaviour: &self.cfg.behaviour,
            pool_size: self.cfg.pool_size,
            dirty: false,
        };
        dev.summaries()
    }

    fn reload(&self) {
        self.persist.flush();
        match load_state(&self.store) {
            Ok(s) => {
                self.export.sync(&s, &self.store);
                *lock(&self.state) = s;
            }
            Err(e) => {
                tracing::error!(error = %e, "reboot: cannot reload state, keeping memory copy")
            }
        }
        *lock(&self.boot) = Instant::now();
    }

    fn kill_all(&self) {
        let conns: Vec<_> = lock(&self.conns).values().cloned().collect();
        for k in conns {
            k.kill();
        }
    }
}

fn load_state(store: &Store) -> Result<State, SimError> {
    let path = store.state_path();
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| SimError::State(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::fresh()),
        Err(e) => Err(SimError::io("reading", path, e)),
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, SimError> {
    // After a reboot the port may linger briefly; retry for a moment.
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    Err(SimError::Bind {
        addr,
        source: last.unwrap_or_else(|| std::io::Error::other("bind failed")),
    })
}

pub(crate) async fn start(shared: Arc<Shared>) -> Result<(), SimError> {
    let listener = bind(shared.cfg.listen).await?;
    let addr = listener.local_addr().map_err(|e| SimError::Bind {
        addr: shared.cfg.listen,
        source: e,
    })?;
    *lock(&shared.addr) = Some(addr);
    let task = tokio::spawn(accept_loop(shared.clone(), listener));
    *lock(&shared.accept_task) = Some(task);
    shared.up.send_replace(true);
    tracing::info!(%addr, "rds-sim listening");
    Ok(())
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                tokio::spawn(handle_conn(shared.clone(), sock, peer));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle_conn(shared: Arc<Shared>, mut sock: TcpStream, peer: SocketAddr) {
    let conn_id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    let kill = Arc::new(KillSwitch::default());
    lock(&shared.conns).insert(conn_id, kill.clone());
    shared.logins.connected(conn_id, peer);
    let mut cfg = shared.ssh_cfg.clone();
    let mut close_after_ident = false;
    for f in shared.faults.check(FaultPoint::Connect, "") {
        match f {
            FaultAction::HandshakeDelay(d) => tokio::time::sleep(d).await,
            FaultAction::CloseAfterIdent => close_after_ident = true,
            FaultAction::HostKeyChange => cfg = shared.alt_ssh_cfg.clone(),
            _ => {}
        }
    }
    // run_stream does not apply Config::nodelay; without it Nagle + delayed ACK add ~40 ms
    // to every exec reply.
    if let Err(e) = sock.set_nodelay(true) {
        tracing::debug!(conn = conn_id, error = %e, "cannot set TCP_NODELAY");
    }
    tracing::debug!(conn = conn_id, %peer, "connection");
    if close_after_ident {
        let _ = sock.write_all(format!("{SSH_IDENT}\r\n").as_bytes()).await;
        let _ = sock.shutdown().await;
    } else if !kill.is_killed() {
        let stream = KillableStream::new(sock, kill.clone());
        let handler = crate::ssh::Conn::new(shared.clone(), conn_id, kill.clone());
        match russh::server::run_stream(cfg, stream, handler).await {
            Ok(running) => {
                if let Err(e) = running.await {
                    tracing::debug!(conn = conn_id, error = %e, "session ended");
                }
            }
            Err(e) => tracing::debug!(conn = conn_id, error = %e, "handshake failed"),
        }
    }
    // Ends hung exec tasks of this connection.
    kill.kill();
    lock(&shared.conns).remove(&conn_id);
    shared.logins.gone(conn_id);
}

pub(crate) async fn reboot(shared: &Arc<Shared>, downtime: Duration) {
    let generation = shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
    tracing::info!(?downtime, "rds-sim rebooting");
    shared.up.send_replace(false);
    let task = lock(&shared.accept_task).take();
    if let Some(t) = task {
        t.abort();
        let _ = t.await;
    }
    shared.kill_all();
    shared.export.withdraw();
    let s = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(downtime).await;
        if s.stopped.load(Ordering::SeqCst) || s.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        s.reload();
        let addr = s.addr();
        match bind(addr).await {
            Ok(listener) => {
                let task = tokio::spawn(accept_loop(s.clone(), listener));
                *lock(&s.accept_task) = Some(task);
                s.up.send_replace(true);
                tracing::info!(%addr, "rds-sim back after reboot");
            }
            Err(e) => tracing::error!(error = %e, "cannot listen again after reboot"),
        }
    });
}

pub(crate) async fn wait_up(shared: &Arc<Shared>, timeout: Duration) -> bool {
    let mut rx = shared.up.subscribe();
    tokio::time::timeout(timeout, rx.wait_for(|up| *up))
        .await
        .is_ok_and(|r| r.is_ok())
}

pub(crate) async fn stop(shared: &Arc<Shared>) {
    shared.stopped.store(true, Ordering::SeqCst);
    shared.generation.fetch_add(1, Ordering::SeqCst);
    shared.up.send_replace(false);
    let task = lock(&shared.accept_task).take();
    if let Some(t) = task {
        t.abort();
        let _ = t.await;
    }
    shared.kill_all();
    shared.persist.flush();
}
