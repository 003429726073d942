//! Keeps the storage pool gauges (`rds_csi_rds_pool_size_bytes`,
//! `rds_csi_rds_pool_free_bytes`) fresh for the dashboard and the
//! "pool almost full" alert.
//!
//! A scrape must never reach the RDS (it would queue behind real work and
//! time out, as the Go driver's did), so the numbers are read here, in the
//! background, on a fixed interval: the same path as GetCapacity
//! ([`Volumes::capacity`]), hence the same SSH pool, breaker and per-command
//! deadline, plus a deadline on the whole read. While the breaker is open the
//! read is skipped: the pool's own recovery probe is what tests the RDS then.
//!
//! On a failed read the gauges keep their last value; the breaker and the
//! error metrics say that the RDS is unreachable.

use std::sync::Arc;
use std::time::Duration;

use rds_bus::Shutdown;
use tokio::time::{Instant, MissedTickBehavior};

use crate::error::AgentError;
use crate::metrics::Metrics;
use crate::pool::Transport;
use crate::volumes::Volumes;
use rds_routeros::PoolName;

/// What one refresh did.
#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Gauges set to these numbers.
    Read { size: u64, free: u64 },
    /// Breaker open: nothing sent.
    Skipped,
}

pub struct CapacityPoll {
    volumes: Arc<Volumes>,
    transport: Arc<dyn Transport>,
    metrics: Arc<Metrics>,
    /// The configured pool (what `capacity("")` reads), the gauges' label.
    pool: PoolName,
    /// Bound of one whole refresh (the agent's command timeout).
    deadline: Duration,
}

impl CapacityPoll {
    pub fn new(
        volumes: Arc<Volumes>,
        transport: Arc<dyn Transport>,
        metrics: Arc<Metrics>,
        pool: PoolName,
        deadline: Duration,
    ) -> CapacityPoll {
        CapacityPoll {
            volumes,
            transport,
            metrics,
            pool,
            deadline,
        }
    }

    /// Reads the configured pool once and sets the gauges.
    pub async fn refresh(&self) -> Result<Refresh, AgentError> {
        if self.transport.is_down() {
            return Ok(Refresh::Skipped);
        }
        let until = Instant::now() + self.deadline;
        let cap = crate::deadline::scoped(Some(until), self.volumes.capacity("")).await?;
        self.metrics
            .set_pool_capacity(self.pool.as_str(), cap.total_bytes, cap.free_bytes);
        Ok(Refresh::Read {
            size: cap.total_bytes,
            free: cap.free_bytes,
        })
    }

    /// Refreshes now, then every `interval`, until `shutdown`. The first
    /// read right away fills the gauges soon after start-up (the caller runs
    /// this after the start-up connection attempt).
    pub async fn run(self, interval: Duration, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(interval);
        // A slow read delays the next one instead of bunching them up.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tick.tick() => {}
            }
            let res = tokio::select! {
                _ = shutdown.wait() => return,
                r = self.refresh() => r,
            };
            match res {
                Ok(Refresh::Read { size, free }) => {
                    tracing::debug!(size, free, "storage pool capacity read")
                }
                Ok(Refresh::Skipped) => {
                    tracing::debug!("storage pool read skipped: circuit open")
                }
                Err(e) => tracing::warn!(
                    reason = %e.reason(),
                    error = %e,
                    "cannot read the storage pool's capacity; gauges keep their last value"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures::future::BoxFuture;
    use rds_routeros::{Command, DiskPath, Port};

    use super::*;
    use crate::executor::Executor;
    use crate::flights::Flights;
    use crate::layout::BasePaths;
    use crate::rds::Rds;
    use crate::sim_rds::SimRds;
    use crate::snapshots::CopyFromBackend;
    use crate::ssh::RawOutput;
    use crate::volumes::Defaults;

    /// rds-sim (over the real SSH pool) behind a switchable "breaker open".
    struct Switch {
        rds: Arc<dyn Transport>,
        down: AtomicBool,
    }

    impl Transport for Switch {
        fn exec<'a>(
            &'a self,
            cmd: &'a Command,
            text: &'a str,
            budget: Duration,
        ) -> BoxFuture<'a, Result<RawOutput, AgentError>> {
            self.rds.exec(cmd, text, budget)
        }
        fn describe(&self) -> String {
            "switch".into()
        }
        fn is_down(&self) -> bool {
            self.down.load(Ordering::SeqCst)
        }
    }

    async fn poll() -> (Arc<SimRds>, Arc<Switch>, Arc<Metrics>, CapacityPoll) {
        let fake = SimRds::start().await;
        let switch = Arc::new(Switch {
            rds: fake.transport(),
            down: AtomicBool::new(false),
        });
        let metrics = Metrics::new("fake:22");
        let t: Arc<dyn Transport> = switch.clone();
        let exec = Arc::new(Executor::new(
            t.clone(),
            metrics.clone(),
            Duration::from_secs(5),
        ));
        let base = DiskPath::new("/storage-pool/metal-csi").unwrap();
        let bases = BasePaths::new(vec![base.clone()]).unwrap();
        let rds = Arc::new(Rds::new(exec, PoolName::default(), bases));
        let flights = Arc::new(Flights::default());
        let backend = Arc::new(CopyFromBackend::new(
            rds.clone(),
            flights.clone(),
            Duration::from_secs(60),
            Duration::from_secs(5),
        ));
        let volumes = Arc::new(Volumes::new(
            rds,
            backend,
            flights,
            Defaults {
                base_path: base,
                nvme_port: Port::NVME_TCP_DEFAULT,
                nqn_prefix: "nqn.2000-02.com.mikrotik:".into(),
                wait_default: Duration::from_secs(5),
                storage_fencing: false,
            },
        ));
        let p = CapacityPoll::new(
            volumes,
            t,
            metrics.clone(),
            PoolName::default(),
            Duration::from_secs(5),
        );
        (fake, switch, metrics, p)
    }

    #[tokio::test]
    async fn reads_the_pool_and_sends_nothing_while_the_breaker_is_open() {
        let (fake, switch, metrics, p) = poll().await;
        switch.down.store(true, Ordering::SeqCst);
        assert_eq!(p.refresh().await.unwrap(), Refresh::Skipped);
        assert!(fake.log().is_empty(), "sent {:?}", fake.log());
        assert!(!metrics.encode().contains("rds_csi_rds_pool_size_bytes{"));

        switch.down.store(false, Ordering::SeqCst);
        let size = fake.pool_size;
        assert_eq!(
            p.refresh().await.unwrap(),
            Refresh::Read { size, free: size }
        );
        assert_eq!(fake.log().len(), 1, "one read: {:?}", fake.log());
        let text = metrics.encode();
        let want = format!("rds_csi_rds_pool_size_bytes{{pool=\"storage-pool\"}} {size}");
        assert!(text.contains(&want), "{text}");
    }
}
