//! The one worker task: drains the queue in order and delivers each event
//! with bounded retries (exponential backoff, at most `retry_budget` per
//! event), so a slow or dead API server delays only this task — Post never
//! waits for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::metrics::{DropCause, Metrics};
use crate::queue::Queue;
use crate::sink::{Delivered, Sink};
use crate::validate::Pending;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct Worker {
    pub queue: Arc<Queue>,
    pub sink: Arc<dyn Sink>,
    pub metrics: Arc<Metrics>,
    pub retry_budget: Duration,
}

impl Worker {
    /// Runs until the queue is closed and empty.
    pub async fn run(self) {
        while let Some(ev) = self.queue.pop().await {
            self.metrics.set_queue_depth(self.queue.len());
            let span = tracing::info_span!(
                "event.deliver",
                event.reason = ev.rendered.reason,
                volume_id = %ev.volume_id,
                attempts = tracing::field::Empty,
                outcome = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            );
            // Delivery joins the trace of the Post that queued it (set before
            // the span is entered, docs/ARCHITECTURE.md §5.7).
            let _ = span.set_parent(ev.parent.clone());
            self.deliver(&ev).instrument(span).await;
        }
    }

    async fn deliver(&self, ev: &Pending) {
        let reason = ev.rendered.reason;
        let deadline = Instant::now() + self.retry_budget;
        let mut backoff = rds_bus::Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        let mut attempts = 0u32;
        let span = tracing::Span::current();
        loop {
            attempts += 1;
            span.record("attempts", attempts);
            match self.sink.deliver(ev).await {
                Ok(Delivered::Posted { on }) => {
                    self.metrics.inc_posted(reason);
                    span.record("outcome", "posted");
                    tracing::debug!(reason, volume_id = %ev.volume_id, on, "event posted");
                    return;
                }
                Ok(Delivered::NoObject) => {
                    self.metrics.inc_dropped(reason, DropCause::NoObject);
                    span.record("outcome", "no_object");
                    tracing::warn!(
                        reason,
                        volume_id = %ev.volume_id,
                        message = %ev.rendered.message,
                        "no PVC and no PV for the volume; event not posted"
                    );
                    return;
                }
                Err(e) => {
                    self.metrics.inc_failed(reason);
                    let now = Instant::now();
                    let cause = if !e.is_retryable() {
                        Some(DropCause::Rejected)
                    } else if now >= deadline {
                        Some(DropCause::RetryExhausted)
                    } else {
                        None
                    };
                    if let Some(cause) = cause {
                        self.metrics.inc_dropped(reason, cause);
                        span.record("outcome", cause.as_str());
                        rds_bus::trace::mark_error(&span, &e.to_string());
                        tracing::warn!(
                            reason,
                            volume_id = %ev.volume_id,
                            attempts,
                            error = %e,
                            cause = cause.as_str(),
                            message = %ev.rendered.message,
                            "event dropped"
                        );
                        return;
                    }
                    tracing::debug!(reason, attempts, error = %e, "event delivery failed; retrying");
                    tokio::time::sleep(backoff.next_delay().min(deadline - now)).await;
                }
            }
        }
    }
}
