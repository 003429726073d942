//! `<state-dir>/commands.log`: one line per received command —
//! `<RFC 3339 time> conn=<n> exit=<status|none|hang|dropped> latency_ms=<n> cmd=<command>`.
//! The command comes last so it may contain spaces; CR/LF in it are written as `\r`/`\n`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub(crate) struct CommandLog {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl CommandLog {
    pub(crate) fn open(path: PathBuf) -> Result<Self, crate::SimError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| crate::SimError::io("opening", &path, e))?;
        Ok(Self {
            path,
            file: Mutex::new(Some(file)),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn record(
        &self,
        conn: u64,
        command: &str,
        exit: &str,
        latency: std::time::Duration,
    ) {
        let cmd = command.replace('\r', "\\r").replace('\n', "\\n");
        let line = format!(
            "{} conn={conn} exit={exit} latency_ms={} cmd={cmd}\n",
            jiff::Timestamp::now(),
            latency.as_millis()
        );
        let mut g = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = g.as_mut()
            && let Err(e) = f.write_all(line.as_bytes())
        {
            tracing::warn!(error = %e, "cannot append to commands.log");
        }
    }
}
