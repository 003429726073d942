//! `rdsctl completion bash|zsh|fish|elvish|powershell`: the script on stdout,
//! generated from the same clap definition the parser uses, so it never lags.
//!
//! ```sh
//! rdsctl completion bash > /etc/bash_completion.d/rdsctl
//! rdsctl completion zsh  > "${fpath[1]}/_rdsctl"
//! rdsctl completion fish > ~/.config/fish/completions/rdsctl.fish
//! ```

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::Result;

/// The completion script for `shell`.
pub fn script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "rdsctl", &mut out);
    out
}

pub fn run(shell: clap_complete::Shell) -> Result<ExitCode> {
    use std::io::Write;
    // A closed stdout (`| head`) is not an error worth reporting.
    let _ = std::io::stdout().write_all(&script(shell));
    Ok(ExitCode::SUCCESS)
}
