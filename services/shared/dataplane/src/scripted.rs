//! A [`CommandRunner`] test double: records every command and answers from
//! a script; unscripted commands go to an optional pass-through runner (so a
//! test can fake `nvme` while blkid, mkfs and losetup run for real) or fail.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::command::{Cmd, CmdError, CmdOutput, CommandRunner};

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub delay: Duration,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Output(CmdOutput),
    Timeout,
}

impl Reply {
    pub fn ok(stdout: impl Into<String>) -> Self {
        Reply {
            delay: Duration::ZERO,
            outcome: Outcome::Output(CmdOutput::ok(stdout)),
        }
    }

    pub fn exit(code: i32, stderr: impl Into<String>) -> Self {
        Reply {
            delay: Duration::ZERO,
            outcome: Outcome::Output(CmdOutput::exit(code, stderr)),
        }
    }

    pub fn timeout() -> Self {
        Reply {
            delay: Duration::ZERO,
            outcome: Outcome::Timeout,
        }
    }

    /// Answer only after `delay` (to exercise time budgets).
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

struct Rule {
    program: String,
    prefix: Vec<String>,
    replies: VecDeque<Reply>,
    last: Option<Reply>,
}

impl Rule {
    fn matches(&self, cmd: &Cmd) -> bool {
        cmd.program == self.program
            && cmd.args.len() >= self.prefix.len()
            && cmd.args.iter().zip(&self.prefix).all(|(a, p)| a == p)
    }

    /// Replies are used in order; the last one repeats.
    fn next(&mut self) -> Option<Reply> {
        match self.replies.pop_front() {
            Some(r) => {
                self.last = Some(r.clone());
                Some(r)
            }
            None => self.last.clone(),
        }
    }
}

/// Records commands and answers from a script (see module docs).
#[derive(Default)]
pub struct ScriptedRunner {
    rules: Mutex<Vec<Rule>>,
    calls: Mutex<Vec<Vec<String>>>,
    fallback: Option<Arc<dyn CommandRunner>>,
}

impl ScriptedRunner {
    /// Unscripted commands fail as "not installed".
    pub fn new() -> Self {
        Self::default()
    }

    /// Unscripted commands are run by `fallback` (still recorded).
    pub fn passthrough(fallback: Arc<dyn CommandRunner>) -> Self {
        ScriptedRunner {
            fallback: Some(fallback),
            ..Self::default()
        }
    }

    /// Scripts `program` when its arguments start with `prefix`. Rules are
    /// tried in the order they were added.
    pub fn on(&self, program: &str, prefix: &[&str], replies: Vec<Reply>) -> &Self {
        lock(&self.rules).push(Rule {
            program: program.to_owned(),
            prefix: prefix.iter().map(|s| (*s).to_owned()).collect(),
            replies: replies.into(),
            last: None,
        });
        self
    }

    /// Every command run so far: `[program, args…]`.
    pub fn calls(&self) -> Vec<Vec<String>> {
        lock(&self.calls).clone()
    }

    /// The argument lists of the calls to `program`.
    pub fn calls_to(&self, program: &str) -> Vec<Vec<String>> {
        self.calls()
            .into_iter()
            .filter(|c| c.first().is_some_and(|p| p == program))
            .map(|c| c[1..].to_vec())
            .collect()
    }

    pub fn clear_calls(&self) {
        lock(&self.calls).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CommandRunner for ScriptedRunner {
    fn run<'a>(&'a self, cmd: &'a Cmd) -> BoxFuture<'a, Result<CmdOutput, CmdError>> {
        Box::pin(async move {
            lock(&self.calls).push(
                std::iter::once(cmd.program.clone())
                    .chain(cmd.args.iter().cloned())
                    .collect(),
            );
            let reply = lock(&self.rules)
                .iter_mut()
                .find(|r| r.matches(cmd))
                .and_then(Rule::next);
            match reply {
                Some(reply) => {
                    if !reply.delay.is_zero() {
                        if reply.delay > cmd.timeout {
                            tokio::time::sleep(cmd.timeout).await;
                            return Err(timeout(cmd));
                        }
                        tokio::time::sleep(reply.delay).await;
                    }
                    match reply.outcome {
                        Outcome::Output(o) => Ok(o),
                        Outcome::Timeout => Err(timeout(cmd)),
                    }
                }
                None => match &self.fallback {
                    Some(f) => f.run(cmd).await,
                    None => Err(CmdError::NotFound {
                        program: cmd.program.clone(),
                    }),
                },
            }
        })
    }
}

fn timeout(cmd: &Cmd) -> CmdError {
    CmdError::Timeout {
        program: cmd.program.clone(),
        secs: cmd.timeout.as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn replies_in_order_then_repeat_the_last() {
        let r = ScriptedRunner::new();
        r.on(
            "blkid",
            &["-p"],
            vec![Reply::exit(1, "cannot read"), Reply::ok("TYPE=ext4")],
        );
        let cmd = Cmd::new("blkid", Duration::from_secs(1)).args(["-p", "/dev/x"]);
        assert_eq!(r.run(&cmd).await.unwrap().code, Some(1));
        assert_eq!(r.run(&cmd).await.unwrap().stdout, "TYPE=ext4");
        assert_eq!(r.run(&cmd).await.unwrap().stdout, "TYPE=ext4");
        let other = Cmd::new("mkfs.ext4", Duration::from_secs(1)).arg("/dev/x");
        assert!(matches!(
            r.run(&other).await,
            Err(CmdError::NotFound { .. })
        ));
        assert_eq!(r.calls_to("blkid").len(), 3);
        assert_eq!(r.calls_to("mkfs.ext4"), vec![vec!["/dev/x".to_owned()]]);
    }

    #[tokio::test]
    async fn a_delay_longer_than_the_deadline_times_out() {
        let r = ScriptedRunner::new();
        r.on(
            "nvme",
            &[],
            vec![Reply::ok("").after(Duration::from_secs(60))],
        );
        let cmd = Cmd::new("nvme", Duration::from_millis(20)).arg("disconnect");
        assert!(matches!(r.run(&cmd).await, Err(CmdError::Timeout { .. })));
    }
}
