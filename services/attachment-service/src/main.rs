//! attachment-service binary: everything runs in the library ([`attachment_service::cli::cli_main`]),
//! so `rdsctl serve attachment-service` runs the same code.

fn main() -> std::process::ExitCode {
    attachment_service::cli::cli_main(std::env::args_os().collect())
}
