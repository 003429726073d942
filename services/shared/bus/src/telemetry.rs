//! Tracing + OpenTelemetry setup shared by every binary.
//!
//! - Logs: `tracing-subscriber` fmt layer on stderr, filtered by `RUST_LOG`
//!   (default `info`); `LOG_FORMAT=json` switches to JSON lines.
//! - Traces: exported with OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   is set (Jaeger ingests OTLP on 4317); otherwise spans still carry trace
//!   ids (for events and logs) but nothing is exported. `service.name` = `OTEL_SERVICE_NAME` or the
//!   service's own name. The OTel layer has its own INFO filter so h2/hyper
//!   trace spans are never exported (docs/ARCHITECTURE.md §5.5).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::BusError;

pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Keeps the tracer provider alive; call [`Telemetry::shutdown`] on exit so
/// buffered spans are flushed.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    exporting: bool,
}

/// The service name used in traces: `OTEL_SERVICE_NAME` wins over `default`.
pub fn service_name(default: &str) -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// What [`init_with`] sets up; [`init`] fills it from the environment.
#[derive(Clone, Debug, Default)]
pub struct TelemetryOptions {
    pub service_name: String,
    /// OTLP/gRPC collector, e.g. `http://jaeger:4317`; `None` = no export.
    pub otlp_endpoint: Option<String>,
}

/// Installs the global subscriber from the environment
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `RUST_LOG`,
/// `LOG_FORMAT`). Must run inside a tokio runtime (the OTLP exporter spawns
/// its channel task there).
pub fn init(default_service_name: &str) -> Result<Telemetry, BusError> {
    init_with(TelemetryOptions {
        service_name: service_name(default_service_name),
        otlp_endpoint: std::env::var(OTLP_ENDPOINT_ENV)
            .ok()
            .filter(|s| !s.is_empty()),
    })
}

/// Installs the global subscriber with explicit options.
pub fn init_with(opts: TelemetryOptions) -> Result<Telemetry, BusError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let name = opts.service_name;
    let env_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    let fmt_layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(env_filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(env_filter)
            .boxed()
    };

    // Spans always get real trace ids (events.jsonl and `rdsctl demo` print
    // them, and bus hops propagate them); they are only *exported* when an
    // OTLP endpoint is set. Without an exporter the provider just drops
    // finished spans, which costs next to nothing.
    let endpoint = opts.otlp_endpoint;
    let resource = Resource::builder().with_service_name(name.clone()).build();
    let (provider, exporting) = match endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(std::time::Duration::from_secs(5))
                .build()
                .map_err(|e| BusError::Telemetry(e.to_string()))?;
            let provider = SdkTracerProvider::builder()
                .with_resource(resource)
                .with_batch_exporter(exporter)
                .build();
            (provider, true)
        }
        None => (
            SdkTracerProvider::builder().with_resource(resource).build(),
            false,
        ),
    };
    let tracer = provider.tracer(name.clone());
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(LevelFilter::INFO);

    tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|e| BusError::Telemetry(e.to_string()))?;
    Ok(Telemetry {
        provider: Some(provider),
        exporting,
    })
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Flushes and stops the exporter. `shutdown()` blocks while the export
    /// runs on a tonic task, so it runs on a blocking thread (docs/ARCHITECTURE.md §5.8).
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let _ = tokio::task::spawn_blocking(move || {
                let _ = provider.force_flush();
                let _ = provider.shutdown();
            })
            .await;
        }
    }
}
