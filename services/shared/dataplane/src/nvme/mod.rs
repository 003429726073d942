//! NVMe/TCP data plane: nvme-cli through a [`CommandRunner`], devices found
//! through sysfs by NQN every time, and only managed NQNs ever touched
//! (docs/safety.md §2.3: nodes may boot from the same RDS under other NQNs).

pub mod connect;
pub mod sysfs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rds_bus::ids::MANAGED_NQN_PREFIX;
use rds_bus::{HostIdentity, Nqn};

use crate::command::{Cmd, CommandRunner, run_checked};
use crate::dataplane::{Attachment, DataPlane, OrphanReport};
use crate::device::Device;
use crate::error::{DataPlaneError, Result};
use crate::metrics::NodeMetrics;
use crate::source::{NvmeTarget, VolumeSource};
use sysfs::{NvmeSysfs, Resolution};

/// The production `--managed-nqn-prefix` (one definition, `rds-ids`).
pub use rds_bus::ids::DEFAULT_MANAGED_NQN_PREFIX;

/// Settings of the NVMe/TCP plane (defaults = the Go driver's timers).
#[derive(Debug, Clone)]
pub struct NvmeConfig {
    pub sysfs_root: PathBuf,
    pub dev_root: PathBuf,
    /// NQNs the plane may connect, disconnect, rescan or sweep
    /// (`--managed-nqn-prefix`). Must start with
    /// `rds_bus::ids::MANAGED_NQN_PREFIX`; the default adds `pvc-` (the Go
    /// driver's guard), so a node booting from the same RDS under another
    /// name is never touched.
    pub managed_prefix: String,
    /// The host NQN and host id `nvme connect` presents (`-q`/`-I`); `None`
    /// leaves nvme-cli's defaults (only for tests: every node would look
    /// the same to the RDS).
    pub host: Option<HostIdentity>,
    pub connect_timeout: Duration,
    pub disconnect_timeout: Duration,
    pub rescan_timeout: Duration,
    /// How long to wait for the block device after a connect.
    pub device_wait: Duration,
    pub poll_interval: Duration,
    /// A connected subsystem without a device gets this long before it is
    /// treated as a dead connection (disconnect + reconnect).
    pub stale_connection_grace: Duration,
    pub connect_attempts: u32,
    /// First retry delay; doubles each attempt (1, 2, 4, 8 s).
    pub retry_base_delay: Duration,
}

impl Default for NvmeConfig {
    fn default() -> Self {
        NvmeConfig {
            sysfs_root: PathBuf::from("/sys"),
            dev_root: PathBuf::from("/dev"),
            managed_prefix: DEFAULT_MANAGED_NQN_PREFIX.to_owned(),
            host: None,
            connect_timeout: Duration::from_secs(30),
            disconnect_timeout: Duration::from_secs(15),
            rescan_timeout: Duration::from_secs(30),
            device_wait: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            stale_connection_grace: Duration::from_secs(2),
            connect_attempts: 5,
            retry_base_delay: Duration::from_secs(1),
        }
    }
}

/// The NVMe/TCP implementation of [`DataPlane`].
pub struct NvmePlane {
    cfg: NvmeConfig,
    sysfs: NvmeSysfs,
    runner: Arc<dyn CommandRunner>,
    metrics: Arc<NodeMetrics>,
}

impl NvmePlane {
    pub fn new(
        cfg: NvmeConfig,
        runner: Arc<dyn CommandRunner>,
        metrics: Arc<NodeMetrics>,
    ) -> Result<Self> {
        if !cfg.managed_prefix.starts_with(MANAGED_NQN_PREFIX) {
            return Err(DataPlaneError::InvalidArgument(format!(
                "managed NQN prefix {:?} must start with {MANAGED_NQN_PREFIX}",
                cfg.managed_prefix
            )));
        }
        Ok(NvmePlane {
            sysfs: NvmeSysfs::new(&cfg.sysfs_root, &cfg.dev_root),
            cfg,
            runner,
            metrics,
        })
    }

