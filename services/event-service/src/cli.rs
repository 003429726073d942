//! The event-service command line: the binary and `rdsctl serve
//! event-service` run [`cli_main`], which is the shared runner
//! (`rds_bus::runner`: exit codes, drain on SIGTERM) given this service's
//! description ([`EventMain`]).

use std::process::ExitCode;

use rds_bus::{Listener, Shutdown};

use crate::{Config, Error, Running, Settings};

/// event-service as the runner sees it.
pub struct EventMain;

impl rds_bus::Service for EventMain {
    const NAME: &'static str = "event-service";
    type Args = Config;
    type Settings = Settings;
    type Effective = Settings;
    type Running = Running;
    type StartError = Error;

    fn check_only(args: &Config) -> bool {
        args.check_config
    }

    fn validate(args: &Config) -> Result<Settings, String> {
        args.validate()
    }

    fn effective(_: &Config, settings: &Settings) -> Settings {
        settings.clone()
    }

    async fn start(settings: Settings, shutdown: Shutdown) -> Result<Running, Error> {
        let listener = Listener::bind(&settings.listen).await?;
        crate::start(settings, listener, shutdown).await
    }
}

/// Runs event-service exactly as its binary does: `args` is the whole
/// command line (`argv[0]` first).
pub fn cli_main(args: Vec<std::ffi::OsString>) -> ExitCode {
    rds_bus::runner::main::<EventMain>(args)
}
