//! The rds-agent command line: the binary and `rdsctl serve rds-agent` run
//! [`cli_main`], which is the shared runner (`rds_bus::runner`: exit codes,
//! drain on SIGTERM) given this service's description ([`AgentMain`]).

use std::process::ExitCode;

use rds_bus::{Listener, Shutdown};

use crate::{AgentError, Args, RunningAgent, Settings};

/// rds-agent as the runner sees it.
pub struct AgentMain;

impl rds_bus::Service for AgentMain {
    const NAME: &'static str = "rds-agent";
    type Args = Args;
    type Settings = Settings;
    type Effective = serde_json::Value;
    type Running = RunningAgent;
    type StartError = AgentError;

    fn check_only(args: &Args) -> bool {
        args.check_config
    }

    fn validate(args: &Args) -> Result<Settings, String> {
        args.validate().map_err(|e| e.to_string())
    }

    fn effective(_: &Args, settings: &Settings) -> serde_json::Value {
        settings.summary()
    }

    async fn start(settings: Settings, shutdown: Shutdown) -> Result<RunningAgent, AgentError> {
        let listener = Listener::bind(&settings.listen)
            .await
            .map_err(|e| AgentError::Config(e.to_string()))?;
        crate::start(settings, listener, shutdown).await
    }
}

/// Runs rds-agent exactly as its binary does: `args` is the whole command line
/// (`argv[0]` first).
pub fn cli_main(args: Vec<std::ffi::OsString>) -> ExitCode {
    rds_bus::runner::main::<AgentMain>(args)
}