    pub fn sysfs(&self) -> &NvmeSysfs {
        &self.sysfs
    }

    pub fn is_managed(&self, nqn: &str) -> bool {
        nqn.starts_with(&self.cfg.managed_prefix)
    }

    fn target(source: &VolumeSource) -> Result<&NvmeTarget> {
        match source {
            VolumeSource::Nvme(t) => Ok(t),
            VolumeSource::Loop(_) => {
                Err(DataPlaneError::InvalidArgument("not an NVMe volume".into()))
            }
        }
    }

    fn require_managed(&self, nqn: &Nqn, action: &str) -> Result<()> {
        if self.is_managed(nqn.as_str()) {
            Ok(())
        } else {
            Err(DataPlaneError::Precondition(format!(
                "refusing to {action} NQN {nqn}: it does not start with the managed prefix {}",
                self.cfg.managed_prefix
            )))
        }
    }

    /// Polls sysfs until the NQN has a device or `wait` passes.
    async fn wait_for_device(&self, nqn: &Nqn, wait: Duration) -> Option<Device> {
        let deadline = Instant::now() + wait;
        loop {
            if let Resolution::Device(d) = self.sysfs.resolve(nqn.as_str()) {
                return Some(d);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            tokio::time::sleep(self.cfg.poll_interval.min(deadline - now)).await;
        }
    }

    async fn disconnect(&self, nqn: &Nqn, timeout: Duration) -> Result<()> {
        self.require_managed(nqn, "disconnect")?;
        let cmd = Cmd::new("nvme", timeout).args(["disconnect", "-n", nqn.as_str()]);
        run_checked(self.runner.as_ref(), &cmd).await.map(drop)
    }

    async fn connect_once(&self, t: &NvmeTarget) -> Result<Device> {
        let cmd = Cmd::new("nvme", self.cfg.connect_timeout)
            .args(connect::connect_args(t, self.cfg.host.as_ref()));
        tracing::info!(command = %cmd.display(), "nvme connect");
        let out = self.runner.run(&cmd).await?;
        if !out.success() && !connect::already_connected(&out) {
            return Err(DataPlaneError::Command {
                program: "nvme connect".into(),
                detail: out.message(),
            });
        }
        match self.wait_for_device(&t.nqn, self.cfg.device_wait).await {
            Some(d) => Ok(d),
            None => {
                // Do not leave a connection behind that has no device.
                if let Err(e) = self.disconnect(&t.nqn, self.cfg.disconnect_timeout).await {
                    tracing::warn!(nqn = %t.nqn, %e, "disconnect after missing device failed");
                }
                Err(DataPlaneError::Internal(format!(
                    "device did not appear for {} within {:.0} s",
                    t.nqn,
                    self.cfg.device_wait.as_secs_f64()
                )))
            }
        }
    }
}

impl DataPlane for NvmePlane {
    async fn attach(&self, source: &VolumeSource) -> Result<Attachment> {
        let t = Self::target(source)?;
        self.require_managed(&t.nqn, "connect")?;
        match self.sysfs.resolve(t.nqn.as_str()) {
            Resolution::Device(device) => {
                return Ok(Attachment {
                    device,
                    attempts: 0,
                });
            }
            Resolution::NoDevice(sub) => {
                if let Some(device) = self
                    .wait_for_device(&t.nqn, self.cfg.stale_connection_grace)
                    .await
                {
                    return Ok(Attachment {
                        device,
                        attempts: 0,
                    });
                }
                tracing::warn!(nqn = %t.nqn, subsystem = %sub.name, "connected subsystem has no block device; reconnecting");
                self.disconnect(&t.nqn, self.cfg.disconnect_timeout).await?;
            }
            Resolution::NotConnected => {}
        }
        let attempts = self.cfg.connect_attempts.max(1);
        let mut last = String::new();
        let mut made = 0;
        for attempt in 1..=attempts {
            made = attempt;
            let started = Instant::now();
            match self.connect_once(t).await {
                Ok(device) => {
                    self.metrics
                        .nvme_connect(true, started.elapsed().as_secs_f64());
                    tracing::info!(nqn = %t.nqn, device = %device, attempt, "nvme connected");
                    return Ok(Attachment {
                        device,
                        attempts: attempt,
                    });
                }
                Err(e) => {
                    self.metrics
                        .nvme_connect(false, started.elapsed().as_secs_f64());
                    last = e.to_string();
                    tracing::warn!(nqn = %t.nqn, attempt, attempts, error = %last, "nvme connect failed");
                    if !connect::is_retryable(&last) || attempt == attempts {
                        break;
                    }
                    let delay = self.cfg.retry_base_delay * 2u32.saturating_pow(attempt - 1);
                    tokio::time::sleep(delay).await;
                }
            }
        }
        Err(DataPlaneError::Connect {
            address: t.address(),
            detail: format!("connection failed after {made} attempt(s): {last}"),
        })
    }

