//! NodePublishVolume / NodeUnpublishVolume.
//! Filesystem: bind mount of the staging path (readonly = bind + remount ro).
//! Block: a device node made with mknod at the target — never a bind mount
//! of /dev (docs/safety.md §3.4). Unpublish removes only an empty, unmounted
//! target; never a recursive delete (docs/safety.md §3.6).

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use nix::mount::MsFlags;

use super::stale::{RemountSpec, StaleMount, Staleness};
use super::{
    AccessType, NodePlane, PublishOutcome, PublishRequest, UnpublishOutcome, UnpublishRequest,
    ensure_dir, timed,
};
use crate::dataplane::DataPlane;
use crate::error::{DataPlaneError, Result};
use crate::events::NodeEventKind;
use crate::flags::MountFlags;
use crate::mountinfo::comparable;
use crate::source::VolumeSource;
use crate::state::StagedAccess;
use crate::sys;

impl NodePlane {
    #[tracing::instrument(skip_all, fields(volume = %req.volume_id, target = %req.target_path))]
    pub async fn publish(&self, req: PublishRequest) -> Result<PublishOutcome> {
        let volume_id = req.volume_id.clone();
        timed(
            &self.metrics,
            "publish",
            self.locked(&volume_id, async {
                let record = self.state.load(req.volume_id.as_str())?;
                let source = record
                    .as_ref()
                    .map(|r| r.source.clone())
                    .or_else(|| req.source.clone())
                    .ok_or_else(|| {
                        DataPlaneError::Precondition(format!(
                            "volume {} is not staged on this node (was NodeStageVolume called?)",
                            req.volume_id
                        ))
                    })?;
                match &req.access {
                    AccessType::Block => {
                        let out = self.publish_block(&req, &source).await?;
                        self.remember_block_target(&req)?;
                        Ok(out)
                    }
                    AccessType::Mount { fs_type, flags } => {
                        // Remount with what was staged, not what this call says.
                        let (fs_type, stage_flags, stage_ro) =
                            match record.as_ref().map(|r| (&r.access, r.readonly)) {
                                Some((StagedAccess::Mount { fs_type, flags }, ro)) => {
                                    (*fs_type, flags.clone(), ro)
                                }
                                _ => (*fs_type, flags.clone(), false),
                            };
                        let spec = RemountSpec {
                            fs_type,
                            flags: &stage_flags,
                            readonly: stage_ro,
                        };
                        self.publish_filesystem(&req, flags, &source, spec).await
                    }
                }
            }),
        )
        .await
    }

    /// The device of the filesystem mounted at the staging path, recovered
    /// first when stale; with it the stale device it replaced, if any.
    async fn staged_device(
        &self,
        req: &PublishRequest,
        source: &VolumeSource,
        spec: RemountSpec<'_>,
    ) -> Result<((u64, u64), Option<(u64, u64)>)> {
        let staging = req.staging_path.as_path();
        let table = self.mounts().await?;
        let Some(stage_top) = table.top_at(staging).cloned() else {
            return Err(DataPlaneError::Precondition(format!(
                "staging path {} is not mounted (was NodeStageVolume called?)",
                staging.display()
            )));
        };
        match self.staleness(&stage_top, source).await {
            Staleness::Healthy => Ok((stage_top.dev(), None)),
            Staleness::Inconclusive(why) => {
                tracing::info!(volume = %req.volume_id, %why, "stale check inconclusive; publishing");
                Ok((stage_top.dev(), None))
            }
            Staleness::Stale { reason, current } => {
                tracing::warn!(volume = %req.volume_id, %reason, "stale staging mount");
                let d = self
                    .recover(
                        &req.volume_id,
                        req.pvc.as_ref(),
                        StaleMount {
                            staging,
                            entry: &stage_top,
                            current: current.as_ref(),
                        },
                        source,
                        spec,
                    )
                    .await?;
                Ok((d.dev(), Some(stage_top.dev())))
            }
        }
    }

