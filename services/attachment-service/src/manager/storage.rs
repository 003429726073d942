//! The table's side of storage fencing (`crate::storage_fence`): the RDS
//! allow list follows every decision, and the leader repairs drift.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rds_bus::{NodeId, VolumeId};

use super::Manager;
use crate::error::Error;
use crate::events;
use crate::storage_fence::{StorageFence, set_by_us};

/// What one drift-repair pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FenceReport {
    /// Volumes whose list was set back to the table's decision.
    pub repaired: Vec<VolumeId>,
    /// Fencing off: volumes whose list this driver had set, now open.
    pub opened: Vec<VolumeId>,
}

impl Manager {
    /// Installs the rds-agent client (once, at start).
    pub fn set_storage_fence(&self, fence: Arc<StorageFence>) {
        let _ = self.storage.set(fence);
    }

    fn fence(&self) -> Option<&Arc<StorageFence>> {
        self.storage.get()
    }

    /// With fencing on: sets `volume`'s allow list to `holders` (nobody →
    /// the sentinel) and waits for the RDS to confirm it. Callers hold the
    /// volume's lock. A no-op when fencing is off.
    pub(super) async fn fence_to(
        &self,
        volume: &VolumeId,
        holders: &[NodeId],
        doing: &str,
    ) -> Result<(), Error> {
        let Some(f) = self.fence().filter(|f| f.enabled()) else {
            return Ok(());
        };
        let hosts = f.desired(holders);
        f.apply(volume, hosts, doing).await.inspect_err(|e| {
            tracing::warn!(volume_id = %volume, error = %e, "storage fence not applied");
        })
    }

    /// The leader's pass: with fencing on, every volume rds-agent reports
    /// whose allow list differs from the table is set back (under the
    /// volume's lock) and StorageFenceRepaired is posted; with fencing off,
    /// the lists this driver had set are opened once. Volumes held by
    /// nobody get the sentinel, so a newly created volume is closed here
    /// at the latest.
    pub async fn repair_storage_fence(&self) -> Result<FenceReport, Error> {
        let mut report = FenceReport::default();
        let Some(f) = self.fence().cloned() else {
            return Ok(report);
        };
        if !f.enabled() {
            if self.storage_opened.load(Ordering::Acquire) {
                return Ok(report);
            }
            for (v, hosts) in f.list().await? {
                if set_by_us(&hosts) {
                    let _guard = self.locks.lock(&v).await;
                    f.open(&v).await?;
                    tracing::info!(volume_id = %v, "storage fencing off: export opened to any host");
                    report.opened.push(v);
                }
            }
            self.storage_opened.store(true, Ordering::Release);
            return Ok(report);
        }
        // The table's decisions as they were before the read: a volume whose
        // decision changed while the RDS was read was set by that change.
        let before_read: std::collections::HashMap<VolumeId, Vec<String>> = self
            .read()
            .values()
            .map(|r| (r.volume.clone(), f.desired(&r.node_ids())))
            .collect();
        let nobody = f.desired(&[]);
        for (v, found) in f.list().await? {
            let before = before_read.get(&v).unwrap_or(&nobody).clone();
            if before == found {
                continue;
            }
            let _guard = self.locks.lock(&v).await;
            let rec = self.record(&v);
            let holders = rec.as_ref().map(|r| r.node_ids()).unwrap_or_default();
            let want = f.desired(&holders);
            if want != before {
                // Attach/Detach changed it since the list was read; they
                // set the RDS themselves.
                continue;
            }
            f.apply(&v, want.clone(), "repair drift").await?;
            if rec.is_none() && found.is_empty() {
                // A volume created since the last pass (created open):
                // closing it is routine, not drift.
                tracing::info!(volume_id = %v, "storage fence: unattached volume closed");
                continue;
            }
            tracing::warn!(volume_id = %v, ?found, expected = ?want, "storage fence drift repaired");
            self.metrics.reconcile("fence_repaired");
            self.events.post(
                &v,
                None,
                rec.as_ref().and_then(|r| r.pvc.as_ref()),
                events::storage_fence_repaired(&found, &want),
            );
            report.repaired.push(v);
        }
        Ok(report)
    }
}
