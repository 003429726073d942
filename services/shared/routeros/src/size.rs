//! Numbers as RouterOS prints them: grouped byte counts (`53 687 091 200`), human sizes
//! (`5120.0MiB`), bit rates (`12.8Mbps`) and durations (`0ms`, `2d3h4m5s`), plus the
//! input-side rounding helper.

const MIB: u64 = 1024 * 1024;

/// Round a byte count **up** to a multiple of 1 MiB (docs/csi.md §5: sizes are sent as exact
/// bytes rounded up; the Go driver truncated, which was a bug). `None` on overflow.
/// `round_up_mib(0) == Some(0)`.
pub fn round_up_mib(bytes: u64) -> Option<u64> {
    bytes.div_ceil(MIB).checked_mul(MIB)
}

/// Format with space thousands separators: `53687091200` → `53 687 091 200` (docs/routeros.md
/// §4.5: used for `size`, `free`, I/O counters; not for ports, sector-size, file-offset).
pub fn format_grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Parse a grouped (`53 687 091 200`) or plain (`53687091200`) number. Lenient about where the
/// spaces are (a token cut across lines may lose or move one), strict about everything else.
pub fn parse_grouped(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b' ') {
        return None;
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    digits.parse().ok()
}

const UNITS: [&str; 5] = ["", "KiB", "MiB", "GiB", "TiB"];

/// Format a byte count the way RouterOS prints `file-size`, `/file size` and memory
/// (docs/routeros.md §4.6): below 10240 a bare integer; otherwise divide by 1024 while the value
/// is ≥ 10240 (up to TiB) and print one decimal (rounded half up) plus the unit.
/// `5368709120` → `5120.0MiB`, `10737418240` → `10.0GiB`, `1970278` → `1924.1KiB`.
pub fn format_human_size(bytes: u64) -> String {
    if bytes < 10240 {
        return bytes.to_string();
    }
    let b = u128::from(bytes);
    let mut k = 0usize;
    while k + 1 < UNITS.len() && b >= 10240u128 * (1u128 << (10 * k)) {
        k += 1;
    }
    let div = 1u128 << (10 * k);
    let tenths = (b * 10 + div / 2) / div;
    format!("{}.{}{}", tenths / 10, tenths % 10, UNITS[k])
}

/// Parse a human size (`5120.0MiB`, `50.0GiB`, `1924.1KiB`, `0`, `1167.0MiB`) into bytes.
///
/// Precision: the value is computed exactly in tenths of the unit (`1924.1KiB` → 1970278 bytes,
/// rounded half up), so `x.0` values are exact, but RouterOS rounded to 0.1 of the unit when it
/// printed, so the true size may differ by up to ±0.05 unit (e.g. ±51 MiB for GiB values). This
/// is why capacity is read from raw `size=` (docs/csi.md §5), never from `file-size`.
/// Accepted units: none, `B`, `KiB`, `MiB`, `GiB`, `TiB`, `PiB` (not `K`/`KB`).
pub fn parse_human_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let k = match unit {
        "" | "B" => 0u32,
        "KiB" => 1,
        "MiB" => 2,
        "GiB" => 3,
        "TiB" => 4,
        "PiB" => 5,
        _ => return None,
    };
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 6 {
        return None;
    }
    let int_v: u128 = int.parse().ok()?;
    let scale = 10u128.pow(u32::try_from(frac.len()).ok()?);
    let frac_v: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let unit_bytes = 1u128 << (10 * k);
    let total = (int_v * scale + frac_v) * unit_bytes;
    let bytes = (total + scale / 2) / scale;
    u64::try_from(bytes).ok()
}

/// A human-readable size as printed (`text`) plus the bytes it stands for (see
/// [`parse_human_size`] for the precision caveat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HumanSize {
    /// Exactly as printed, e.g. `5120.0MiB`.
    pub text: String,
    /// Parsed value in bytes (approximate unless the printed value is exact).
    pub bytes: u64,
}

impl HumanSize {
    /// The RouterOS rendering of an exact byte count.
    pub fn from_bytes(bytes: u64) -> Self {
        Self {
            text: format_human_size(bytes),
            bytes,
        }
    }

    /// Parse printed text; `None` if it is not a human size.
    pub fn parse(text: &str) -> Option<Self> {
        Some(Self {
            text: text.trim().to_owned(),
            bytes: parse_human_size(text)?,
        })
    }
}

/// Format a rate in bits per second like `/disk monitor-traffic` (`0bps`, `12.8Mbps`).
/// Rule (assumed; docs/routeros.md §4.10 has only examples): below 1000 a bare integer + `bps`;
/// otherwise divide by 1000 while ≥ 1000 (k, M, G, T) and print one decimal.
pub fn format_rate(bits_per_second: u64) -> String {
    const U: [(&str, u128); 5] = [
        ("bps", 1),
        ("kbps", 1_000),
        ("Mbps", 1_000_000),
        ("Gbps", 1_000_000_000),
        ("Tbps", 1_000_000_000_000),
    ];
    if bits_per_second < 1000 {
        return format!("{bits_per_second}bps");
    }
    let b = u128::from(bits_per_second);
    let (name, div) = U
        .iter()
        .rev()
        .find(|(_, d)| b >= *d)
        .copied()
        .unwrap_or(U[0]);
    let tenths = (b * 10 + div / 2) / div;
    format!("{}.{}{}", tenths / 10, tenths % 10, name)
}

/// Parse a rate (`0bps`, `12.8Mbps`, `1.5kbps`) into bits per second (exact in tenths).
pub fn parse_rate(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult): (&str, u128) = if let Some(n) = s.strip_suffix("Tbps") {
        (n, 1_000_000_000_000)
    } else if let Some(n) = s.strip_suffix("Gbps") {
        (n, 1_000_000_000)
    } else if let Some(n) = s.strip_suffix("Mbps") {
        (n, 1_000_000)
    } else if let Some(n) = s.strip_suffix("kbps") {
        (n, 1_000)
    } else if let Some(n) = s.strip_suffix("bps") {
        (n, 1)
    } else {
        return None;
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 6
    {
        return None;
    }
    let scale = 10u128.pow(u32::try_from(frac.len()).ok()?);
    let int_v: u128 = int.parse().ok()?;
    let frac_v: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let v = ((int_v * scale + frac_v) * mult + scale / 2) / scale;
    u64::try_from(v).ok()
}

/// Format a duration in milliseconds RouterOS style: `0ms`, `250ms`, `1s230ms`, `2d3h4m5s`.
/// (Components with value 0 are omitted; `w` weeks are not used.)
pub fn format_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0ms".to_owned();
    }
    let parts = [
        (86_400_000u64, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ];
    let mut rest = ms;
    let mut out = String::new();
    for (unit, name) in parts {
        let n = rest / unit;
        rest %= unit;
        if n > 0 {
            out.push_str(&format!("{n}{name}"));
        }
    }
    out
}

/// Parse a RouterOS duration (`0ms`, `2d3h4m5s`, `1w2d`, `1s230ms`, `15s`) into milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        let n: u64 = s.get(start..i)?.parse().ok()?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match s.get(ustart..i)? {
            "w" => 604_800_000,
            "d" => 86_400_000,
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1_000,
            "ms" => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    Some(total)
}
