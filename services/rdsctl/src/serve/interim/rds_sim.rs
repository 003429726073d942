//! INTERIM copy of services/rds-sim/src/main.rs: `rds-sim`: serve a simulated RDS over SSH. Logic lives in the library (`rds_sim::cli`).

use std::process::ExitCode;

use clap::Parser;
use rds_sim::cli::{Args, Effective, build, serve};

pub fn cli_main(args: Vec<std::ffi::OsString>) -> ExitCode {
    match super::runtime() {
        Ok(rt) => rt.block_on(run_main(args)),
        Err(code) => code,
    }
}

async fn run_main(args: Vec<std::ffi::OsString>) -> ExitCode {
    let args = Args::parse_from(args);
    let built = build(&args);
    if args.check_config {
        let eff = built.map(|(c, f)| Effective::new(&c, &args, f.len()));
        return rds_bus::config::report_check_config("rds-sim", eff);
    }
    let (cfg, faults) = match built {
        Ok(b) => b,
        Err(e) => return rds_bus::config::report_check_config::<()>("rds-sim", Err(e)),
    };
    let telemetry = match rds_bus::telemetry::init("rds-sim") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rds-sim: telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match serve(cfg, faults, args.control).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rds-sim: {e}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}
