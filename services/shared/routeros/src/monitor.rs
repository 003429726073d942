//! `/disk monitor-traffic <slot> once` (docs/routeros.md §4.10): right-aligned keys and values,
//! grouped counters, rates in bits/s (`12.8Mbps`), times (`0ms`).

use crate::error::RouterOsError;
use crate::singleton::{SingletonStyle, parse_singleton, render_singleton};
use crate::size::{
    format_duration_ms, format_grouped, format_rate, parse_duration_ms, parse_grouped, parse_rate,
};
use crate::wrap::LineEnding;

/// Typed `/disk monitor-traffic ... once` output. Counters in units, bytes in bytes, rates in
/// bits per second, times in milliseconds. `None` = absent or unparsable (see `raw`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct MonitorTraffic {
    pub slot: Option<String>,
    pub read_ops: Option<u64>,
    pub read_ops_per_second: Option<u64>,
    pub read_bytes: Option<u64>,
    pub read_rate_bps: Option<u64>,
    pub read_merges: Option<u64>,
    pub read_time_ms: Option<u64>,
    pub write_ops: Option<u64>,
    pub write_ops_per_second: Option<u64>,
    pub write_bytes: Option<u64>,
    pub write_rate_bps: Option<u64>,
    pub write_merges: Option<u64>,
    pub write_time_ms: Option<u64>,
    pub in_flight_ops: Option<u64>,
    pub active_time_ms: Option<u64>,
    pub wait_time_ms: Option<u64>,
    pub discard_ops: Option<u64>,
    pub discard_bytes: Option<u64>,
    pub discard_merges: Option<u64>,
    pub discard_time_ms: Option<u64>,
    pub flush_ops: Option<u64>,
    pub flush_time_ms: Option<u64>,
    /// Every `key: value` as printed, in order.
    pub raw: Vec<(String, String)>,
}

#[derive(Clone, Copy)]
enum Kind {
    Count,
    Rate,
    Time,
}

macro_rules! monitor_fields {
    ($($key:literal => $field:ident : $kind:ident),* $(,)?) => {
        const FIELDS: &[(&str, Kind)] = &[$(($key, Kind::$kind)),*];

        impl MonitorTraffic {
            fn field_mut(&mut self, key: &str) -> Option<&mut Option<u64>> {
                match key {
                    $($key => Some(&mut self.$field),)*
                    _ => None,
                }
            }
            fn field(&self, key: &str) -> Option<u64> {
                match key {
                    $($key => self.$field,)*
                    _ => None,
                }
            }
        }
    };
}

monitor_fields! {
    "read-ops" => read_ops: Count,
    "read-ops-per-second" => read_ops_per_second: Count,
    "read-bytes" => read_bytes: Count,
    "read-rate" => read_rate_bps: Rate,
    "read-merges" => read_merges: Count,
    "read-time" => read_time_ms: Time,
    "write-ops" => write_ops: Count,
    "write-ops-per-second" => write_ops_per_second: Count,
    "write-bytes" => write_bytes: Count,
    "write-rate" => write_rate_bps: Rate,
    "write-merges" => write_merges: Count,
    "write-time" => write_time_ms: Time,
    "in-flight-ops" => in_flight_ops: Count,
    "active-time" => active_time_ms: Time,
    "wait-time" => wait_time_ms: Time,
    "discard-ops" => discard_ops: Count,
    "discard-bytes" => discard_bytes: Count,
    "discard-merges" => discard_merges: Count,
    "discard-time" => discard_time_ms: Time,
    "flush-ops" => flush_ops: Count,
    "flush-time" => flush_time_ms: Time,
}

impl MonitorTraffic {
    /// The printed `key: value` pairs in RouterOS order (only fields that are set).
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(s) = &self.slot {
            out.push(("slot".to_owned(), s.clone()));
        }
        for (key, kind) in FIELDS {
            if let Some(v) = self.field(key) {
                let text = match kind {
                    Kind::Count => format_grouped(v),
                    Kind::Rate => format_rate(v),
                    Kind::Time => format_duration_ms(v),
                };
                out.push(((*key).to_owned(), text));
            }
        }
        out
    }

    /// An all-zero record for `slot` (what an idle disk shows).
    pub fn zero(slot: &str) -> Self {
        let mut m = Self {
            slot: Some(slot.to_owned()),
            ..Self::default()
        };
        for (key, _) in FIELDS {
            if let Some(f) = m.field_mut(key) {
                *f = Some(0);
            }
        }
        m
    }
}

/// Parse `/disk monitor-traffic <slot> once` output.
pub fn parse_monitor_traffic(text: &str) -> Result<MonitorTraffic, RouterOsError> {
    let single = parse_singleton(text)?;
    let mut m = MonitorTraffic::default();
    for (k, v) in &single.pairs {
        if k == "slot" {
            m.slot = Some(v.clone());
            continue;
        }
        let kind = FIELDS
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, kind)| *kind);
        let parsed = match kind {
            Some(Kind::Count) => parse_grouped(v),
            Some(Kind::Rate) => parse_rate(v),
            Some(Kind::Time) => parse_duration_ms(v),
            None => None,
        };
        if let Some(f) = m.field_mut(k) {
            *f = parsed;
        }
    }
    m.raw = single.pairs;
    Ok(m)
}

/// Render like RouterOS: keys right-aligned to the longest key + 2, values right-aligned to
/// the longest value, then the blank line that ends exec output.
pub fn render_monitor_traffic(m: &MonitorTraffic, line_ending: LineEnding) -> String {
    render_singleton(
        &m.pairs(),
        &SingletonStyle {
            min_key_width: 0,
            right_align_values: true,
            line_ending,
            trailing_blank_line: true,
        },
    )
}
