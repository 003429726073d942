//! Prometheus metrics under the Go driver's names (reference
//! docs/ARCHITECTURE.md §10), served as OpenMetrics text on `/metrics` by
//! `rds_bus::metrics_server`.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

fn op_histogram() -> Histogram {
    Histogram::new(OP_BUCKETS.iter().copied())
}

const OP_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
const MIGRATION_BUCKETS: &[f64] = &[15.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0];

/// Registers `metric` under `name` and hands it back for the struct field
/// (the registry keeps its own clone, sharing the same counters).
fn register<M>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M
where
    M: prometheus_client::registry::Metric + Clone,
{
    registry.register(name, help, metric.clone());
    metric
}

pub struct Metrics {
    registry: Registry,
    attach: Family<Labels, Counter>,
    detach: Family<Labels, Counter>,
    conflicts: Counter,
    reconcile: Family<Labels, Counter>,
    op_duration: Family<Labels, Histogram, fn() -> Histogram>,
    stale_cleared: Counter,
    migrations: Family<Labels, Counter>,
    migration_duration: Histogram,
    active_migrations: Gauge,
    volumes_attached: Gauge,
    events: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::default();
        Metrics {
            attach: register(
                &mut r,
                "rds_csi_attachment_attach",
                "Attach operations by status",
                Family::default(),
            ),
            detach: register(
                &mut r,
                "rds_csi_attachment_detach",
                "Detach operations by status",
                Family::default(),
            ),
            conflicts: register(
                &mut r,
                "rds_csi_attachment_conflicts",
                "Attaches refused because another node holds a single-node volume",
                Counter::default(),
            ),
            reconcile: register(
                &mut r,
                "rds_csi_attachment_reconcile",
                "Reconciler actions (clear_stale, node_watcher_trigger, forget, forget_kept)",
                Family::default(),
            ),
            op_duration: register(
                &mut r,
                "rds_csi_attachment_operation_duration_seconds",
                "Duration of attach, attach_secondary, detach, detach_partial and reconcile",
                Family::new_with_constructor(op_histogram as fn() -> Histogram),
            ),
            stale_cleared: register(
                &mut r,
                "rds_csi_attachment_stale_cleared",
                "Attachments cleared because their node or VolumeAttachment was gone",
                Counter::default(),
            ),
            migrations: register(
                &mut r,
                "rds_csi_migration_migrations",
                "Finished live migrations by result (success, timeout, failed)",
                Family::default(),
            ),
            migration_duration: register(
                &mut r,
                "rds_csi_migration_duration_seconds",
                "Duration of finished live migrations",
                Histogram::new(MIGRATION_BUCKETS.iter().copied()),
            ),
            active_migrations: register(
                &mut r,
                "rds_csi_migration_active_migrations",
                "Live-migration windows currently open",
                Gauge::default(),
            ),
            // The Go controller exported the attachment-table size under this name.
            volumes_attached: register(
                &mut r,
                "rds_csi_nvme_connections_active",
                "Volumes in the attachment table (a dual-attached volume counts once)",
                Gauge::default(),
            ),
            events: register(
                &mut r,
                "rds_csi_attachment_events",
                "Event posts to event-service by result (posted, failed, dropped)",
                Family::default(),
            ),
            registry: r,
        }
    }

    pub fn attach(&self, ok: bool) {
        self.attach.get_or_create(&status(ok)).inc();
    }
    pub fn detach(&self, ok: bool) {
        self.detach.get_or_create(&status(ok)).inc();
    }
    pub fn conflict(&self) {
        self.conflicts.inc();
    }
    pub fn reconcile(&self, action: &'static str) {
        self.reconcile
            .get_or_create(&vec![("action", action)])
            .inc();
    }
    pub fn op(&self, operation: &'static str, took: Duration) {
        self.op_duration
            .get_or_create(&vec![("operation", operation)])
            .observe(took.as_secs_f64());
    }
    pub fn stale_cleared(&self, n: u64) {
        self.stale_cleared.inc_by(n);
    }
    pub fn migration_started(&self) {
        self.active_migrations.inc();
    }
    /// A window closed (success, timeout or failed) after `took`.
    pub fn migration_finished(&self, result: &'static str, took: Duration) {
        self.active_migrations.dec();
        self.migrations
            .get_or_create(&vec![("result", result)])
            .inc();
        self.migration_duration.observe(took.as_secs_f64());
    }
    /// A window closed without a result of its own (its node was cleared
    /// as stale, or it was detached elsewhere).
    pub fn migration_closed(&self) {
        self.active_migrations.dec();
    }
    /// After a rebuild: the open windows and the table size as found.
    pub fn set_table(&self, volumes: usize, open_migrations: usize) {
        self.volumes_attached
            .set(i64::try_from(volumes).unwrap_or(i64::MAX));
        self.active_migrations
            .set(i64::try_from(open_migrations).unwrap_or(i64::MAX));
    }
    pub fn set_volumes(&self, volumes: usize) {
        self.volumes_attached
            .set(i64::try_from(volumes).unwrap_or(i64::MAX));
    }
    pub fn event(&self, result: &'static str) {
        self.events.get_or_create(&vec![("result", result)]).inc();
    }

    /// OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

fn status(ok: bool) -> Labels {
    vec![("status", if ok { "success" } else { "failure" })]
}
