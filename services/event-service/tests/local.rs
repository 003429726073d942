//! event-service in local mode, through a real gRPC client: the catalogue,
//! the JSON-lines sink, trace ids, validation, queue overflow, metrics, and
//! Post latency.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_service::sink::Sink;
use event_service::sink::file::FileSink;
use event_service::validate::Pending;
use event_service::{Config, DropCause, Running};
use futures::FutureExt;
use futures::future::BoxFuture;
use rds_proto::event::events_client::EventsClient;
use rds_proto::event::post_request::Event as Typed;
use rds_proto::event::*;
use serde_json::Value;
use tracing::Instrument;

type Client = EventsClient<rds_bus::BusChannel>;

// Helpers are marked `cfg(test)` so clippy treats them as test code
// (unwrap allowed by clippy.toml), like the test functions.
#[cfg(test)]
async fn start_local(path: &Path, tweak: impl FnOnce(&mut Config)) -> Running {
    let mut cfg = Config::file_sink(path);
    tweak(&mut cfg);
    let listener = rds_bus::Listener::bind("127.0.0.1:0").await.unwrap();
    let settings = cfg.validate().unwrap();
    event_service::start(settings, listener, rds_bus::Shutdown::new())
        .await
        .unwrap()
}

#[cfg(test)]
fn client(running: &Running) -> Client {
    EventsClient::new(rds_bus::connect(running.endpoint(), Default::default()).unwrap())
}

fn req(vol: &str, node: &str, pvc: Option<(&str, &str)>, event: Typed) -> PostRequest {
    PostRequest {
        volume_id: vol.into(),
        node_id: node.into(),
        pvc: pvc.map(|(ns, n)| rds_proto::common::PvcRef {
            namespace: ns.into(),
            name: n.into(),
        }),
        event: Some(event),
    }
}

