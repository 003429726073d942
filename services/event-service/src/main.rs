//! event-service binary: parse config, `--check-config`, telemetry, serve.

use std::process::ExitCode;

use clap::Parser;
use event_service::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let cfg = Config::parse();
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
        event_service::serve(cfg, listener, async move { shutdown.wait().await }).await
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
