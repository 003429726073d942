//! rdsctl: the operator CLI of rds-csi.
//!
//! - `up` ([`up`], [`stack`]): the whole stack on one machine as supervised
//!   child processes (docs/local-mode.md §1), and `serve` ([`serve`]) which those
//!   children run.
//! - `demo` ([`demo`]): one volume through its whole life, timed and traced.
//! - CSI client commands ([`commands`] over [`csi`]), `events` ([`events`]),
//!   `sim` fault controls ([`sim`]).
//! - Operator commands against a real RDS and cluster: `doctor` ([`doctor`]),
//!   `orphans` ([`orphans`]), `attachments` ([`attachments`]) — the RDS only
//!   through rds-agent's library ([`target`]); `completion` ([`completion`]).
//!   Output `-o table|json|yaml` ([`output`]) everywhere.

pub mod attachments;
pub mod cli;
pub mod commands;
pub mod completion;
pub mod csi;
pub mod demo;
pub mod doctor;
pub mod error;
pub mod events;
pub mod http;
pub mod orphans;
pub mod output;
pub mod serve;
pub mod sim;
pub mod stack;
pub mod target;
pub mod trace;
pub mod units;
pub mod up;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::Ctx;
use crate::error::Result;
use crate::trace::ClientTracer;

/// The whole CLI; `args` includes argv[0].
pub fn cli_main(args: Vec<OsString>) -> ExitCode {
    // `serve` hands its arguments untouched to the service's own parser
    // (`rdsctl serve rds-agent --help` is rds-agent's help).
    if args.get(1).is_some_and(|a| a == "serve") {
        return serve::dispatch(&args[2..]);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rdsctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rdsctl: {e}");
            e.exit_code()
        }
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Up(args) => up::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        // Handled before parsing; reachable only through `rdsctl help serve`-like paths.
        Command::Serve { service, args } => {
            let argv: Vec<OsString> = std::iter::once(OsString::from(service))
                .chain(args.into_iter().map(OsString::from))
                .collect();
            Ok(serve::dispatch(&argv))
        }
        Command::Events(args) => {
            events::run(&args.state_dir, args.out.format()).map(|()| ExitCode::SUCCESS)
        }
        Command::Doctor(args) => doctor::run(args).await,
        Command::Orphans(args) => orphans::run(args).await,
        Command::Attachments(args) => attachments::run(args).await,
        Command::Completion { shell } => completion::run(shell),
        Command::Sim(args) => sim::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Info(client) => {
            with_client(&client, |ctx| {
                Box::pin(async move { commands::info::run(ctx).await })
            })
            .await
        }
        Command::Volume { client, cmd } => {
            with_client(&client, |ctx| {
                Box::pin(async move { commands::volume::run(ctx, cmd).await })
            })
            .await
        }
        Command::Controller { client, cmd } => {
            with_client(&client, |ctx| {
                Box::pin(async move { commands::controller::run(ctx, cmd).await })
            })
            .await
        }
        Command::Node { client, cmd } => {
            with_client(&client, |ctx| {
                Box::pin(async move { commands::node::run(ctx, cmd).await })
            })
            .await
        }
        Command::Snapshot { client, cmd } => {
            with_client(&client, |ctx| {
                Box::pin(async move { commands::snapshot::run(ctx, cmd).await })
            })
            .await
        }
    }
}

type BoxFut<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + 'a>>;

/// Connects, runs one client command, flushes exported spans.
async fn with_client(
    args: &cli::ClientArgs,
    f: impl for<'a> FnOnce(&'a Ctx) -> BoxFut<'a>,
) -> Result<ExitCode> {
    let tracer = Arc::new(ClientTracer::from_env());
    let ctx = Ctx::new(args, tracer.clone())?;
    let res = f(&ctx).await;
    drop(ctx);
    if let Ok(t) = Arc::try_unwrap(tracer) {
        t.shutdown().await;
    }
    res.map(|()| ExitCode::SUCCESS)
}
