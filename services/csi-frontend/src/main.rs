//! csi-frontend binary: parse, check, init telemetry, serve, shut down.

use std::process::ExitCode;

use clap::Parser;
use csi_frontend::Args;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
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

async fn run(cfg: csi_frontend::Config) -> Result<(), Box<dyn std::error::Error>> {
    let listener = rds_bus::Listener::bind(&cfg.endpoint).await?;
    let shutdown = rds_bus::Shutdown::new();
    shutdown.trigger_on_signals();
    csi_frontend::serve(cfg, listener, async move { shutdown.wait().await }).await?;
    Ok(())
}
