//! W3C trace context across the bus: the client [`TraceContextInterceptor`]
//! injects the current span's context as `traceparent`/`tracestate` gRPC
//! metadata; the server layer ([`server_trace_layer`]) extracts it and makes
//! the `grpc.server` span a child of the remote caller.
//!
//! The propagator is used directly (not the global one, which is a no-op
//! until set), so there is no global to forget.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tower_http::classify::{GrpcErrorsAsFailures, GrpcFailureClass, SharedClassifier};
use tower_http::trace::{MakeSpan, OnFailure, TraceLayer};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // Keys/values that are not valid metadata are skipped, never a panic.
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Injects the current tracing span's OTel context into outgoing metadata.
/// The call future must run inside the caller's span (handlers do).
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextInterceptor;

impl tonic::service::Interceptor for TraceContextInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let cx = Span::current().context();
        TraceContextPropagator::new()
            .inject_context(&cx, &mut MetadataInjector(req.metadata_mut()));
        Ok(req)
    }
}

/// Opens the `grpc.server` span for each request, parented to the remote
/// context found in the headers (if any).
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcServerMakeSpan;

impl<B> MakeSpan<B> for GrpcServerMakeSpan {
    fn make_span(&mut self, req: &http::Request<B>) -> Span {
        let path = req.uri().path();
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = path,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.method = path,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
        if parent.span().span_context().is_valid() {
            // Must happen before the span is entered (docs/ARCHITECTURE.md §5.7).
            let _ = span.set_parent(parent);
        }
        span
    }
}

/// Marks the server span as failed for non-OK gRPC statuses.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordGrpcFailure;

impl OnFailure<GrpcFailureClass> for RecordGrpcFailure {
    fn on_failure(&mut self, class: GrpcFailureClass, _latency: std::time::Duration, span: &Span) {
        span.record("otel.status_code", "ERROR");
        if let GrpcFailureClass::Status(status) = class {
            span.record("rpc.grpc.status_code", status.code_raw());
        }
    }
}

/// The tower layer every bus server wears.
pub type ServerTraceLayer = TraceLayer<
    SharedClassifier<GrpcErrorsAsFailures>,
    GrpcServerMakeSpan,
    (),
    (),
    (),
    (),
    RecordGrpcFailure,
>;

pub fn server_trace_layer() -> ServerTraceLayer {
    TraceLayer::new_for_grpc()
        .make_span_with(GrpcServerMakeSpan)
        .on_request(())
        .on_response(())
        .on_body_chunk(())
        .on_eos(())
        .on_failure(RecordGrpcFailure)
}

/// Hex trace id of the current span ("" when there is no valid trace).
pub fn current_trace_id() -> String {
    let cx = Span::current().context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        sc.trace_id().to_string()
    } else {
        String::new()
    }
}

/// Records an error on `span` so Jaeger shows the failed call in red.
pub fn mark_error(span: &Span, message: &str) {
    span.record("otel.status_code", "ERROR");
    span.set_status(opentelemetry::trace::Status::error(message.to_owned()));
}
