//! The shared `--check-config` convention (docs/local-mode.md §6): every binary parses
//! and validates its flags, env and files, prints the effective config as JSON
//! on stdout (secrets never included: config structs skip them or print only
//! their paths) and exits 0 — or prints the reason on stderr and exits 2 —
//! without serving.

use std::process::ExitCode;

use serde::Serialize;

/// Reports a validated config for `--check-config`.
pub fn report_check_config<C: Serialize>(service: &str, result: Result<C, String>) -> ExitCode {
    match result {
        Ok(cfg) => {
            let body = serde_json::to_string_pretty(&cfg)
                .unwrap_or_else(|e| format!("{{\"error\": \"cannot render config: {e}\"}}"));
            println!("{body}");
            eprintln!("{service}: configuration OK");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("{service}: invalid configuration: {why}");
            ExitCode::from(2)
        }
    }
}

/// Reads a secret file (e.g. an SSH key), refusing empty files. The error text
/// names the path, never the content.
pub fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.trim().is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(text)
}

/// Runs a service's async main on a fresh multi-thread runtime (what
/// `#[tokio::main]` builds), so a service binary and `rdsctl serve <service>`
/// share one entry point without repeating the setup.
pub fn run_main<F>(service: &str, main: F) -> ExitCode
where
    F: std::future::Future<Output = ExitCode>,
{
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(main),
        Err(e) => {
            eprintln!("{service}: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