    /// What is already mounted at the target: the same filesystem (the call is
    /// a repeat: its outcome), a bind of the stale one (unmounted here), or
    /// another filesystem (refused).
    async fn clear_target(
        &self,
        req: &PublishRequest,
        stage_dev: (u64, u64),
        stale_dev: Option<(u64, u64)>,
    ) -> Result<Option<PublishOutcome>> {
        let target = req.target_path.as_path();
        let table = self.mounts().await?;
        let Some(t) = table.top_at(target) else {
            return Ok(None);
        };
        if t.dev() == stage_dev {
            if t.is_readonly() != req.readonly {
                return Err(DataPlaneError::AlreadyExists(format!(
                    "{} is already published with readonly={}, requested readonly={}",
                    target.display(),
                    t.is_readonly(),
                    req.readonly
                )));
            }
            return Ok(Some(PublishOutcome {
                already_published: true,
            }));
        }
        if Some(t.dev()) != stale_dev {
            return Err(DataPlaneError::AlreadyExists(format!(
                "{} already has another filesystem mounted ({})",
                target.display(),
                t.source
            )));
        }
        // A bind of the old (stale) filesystem: replace it.
        self.unmount_all(
            target,
            &req.volume_id,
            req.pvc.as_ref(),
            super::WhenBusy::LazyStale,
        )
        .await?;
        Ok(None)
    }

    async fn publish_filesystem(
        &self,
        req: &PublishRequest,
        flags: &MountFlags,
        source: &VolumeSource,
        spec: RemountSpec<'_>,
    ) -> Result<PublishOutcome> {
        let staging = req.staging_path.as_path();
        let target = req.target_path.as_path();
        let (stage_dev, stale_dev) = self.staged_device(req, source, spec).await?;
        if let Some(done) = self.clear_target(req, stage_dev, stale_dev).await? {
            return Ok(done);
        }
        let table = self.mounts().await?;
        let mounts_of_dev = table.of_device(stage_dev).len();
        if mounts_of_dev >= self.cfg.mount_storm_limit {
            return Err(DataPlaneError::MountStorm {
                device: format!("{}:{}", stage_dev.0, stage_dev.1),
                count: mounts_of_dev,
                limit: self.cfg.mount_storm_limit,
            });
        }
        ensure_dir(target)?;
        let mut ms = flags.ms_flags();
        if req.readonly {
            ms |= MsFlags::MS_RDONLY;
        }
        let (s, t) = (staging.to_path_buf(), target.to_path_buf());
        let r = sys::blocking("bind mount", self.cfg.syscall_timeout, move || {
            sys::bind_mount(&s, &t, ms)
        })
        .await;
        self.metrics.mount_op("bind", r.is_ok());
        r?;
        match self.mounts().await?.top_at(target) {
            Some(m) if m.dev() == stage_dev && m.is_readonly() == req.readonly => {
                Ok(PublishOutcome {
                    already_published: false,
                })
            }
            other => Err(DataPlaneError::Internal(format!(
                "bind mounted {} at {} but mountinfo shows {:?}",
                staging.display(),
                target.display(),
                other.map(|m| (&m.source, &m.options))
            ))),
        }
    }

    async fn publish_block(
        &self,
        req: &PublishRequest,
        source: &VolumeSource,
    ) -> Result<PublishOutcome> {
        let target = req.target_path.as_path();
        let device = self.backend.resolve(source).await?.ok_or_else(|| {
            DataPlaneError::Precondition(format!(
                "no device is attached for volume {} (was NodeStageVolume called?)",
                req.volume_id
            ))
        })?;
        if req.single_writer {
            self.single_block_writer(req, &device)?;
        }
        if let Some(parent) = target.parent() {
            ensure_dir(parent)?;
        }
        match std::fs::symlink_metadata(target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DataPlaneError::io(
                    format!("inspecting {}", target.display()),
                    e,
                ));
            }
            Ok(md) => {
                if self.mounts().await?.is_mount_point(target) {
                    return Err(DataPlaneError::Precondition(format!(
                        "{} is a mount point; raw block publish never mounts there",
                        target.display()
                    )));
                }
                let ft = md.file_type();
                if ft.is_block_device() {
                    let rdev = md.rdev();
                    let dev = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
                    if dev == device.dev() {
                        return Ok(PublishOutcome {
                            already_published: true,
                        });
                    }
                    // A node for the old device number (renumbered): replace it.
                    self.metrics.stale_mounts_detected.inc();
                    self.post(
                        &req.volume_id,
                        req.pvc.as_ref(),
                        NodeEventKind::StaleMountDetected {
                            old_device: format!("{}:{}", dev.0, dev.1),
                            new_device: device.path.display().to_string(),
                        },
                    );
                } else if !(ft.is_file() && md.len() == 0) {
                    return Err(DataPlaneError::Precondition(format!(
                        "{} exists and is neither a device node nor an empty file",
                        target.display()
                    )));
                }
                std::fs::remove_file(target).map_err(|e| {
                    DataPlaneError::io(format!("replacing {}", target.display()), e)
                })?;
            }
        }
        let (t, (major, minor), ro) = (target.to_path_buf(), device.dev(), req.readonly);
        let r = sys::blocking("mknod", self.cfg.syscall_timeout, move || {
            sys::make_block_node(&t, major, minor, ro)
        })
        .await;
        self.metrics.mount_op("mknod", r.is_ok());
        r?;
        tracing::info!(device = %device, target = %target.display(), "block device node created");
        Ok(PublishOutcome {
            already_published: false,
        })
    }

    #[tracing::instrument(skip_all, fields(volume = %req.volume_id, target = %req.target_path))]
    pub async fn unpublish(&self, req: UnpublishRequest) -> Result<UnpublishOutcome> {
        let volume_id = req.volume_id.clone();
        timed(
            &self.metrics,
            "unpublish",
            self.locked(&volume_id, async {
                let target = req.target_path.as_path();
                if let Err(e) = std::fs::symlink_metadata(target) {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        return Ok(UnpublishOutcome {
                            was_mounted: false,
                            removed_target: false,
                        });
                    }
                    return Err(DataPlaneError::io(
                        format!("inspecting {}", target.display()),
                        e,
                    ));
                }
                // A mount table we cannot read is an error, never "not mounted"
                // (the Go driver's RemoveAll-after-failed-check bug).
                let was_mounted = self.mounts().await?.is_mount_point(target);
                if was_mounted {
                    self.unmount_all(target, &req.volume_id, None, super::WhenBusy::Refuse)
                        .await?;
                }
                if self.mounts().await?.is_mount_point(target) {
                    return Err(DataPlaneError::Internal(format!(
                        "{} is still mounted after unmount",
                        target.display()
                    )));
                }
                let removed_target = remove_if_empty(target)?;
                self.forget_block_target(&req)?;
                Ok(UnpublishOutcome {
                    was_mounted,
                    removed_target,
                })
            }),
        )
        .await
    }
}

