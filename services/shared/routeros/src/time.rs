//! `last-modified=YYYY-MM-DD HH:MM:SS` as printed by `/file print detail` (docs/routeros.md §4.9),
//! with a small civil-calendar conversion (no date crate needed). RouterOS prints the router's
//! local time without a zone; [`CivilDateTime::unix_seconds`] treats it as UTC.

/// A calendar date and time of day (no zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDateTime {
    /// Year, e.g. 2025.
    pub year: i32,
    /// 1..=12
    pub month: u8,
    /// 1..=31
    pub day: u8,
    /// 0..=23
    pub hour: u8,
    /// 0..=59
    pub minute: u8,
    /// 0..=59 (60 tolerated)
    pub second: u8,
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

impl CivilDateTime {
    /// Seconds since 1970-01-01 00:00:00, treating the value as UTC.
    pub fn unix_seconds(&self) -> i64 {
        days_from_civil(
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        ) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// Inverse of [`CivilDateTime::unix_seconds`]. `None` if the year does not fit in `i32`.
    pub fn from_unix_seconds(secs: i64) -> Option<Self> {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        Some(Self {
            year: i32::try_from(y).ok()?,
            month: u8::try_from(m).ok()?,
            day: u8::try_from(d).ok()?,
            hour: u8::try_from(rem / 3600).ok()?,
            minute: u8::try_from(rem % 3600 / 60).ok()?,
            second: u8::try_from(rem % 60).ok()?,
        })
    }

    /// v7 text form `YYYY-MM-DD HH:MM:SS`.
    pub fn to_routeros(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// Parse v7 `YYYY-MM-DD HH:MM:SS` or v6 `mon/dd/yyyy HH:MM:SS` (e.g. `nov/11/2025 14:32:41`).
    pub fn parse(s: &str) -> Option<Self> {
        let (date, time) = s.trim().split_once(' ')?;
        let mut t = time.trim().split(':');
        let hour: u8 = num(t.next()?, 2)?;
        let minute: u8 = num(t.next()?, 2)?;
        let second: u8 = num(t.next()?, 2)?;
        if t.next().is_some() || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let (year, month, day) = if let Some((mon, rest)) = date.split_once('/') {
            let (d, y) = rest.split_once('/')?;
            let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))?;
            (
                num::<i32>(y, 4)?,
                u8::try_from(month + 1).ok()?,
                num::<u8>(d, 2)?,
            )
        } else {
            let mut p = date.split('-');
            let y = num::<i32>(p.next()?, 4)?;
            let m = num::<u8>(p.next()?, 2)?;
            let d = num::<u8>(p.next()?, 2)?;
            if p.next().is_some() {
                return None;
            }
            (y, m, d)
        };
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        Some(Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }
}

fn num<T: std::str::FromStr>(s: &str, len: usize) -> Option<T> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A `last-modified` value: the printed text and, when it parses, the civil date-time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastModified {
    /// Exactly as printed, e.g. `2025-11-11 14:32:41`.
    pub text: String,
    /// Parsed form (`None` if the text is in an unknown format).
    pub civil: Option<CivilDateTime>,
}

impl LastModified {
    /// Parse printed text (never fails; `civil` is `None` for unknown formats).
    pub fn parse(text: &str) -> Self {
        Self {
            text: text.trim().to_owned(),
            civil: CivilDateTime::parse(text),
        }
    }

    /// The v7 rendering of a date-time.
    pub fn from_civil(civil: CivilDateTime) -> Self {
        Self {
            text: civil.to_routeros(),
            civil: Some(civil),
        }
    }

    /// Seconds since the epoch (treating the printed time as UTC), if parsed.
    pub fn unix_seconds(&self) -> Option<i64> {
        self.civil.map(|c| c.unix_seconds())
    }
}
