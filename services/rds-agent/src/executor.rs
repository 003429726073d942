//! Runs typed RouterOS commands: one tracing span per command, errors read
//! from the output text (RouterOS has no error stream and its exit status is
//! unreliable, docs/routeros.md §2.4), retries only where that is safe.
//!
//! - Reads (`print`) are retried on transport failures and unparsable
//!   output: running them twice changes nothing.
//! - Mutations (`add`, `set`, `remove`) are retried only when the command was
//!   provably never sent (the session could not be opened). Anything after
//!   that is returned with `outcome_unknown()`, and the volume logic re-reads
//!   the state before deciding.
//! - A mutation succeeds only with *silent* output (RouterOS prints nothing on
//!   success, docs/routeros.md §3.5). Error text → the classified error, whatever the exit
//!   status. Other text, or a non-zero exit status without error text (the
//!   "1 with success" variant) → outcome unknown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rds_routeros::{Command, RouterOsError, classify_error};
use tracing::Instrument;
use tracing::field::Empty;

use crate::error::AgentError;
use crate::metrics::Metrics;
use crate::pool::Transport;
use crate::ssh::RawOutput;

pub struct Executor {
    transport: Arc<dyn Transport>,
    metrics: Arc<Metrics>,
    /// Deadline of one short command (shrunk to the call's time left).
    command_timeout: Duration,
    read_attempts: u32,
    retry_delay: Duration,
}

/// How long a command may run.
#[derive(Debug, Clone, Copy)]
enum Budget {
    /// The command timeout, shrunk to the current call's time left.
    Short,
    /// A long verb's own deadline (copy-from), independent of any call.
    Long(Duration),
}

