//! rdsctl binary: everything lives in the library (`rdsctl::cli_main`).

fn main() -> std::process::ExitCode {
    rdsctl::cli_main(std::env::args_os().collect())
}
