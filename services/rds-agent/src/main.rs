//! rds-agent binary: everything runs in the library ([`rds_agent::cli::cli_main`]),
//! so `rdsctl serve rds-agent` runs the same code.

fn main() -> std::process::ExitCode {
    rds_agent::cli::cli_main(std::env::args_os().collect())
}
