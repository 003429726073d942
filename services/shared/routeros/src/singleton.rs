//! Singleton (`key: value`) prints: `/system resource print`, `/system identity print`,
//! `/disk monitor-traffic ... once` (docs/routeros.md §4.10, §4.11).
//!
//! Keys are right-aligned so that the colons line up; the exec output ends with an extra blank
//! line (`  name: mikrotik-sim\r\n\r\n`). Values are left-aligned after `: ` in `/system`
//! prints, right-aligned to the longest value in `monitor-traffic`.

use crate::classify::classify_error_line;
use crate::error::{RouterOsError, shorten};
use crate::wrap::{LineEnding, join_lines};

/// An ordered `key: value` print.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Singleton {
    /// Pairs in printed order, keys and values trimmed.
    pub pairs: Vec<(String, String)>,
}

impl Singleton {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Layout of a singleton print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingletonStyle {
    /// Minimum width the keys are right-aligned to (the colon follows). The effective width is
    /// `max(min_key_width, 2 + longest key)`; `/system resource print` uses 25 because its
    /// full key set includes `write-sect-since-reboot`.
    pub min_key_width: usize,
    /// Right-align values to the longest value (monitor-traffic) instead of left-aligning.
    pub right_align_values: bool,
    /// Line terminator.
    pub line_ending: LineEnding,
    /// Append the blank line that ends exec output.
    pub trailing_blank_line: bool,
}

impl Default for SingletonStyle {
    fn default() -> Self {
        Self {
            min_key_width: 0,
            right_align_values: false,
            line_ending: LineEnding::Crlf,
            trailing_blank_line: true,
        }
    }
}

/// Render `key: value` lines.
pub fn render_singleton(pairs: &[(String, String)], style: &SingletonStyle) -> String {
    let kw = pairs
        .iter()
        .map(|(k, _)| k.len() + 2)
        .max()
        .unwrap_or(0)
        .max(style.min_key_width);
    let vw = pairs.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let lines: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            if style.right_align_values {
                format!("{k:>kw$}: {v:>vw$}")
            } else {
                format!("{k:>kw$}: {v}")
            }
        })
        .collect();
    let mut out = join_lines(&lines, style.line_ending);
    if style.trailing_blank_line {
        out.push_str(style.line_ending.as_str());
    }
    out
}

fn is_key(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
        })
}

/// Parse a singleton print. Blank lines are skipped; a line without `key:` continues the
/// previous value (joined with one space). Errors: a RouterOS error line → `Device`; text
/// before the first key → `Parse`.
pub fn parse_singleton(text: &str) -> Result<Singleton, RouterOsError> {
    let mut out = Singleton::default();
    for (idx, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(e) = classify_error_line(line) {
            return Err(RouterOsError::Device(e));
        }
        if let Some((k, v)) = line.split_once(':')
            && is_key(k.trim())
            && (v.is_empty() || v.starts_with(' '))
        {
            out.pairs.push((k.trim().to_owned(), v.trim().to_owned()));
            continue;
        }
        match out.pairs.last_mut() {
            Some((_, v)) => {
                v.push(' ');
                v.push_str(line.trim());
            }
            None => {
                return Err(RouterOsError::Parse {
                    line: idx + 1,
                    reason: format!("expected `key: value`, got {}", shorten(line)),
                });
            }
        }
    }
    Ok(out)
}
