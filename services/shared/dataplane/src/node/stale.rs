//! Stale-mount detection and recovery (docs/safety.md §3.9): a mount is stale when
//! the volume's device, re-resolved now, is not the one mounted (NVMe
//! controller renumbered: nvme0 → nvme3) or no device backs it any more.

use rds_bus::VolumeId;

use super::NodePlane;
use crate::dataplane::DataPlane;
use crate::device::Device;
use crate::error::{DataPlaneError, Result};
use crate::events::NodeEventKind;
use crate::flags::MountFlags;
use crate::fs::FsType;
use crate::mountinfo::MountEntry;
use crate::source::{PvcRef, VolumeSource};

/// Verdict on one mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Staleness {
    Healthy,
    Stale {
        reason: String,
        current: Option<Device>,
    },
    /// The device could not be resolved (I/O error): not stale, not sure.
    Inconclusive(String),
}

/// How to remount during recovery.
pub(super) struct RemountSpec<'a> {
    pub fs_type: FsType,
    pub flags: &'a MountFlags,
    pub readonly: bool,
}

/// A stale staging mount to recover.
pub(super) struct StaleMount<'a> {
    pub staging: &'a std::path::Path,
    pub entry: &'a MountEntry,
    /// The device the volume resolves to now, if any.
    pub current: Option<&'a Device>,
}

impl NodePlane {
    pub(super) async fn staleness(&self, entry: &MountEntry, source: &VolumeSource) -> Staleness {
        match self.backend.resolve(source).await {
            Err(e) => Staleness::Inconclusive(e.to_string()),
            Ok(None) => Staleness::Stale {
                reason: format!(
                    "device_disappeared: {} ({}:{}) no longer backs the volume",
                    entry.source, entry.major, entry.minor
                ),
                current: None,
            },
            Ok(Some(d)) if d.dev() == entry.dev() => Staleness::Healthy,
            Ok(Some(d)) => Staleness::Stale {
                reason: format!(
                    "device_path_mismatch: {} ({}:{}) is mounted but the volume now resolves to {d}",
                    entry.source, entry.major, entry.minor
                ),
                current: Some(d),
            },
        }
    }

    /// Remounts the current device at `staging` (bounded attempts with
    /// backoff); events and metrics on the way. Returns the new device.
    pub(super) async fn recover(
        &self,
        volume: &VolumeId,
        pvc: Option<&PvcRef>,
        stale: StaleMount<'_>,
        source: &VolumeSource,
        spec: RemountSpec<'_>,
    ) -> Result<Device> {
        let StaleMount {
            staging,
            entry: stale,
            current,
        } = stale;
        self.metrics.stale_mounts_detected.inc();
        self.post(
            volume,
            pvc,
            NodeEventKind::StaleMountDetected {
                old_device: stale.source.clone(),
                new_device: current
                    .map(|d| d.path.display().to_string())
                    .unwrap_or_else(|| "none".into()),
            },
        );
        let attempts = self.cfg.recovery_attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.recover_once(volume, pvc, staging, source, &spec).await {
                Ok(d) => {
                    tracing::info!(volume = %volume, device = %d, attempt, "stale mount recovered");
                    self.metrics.stale_recovery(true);
                    return Ok(d);
                }
                Err(e) => {
                    tracing::warn!(volume = %volume, attempt, %e, "stale mount recovery attempt failed");
                    last = e.to_string();
                }
            }
            if attempt < attempts {
                tokio::time::sleep(self.cfg.recovery_backoff * attempt).await;
            }
        }
        self.metrics.stale_recovery(false);
        self.post(
            volume,
            pvc,
            NodeEventKind::RecoveryFailed {
                attempts,
                error: last.clone(),
            },
        );
        Err(DataPlaneError::Internal(format!(
            "stale mount recovery failed after {attempts} attempts: {last}"
        )))
    }

    async fn recover_once(
        &self,
        volume: &VolumeId,
        pvc: Option<&PvcRef>,
        staging: &std::path::Path,
        source: &VolumeSource,
        spec: &RemountSpec<'_>,
    ) -> Result<Device> {
        self.unmount_all(staging, volume, pvc, super::WhenBusy::LazyStale)
            .await?;
        // Reconnects if the connection is gone; re-resolves either way.
        let device = self.backend.attach(source).await?.device;
        self.mount_device(
            &device,
            staging,
            spec.fs_type,
            spec.flags,
            spec.readonly,
            super::stage::Format::Never,
        )
        .await?;
        Ok(device)
    }
}
