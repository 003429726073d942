//! Generic `print detail` parsing and rendering: legend, numbered records, flags block,
//! `key=value` properties, wrapped and cut lines (docs/routeros.md §4.1–§4.5).
//!
//! ## Re-joining wrapped lines
//! A record is turned into one *logical line* before it is tokenised. A continuation line
//! (indented to the property column) is appended
//! * **without** a separator when the text so far ends inside an open quoted value, or when the
//!   line (after removing exactly the indent) does not begin with a plausible `key=`: both mean
//!   the previous token was cut (docs/routeros.md §4.3). This re-joins `...922a` + `-5dd8...` and
//!   `.../pvc-...-c` + `2c6ccb56dd8.img` exactly;
//! * otherwise with one space (a new token).
//!
//! Only the indent is stripped and trailing spaces are kept, so a cut that lands on a space
//! inside a value is re-joined exactly too. A plausible key is `[a-z.][a-z0-9._-]*=`; validated
//! paths, slots and NQNs never contain `=`, so a cut remainder cannot look like a key.
//!
//! ## Values
//! A value is either a quoted string (escapes decoded) or bare text that runs up to the next
//! ` <key>=` — so grouped numbers (`size=53 687 091 200`), `type=.img file` and
//! `last-modified=2025-11-11 14:32:41` are single values. Trailing spaces are trimmed.

use std::borrow::Cow;

use crate::classify::classify_error_line;
use crate::error::{RouterOsError, shorten};
use crate::quote::{quote_output, unescape_lenient};
use crate::wrap::{RenderOptions, join_lines, pack_tokens};

/// One `key=value` property as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prop {
    /// Property name, e.g. `file-path`. Known names are borrowed from a static table (no
    /// allocation per property when parsing thousands of records).
    pub key: Cow<'static, str>,
    /// Value with quotes removed and escapes decoded (bare values verbatim, trimmed).
    pub value: String,
    /// Whether it was printed in double quotes.
    pub quoted: bool,
}

impl Prop {
    /// A bare property (`key=value`).
    pub fn bare(key: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            quoted: false,
        }
    }

    /// A quoted property (`key="value"`).
    pub fn quoted(key: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            quoted: true,
        }
    }

    /// The token as RouterOS prints it.
    pub fn render(&self) -> String {
        if self.quoted {
            format!("{}={}", self.key, quote_output(&self.value))
        } else {
            format!("{}={}", self.key, self.value)
        }
    }
}

/// One record of a `print detail` output, untyped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawRecord {
    /// Print number (`None` when the capture has no number prefix).
    pub number: Option<u32>,
    /// The flags block as printed, trailing spaces removed, inner spaces kept (positions
    /// matter): `" BM"`, `"B   t"`, `""`.
    pub flags: String,
    /// The item's `comment`, printed as `;;; <text>` at the property column of the record's
    /// first line (the properties then start on the next line). `None` when not printed.
    pub comment: Option<String>,
    /// Properties in printed order.
    pub props: Vec<Prop>,
}

/// A parsed `print detail` output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrintDetail {
    /// The flags legend, its lines joined with one space (`None` if there was none).
    pub legend: Option<String>,
    /// Records in order.
    pub records: Vec<RawRecord>,
}

/// Longest property name accepted (keeps scanning linear on hostile input).
const MAX_KEY_LEN: usize = 64;

/// Length of a plausible `key` at `i` if `bytes[i..]` starts with `key=`
/// (`[a-z.][a-z0-9._-]*=`, at most 64 characters); returns the key length (without `=`).
pub(crate) fn key_len_at(bytes: &[u8], i: usize) -> Option<usize> {
    let first = *bytes.get(i)?;
    if !(first.is_ascii_lowercase() || first == b'.') {
        return None;
    }
    let mut j = i + 1;
    while let Some(&b) = bytes.get(j) {
        if j - i > MAX_KEY_LEN {
            return None;
        }
        if b == b'=' {
            return Some(j - i);
        }
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')) {
            return None;
        }
        j += 1;
    }
    None
}

