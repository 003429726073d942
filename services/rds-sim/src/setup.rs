//! The box's setup that `rdsctl doctor` reads and rds-agent never changes:
//! installed packages, the SSH service's `max-sessions`, and who is logged in
//! (one entry per authenticated SSH connection, like RouterOS's `/user active`).
//! The print layouts are assumptions (README, "Setup menus").

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Switches of the setup menus (`Behaviour::setup`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SetupMenus {
    /// `/ip service` ssh `max-sessions` (RouterOS default 20). Listed, not
    /// enforced: the per-connection channel limit is `session_limit`.
    pub ssh_max_sessions: u32,
    /// Whether `/system package` lists `rose-storage` (the RDS's storage package).
    pub rose_storage: bool,
}

impl Default for SetupMenus {
    fn default() -> Self {
        SetupMenus {
            ssh_max_sessions: 20,
            rose_storage: true,
        }
    }
}

/// One logged-in SSH connection.
#[derive(Clone, Debug)]
pub(crate) struct Login {
    pub user: String,
    pub address: String,
    /// Unix seconds of the login.
    pub when: i64,
}

/// Connections by id: the peer is noted at connect, the login at auth.
#[derive(Default)]
pub(crate) struct Logins {
    peers: Mutex<BTreeMap<u64, SocketAddr>>,
    active: Mutex<BTreeMap<u64, Login>>,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Logins {
    pub(crate) fn connected(&self, conn: u64, peer: SocketAddr) {
        if let Ok(mut p) = self.peers.lock() {
            p.insert(conn, peer);
        }
    }

    pub(crate) fn authenticated(&self, conn: u64, user: &str) {
        let address = self
            .peers
            .lock()
            .ok()
            .and_then(|p| p.get(&conn).map(|a| a.ip().to_string()))
            .unwrap_or_default();
        if let Ok(mut a) = self.active.lock() {
            a.insert(
                conn,
                Login {
                    user: user.to_owned(),
                    address,
                    when: now_unix(),
                },
            );
        }
    }

    pub(crate) fn gone(&self, conn: u64) {
        if let Ok(mut p) = self.peers.lock() {
            p.remove(&conn);
        }
        if let Ok(mut a) = self.active.lock() {
            a.remove(&conn);
        }
    }

    /// Logged-in connections, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<Login> {
        self.active
            .lock()
            .map(|a| a.values().cloned().collect())
            .unwrap_or_default()
    }
}
