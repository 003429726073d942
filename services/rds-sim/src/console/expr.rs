//! `where` expressions (docs/routeros.md §3.1, §3.4): `=`, `!=`, `~` (unanchored regex), `<`, `>`,
//! `&&`/`and`, `||`/`or`, `!`/`not`, parentheses, and a bare name meaning "is set".
//!
//! Values compare against the property's raw value (bytes for sizes, `yes`/`no` for booleans,
//! unquoted strings). `~` uses the `regex` crate as the POSIX ERE of RouterOS (close enough for
//! literal text, classes and anchors; RouterOS's "no backtracking" limits are not enforced).

use super::parse::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Match,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IsSet(String),
    Cmp { prop: String, op: Op, value: Value },
}

/// True when the expression reads any of `props`.
pub(crate) fn mentions_any(e: &Expr, props: &[&str]) -> bool {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => mentions_any(a, props) || mentions_any(b, props),
        Expr::Not(a) => mentions_any(a, props),
        Expr::IsSet(p) | Expr::Cmp { prop: p, .. } => props.contains(&p.as_str()),
    }
}

/// A necessary condition of `e` for a quick pre-check: `Some(alts)` when every matching
/// item has `prop = literal` (as [`values_eq`] compares) for at least one pair of `alts`.
/// Only plain-text equalities joined by `||` qualify (they cannot fail), plus the left side
/// of `&&` (an item it rejects is rejected before the right side is evaluated, so skipping
/// it cannot hide an error). Lets a filtered print look at a handful of items, not all.
pub(crate) fn eq_alternatives(e: &Expr) -> Option<Vec<(&str, &str)>> {
    match e {
        Expr::Cmp {
            prop,
            op: Op::Eq,
            value: Value::Text(t),
        } => Some(vec![(prop.as_str(), t.as_str())]),
        Expr::Or(a, b) => {
            let mut alts = eq_alternatives(a)?;
            alts.extend(eq_alternatives(b)?);
            Some(alts)
        }
        Expr::And(a, _) => eq_alternatives(a),
        _ => None,
    }
}

/// `have = want` as a `where` filter compares (booleans and numbers normalised).
pub(crate) fn values_eq(have: &str, want: &str) -> bool {
    norm_bool(have) == norm_bool(want) || num_eq(have, want)
}

/// Typed view of one item for evaluation: `(key, raw value, is_bool)`.
pub(crate) struct Props(pub Vec<(&'static str, String)>);

impl Props {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn norm_bool(s: &str) -> &str {
    match s {
        "true" => "yes",
        "false" => "no",
        other => other,
    }
}

/// `5G` → 5 GiB etc. (binary suffixes, as for `file-size`).
pub(crate) fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// Evaluate; `resolve` turns a value (maybe a substitution) into text; regex errors are
/// reported as `Err(())` so the caller can print the configured text.
pub(crate) fn eval(
    e: &Expr,
    props: &Props,
    resolve: &mut dyn FnMut(&Value) -> Result<String, String>,
) -> Result<bool, String> {
    Ok(match e {
        Expr::And(a, b) => eval(a, props, resolve)? && eval(b, props, resolve)?,
        Expr::Or(a, b) => eval(a, props, resolve)? || eval(b, props, resolve)?,
        Expr::Not(a) => !eval(a, props, resolve)?,
        Expr::IsSet(p) => match props.get(p) {
            None => false,
            Some(v) => !(v.is_empty() || v == "no" || v == "none"),
        },
        Expr::Cmp { prop, op, value } => {
            let want = resolve(value)?;
            let Some(have) = props.get(prop) else {
                return Ok(*op == Op::Ne);
            };
            match op {
                Op::Eq => values_eq(have, &want),
                Op::Ne => !values_eq(have, &want),
                Op::Match => regex::Regex::new(&want)
                    .map_err(|_| "bad-regex".to_owned())?
                    .is_match(have),
                Op::Lt | Op::Gt | Op::Le | Op::Ge => {
                    match (parse_number(have), parse_number(&want)) {
                        (Some(h), Some(w)) => match op {
                            Op::Lt => h < w,
                            Op::Gt => h > w,
                            Op::Le => h <= w,
                            _ => h >= w,
                        },
                        _ => false,
                    }
                }
            }
        }
    })
}

fn num_eq(have: &str, want: &str) -> bool {
    match (parse_number(have), parse_number(want)) {
        (Some(h), Some(w)) => h == w,
        _ => false,
    }
}