/// Position of the first plausible key that starts the text or follows whitespace.
fn first_key_pos(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len())
        .find(|&i| (i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t') && key_len_at(b, i).is_some())
}

/// Property names `/file` prints beyond the disk ones (which are `DISK_ORDER`), shared
/// instead of allocated per record.
const FILE_KEYS: &[&str] = &["name", "last-modified", "comment"];

/// The key as a `Cow`: borrowed when it is a known name. `like` is the key at the same
/// position in the previous record (records repeat their order), checked first.
fn intern(key: &str, like: Option<&Cow<'static, str>>) -> Cow<'static, str> {
    if let Some(Cow::Borrowed(k)) = like
        && *k == key
    {
        return Cow::Borrowed(k);
    }
    match crate::disk::DISK_ORDER
        .iter()
        .chain(FILE_KEYS)
        .find(|k| **k == key)
    {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(key.to_owned()),
    }
}

/// Split `key=value ...` text into properties, appending to `props`. `prev`: the previous
/// record's properties (key order hint).
fn tokenize_into(s: &str, props: &mut Vec<Prop>, prev: &[Prop]) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' || b[i] == b'\t' {
            i += 1;
            continue;
        }
        let Some(klen) = key_len_at(b, i) else {
            // Stray word: skip it.
            while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
                i += 1;
            }
            continue;
        };
        let key = intern(&s[i..i + klen], prev.get(props.len()).map(|p| &p.key));
        i += klen + 1;
        if b.get(i) == Some(&b'"') {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = j.min(b.len());
            let body = s.get(start..end).unwrap_or("");
            props.push(Prop::quoted(key, unescape_lenient(body)));
            i = (end + 1).min(b.len());
            // Junk glued to the closing quote is skipped up to the next space.
            while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
                i += 1;
            }
        } else {
            let start = i;
            let mut j = i;
            loop {
                if j >= b.len() {
                    break;
                }
                if (b[j] == b' ' || b[j] == b'\t') && j + 1 < b.len() {
                    let mut k = j;
                    while k < b.len() && (b[k] == b' ' || b[k] == b'\t') {
                        k += 1;
                    }
                    if key_len_at(b, k).is_some() {
                        break;
                    }
                    j = k;
                    continue;
                }
                j += 1;
            }
            let value = s.get(start..j).unwrap_or("").trim_end();
            props.push(Prop::bare(key, value));
            i = j;
        }
    }
}

/// Tracks quote state of a growing logical line so cut quoted values are recognised.
#[derive(Default)]
struct QuoteScan {
    in_value_start: bool,
    in_quote: bool,
    escape: bool,
}

impl QuoteScan {
    fn feed(&mut self, s: &str) {
        for &c in s.as_bytes() {
            if self.in_quote {
                if self.escape {
                    self.escape = false;
                } else if c == b'\\' {
                    self.escape = true;
                } else if c == b'"' {
                    self.in_quote = false;
                }
                self.in_value_start = false;
            } else {
                if c == b'"' && self.in_value_start {
                    self.in_quote = true;
                }
                self.in_value_start = c == b'=';
            }
        }
    }
}

/// The record being assembled. Its logical line lives in a buffer the parser reuses for
/// every record (one allocation for the whole output, not one per record and line).
struct Building {
    number: Option<u32>,
    flags: String,
    comment: Option<String>,
    indent: Option<usize>,
    scan: QuoteScan,
}

impl Building {
    fn new(
        logical: &mut String,
        number: Option<u32>,
        flags: String,
        first: &str,
        indent: Option<usize>,
    ) -> Self {
        let mut scan = QuoteScan::default();
        scan.feed(first);
        logical.clear();
        logical.push_str(first);
        Self {
            number,
            flags,
            comment: None,
            indent,
            scan,
        }
    }

    fn continuation(&mut self, logical: &mut String, line: &str) {
        let lead = line.len() - line.trim_start_matches(' ').len();
        let indent = *self.indent.get_or_insert(lead);
        let stripped = &line[lead.min(indent)..];
        let joined_raw = self.scan.in_quote || key_len_at(stripped.as_bytes(), 0).is_none();
        if !joined_raw && !logical.is_empty() {
            logical.push(' ');
            self.scan.feed(" ");
        }
        logical.push_str(stripped);
        self.scan.feed(stripped);
    }

