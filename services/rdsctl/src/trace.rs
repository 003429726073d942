//! Client spans for CSI calls made by rdsctl: each call opens a span in a
//! fresh trace and injects its `traceparent` into the request metadata, so
//! csi-frontend's root span (and everything below it) joins that trace. The
//! printed trace id is therefore the one Jaeger shows.
//!
//! The OpenTelemetry SDK is used directly (not through `tracing`): rdsctl's
//! stderr stays free of its own span logs, and ids are generated even when
//! nothing is exported. Spans are exported only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (service name `rdsctl`).

use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// Owns the tracer provider; [`ClientTracer::shutdown`] flushes exported spans.
pub struct ClientTracer {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    exporting: bool,
}

impl ClientTracer {
    /// Must run inside a tokio runtime (the OTLP exporter spawns a task).
    pub fn from_env() -> ClientTracer {
        let endpoint = std::env::var(rds_bus::telemetry::OTLP_ENDPOINT_ENV)
            .ok()
            .filter(|s| !s.is_empty());
        let builder = SdkTracerProvider::builder()
            .with_resource(Resource::builder().with_service_name("rdsctl").build());
        let mut exporting = false;
        let builder = match endpoint.map(|e| {
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(e)
                .with_timeout(std::time::Duration::from_secs(5))
                .build()
        }) {
            Some(Ok(exporter)) => {
                exporting = true;
                builder.with_batch_exporter(exporter)
            }
            Some(Err(e)) => {
                eprintln!("rdsctl: OTLP exporter not available ({e}); trace ids are still printed");
                builder
            }
            None => builder,
        };
        let provider = builder.build();
        let tracer = provider.tracer("rdsctl");
        ClientTracer {
            provider,
            tracer,
            exporting,
        }
    }

    /// Opens `name` (e.g. `csi.CreateVolume`) as a client span in a new trace.
    pub fn start(&self, name: &str) -> CallSpan {
        let span = self
            .tracer
            .span_builder(name.to_owned())
            .with_kind(SpanKind::Client)
            .with_attributes([KeyValue::new("rpc.system", "grpc")])
            .start_with_context(&self.tracer, &Context::new());
        CallSpan {
            cx: Context::new().with_span(span),
        }
    }

    /// Flushes and stops the exporter (blocking work off the runtime threads).
    pub async fn shutdown(self) {
        if self.exporting {
            let provider = self.provider;
            let _ = tokio::task::spawn_blocking(move || {
                let _ = provider.force_flush();
                let _ = provider.shutdown();
            })
            .await;
        }
    }
}

/// One open client span.
pub struct CallSpan {
    cx: Context,
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

impl CallSpan {
    /// 32 hex digits.
    pub fn trace_id(&self) -> String {
        self.cx.span().span_context().trace_id().to_string()
    }

    /// Writes `traceparent` into the request's metadata.
    pub fn inject<T>(&self, req: &mut tonic::Request<T>) {
        TraceContextPropagator::new()
            .inject_context(&self.cx, &mut MetadataInjector(req.metadata_mut()));
    }

    pub fn set_attribute(&self, key: &'static str, value: String) {
        self.cx.span().set_attribute(KeyValue::new(key, value));
    }

    /// Ends the span, marked failed when `error` is given.
    pub fn end(self, error: Option<&str>) {
        let span = self.cx.span();
        if let Some(e) = error {
            span.set_status(Status::error(e.to_owned()));
        }
        span.end();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn each_call_gets_a_fresh_trace_and_injects_it() {
        let t = ClientTracer::from_env();
        let a = t.start("csi.Test");
        let b = t.start("csi.Test");
        assert_eq!(a.trace_id().len(), 32);
        assert_ne!(a.trace_id(), b.trace_id(), "every call is its own trace");
        let mut req = tonic::Request::new(());
        a.inject(&mut req);
        let tp = req
            .metadata()
            .get("traceparent")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(tp.starts_with(&format!("00-{}-", a.trace_id())), "{tp}");
        a.end(None);
        b.end(Some("boom"));
    }
}
