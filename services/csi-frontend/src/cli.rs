//! The csi-frontend command line (moved from main.rs unchanged, so `rdsctl serve
//! csi-frontend` and the binary share one entry point: [`cli_main`]).
//! Binary: csi-frontend binary: parse, check, init telemetry, serve, shut down.

use std::process::ExitCode;

use crate::Args;
use clap::Parser;

/// Runs csi-frontend exactly as its binary does: `args` is the whole command line
/// (argv[0] first). Builds its own tokio runtime, so `rdsctl serve csi-frontend`
/// runs this very code path.
pub fn cli_main(args: Vec<std::ffi::OsString>) -> ExitCode {
    rds_bus::config::run_main("csi-frontend", main_async(args))
}

async fn main_async(args: Vec<std::ffi::OsString>) -> ExitCode {
    let args = Args::parse_from(args);
    let cfg = args.validate();
    if args.check_config {
        return rds_bus::config::report_check_config("csi-frontend", cfg);
    }
    let cfg = match cfg {
        Ok(c) => c,
        Err(why) => {
            eprintln!("csi-frontend: invalid configuration: {why}");
            return ExitCode::from(2);
        }
    };
    let telemetry = match rds_bus::telemetry::init("csi-frontend") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("csi-frontend: telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match run(cfg).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "csi-frontend stopped");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}

async fn run(cfg: crate::Config) -> Result<(), Box<dyn std::error::Error>> {
    let listener = rds_bus::Listener::bind(&cfg.endpoint).await?;
    let shutdown = rds_bus::Shutdown::new();
    shutdown.trigger_on_signals();
    crate::serve(cfg, listener, async move { shutdown.wait().await }).await?;
    Ok(())
}
