//! Fault injection (docs/routeros.md §10): rules triggered by a command regex, after N matches,
//! one-shot or sticky, added and removed at runtime through [`Faults`].
//!
//! Each action belongs to one *point* of the protocol where it is checked: a command, a new
//! TCP connection, an authentication attempt or a channel open. `after`/`times` count events
//! at that point; the `command` regex is matched against the command line (command point) or
//! the login user name without its `+…` suffix (auth point) and ignored elsewhere.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// Variants of garbled or unusual output (docs/routeros.md §10.9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Garble {
    /// LF instead of CRLF.
    LfLineEndings,
    /// An extra blank line after every record / at the end.
    ExtraBlankLine,
    /// The final blank line is missing.
    NoTrailingBlankLine,
    /// Only the first N bytes of the output are sent.
    Truncate(usize),
    /// N bytes of `#` lines are appended (a reply larger than a client's cap).
    Oversize(usize),
    /// Invalid UTF-8 bytes are inserted at the start of the output.
    InvalidUtf8,
    /// ANSI colour escapes around the output.
    AnsiEscapes,
    /// A console log line (`HH:MM:SS system,error,critical …`) injected before the output.
    ConsoleLogLine,
    /// Render at this width instead of the session's.
    Width(usize),
    /// Cut over-long tokens before the last `-`/`/` that fits.
    CutBeforeSeparator,
    /// The output is sent on the stderr stream instead of stdout.
    Stderr,
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Command point: wait this long before running the command.
    Latency(Duration),
    /// Command point: never reply (the command does not run).
    Hang,
    /// Command point: drop the TCP connection (RST) before the command runs.
    DropBeforeEffect,
    /// Command point: run the command, then drop the TCP connection before any reply.
    DropAfterEffect,
    /// Command point: fail with the "not enough space" text, no effect.
    DiskFull,
    /// Command point: send this exit status (`None` = no exit-status message).
    ExitStatus(Option<u32>),
    /// Command point: garble the output.
    Garble(Garble),
    /// Auth point: reject the key.
    RejectAuth,
    /// Connect point: present a different host key.
    HostKeyChange,
    /// Channel-open point: allow at most this many open channels on the connection.
    SessionLimit(u32),
    /// Connect point: wait this long before sending the identification string.
    HandshakeDelay(Duration),
    /// Connect point: send the identification string, then close.
    CloseAfterIdent,
    /// Command point: drop every connection before the command runs and refuse TCP for
    /// this long; the state survives.
    Reboot(Duration),
    /// Command point: fail with this text (exit status per the mode), no effect.
    ErrorText(String),
}

/// Where a fault is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultPoint {
    Command,
    Connect,
    Auth,
    ChannelOpen,
}

impl FaultAction {
    pub(crate) fn point(&self) -> FaultPoint {
        match self {
            Self::RejectAuth => FaultPoint::Auth,
            Self::HostKeyChange | Self::HandshakeDelay(_) | Self::CloseAfterIdent => {
                FaultPoint::Connect
            }
            Self::SessionLimit(_) => FaultPoint::ChannelOpen,
            _ => FaultPoint::Command,
        }
    }
}

/// One fault rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRule {
    /// Regex on the command line (unanchored); `None` = every command.
    pub command: Option<String>,
    /// Skip the first N matches.
    pub after: u32,
    /// Fire this many times; `None` = sticky until removed.
    pub times: Option<u32>,
    /// What to do.
    pub action: FaultAction,
}

impl FaultRule {
    /// A sticky rule matching everything.
    pub fn new(action: FaultAction) -> Self {
        Self {
            command: None,
            after: 0,
            times: None,
            action,
        }
    }
    /// Only for commands matching `regex`.
    pub fn on(mut self, regex: impl Into<String>) -> Self {
        self.command = Some(regex.into());
        self
    }
    /// Skip the first `n` matches.
    pub fn after(mut self, n: u32) -> Self {
        self.after = n;
        self
    }
    /// Fire `n` times.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
    /// Fire once.
    pub fn once(self) -> Self {
        self.times(1)
    }
}

#[derive(Debug)]
struct ActiveRule {
    id: u64,
    rule: FaultRule,
    regex: Option<Regex>,
    seen: u32,
    fired: u32,
}

/// A rule as listed by the control interface.
#[derive(Clone, Debug)]
pub struct FaultStatus {
    /// Rule id.
    pub id: u64,
    /// The rule.
    pub rule: FaultRule,
    /// How many events matched its pattern.
    pub seen: u32,
    /// How many times it fired.
    pub fired: u32,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    rules: Vec<ActiveRule>,
}

