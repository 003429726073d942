//! `rdsctl serve <service> [args…]`: runs one service in this process through
//! the very entry point of that service's own binary (`<crate>::cli_main`),
//! so a child of `rdsctl up` behaves exactly like the service binary.

use std::ffi::OsString;
use std::process::ExitCode;

use crate::stack::child::SUPERVISOR_PID_ENV;
use crate::stack::spec::SERVICES;

/// `args` are the service's own flags (without `serve <service>`).
pub fn dispatch(args: &[OsString]) -> ExitCode {
    let Some(service) = args.first().and_then(|s| s.to_str()) else {
        eprintln!("usage: rdsctl serve <{}> [flags…]", SERVICES.join("|"));
        return ExitCode::from(2);
    };
    if !SERVICES.contains(&service) {
        eprintln!(
            "rdsctl serve: unknown service {service:?}; one of {}",
            SERVICES.join(", ")
        );
        return ExitCode::from(2);
    }
    if let Err(why) = follow_supervisor() {
        eprintln!("rdsctl serve {service}: {why}");
        return ExitCode::FAILURE;
    }
    // argv[0] is the service's name, as if its own binary had been started.
    let argv: Vec<OsString> = std::iter::once(OsString::from(service))
        .chain(args[1..].iter().cloned())
        .collect();
    match service {
        "rds-sim" => rds_sim::cli::cli_main(argv),
        "rds-agent" => rds_agent::cli::cli_main(argv),
        "attachment-service" => attachment_service::cli::cli_main(argv),
        "event-service" => event_service::cli::cli_main(argv),
        "csi-frontend" => csi_frontend::cli::cli_main(argv),
        _ => ExitCode::from(2),
    }
}

/// Under `rdsctl up`, a child must not outlive its supervisor (even one
/// killed with SIGKILL): ask the kernel for SIGTERM when the parent goes,
/// and check the parent did not already go before that was set.
fn follow_supervisor() -> Result<(), String> {
    let Some(expected) = std::env::var_os(SUPERVISOR_PID_ENV) else {
        return Ok(());
    };
    let expected: i32 = expected
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{SUPERVISOR_PID_ENV} is not a pid"))?;
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
        .map_err(|e| format!("cannot set the parent-death signal: {e}"))?;
    if nix::unistd::getppid().as_raw() != expected {
        return Err("the supervising rdsctl is gone".into());
    }
    Ok(())
}
