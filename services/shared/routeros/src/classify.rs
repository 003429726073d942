//! Recognise RouterOS error lines in command output (docs/routeros.md §5).
//!
//! RouterOS has no separate error stream: errors come back as ordinary output text, and the
//! exit status is unreliable (docs/routeros.md §2.4). So every output must be checked for these lines.
//! Only lines that start in column 0 and do not look like a `key=value` property are
//! considered, so a value that happens to contain "no such item" never classifies.

use std::fmt;

/// `(line L column C)` position suffix of console errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line in the command text (1-based).
    pub line: u32,
    /// Column in the command text (1-based).
    pub column: u32,
}

/// What kind of RouterOS error a line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterOsErrorKind {
    /// `bad command name <word> (line 1 column N)`: unknown menu or command word.
    BadCommandName {
        /// The word RouterOS did not know.
        name: String,
        /// Where.
        position: Option<Position>,
    },
    /// `expected end of command (line 1 column N)`: unknown argument or extra token.
    ExpectedEndOfCommand {
        /// Where.
        position: Option<Position>,
    },
    /// `syntax error (line 1 column N)`: bad escape, unquoted `$`/`\`, malformed path.
    SyntaxError {
        /// Where.
        position: Option<Position>,
    },
    /// `expected command name (line 1 column N)` (v6 given a slash-joined path).
    ExpectedCommandName {
        /// Where.
        position: Option<Position>,
    },
    /// `no such item` (also `Script Error: no such item`).
    NoSuchItem,
    /// `expected item id`.
    ExpectedItemId,
    /// `input does not match any value of <arg>`.
    InputDoesNotMatch {
        /// The argument name.
        argument: String,
    },
    /// `value of <arg> contains invalid trailing characters`.
    InvalidTrailingCharacters {
        /// The argument name.
        argument: String,
    },
    /// `invalid value for argument <arg>` (older wording; also bare `invalid value for ...`).
    InvalidValue {
        /// The argument name (may be empty).
        argument: String,
    },
    /// `not enough permissions (9)`.
    NotEnoughPermissions,
    /// Any line containing `not enough space` (wording unverified; the driver depends on it).
    NotEnoughSpace,
    /// Any error line containing `already exists` or `already have` (duplicate slot; wording
    /// unverified).
    AlreadyExists,
    /// `failure: <reason>` not matched by a more specific kind; holds the reason.
    Failure(String),
}

/// A RouterOS error found in output: its kind and the full error line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceError {
    /// Classification.
    pub kind: RouterOsErrorKind,
    /// The complete error line as printed (trimmed).
    pub text: String,
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl DeviceError {
    /// True for "the item does not exist" (`no such item`, `expected item id`).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.kind,
            RouterOsErrorKind::NoSuchItem | RouterOsErrorKind::ExpectedItemId
        )
    }
}

/// Parse a trailing `(line L column C)`; returns the text before it and the position.
fn split_position(s: &str) -> (&str, Option<Position>) {
    let t = s.trim_end();
    if let Some(open) = t.rfind(" (line ")
        && let Some(inner) = t[open + 7..].strip_suffix(')')
        && let Some((l, c)) = inner.split_once(" column ")
        && let (Ok(line), Ok(column)) = (l.trim().parse(), c.trim().parse())
    {
        return (&t[..open], Some(Position { line, column }));
    }
    (t, None)
}

fn looks_like_property(line: &str) -> bool {
    crate::detail::key_len_at(line.as_bytes(), 0).is_some()
}

/// Classify one output line. `None` if it is not a recognised error line.
pub fn classify_error_line(line: &str) -> Option<DeviceError> {
    let raw = line.trim_end_matches(['\r', '\n']);
    if raw.is_empty() || raw.starts_with(|c: char| c.is_whitespace() || c.is_ascii_digit()) {
        return None;
    }
    if looks_like_property(raw) {
        return None;
    }
    let text = raw.trim().to_owned();
    let body = text.strip_prefix("Script Error: ").unwrap_or(&text);
    let lower = body.to_ascii_lowercase();
    let kind = if let Some(rest) = body.strip_prefix("bad command name ") {
        let (name, position) = split_position(rest);
        RouterOsErrorKind::BadCommandName {
            name: name.trim().to_owned(),
            position,
        }
    } else if body.starts_with("expected end of command") {
        RouterOsErrorKind::ExpectedEndOfCommand {
            position: split_position(body).1,
        }
    } else if body.starts_with("syntax error") {
        RouterOsErrorKind::SyntaxError {
            position: split_position(body).1,
        }
    } else if body.starts_with("expected command name") {
        RouterOsErrorKind::ExpectedCommandName {
            position: split_position(body).1,
        }
    } else if lower.contains("not enough space") {
        RouterOsErrorKind::NotEnoughSpace
    } else if lower.contains("already exists") || lower.contains("already have") {
        RouterOsErrorKind::AlreadyExists
    } else if body.starts_with("no such item") {
        RouterOsErrorKind::NoSuchItem
    } else if body.starts_with("expected item id") {
        RouterOsErrorKind::ExpectedItemId
    } else if let Some(arg) = body.strip_prefix("input does not match any value of ") {
        RouterOsErrorKind::InputDoesNotMatch {
            argument: arg.trim().to_owned(),
        }
    } else if let Some(rest) = body.strip_prefix("value of ")
        && let Some(arg) = rest.strip_suffix(" contains invalid trailing characters")
    {
        RouterOsErrorKind::InvalidTrailingCharacters {
            argument: arg.trim().to_owned(),
        }
    } else if let Some(rest) = body.strip_prefix("invalid value for") {
        let arg = rest.trim().strip_prefix("argument").unwrap_or(rest.trim());
        RouterOsErrorKind::InvalidValue {
            argument: arg.trim().to_owned(),
        }
    } else if body.starts_with("not enough permissions") || lower.contains("not allowed (9)") {
        RouterOsErrorKind::NotEnoughPermissions
    } else if let Some(reason) = body.strip_prefix("failure:") {
        RouterOsErrorKind::Failure(reason.trim().to_owned())
    } else {
        return None;
    };
    Some(DeviceError { kind, text })
}

/// Find the first RouterOS error line in command output (LF or CRLF). Commands that succeed
/// print nothing (set/remove/add) or well-formed records, so any hit means failure.
pub fn classify_error(output: &str) -> Option<DeviceError> {
    output.lines().find_map(classify_error_line)
}
