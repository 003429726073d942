//! One trace per CSI call across the services, checked from the exported
//! spans (every service runs in this process and exports to the one
//! in-memory exporter of `rds_bus::testing`):
//! - CreateVolume: csi-frontend (root) → rds-agent → the SSH command spans;
//! - ControllerPublishVolume: csi-frontend → attachment-service → event-service,
//!   and the event written to the sink carries the same trace id.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::trace::SpanId;
use opentelemetry_sdk::trace::SpanData;

use crate::common::*;

fn attr(s: &SpanData, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// Polls the exporter for a span named `name` whose `volume_id` is `volume`.
async fn find_span(name: &str, volume: &str) -> SpanData {
    let tel = rds_bus::testing::telemetry();
    for _ in 0..500 {
        let _ = tel.provider.force_flush();
        if let Some(s) = tel
            .exporter
            .get_finished_spans()
            .unwrap_or_default()
            .into_iter()
            .find(|s| s.name == name && attr(s, "volume_id").as_deref() == Some(volume))
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no span {name} for {volume}");
}

/// Names of `span` and its ancestors, nearest first.
fn ancestry(spans: &[SpanData], span: &SpanData) -> Vec<String> {
    let by_id: HashMap<SpanId, &SpanData> = spans
        .iter()
        .map(|s| (s.span_context.span_id(), s))
        .collect();
    let mut out = Vec::new();
    let mut cur = Some(span);
    while let Some(s) = cur {
        out.push(s.name.to_string());
        cur = by_id.get(&s.parent_span_id).copied();
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn create_volume_is_one_trace_from_csi_frontend_through_rds_agent_to_ssh_commands() {
    let mut t = Sanity::start().await;
    let name = unique("traced");
    t.volume(create_req(&name)).await;

    let root_call = find_span("csi.CreateVolume", &name).await;
    let trace = root_call.span_context.trace_id();
    let tel = rds_bus::testing::telemetry();
    let spans = tel
        .wait_for(trace, |s| {
            s.iter().any(|x| x.name.starts_with("RouterOS disk add"))
                && s.iter()
                    .any(|x| x.name == "/csi.v1.Controller/CreateVolume")
        })
        .await;

    // The trace starts at csi-frontend: its server span has no parent.
    let root = spans
        .iter()
        .find(|s| s.name == "/csi.v1.Controller/CreateVolume")
        .expect("csi-frontend server span");
    assert_eq!(
        root.parent_span_id,
        SpanId::INVALID,
        "csi-frontend is the root of the trace"
    );
    assert_eq!(root_call.parent_span_id, root.span_context.span_id());

    // The disk add ran over SSH inside rds-agent, under csi.CreateVolume.
    let add = spans
        .iter()
        .find(|s| {
            s.name.starts_with("RouterOS disk add") && attr(s, "rds.slot").as_deref() == Some(&name)
        })
        .unwrap_or_else(|| panic!("no SSH command span for the disk add: {:?}", names(&spans)));
    let chain = ancestry(&spans, add);
    assert!(
        chain.contains(&"/rds.agent.v1.Agent/CreateVolume".to_owned()),
        "{chain:?}"
    );
    assert!(chain.contains(&"csi.CreateVolume".to_owned()), "{chain:?}");
    assert_eq!(
        chain.last().map(String::as_str),
        Some("/csi.v1.Controller/CreateVolume"),
        "{chain:?}"
    );
    t.finish().await;
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn controller_publish_is_one_trace_through_attachment_service_and_event_service() {
    let mut t = Sanity::start().await;
    let node = t.node().to_owned();
    let mut req = create_req(&unique("traced-pub"));
    req.parameters = pvc_params("ns1", "claim1");
    let v = t.volume(req).await;
    let mut p = publish_req(&v.volume_id, &node);
    p.volume_context = v.volume_context.clone();
    t.publish(p).await.unwrap();

    let call = find_span("csi.ControllerPublishVolume", &v.volume_id).await;
    let trace = call.span_context.trace_id();
    let tel = rds_bus::testing::telemetry();
    let wanted = [
        "/csi.v1.Controller/ControllerPublishVolume",
        "csi.ControllerPublishVolume",
        "/rds.attachment.v1.Attachments/Attach",
        "attachment.Attach",
        "/rds.event.v1.Events/Post",
        "event.post",
        "event.deliver",
    ];
    let spans = tel
        .wait_for(trace, |s| {
            wanted.iter().all(|w| s.iter().any(|x| x.name == *w))
        })
        .await;
    for want in wanted {
        assert!(
            spans.iter().any(|s| s.name == want),
            "missing {want}: {:?}",
            names(&spans)
        );
    }
    let post = spans.iter().find(|s| s.name == "event.post").unwrap();
    let chain = ancestry(&spans, post);
    assert!(chain.contains(&"attachment.Attach".to_owned()), "{chain:?}");
    assert!(
        chain.contains(&"csi.ControllerPublishVolume".to_owned()),
        "{chain:?}"
    );

    // The event line in the sink carries the same trace id.
    let ev = t
        .stack
        .wait_for_event(Duration::from_secs(10), |e| {
            e["reason"] == "VolumeAttached" && e["volume_id"] == v.volume_id.as_str()
        })
        .await
        .unwrap();
    assert_eq!(ev["trace_id"], trace.to_string());
    t.finish().await;
}

/// A failed CSI call marks its root span as an error.
#[tokio::test(flavor = "multi_thread")]
async fn failed_calls_mark_their_span_as_error() {
    let mut t = Sanity::start().await;
    let id = unknown_volume_id();
    let node = t.node().to_owned();
    let _ = t.publish(publish_req(&id, &node)).await;
    let s = find_span("csi.ControllerPublishVolume", &id).await;
    assert!(
        matches!(s.status, opentelemetry::trace::Status::Error { .. }),
        "{:?}",
        s.status
    );
    assert_eq!(attr(&s, "node_id").as_deref(), Some(node.as_str()));
    t.finish().await;
}
