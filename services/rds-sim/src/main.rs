//! `rds-sim`: serve a simulated RDS over SSH. Logic lives in the library
//! (`rds_sim::cli`), shared with `rdsctl serve rds-sim`.

fn main() -> std::process::ExitCode {
    rds_sim::cli::cli_main(std::env::args_os().collect())
}
