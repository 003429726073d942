//! NodeStageVolume: attach, then (filesystem) probe → format only when
//! definitively empty → mount; idempotent on an already-staged path.

use nix::mount::MsFlags;

use super::{AccessType, ContentOrigin, NodePlane, StageOutcome, StageRequest, ensure_dir, timed};
use crate::dataplane::{Attachment, DataPlane};
use crate::device::Device;
use crate::error::{DataPlaneError, Result};
use crate::events::NodeEventKind;
use crate::flags::MountFlags;
use crate::fs::{self, FsType, Probe};
use crate::state::{StagedAccess, StagedRecord};
use crate::{command, sys};

/// Whether [`NodePlane::mount_device`] may format a blank device.
#[derive(Debug, Clone, Copy)]
pub(super) enum Format<'a> {
    /// A first stage, with the volume's origin.
    Allowed(&'a ContentOrigin),
    /// Recovery of a mount: whatever is there is mounted or nothing is.
    Never,
}

impl NodePlane {
    /// Stages a volume (see module docs of [`crate::node`]).
    #[tracing::instrument(skip_all, fields(volume = %req.volume_id, staging = %req.staging_path))]
    pub async fn stage(&self, req: StageRequest) -> Result<StageOutcome> {
        timed(
            &self.metrics,
            "stage",
            self.locked(&req.volume_id, self.stage_locked(&req)),
        )
        .await
    }

    async fn stage_locked(&self, req: &StageRequest) -> Result<StageOutcome> {
        let vol = &req.volume_id;
        let pvc = req.pvc.as_ref();
        if matches!(req.access, AccessType::Mount { .. }) {
            self.breakers.check(vol.as_str())?;
        }
        let attachment = self.attach_reporting(req).await?;
        let newly_attached = attachment.attempts > 0;
        let device = attachment.device;
        let outcome = match &req.access {
            // Block: attach only; nothing is created at the staging path
            // (docs/safety.md §2.2: kubelet's own block handling trips over it).
            AccessType::Block => StageOutcome {
                device,
                formatted: false,
                already_staged: !newly_attached,
            },
            AccessType::Mount { fs_type, flags } => {
                let r = self.stage_filesystem(req, &device, *fs_type, flags).await;
                self.breakers.record(vol.as_str(), r.is_ok());
                match r {
                    Ok(o) => o,
                    Err(e) => {
                        let kind = match &e {
                            DataPlaneError::FormatRefused(detail) => NodeEventKind::FormatRefused {
                                detail: detail.clone(),
                            },
                            _ => NodeEventKind::MountFailure {
                                error: e.to_string(),
                            },
                        };
                        self.post(vol, pvc, kind);
                        if newly_attached {
                            self.detach_after_failed_stage(req, &device).await;
                        }
                        return Err(e);
                    }
                }
            }
        };
        self.remember_staged(req)?;
        Ok(outcome)
    }

    /// Attaches the source, posting a ConnectionFailure event when that fails
    /// and a ConnectionRecovery event when it took more than one attempt.
    async fn attach_reporting(&self, req: &StageRequest) -> Result<Attachment> {
        let (vol, pvc) = (&req.volume_id, req.pvc.as_ref());
        let attachment = match self.backend.attach(&req.source).await {
            Ok(a) => a,
            Err(e) => {
                self.post(
                    vol,
                    pvc,
                    NodeEventKind::ConnectionFailure {
                        address: req.source.address(),
                        error: e.to_string(),
                    },
                );
                return Err(e);
            }
        };
        if attachment.attempts > 1 {
            self.post(
                vol,
                pvc,
                NodeEventKind::ConnectionRecovery {
                    address: req.source.address(),
                    attempts: attachment.attempts,
                },
            );
        }
        Ok(attachment)
    }

    /// Records the staged volume; a restage keeps what publish recorded.
    fn remember_staged(&self, req: &StageRequest) -> Result<()> {
        let vol = &req.volume_id;
        let block_targets = self
            .state
            .load(vol.as_str())?
            .map(|r| r.block_targets)
            .unwrap_or_default();
        self.state.save(&StagedRecord {
            volume_id: vol.to_string(),
            staging_path: req.staging_path.as_path().to_path_buf(),
            source: req.source.clone(),
            access: match &req.access {
                AccessType::Block => StagedAccess::Block,
                AccessType::Mount { fs_type, flags } => StagedAccess::Mount {
                    fs_type: *fs_type,
                    flags: flags.clone(),
                },
            },
            readonly: req.readonly,
            pvc: req.pvc.clone(),
            block_targets,
        })
    }

    async fn stage_filesystem(
        &self,
        req: &StageRequest,
        device: &Device,
        fs_type: FsType,
        flags: &MountFlags,
    ) -> Result<StageOutcome> {
        let staging = req.staging_path.as_path();
        ensure_dir(staging)?;
        let table = self.mounts().await?;
        if let Some(top) = table.top_at(staging) {
            if top.dev() == device.dev() {
                tracing::info!(device = %device, "already staged");
                return Ok(StageOutcome {
                    device: device.clone(),
                    formatted: false,
                    already_staged: true,
                });
            }
            // Another device is mounted here: this volume's old device
            // (renumbered) or garbage. Unmount it and mount the current one.
            self.metrics.stale_mounts_detected.inc();
            self.post(
                &req.volume_id,
                req.pvc.as_ref(),
                NodeEventKind::StaleMountDetected {
                    old_device: top.source.clone(),
                    new_device: device.path.display().to_string(),
                },
            );
            // Stale (another device): its own device is gone or renumbered.
            self.unmount_all(
                staging,
                &req.volume_id,
                req.pvc.as_ref(),
                super::WhenBusy::LazyStale,
            )
            .await?;
        }
        let formatted = self
            .mount_device(
                device,
                staging,
                fs_type,
                flags,
                req.readonly,
                Format::Allowed(&req.content),
            )
            .await?;
        Ok(StageOutcome {
            device: device.clone(),
            formatted,
            already_staged: false,
        })
    }

