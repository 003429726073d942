//! Local mode sink (docs/local-mode.md §3): every event appended to one file as one
//! JSON object per line, keys exactly `time`, `reason`, `type`, `message`,
//! `volume_id`, `pvc_namespace`, `pvc_name`, `node_id`, `trace_id`.
//!
//! The file is opened with O_APPEND (never truncated, so restarts append)
//! and each line goes out in one `write` of the whole line from an unbuffered
//! `File`, so concurrent writers never interleave within a line and nothing
//! sits in a userspace buffer.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;

use super::{Delivered, Sink};
use crate::error::Error;
use crate::validate::Pending;

pub struct FileSink {
    file: Arc<std::fs::File>,
    path: PathBuf,
}

/// One line of the sink, in the key order of docs/local-mode.md §3.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    reason: &'a str,
    #[serde(rename = "type")]
    type_: &'a str,
    message: &'a str,
    volume_id: &'a str,
    pvc_namespace: &'a str,
    pvc_name: &'a str,
    node_id: &'a str,
    trace_id: &'a str,
}

impl FileSink {
    /// Opens (creating it and its directory if needed) `path` for appending.
    pub fn open(path: &Path) -> Result<FileSink, Error> {
        let open_err = |source| Error::SinkOpen {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(open_err)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(open_err)?;
        Ok(FileSink {
            file: Arc::new(file),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn render(ev: &Pending) -> Vec<u8> {
        let (ns, name) = ev
            .pvc
            .as_ref()
            .map_or(("", ""), |p| (p.namespace.as_str(), p.name.as_str()));
        let line = Line {
            time: ev.time.to_string(),
            reason: ev.rendered.reason,
            type_: ev.rendered.type_.as_str(),
            message: &ev.rendered.message,
            volume_id: ev.volume_id.as_str(),
            pvc_namespace: ns,
            pvc_name: name,
            node_id: ev.node_id.as_ref().map_or("", |n| n.as_str()),
            trace_id: &ev.trace_id,
        };
        // Serialising plain strings cannot fail; an empty object is still a line.
        let mut buf = serde_json::to_vec(&line).unwrap_or_else(|_| b"{}".to_vec());
        buf.push(b'\n');
        buf
    }
}

impl Sink for FileSink {
    fn deliver<'a>(&'a self, ev: &'a Pending) -> BoxFuture<'a, Result<Delivered, Error>> {
        let buf = Self::render(ev);
        let file = self.file.clone();
        async move {
            tokio::task::spawn_blocking(move || (&*file).write_all(&buf))
                .await
                .map_err(|e| Error::SinkWrite(std::io::Error::other(e.to_string())))?
                .map_err(Error::SinkWrite)?;
            Ok(Delivered::Posted {
                on: self.path.display().to_string(),
            })
        }
        .boxed()
    }
}
