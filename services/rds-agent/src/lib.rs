//! rds-agent: the one service that talks to the RDS (docs/ARCHITECTURE.md §4).
//!
//! Layers, bottom up:
//! - [`ssh`]: one SSH connection (host key pinned, key auth, exec with a deadline);
//! - [`pool`]: bounded connections and sessions, circuit breaker ([`breaker`]),
//!   reconnect with backoff (`rds_bus::Backoff`) — behind the [`pool::Transport`] trait;
//! - [`executor`]: typed RouterOS commands, one span each, errors read from the
//!   output text, safe retries;
//! - [`rds`] + [`layout`]: typed RDS state and what counts as our volume/snapshot;
//! - [`volumes`] and [`snapshots`] (the [`snapshots::SnapshotBackend`] seam);
//! - [`service`]: the `rds.agent.v1.Agent` gRPC service; errors → status in
//!   [`error::AgentError::to_status`] only;
//! - [`metrics`]: Prometheus `/metrics` ([`capacity_poll`] keeps the storage
//!   pool gauges fresh); [`config`]: flags/env.
//!
//! [`start`] runs everything in-process (tests, `rdsctl`); `main.rs` is thin
//! ([`cli`] runs the binary through `rds_bus::runner`).

pub mod allow_hosts;
pub mod breaker;
pub mod btrfs;
pub mod btrfs_snapshots;
pub mod btrfs_volumes;
pub mod capacity_poll;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod deadline;
pub mod error;
pub mod executor;
pub mod flights;
pub mod inspect;
pub mod layout;
pub mod metrics;
pub mod owner_tag;
pub mod pool;
pub mod rds;
pub mod service;
#[cfg(test)]
mod sim_rds;
pub mod snapshots;
pub mod spec;
pub mod ssh;
#[cfg(test)]
mod testing;
pub mod volumes;

use std::net::SocketAddr;
use std::sync::Arc;

use rds_bus::{Bus, Listener, Shutdown};
use rds_proto::agent::agent_server::AgentServer;

pub use config::{Args, Settings};
pub use error::AgentError;

use crate::capacity_poll::CapacityPoll;
use crate::executor::Executor;
use crate::flights::Flights;
use crate::layout::BasePaths;
use crate::metrics::Metrics;
use crate::pool::{Pool, PoolConfig, Transport};
use crate::rds::Rds;
use crate::service::AgentService;
use crate::snapshots::CopyFromBackend;
use crate::ssh::SshTarget;
use crate::volumes::{Defaults, Volumes};

/// The assembled service and the handles around it.
pub struct Parts {
    pub service: AgentService,
    pub pool: Arc<Pool>,
    pub metrics: Arc<Metrics>,
    /// Reads the storage pool for the gauges (same path as GetCapacity).
    pub capacity_poll: CapacityPoll,
}

/// Wires SSH target → pool → executor → volume/snapshot logic → service.
pub fn assemble(s: &Settings) -> Parts {
    let target = SshTarget {
        host: s.rds_host.clone(),
        port: s.rds_port,
        user: s.rds_user.clone(),
        key: s.key.clone(),
        host_key: s.host_key.clone(),
        connect_timeout: s.connect_timeout,
        // Re-read the Secret's files for each new connection (rotation).
        credentials: Some(Arc::new(credentials::Credentials::new(
            s.key_file.clone(),
            s.key.clone(),
            s.host_key_file.clone(),
            s.host_key.clone(),
        ))),
    };
    let metrics = Metrics::new(&target.address());
    let pool = Arc::new(Pool::new(
        target,
        PoolConfig {
            max_connections: s.max_connections,
            max_sessions: s.max_sessions,
            command_timeout: s.command_timeout,
            queue_timeout: s.queue_timeout,
            breaker_threshold: s.breaker_threshold,
            backoff_initial: s.backoff_initial,
            backoff_max: s.backoff_max,
            idle_timeout: s.idle_timeout,
        },
        metrics.clone(),
    ));
    let transport: Arc<dyn Transport> = pool.clone();
    let exec = Arc::new(Executor::new(
        transport.clone(),
        metrics.clone(),
        s.command_timeout,
    ));
    // Settings validated at least one base path (the default one).
    let bases = BasePaths::new(s.base_paths.clone())
        .unwrap_or_else(|_| BasePaths::single(s.base_path.clone()));
    let rds = Arc::new(Rds::new(exec.clone(), s.pool.clone(), bases));
    let flights = Arc::new(Flights::default());
    let backend = Arc::new(CopyFromBackend::new(
        rds.clone(),
        flights.clone(),
        s.copy_timeout,
        s.command_timeout,
    ));
    let volumes = Arc::new(Volumes::new(
        rds,
        backend,
        flights,
        Defaults {
            base_path: s.base_path.clone(),
            nvme_port: s.nvme_port,
            nqn_prefix: s.managed_nqn_prefix.clone(),
            wait_default: s.command_timeout,
            storage_fencing: s.storage_fencing,
        },
    ));
    let capacity_poll = CapacityPoll::new(
        volumes.clone(),
        transport,
        metrics.clone(),
        s.pool.clone(),
        s.command_timeout,
    );
    Parts {
        service: AgentService::new(volumes, exec, s.command_timeout),
        pool,
        metrics,
        capacity_poll,
    }
}

