//! The attachment-service command line (moved from main.rs unchanged, so `rdsctl serve
//! attachment-service` and the binary share one entry point: [`cli_main`]).
//! Binary: attachment-service binary: parse, check, init telemetry, serve, shut down.

use std::process::ExitCode;

use crate::Config;
use clap::Parser;

/// Runs attachment-service exactly as its binary does: `args` is the whole command line
/// (argv[0] first). Builds its own tokio runtime, so `rdsctl serve attachment-service`
/// runs this very code path.
pub fn cli_main(args: Vec<std::ffi::OsString>) -> ExitCode {
    rds_bus::config::run_main("attachment-service", main_async(args))
}

async fn main_async(args: Vec<std::ffi::OsString>) -> ExitCode {
    let cfg = Config::parse_from(args);
    if cfg.check_config {
        return rds_bus::config::report_check_config(
            "attachment-service",
            cfg.validate().map_err(|e| e.to_string()),
        );
    }
    let telemetry = match rds_bus::telemetry::init("attachment-service") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("attachment-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match rds_bus::Listener::bind(&cfg.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen");
            telemetry.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    let code = match crate::serve(cfg, listener, rds_bus::shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "attachment-service failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}
