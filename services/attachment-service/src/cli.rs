//! The attachment-service command line: the binary and `rdsctl serve
//! attachment-service` run [`cli_main`], which is the shared runner
//! (`rds_bus::runner`: exit codes, drain on SIGTERM) given this service's
//! description ([`AttachmentMain`]).

use std::process::ExitCode;

use rds_bus::{Listener, Shutdown};

use crate::{Config, Error, Running, Settings};

/// attachment-service as the runner sees it.
pub struct AttachmentMain;

impl rds_bus::Service for AttachmentMain {
    const NAME: &'static str = "attachment-service";
    type Args = Config;
    type Settings = Settings;
    type Effective = Settings;
    type Running = Running;
    type StartError = Error;

    fn check_only(args: &Config) -> bool {
        args.check_config
    }

    fn validate(args: &Config) -> Result<Settings, String> {
        args.validate().map_err(|e| e.to_string())
    }

    fn effective(_: &Config, settings: &Settings) -> Settings {
        settings.clone()
    }

    async fn start(settings: Settings, shutdown: Shutdown) -> Result<Running, Error> {
        let listener = Listener::bind(&settings.raw.listen)
            .await
            .map_err(|e| Error::Config(e.to_string()))?;
        crate::start(settings, listener, shutdown).await
    }
}

/// Runs attachment-service exactly as its binary does: `args` is the whole
/// command line (`argv[0]` first).
pub fn cli_main(args: Vec<std::ffi::OsString>) -> ExitCode {
    rds_bus::runner::main::<AttachmentMain>(args)
}
