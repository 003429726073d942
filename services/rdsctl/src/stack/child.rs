//! One supervised child: `rdsctl serve <service> <args…>` with its own
//! OTEL_SERVICE_NAME, its output forwarded line by line with a
//! `<service>: ` prefix, its pid in DIR/run/<service>.pid, restarted with
//! backoff when it dies, and stopped with SIGTERM (SIGKILL after a grace
//! period) when the stack stops.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rds_bus::Shutdown;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::stack::spec::ServiceSpec;

/// Environment variable naming the supervisor's pid; `rdsctl serve` sets a
/// parent-death signal when it is present (see [`crate::serve`]).
pub const SUPERVISOR_PID_ENV: &str = "RDSCTL_SUPERVISOR_PID";

const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A child that ran this long before dying starts the backoff afresh.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// SIGTERM → SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Where children's output goes.
#[derive(Clone, Debug)]
pub enum LogTarget {
    /// rdsctl's stderr, each line prefixed with the service name.
    Stderr,
    /// DIR/logs/<service>.log (the demo keeps its terminal for progress).
    Dir(PathBuf),
}

/// What every child shares.
#[derive(Clone, Debug)]
pub struct ChildEnv {
    pub exe: PathBuf,
    pub otlp_endpoint: Option<String>,
    pub logs: LogTarget,
    pub run_dir: PathBuf,
    pub no_color: bool,
}

/// A running supervision task.
pub struct Supervised {
    pub name: &'static str,
    pid: Arc<AtomicU32>,
    stop: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Supervised {
    /// Starts supervising; `fatal` receives a message if the child refuses
    /// its configuration (exit code 2: restarting cannot help).
    pub fn start(
        spec: ServiceSpec,
        env: Arc<ChildEnv>,
        fatal: mpsc::UnboundedSender<String>,
    ) -> Supervised {
        let pid = Arc::new(AtomicU32::new(0));
        let stop = Shutdown::new();
        let task = tokio::spawn(supervise(
            spec.clone(),
            env,
            pid.clone(),
            stop.clone(),
            fatal,
        ));
        Supervised {
            name: spec.name,
            pid,
            stop,
            task,
        }
    }

    /// The current pid (0 while restarting).
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// Stops the child and waits until it is gone.
    pub async fn stop(self) {
        self.stop.trigger();
        let _ = self.task.await;
    }
}

fn spawn(spec: &ServiceSpec, env: &ChildEnv) -> std::io::Result<Child> {
    let mut cmd = Command::new(&env.exe);
    cmd.arg("serve")
        .arg(spec.name)
        .args(&spec.args)
        // Never inherit a service name: each child is itself in traces and logs.
        .env_remove("OTEL_SERVICE_NAME")
        .env("OTEL_SERVICE_NAME", spec.name)
        .env(SUPERVISOR_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a terminal's Ctrl-C reaches rdsctl only, which
        // then stops the children in order.
        .process_group(0)
        .kill_on_drop(true);
    // Colour escapes only make sense when the lines end on a terminal.
    if env.no_color {
        cmd.env("NO_COLOR", "1");
    }
    match &env.otlp_endpoint {
        Some(e) => cmd.env(rds_bus::telemetry::OTLP_ENDPOINT_ENV, e),
        None => cmd.env_remove(rds_bus::telemetry::OTLP_ENDPOINT_ENV),
    };
    let mut child = cmd.spawn()?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(spec.name, out, env.logs.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(spec.name, err, env.logs.clone()));
    }
    Ok(child)
}

/// Copies a child's output line by line (so lines of different children never interleave).
async fn forward(name: &'static str, stream: impl AsyncRead + Unpin, target: LogTarget) {
    let mut lines = BufReader::new(stream).lines();
    let mut file = match &target {
        LogTarget::Dir(dir) => {
            let p = dir.join(format!("{name}.log"));
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .ok()
        }
        LogTarget::Stderr => None,
    };
    while let Ok(Some(line)) = lines.next_line().await {
        use std::io::Write;
        match file.as_mut() {
            Some(f) => {
                let _ = writeln!(f, "{line}");
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{name}: {line}");
            }
        }
    }
}

/// Logs of the supervisor itself go where the children's go.
pub fn say(target: &LogTarget, msg: &str) {
    use std::io::Write;
    match target {
        LogTarget::Stderr => {
            let _ = writeln!(std::io::stderr().lock(), "rdsctl: {msg}");
        }
        LogTarget::Dir(dir) => {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("rdsctl.log"))
            {
                let _ = writeln!(f, "{} {msg}", jiff::Timestamp::now());
            }
        }
    }
}

async fn supervise(
    spec: ServiceSpec,
    env: Arc<ChildEnv>,
    pid: Arc<AtomicU32>,
    stop: Shutdown,
    fatal: mpsc::UnboundedSender<String>,
) {
    let name = spec.name;
    let pid_file = env.run_dir.join(format!("{name}.pid"));
    let mut backoff = rds_bus::Backoff::new(BACKOFF_FIRST, BACKOFF_MAX);
    let mut restarts = 0u32;
    loop {
        let started = Instant::now();
        let mut child = match spawn(&spec, &env) {
            Ok(c) => c,
            Err(e) => {
                let delay = backoff.next_delay();
                say(
                    &env.logs,
                    &format!("cannot start {name}: {e}; retrying in {delay:?}"),
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait() => return,
                }
                continue;
            }
        };
        let id = child.id().unwrap_or(0);
        pid.store(id, Ordering::SeqCst);
        let _ = std::fs::write(&pid_file, format!("{id}\n"));
        if restarts > 0 {
            say(
                &env.logs,
                &format!("{name} restarted (pid {id}, restart #{restarts})"),
            );
        }
        tokio::select! {
            status = child.wait() => {
                pid.store(0, Ordering::SeqCst);
                if stop.is_triggered() {
                    let _ = std::fs::remove_file(&pid_file);
                    return;
                }
                let how = match &status {
                    Ok(s) => s.to_string(),
                    Err(e) => format!("wait failed: {e}"),
                };
                if status.as_ref().is_ok_and(|s| s.code() == Some(2)) {
                    let _ = fatal.send(format!("{name} refused its configuration ({how}); see its log above"));
                    let _ = std::fs::remove_file(&pid_file);
                    return;
                }
                if started.elapsed() >= STABLE_AFTER {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                say(&env.logs, &format!("{name} (pid {id}) died ({how}); restarting in {delay:?}"));
                restarts += 1;
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait() => {
                        let _ = std::fs::remove_file(&pid_file);
                        return;
                    }
                }
            }
            _ = stop.wait() => {
                terminate(name, &mut child, &env.logs).await;
                pid.store(0, Ordering::SeqCst);
                let _ = std::fs::remove_file(&pid_file);
                return;
            }
        }
    }
}

/// SIGTERM, wait for a clean exit, SIGKILL after the grace period.
async fn terminate(name: &str, child: &mut Child, logs: &LogTarget) {
    let Some(id) = child.id() else { return };
    let Ok(raw) = i32::try_from(id) else { return };
    let _ = kill(Pid::from_raw(raw), Signal::SIGTERM);
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            say(
                logs,
                &format!("{name} did not stop within {STOP_GRACE:?}; killing it"),
            );
            let _ = child.kill().await;
        }
    }
}
