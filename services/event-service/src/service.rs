//! The `rds.event.v1.Events` gRPC handler: validate, stamp (time, trace),
//! queue, answer. Nothing here waits on a sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rds_proto::event::events_server::Events;
use rds_proto::event::{PostRequest, PostResponse};
use tonic::{Request, Response, Status};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::Error;
use crate::metrics::{DropCause, Metrics};
use crate::queue::{Pushed, Queue};
use crate::validate::{self, Pending};

pub struct EventsService {
    pub(crate) queue: Arc<Queue>,
    pub(crate) metrics: Arc<Metrics>,
    evicted: AtomicU64,
}

impl EventsService {
    pub(crate) fn new(queue: Arc<Queue>, metrics: Arc<Metrics>) -> Self {
        EventsService {
            queue,
            metrics,
            evicted: AtomicU64::new(0),
        }
    }

    fn post_in_span(&self, req: &PostRequest, header_trace: String) -> Result<(), Error> {
        let valid = validate::check(req)?;
        let span = tracing::Span::current();
        span.record("event.reason", valid.rendered.reason);
        // The bus layer parents this span to the caller; without a tracing
        // pipeline (no OTel layer) fall back to the caller's traceparent.
        let mut trace_id = rds_bus::trace::current_trace_id();
        if trace_id.is_empty() {
            trace_id = header_trace;
        }
        let pending = Pending {
            time: jiff::Timestamp::now(),
            rendered: valid.rendered,
            volume_id: valid.volume_id,
            node_id: valid.node_id,
            pvc: valid.pvc,
            trace_id,
            parent: span.context(),
        };
        match self.queue.push(pending) {
            Pushed::Queued => {}
            Pushed::Evicted(old) => {
                self.metrics
                    .inc_dropped(old.rendered.reason, DropCause::QueueFull);
                // Logged at the first eviction and every 100th after, so a
                // flood does not also flood the log.
                let n = self.evicted.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(100) {
                    tracing::warn!(
                        evicted_total = n + 1,
                        reason = old.rendered.reason,
                        volume_id = %old.volume_id,
                        "event queue full: dropped the oldest event"
                    );
                }
            }
            Pushed::Closed => return Err(Error::ShuttingDown),
        }
        self.metrics.set_queue_depth(self.queue.len());
        Ok(())
    }
}

#[tonic::async_trait]
impl Events for EventsService {
    async fn post(&self, request: Request<PostRequest>) -> Result<Response<PostResponse>, Status> {
        let header_trace = traceparent_trace_id(request.metadata());
        let req = request.into_inner();
        let span = tracing::info_span!(
            "event.post",
            volume_id = %req.volume_id,
            node_id = %req.node_id,
            event.reason = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        match span.in_scope(|| self.post_in_span(&req, header_trace)) {
            Ok(()) => Ok(Response::new(PostResponse { queued: true })),
            Err(e) => {
                rds_bus::trace::mark_error(&span, &e.to_string());
                tracing::debug!(error = %e, "Post rejected");
                Err(e.to_status())
            }
        }
    }
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`),
/// or "" when absent/malformed/all-zero.
fn traceparent_trace_id(md: &tonic::metadata::MetadataMap) -> String {
    let Some(tp) = md.get("traceparent").and_then(|v| v.to_str().ok()) else {
        return String::new();
    };
    let mut parts = tp.split('-');
    let (_version, Some(trace), Some(_span)) = (parts.next(), parts.next(), parts.next()) else {
        return String::new();
    };
    let valid = trace.len() == 32
        && trace.bytes().all(|b| b.is_ascii_hexdigit())
        && trace.bytes().any(|b| b != b'0');
    if valid {
        trace.to_ascii_lowercase()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_traceparent() {
        let mut md = tonic::metadata::MetadataMap::new();
        assert_eq!(super::traceparent_trace_id(&md), "");
        md.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap_or_else(|_| panic!("metadata")),
        );
        assert_eq!(
            super::traceparent_trace_id(&md),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
