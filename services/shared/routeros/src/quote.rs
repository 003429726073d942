//! RouterOS value quoting and unquoting (docs/routeros.md §3.1).
//!
//! Why this exists: everything the driver sends is one console line. A value that is not
//! written by these rules either becomes a syntax error (`\.`), is silently changed (`$x` inside
//! quotes is variable substitution) or, worst case, ends the command (`;`, newline, `[`).
//!
//! * Inside double quotes only `\" \\ \n \r \t \$ \? \_ \a \b \f \v` and `\XX` (two uppercase
//!   hex digits) are legal; anything else after `\` is a syntax error.
//! * Unquoted values may not contain `' = ( ) $ [ ] { } \ ; ? " `` ` or whitespace; in a
//!   `where` expression `/` is an operator, so there the bare set is smaller.
//!
//! Choices (docs/routeros.md states nothing here): on the *command* side NUL, every control character other
//! than TAB/LF/CR, DEL and every non-ASCII character are **refused** (`RouterOsError::Unquotable`),
//! not escaped: the driver never needs them and `\XX` of UTF-8 bytes has unclear semantics in the
//! console. On the *output* side (the renderer, which must never fail) such bytes are printed
//! as `\XX`, which the parsers decode again.

use crate::error::{RouterOsError, shorten};

/// Characters that may appear in a bare (unquoted) command **argument** value.
fn is_bare_arg_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | ':' | '-')
}

/// Characters that may appear in a bare value inside a `where` expression (`/` and `:` are
/// excluded: `/` is an operator there, `:` is kept out to be conservative).
fn is_bare_where_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn check_expressible(s: &str) -> Result<(), RouterOsError> {
    for c in s.chars() {
        if c == '\0' {
            return Err(RouterOsError::Unquotable {
                reason: format!("NUL character in {}", shorten(s)),
            });
        }
        if !c.is_ascii() {
            return Err(RouterOsError::Unquotable {
                reason: format!("non-ASCII character {c:?} in {}", shorten(s)),
            });
        }
        if (c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r')) || c == '\x7f' {
            return Err(RouterOsError::Unquotable {
                reason: format!("control character {c:?} in {}", shorten(s)),
            });
        }
    }
    Ok(())
}

/// Escape one character for use inside double quotes (output side: never fails).
fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '$' => out.push_str("\\$"),
        '?' => out.push_str("\\?"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\x0b' => out.push_str("\\v"),
        c if c.is_ascii() && !c.is_ascii_control() && c != '\x7f' => out.push(c),
        c => {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\{b:02X}"));
            }
        }
    }
}

/// Always-quoted form for output rendering: `"` + escaped + `"`. Never fails; bytes that the
/// command side would refuse are written as `\XX`.
pub fn quote_output(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    out.push('"');
    out
}

/// Always-quoted form for commands: `"` + escaped + `"`, refusing what cannot be expressed
/// safely (see module docs). `quote_string("")` is `""` (an empty bare value is rejected by
/// RouterOS when followed by another argument, docs/routeros.md §3.1).
pub fn quote_string(s: &str) -> Result<String, RouterOsError> {
    check_expressible(s)?;
    Ok(quote_output(s))
}

/// Render a value for a command **argument** (`name=<value>`): bare when every character is in
/// `[A-Za-z0-9._/:-]` and the value is non-empty, otherwise double-quoted with escapes.
pub fn quote_value(s: &str) -> Result<String, RouterOsError> {
    check_expressible(s)?;
    if !s.is_empty() && s.chars().all(is_bare_arg_char) {
        Ok(s.to_owned())
    } else {
        Ok(quote_output(s))
    }
}

/// Render a value for the right-hand side of a `where` comparison: bare only for
/// `[A-Za-z0-9._-]+`, otherwise quoted (a `/` in a bare `where` value is an operator).
pub fn quote_where_value(s: &str) -> Result<String, RouterOsError> {
    check_expressible(s)?;
    if !s.is_empty() && s.chars().all(is_bare_where_char) {
        Ok(s.to_owned())
    } else {
        Ok(quote_output(s))
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode the escapes of a quoted string body (without the surrounding quotes).
/// `strict`: unknown escapes, a dangling `\`, an unescaped `"` or `$` are errors;
/// lenient: they are kept literally (output parsing must never fail on odd input).
pub(crate) fn unescape_body(body: &str, strict: bool) -> Result<String, RouterOsError> {
    let bytes = body.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' {
            let Some(&n) = bytes.get(i + 1) else {
                if strict {
                    return Err(RouterOsError::BadQuoted {
                        reason: "dangling backslash".into(),
                    });
                }
                out.push(b);
                i += 1;
                continue;
            };
            let simple = match n {
                b'"' => Some(b'"'),
                b'\\' => Some(b'\\'),
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b't' => Some(b'\t'),
                b'$' => Some(b'$'),
                b'?' => Some(b'?'),
                b'_' => Some(b' '),
                b'a' => Some(0x07),
                b'b' => Some(0x08),
                b'f' => Some(0x0c),
                b'v' => Some(0x0b),
                _ => None,
            };
            if let Some(v) = simple {
                out.push(v);
                i += 2;
                continue;
            }
            if let (Some(h), Some(l)) = (hex_val(n), bytes.get(i + 2).copied().and_then(hex_val)) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
            if strict {
                return Err(RouterOsError::BadQuoted {
                    reason: format!("illegal escape \\{}", char::from(n)),
                });
            }
            out.push(b);
            i += 1;
        } else {
            if strict && (b == b'"' || b == b'$') {
                return Err(RouterOsError::BadQuoted {
                    reason: format!("unescaped {} inside quotes", char::from(b)),
                });
            }
            out.push(b);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Ok(s),
        Err(e) if !strict => Ok(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        Err(_) => Err(RouterOsError::BadQuoted {
            reason: "escapes decode to invalid UTF-8".into(),
        }),
    }
}

/// Strictly parse a complete quoted RouterOS string (`"..."` including the quotes) into its
/// value. Rejects anything RouterOS would reject (illegal escapes, unescaped `$`, missing quotes).
pub fn unquote(s: &str) -> Result<String, RouterOsError> {
    let body = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| RouterOsError::BadQuoted {
            reason: "not enclosed in double quotes".into(),
        })?;
    if s.len() < 2 {
        return Err(RouterOsError::BadQuoted {
            reason: "not enclosed in double quotes".into(),
        });
    }
    unescape_body(body, true)
}

/// Lenient unescape for output parsing (never fails; unknown escapes kept literally).
pub(crate) fn unescape_lenient(body: &str) -> String {
    // Most values (paths, slots, NQNs) have no escape: copy them as they are.
    if !body.contains('\\') {
        return body.to_owned();
    }
    unescape_body(body, false).unwrap_or_else(|_| body.to_owned())
}
