//! Telemetry init exports spans over real OTLP/gRPC to an in-process
//! collector, with the service name as `service.name`. Its own test binary:
//! `init_with` installs the process-global subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use rds_bus::telemetry::{TelemetryOptions, init_with};
use rds_bus::{Bus, Listener, Shutdown};
use tokio::sync::mpsc;

struct Collector(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(req.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_real_otlp_collector_with_the_service_name() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = Listener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.endpoint();
    let shutdown = Shutdown::new();
    let s = shutdown.clone();
    let bus = Bus::new().add_service(TraceServiceServer::new(Collector(tx)));
    tokio::spawn(async move { bus.serve(listener, async move { s.wait().await }).await });

    let telemetry = init_with(TelemetryOptions {
        service_name: "otlp-test-service".into(),
        otlp_endpoint: Some(endpoint),
    })
    .unwrap();
    assert!(telemetry.exporting());
    {
        let span = tracing::info_span!("unit.of.work", volume.id = "pvc-otlp");
        let _g = span.enter();
        tracing::info!("inside");
    }
    telemetry.shutdown().await; // flushes the batch exporter

    let req = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let rs = &req.resource_spans[0];
    let service_name = rs
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .map(|v| format!("{:?}", v.value));
    assert!(service_name.unwrap().contains("otlp-test-service"));
    let names: Vec<_> = rs
        .scope_spans
        .iter()
        .flat_map(|s| s.spans.iter().map(|sp| sp.name.clone()))
        .collect();
    assert!(names.contains(&"unit.of.work".to_string()), "{names:?}");
    shutdown.trigger();
}
