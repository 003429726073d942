//! event-service binary: everything runs in the library ([`event_service::cli::cli_main`]),
//! so `rdsctl serve event-service` runs the same code.

fn main() -> std::process::ExitCode {
    event_service::cli::cli_main(std::env::args_os().collect())
}
