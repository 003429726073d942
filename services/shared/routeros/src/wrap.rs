//! The `print detail` line packer (docs/routeros.md §4.3) and render options.
//!
//! Rule reproduced from the captures: tokens (`key=value`, a value may contain spaces) are
//! packed left to right separated by one space. A token that would push a line past `width`
//! (78 by default) starts a new continuation line indented to the property column. A token
//! that does not fit on the *current* line starts a new line even if it will be cut there; if
//! it is longer than the room on that line it is cut at the limit and continues at the start of
//! the next continuation line, where packing carries on after it. (the synthesized record of docs/routeros.md §4.7:
//! `model="/storage-pool/.../pvc-...-c2c6` fills a fresh line to exactly 78 characters and
//! `ccb56dd8.img" size=5 368 709 120 ...` follows.) The cut position is unverified on hardware,
//! so [`CutRule::BeforeSeparator`] offers the alternative.

/// Line terminator. RouterOS exec output uses CRLF (docs/routeros.md §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEnding {
    /// `\r\n` (exec channel, default)
    #[default]
    Crlf,
    /// `\n`
    Lf,
}

impl LineEnding {
    /// The terminator text.
    pub fn as_str(self) -> &'static str {
        match self {
            LineEnding::Crlf => "\r\n",
            LineEnding::Lf => "\n",
        }
    }
}

/// Where a token longer than the room on a line is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CutRule {
    /// Exactly at the width limit (default; matches the synthesized record of docs/routeros.md §4.7).
    #[default]
    AtLimit,
    /// Before the last `-` or `/` that still fits (never inside the `key=` part); falls back
    /// to the limit when there is none. The next line then starts with the `-`/`/`.
    BeforeSeparator,
}

/// How records are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Maximum line length in characters (78 = 80-column terminal, the exec default).
    /// Widths below ~40 are not supported for round-tripping (keys could be cut).
    pub width: usize,
    /// Line terminator.
    pub line_ending: LineEnding,
    /// Cut rule for over-long tokens.
    pub cut_rule: CutRule,
    /// Print a space after the last complete token of every line (MikroTik's `/file` example
    /// does this; the captures of `/disk` and the synthesized outputs do not). The width check
    /// ignores this trailing space. Cut segments never get one.
    pub trailing_space: bool,
    /// Print a blank line after every record (docs/routeros.md §4.4). The synthesized docs/routeros.md §4.9
    /// `/file` output has none, so turn it off to reproduce that one.
    pub blank_line_after_record: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            width: 78,
            line_ending: LineEnding::Crlf,
            cut_rule: CutRule::AtLimit,
            trailing_space: false,
            blank_line_after_record: true,
        }
    }
}

/// Largest char boundary ≤ `i`.
fn floor_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn cut_index(rest: &str, avail: usize, rule: CutRule, first_segment: bool) -> usize {
    let limit = floor_boundary(rest, avail);
    let fallback = if limit == 0 {
        // Always make progress: at least one character.
        rest.chars().next().map_or(rest.len(), char::len_utf8)
    } else {
        limit
    };
    match rule {
        CutRule::AtLimit => fallback,
        CutRule::BeforeSeparator => {
            let min = if first_segment {
                rest.find('=').map_or(1, |e| e + 1)
            } else {
                1
            };
            let bytes = rest.as_bytes();
            (min..=limit.min(bytes.len().saturating_sub(1)))
                .rev()
                .find(|&i| matches!(bytes.get(i), Some(b'-' | b'/')))
                .unwrap_or(fallback)
        }
    }
}

/// Pack `tokens` into lines. The first line starts with `first_prefix` (e.g. `31 B   t       `,
/// already padded to the property column, or empty); continuation lines start with `indent`
/// spaces. Returns lines without terminators.
pub fn pack_tokens(
    first_prefix: &str,
    indent: usize,
    tokens: &[String],
    opts: &RenderOptions,
) -> Vec<String> {
    let width = opts.width.max(indent + 1);
    let pad = " ".repeat(indent);
    let mut lines = Vec::new();
    let mut cur = first_prefix.to_owned();
    let mut has_token = false;
    let finish = |cur: &mut String, lines: &mut Vec<String>, complete: bool| {
        if complete && opts.trailing_space {
            cur.push(' ');
        }
        lines.push(std::mem::take(cur));
    };
    for tok in tokens {
        if has_token && cur.len() + 1 + tok.len() > width {
            finish(&mut cur, &mut lines, true);
            cur.push_str(&pad);
            has_token = false;
        }
        if has_token {
            cur.push(' ');
        }
        let mut rest = tok.as_str();
        let mut first_segment = true;
        loop {
            let avail = width.saturating_sub(cur.len());
            if rest.len() <= avail {
                cur.push_str(rest);
                break;
            }
            let at = cut_index(rest, avail, opts.cut_rule, first_segment);
            cur.push_str(&rest[..at]);
            rest = &rest[at..];
            first_segment = false;
            finish(&mut cur, &mut lines, false);
            cur.push_str(&pad);
            if rest.is_empty() {
                break;
            }
        }
        has_token = true;
    }
    if has_token || lines.is_empty() {
        if !has_token {
            let t = cur.trim_end().len();
            cur.truncate(t);
        }
        finish(&mut cur, &mut lines, has_token);
    }
    lines
}

/// Join lines with the configured terminator (every line terminated).
pub(crate) fn join_lines(lines: &[String], le: LineEnding) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(l);
        out.push_str(le.as_str());
    }
    out
}