    /// Probes `device`, formats it only when provably blank (and only when
    /// `format` allows: never during recovery, never a restore that reads
    /// blank unless the StorageClass said so), mounts what is there at
    /// `staging`, and checks the mount appeared. Returns whether it formatted.
    pub(super) async fn mount_device(
        &self,
        device: &Device,
        staging: &std::path::Path,
        fs_type: FsType,
        flags: &MountFlags,
        readonly: bool,
        format: Format<'_>,
    ) -> Result<bool> {
        self.storm_guard(&self.mounts().await?, device)?;
        let (mount_type, formatted) = match fs::probe(
            self.runner.as_ref(),
            device,
            self.probe_policy(),
        )
        .await?
        {
            Probe::Empty => {
                self.blank_may_be_formatted(device, format)?;
                // Audit line for every format decision (docs/safety.md §3.1).
                tracing::warn!(device = %device, fs = %fs_type, "FORMAT: blkid reports no filesystem and the device reads fine; formatting");
                let cmd = fs_type.mkfs(&device.path, self.cfg.mkfs_timeout);
                command::run_checked(self.runner.as_ref(), &cmd).await?;
                // No second blkid: the mount below names the type, so a
                // mkfs that left anything else fails there.
                (fs_type.as_str().to_owned(), true)
            }
            Probe::Data { offset } => {
                return Err(self.refuse_format(
                    format,
                    format!(
                        "{device} has no filesystem signature but is not blank: byte {offset} \
                         is non-zero (a damaged filesystem, e.g. a lost primary superblock, or \
                         data blkid does not recognise); refusing to format it"
                    ),
                ));
            }
            Probe::Filesystem {
                fs_type: found,
                uuid,
            } => {
                if found != fs_type.as_str() {
                    tracing::info!(device = %device, %found, requested = %fs_type, "mounting the existing filesystem as is (never reformatted)");
                }
                tracing::info!(device = %device, fs = %found, uuid = ?uuid, "existing filesystem");
                (found, false)
            }
            Probe::Other(what) => {
                return Err(DataPlaneError::Precondition(format!(
                    "{device} holds {what}, not a filesystem; refusing to format or mount it"
                )));
            }
        };
        let mut ms = flags.ms_flags();
        if readonly {
            ms |= MsFlags::MS_RDONLY;
        }
        let data = flags.data();
        let (dev_path, target) = (device.path.clone(), staging.to_path_buf());
        let mt = mount_type.clone();
        let r = sys::blocking("mount", self.cfg.syscall_timeout, move || {
            sys::mount_fs(&dev_path, &target, &mt, ms, data.as_deref())
        })
        .await
        .map_err(|e| flags.explain_mount_error(e));
        self.metrics.mount_op("mount", r.is_ok());
        r?;
        match self.mounts().await?.top_at(staging) {
            Some(top) if top.dev() == device.dev() => Ok(formatted),
            other => Err(DataPlaneError::Internal(format!(
                "mounted {device} at {} but mountinfo shows {:?}",
                staging.display(),
                other.map(|e| &e.source)
            ))),
        }
    }

    /// A blank device may be formatted only at a first stage, and a restore
    /// or clone only when the StorageClass allowed blank restores.
    fn blank_may_be_formatted(&self, device: &Device, format: Format<'_>) -> Result<()> {
        let origin = match format {
            Format::Never => {
                return Err(DataPlaneError::Precondition(format!(
                    "{device} has no filesystem; refusing to format it during recovery"
                )));
            }
            Format::Allowed(origin) => origin,
        };
        match &origin.source {
            Some(src) if !origin.format_blank_restore => Err(self.refuse_format(
                format,
                format!(
                    "{device} reads blank but the volume was created from {src}: the copy may \
                     not have happened; refusing to format it (check the source; a StorageClass \
                     with formatBlankRestore: \"true\" allows formatting blank restores)"
                ),
            )),
            Some(src) => {
                tracing::warn!(device = %device, source = %src, "restored volume reads blank; formatting as the StorageClass allows");
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The error of a refused format (its event is posted by the stage).
    fn refuse_format(&self, format: Format<'_>, detail: String) -> DataPlaneError {
        tracing::warn!(
            recovery = matches!(format, Format::Never),
            "FORMAT REFUSED: {detail}"
        );
        DataPlaneError::FormatRefused(detail)
    }

    /// Best effort: a stage that attached the device and then failed leaves
    /// nothing behind — unless the device is mounted somewhere.
    async fn detach_after_failed_stage(&self, req: &StageRequest, device: &Device) {
        match self.mounts().await {
            Ok(t) if t.of_device(device.dev()).is_empty() => {
                if let Err(e) = self.backend.detach(&req.source).await {
                    tracing::warn!(volume = %req.volume_id, %e, "detach after failed stage failed");
                }
            }
            Ok(_) => {
                tracing::info!(volume = %req.volume_id, "device still mounted elsewhere; left attached")
            }
            Err(e) => {
                tracing::warn!(volume = %req.volume_id, %e, "mount table unreadable; left attached")
            }
        }
    }
}
