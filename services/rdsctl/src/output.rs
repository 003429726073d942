//! `-o table|json|yaml`, the same on every command that prints a result.
//! `--json` stays as the short form of `-o json`.

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::error::{CtlError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Human-readable text (tables for lists).
    #[default]
    Table,
    /// Pretty JSON (one document).
    Json,
    /// YAML (one document).
    Yaml,
}

#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, global = true)]
    pub output: Option<Format>,
    /// Same as `-o json`.
    #[arg(long, global = true, conflicts_with = "output")]
    pub json: bool,
}

impl OutputArgs {
    pub fn format(&self) -> Format {
        match (self.output, self.json) {
            (Some(f), _) => f,
            (None, true) => Format::Json,
            (None, false) => Format::Table,
        }
    }
}

/// `value` as JSON or YAML, or `human` as text; ends with one newline.
pub fn render<T: Serialize>(
    format: Format,
    value: &T,
    human: impl FnOnce() -> String,
) -> Result<String> {
    let mut text = match format {
        Format::Table => human(),
        Format::Json => serde_json::to_string_pretty(value)
            .map_err(|e| CtlError::Stack(format!("cannot render JSON: {e}")))?,
        Format::Yaml => serde_saphyr::to_string(value)
            .map_err(|e| CtlError::Stack(format!("cannot render YAML: {e}")))?,
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Prints [`render`]'s text on stdout.
pub fn print<T: Serialize>(
    format: Format,
    value: &T,
    human: impl FnOnce() -> String,
) -> Result<()> {
    print!("{}", render(format, value, human)?);
    Ok(())
}

/// A plain text table: columns padded to their widest cell, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i + 1 < n {
                let pad = widths[i].saturating_sub(c.chars().count()) + 2;
                s.push_str(&" ".repeat(pad));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn formats() {
        let v = serde_json::json!({"a": 1, "b": ["x"]});
        let j = render(Format::Json, &v, || unreachable!()).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&j).unwrap(), v);
        let y = render(Format::Yaml, &v, || unreachable!()).unwrap();
        assert!(y.contains("a: 1") && y.contains("- x"), "{y}");
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    LONGER\nxyz  1\n");
    }
}
