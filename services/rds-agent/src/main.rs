//! rds-agent binary: parse config, `--check-config`, telemetry, serve, shut down.

use std::process::ExitCode;

use clap::Parser;
use rds_agent::Args;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
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
        Ok(settings) => match rds_agent::start(settings).await {
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
