//! The one duration grammar of every flag and environment variable of every
//! binary (docs/decisions.md §14): a bare integer is seconds (`300`);
//! otherwise jiff's friendly format (`500ms`, `10s`, `2m`, `1h`, `1h30m`,
//! `1.5s`, `2 minutes`) or ISO 8601 (`PT5M`). Negative values are refused.
//! Before this module each binary had its own parser; every form one of them
//! took still parses to the same value (tests below).

use std::time::Duration;

/// Parses a duration; zero is allowed (some flags mean "off" by it).
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    if t.is_empty() || t.starts_with('-') {
        return Err(bad(s));
    }
    let sd: jiff::SignedDuration = t.parse().map_err(|_| bad(s))?;
    Duration::try_from(sd).map_err(|_| bad(s))
}

/// [`parse`], refusing zero (timeouts and intervals that must tick).
pub fn parse_positive(s: &str) -> Result<Duration, String> {
    let d = parse(s)?;
    if d.is_zero() {
        return Err(format!("{:?}: must be greater than zero", short(s)));
    }
    Ok(d)
}

/// A whole number of milliseconds: the value of the old `*_ms` flags, kept as
/// aliases (a bare number there meant milliseconds, not seconds).
pub fn parse_millis(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("{:?} is not a whole number of milliseconds", short(s)))
}

/// The canonical spelling, which [`parse`] reads back to the same value:
/// whole seconds as `Ns`, anything finer as `Nms` (sub-millisecond parts are
/// dropped: no flag is finer than a millisecond).
pub fn format(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn bad(s: &str) -> String {
    format!(
        "{:?} is not a duration (e.g. 500ms, 10s, 2m, 1h30m, or bare seconds)",
        short(s)
    )
}

/// Echoed input is cut short so a hostile value cannot flood a log line.
fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Every spelling one of the old per-binary parsers accepted, with the
    /// value it gave (rds-agent, csi-frontend, rdsctl: ms/s/m/h suffixes and
    /// bare seconds; attachment-service: jiff's friendly format).
    #[test]
    fn every_old_form_parses_to_the_same_value() {
        let cases = [
            ("500ms", ms(500)),
            ("5s", ms(5_000)),
            ("10s", ms(10_000)),
            ("2m", ms(120_000)),
            ("5m", ms(300_000)),
            ("30m", ms(1_800_000)),
            ("1h", ms(3_600_000)),
            ("7", ms(7_000)),
            ("300", ms(300_000)),
            ("0", ms(0)),
            ("0s", ms(0)),
            (" 5s ", ms(5_000)),
            ("1h30m", ms(5_400_000)),
            ("300s", ms(300_000)),
            ("1500ms", ms(1_500)),
            ("200ms", ms(200)),
            ("15s", ms(15_000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn richer_forms_parse_too() {
        assert_eq!(parse("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse("2 minutes"), Ok(ms(120_000)));
        assert_eq!(parse("PT5M"), Ok(ms(300_000)));
        assert_eq!(parse("1h 30m 10s"), Ok(ms(5_410_000)));
    }

    #[test]
    fn garbage_and_negatives_are_refused_with_the_input_named() {
        for text in ["", "soon", "-5s", "5x", "ms", "1.5.2s", "-1", "5d"] {
            let err = parse(text).unwrap_err();
            assert!(err.contains("not a duration"), "{text:?}: {err}");
        }
        let long = "x".repeat(500);
        assert!(parse(&long).unwrap_err().len() < 200, "echo is bounded");
    }

    #[test]
    fn positive_refuses_zero_in_any_spelling() {
        for text in ["0", "0s", "0ms", "0m"] {
            assert!(
                parse_positive(text)
                    .unwrap_err()
                    .contains("greater than zero")
            );
        }
        assert_eq!(parse_positive("3s"), Ok(ms(3_000)));
    }

    #[test]
    fn millis_alias_keeps_the_old_integer_meaning() {
        assert_eq!(parse_millis("30000"), Ok(ms(30_000)));
        assert_eq!(parse_millis("0"), Ok(ms(0)));
        assert!(parse_millis("30s").is_err());
    }

    #[test]
    fn format_reads_back_to_the_same_value() {
        for d in [ms(0), ms(1), ms(500), ms(1_500), ms(10_000), ms(5_400_000)] {
            assert_eq!(parse(&format(d)), Ok(d), "{d:?}");
        }
        assert_eq!(format(ms(10_000)), "10s");
        assert_eq!(format(ms(1_500)), "1500ms");
    }
}
