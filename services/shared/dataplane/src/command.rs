//! Helper programs (nvme, losetup, blkid, mkfs, resize2fs, xfs_growfs) run
//! behind [`CommandRunner`] so tests can record and script them. Arguments
//! are always a vector handed to exec — never a shell — and every run has a
//! deadline after which the child is killed.

use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::DataPlaneError;

/// One program invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub timeout: Duration,
}

impl Cmd {
    pub fn new(program: &str, timeout: Duration) -> Self {
        Cmd {
            program: program.to_owned(),
            args: Vec::new(),
            timeout,
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `program arg arg …` for logs (arguments are validated values, no secrets).
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a finished program printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CmdOutput {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn ok(stdout: impl Into<String>) -> Self {
        CmdOutput {
            code: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    pub fn exit(code: i32, stderr: impl Into<String>) -> Self {
        CmdOutput {
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    /// stderr then stdout, trimmed and bounded, for error messages.
    pub fn message(&self) -> String {
        let mut s = self.stderr.trim().to_owned();
        if s.is_empty() {
            s = self.stdout.trim().to_owned();
        }
        let code = match self.code {
            Some(c) => format!("exit {c}"),
            None => "killed by signal".to_owned(),
        };
        let mut s = if s.is_empty() {
            code
        } else {
            format!("{code}: {s}")
        };
        if s.len() > 512 {
            let mut cut = 512;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push('…');
        }
        s
    }
}

/// Why a program could not produce an output at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CmdError {
    #[error("{program} is not installed on this node")]
    NotFound { program: String },
    #[error("cannot start {program}: {reason}")]
    Spawn { program: String, reason: String },
    #[error("{program} timed out after {secs:.1} s")]
    Timeout { program: String, secs: f64 },
}

impl From<CmdError> for DataPlaneError {
    fn from(e: CmdError) -> Self {
        match e {
            CmdError::NotFound { .. } => DataPlaneError::Precondition(e.to_string()),
            CmdError::Spawn { program, reason } => DataPlaneError::Command {
                program,
                detail: reason,
            },
            CmdError::Timeout { program, secs } => DataPlaneError::Timeout {
                what: program,
                secs,
            },
        }
    }
}

/// Runs helper programs. Object safe so the plane can hold `Arc<dyn …>`.
pub trait CommandRunner: Send + Sync {
    fn run<'a>(&'a self, cmd: &'a Cmd) -> BoxFuture<'a, Result<CmdOutput, CmdError>>;
}

/// The real runner: `tokio::process`, stdin closed, `LC_ALL=C` (stable
/// messages to match on), killed when the deadline passes.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run<'a>(&'a self, cmd: &'a Cmd) -> BoxFuture<'a, Result<CmdOutput, CmdError>> {
        Box::pin(async move {
            let child = tokio::process::Command::new(&cmd.program)
                .args(&cmd.args)
                .env("LC_ALL", "C")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => CmdError::NotFound {
                        program: cmd.program.clone(),
                    },
                    _ => CmdError::Spawn {
                        program: cmd.program.clone(),
                        reason: e.to_string(),
                    },
                })?;
            // Dropping the future on timeout drops the child: kill_on_drop kills it.
            match tokio::time::timeout(cmd.timeout, child.wait_with_output()).await {
                Err(_) => Err(CmdError::Timeout {
                    program: cmd.program.clone(),
                    secs: cmd.timeout.as_secs_f64(),
                }),
                Ok(Err(e)) => Err(CmdError::Spawn {
                    program: cmd.program.clone(),
                    reason: e.to_string(),
                }),
                Ok(Ok(out)) => Ok(CmdOutput {
                    code: out.status.code(),
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                }),
            }
        })
    }
}

/// Runs `cmd` and turns a non-zero exit into [`DataPlaneError::Command`].
pub(crate) async fn run_checked(
    runner: &dyn CommandRunner,
    cmd: &Cmd,
) -> Result<CmdOutput, DataPlaneError> {
    tracing::debug!(command = %cmd.display(), "running");
    let out = runner.run(cmd).await?;
    if out.success() {
        Ok(out)
    } else {
        Err(DataPlaneError::Command {
            program: cmd.display(),
            detail: out.message(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn system_runner_reports_exit_codes_and_output() {
        let r = SystemRunner;
        let out = r
            .run(&Cmd::new("echo", Duration::from_secs(5)).arg("hi"))
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout.trim(), "hi");
        let out = r
            .run(&Cmd::new("ls", Duration::from_secs(5)).arg("/rds-no-such-path"))
            .await
            .unwrap();
        assert_eq!(out.code, Some(2));
        assert!(
            out.message().starts_with("exit 2: ls:"),
            "{}",
            out.message()
        );
        assert!(out.message().contains("No such file"), "{}", out.message());
    }

    #[tokio::test]
    async fn system_runner_kills_on_timeout() {
        let started = std::time::Instant::now();
        let err = SystemRunner
            .run(&Cmd::new("sleep", Duration::from_millis(200)).arg("10"))
            .await
            .unwrap_err();
        assert!(matches!(err, CmdError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn missing_program_is_a_precondition() {
        let err = SystemRunner
            .run(&Cmd::new("rds-no-such-program", Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert!(matches!(err, CmdError::NotFound { .. }));
        let e: DataPlaneError = err.into();
        assert_eq!(e.reason(), rds_bus::Reason::NodePrecondition);
    }
}