/// A running agent (bus server + metrics server).
pub struct RunningAgent {
    /// Bus endpoint for `rds_bus::connect`.
    pub endpoint: String,
    pub metrics_addr: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<Result<(), rds_bus::BusError>>,
    pool: Arc<Pool>,
}

/// Serves the bus on `listener` (and `/metrics` on its own address) in
/// background tasks until `shutdown` fires: the entry shape every service
/// shares (docs/decisions.md §14). The RDS connection is made lazily (a down
/// RDS does not stop the agent from answering Probe).
pub async fn start(
    s: Settings,
    listener: Listener,
    shutdown: Shutdown,
) -> Result<RunningAgent, AgentError> {
    let parts = assemble(&s);
    let endpoint = listener.endpoint();
    let metrics_addr = match s.metrics_address {
        Some(addr) => {
            let m = parts.metrics.clone();
            let sd = shutdown.clone();
            let (bound, _task) = rds_bus::metrics_server::spawn(
                addr,
                Arc::new(move || Ok(m.encode())),
                async move { sd.wait().await },
            )
            .await
            .map_err(|e| AgentError::Config(format!("cannot bind metrics on {addr}: {e}")))?;
            Some(bound)
        }
        None => None,
    };
    let pool = parts.pool.clone();
    let warm = pool.clone();
    let poll = parts.capacity_poll;
    let interval = s.pool_metrics_interval;
    let sd = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = warm.warm_up().await {
            tracing::warn!(error = %e, "RDS not reachable at start; will retry");
        }
        // After the start-up connection, so the first read reuses it and
        // the gauges exist moments after start.
        if let Some(every) = interval {
            poll.run(every, sd).await;
        }
    });
    let sd = shutdown.clone();
    let server = tokio::spawn(async move {
        Bus::new()
            .add_service(AgentServer::new(parts.service))
            .serve(listener, async move { sd.wait().await })
            .await
    });
    tracing::info!(endpoint = %endpoint, config = %s.summary(), "rds-agent serving");
    Ok(RunningAgent {
        endpoint,
        metrics_addr,
        metrics: parts.metrics,
        shutdown,
        server,
        pool,
    })
}

impl RunningAgent {
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Resolves when the server stopped (after [`Shutdown::trigger`]).
    pub async fn wait(self) -> Result<(), AgentError> {
        let res = self.server.await;
        self.pool.close().await;
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AgentError::Internal(e.to_string())),
            Err(e) => Err(AgentError::Internal(format!("server task: {e}"))),
        }
    }

    /// Stops serving and waits for in-flight calls to drain.
    pub async fn stop(self) -> Result<(), AgentError> {
        self.shutdown.trigger();
        self.wait().await
    }
}

impl rds_bus::Serving for RunningAgent {
    type Error = AgentError;
    async fn wait(self) -> Result<(), AgentError> {
        RunningAgent::wait(self).await
    }
}
