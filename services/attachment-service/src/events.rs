//! Posting the attachment events through event-service (docs/csi.md §9.1: this
//! service is their one owner). Best effort by construction: every post runs
//! in its own spawned task (carrying the caller's span, so the trace goes on
//! to event-service) with a short deadline, at most `MAX_IN_FLIGHT` at once
//! (beyond that a post is dropped and counted) — a slow or absent
//! event-service can never block or fail an Attach or Detach. Callers post
//! only after their state change is durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rds_bus::{BusChannel, ClientOptions, NodeId, VolumeId};
use rds_proto::event::events_client::EventsClient;
use rds_proto::event::{self as ev, post_request::Event};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::error::Error;
use crate::metrics::Metrics;
use crate::model::PvcRef;

/// Posts running at once.
const MAX_IN_FLIGHT: usize = 64;
/// Posts running or waiting; beyond this a post is dropped (and counted).
const MAX_PENDING: usize = 16_384;

#[derive(Clone)]
pub struct EventPoster {
    client: Option<EventsClient<BusChannel>>,
    in_flight: Arc<Semaphore>,
    pending: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

/// Counts a pending post; decrements when the post's task ends (or is
/// dropped at runtime shutdown).
struct PendingGuard(Arc<AtomicUsize>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EventPoster {
    /// `endpoint` None: events are only logged (e.g. tests of fencing alone).
    pub fn new(
        endpoint: Option<&str>,
        deadline: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Error> {
        let client = match endpoint {
            Some(ep) => {
                let channel = rds_bus::connect(
                    ep,
                    ClientOptions {
                        connect_timeout: deadline,
                        request_timeout: deadline,
                    },
                )
                .map_err(|e| Error::Config(format!("event-service endpoint: {e}")))?;
                Some(EventsClient::new(channel))
            }
            None => None,
        };
        Ok(EventPoster {
            client,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            pending: Arc::new(AtomicUsize::new(0)),
            metrics,
        })
    }

    /// Fire and forget.
    pub fn post(
        &self,
        volume: &VolumeId,
        node: Option<&NodeId>,
        pvc: Option<&PvcRef>,
        event: Event,
    ) {
        let req = ev::PostRequest {
            volume_id: volume.to_string(),
            node_id: node.map(ToString::to_string).unwrap_or_default(),
            pvc: pvc.map(PvcRef::to_proto),
            event: Some(event),
        };
        let Some(mut client) = self.client.clone() else {
            tracing::info!(volume_id = %volume, event = ?req.event, "event (no event-service configured)");
            return;
        };
        if self.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.metrics.event("dropped");
            tracing::warn!(volume_id = %volume, "too many event posts pending; event dropped");
            return;
        }
        let pending = PendingGuard(self.pending.clone());
        let in_flight = self.in_flight.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(
            async move {
                let _pending = pending;
                let Ok(_permit) = in_flight.acquire_owned().await else {
                    return;
                };
                match client.post(req).await {
                    Ok(resp) if resp.get_ref().queued => metrics.event("posted"),
                    Ok(_) => {
                        metrics.event("failed");
                        tracing::warn!("event-service rejected an event");
                    }
                    Err(status) => {
                        metrics.event("failed");
                        tracing::warn!(code = ?status.code(), message = status.message(), "posting event failed");
                    }
                }
            }
            .instrument(tracing::Span::current()),
        );
    }
}

pub fn volume_attached(node: &NodeId, took: Duration) -> Event {
    Event::VolumeAttached(ev::VolumeAttached {
        node_id: node.to_string(),
        duration_ms: millis(took),
    })
}

pub fn volume_detached(node: &NodeId) -> Event {
    Event::VolumeDetached(ev::VolumeDetached {
        node_id: node.to_string(),
    })
}

pub fn stale_cleared(node: &NodeId) -> Event {
    Event::StaleAttachmentCleared(ev::StaleAttachmentCleared {
        node_id: node.to_string(),
    })
}

pub fn conflict(requested: &NodeId, holder: &NodeId) -> Event {
    Event::AttachmentConflict(ev::AttachmentConflict {
        requested_node: requested.to_string(),
        attached_node: holder.to_string(),
    })
}

pub fn migration_started(source: &NodeId, target: &NodeId, timeout_secs: u32) -> Event {
    Event::MigrationStarted(ev::MigrationStarted {
        source_node: source.to_string(),
        target_node: target.to_string(),
        timeout_seconds: timeout_secs,
    })
}

pub fn migration_completed(source: &NodeId, target: &NodeId, took: Duration) -> Event {
    Event::MigrationCompleted(ev::MigrationCompleted {
        source_node: source.to_string(),
        target_node: target.to_string(),
        duration_ms: millis(took),
    })
}

pub fn migration_failed(
    source: &NodeId,
    target: &NodeId,
    reason: &str,
    elapsed: Duration,
) -> Event {
    Event::MigrationFailed(ev::MigrationFailed {
        source_node: source.to_string(),
        target_node: target.to_string(),
        reason: reason.to_owned(),
        elapsed_ms: millis(elapsed),
    })
}

/// `found`/`expected`: host NQNs (the RDS's list, the table's decision).
pub fn storage_fence_repaired(found: &[String], expected: &[String]) -> Event {
    Event::StorageFenceRepaired(ev::StorageFenceRepaired {
        found: found.join(","),
        expected: expected.join(","),
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
