//! rds-sim: a simulated MikroTik ROSE Data Server (RouterOS 7 + rose-storage) that speaks SSH
//! and answers the RouterOS console commands of docs/routeros.md §6 with real semantics, byte-exact
//! output (rendered by `rds-routeros`), persistent state and injectable faults.
//!
//! ```no_run
//! # async fn demo(keys: Vec<russh::keys::PublicKey>) -> Result<(), rds_sim::SimError> {
//! let sim = rds_sim::Sim::start(rds_sim::SimConfig::new("/tmp/sim", keys)).await?;
//! println!("listening on {} ({})", sim.addr(), sim.host_key_fingerprint());
//! sim.stop().await;
//! # Ok(()) }
//! ```

pub mod cli;
mod cmdlog;
mod config;
mod console;
mod control;
mod diskindex;
mod error;
mod export;
mod faults;
mod fileindex;
mod hostkey;
mod model;
mod persist;
mod render;
mod server;
mod setup;
mod ssh;
mod store;
mod stream;
mod subvol;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use config::{
    Behaviour, CopyFromMode, CutRule, DEFAULT_POOL_SIZE, DuplicateNqnMode, EmptyFindMode,
    ExistingFileMode, ExitStatusMode, FlagLayout, LiveFileRemoveMode, LiveSnapshotMode,
    MissingParentMode, NumberingMode, PoolFilesystem, SessionLimitMode, SetFileSizeMode, SimConfig,
    SlotLimit, SpaceMode, Texts,
};
pub use control::{FaultRuleJson, serve_control};
pub use error::SimError;
pub use export::{AllowListSwitches, DEFAULT_CONFIGFS_ROOT, MODEL_MARK, NvmetExportConfig};
pub use faults::{FaultAction, FaultRule, FaultStatus, Faults, Garble};
pub use hostkey::{fingerprint, load_authorized_keys, load_or_generate_host_key};
pub use model::DiskSummary;
pub use setup::SetupMenus;

/// Entry point.
pub struct Sim;

impl Sim {
    /// Load or create the state in `cfg.state_dir`, bind `cfg.listen` and serve SSH.
    pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
        let shared = server::Shared::open(cfg)?;
        let shared = Arc::new(shared);
        server::start(shared.clone()).await?;
        Ok(SimHandle { shared })
    }
}

/// A running simulator. Dropping it does not stop it; call [`SimHandle::stop`].
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<server::Shared>,
}

impl SimHandle {
    /// The bound address (stable across [`SimHandle::reboot`]).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr()
    }

    /// The host public key clients should pin.
    pub fn host_public_key(&self) -> russh::keys::PublicKey {
        self.shared.host_key.public_key().clone()
    }

    /// `SHA256:…` fingerprint of the host key.
    pub fn host_key_fingerprint(&self) -> String {
        fingerprint(self.shared.host_key.public_key())
    }

    /// Fault control handle.
    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// Path of `commands.log`.
    pub fn commands_log(&self) -> PathBuf {
        self.shared.log.path().to_path_buf()
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.shared.store.root().to_path_buf()
    }

    /// File disks, for test assertions.
    pub fn disks(&self) -> Vec<DiskSummary> {
        self.shared.disks()
    }

    /// Runs one console line in-process (no SSH, not logged, no faults):
    /// seeds state for tests and benchmarks. Blocking (file I/O).
    pub fn console(&self, line: &str) -> String {
        self.shared.run_line(line, self.shared.layout(None)).output
    }

    /// SSH channels open right now over all connections (a client that
    /// closes what it opens brings this back to 0).
    pub fn open_channels(&self) -> u32 {
        self.shared
            .open_channels
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether a `/file` exists (`/storage-pool/x/y.img` or `storage-pool/x/y.img`).
    pub fn file_exists(&self, routeros_path: &str) -> bool {
        self.shared.store.exists(routeros_path)
    }

    /// The host path backing a RouterOS path (for node-side fakes: loop devices).
    pub fn host_path(&self, routeros_path: &str) -> Option<PathBuf> {
        self.shared.store.host_path(routeros_path)
    }

    /// Simulate a reboot: drop every session, refuse TCP for `downtime`, then come back with
    /// the persisted state. Returns once the simulator is down.
    pub async fn reboot(&self, downtime: Duration) {
        server::reboot(&self.shared, downtime).await;
    }

    /// Wait until the simulator accepts connections (after a reboot), at most `timeout`.
    pub async fn wait_up(&self, timeout: Duration) -> bool {
        server::wait_up(&self.shared, timeout).await
    }

    /// Stop serving and close every connection.
    pub async fn stop(self) {
        server::stop(&self.shared).await;
    }
}