    async fn detach(&self, source: &VolumeSource) -> Result<()> {
        let t = Self::target(source)?;
        self.require_managed(&t.nqn, "disconnect")?;
        if self.sysfs.find(t.nqn.as_str()).is_none() {
            return Ok(());
        }
        tracing::info!(nqn = %t.nqn, "nvme disconnect");
        self.disconnect(&t.nqn, self.cfg.disconnect_timeout).await
    }

    async fn resolve(&self, source: &VolumeSource) -> Result<Option<Device>> {
        let t = Self::target(source)?;
        Ok(match self.sysfs.resolve(t.nqn.as_str()) {
            Resolution::Device(d) => Some(d),
            _ => None,
        })
    }

    async fn rescan(&self, source: &VolumeSource, _device: &Device) -> Result<()> {
        let t = Self::target(source)?;
        self.require_managed(&t.nqn, "rescan")?;
        let sub = self
            .sysfs
            .find(t.nqn.as_str())
            .ok_or_else(|| DataPlaneError::Precondition(format!("{} is not connected", t.nqn)))?;
        for ctrl in &sub.controllers {
            let node = self.cfg.dev_root.join(ctrl);
            let cmd = Cmd::new("nvme", self.cfg.rescan_timeout)
                .arg("ns-rescan")
                .arg(node.display().to_string());
            run_checked(self.runner.as_ref(), &cmd).await?;
        }
        Ok(())
    }

    async fn cleanup_orphans(
        &self,
        keep: &[VolumeSource],
        _busy: &[(u64, u64)],
        budget: Duration,
    ) -> OrphanReport {
        let deadline = Instant::now() + budget;
        let mut report = OrphanReport::default();
        for sub in self.sysfs.subsystems() {
            let managed = Nqn::parse(&sub.nqn)
                .ok()
                .filter(|n| self.is_managed(n.as_str()));
            let Some(nqn) = managed else {
                tracing::debug!(nqn = %sub.nqn, "orphan sweep: not a managed NQN, skipped");
                report.skipped.push(sub.nqn.clone());
                continue;
            };
            if !sub.namespaces.is_empty() {
                continue; // has a device: alive
            }
            if keep
                .iter()
                .any(|s| matches!(s, VolumeSource::Nvme(t) if t.nqn == nqn))
            {
                tracing::warn!(%nqn, "staged volume has no namespace; leaving it to unstage");
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                report.budget_exhausted = true;
                break;
            }
            let timeout = self.cfg.disconnect_timeout.min(deadline - now);
            match self.disconnect(&nqn, timeout).await {
                Ok(()) => {
                    tracing::info!(%nqn, "orphaned NVMe connection cleaned");
                    report.cleaned.push(nqn.to_string());
                }
                Err(e) => {
                    tracing::warn!(%nqn, %e, "orphan disconnect failed");
                    report.errors.push(format!("{nqn}: {e}"));
                }
            }
        }
        report
    }

    fn sysfs_root(&self) -> &Path {
        &self.cfg.sysfs_root
    }
}
