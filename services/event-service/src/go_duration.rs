//! Go's `time.Duration.String()` and `Duration.Round`, reproduced so event
//! messages read exactly as the Go driver's (docs/csi.md
//! §9.2): `0s`, `750ms`, `1.234s`, `45s`, `5m0s`, `1h0m0s`, `1h2m3.5s`.
//!
//! Rules (Go `time/time.go`, `Duration.format`):
//! - below one second the largest fitting unit of ns, µs (U+00B5) or ms is
//!   used with a fraction and no trailing zeros: `1.5ms`, `500µs`, `7ns`;
//!   zero is `0s`;
//! - from one second on: `[<h>h][<m>m]<s>[.<frac>]s`, where minutes are
//!   printed whenever hours are (`1h0m0s`) and seconds always (`5m0s`);
//! - `Round(m)` rounds halfway values away from zero.
//!
//! Our inputs are non-negative (proto `uint`s). Go's Duration is an `int64`
//! of nanoseconds; larger inputs saturate at its maximum, as Go's `Round` does.

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// Go's `maxDuration` (`1<<63 - 1` ns).
const GO_MAX_NANOS: u64 = i64::MAX as u64;

/// `time.Duration(ms) * time.Millisecond`, saturated like Go's Round would.
pub fn from_millis(ms: u64) -> u64 {
    ms.saturating_mul(NANOS_PER_MILLI).min(GO_MAX_NANOS)
}

/// `time.Duration(s) * time.Second`, saturated.
pub fn from_secs(s: u64) -> u64 {
    s.saturating_mul(NANOS_PER_SECOND).min(GO_MAX_NANOS)
}

/// `d.Round(m)` for non-negative `d` (halfway rounds up, i.e. away from zero;
/// on overflow Go returns maxDuration).
pub fn round(d: u64, m: u64) -> u64 {
    if m == 0 {
        return d;
    }
    let r = d % m;
    if r + r < m {
        return d - r;
    }
    match d.checked_add(m - r) {
        Some(up) if up <= GO_MAX_NANOS => up,
        _ => GO_MAX_NANOS,
    }
}

/// `d.Round(time.Millisecond).String()` for a millisecond count.
pub fn millis_rounded_to_millis(ms: u64) -> String {
    format(round(from_millis(ms), NANOS_PER_MILLI))
}

/// `d.Round(time.Second).String()` for a millisecond count.
pub fn millis_rounded_to_seconds(ms: u64) -> String {
    format(round(from_millis(ms), NANOS_PER_SECOND))
}

/// `d.Round(time.Second).String()` for a second count.
pub fn seconds(s: u64) -> String {
    format(round(from_secs(s), NANOS_PER_SECOND))
}

/// `time.Duration(nanos).String()` for non-negative durations.
pub fn format(nanos: u64) -> String {
    if nanos < NANOS_PER_SECOND {
        if nanos == 0 {
            return "0s".to_owned();
        }
        let (unit, prec) = if nanos < NANOS_PER_MICRO {
            ("ns", 0)
        } else if nanos < NANOS_PER_MILLI {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        let (int, frac) = split_fraction(nanos, prec);
        return format!("{int}{frac}{unit}");
    }
    let (secs, frac) = split_fraction(nanos, 9);
    let s = secs % 60;
    let mins = secs / 60;
    if mins == 0 {
        return format!("{s}{frac}s");
    }
    let m = mins % 60;
    let h = mins / 60;
    if h == 0 {
        format!("{m}m{s}{frac}s")
    } else {
        format!("{h}h{m}m{s}{frac}s")
    }
}

/// Splits `v / 10^prec` into its integer part and `.digits` (trailing zeros
/// and a bare point omitted), like Go's `fmtFrac`.
fn split_fraction(v: u64, prec: u32) -> (u64, String) {
    if prec == 0 {
        return (v, String::new());
    }
    let scale = 10u64.pow(prec);
    let frac = v % scale;
    if frac == 0 {
        return (v / scale, String::new());
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (v / scale, format!(".{}", digits.trim_end_matches('0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings are what Go 1.22 prints for the same values.
    #[test]
    fn formats_like_go() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (4 * 60 * NANOS_PER_SECOND + 5 * NANOS_PER_SECOND, "4m5s"),
            (
                4 * 60 * NANOS_PER_SECOND + 5 * NANOS_PER_SECOND + 1_000_000,
                "4m5.001s",
            ),
            (
                5 * 3600 * NANOS_PER_SECOND + 6 * 60 * NANOS_PER_SECOND + 7_001_000_000,
                "5h6m7.001s",
            ),
            (8 * 60 * NANOS_PER_SECOND + 1, "8m0.000000001s"),
            (3600 * NANOS_PER_SECOND, "1h0m0s"),
            (300 * NANOS_PER_SECOND, "5m0s"),
            (GO_MAX_NANOS, "2562047h47m16.854775807s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(format(*nanos), *want, "{nanos} ns");
        }
    }

    #[test]
    fn rounds_like_go() {
        assert_eq!(millis_rounded_to_millis(1234), "1.234s");
        assert_eq!(millis_rounded_to_millis(50), "50ms");
        assert_eq!(millis_rounded_to_seconds(45_499), "45s");
        assert_eq!(millis_rounded_to_seconds(45_500), "46s");
        assert_eq!(millis_rounded_to_seconds(499), "0s");
        assert_eq!(seconds(300), "5m0s");
        assert_eq!(seconds(3600), "1h0m0s");
        assert_eq!(
            millis_rounded_to_millis(u64::MAX),
            "2562047h47m16.854775807s"
        );
    }
}