impl Executor {
    pub fn new(
        transport: Arc<dyn Transport>,
        metrics: Arc<Metrics>,
        command_timeout: Duration,
    ) -> Executor {
        Executor {
            transport,
            metrics,
            command_timeout,
            read_attempts: 3,
            retry_delay: Duration::from_millis(50),
        }
    }

    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// One attempt of one command inside its own span (child of the current
    /// span: the bus call's handler). Records verb, slot, exit status and
    /// latency; never the key, never the output.
    async fn attempt(
        &self,
        cmd: &Command,
        text: &str,
        attempt: u32,
        budget: Budget,
    ) -> Result<RawOutput, AgentError> {
        let verb = cmd.verb();
        let budget = match budget {
            Budget::Short => crate::deadline::budget(verb, self.command_timeout)?,
            Budget::Long(d) => d,
        };
        let span = tracing::info_span!(
            "routeros.command",
            otel.name = %format!("RouterOS {verb}"),
            otel.kind = "client",
            rds.verb = verb,
            rds.slot = cmd.slot().map(|s| s.as_str()).unwrap_or(""),
            rds.attempt = attempt,
            rds.exit_status = Empty,
            rds.latency_ms = Empty,
            otel.status_code = Empty,
            error.message = Empty,
        );
        let started = Instant::now();
        let res = self
            .transport
            .exec(cmd, text, budget)
            .instrument(span.clone())
            .await;
        let res = res.and_then(|raw| classify(cmd, raw));
        let elapsed = started.elapsed();
        span.record("rds.latency_ms", elapsed.as_secs_f64() * 1000.0);
        let outcome = match &res {
            Ok(raw) => {
                if let Some(s) = raw.exit_status {
                    span.record("rds.exit_status", s);
                }
                "ok"
            }
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.message", e.to_string());
                match e {
                    AgentError::RouterOs { .. } => "routeros_error",
                    AgentError::Timeout { .. } => "timeout",
                    AgentError::CircuitOpen { .. } => "circuit_open",
                    AgentError::BadOutput { .. } => "bad_output",
                    _ => "transport_error",
                }
            }
        };
        self.metrics.command(verb, outcome, elapsed.as_secs_f64());
        res
    }

    /// Runs a read and parses its output; retried on transport failures and
    /// garbled output (reads are safe to repeat).
    pub async fn read<T>(
        &self,
        cmd: &Command,
        parse: impl Fn(&str) -> Result<T, RouterOsError>,
    ) -> Result<T, AgentError> {
        debug_assert!(!cmd.is_mutating());
        let text = cmd.to_string();
        let mut last = None;
        for attempt in 1..=self.read_attempts.max(1) {
            if attempt > 1 {
                tokio::time::sleep(self.retry_delay * (attempt - 1)).await;
            }
            let err = match self.attempt(cmd, &text, attempt, Budget::Short).await {
                Ok(raw) => match parse(output_text(&raw)) {
                    Ok(v) => return Ok(v),
                    Err(RouterOsError::Device(error)) => {
                        return Err(AgentError::RouterOs {
                            verb: cmd.verb(),
                            error,
                        });
                    }
                    Err(e) => AgentError::BadOutput {
                        verb: cmd.verb(),
                        detail: e.to_string(),
                        sent: false,
                    },
                },
                Err(e) => e,
            };
            let retryable = matches!(
                err,
                AgentError::Unreachable { .. }
                    | AgentError::Timeout { .. }
                    | AgentError::Ssh(_)
                    | AgentError::SessionRefused(_)
                    | AgentError::BadOutput { .. }
            );
            if !retryable {
                return Err(err);
            }
            tracing::debug!(verb = cmd.verb(), attempt, error = %err, "read failed, retrying");
            last = Some(err);
        }
        Err(last.unwrap_or_else(|| AgentError::Internal("read without attempts".into())))
    }

    /// One cheap read (`/system resource print`), no retry: Probe must answer
    /// within one command deadline. Returns the RouterOS version.
    pub async fn probe(&self) -> Result<String, AgentError> {
        let cmd = Command::SystemResourcePrint;
        let raw = self
            .attempt(&cmd, &cmd.to_string(), 1, Budget::Short)
            .await?;
        let s = rds_routeros::parse_singleton(&raw.stdout).map_err(|e| AgentError::BadOutput {
            verb: cmd.verb(),
            detail: e.to_string(),
            sent: false,
        })?;
        Ok(s.get("version").unwrap_or("unknown version").to_owned())
    }

    /// Runs a mutation. Ok means RouterOS answered silently (success). Only a
    /// never-sent command is retried (once); see the module docs.
    pub async fn mutate(&self, cmd: &Command) -> Result<(), AgentError> {
        self.mutate_within(cmd, Budget::Short).await
    }

    /// [`Executor::mutate`] for a long verb (copy-from) under its own
    /// deadline, run detached from any call.
    pub async fn mutate_long(&self, cmd: &Command, timeout: Duration) -> Result<(), AgentError> {
        self.mutate_within(cmd, Budget::Long(timeout)).await
    }

    async fn mutate_within(&self, cmd: &Command, budget: Budget) -> Result<(), AgentError> {
        debug_assert!(cmd.is_mutating());
        let text = cmd.to_string();
        let mut attempt = 1;
        loop {
            match self.attempt(cmd, &text, attempt, budget).await {
                Ok(_) => return Ok(()),
                Err(e)
                    if attempt == 1
                        && !e.outcome_unknown()
                        && matches!(
                            e,
                            AgentError::Unreachable { .. }
                                | AgentError::Timeout { .. }
                                | AgentError::SessionRefused(_)
                        ) =>
                {
                    tracing::debug!(verb = cmd.verb(), error = %e, "mutation never sent, retrying once");
                    tokio::time::sleep(self.retry_delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The text a read answered: stdout, or stderr when only that has content
/// (RouterOS writes everything to stdout; a box or proxy that used stderr
/// must not look like an empty answer).
fn output_text(raw: &RawOutput) -> &str {
    if raw.stdout.trim().is_empty() && !raw.stderr.trim().is_empty() {
        &raw.stderr
    } else {
        &raw.stdout
    }
}

/// Reads RouterOS's verdict from the output text (both streams; stderr is
/// normally empty on RouterOS but costs nothing to check).
fn classify(cmd: &Command, raw: RawOutput) -> Result<RawOutput, AgentError> {
    let verb = cmd.verb();
    if let Some(error) = classify_error(&raw.stdout).or_else(|| classify_error(&raw.stderr)) {
        return Err(AgentError::RouterOs { verb, error });
    }
    if cmd.is_mutating() {
        let printed = raw.stdout.trim();
        if !printed.is_empty() {
            return Err(AgentError::BadOutput {
                verb,
                detail: format!(
                    "expected no output, got {} bytes that are not a RouterOS error",
                    printed.len()
                ),
                sent: true,
            });
        }
        if let Some(status) = raw.exit_status
            && status != 0
        {
            return Err(AgentError::BadOutput {
                verb,
                detail: format!("exit status {status} without any error text"),
                sent: true,
            });
        }
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use futures::future::BoxFuture;
    use rds_routeros::{DiskSelector, Slot};
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// Replays scripted exec results.
    struct Script {
        replies: Mutex<VecDeque<Result<RawOutput, AgentError>>>,
        seen: Mutex<Vec<String>>,
    }

    impl Script {
        fn new(replies: Vec<Result<RawOutput, AgentError>>) -> Arc<Script> {
            Arc::new(Script {
                replies: Mutex::new(replies.into()),
                seen: Mutex::new(Vec::new()),
            })
        }
    }

    impl Transport for Script {
        fn exec<'a>(
            &'a self,
            _cmd: &'a Command,
            text: &'a str,
            _budget: Duration,
        ) -> BoxFuture<'a, Result<RawOutput, AgentError>> {
            self.seen.lock().unwrap().push(text.to_owned());
            let r = self
                .replies
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Err(AgentError::Internal("script exhausted".into())));
            Box::pin(async move { r })
        }
        fn describe(&self) -> String {
            "script".into()
        }
        fn is_down(&self) -> bool {
            false
        }
    }

    fn out(stdout: &str, exit: Option<u32>) -> Result<RawOutput, AgentError> {
        Ok(RawOutput {
            stdout: stdout.into(),
            stderr: String::new(),
            exit_status: exit,
        })
    }

    fn exec(s: &Arc<Script>) -> Executor {
        let mut e = Executor::new(s.clone(), Metrics::new("t:22"), Duration::from_secs(1));
        e.retry_delay = Duration::from_millis(1);
        e
    }

    fn remove() -> Command {
        Command::DiskRemove {
            slot: Slot::new("pvc-1").unwrap(),
        }
    }

    fn print() -> Command {
        Command::DiskPrint(DiskSelector::Slot(Slot::new("pvc-1").unwrap()))
    }

    #[tokio::test]
    async fn error_text_wins_over_every_exit_status_variant() {
        for exit in [Some(0), Some(1), None] {
            let s = Script::new(vec![out("failure: not enough space\r\n\r\n", exit)]);
            let err = exec(&s).mutate(&remove()).await.unwrap_err();
            assert_eq!(err.reason(), rds_bus::Reason::CapacityExhausted, "{exit:?}");
            assert!(!err.outcome_unknown());
        }
    }

    #[tokio::test]
    async fn silent_mutation_succeeds_with_zero_or_missing_status() {
        for exit in [Some(0), None] {
            let s = Script::new(vec![out("", exit)]);
            exec(&s).mutate(&remove()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn odd_mutation_results_are_ambiguous_not_success() {
        // "1 with success" variant and garbled output.
        for reply in [out("", Some(1)), out("\u{1b}[9999B??#", Some(0))] {
            let s = Script::new(vec![reply]);
            let err = exec(&s).mutate(&remove()).await.unwrap_err();
            assert!(err.outcome_unknown(), "{err}");
        }
    }

    #[tokio::test]
    async fn mutation_is_retried_only_when_never_sent() {
        let not_sent = || {
            Err(AgentError::Unreachable {
                msg: "open refused".into(),
                sent: false,
            })
        };
        let s = Script::new(vec![not_sent(), out("", Some(0))]);
        exec(&s).mutate(&remove()).await.unwrap();
        assert_eq!(s.seen.lock().unwrap().len(), 2);

        let s = Script::new(vec![
            Err(AgentError::Unreachable {
                msg: "dropped".into(),
                sent: true,
            }),
            out("", Some(0)),
        ]);
        let err = exec(&s).mutate(&remove()).await.unwrap_err();
        assert!(err.outcome_unknown());
        assert_eq!(
            s.seen.lock().unwrap().len(),
            1,
            "an ambiguous mutation is never re-sent"
        );
    }

    #[tokio::test]
    async fn reads_are_retried_on_drops_and_garbage() {
        let legend = "Flags: X - DISABLED\r\n\r\n";
        let s = Script::new(vec![
            Err(AgentError::Unreachable {
                msg: "dropped".into(),
                sent: true,
            }),
            out("@@@ garbage without structure @@@\r\n", Some(0)),
            out(legend, Some(0)),
        ]);
        let disks = exec(&s)
            .read(&print(), rds_routeros::parse_disk_print_detail)
            .await
            .unwrap();
        assert!(disks.is_empty());
        assert_eq!(s.seen.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn circuit_open_is_not_retried() {
        let s = Script::new(vec![Err(AgentError::CircuitOpen {
            last: "down".into(),
            reason: rds_bus::Reason::RdsUnreachable,
            retry_in: Duration::from_secs(1),
        })]);
        let err = exec(&s)
            .read(&print(), rds_routeros::parse_disk_print_detail)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), rds_bus::Reason::RdsUnreachable);
        assert_eq!(s.seen.lock().unwrap().len(), 1);
    }
}