#[cfg(test)]
fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Polls (10 ms × 500) until the sink has `n` lines.
async fn wait_lines(path: &Path, n: usize) -> Vec<Value> {
    for _ in 0..500 {
        let lines = read_lines(path);
        if lines.len() >= n {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    read_lines(path)
}

/// Every entry of the catalogue (docs/csi.md §9.2), with the exact expected text.
// A data table: one entry per event type, kept whole so it reads as the catalogue.
#[allow(clippy::too_many_lines)]
fn catalogue_cases() -> Vec<(PostRequest, &'static str, &'static str, &'static str)> {
    let v = "pvc-1a2b";
    vec![
        (
            req(
                v,
                "",
                None,
                Typed::VolumeAttached(VolumeAttached {
                    node_id: "worker-1".into(),
                    duration_ms: 1234,
                }),
            ),
            "VolumeAttached",
            "Normal",
            "[pvc-1a2b]: Attached to node worker-1 (duration: 1.234s)",
        ),
        (
            req(
                v,
                "",
                None,
                Typed::VolumeAttached(VolumeAttached {
                    node_id: "worker-1".into(),
                    duration_ms: 50,
                }),
            ),
            "VolumeAttached",
            "Normal",
            "[pvc-1a2b]: Attached to node worker-1 (duration: 50ms)",
        ),
        (
            req(
                v,
                "",
                None,
                Typed::VolumeAttached(VolumeAttached {
                    node_id: "worker-1".into(),
                    duration_ms: 61_500,
                }),
            ),
            "VolumeAttached",
            "Normal",
            "[pvc-1a2b]: Attached to node worker-1 (duration: 1m1.5s)",
        ),
        (
            req(
                v,
                "",
                None,
                Typed::VolumeAttached(VolumeAttached {
                    node_id: "worker-1".into(),
                    duration_ms: 0,
                }),
            ),
            "VolumeAttached",
            "Normal",
            "[pvc-1a2b]: Attached to node worker-1 (duration: 0s)",
        ),
        (
            req(
                v,
                "",
                None,
                Typed::VolumeDetached(VolumeDetached {
                    node_id: "worker-1".into(),
                }),
            ),
            "VolumeDetached",
            "Normal",
            "[pvc-1a2b]: Detached from node worker-1",
        ),
        (
            req(
                v,
                "",
                None,
                Typed::StaleAttachmentCleared(StaleAttachmentCleared {
                    node_id: "worker-2".into(),
                }),
            ),
            "StaleAttachmentCleared",
            "Normal",
            "[pvc-1a2b]: Cleared stale attachment from deleted node worker-2",
        ),
        (
            req(
                v,
                "",
                None,
                Typed::MigrationStarted(MigrationStarted {
                    source_node: "worker-1".into(),
                    target_node: "worker-2".into(),
                    timeout_seconds: 300,
                }),
            ),
            "MigrationStarted",
            "Normal",
            "[pvc-1a2b]: KubeVirt live migration started - source: worker-1, target: worker-2, timeout: 5m0s",
        ),
        (
            req(
                v,
                "",
                None,
                Typed::MigrationCompleted(MigrationCompleted {
                    source_node: "worker-1".into(),
                    target_node: "worker-2".into(),
                    duration_ms: 45_400,
                }),
            ),
            "MigrationCompleted",
            "Normal",
            "[pvc-1a2b]: KubeVirt live migration completed - source: worker-1 -> target: worker-2 (duration: 45s)",
        ),
        (
            req(
                v,
                "",
                None,
                Typed::MigrationFailed(MigrationFailed {
                    source_node: "worker-1".into(),
                    target_node: "worker-2".into(),
                    reason: "timeout".into(),
                    elapsed_ms: 300_499,
                }),
            ),
            "MigrationFailed",
            "Warning",
            "[pvc-1a2b]: KubeVirt live migration failed - source: worker-1, attempted target: worker-2, reason: timeout, elapsed: 5m0s",
        ),
        (
            req(
                v,
                "",
                None,
                Typed::AttachmentConflict(AttachmentConflict {
                    requested_node: "worker-2".into(),
                    attached_node: "worker-1".into(),
                }),
            ),
            "AttachmentConflict",
            "Warning",
            "[pvc-1a2b]: Attachment to node worker-2 rejected - volume already attached to node worker-1. Delete the pod on worker-1 to release the volume.",
        ),
        (
            req(
                v,
                "worker-1",
                None,
                Typed::MountFailure(MountFailure {
                    error: "mount: wrong fs type".into(),
                }),
            ),
            "MountFailure",
            "Warning",
            "[pvc-1a2b] on [worker-1]: stage volume failed: mount: wrong fs type",
        ),
        (
            req(
                v,
                "worker-1",
                None,
                Typed::RecoveryFailed(RecoveryFailed {
                    attempts: 3,
                    error: "device gone".into(),
                }),
            ),
            "RecoveryFailed",
            "Warning",
            "[pvc-1a2b] on [worker-1]: Recovery failed after 3 attempts: device gone",
        ),
        (
            req(
                v,
                "worker-1",
                None,
                Typed::StaleMountDetected(StaleMountDetected {
                    old_device: "/dev/nvme1n1".into(),
                    new_device: "/dev/nvme2n1".into(),
                }),
            ),
            "StaleMountDetected",
            "Normal",
            "[pvc-1a2b] on [worker-1]: Stale mount detected - old device: /dev/nvme1n1, new device: /dev/nvme2n1",
        ),
        (
            req(
                v,
                "worker-1",
                None,
                Typed::ConnectionFailure(ConnectionFailure {
                    address: "10.0.0.5:4420".into(),
                    error: "connection refused".into(),
                }),
            ),
            "ConnectionFailure",
            "Warning",
            "[pvc-1a2b] on [worker-1]: Connection to 10.0.0.5:4420 failed: connection refused",
        ),
        (
            req(
                v,
                "worker-1",
                None,
                Typed::ConnectionRecovery(ConnectionRecovery {
                    address: "10.0.0.5:4420".into(),
                    attempts: 4,
                }),
            ),
            "ConnectionRecovery",
            "Normal",
            "[pvc-1a2b] on [worker-1]: Connection to 10.0.0.5:4420 recovered after 4 attempts",
        ),
        (
            req(
                v,
                "",
                None,
                Typed::StorageFenceRepaired(StorageFenceRepaired {
                    found: "".into(),
                    expected: "nqn.2014-08.org.nvmexpress:uuid:a".into(),
                }),
            ),
            "StorageFenceRepaired",
            "Warning",
            "[pvc-1a2b]: storage fence drift repaired - the RDS admitted [], set back to [nqn.2014-08.org.nvmexpress:uuid:a]",
        ),
        (
            req(
                v,
                "",
                None,
                Typed::OrphanFileRefused(OrphanFileRefused {
                    file_path: "/storage-pool/metal-csi/pvc-1a2b.img".into(),
                    inspect_command:
                        "/file print detail where name=\"storage-pool/metal-csi/pvc-1a2b.img\""
                            .into(),
                }),
            ),
            "OrphanFileRefused",
            "Warning",
            "[pvc-1a2b]: backing file /storage-pool/metal-csi/pvc-1a2b.img exists without a disk entry; not overwritten - inspect it with: /file print detail where name=\"storage-pool/metal-csi/pvc-1a2b.img\"",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_catalogue_entry_renders_exactly_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let running = start_local(&path, |_| {}).await;
    let mut c = client(&running);
    let cases = catalogue_cases();
    // Every reason of the catalogue is covered.
    for reason in event_service::catalogue::REASONS {
        assert!(cases.iter().any(|c| c.1 == reason), "{reason} not covered");
    }
    for (r, reason, type_, message) in &cases {
        // The pure catalogue ...
        let rendered = event_service::message_for(r).unwrap();
        assert_eq!(
            (
                rendered.reason,
                rendered.type_.as_str(),
                rendered.message.as_str()
            ),
            (*reason, *type_, *message)
        );
        // ... and the same over the bus.
        let resp = c.post(r.clone()).await.unwrap().into_inner();
        assert!(resp.queued);
    }
    let lines = wait_lines(&path, cases.len()).await;
    assert_eq!(lines.len(), cases.len());
    for (line, (_, reason, type_, message)) in lines.iter().zip(&cases) {
        assert_eq!(line["reason"], *reason);
        assert_eq!(line["type"], *type_);
        assert_eq!(line["message"], *message);
        assert_eq!(line["volume_id"], "pvc-1a2b");
    }
    // The worker counts a post right after its line is written: wait for the
    // counter rather than race it.
    let m = running.metrics();
    for _ in 0..200 {
        if m.posted("VolumeAttached") == 4 && m.posted("ConnectionRecovery") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(m.posted("VolumeAttached"), 4);
    assert_eq!(m.posted("ConnectionRecovery"), 1);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn file_sink_lines_have_exact_keys_trace_and_pvc() {
    let telemetry = rds_bus::testing::telemetry();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/events.jsonl");
    let running = start_local(&path, |_| {}).await;
    let mut c = client(&running);

    let span = tracing::info_span!("grpc.client", otel.kind = "client");
    let caller_trace = rds_bus::testing::trace_id_of(&span);
    let with_pvc = req(
        "pvc-77",
        "",
        Some(("apps", "data-db-0")),
        Typed::VolumeAttached(VolumeAttached {
            node_id: "node-a".into(),
            duration_ms: 7,
        }),
    );
    c.post(with_pvc).instrument(span.clone()).await.unwrap();
    let without = req(
        "pvc-78",
        "node-b",
        None,
        Typed::MountFailure(MountFailure {
            error: "boom".into(),
        }),
    );
    c.post(without).await.unwrap();

    let lines = wait_lines(&path, 2).await;
    assert_eq!(lines.len(), 2);
    exact_keys_in_order(&path, &lines[0]);

    let a = &lines[0];
    assert_eq!(a["pvc_namespace"], "apps");
    assert_eq!(a["pvc_name"], "data-db-0");
    assert_eq!(a["node_id"], "");
    assert_eq!(a["trace_id"], caller_trace.to_string());
    assert_ne!(a["trace_id"], "");
    let t: jiff::Timestamp = a["time"].as_str().unwrap().parse().unwrap();
    assert!((jiff::Timestamp::now() - t).get_seconds().abs() < 60);

    let b = &lines[1];
    assert_eq!(b["pvc_namespace"], "");
    assert_eq!(b["pvc_name"], "");
    assert_eq!(b["node_id"], "node-b");
    assert_eq!(b["type"], "Warning");
    // A call made outside any span still starts a trace of its own.
    assert_ne!(b["trace_id"], caller_trace.to_string());

    post_and_delivery_spans(telemetry, caller_trace).await;

    // Restart on the same file: lines are appended, nothing is lost.
    running.stop().await.unwrap();
    let running = start_local(&path, |_| {}).await;
    let mut c = client(&running);
    c.post(req(
        "pvc-79",
        "",
        None,
        Typed::VolumeDetached(VolumeDetached {
            node_id: "node-a".into(),
        }),
    ))
    .await
    .unwrap();
    let lines = wait_lines(&path, 3).await;
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["volume_id"], "pvc-77");
    assert_eq!(lines[2]["reason"], "VolumeDetached");
    running.stop().await.unwrap();
}

/// The sink line has exactly the documented keys, in the documented order.
#[cfg(test)]
fn exact_keys_in_order(path: &Path, line: &Value) {
    let keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "time",
        "reason",
        "type",
        "message",
        "volume_id",
        "pvc_namespace",
        "pvc_name",
        "node_id",
        "trace_id",
    ];
    // serde_json's map is sorted; compare as sets, and the raw line's order below.
    want.sort_unstable();
    let mut got = keys.clone();
    got.sort_unstable();
    assert_eq!(got, want);
    let raw = std::fs::read_to_string(path).unwrap();
    let first = raw.lines().next().unwrap();
    let positions: Vec<usize> = [
        "\"time\"",
        "\"reason\"",
        "\"type\"",
        "\"message\"",
        "\"volume_id\"",
        "\"pvc_namespace\"",
        "\"pvc_name\"",
        "\"node_id\"",
        "\"trace_id\"",
    ]
    .iter()
    .map(|k| first.find(k).unwrap())
    .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "key order of docs/local-mode.md §3: {first}"
    );
}

/// The Post and the delivery are spans of the caller's trace.
#[cfg(test)]
async fn post_and_delivery_spans(
    telemetry: &rds_bus::testing::TestTelemetry,
    caller_trace: opentelemetry::trace::TraceId,
) {
    let spans = telemetry
        .wait_for(caller_trace, |s| {
            ["rds.event.v1.Events/Post", "event.post", "event.deliver"]
                .iter()
                .all(|n| s.iter().any(|s| s.name.contains(n)))
        })
        .await;
    // The bus server span is named after the method (otel.name).
    let server = spans
        .iter()
        .find(|s| s.name.contains("rds.event.v1.Events/Post"))
        .expect("server span");
    let post = spans
        .iter()
        .find(|s| s.name == "event.post")
        .expect("event.post span");
    let deliver = spans
        .iter()
        .find(|s| s.name == "event.deliver")
        .expect("event.deliver span");
    assert_eq!(post.parent_span_id, server.span_context.span_id());
    assert_eq!(deliver.parent_span_id, post.span_context.span_id());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_invalid_argument_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let running = start_local(&path, |_| {}).await;
    let mut c = client(&running);
    let attached = || {
        Typed::VolumeAttached(VolumeAttached {
            node_id: "n1".into(),
            duration_ms: 1,
        })
    };
    let bad = vec![
        ("bad volume id", req("pvc_1;rm", "", None, attached())),
        ("empty volume id", req("", "", None, attached())),
        ("bad node id", req("pvc-1", "n 1", None, attached())),
        (
            "no event",
            PostRequest {
                volume_id: "pvc-1".into(),
                ..Default::default()
            },
        ),
        (
            "node event without node",
            req(
                "pvc-1",
                "",
                None,
                Typed::MountFailure(MountFailure { error: "x".into() }),
            ),
        ),
        (
            "half a PVC ref",
            req("pvc-1", "", Some(("apps", "")), attached()),
        ),
        (
            "bad PVC namespace",
            req("pvc-1", "", Some(("Apps!", "data")), attached()),
        ),
        (
            "bad node inside the event",
            req(
                "pvc-1",
                "",
                None,
                Typed::VolumeDetached(VolumeDetached {
                    node_id: String::new(),
                }),
            ),
        ),
        (
            "huge error text",
            req(
                "pvc-1",
                "n1",
                None,
                Typed::MountFailure(MountFailure {
                    error: "x".repeat(5000),
                }),
            ),
        ),
    ];
    for (what, r) in bad {
        let err = c.post(r).await.expect_err(what);
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{what}: {err:?}");
        assert_eq!(
            rds_bus::reason_of(&err),
            Some(rds_bus::Reason::InvalidArgument),
            "{what}"
        );
    }
    // A good one after the bad ones is the only line: a sentinel posted
    // after it is the barrier (the queue is FIFO), then nothing else.
    c.post(req("pvc-1", "", None, attached())).await.unwrap();
    c.post(req("pvc-sentinel", "", None, attached()))
        .await
        .unwrap();
    let lines = wait_lines(&path, 2).await;
    let all = read_lines(&path);
    let vols: Vec<&str> = all.iter().filter_map(|l| l["volume_id"].as_str()).collect();
    assert_eq!(vols, ["pvc-1", "pvc-sentinel"]);
    assert_eq!(lines[0]["volume_id"], "pvc-1");
    running.stop().await.unwrap();
}

/// A file sink that reports each delivery start and waits for a permit, so
/// the test controls when the worker makes progress.
struct GatedSink {
    inner: FileSink,
    started: tokio::sync::mpsc::UnboundedSender<String>,
    gate: Arc<tokio::sync::Semaphore>,
}

#[cfg(test)]
impl Sink for GatedSink {
    fn deliver<'a>(
        &'a self,
        ev: &'a Pending,
    ) -> BoxFuture<'a, Result<event_service::sink::Delivered, event_service::Error>> {
        async move {
            let _ = self.started.send(ev.volume_id.to_string());
            self.gate.acquire().await.unwrap().forget();
            self.inner.deliver(ev).await
        }
        .boxed()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn full_queue_drops_the_oldest_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut cfg = Config::file_sink(&path);
    cfg.queue_size = 4;
    let settings = cfg.validate().unwrap();
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let sink = GatedSink {
        inner: FileSink::open(&path).unwrap(),
        started: started_tx,
        gate: gate.clone(),
    };
    let listener = rds_bus::Listener::bind("127.0.0.1:0").await.unwrap();
    let running = event_service::start_with_sink(
        settings,
        Arc::new(sink),
        listener,
        rds_bus::Shutdown::new(),
    )
    .await
    .unwrap();
    let mut c = client(&running);
    let ev = |i: usize| {
        req(
            &format!("pvc-{i}"),
            "",
            None,
            Typed::VolumeDetached(VolumeDetached {
                node_id: "n1".into(),
            }),
        )
    };
    // pvc-0 is taken by the worker, which then waits at the gate.
    c.post(ev(0)).await.unwrap();
    assert_eq!(started_rx.recv().await.unwrap(), "pvc-0");
    // 9 more into a queue of 4: pvc-1..pvc-5 are evicted, oldest first.
    let t0 = Instant::now();
    for i in 1..10 {
        assert!(c.post(ev(i)).await.unwrap().into_inner().queued);
    }
    let elapsed = t0.elapsed();
    let m = running.metrics();
    assert_eq!(m.dropped("VolumeDetached", DropCause::QueueFull), 5);
    gate.add_permits(100);
    let lines = wait_lines(&path, 5).await;
    let vols: Vec<&str> = lines
        .iter()
        .map(|l| l["volume_id"].as_str().unwrap())
        .collect();
    assert_eq!(vols, ["pvc-0", "pvc-6", "pvc-7", "pvc-8", "pvc-9"]);
    // Counted right after the line is written: wait rather than race it.
    for _ in 0..200 {
        if m.posted("VolumeDetached") == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(m.posted("VolumeDetached"), 5);
    // Posting into a full queue never waited on the stuck sink.
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served_over_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let running = start_local(&path, |c| c.metrics_addr = "127.0.0.1:0".into()).await;
    let mut c = client(&running);
    c.post(req(
        "pvc-9",
        "",
        None,
        Typed::VolumeDetached(VolumeDetached {
            node_id: "n1".into(),
        }),
    ))
    .await
    .unwrap();
    wait_lines(&path, 1).await;
    let addr = running.metrics_addr().unwrap();
    let mut body = String::new();
    for _ in 0..100 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        body.clear();
        s.read_to_string(&mut body).await.unwrap();
        if body.contains("rds_csi_events_posted_total{reason=\"VolumeDetached\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("rds_csi_events_posted_total{reason=\"VolumeDetached\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE rds_csi_events_dropped counter"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE rds_csi_events_failed counter"),
        "{body}"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn post_latency_p50_p99_over_1000_calls_file_sink() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let running = start_local(&path, |_| {}).await;
    let mut c = client(&running);
    // Warm the connection up.
    c.post(req(
        "pvc-warm",
        "",
        None,
        Typed::VolumeDetached(VolumeDetached {
            node_id: "n1".into(),
        }),
    ))
    .await
    .unwrap();
    let n = 1000;
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n {
        let r = req(
            &format!("pvc-{i}"),
            "",
            Some(("bench", "data")),
            Typed::VolumeAttached(VolumeAttached {
                node_id: "n1".into(),
                duration_ms: i as u64,
            }),
        );
        let t = Instant::now();
        c.post(r).await.unwrap();
        lat.push(t.elapsed());
    }
    let total = t0.elapsed();
    lat.sort_unstable();
    let p = |q: f64| lat[((n as f64 * q) as usize).min(n - 1)];
    let lines = wait_lines(&path, n + 1).await;
    let written = t0.elapsed();
    println!(
        "event-service Post latency over {n} sequential calls (file sink, {} build): p50 {:?}, p99 {:?}, max {:?}; \
         {n} Posts in {total:?}; all {} lines written after {written:?}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        p(0.50),
        p(0.99),
        lat[n - 1],
        lines.len(),
    );
    assert_eq!(lines.len(), n + 1);
    assert_eq!(
        running
            .metrics()
            .dropped("VolumeAttached", DropCause::QueueFull),
        0
    );
    running.stop().await.unwrap();
}
