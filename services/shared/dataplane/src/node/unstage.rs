//! NodeUnstageVolume: unmount, then detach only when nothing else uses the
//! device. A busy device never blocks unstage forever (incident 17.8: a false
//! "in use" once blocked every detach in the cluster): bounded checks, then
//! detach anyway with a log line and an event.

use super::{NodePlane, UnstageOutcome, UnstageRequest, same_backing, timed};
use crate::dataplane::DataPlane;
use crate::error::Result;
use crate::events::NodeEventKind;
use crate::inuse::{self, Holder};
use crate::mountinfo::comparable;
use crate::source::{PvcRef, VolumeSource};
use crate::sys;
use rds_bus::VolumeId;

impl NodePlane {
    #[tracing::instrument(skip_all, fields(volume = %req.volume_id, staging = %req.staging_path))]
    pub async fn unstage(&self, req: UnstageRequest) -> Result<UnstageOutcome> {
        timed(&self.metrics, "unstage", async {
            let _guard = self.lock(&req.volume_id)?;
            let vol = &req.volume_id;
            let staging = req.staging_path.as_path();
            let record = self.state.load(vol.as_str())?;
            let pvc = record.as_ref().and_then(|r| r.pvc.clone());
            let staged_dev = self.mounts().await?.top_at(staging).map(|e| e.dev());
            let was_mounted = staged_dev.is_some();
            if was_mounted {
                self.unmount_all(staging, vol, pvc.as_ref()).await?;
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
        })
        .await
    }

    /// Detaches `source` unless its device is still mounted or another
    /// staged volume uses the same backing. Returns whether it detached.
    async fn detach_if_unused(
        &self,
        vol: &VolumeId,
        source: &VolumeSource,
        pvc: Option<&PvcRef>,
    ) -> Result<bool> {
        let Some(device) = self.backend.resolve(source).await? else {
            return Ok(false); // already detached
        };
        let table = self.mounts().await?;
        let others: Vec<String> = table
            .of_device(device.dev())
            .iter()
            .map(|e| e.mount_point.display().to_string())
            .collect();
        if !others.is_empty() {
            tracing::warn!(device = %device, mounts = ?others, "device is still mounted elsewhere; leaving it attached");
            return Ok(false);
        }
        if let Some(other) = self
            .state
            .list()
            .into_iter()
            .find(|r| r.volume_id != vol.as_str() && same_backing(&r.source, source))
        {
            tracing::info!(other = %other.volume_id, "another staged volume uses the same backing; leaving it attached");
            return Ok(false);
        }
        let holders = self.holders_after_retries(device.dev()).await;
        if !holders.is_empty() {
            let names: Vec<String> = holders.iter().map(ToString::to_string).collect();
            let detail = format!(
                "{device} still open by {} after {} checks; detaching anyway",
                names.join(", "),
                self.cfg.holder_checks
            );
            tracing::warn!(volume = %vol, "{detail}");
            self.post(vol, pvc, NodeEventKind::ForcedCleanup { detail });
        }
        self.backend.detach(source).await?;
        Ok(true)
    }

    /// Open-fd holders of `dev`, re-checked a bounded number of times. A
    /// scan that fails or times out counts as "no holders" (never blocks).
    async fn holders_after_retries(&self, dev: (u64, u64)) -> Vec<Holder> {
        let checks = self.cfg.holder_checks.max(1);
        let mut holders = Vec::new();
        for attempt in 1..=checks {
            let (proc_root, sysfs) = (
                self.cfg.proc_root.clone(),
                self.backend.sysfs_root().to_path_buf(),
            );
            holders =
                match sys::blocking("scanning open files", self.cfg.syscall_timeout, move || {
                    Ok(inuse::holders(&proc_root, &sysfs, dev))
                })
                .await
                {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::warn!(%e, "holder scan failed; proceeding");
                        return Vec::new();
                    }
                };
            if holders.is_empty() {
                break;
            }
            if attempt < checks {
                tokio::time::sleep(self.cfg.holder_check_delay).await;
            }
        }
        holders
    }
}
