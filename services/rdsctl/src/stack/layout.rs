//! The state directory of a local stack (docs/local-mode.md §2):
//!
//! ```text
//! DIR/csi.sock            CSI endpoint (default)
//! DIR/sim/                rds-sim state: state.json, files/, commands.log, host_key
//! DIR/attachments/        attachment-service file store
//! DIR/events.jsonl        event sink
//! DIR/node/               node-role state
//! DIR/keys/admin(.pub)    the SSH client key rds-agent logs in with (user admin)
//! DIR/run/                bus sockets (agent.sock, attachment.sock, events.sock),
//!                         <service>.pid, rdsctl.pid, endpoints.json
//! DIR/logs/               child logs (demo only; `up` logs to stderr)
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CtlError, Result};

/// Longest unix socket path Linux accepts (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Makes `p` absolute (relative to the working directory) without requiring it to exist.
pub fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| CtlError::io(p, e))
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Result<Layout> {
        Ok(Layout {
            dir: absolute(dir)?,
        })
    }

    pub fn sim_dir(&self) -> PathBuf {
        self.dir.join("sim")
    }
    pub fn sim_files(&self) -> PathBuf {
        self.sim_dir().join("files")
    }
    pub fn sim_host_key(&self) -> PathBuf {
        self.sim_dir().join("host_key")
    }
    pub fn attachments_dir(&self) -> PathBuf {
        self.dir.join("attachments")
    }
    pub fn events_file(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }
    pub fn node_dir(&self) -> PathBuf {
        self.dir.join("node")
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }
    pub fn client_key(&self) -> PathBuf {
        self.keys_dir().join("admin")
    }
    pub fn client_pub(&self) -> PathBuf {
        self.keys_dir().join("admin.pub")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn default_csi_endpoint(&self) -> String {
        format!("unix://{}", self.dir.join("csi.sock").display())
    }
    pub fn socket(&self, name: &str) -> String {
        format!(
            "unix://{}",
            self.run_dir().join(format!("{name}.sock")).display()
        )
    }
    pub fn pid_file(&self, service: &str) -> PathBuf {
        self.run_dir().join(format!("{service}.pid"))
    }
    pub fn endpoints_file(&self) -> PathBuf {
        self.run_dir().join("endpoints.json")
    }

    /// Creates every directory (keys private to the user).
    pub fn create(&self) -> Result<()> {
        self.check_socket_paths()?;
        for d in [
            self.dir.clone(),
            self.sim_dir(),
            self.attachments_dir(),
            self.node_dir(),
            self.keys_dir(),
            self.run_dir(),
        ] {
            std::fs::create_dir_all(&d).map_err(|e| CtlError::io(&d, e))?;
        }
        use std::os::unix::fs::PermissionsExt;
        let keys = self.keys_dir();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| CtlError::io(&keys, e))?;
        Ok(())
    }
}

impl Layout {
    /// Sockets live in DIR/run; a too-long path would fail late and obscurely in bind().
    pub fn check_socket_paths(&self) -> Result<()> {
        let longest = self.run_dir().join("attachment.sock");
        if longest.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(CtlError::Usage(format!(
                "--state-dir {}: too long for unix sockets ({} > {MAX_SOCKET_PATH} bytes); use a shorter path",
                self.dir.display(),
                longest.as_os_str().len()
            )));
        }
        Ok(())
    }
}

/// Addresses of a running stack, written to DIR/run/endpoints.json so other
/// rdsctl commands (and people) can find them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoints {
    pub csi: String,
    pub node_id: String,
    pub agent: String,
    pub attachment: String,
    pub events: String,
    /// rds-sim SSH, host:port.
    pub sim_ssh: String,
    /// rds-sim control (HTTP/JSON), host:port.
    pub sim_control: String,
    /// The pinned host key fingerprint of the sim.
    pub sim_host_key_fingerprint: String,
    /// `/metrics` of each service that serves one: service name → host:port
    /// on loopback.
    #[serde(default)]
    pub metrics: std::collections::BTreeMap<String, String>,
}

impl Endpoints {
    pub fn write(&self, layout: &Layout) -> Result<()> {
        let path = layout.endpoints_file();
        let text =
            serde_json::to_string_pretty(self).map_err(|e| CtlError::Stack(e.to_string()))?;
        write_atomic(&path, text.as_bytes())
    }

    pub fn read(layout: &Layout) -> Result<Endpoints> {
        let path = layout.endpoints_file();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CtlError::Usage(format!(
                    "{} does not exist: is `rdsctl up --state-dir {}` running?",
                    path.display(),
                    layout.dir.display()
                ))
            } else {
                CtlError::io(&path, e)
            }
        })?;
        serde_json::from_str(&text).map_err(|e| CtlError::Stack(format!("{}: {e}", path.display())))
    }
}

/// Write to a temp file, fsync, rename: a reader never sees half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| CtlError::io(&tmp, e))?;
    f.write_all(data).map_err(|e| CtlError::io(&tmp, e))?;
    f.sync_all().map_err(|e| CtlError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| CtlError::io(path, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn layout_matches_the_contract() {
        let l = Layout::new(Path::new("/tmp/x")).unwrap();
        assert_eq!(l.sim_dir(), Path::new("/tmp/x/sim"));
        assert_eq!(l.sim_files(), Path::new("/tmp/x/sim/files"));
        assert_eq!(l.attachments_dir(), Path::new("/tmp/x/attachments"));
        assert_eq!(l.events_file(), Path::new("/tmp/x/events.jsonl"));
        assert_eq!(l.node_dir(), Path::new("/tmp/x/node"));
        assert_eq!(l.default_csi_endpoint(), "unix:///tmp/x/csi.sock");
        assert_eq!(l.socket("agent"), "unix:///tmp/x/run/agent.sock");
    }

    #[test]
    fn endpoints_round_trip_and_long_dirs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(dir.path()).unwrap();
        l.create().unwrap();
        let e = Endpoints {
            csi: l.default_csi_endpoint(),
            node_id: "n1".into(),
            agent: l.socket("agent"),
            attachment: l.socket("attachment"),
            events: l.socket("events"),
            sim_ssh: "127.0.0.1:1".into(),
            sim_control: "127.0.0.1:2".into(),
            sim_host_key_fingerprint: "SHA256:x".into(),
            metrics: [("rds-agent".to_owned(), "127.0.0.1:3".to_owned())].into(),
        };
        e.write(&l).unwrap();
        assert_eq!(Endpoints::read(&l).unwrap(), e);
        let long = dir.path().join("a".repeat(120));
        assert!(Layout::new(&long).unwrap().create().is_err());
    }
}
