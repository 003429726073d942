//! The event-service command line (moved from main.rs unchanged, so `rdsctl serve
//! event-service` and the binary share one entry point: [`cli_main`]).
//! Binary: event-service binary: parse config, `--check-config`, telemetry, serve.

use std::process::ExitCode;

use crate::Config;
use clap::Parser;

/// Runs event-service exactly as its binary does: `args` is the whole command line
/// (argv[0] first). Builds its own tokio runtime, so `rdsctl serve event-service`
/// runs this very code path.
pub fn cli_main(args: Vec<std::ffi::OsString>) -> ExitCode {
    rds_bus::config::run_main("event-service", main_async(args))
}

async fn main_async(args: Vec<std::ffi::OsString>) -> ExitCode {
    let cfg = Config::parse_from(args);
    if cfg.check_config {
        return rds_bus::config::report_check_config("event-service", cfg.validate());
    }
    if let Err(why) = cfg.validate() {
        eprintln!("event-service: invalid configuration: {why}");
        return ExitCode::from(2);
    }
    let telemetry = match rds_bus::telemetry::init("event-service") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("event-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = async {
        let listener = rds_bus::Listener::bind(&cfg.listen).await?;
        let shutdown = rds_bus::Shutdown::new();
        shutdown.trigger_on_signals();
        crate::serve(cfg, listener, async move { shutdown.wait().await }).await
    }
    .await;
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "event-service failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}
