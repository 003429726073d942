//! Node Prometheus metrics with the Go driver's names (docs/ARCHITECTURE.md §10), on a
//! prometheus-client registry the node role serves.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The Go driver's duration buckets.
const BUCKETS: [f64; 9] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpStatus {
    pub operation: String,
    pub status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Op {
    pub operation: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Status {
    pub status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Every node metric. Clones share the same values.
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    pub volume_operations: Family<OpStatus, Counter>,
    pub volume_operation_duration: Family<Op, Histogram, fn() -> Histogram>,
    pub nvme_connects: Family<Status, Counter>,
    pub nvme_connect_duration: Histogram,
    pub mount_operations: Family<OpStatus, Counter>,
    pub stale_mounts_detected: Counter,
    pub stale_recoveries: Family<Status, Counter>,
    pub orphans_cleaned: Counter,
    pub events_posted: Family<ReasonLabel, Counter>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            volume_operations: Family::default(),
            volume_operation_duration: Family::new_with_constructor(duration_histogram),
            nvme_connects: Family::default(),
            nvme_connect_duration: duration_histogram(),
            mount_operations: Family::default(),
            stale_mounts_detected: Counter::default(),
            stale_recoveries: Family::default(),
            orphans_cleaned: Counter::default(),
            events_posted: Family::default(),
        }
    }
}

fn status(ok: bool) -> String {
    if ok { "success" } else { "failure" }.to_owned()
}

impl NodeMetrics {
    /// Every metric, with the success/failure series of the counters
    /// dashboards and alerts watch present from the start at 0 (so the first
    /// failure shows as an increase, and the families are listed at once).
    pub fn new() -> Self {
        let m = Self::default();
        for ok in [true, false] {
            let _ = m
                .nvme_connects
                .get_or_create(&Status { status: status(ok) });
            let _ = m
                .stale_recoveries
                .get_or_create(&Status { status: status(ok) });
        }
        m
    }

    /// Registers every metric on `registry` (names include `rds_csi_`;
    /// counters get `_total` from the encoder).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rds_csi_volume_operations",
            "Node volume operations by operation and status",
            self.volume_operations.clone(),
        );
        registry.register(
            "rds_csi_volume_operation_duration_seconds",
            "Duration of node volume operations",
            self.volume_operation_duration.clone(),
        );
        registry.register(
            "rds_csi_nvme_connects",
            "NVMe/TCP connect attempts by status",
            self.nvme_connects.clone(),
        );
        registry.register(
            "rds_csi_nvme_connect_duration_seconds",
            "Duration of successful NVMe/TCP connects",
            self.nvme_connect_duration.clone(),
        );
        registry.register(
            "rds_csi_mount_operations",
            "Mount and unmount syscalls by operation and status",
            self.mount_operations.clone(),
        );
        registry.register(
            "rds_csi_stale_mounts_detected",
            "Stale mounts detected (device gone or renumbered)",
            self.stale_mounts_detected.clone(),
        );
        registry.register(
            "rds_csi_stale_recoveries",
            "Stale mount recoveries by status",
            self.stale_recoveries.clone(),
        );
        registry.register(
            "rds_csi_orphans_cleaned",
            "Orphaned managed connections cleaned at start",
            self.orphans_cleaned.clone(),
        );
        registry.register(
            "rds_csi_events_posted",
            "Node events handed to the event sink by reason",
            self.events_posted.clone(),
        );
    }

    pub(crate) fn operation(&self, operation: &str, ok: bool, secs: f64) {
        self.volume_operations
            .get_or_create(&OpStatus {
                operation: operation.to_owned(),
                status: status(ok),
            })
            .inc();
        self.volume_operation_duration
            .get_or_create(&Op {
                operation: operation.to_owned(),
            })
            .observe(secs);
    }

    pub(crate) fn nvme_connect(&self, ok: bool, secs: f64) {
        self.nvme_connects
            .get_or_create(&Status { status: status(ok) })
            .inc();
        if ok {
            self.nvme_connect_duration.observe(secs);
        }
    }

    pub(crate) fn mount_op(&self, operation: &str, ok: bool) {
        self.mount_operations
            .get_or_create(&OpStatus {
                operation: operation.to_owned(),
                status: status(ok),
            })
            .inc();
    }

    pub(crate) fn stale_recovery(&self, ok: bool) {
        self.stale_recoveries
            .get_or_create(&Status { status: status(ok) })
            .inc();
    }

    pub(crate) fn event(&self, reason: &str) {
        self.events_posted
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_match_the_go_driver() {
        let m = NodeMetrics::new();
        let mut reg = Registry::default();
        m.register(&mut reg);
        m.operation("stage", true, 0.3);
        m.nvme_connect(false, 1.0);
        m.stale_mounts_detected.inc();
        m.orphans_cleaned.inc();
        m.stale_recovery(true);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        for name in [
            "rds_csi_volume_operations_total{operation=\"stage\",status=\"success\"} 1",
            "rds_csi_volume_operation_duration_seconds_bucket{le=\"0.5\",operation=\"stage\"} 1",
            "rds_csi_nvme_connects_total{status=\"failure\"} 1",
            "rds_csi_nvme_connect_duration_seconds_count 0",
            "rds_csi_stale_mounts_detected_total 1",
            "rds_csi_stale_recoveries_total{status=\"success\"} 1",
            "rds_csi_orphans_cleaned_total 1",
            "rds_csi_nvme_connects_total{status=\"success\"} 0",
            "rds_csi_stale_recoveries_total{status=\"failure\"} 0",
        ] {
            assert!(out.contains(name), "missing {name} in\n{out}");
        }
    }
}
