//! NodeGetVolumeStats (usage + VolumeCondition) and NodeExpandVolume.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::stale::Staleness;
use super::{ExpandOutcome, ExpandRequest, NodePlane, StatsRequest, timed};
use crate::command;
use crate::dataplane::DataPlane;
use crate::device::{self, Device};
use crate::error::{DataPlaneError, Result};
use crate::fs::{self, Probe};
use crate::mountinfo::MountEntry;
use crate::source::VolumeSource;
use crate::sys::{self, FsUsage};

/// CSI VolumeCondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeCondition {
    pub abnormal: bool,
    pub message: String,
}

impl VolumeCondition {
    fn healthy() -> Self {
        VolumeCondition {
            abnormal: false,
            message: "Volume is healthy".into(),
        }
    }

    fn abnormal(message: String) -> Self {
        VolumeCondition {
            abnormal: true,
            message,
        }
    }
}

/// What NodeGetVolumeStats reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeStats {
    /// Filesystem usage (statvfs = what `df` shows); `None` for block
    /// volumes and for stale mounts (statvfs could hang on a dead device).
    pub usage: Option<FsUsage>,
    /// Block volumes: the device size.
    pub block_size_bytes: Option<u64>,
    pub condition: VolumeCondition,
}

fn node_dev(md: &std::fs::Metadata) -> (u64, u64) {
    let r = md.rdev();
    (nix::sys::stat::major(r), nix::sys::stat::minor(r))
}