    /// `prev`: the previous record's properties (size and key order hint).
    fn finish(self, logical: &str, prev: &[Prop]) -> RawRecord {
        let mut props = Vec::with_capacity(prev.len().max(8));
        tokenize_into(logical, &mut props, prev);
        RawRecord {
            number: self.number,
            flags: self.flags,
            comment: self.comment,
            props,
        }
    }
}

/// `(number, end of number)` if the line starts a numbered record: optional spaces, 1–9
/// digits, then a space or end of line.
fn record_start(line: &str) -> Option<(u32, usize)> {
    let b = line.as_bytes();
    let lead = b.iter().take_while(|&&c| c == b' ').count();
    let digits = b[lead..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 9 {
        return None;
    }
    let end = lead + digits;
    if end < b.len() && b[end] != b' ' {
        return None;
    }
    Some((line[lead..end].parse().ok()?, end))
}

/// Opens the record of a numbered line; `rest` is the line after the print number, which
/// ends at column `end`. The line holds either the item's `;;; <comment>` (before any
/// property) or its flags and first properties.
fn start_numbered_record(logical: &mut String, number: u32, rest: &str, end: usize) -> Building {
    if let Some(c) = rest.find(";;;")
        && first_key_pos(rest).is_none_or(|p| c < p)
    {
        let flags = rest.get(1..c).unwrap_or("").trim_end().to_owned();
        let text = rest[c + 3..].strip_prefix(' ').unwrap_or(&rest[c + 3..]);
        let mut b = Building::new(logical, Some(number), flags, "", Some(end + c));
        b.comment = Some(text.trim_end().to_owned());
        return b;
    }
    let (flags, first, indent) = match first_key_pos(rest) {
        Some(p) => {
            let flags = rest.get(1..p).unwrap_or("").trim_end().to_owned();
            (flags, &rest[p..], Some(end + p))
        }
        None => (rest.get(1..).unwrap_or("").trim_end().to_owned(), "", None),
    };
    Building::new(logical, Some(number), flags, first, indent)
}

/// Opens a record whose line has no number or flags prefix: its first property starts at
/// column `lead`.
fn start_unnumbered_record(logical: &mut String, line: &str, lead: usize) -> Building {
    let indent = if lead > 0 { Some(lead) } else { None };
    Building::new(logical, None, String::new(), &line[lead..], indent)
}

/// Parse any `print detail` output (`/disk`, `/file`, ...): legend, records, wrapped and cut
/// lines, LF or CRLF, with or without print numbers. Never panics.
///
/// Errors: [`RouterOsError::Device`] if a line is a RouterOS error message,
/// [`RouterOsError::Parse`] for a line that belongs to neither the legend nor a record.
pub fn parse_print_detail(text: &str) -> Result<PrintDetail, RouterOsError> {
    // A `/disk` record prints ≈ 900 bytes; reserving for one per 1 KiB saves most regrowth.
    let mut out = PrintDetail {
        legend: None,
        records: Vec::with_capacity(text.len() / 1024),
    };
    let mut cur: Option<Building> = None;
    let mut in_legend = false;
    let mut logical = String::with_capacity(1024);
    // Close the open record (if any) into `out.records`.
    let close = |cur: &mut Option<Building>, out: &mut PrintDetail, logical: &str| {
        if let Some(b) = cur.take() {
            let prev = out.records.last().map_or(&[][..], |r| r.props.as_slice());
            let rec = b.finish(logical, prev);
            out.records.push(rec);
        }
    };
    for (idx, raw_line) in text.split('\n').enumerate() {
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let lead = line.len() - line.trim_start_matches(' ').len();
        if line.trim().is_empty() {
            close(&mut cur, &mut out, &logical);
            in_legend = false;
            continue;
        }
        // 1. Continuation of the open record (indent known and reached).
        if let Some(b) = cur.as_mut()
            && b.indent.is_some_and(|ind| lead >= ind && ind > 0)
        {
            b.continuation(&mut logical, line);
            continue;
        }
        // 2. A numbered record.
        if let Some((number, end)) = record_start(line) {
            close(&mut cur, &mut out, &logical);
            in_legend = false;
            cur = Some(start_numbered_record(
                &mut logical,
                number,
                &line[end..],
                end,
            ));
            continue;
        }
        // 3. The legend.
        if line.starts_with("Flags:") {
            close(&mut cur, &mut out, &logical);
            out.legend = Some(line.trim_end().to_owned());
            in_legend = true;
            continue;
        }
        // 4. Indented line of a record whose indent is not known yet.
        if lead > 0
            && let Some(b) = cur.as_mut()
        {
            b.continuation(&mut logical, line);
            continue;
        }
        // 5. A record without number/flags prefix (capture cut at the property column).
        if let Some(p) = first_key_pos(line)
            && p == lead
        {
            close(&mut cur, &mut out, &logical);
            in_legend = false;
            cur = Some(start_unnumbered_record(&mut logical, line, lead));
            continue;
        }
        if let Some(e) = classify_error_line(line) {
            return Err(RouterOsError::Device(e));
        }
        // 6. Legend continuation line (not indented, not a record).
        if in_legend && lead == 0 && cur.is_none() {
            if let Some(l) = out.legend.as_mut() {
                l.push(' ');
                l.push_str(line.trim());
            }
            continue;
        }
        return Err(RouterOsError::Parse {
            line: idx + 1,
            reason: format!("unexpected line {}", shorten(line)),
        });
    }
    close(&mut cur, &mut out, &logical);
    Ok(out)
}

/// Render one record: number right-aligned to `number_width`, one space, the flags block,
/// padding to the property column `number_width + 1 + flags_width`, then packed properties.
/// With `number == None` properties start in column 0 (continuations still use the column).
pub(crate) fn render_record_lines(
    number: Option<u32>,
    flags: &str,
    number_width: usize,
    flags_width: usize,
    tokens: &[String],
    opts: &RenderOptions,
) -> Vec<String> {
    let col = number_width + 1 + flags_width;
    let prefix = match number {
        Some(n) => {
            let mut p = format!("{n:>number_width$} {flags}");
            if p.len() < col {
                p.push_str(&" ".repeat(col - p.len()));
            } else if flags_width > 0 || !flags.is_empty() {
                p.push(' ');
            }
            p
        }
        None => String::new(),
    };
    pack_tokens(&prefix, col, tokens, opts)
}

/// [`render_record_lines`] with an optional comment: `;;; <comment>` at the property column
/// of the first line (unwrapped), the properties from the next line on at the same column.
pub(crate) fn render_commented_lines(
    number: Option<u32>,
    flags: &str,
    comment: Option<&str>,
    number_width: usize,
    flags_width: usize,
    tokens: &[String],
    opts: &RenderOptions,
) -> Vec<String> {
    let Some(comment) = comment else {
        return render_record_lines(number, flags, number_width, flags_width, tokens, opts);
    };
    let col = number_width + 1 + flags_width;
    let mut first = render_record_lines(number, flags, number_width, flags_width, &[], opts)
        .into_iter()
        .next()
        .unwrap_or_default();
    if first.len() < col {
        first.push_str(&" ".repeat(col - first.len()));
    }
    first.push_str(";;; ");
    first.push_str(comment);
    let mut lines = vec![first.trim_end().to_owned()];
    lines.extend(pack_tokens(&" ".repeat(col), col, tokens, opts));
    lines
}

/// Render records with an optional legend (one `print detail` output). Each record is
/// followed by a blank line if `opts.blank_line_after_record`.
pub(crate) fn render_records(
    legend_lines: &[String],
    records: &[(Option<u32>, &str, Vec<String>)],
    flags_width: usize,
    opts: &RenderOptions,
) -> String {
    let number_width = records
        .iter()
        .filter_map(|r| r.0)
        .map(|n| n.to_string().len())
        .max()
        .unwrap_or(2)
        .max(2);
    let mut out = join_lines(legend_lines, opts.line_ending);
    for (number, flags, tokens) in records {
        let lines = render_record_lines(*number, flags, number_width, flags_width, tokens, opts);
        out.push_str(&join_lines(&lines, opts.line_ending));
        if opts.blank_line_after_record {
            out.push_str(opts.line_ending.as_str());
        }
    }
    out
}
