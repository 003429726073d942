//! The bus end to end over real gRPC: trace context crosses a hop (with a
//! negative control), errors keep their reason, deadlines hold, unix sockets
//! and health work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanKind, TraceId};
use rds_bus::testing::{telemetry, trace_id_of};
use rds_bus::{Bus, ClientOptions, Listener, Reason, Shutdown, connect, reason_of, status};
use rds_proto::event::events_client::EventsClient;
use rds_proto::event::events_server::{Events, EventsServer};
use rds_proto::event::{PostRequest, PostResponse};
use tracing::Instrument;

/// A test service: remembers the trace id each handler ran under; volume id
/// "missing" fails with VOLUME_NOT_FOUND, "slow" sleeps 2 s.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl Events for Recorder {
    async fn post(
        &self,
        req: tonic::Request<PostRequest>,
    ) -> Result<tonic::Response<PostResponse>, tonic::Status> {
        let span = tracing::info_span!("handler");
        async {
            self.seen
                .lock()
                .unwrap()
                .push(rds_bus::trace::current_trace_id());
            match req.get_ref().volume_id.as_str() {
                "missing" => Err(status(
                    Reason::VolumeNotFound,
                    "volume missing does not exist",
                )),
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Ok(tonic::Response::new(PostResponse { queued: true }))
                }
                _ => Ok(tonic::Response::new(PostResponse { queued: true })),
            }
        }
        .instrument(span)
        .await
    }
}

async fn start(addr: &str) -> (String, Recorder, Shutdown) {
    let listener = Listener::bind(addr).await.unwrap();
    let endpoint = listener.endpoint();
    let rec = Recorder::default();
    let shutdown = Shutdown::new();
    let bus = Bus::new().add_service(EventsServer::new(rec.clone()));
    let s = shutdown.clone();
    tokio::spawn(async move { bus.serve(listener, async move { s.wait().await }).await });
    (endpoint, rec, shutdown)
}

fn post(volume_id: &str) -> PostRequest {
    PostRequest {
        volume_id: volume_id.into(),
        ..Default::default()
    }
}

fn server_span(
    spans: &[opentelemetry_sdk::trace::SpanData],
) -> Option<&opentelemetry_sdk::trace::SpanData> {
    spans
        .iter()
        .find(|s| s.name.contains("rds.event.v1.Events/Post"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_crosses_the_hop() {
    let t = telemetry();
    let (endpoint, rec, _sd) = start("127.0.0.1:0").await;
    let mut client = EventsClient::new(connect(&endpoint, ClientOptions::default()).unwrap());

    let span = tracing::info_span!("grpc.client", otel.kind = "client");
    let trace_id = trace_id_of(&span);
    assert_ne!(trace_id, TraceId::INVALID);
    client
        .post(post("pvc-1"))
        .instrument(span.clone())
        .await
        .unwrap();
    let client_span_id = {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        span.context().span().span_context().span_id()
    };
    drop(span);

    let spans = t
        .wait_for(trace_id, |s| {
            server_span(s).is_some() && s.iter().any(|x| x.name == "handler")
        })
        .await;
    let server = server_span(&spans).expect("server span in the caller's trace");
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(server.parent_span_id, client_span_id);
    assert!(server.parent_span_is_remote);
    let handler = spans.iter().find(|s| s.name == "handler").unwrap();
    assert_eq!(handler.parent_span_id, server.span_context.span_id());
    assert_eq!(
        rec.seen.lock().unwrap().last().unwrap(),
        &trace_id.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_interceptor_the_server_starts_a_new_trace() {
    let t = telemetry();
    let (endpoint, rec, _sd) = start("127.0.0.1:0").await;
    // A bare tonic channel: no TraceContextInterceptor.
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = EventsClient::new(channel);

    let span = tracing::info_span!("grpc.client", otel.kind = "client");
    let trace_id = trace_id_of(&span);
    client
        .post(post("pvc-2"))
        .instrument(span.clone())
        .await
        .unwrap();
    drop(span);

    let seen = rec.seen.lock().unwrap().last().unwrap().clone();
    assert_ne!(
        seen,
        trace_id.to_string(),
        "no propagation without the interceptor"
    );
    let other: TraceId = TraceId::from_hex(&seen).unwrap();
    let spans = t.wait_for(other, |s| server_span(s).is_some()).await;
    let server = server_span(&spans).expect("server span of the new trace");
    assert!(!server.parent_span_is_remote);
    assert!(
        t.spans_of(trace_id)
            .iter()
            .all(|s| !s.name.contains("Events/Post"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_their_reason_and_mark_the_span() {
    let t = telemetry();
    let (endpoint, _rec, _sd) = start("127.0.0.1:0").await;
    let mut client = EventsClient::new(connect(&endpoint, ClientOptions::default()).unwrap());
    let span = tracing::info_span!("grpc.client");
    let trace_id = trace_id_of(&span);
    let err = client
        .post(post("missing"))
        .instrument(span)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert_eq!(reason_of(&err), Some(Reason::VolumeNotFound));
    assert_eq!(err.message(), "volume missing does not exist");
    let spans = t.wait_for(trace_id, |s| server_span(s).is_some()).await;
    let server = server_span(&spans).unwrap();
    assert!(
        matches!(server.status, opentelemetry::trace::Status::Error { .. }),
        "failed call must set span status error, got {:?}",
        server.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_bound_every_call() {
    let (endpoint, _rec, _sd) = start("127.0.0.1:0").await;
    let opts = ClientOptions {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(200),
    };
    let mut client = EventsClient::new(connect(&endpoint, opts).unwrap());
    let started = Instant::now();
    let err = client.post(post("slow")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err.code(),
            tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
        ),
        "{err:?}"
    );

    // Nothing listening: the connect deadline answers UNAVAILABLE quickly.
    let dead = Listener::bind("127.0.0.1:0").await.unwrap();
    let dead_endpoint = dead.endpoint();
    drop(dead);
    let mut client = EventsClient::new(connect(&dead_endpoint, opts).unwrap());
    let started = Instant::now();
    let err = client.post(post("pvc")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_health_and_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("bus.sock");
    let (endpoint, _rec, shutdown) = start(&format!("unix://{}", sock.display())).await;
    assert_eq!(endpoint, format!("unix://{}", sock.display()));
    let channel = connect(&endpoint, ClientOptions::default()).unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        resp.get_ref().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let mut client = EventsClient::new(channel);
    assert!(client.post(post("pvc-3")).await.unwrap().get_ref().queued);

    shutdown.trigger();
    for _ in 0..200 {
        if !sock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!sock.exists(), "socket removed on shutdown");
}

#[tokio::test]
async fn bad_addresses_are_refused() {
    assert!(Listener::bind("nonsense").await.is_err());
    assert!(Listener::bind("unix://relative").await.is_err());
    assert!(connect("unix://relative", ClientOptions::default()).is_err());
    assert!(connect("nohostport", ClientOptions::default()).is_err());
}
