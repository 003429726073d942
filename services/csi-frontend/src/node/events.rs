//! Node events (MountFailure, ConnectionFailure, StaleMountDetected, …) go to
//! event-service, best effort: the data plane's sink must not block, so each
//! post runs in its own task, bounded by the event deadline and carrying the
//! CSI call's span (the event joins the call's trace). A failing event path
//! never changes the CSI answer.

use rds_bus::NodeId;
use rds_dataplane::{EventSink, NodeEvent};
use tracing::Instrument;

use crate::backends::Backends;
use crate::deadline::CallCtx;

pub struct BusEventSink {
    backends: Backends,
    node_id: NodeId,
}

impl BusEventSink {
    pub fn new(backends: Backends, node_id: NodeId) -> Self {
        BusEventSink { backends, node_id }
    }
}

impl EventSink for BusEventSink {
    fn post(&self, event: NodeEvent) {
        let Some(req) = event.to_post_request(&self.node_id) else {
            // No bus message exists for this kind (e.g. ForcedCleanup): log it.
            tracing::warn!(volume_id = %event.volume_id, reason = event.kind.reason(), "node event (log only): {:?}", event.kind);
            return;
        };
        let backends = self.backends.clone();
        // The sink may be called outside a runtime only by mistake; never panic.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                reason = event.kind.reason(),
                "node event dropped: no runtime"
            );
            return;
        };
        rt.spawn(
            async move { backends.post_event(&CallCtx::unbounded(), req).await }
                .instrument(tracing::Span::current()),
        );
    }
}
