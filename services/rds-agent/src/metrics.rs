//! Prometheus metrics (OpenMetrics text on `/metrics`).
//!
//! Kept from the Go driver (same name, same meaning; docs/ARCHITECTURE.md §10):
//! `rds_csi_rds_connection_state{address}`, `rds_csi_rds_reconnect_total{status}`,
//! `rds_csi_rds_reconnect_duration_seconds`. New here (the Go driver had no
//! per-command view): `rds_csi_rds_command_duration_seconds{verb}`,
//! `rds_csi_rds_commands_total{verb,outcome}`, `rds_csi_rds_errors_total{reason}`
//! (one per failed RPC, by bus reason), `rds_csi_rds_circuit_open`,
//! `rds_csi_rds_sessions_active`, `rds_csi_rds_sessions_max` (the bound, so
//! a dashboard shows saturation without knowing the flag),
//! `rds_csi_rds_pool_size_bytes{pool}` and `rds_csi_rds_pool_free_bytes{pool}`
//! (the storage pool, set by [`crate::capacity_poll`]; absent until its
//! first successful read, so "unknown" never reads as "0 bytes free").
//!
//! Served by `rds_bus::metrics_server` (with `/healthz`). Scrapes only read
//! in-memory counters: they never touch the RDS (the Go driver's scrapes
//! opened SSH sessions and timed out, docs/routeros.md §8.7).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AddressLabel {
    pub address: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabel {
    pub verb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbOutcomeLabel {
    pub verb: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    pub pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

fn command_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

pub struct Metrics {
    registry: Registry,
    address: String,
    connection_state: Family<AddressLabel, Gauge>,
    reconnects: Family<StatusLabel, Counter>,
    reconnect_duration: Histogram,
    command_duration: Family<VerbLabel, Histogram, fn() -> Histogram>,
    commands: Family<VerbOutcomeLabel, Counter>,
    errors: Family<ReasonLabel, Counter>,
    circuit_open: Gauge,
    sessions_active: Gauge,
    sessions_max: Gauge,
    pool_size: Family<PoolLabel, Gauge>,
    pool_free: Family<PoolLabel, Gauge>,
}

impl Metrics {
    /// `address` is the RDS `host:port` (label of the connection gauge).
    pub fn new(address: &str) -> Arc<Metrics> {
        let mut m = Metrics {
            registry: Registry::with_prefix("rds_csi"),
            address: address.to_owned(),
            connection_state: Family::default(),
            reconnects: Family::default(),
            reconnect_duration: Histogram::new([0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0]),
            command_duration: Family::new_with_constructor(command_histogram),
            commands: Family::default(),
            errors: Family::default(),
            circuit_open: Gauge::default(),
            sessions_active: Gauge::default(),
            sessions_max: Gauge::default(),
            pool_size: Family::default(),
            pool_free: Family::default(),
        };
        m.register_connection();
        m.register_commands();
        m.register_capacity();
        m.set_connected(false);
        m.seed_alert_series();
        Arc::new(m)
    }

    /// Connection state, reconnects and their duration.
    fn register_connection(&mut self) {
        self.registry.register(
            "rds_connection_state",
            "RDS SSH connection state (1 = connected, 0 = disconnected)",
            self.connection_state.clone(),
        );
        self.registry.register(
            "rds_reconnect",
            "RDS reconnect attempts by status (success/failure)",
            self.reconnects.clone(),
        );
        self.registry.register(
            "rds_reconnect_duration_seconds",
            "Time from losing the RDS to a successful reconnect",
            self.reconnect_duration.clone(),
        );
    }

    /// RouterOS command latency, outcomes and failed calls.
    fn register_commands(&mut self) {
        self.registry.register(
            "rds_command_duration_seconds",
            "Latency of RouterOS commands by verb (including session setup)",
            self.command_duration.clone(),
        );
        self.registry.register(
            "rds_commands",
            "RouterOS commands by verb and outcome",
            self.commands.clone(),
        );
        self.registry.register(
            "rds_errors",
            "Failed rds-agent calls by error reason",
            self.errors.clone(),
        );
    }

    /// Breaker, session use and pool capacity.
    fn register_capacity(&mut self) {
        self.registry.register(
            "rds_circuit_open",
            "1 while the circuit breaker towards the RDS is open",
            self.circuit_open.clone(),
        );
        self.registry.register(
            "rds_sessions_active",
            "RouterOS commands currently running (bounded by --max-sessions)",
            self.sessions_active.clone(),
        );
        self.registry.register(
            "rds_sessions_max",
            "Most RouterOS commands that may run at once (--max-sessions)",
            self.sessions_max.clone(),
        );
        self.registry.register(
            "rds_pool_size_bytes",
            "Size of the RDS storage pool in bytes (read every --pool-metrics-interval)",
            self.pool_size.clone(),
        );
        self.registry.register(
            "rds_pool_free_bytes",
            "Free bytes of the RDS storage pool (read every --pool-metrics-interval)",
            self.pool_free.clone(),
        );
    }

    /// Series the alerts watch exist from the start at 0, so the first
    /// failure is an increase (an absent series has none to show).
    fn seed_alert_series(&self) {
        for status in ["success", "failure"] {
            let _ = self.reconnects.get_or_create(&StatusLabel {
                status: status.to_owned(),
            });
        }
        for reason in [rds_bus::Reason::RdsUnreachable, rds_bus::Reason::RdsTimeout] {
            let _ = self.errors.get_or_create(&ReasonLabel {
                reason: reason.as_str().to_owned(),
            });
        }
    }

    pub fn set_connected(&self, up: bool) {
        self.connection_state
            .get_or_create(&AddressLabel {
                address: self.address.clone(),
            })
            .set(i64::from(up));
    }

    pub fn set_circuit_open(&self, open: bool) {
        self.circuit_open.set(i64::from(open));
    }

    pub fn reconnect(&self, success: bool, seconds: Option<f64>) {
        let status = if success { "success" } else { "failure" };
        self.reconnects
            .get_or_create(&StatusLabel {
                status: status.to_owned(),
            })
            .inc();
        if let Some(s) = seconds {
            self.reconnect_duration.observe(s);
        }
    }

    pub fn command(&self, verb: &str, outcome: &str, seconds: f64) {
        self.command_duration
            .get_or_create(&VerbLabel {
                verb: verb.to_owned(),
            })
            .observe(seconds);
        self.commands
            .get_or_create(&VerbOutcomeLabel {
                verb: verb.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn error(&self, reason: rds_bus::Reason) {
        self.errors
            .get_or_create(&ReasonLabel {
                reason: reason.as_str().to_owned(),
            })
            .inc();
    }

    pub fn session_started(&self) {
        self.sessions_active.inc();
    }

    pub fn session_ended(&self) {
        self.sessions_active.dec();
    }

    pub fn set_sessions_max(&self, n: usize) {
        self.sessions_max.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The storage pool's size and free bytes as last read from the RDS.
    pub fn set_pool_capacity(&self, pool: &str, size: u64, free: u64) {
        let label = PoolLabel {
            pool: pool.to_owned(),
        };
        let bytes = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.pool_size.get_or_create(&label).set(bytes(size));
        self.pool_free.get_or_create(&label).set(bytes(free));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_driver_names_are_kept() {
        let m = Metrics::new("10.0.0.1:22");
        m.set_connected(true);
        m.reconnect(true, Some(0.3));
        m.command("disk add", "ok", 0.01);
        m.error(rds_bus::Reason::RdsUnreachable);
        let text = m.encode();
        for needle in [
            "rds_csi_rds_connection_state{address=\"10.0.0.1:22\"} 1",
            "rds_csi_rds_reconnect_total{status=\"success\"} 1",
            "rds_csi_rds_reconnect_duration_seconds_count 1",
            "rds_csi_rds_command_duration_seconds_count{verb=\"disk add\"} 1",
            "rds_csi_rds_commands_total{verb=\"disk add\",outcome=\"ok\"} 1",
            "rds_csi_rds_errors_total{reason=\"RDS_UNREACHABLE\"} 1",
            "rds_csi_rds_circuit_open 0",
            "rds_csi_rds_sessions_max 0",
            "rds_csi_rds_reconnect_total{status=\"failure\"} 0",
            "rds_csi_rds_errors_total{reason=\"RDS_TIMEOUT\"} 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn storage_pool_gauges_are_absent_until_read() {
        let m = Metrics::new("10.0.0.1:22");
        let text = m.encode();
        // No series (and, with prometheus-client, no `# TYPE` line) until
        // the first read: unknown is not "0 bytes free".
        assert!(!text.contains("rds_csi_rds_pool_size_bytes"), "{text}");
        assert!(!text.contains("rds_csi_rds_pool_free_bytes"), "{text}");
        m.set_pool_capacity("storage-pool", 7_681_574_174_720, 7_301_927_047_168);
        let text = m.encode();
        for needle in [
            "rds_csi_rds_pool_size_bytes{pool=\"storage-pool\"} 7681574174720",
            "rds_csi_rds_pool_free_bytes{pool=\"storage-pool\"} 7301927047168",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
