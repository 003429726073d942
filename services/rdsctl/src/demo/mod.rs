//! `rdsctl demo` (docs/local-mode.md §5): start a stack in a temporary directory as
//! child processes (the same supervisor as `up`) and walk one volume through
//! create, attach, stage, publish, write + read, snapshot, expand,
//! unpublish, unstage, detach, restore (data checked) and delete — each step
//! printed with its duration and the trace id of its CSI call. Exit 0 only
//! if every check held. Without root the node steps are skipped (and said
//! so); the data is then written into the sim's backing file instead, so the
//! restore is still checked byte for byte.

mod data;
mod report;
mod walk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rds_bus::Shutdown;

use crate::cli::DemoArgs;
use crate::csi::Csi;
use crate::error::{CtlError, Result};
use crate::stack::{Stack, StackOptions};
use crate::trace::ClientTracer;
use report::Report;

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let size = crate::units::parse_size(&args.size).map_err(CtlError::Usage)?;
    if size < 16 << 20 {
        return Err(CtlError::Usage(
            "--size must be at least 16Mi (room for a filesystem)".into(),
        ));
    }
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let (dir, tmp) = state_dir(&args)?;
    let root = nix::unistd::geteuid().is_root();
    let mut report = Report::default();
    intro(&report, &dir, root);
    let tracer = Arc::new(ClientTracer::from_env());
    let started = Instant::now();

    let Some(stack) = start_stack(&args, &dir, &shutdown, &mut report, started).await else {
        keep_dir(tmp, &dir, &mut report);
        return Ok(ExitCode::FAILURE);
    };
    let csi = Csi::connect(
        &stack.endpoints.csi,
        Duration::from_secs(120),
        tracer.clone(),
    )?;
    let mut walk = walk::Walk::new(csi, &stack, root, size);
    let outcome = tokio::select! {
        r = walk.run(&mut report) => r,
        _ = shutdown.wait() => Err(CtlError::Check("interrupted".into())),
    };
    let cleaned = if outcome.is_err() {
        walk.cleanup(&mut report).await
    } else {
        true
    };
    drop(walk);
    if let Some(out) = &args.metrics_dir {
        report.begin(&format!(
            "save every service's /metrics in {}",
            out.display()
        ));
        let t = Instant::now();
        match save_metrics(&stack.endpoints.metrics, out).await {
            Ok(n) => report.ok(t.elapsed(), None, Some(&format!("{n} services"))),
            Err(e) => report.fail(t.elapsed(), None, &e.to_string()),
        }
    }
    stop_stack(stack, &mut report).await;
    if let Ok(t) = Arc::try_unwrap(tracer) {
        t.shutdown().await;
    }

    summary(&report, &outcome, started);
    if args.keep || outcome.is_err() || !cleaned {
        keep_dir(tmp, &dir, &mut report);
    }
    Ok(if outcome.is_ok() && report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--state-dir`, or a fresh temporary directory (removed on drop unless kept).
fn state_dir(args: &DemoArgs) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    Ok(match &args.state_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("rdsctl-demo-")
                .tempdir()
                .map_err(|e| CtlError::io(std::env::temp_dir(), e))?;
            (t.path().to_path_buf(), Some(t))
        }
    })
}

/// What the report says before the first step: where, as whom, which traces.
fn intro(report: &Report, dir: &std::path::Path, root: bool) {
    report.note(&format!(
        "rdsctl demo: stack in {} (service logs in {}/logs)",
        dir.display(),
        dir.display()
    ));
    report.note(if root {
        "running as root: node steps stage and publish on real loop devices"
    } else {
        "not running as root: node steps are skipped (loop devices need root); run as root for the full walk"
    });
    report.note("trace ids are those of the CSI calls (csi-frontend → bus services); with OTEL_EXPORTER_OTLP_ENDPOINT set they are in Jaeger\n");
}

/// Starts the stack as a reported step; `None` (reported) if it did not come up.
async fn start_stack(
    args: &DemoArgs,
    dir: &std::path::Path,
    shutdown: &Shutdown,
    report: &mut Report,
    started: Instant,
) -> Option<Stack> {
    report.begin("start the stack (5 services as child processes)");
    let opts = StackOptions {
        state_dir: dir.to_path_buf(),
        csi_endpoint: None,
        node_id: args.node_id.clone(),
        otlp_endpoint: args.otlp_endpoint.clone(),
        logs_to_files: true,
        ready_timeout: Duration::from_secs(90),
    };
    match Stack::start(&opts, shutdown).await {
        Ok(s) => {
            report.ok(s.startup, None, Some("all health checks pass"));
            Some(s)
        }
        Err(e) => {
            report.fail(started.elapsed(), None, &e.to_string());
            None
        }
    }
}

/// Stops the stack as a reported step: the CSI socket must be gone after.
async fn stop_stack(stack: Stack, report: &mut Report) {
    report.begin("stop the stack (children first, socket removed)");
    let t = Instant::now();
    let csi_socket = stack
        .endpoints
        .csi
        .strip_prefix("unix://")
        .map(PathBuf::from);
    stack.stop().await;
    match csi_socket.filter(|p| p.exists()) {
        Some(p) => report.fail(t.elapsed(), None, &format!("{} still exists", p.display())),
        None => report.ok(t.elapsed(), None, None),
    }
}

/// The closing lines: counts, total time, what was skipped and why, the failure.
fn summary(report: &Report, outcome: &Result<()>, started: Instant) {
    report.note(&format!(
        "\n{} steps passed, {} failed, {} skipped; total {:.2} s",
        report.passed,
        report.failed,
        report.skipped.len(),
        started.elapsed().as_secs_f64()
    ));
    for (title, why) in &report.skipped {
        report.note(&format!("  skipped: {title}: {why}"));
    }
    if let Err(e) = outcome {
        report.note(&format!("demo FAILED: {e}"));
    }
}

/// GETs `/metrics` of every service (service → loopback host:port) into
/// `dir/<service>.prom`; returns how many were saved.
async fn save_metrics(
    endpoints: &std::collections::BTreeMap<String, String>,
    dir: &std::path::Path,
) -> Result<usize> {
    std::fs::create_dir_all(dir).map_err(|e| CtlError::io(dir, e))?;
    for (service, addr) in endpoints {
        let addr: std::net::SocketAddr = addr
            .parse()
            .map_err(|e| CtlError::Stack(format!("{service} metrics address {addr:?}: {e}")))?;
        let reply =
            crate::http::request(addr, "GET", "/metrics", None, Duration::from_secs(10)).await?;
        if reply.status != 200 {
            return Err(CtlError::Stack(format!(
                "{service} /metrics answered HTTP {}",
                reply.status
            )));
        }
        let path = dir.join(format!("{service}.prom"));
        std::fs::write(&path, reply.body).map_err(|e| CtlError::io(&path, e))?;
    }
    Ok(endpoints.len())
}

/// Leaves the directory for inspection (and never deletes under a mount
/// that a failed cleanup may have left behind).
fn keep_dir(tmp: Option<tempfile::TempDir>, dir: &std::path::Path, report: &mut Report) {
    if let Some(t) = tmp {
        let _ = t.keep();
    }
    report.note(&format!(
        "state kept in {} (logs in {}/logs)",
        dir.display(),
        dir.display()
    ));
}