impl NodePlane {
    /// SINGLE_NODE_SINGLE_WRITER for raw block: refused while another
    /// recorded target is still a node of this device.
    fn single_block_writer(
        &self,
        req: &PublishRequest,
        device: &crate::device::Device,
    ) -> Result<()> {
        let Some(rec) = self.state.load(req.volume_id.as_str())? else {
            return Ok(());
        };
        let target = comparable(req.target_path.as_path());
        for other in rec.block_targets.iter().filter(|t| comparable(t) != target) {
            if let Ok(Some(dev)) = sys::block_node_dev(other)
                && dev == device.dev()
            {
                return Err(DataPlaneError::Precondition(format!(
                    "SINGLE_NODE_SINGLE_WRITER volume {} is already published at {}",
                    req.volume_id,
                    other.display()
                )));
            }
        }
        Ok(())
    }

    fn remember_block_target(&self, req: &PublishRequest) -> Result<()> {
        let Some(mut rec) = self.state.load(req.volume_id.as_str())? else {
            return Ok(());
        };
        let t = req.target_path.as_path().to_path_buf();
        if !rec.block_targets.contains(&t) {
            rec.block_targets.push(t);
            self.state.save(&rec)?;
        }
        Ok(())
    }

    fn forget_block_target(&self, req: &UnpublishRequest) -> Result<()> {
        let Some(mut rec) = self.state.load(req.volume_id.as_str())? else {
            return Ok(());
        };
        let before = rec.block_targets.len();
        rec.block_targets.retain(|t| t != req.target_path.as_path());
        if rec.block_targets.len() != before {
            self.state.save(&rec)?;
        }
        Ok(())
    }
}

/// Removes an unmounted target only if it is empty (rmdir / unlink of an
/// empty file or a device node). Files inside are never touched.
fn remove_if_empty(target: &std::path::Path) -> Result<bool> {
    let md = match std::fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(DataPlaneError::io(
                format!("inspecting {}", target.display()),
                e,
            ));
        }
    };
    let ft = md.file_type();
    let r = if ft.is_dir() {
        std::fs::remove_dir(target)
    } else if ft.is_block_device() || (ft.is_file() && md.len() == 0) {
        std::fs::remove_file(target)
    } else {
        tracing::warn!(target = %target.display(), "target is not empty; leaving it");
        return Ok(false);
    };
    match r {
        Ok(()) => Ok(true),
        Err(e)
            if e.raw_os_error() == Some(nix::libc::ENOTEMPTY)
                || e.raw_os_error() == Some(nix::libc::EEXIST) =>
        {
            tracing::warn!(target = %target.display(), "target directory still holds files; leaving them");
            Ok(false)
        }
        Err(e) => Err(DataPlaneError::io(
            format!("removing {}", target.display()),
            e,
        )),
    }
}
