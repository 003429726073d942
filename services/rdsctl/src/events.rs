//! `rdsctl events --state-dir DIR [--json]` (docs/local-mode.md §4): one line per
//! event of `DIR/events.jsonl`, oldest first (the sink only appends, so file
//! order is time order):
//! `<time> <type> <reason> <pvc_namespace>/<pvc_name> <volume_id> <message>`,
//! or the raw JSON lines with `--json`.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::Deserialize;

use crate::error::{CtlError, Result};

/// One sink line; keys as event-service writes them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Event {
    pub time: String,
    pub reason: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub message: String,
    pub volume_id: String,
    #[serde(default)]
    pub pvc_namespace: String,
    #[serde(default)]
    pub pvc_name: String,
    #[serde(default)]
    pub node_id: String,
    #[serde(default)]
    pub trace_id: String,
}

impl Event {
    /// The text line of docs/local-mode.md §4.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {}/{} {} {}",
            self.time,
            self.type_,
            self.reason,
            self.pvc_namespace,
            self.pvc_name,
            self.volume_id,
            self.message
        )
    }
}

/// The sink path of a state dir.
pub fn sink_path(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("events.jsonl")
}

/// Reads every event; a line that is not an event is reported with its
/// number and skipped (a torn last line must not hide the rest).
/// One line of the sink: its number, the parsed event (or why not) and the raw text.
pub type SinkLine = (usize, std::result::Result<Event, String>, String);

pub fn read(path: &Path) -> Result<Vec<SinkLine>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CtlError::io(path, e)),
    };
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| CtlError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Event>(&line).map_err(|e| e.to_string());
        out.push((i + 1, parsed, line));
    }
    Ok(out)
}

pub fn run(state_dir: &Path, format: crate::output::Format) -> Result<()> {
    use crate::output::Format;
    if !state_dir.is_dir() {
        return Err(CtlError::Usage(format!(
            "--state-dir {}: no such directory",
            state_dir.display()
        )));
    }
    let path = sink_path(state_dir);
    let lines = read(&path)?;
    if format == Format::Yaml {
        // One YAML list of the events as written (skipped lines reported).
        let mut all = Vec::new();
        for (n, parsed, raw) in lines {
            match parsed
                .ok()
                .and_then(|_| serde_json::from_str::<serde_json::Value>(&raw).ok())
            {
                Some(v) => all.push(v),
                None => eprintln!("rdsctl: {}:{n}: not an event; skipped", path.display()),
            }
        }
        return crate::output::print(format, &all, String::new);
    }
    let json = format == Format::Json;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (n, parsed, raw) in lines {
        let text = match (json, parsed) {
            (true, Ok(_)) => raw,
            (false, Ok(ev)) => ev.line(),
            (_, Err(why)) => {
                eprintln!(
                    "rdsctl: {}:{n}: not an event ({why}); skipped",
                    path.display()
                );
                continue;
            }
        };
        if writeln!(out, "{text}").is_err() {
            // stdout closed (e.g. `| head`): stop quietly.
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn lines_follow_the_contract_and_bad_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = sink_path(dir.path());
        std::fs::write(
            &p,
            concat!(
                r#"{"time":"2026-01-01T00:00:00Z","reason":"VolumeAttached","type":"Normal","message":"Volume attached to node n1","volume_id":"pvc-1","pvc_namespace":"default","pvc_name":"data","node_id":"n1","trace_id":"abc"}"#,
                "\n",
                "{torn\n",
                r#"{"time":"2026-01-01T00:00:01Z","reason":"MountFailure","type":"Warning","message":"x y","volume_id":"pvc-2","pvc_namespace":"","pvc_name":"","node_id":"","trace_id":""}"#,
                "\n"
            ),
        )
        .unwrap();
        let evs = read(&p).unwrap();
        assert_eq!(evs.len(), 3);
        let ok: Vec<String> = evs
            .iter()
            .filter_map(|(_, e, _)| e.as_ref().ok().map(Event::line))
            .collect();
        assert_eq!(
            ok,
            vec![
                "2026-01-01T00:00:00Z Normal VolumeAttached default/data pvc-1 Volume attached to node n1",
                "2026-01-01T00:00:01Z Warning MountFailure / pvc-2 x y",
            ]
        );
        assert_eq!(evs[1].0, 2);
        assert!(evs[1].1.is_err());
    }

    #[test]
    fn a_missing_sink_is_no_events() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&sink_path(dir.path())).unwrap().is_empty());
    }
}
