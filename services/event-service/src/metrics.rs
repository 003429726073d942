//! Prometheus metrics (Go-driver name `rds_csi_events_posted_total`, plus
//! dropped and failed), served by `rds_bus::metrics_server`.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why an event was dropped (`cause` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// The queue was full; the oldest event was evicted.
    QueueFull,
    /// The sink kept failing for the whole retry budget.
    RetryExhausted,
    /// The API refused it for good (e.g. 403, 422).
    Rejected,
    /// Kubernetes mode: neither a PVC nor a PV was found for the volume.
    NoObject,
    /// Still queued when the drain deadline of a shutdown passed.
    Shutdown,
}

impl DropCause {
    pub const ALL: [DropCause; 5] = [
        DropCause::QueueFull,
        DropCause::RetryExhausted,
        DropCause::Rejected,
        DropCause::NoObject,
        DropCause::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropCause::QueueFull => "queue_full",
            DropCause::RetryExhausted => "retry_exhausted",
            DropCause::Rejected => "rejected",
            DropCause::NoObject => "no_object",
            DropCause::Shutdown => "shutdown",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: String,
    cause: String,
}

pub struct Metrics {
    registry: Registry,
    posted: Family<ReasonLabels, Counter>,
    failed: Family<ReasonLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
    queue_depth: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let posted = Family::<ReasonLabels, Counter>::default();
        let failed = Family::<ReasonLabels, Counter>::default();
        let dropped = Family::<DropLabels, Counter>::default();
        let queue_depth = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "rds_csi_events_posted",
            "Events delivered (Kubernetes API accepted them, or written to the local sink), by reason",
            posted.clone(),
        );
        registry.register(
            "rds_csi_events_failed",
            "Failed delivery attempts (each retry counts), by reason",
            failed.clone(),
        );
        registry.register(
            "rds_csi_events_dropped",
            "Events given up, by reason and cause (queue_full, retry_exhausted, rejected, no_object, shutdown)",
            dropped.clone(),
        );
        registry.register(
            "rds_csi_events_queue_depth",
            "Events waiting for delivery",
            queue_depth.clone(),
        );
        // Every series exists from the start (at 0), so the metric families
        // are listed before the first event and rate() has a baseline.
        for reason in crate::catalogue::REASONS {
            let _ = posted.get_or_create(&reason_labels(reason));
            let _ = failed.get_or_create(&reason_labels(reason));
            for cause in DropCause::ALL {
                let _ = dropped.get_or_create(&drop_labels(reason, cause));
            }
        }
        Metrics {
            registry,
            posted,
            failed,
            dropped,
            queue_depth,
        }
    }

    pub fn inc_posted(&self, reason: &str) {
        self.posted.get_or_create(&reason_labels(reason)).inc();
    }

    pub fn inc_failed(&self, reason: &str) {
        self.failed.get_or_create(&reason_labels(reason)).inc();
    }

    pub fn inc_dropped(&self, reason: &str, cause: DropCause) {
        self.dropped
            .get_or_create(&drop_labels(reason, cause))
            .inc();
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    pub fn posted(&self, reason: &str) -> u64 {
        self.posted.get_or_create(&reason_labels(reason)).get()
    }

    pub fn failed(&self, reason: &str) -> u64 {
        self.failed.get_or_create(&reason_labels(reason)).get()
    }

    pub fn dropped(&self, reason: &str, cause: DropCause) -> u64 {
        self.dropped
            .get_or_create(&drop_labels(reason, cause))
            .get()
    }

    /// OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

fn reason_labels(reason: &str) -> ReasonLabels {
    ReasonLabels {
        reason: reason.to_owned(),
    }
}

fn drop_labels(reason: &str, cause: DropCause) -> DropLabels {
    DropLabels {
        reason: reason.to_owned(),
        cause: cause.as_str().to_owned(),
    }
}
