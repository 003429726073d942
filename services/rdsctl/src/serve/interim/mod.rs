//! INTERIM: rds-sim's `main.rs` logic as a `cli_main(args)` function, used
//! until rds-sim exposes its own `cli_main` (its main.rs/cli.rs were being
//! edited when the other services got theirs; then this module is deleted).
//! The file is rds-sim's main.rs with only `#[tokio::main]` → an explicit
//! runtime and `parse()` → `parse_from(args)` changed.

pub mod rds_sim;

/// What `#[tokio::main]` builds.
pub fn runtime() -> Result<tokio::runtime::Runtime, std::process::ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        })
}
