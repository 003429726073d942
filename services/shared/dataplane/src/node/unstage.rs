//! NodeUnstageVolume: unmount, then detach only when nothing uses the device
//! or its filesystem any more. A user — a mount of the device in any mount
//! namespace, an open file on the filesystem, a process holding the raw
//! device — makes unstage fail with FAILED_PRECONDITION naming it: the
//! record is kept, nothing is detached, an event is posted, and the CO
//! retries. There is no lazy unmount followed by a disconnect: writes after
//! it would hit a device that is gone (docs/safety.md).
//!
//! A false "in use" must not block unstage forever (the Go driver's own PID
//! once did): our own process and transient udev/blkid opens never count,
//! and a superblock kept alive only by a mount namespace no process is in
//! is flushed-then-detached with an event rather than refused.

use std::path::Path;

use super::{NodePlane, UnstageOutcome, UnstageRequest, WhenBusy, same_backing, timed};
use crate::dataplane::DataPlane;
use crate::device::Device;
use crate::error::Result;
use crate::events::NodeEventKind;
use crate::mountinfo::{MountEntry, comparable};
use crate::source::{PvcRef, VolumeSource};
use crate::sys;
use rds_bus::VolumeId;

impl NodePlane {
    #[tracing::instrument(skip_all, fields(volume = %req.volume_id, staging = %req.staging_path))]
    pub async fn unstage(&self, req: UnstageRequest) -> Result<UnstageOutcome> {
        let volume_id = req.volume_id.clone();
        timed(&self.metrics, "unstage", self.locked(&volume_id, async {
            let vol = &req.volume_id;
            let staging = req.staging_path.as_path();
            let record = self.state.load(vol.as_str())?;
            let pvc = record.as_ref().and_then(|r| r.pvc.clone());
            let staged = self.mounts().await?.top_at(staging).cloned();
            let staged_dev = staged.as_ref().map(MountEntry::dev);
            let was_mounted = staged.is_some();
            if let Some(entry) = &staged {
                self.unmount_staging(vol, pvc.as_ref(), staging, entry).await?;
            }
            // Staged somewhere else: this call only cleans its own path.
            if let Some(r) = &record
                && comparable(&r.staging_path) != comparable(staging)
            {
                tracing::info!(recorded = %r.staging_path.display(), "volume is staged at another path; not detaching");
                return Ok(UnstageOutcome { was_mounted, detached: false });
            }
            let source = match &record {
                Some(r) => Some(r.source.clone()),
                None => match staged_dev.and_then(|d| self.loop_source_of_device(d)) {
                    Some(s) => Some(s),
                    None => self.known_source(vol)?,
                },
            };
            let detached = match source {
                Some(s) => self.detach_if_unused(vol, &s, pvc.as_ref()).await?,
                None => {
                    tracing::warn!(volume = %vol, "no record of this volume's source; nothing to detach");
                    false
                }
            };
            self.state.remove(vol.as_str())?;
            Ok(UnstageOutcome { was_mounted, detached })
        }))
        .await
    }

    /// Unmounts the staging mount unless something else uses the filesystem:
    /// checked first, so a refusal leaves the volume exactly as it was.
    async fn unmount_staging(
        &self,
        vol: &VolumeId,
        pvc: Option<&PvcRef>,
        staging: &Path,
        staged: &MountEntry,
    ) -> Result<()> {
        // The staging mount itself and its propagated peers (the host's copy)
        // are ours. A bind of a shared staging mount is a peer too: it passes
        // here, outlives our unmount and is refused by the check before the
        // detach.
        let ours = vec![(staged.id, staged.shared_group)];
        let scan = self.scan_uses(staged.dev(), ours).await?;
        if !scan.uses.is_empty() {
            return Err(self.refuse(vol, pvc, "unstage", scan.describe()));
        }
        // Flush while the mount is still ours: if the superblock outlives
        // our mount (see detach_if_unused) the data is already on disk.
        let p = staging.to_path_buf();
        if let Err(e) =
            sys::blocking("syncfs", self.cfg.syscall_timeout, move || sys::syncfs(&p)).await
        {
            tracing::warn!(volume = %vol, %e, "syncfs before unmount failed");
        }
        self.unmount_all(staging, vol, pvc, WhenBusy::Refuse)
            .await?;
        Ok(())
    }

    /// Detaches `source` unless another staged volume shares its backing
    /// (then it stays, and that is success) or something uses the device
    /// (then FAILED_PRECONDITION). Returns whether it detached.
    async fn detach_if_unused(
        &self,
        vol: &VolumeId,
        source: &VolumeSource,
        pvc: Option<&PvcRef>,
    ) -> Result<bool> {
        let Some(device) = self.backend.resolve(source).await? else {
            return Ok(false); // already detached
        };
        if let Some(other) = self
            .state
            .list()
            .into_iter()
            .find(|r| r.volume_id != vol.as_str() && same_backing(&r.source, source))
        {
            tracing::info!(other = %other.volume_id, "another staged volume uses the same backing; leaving it attached");
            return Ok(false);
        }
        self.wait_until_unused(vol, pvc, &device).await?;
        self.backend.detach(source).await?;
        Ok(true)
    }

    /// Waits (bounded) for the device to be free. Mounts, open files and
    /// kernel holders are refused at once; a process holding the raw device
    /// gets `holder_checks` looks first (it may be closing it); a superblock
    /// with no visible user is detached with an event.
    async fn wait_until_unused(
        &self,
        vol: &VolumeId,
        pvc: Option<&PvcRef>,
        device: &Device,
    ) -> Result<()> {
        let checks = self.cfg.holder_checks.max(1);
        for attempt in 1..=checks {
            let scan = self.scan_uses(device.dev(), Vec::new()).await?;
            if scan.is_clear() {
                return Ok(());
            }
            let only_openers = scan.uses.iter().all(|u| u.is_device_opener());
            if !only_openers || attempt == checks {
                if scan.uses.is_empty() {
                    // Only the superblock: a mount namespace no process is
                    // in keeps it. Not a holder (nobody can write through
                    // it); our syncfs flushed what we wrote.
                    let detail = format!(
                        "{device}: {}; detaching (no process can write to it)",
                        scan.describe()
                    );
                    tracing::warn!(volume = %vol, "{detail}");
                    self.post(vol, pvc, NodeEventKind::ForcedCleanup { detail });
                    return Ok(());
                }
                return Err(self.refuse(vol, pvc, "unstage", scan.describe()));
            }
            tokio::time::sleep(self.cfg.holder_check_delay).await;
        }
        Ok(())
    }
}
