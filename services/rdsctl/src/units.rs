//! Sizes and durations as people type them (`1Gi`, `512Mi`, `10G`, `5s`).

use std::time::Duration;

/// `1Gi`, `512Mi`, `4Ki`, `1Ti` (binary), `1G`, `500M` (decimal), `1048576`
/// (bytes). No fractions: a size that reaches RouterOS must be exact.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!("{s:?} is not a size (e.g. 1Gi, 512Mi, 1073741824)"));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: number too large"))?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (Ki, Mi, Gi, Ti, K, M, G, T)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?}: size too large"))
}

/// Bytes in the largest binary unit that divides them exactly, else plain.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    if bytes == 0 {
        return "0".to_owned();
    }
    for (name, size) in UNITS {
        if bytes.is_multiple_of(size) {
            return format!("{}{name}", bytes / size);
        }
    }
    format!("{bytes}B")
}

/// Durations read the one grammar of every binary (docs/decisions.md §14).
pub use rds_bus::duration::parse as parse_duration;

/// Milliseconds with one decimal below 10 s, whole ms above (for the demo).
pub fn format_elapsed(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10_000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        assert_eq!(parse_size("1Gi").unwrap(), 1 << 30);
        assert_eq!(parse_size("512Mi").unwrap(), 512 << 20);
        assert_eq!(parse_size("10G").unwrap(), 10_000_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("1.5Gi").is_err());
        assert!(parse_size("Gi").is_err());
        assert!(parse_size("1Xi").is_err());
        assert!(parse_size("99999999999Ti").is_err());
    }

    #[test]
    fn sizes_format_exactly() {
        assert_eq!(format_size(1 << 30), "1Gi");
        assert_eq!(format_size(3 << 20), "3Mi");
        assert_eq!(format_size(1500), "1500B");
        assert_eq!(format_size(0), "0");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").is_err());
    }
}