impl NodePlane {
    /// Usage and condition of a published (or staged) path.
    #[tracing::instrument(skip_all, fields(volume = %req.volume_id, path = %req.volume_path))]
    pub async fn stats(&self, req: StatsRequest) -> Result<VolumeStats> {
        let path = req.volume_path.as_path();
        let md = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DataPlaneError::NotFound(format!(
                    "volume path {} does not exist",
                    path.display()
                )));
            }
            Err(e) => {
                return Err(DataPlaneError::io(
                    format!("inspecting {}", path.display()),
                    e,
                ));
            }
        };
        let source = self.known_source(&req.volume_id)?;
        if md.file_type().is_block_device() {
            return Ok(self.block_stats(&md, source.as_ref()).await);
        }
        let table = self.mounts().await?;
        let Some(entry) = table.top_at(path).cloned() else {
            return Err(DataPlaneError::NotFound(format!(
                "{} is not a mount point",
                path.display()
            )));
        };
        let condition = self.mount_condition(&entry, source.as_ref()).await;
        if condition.abnormal {
            return Ok(VolumeStats {
                usage: None,
                block_size_bytes: None,
                condition,
            });
        }
        let p = path.to_path_buf();
        let usage = sys::blocking("statvfs", self.cfg.syscall_timeout, move || {
            sys::statvfs(&p)
        })
        .await?;
        Ok(VolumeStats {
            usage: Some(usage),
            block_size_bytes: None,
            condition,
        })
    }

    /// A block volume's size and condition: its device node must still be the
    /// device the volume resolves to.
    async fn block_stats(
        &self,
        md: &std::fs::Metadata,
        source: Option<&VolumeSource>,
    ) -> VolumeStats {
        let dev = node_dev(md);
        let size = device::size_bytes(self.backend.sysfs_root(), dev).unwrap_or(0);
        let condition = if size == 0 {
            VolumeCondition::abnormal(format!(
                "device {}:{} is gone (no size in sysfs)",
                dev.0, dev.1
            ))
        } else {
            match source {
                None => VolumeCondition::healthy(),
                Some(s) => match self.backend.resolve(s).await {
                    Ok(Some(d)) if d.dev() == dev => VolumeCondition::healthy(),
                    Ok(Some(d)) => VolumeCondition::abnormal(format!(
                        "device node points at {}:{} but the volume now resolves to {d}",
                        dev.0, dev.1
                    )),
                    Ok(None) => VolumeCondition::abnormal(format!(
                        "device {}:{} no longer backs the volume (detached or gone)",
                        dev.0, dev.1
                    )),
                    Err(e) => VolumeCondition {
                        abnormal: false,
                        message: format!("Health check inconclusive: {e}"),
                    },
                },
            }
        };
        if condition.abnormal {
            self.metrics.stale_mounts_detected.inc();
        }
        VolumeStats {
            usage: None,
            block_size_bytes: (size > 0).then_some(size),
            condition,
        }
    }

    /// A mounted volume's condition: abnormal when the mount is stale.
    async fn mount_condition(
        &self,
        entry: &MountEntry,
        source: Option<&VolumeSource>,
    ) -> VolumeCondition {
        match source {
            None => VolumeCondition {
                abnormal: false,
                message: "Health check inconclusive: no record of the volume's source".into(),
            },
            Some(s) => match self.staleness(entry, s).await {
                Staleness::Healthy => VolumeCondition::healthy(),
                Staleness::Inconclusive(why) => VolumeCondition {
                    abnormal: false,
                    message: format!("Health check inconclusive: {why}"),
                },
                Staleness::Stale { reason, .. } => {
                    self.metrics.stale_mounts_detected.inc();
                    VolumeCondition::abnormal(format!("Stale mount detected: {reason}"))
                }
            },
        }
    }

    /// Rescans the device (NVMe ns-rescan / losetup -c), then grows the
    /// filesystem online (resize2fs / xfs_growfs). Block volumes: rescan only.
    #[tracing::instrument(skip_all, fields(volume = %req.volume_id, path = %req.volume_path))]
    pub async fn expand(&self, req: ExpandRequest) -> Result<ExpandOutcome> {
        let volume_id = req.volume_id.clone();
        timed(&self.metrics, "expand", self.locked(&volume_id, async {
            let path = req.volume_path.as_path();
            let source = self.known_source(&req.volume_id)?.ok_or_else(|| {
                DataPlaneError::Precondition(format!("volume {} is not staged on this node", req.volume_id))
            })?;
            let device: Device = self.backend.resolve(&source).await?.ok_or_else(|| {
                DataPlaneError::Precondition(format!("no device is attached for volume {}", req.volume_id))
            })?;
            let md = std::fs::metadata(path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    DataPlaneError::NotFound(format!("volume path {} does not exist", path.display()))
                } else {
                    DataPlaneError::io(format!("inspecting {}", path.display()), e)
                }
            })?;
            if md.file_type().is_block_device() {
                if node_dev(&md) != device.dev() {
                    return Err(DataPlaneError::Precondition(format!(
                        "{} does not point at the volume's current device {device}",
                        path.display()
                    )));
                }
                self.backend.rescan(&source, &device).await?;
            } else {
                let table = self.mounts().await?;
                let entry = table.top_at(path).cloned().ok_or_else(|| {
                    DataPlaneError::NotFound(format!("{} is not a mount point", path.display()))
                })?;
                if entry.dev() != device.dev() {
                    return Err(DataPlaneError::Precondition(format!(
                        "{} is a stale mount ({}), the volume's device is now {device}; republish first",
                        path.display(),
                        entry.source
                    )));
                }
                self.backend.rescan(&source, &device).await?;
                let fs_type = match fs::probe(self.runner.as_ref(), &device, self.probe_policy()).await? {
                    Probe::Filesystem { fs_type, .. } => fs_type,
                    other => {
                        return Err(DataPlaneError::Precondition(format!(
                            "{device} does not hold a filesystem ({other:?})"
                        )));
                    }
                };
                let cmd = fs::grow_cmd(&fs_type, &device.path, path, self.cfg.resize_timeout)?;
                command::run_checked(self.runner.as_ref(), &cmd)
                    .await
                    .map_err(grow_error)?;
            }
            let capacity_bytes = device::size_bytes(self.backend.sysfs_root(), device.dev())
                .map_err(|e| DataPlaneError::io(format!("reading the size of {device}"), e))?;
            Ok(ExpandOutcome { capacity_bytes })
        }))
        .await
    }
}

/// Online grow needs CAP_SYS_RESOURCE (resize2fs) beyond plain root; a
/// container or sandbox without it gets EPERM. That is the node's setup, not
/// an internal fault: say so, with FAILED_PRECONDITION, and keep the rest.
fn grow_error(e: DataPlaneError) -> DataPlaneError {
    match e {
        DataPlaneError::Command { program, detail }
            if detail.contains("Operation not permitted")
                || detail.contains("Permission denied") =>
        {
            DataPlaneError::Precondition(format!(
                "{program}: growing a mounted filesystem needs CAP_SYS_RESOURCE on the node ({detail})"
            ))
        }
        other => other,
    }
}
