//! The rds-agent command line (moved from main.rs unchanged, so `rdsctl serve
//! rds-agent` and the binary share one entry point: [`cli_main`]).
//! Binary: rds-agent binary: parse config, `--check-config`, telemetry, serve, shut down.

use std::process::ExitCode;

use crate::Args;
use clap::Parser;

/// Runs rds-agent exactly as its binary does: `args` is the whole command line
/// (argv[0] first). Builds its own tokio runtime, so `rdsctl serve rds-agent`
/// runs this very code path.
pub fn cli_main(args: Vec<std::ffi::OsString>) -> ExitCode {
    rds_bus::config::run_main("rds-agent", main_async(args))
}

async fn main_async(args: Vec<std::ffi::OsString>) -> ExitCode {
    let args = Args::parse_from(args);
    if args.check_config {
        let result = args
            .validate()
            .map(|s| s.summary())
            .map_err(|e| e.to_string());
        return rds_bus::config::report_check_config("rds-agent", result);
    }
    let telemetry = match rds_bus::telemetry::init("rds-agent") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rds-agent: telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match args.validate() {
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            ExitCode::from(2)
        }
        Ok(settings) => match crate::start(settings).await {
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                ExitCode::FAILURE
            }
            Ok(agent) => {
                agent.shutdown_handle().trigger_on_signals();
                match agent.wait().await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(error = %e, "server failed");
                        ExitCode::FAILURE
                    }
                }
            }
        },
    };
    telemetry.shutdown().await;
    code
}
