//! csi-frontend binary: everything runs in the library ([`csi_frontend::cli::cli_main`]),
//! so `rdsctl serve csi-frontend` runs the same code.

fn main() -> std::process::ExitCode {
    csi_frontend::cli::cli_main(std::env::args_os().collect())
}
