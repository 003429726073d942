//! The csi-frontend command line: the binary and `rdsctl serve csi-frontend`
//! run [`cli_main`], which is the shared runner (`rds_bus::runner`: exit
//! codes, drain on SIGTERM) given this service's description
//! ([`FrontendMain`]).

use std::process::ExitCode;

use rds_bus::{Listener, Shutdown};

use crate::{Args, Config, FrontendError, Running};

/// csi-frontend as the runner sees it.
pub struct FrontendMain;

impl rds_bus::Service for FrontendMain {
    const NAME: &'static str = "csi-frontend";
    type Args = Args;
    type Settings = Config;
    type Effective = Config;
    type Running = Running;
    type StartError = FrontendError;

    fn check_only(args: &Args) -> bool {
        args.check_config
    }

    fn validate(args: &Args) -> Result<Config, String> {
        args.validate()
    }

    fn effective(_: &Args, cfg: &Config) -> Config {
        cfg.clone()
    }

    async fn start(cfg: Config, shutdown: Shutdown) -> Result<Running, FrontendError> {
        let listener = Listener::bind(&cfg.endpoint)
            .await
            .map_err(|e| FrontendError::Internal(e.to_string()))?;
        crate::start(cfg, listener, shutdown).await
    }
}

/// Runs csi-frontend exactly as its binary does: `args` is the whole command
/// line (`argv[0]` first).
pub fn cli_main(args: Vec<std::ffi::OsString>) -> ExitCode {
    rds_bus::runner::main::<FrontendMain>(args)
}
