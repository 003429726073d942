//! A local stack (docs/local-mode.md §1): the five services as supervised child
//! processes of one rdsctl, wired over unix sockets in DIR/run and real SSH
//! to rds-sim. Used by `rdsctl up` and `rdsctl demo` alike.

pub mod child;
pub mod health;
pub mod keys;
pub mod layout;
pub mod spec;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rds_bus::Shutdown;
use tokio::sync::mpsc;

use crate::error::{CtlError, Result};
use child::{ChildEnv, LogTarget, Supervised, say};
use layout::{Endpoints, Layout};

#[derive(Clone, Debug)]
pub struct StackOptions {
    pub state_dir: PathBuf,
    pub csi_endpoint: Option<String>,
    pub node_id: Option<String>,
    pub otlp_endpoint: Option<String>,
    /// Children's output to DIR/logs/<service>.log instead of stderr.
    pub logs_to_files: bool,
    pub ready_timeout: Duration,
}

pub struct Stack {
    pub layout: Layout,
    pub endpoints: Endpoints,
    /// Time from start to every health check passing.
    pub startup: Duration,
    children: Vec<Supervised>,
    fatal: mpsc::UnboundedReceiver<String>,
    logs: LogTarget,
}

/// The host name, the default node id (docs/local-mode.md §1).
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

fn free_port() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| CtlError::Stack(format!("no free port: {e}")))?;
    l.local_addr()
        .map_err(|e| CtlError::Stack(format!("no free port: {e}")))
}

/// A loopback `/metrics` address for each service that serves metrics
/// (listed in endpoints.json; `rdsctl demo --metrics-dir` saves them).
fn metrics_ports() -> Result<std::collections::BTreeMap<String, String>> {
    let no_port = |e: std::io::Error| CtlError::Stack(format!("no free port: {e}"));
    // All four held open at once, so no two services get the same port.
    let held = [
        "event-service",
        "attachment-service",
        "rds-agent",
        "csi-frontend",
    ]
    .into_iter()
    .map(|s| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(no_port)?;
        Ok((s, l))
    })
    .collect::<Result<Vec<_>>>()?;
    held.iter()
        .map(|(s, l)| {
            Ok((
                (*s).to_owned(),
                l.local_addr().map_err(no_port)?.to_string(),
            ))
        })
        .collect()
}

/// One `up` per DIR: a second one would fight over sockets and state.
fn claim(layout: &Layout) -> Result<()> {
    let pid_file = layout.pid_file("rdsctl");
    if let Ok(text) = std::fs::read_to_string(&pid_file)
        && let Ok(pid) = text.trim().parse::<i32>()
        && pid != i32::try_from(std::process::id()).unwrap_or(0)
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("rdsctl"))
    {
        return Err(CtlError::Usage(format!(
            "another rdsctl (pid {pid}) runs a stack in {}; stop it first",
            layout.dir.display()
        )));
    }
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))
        .map_err(|e| CtlError::io(&pid_file, e))
}

