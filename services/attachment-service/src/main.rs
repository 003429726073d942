//! attachment-service binary: parse, check, init telemetry, serve, shut down.

use std::process::ExitCode;

use attachment_service::Config;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cfg = Config::parse();
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
    let code = match attachment_service::serve(cfg, listener, rds_bus::shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "attachment-service failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}
