//! `rdsctl up` (docs/local-mode.md §1): start the stack, print exactly one
//! `READY csi=<endpoint> node=<node-id>` line on stdout once every service
//! is healthy, keep it running (children restarted by their supervisors),
//! stop everything cleanly on SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use rds_bus::Shutdown;

use crate::cli::UpArgs;
use crate::error::Result;
use crate::stack::{Stack, StackOptions};

pub async fn run(args: UpArgs) -> Result<ExitCode> {
    let opts = StackOptions {
        state_dir: args.state_dir,
        csi_endpoint: args.csi_endpoint,
        node_id: args.node_id,
        otlp_endpoint: args.otlp_endpoint,
        logs_to_files: false,
        ready_timeout: args.ready_timeout,
    };
    if args.check_config {
        return Ok(rds_bus::config::report_check_config(
            "rdsctl up",
            opts.effective().map_err(|e| e.to_string()),
        ));
    }
    // Signals are caught before any child starts, so a Ctrl-C during start-up
    // still stops whatever was started.
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let mut stack = Stack::start(&opts, &shutdown).await?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "READY csi={} node={}",
            stack.endpoints.csi, stack.endpoints.node_id
        );
        let _ = out.flush();
    }
    eprintln!(
        "rdsctl: stack ready in {:?}; state in {}; stop with Ctrl-C (SIGINT) or SIGTERM",
        stack.startup,
        stack.layout.dir.display()
    );
    let code = tokio::select! {
        _ = shutdown.wait() => ExitCode::SUCCESS,
        why = stack.fatal() => {
            eprintln!("rdsctl: {why}; stopping");
            ExitCode::FAILURE
        }
    };
    stack.stop().await;
    Ok(code)
}