/// Cloneable control handle for fault rules.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; the rule list is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a rule; returns its id. An invalid regex is reported by [`Faults::try_add`]; here
    /// it makes a rule that never matches (and is logged).
    pub fn add(&self, rule: FaultRule) -> u64 {
        match self.try_add(rule.clone()) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "fault rule with invalid regex never matches");
                let mut g = self.lock();
                g.next_id += 1;
                let id = g.next_id;
                // times = 0 so it can never fire.
                let mut rule = rule;
                rule.times = Some(0);
                g.rules.push(ActiveRule {
                    id,
                    rule,
                    regex: None,
                    seen: 0,
                    fired: 0,
                });
                id
            }
        }
    }

    /// Add a rule, validating its regex.
    pub fn try_add(&self, rule: FaultRule) -> Result<u64, SimError> {
        let regex = match &rule.command {
            Some(r) => {
                Some(Regex::new(r).map_err(|e| SimError::Invalid(format!("fault regex: {e}")))?)
            }
            None => None,
        };
        let mut g = self.lock();
        g.next_id += 1;
        let id = g.next_id;
        g.rules.push(ActiveRule {
            id,
            rule,
            regex,
            seen: 0,
            fired: 0,
        });
        Ok(id)
    }

    /// Remove one rule.
    pub fn remove(&self, id: u64) {
        self.lock().rules.retain(|r| r.id != id);
    }

    /// Remove every rule.
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// The current rules with their counters.
    pub fn list(&self) -> Vec<FaultStatus> {
        self.lock()
            .rules
            .iter()
            .map(|r| FaultStatus {
                id: r.id,
                rule: r.rule.clone(),
                seen: r.seen,
                fired: r.fired,
            })
            .collect()
    }

    /// How many times rule `id` fired (0 if unknown).
    pub fn fired(&self, id: u64) -> u32 {
        self.lock()
            .rules
            .iter()
            .find(|r| r.id == id)
            .map_or(0, |r| r.fired)
    }

    /// Count an event at `point` and return the actions that fire, in rule order.
    pub(crate) fn check(&self, point: FaultPoint, subject: &str) -> Vec<FaultAction> {
        let mut g = self.lock();
        let mut out = Vec::new();
        for r in g.rules.iter_mut() {
            if r.rule.action.point() != point {
                continue;
            }
            let uses_regex = matches!(point, FaultPoint::Command | FaultPoint::Auth);
            if uses_regex
                && r.rule.command.is_some()
                && !r.regex.as_ref().is_some_and(|re| re.is_match(subject))
            {
                continue;
            }
            r.seen += 1;
            if r.seen <= r.rule.after {
                continue;
            }
            if r.rule.times.is_some_and(|t| r.fired >= t) {
                continue;
            }
            r.fired += 1;
            out.push(r.rule.action.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn after_and_times_count_matches_only() {
        let f = Faults::default();
        let id = f.add(
            FaultRule::new(FaultAction::DiskFull)
                .on("^/disk add")
                .after(1)
                .times(2),
        );
        assert!(f.check(FaultPoint::Command, "/disk print").is_empty());
        assert!(f.check(FaultPoint::Command, "/disk add a").is_empty()); // skipped (after 1)
        assert_eq!(
            f.check(FaultPoint::Command, "/disk add b"),
            vec![FaultAction::DiskFull]
        );
        assert_eq!(
            f.check(FaultPoint::Command, "/disk add c"),
            vec![FaultAction::DiskFull]
        );
        assert!(f.check(FaultPoint::Command, "/disk add d").is_empty()); // exhausted
        assert_eq!(f.fired(id), 2);
        f.remove(id);
        assert!(f.list().is_empty());
    }

    #[test]
    fn points_are_separate_and_bad_regex_is_refused() {
        let f = Faults::default();
        f.add(FaultRule::new(FaultAction::RejectAuth));
        assert!(f.check(FaultPoint::Command, "x").is_empty());
        assert_eq!(
            f.check(FaultPoint::Auth, "admin"),
            vec![FaultAction::RejectAuth]
        );
        assert!(
            f.try_add(FaultRule::new(FaultAction::Hang).on("("))
                .is_err()
        );
        let id = f.add(FaultRule::new(FaultAction::Hang).on("("));
        assert!(f.check(FaultPoint::Command, "(").is_empty());
        assert_eq!(f.fired(id), 0);
        f.clear();
        assert!(f.list().is_empty());
    }
}
