//! Test support: one process-global subscriber per test binary feeding one
//! in-memory span exporter (per-test `set_default` is flaky, docs/ARCHITECTURE.md §5.4).
//! Tests pick out their own spans by trace id.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

pub struct TestTelemetry {
    pub exporter: InMemorySpanExporter,
    pub provider: SdkTracerProvider,
}

static TELEMETRY: OnceLock<TestTelemetry> = OnceLock::new();

/// Installs (once) and returns the global test telemetry.
pub fn telemetry() -> &'static TestTelemetry {
    TELEMETRY.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let tracer = provider.tracer("test");
        let fmt = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
            );
        let subscriber = tracing_subscriber::registry().with(fmt).with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(LevelFilter::INFO),
        );
        let _ = tracing::subscriber::set_global_default(subscriber);
        TestTelemetry { exporter, provider }
    })
}

impl TestTelemetry {
    /// Finished spans of one trace.
    pub fn spans_of(&self, trace_id: TraceId) -> Vec<SpanData> {
        let _ = self.provider.force_flush();
        self.exporter
            .get_finished_spans()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace_id)
            .collect()
    }

    /// Polls (10 ms × 500) until `pred` holds on the spans of `trace_id`;
    /// returns the spans seen last. Server spans end after the client has its
    /// reply (docs/ARCHITECTURE.md §5.6), so tests must wait rather than assert at once.
    pub async fn wait_for(
        &self,
        trace_id: TraceId,
        pred: impl Fn(&[SpanData]) -> bool,
    ) -> Vec<SpanData> {
        let mut spans = Vec::new();
        for _ in 0..500 {
            spans = self.spans_of(trace_id);
            if pred(&spans) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        spans
    }
}

/// The OTel trace id of a tracing span.
pub fn trace_id_of(span: &tracing::Span) -> TraceId {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    span.context().span().span_context().trace_id()
}
