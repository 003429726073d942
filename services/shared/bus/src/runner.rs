//! The one runner of every binary (docs/decisions.md §14): parse → validate
//! (and `--check-config`) → telemetry → start (bind + serve) → wait for
//! SIGTERM/SIGINT → drain → flush telemetry. A service describes itself with
//! [`Service`]; its binary, `rdsctl serve <service>` and the tests start it
//! the same way: `start(settings, shutdown)` returns a handle that
//! [`Serving::wait`]s for the drain.
//!
//! Exit codes, the same for every binary:
//! - 0: stopped cleanly after a signal, or `--check-config` found the
//!   configuration valid (printed as JSON on stdout);
//! - 2: bad flags (clap's own exit) or an invalid configuration, reported on
//!   stderr before anything starts;
//! - 1: telemetry could not start, the service could not start (a port in
//!   use, an unreadable store, no Kubernetes client), or it failed while
//!   serving.

use std::ffi::OsString;
use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

use serde::Serialize;

use crate::Shutdown;

/// A started service: it serves until the [`Shutdown`] given to its `start`
/// fires (or until it fails on its own), then drains.
pub trait Serving {
    type Error: Display;
    /// Resolves once the service stopped and drained.
    fn wait(self) -> impl Future<Output = Result<(), Self::Error>>;
}

/// What the runner needs to know about one binary.
pub trait Service {
    /// The binary's name (log lines, telemetry `service.name` default).
    const NAME: &'static str;
    /// The command line (flags and environment).
    type Args: clap::Parser;
    /// The validated configuration the service starts from.
    type Settings;
    /// What `--check-config` prints (never secrets).
    type Effective: Serialize;
    type Running: Serving;
    type StartError: Display;

    /// Whether `--check-config` was given.
    fn check_only(args: &Self::Args) -> bool;
    /// Validates everything that can be checked without serving.
    fn validate(args: &Self::Args) -> Result<Self::Settings, String>;
    fn effective(args: &Self::Args, settings: &Self::Settings) -> Self::Effective;
    /// Binds and starts serving in background tasks.
    fn start(
        settings: Self::Settings,
        shutdown: Shutdown,
    ) -> impl Future<Output = Result<Self::Running, Self::StartError>>;
}

/// Runs `S` exactly as its binary does: `args` is the whole command line
/// (`argv[0]` first). Builds its own tokio runtime, so `rdsctl serve <service>`
/// runs this very code path.
pub fn main<S: Service>(args: Vec<OsString>) -> ExitCode {
    crate::config::run_main(S::NAME, run::<S>(args))
}

/// [`main`] on a runtime the caller owns.
pub async fn run<S: Service>(args: Vec<OsString>) -> ExitCode {
    let args = <S::Args as clap::Parser>::parse_from(args);
    let validated = S::validate(&args);
    if S::check_only(&args) {
        let effective = validated.as_ref().map(|s| S::effective(&args, s));
        return crate::config::report_check_config(S::NAME, effective.map_err(Clone::clone));
    }
    let settings = match validated {
        Ok(s) => s,
        Err(why) => return crate::config::report_check_config::<()>(S::NAME, Err(why)),
    };
    let telemetry = match crate::telemetry::init(S::NAME) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: telemetry: {e}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let code = match S::start(settings, shutdown).await {
        Err(e) => {
            tracing::error!(error = %e, "{}: cannot start", S::NAME);
            ExitCode::FAILURE
        }
        Ok(running) => match running.wait().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "{} failed", S::NAME);
                ExitCode::FAILURE
            }
        },
    };
    telemetry.shutdown().await;
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct ToyArgs {
        #[arg(long, value_parser = crate::duration::parse_positive)]
        every: std::time::Duration,
        #[arg(long)]
        check_config: bool,
    }

    struct Toy;
    struct ToyRunning;

    impl Serving for ToyRunning {
        type Error = String;
        async fn wait(self) -> Result<(), String> {
            Ok(())
        }
    }

    impl Service for Toy {
        const NAME: &'static str = "toy";
        type Args = ToyArgs;
        type Settings = u128;
        type Effective = u128;
        type Running = ToyRunning;
        type StartError = String;
        fn check_only(args: &ToyArgs) -> bool {
            args.check_config
        }
        fn validate(args: &ToyArgs) -> Result<u128, String> {
            match args.every.as_millis() {
                ms if ms > 60_000 => Err("--every: at most a minute".into()),
                ms => Ok(ms),
            }
        }
        fn effective(_: &ToyArgs, s: &u128) -> u128 {
            *s
        }
        async fn start(_: u128, _: Shutdown) -> Result<ToyRunning, String> {
            Err("never started in this test".into())
        }
    }

    fn argv(rest: &[&str]) -> Vec<OsString> {
        std::iter::once("toy")
            .chain(rest.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// `--check-config` exits 0 on a valid config and 2 on an invalid one;
    /// an invalid config without it exits 2 before anything starts (the
    /// toy's start would fail with 1).
    #[tokio::test]
    async fn check_config_and_invalid_config_exit_codes() {
        let ok = run::<Toy>(argv(&["--every", "1h30m", "--check-config"])).await;
        assert_eq!(ok, ExitCode::from(2), "90 minutes is over the toy's limit");
        let ok = run::<Toy>(argv(&["--every", "500ms", "--check-config"])).await;
        assert_eq!(ok, ExitCode::SUCCESS);
        let bad = run::<Toy>(argv(&["--every", "2m"])).await;
        assert_eq!(bad, ExitCode::from(2));
    }
}
