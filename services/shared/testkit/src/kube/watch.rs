//! `?watch=true`: newline-delimited WatchEvents from a resourceVersion, as
//! the API server streams them. A resume from a compacted resourceVersion,
//! a watch that falls behind, or [`super::FakeApi::expire_watches`] answers
//! an ERROR event with a 410 Status, which makes a client re-list. With
//! `allowWatchBookmarks`, BOOKMARK events carry the latest resourceVersion
//! (periodically and on [`super::FakeApi::send_bookmarks`]);
//! `sendInitialEvents=true` streams the current objects first and ends them
//! with the `k8s.io/initial-events-end` bookmark; `timeoutSeconds` ends the
//! stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::Inner;
use super::resources::ResourceType;
use super::server::{Selector, body_of_lines, json_response, shape, status_body};
use super::store::Change;

fn line(kind: &str, object: &Value) -> Vec<u8> {
    let mut b = json!({"type": kind, "object": object})
        .to_string()
        .into_bytes();
    b.push(b'\n');
    b
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Vec<u8> {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"apiVersion": rt.api_version, "kind": rt.kind, "metadata": meta}),
    )
}

fn gone(message: &str) -> Vec<u8> {
    let mut s = status_body(410, "Expired", message);
    s["code"] = json!(410);
    line("ERROR", &s)
}

/// What the query asks of one watch.
struct Params {
    sel: Selector,
    /// Resume after this resourceVersion (`None`: from the current objects).
    from: Option<u64>,
    bookmarks: bool,
    initial_events: bool,
    timeout: Option<Duration>,
    meta_only: bool,
}

impl Params {
    /// `None` when resourceVersion is not a number.
    fn parse(q: &BTreeMap<String, String>, meta_only: bool) -> Option<Params> {
        let from: Option<u64> = q
            .get("resourceVersion")
            .filter(|v| !v.is_empty() && *v != "0")
            .and_then(|v| v.parse().ok());
        if q.contains_key("resourceVersion")
            && from.is_none()
            && !matches!(q.get("resourceVersion").map(String::as_str), Some("" | "0"))
        {
            return None;
        }
        let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
        Some(Params {
            sel: Selector::parse(q),
            from,
            bookmarks: flag("allowWatchBookmarks"),
            initial_events: flag("sendInitialEvents"),
            timeout: q
                .get("timeoutSeconds")
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs),
            meta_only,
        })
    }
}

/// The changes one watch is subscribed to, taken with its first lines.
struct Feed {
    /// Lines sent before any live change.
    head: Vec<Vec<u8>>,
    /// The resourceVersion the head reaches; `u64::MAX` after a 410.
    last: u64,
    live: broadcast::Receiver<Change>,
    expired: tokio::sync::watch::Receiver<u64>,
    bookmark_now: tokio::sync::watch::Receiver<u64>,
}

/// Whether a change is of this watch's resource and namespace.
fn is_ours(rt: &ResourceType, namespace: &str, c: &Change) -> bool {
    c.api_version == rt.api_version
        && c.plural == rt.plural
        && (namespace.is_empty() || c.namespace == namespace)
}

/// Subscribes and snapshots under the store lock: nothing falls in between.
fn subscribe(inner: &Inner, rt: &ResourceType, namespace: &str, p: &Params) -> Feed {
    let db = inner.db();
    let mut head: Vec<Vec<u8>> = Vec::new();
    let mut last = db.rv;
    match p.from {
        Some(rv) if !p.initial_events => match db.since(rv) {
            Ok(changes) => {
                for c in changes.iter().filter(|c| is_ours(rt, namespace, c)) {
                    if p.sel.matches(&c.object) {
                        head.push(line(c.kind, &shape(&c.object, p.meta_only)));
                    }
                }
            }
            Err(()) => {
                head.push(gone(&format!(
                    "too old resource version: {rv} ({})",
                    db.compacted
                )));
                last = u64::MAX;
            }
        },
        _ => {
            // No resourceVersion (or "0", or a streaming list): the
            // current objects first, as ADDED.
            for o in db.list(rt, namespace).iter().filter(|o| p.sel.matches(o)) {
                head.push(line("ADDED", &shape(o, p.meta_only)));
            }
            if p.initial_events && p.bookmarks {
                head.push(bookmark(rt, db.rv, true));
            }
        }
    }
    Feed {
        head,
        last,
        live: inner.changes.subscribe(),
        expired: inner.expire.subscribe(),
        bookmark_now: inner.bookmark_now.subscribe(),
    }
}

pub(crate) fn start(
    inner: Arc<Inner>,
    rt: ResourceType,
    namespace: String,
    q: &BTreeMap<String, String>,
    meta_only: bool,
) -> Response {
    let Some(p) = Params::parse(q, meta_only) else {
        return json_response(
            400,
            &status_body(400, "BadRequest", "resourceVersion is not a number"),
        );
    };
    let feed = subscribe(&inner, &rt, &namespace, &p);
    let every = inner.bookmark_interval();
    let (tx, rx) = mpsc::channel::<Vec<u8>>(256);
    tokio::spawn(stream(tx, feed, p, (rt, namespace), every));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body_of_lines(rx))
        .unwrap_or_else(|_| json_response(500, &status_body(500, "InternalError", "watch")))
}

/// Sends the head, then live changes and bookmarks until the client goes,
/// the timeout passes, the watch falls behind or a test expires it.
async fn stream(
    tx: mpsc::Sender<Vec<u8>>,
    feed: Feed,
    p: Params,
    (rt, namespace): (ResourceType, String),
    every: Option<Duration>,
) {
    let Feed {
        head,
        last,
        mut live,
        mut expired,
        mut bookmark_now,
    } = feed;
    for l in head {
        if tx.send(l).await.is_err() {
            return;
        }
    }
    if last == u64::MAX {
        return;
    }
    let mut seen = last;
    let end = p.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut tick = tokio::time::interval(every.unwrap_or(Duration::from_secs(3600)));
    tick.reset();
    expired.borrow_and_update();
    bookmark_now.borrow_and_update();
    loop {
        let out = tokio::select! {
            c = live.recv() => match c {
                Ok(c) => {
                    if c.rv <= seen {
                        continue;
                    }
                    seen = c.rv;
                    if !is_ours(&rt, &namespace, &c) || !p.sel.matches(&c.object) {
                        continue;
                    }
                    line(c.kind, &shape(&c.object, p.meta_only))
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.send(gone("the watch fell behind")).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            r = expired.changed() => {
                if r.is_ok() {
                    let _ = tx.send(gone("watch expired by the test")).await;
                }
                return;
            }
            r = bookmark_now.changed() => {
                if r.is_err() || !p.bookmarks {
                    continue;
                }
                bookmark(&rt, seen, false)
            }
            _ = tick.tick(), if p.bookmarks && every.is_some() => bookmark(&rt, seen, false),
            _ = async { match end {
                Some(end) => tokio::time::sleep_until(end).await,
                None => std::future::pending().await,
            } } => return,
            _ = tx.closed() => return,
        };
        if tx.send(out).await.is_err() {
            return;
        }
    }
}