/// What `up --check-config` prints: the validated settings, no secrets
/// (keys are named by path only).
#[derive(Debug, serde::Serialize)]
pub struct Effective {
    pub state_dir: PathBuf,
    pub csi_endpoint: String,
    pub node_id: String,
    pub otlp_endpoint: Option<String>,
    pub ready_timeout_ms: u64,
    pub bus: [String; 3],
    pub sim_ssh: &'static str,
    pub client_key: PathBuf,
    pub services: [&'static str; 5],
}

impl StackOptions {
    /// Validates everything that can be checked without touching DIR.
    pub fn effective(&self) -> Result<Effective> {
        let layout = Layout::new(&self.state_dir)?;
        layout.check_socket_paths()?;
        let node_id = match &self.node_id {
            Some(n) => n.clone(),
            None => {
                host_name().ok_or_else(|| CtlError::Usage("no host name; pass --node-id".into()))?
            }
        };
        rds_bus::NodeId::parse(&node_id).map_err(|e| CtlError::Usage(format!("--node-id: {e}")))?;
        let csi_endpoint = match &self.csi_endpoint {
            Some(e) => crate::csi::normalize_endpoint(e)?,
            None => layout.default_csi_endpoint(),
        };
        Ok(Effective {
            state_dir: layout.dir.clone(),
            csi_endpoint,
            node_id,
            otlp_endpoint: self.otlp_endpoint.clone().filter(|e| !e.is_empty()),
            ready_timeout_ms: u64::try_from(self.ready_timeout.as_millis()).unwrap_or(u64::MAX),
            bus: [
                layout.socket("agent"),
                layout.socket("attachment"),
                layout.socket("events"),
            ],
            sim_ssh: "127.0.0.1:<a free port at start>",
            client_key: layout.client_key(),
            services: spec::SERVICES,
        })
    }
}

/// Service logs go to files under DIR/logs, or to this process's stderr.
fn log_target(opts: &StackOptions, layout: &Layout) -> Result<LogTarget> {
    Ok(if opts.logs_to_files {
        let d = layout.logs_dir();
        std::fs::create_dir_all(&d).map_err(|e| CtlError::io(&d, e))?;
        LogTarget::Dir(d)
    } else {
        LogTarget::Stderr
    })
}

impl Stack {
    /// Prepares DIR, starts every service and returns once all answer their
    /// health checks. On failure (or `shutdown`) whatever started is stopped.
    pub async fn start(opts: &StackOptions, shutdown: &Shutdown) -> Result<Stack> {
        let started = Instant::now();
        let eff = opts.effective()?;
        let layout = Layout::new(&opts.state_dir)?;
        layout.create()?;
        claim(&layout)?;
        let logs = log_target(opts, &layout)?;
        let (node_id, csi) = (eff.node_id, eff.csi_endpoint);
        let keys = keys::ensure(&layout)?;
        let endpoints = spec::endpoints(
            &layout,
            csi,
            node_id,
            free_port()?,
            free_port()?,
            keys.host_key_fingerprint,
            metrics_ports()?,
        );
        endpoints.write(&layout)?;
        let exe = std::env::current_exe()
            .map_err(|e| CtlError::Stack(format!("cannot find my own binary: {e}")))?;
        let env = Arc::new(ChildEnv {
            exe,
            otlp_endpoint: opts.otlp_endpoint.clone().filter(|e| !e.is_empty()),
            no_color: opts.logs_to_files || !std::io::IsTerminal::is_terminal(&std::io::stderr()),
            logs: logs.clone(),
            run_dir: layout.run_dir(),
        });
        let (fatal_tx, fatal) = mpsc::unbounded_channel();
        say(
            &logs,
            &format!(
                "starting the stack in {} (node {})",
                layout.dir.display(),
                endpoints.node_id
            ),
        );
        let children = spec::services(&layout, &endpoints)
            .into_iter()
            .map(|s| Supervised::start(s, env.clone(), fatal_tx.clone()))
            .collect();
        let mut stack = Stack {
            layout,
            endpoints,
            startup: Duration::ZERO,
            children,
            fatal,
            logs,
        };
        let ready = stack.wait_ready(opts, shutdown).await;
        match ready {
            Ok(()) => {
                stack.startup = started.elapsed();
                say(
                    &stack.logs,
                    &format!("every service is ready after {:?}", stack.startup),
                );
                Ok(stack)
            }
            Err(e) => {
                stack.stop().await;
                Err(e)
            }
        }
    }

    /// Until every service answers its health check; a child that refuses
    /// its configuration, the timeout or `shutdown` end the wait with an error.
    async fn wait_ready(&mut self, opts: &StackOptions, shutdown: &Shutdown) -> Result<()> {
        tokio::select! {
            r = health::wait_all(&spec::SERVICES, &self.endpoints, opts.ready_timeout) => r.map_err(|failed| {
                let list: Vec<String> = failed.iter().map(|(s, why)| format!("{s}: {why}")).collect();
                CtlError::Stack(format!(
                    "the stack was not ready within {:?}: {}",
                    opts.ready_timeout,
                    list.join("; ")
                ))
            }),
            Some(why) = self.fatal.recv() => Err(CtlError::Stack(why)),
            _ = shutdown.wait() => Err(CtlError::Stack("interrupted while starting".into())),
        }
    }

    /// (service, pid) of every child; pid 0 while it restarts.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.children.iter().map(|c| (c.name, c.pid())).collect()
    }

    /// Resolves when a child refused its configuration (the stack cannot run).
    pub async fn fatal(&mut self) -> String {
        match self.fatal.recv().await {
            Some(why) => why,
            None => std::future::pending().await,
        }
    }

    /// Stops children in reverse start order (csi-frontend first, rds-sim
    /// last), then removes the CSI socket and the run files.
    pub async fn stop(self) {
        say(&self.logs, "stopping the stack");
        let mut children = self.children;
        while let Some(c) = children.pop() {
            c.stop().await;
        }
        if let Some(path) = self.endpoints.csi.strip_prefix("unix://") {
            let _ = std::fs::remove_file(path);
        }
        for name in ["agent", "attachment", "events"] {
            let _ = std::fs::remove_file(self.layout.run_dir().join(format!("{name}.sock")));
        }
        let _ = std::fs::remove_file(self.layout.endpoints_file());
        let _ = std::fs::remove_file(self.layout.pid_file("rdsctl"));
        say(&self.logs, "stack stopped");
    }
}
