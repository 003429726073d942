//! The demo's progress lines: a step's title is printed (and flushed) when
//! it starts, its outcome, duration and trace id when it ends, so a slow
//! step is visible while it runs.

use std::io::Write;
use std::time::Duration;

use crate::units::format_elapsed;

const TITLE_WIDTH: usize = 66;

#[derive(Default)]
pub struct Report {
    n: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: Vec<(String, String)>,
    /// (title, elapsed) of every passed step, for the summary.
    pub timings: Vec<(String, Duration)>,
    open: Option<String>,
}

fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

impl Report {
    pub fn begin(&mut self, title: &str) {
        self.n += 1;
        self.open = Some(title.to_owned());
        out(&format!("{:>3}  {:<w$} ", self.n, title, w = TITLE_WIDTH));
    }

    pub fn ok(&mut self, elapsed: Duration, trace_id: Option<&str>, note: Option<&str>) {
        self.passed += 1;
        if let Some(t) = self.open.take() {
            self.timings.push((t, elapsed));
        }
        let trace = trace_id.map(|t| format!("  trace {t}")).unwrap_or_default();
        let note = note.map(|n| format!("  ({n})")).unwrap_or_default();
        out(&format!(
            "ok   {:>10}{trace}{note}\n",
            format_elapsed(elapsed)
        ));
    }

    pub fn fail(&mut self, elapsed: Duration, trace_id: Option<&str>, why: &str) {
        self.failed += 1;
        self.open = None;
        let trace = trace_id.map(|t| format!("  trace {t}")).unwrap_or_default();
        out(&format!(
            "FAILED {:>8}{trace}\n       {why}\n",
            format_elapsed(elapsed)
        ));
    }

    /// A step that was not run, with the reason, on its own line.
    pub fn skip(&mut self, title: &str, why: &str) {
        self.n += 1;
        self.skipped.push((title.to_owned(), why.to_owned()));
        out(&format!(
            "{:>3}  {:<w$} skipped: {why}\n",
            self.n,
            title,
            w = TITLE_WIDTH
        ));
    }

    pub fn note(&self, text: &str) {
        out(&format!("{text}\n"));
    }
}
