//! Table changes that do not come from an RPC: the reconciler's clears, the
//! migration watchdog, and (Kubernetes mode) what the VolumeAttachment watch
//! reports. Same rules as the RPCs: under the volume's lock, durable first,
//! events after.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rds_bus::{NodeId, VolumeId};

use super::{Adopted, CLEAR_BATCH, Manager, to_std};
use crate::cluster::Presence;
use crate::error::Error;
use crate::events;
use crate::fencing;
use crate::model::{Migration, NodeAttachment, PvcRef, Record};

impl Manager {
    /// Clears stale (volume, node) pairs: durable first (in batches), then
    /// StaleAttachmentCleared per pair when `post_events` (the leader).
    /// Each pair comes with when it was first seen missing; under the
    /// volume's lock the decision is made again and the pair is skipped
    /// when its node or VolumeAttachment is no longer seen gone (e.g. a
    /// re-list started, or a new VA appeared) or when the attachment was
    /// made after it was first seen missing (a new Attach served
    /// meanwhile). Returns the pairs actually cleared.
    pub async fn clear_stale(
        &self,
        stale: &[(VolumeId, NodeId, Timestamp)],
        post_events: bool,
    ) -> Result<Vec<(VolumeId, NodeId)>, Error> {
        let mut cleared = Vec::new();
        for chunk in stale.chunks(CLEAR_BATCH) {
            let mut vols: Vec<&VolumeId> = chunk.iter().map(|(v, _, _)| v).collect();
            vols.sort();
            vols.dedup();
            let mut guards = Vec::with_capacity(vols.len());
            for v in &vols {
                guards.push(self.locks.lock(v).await);
            }
            let mut work: BTreeMap<VolumeId, Record> = BTreeMap::new();
            {
                let table = self.read();
                for v in &vols {
                    if let Some(r) = table.get(*v) {
                        work.insert((*v).clone(), r.clone());
                    }
                }
            }
            let (done, pvcs) = self.drop_stale_pairs(chunk, &mut work);
            let touched: std::collections::HashSet<&VolumeId> =
                done.iter().map(|(v, _)| v).collect();
            let (remove, put): (Vec<Record>, Vec<Record>) = work
                .into_values()
                .filter(|r| touched.contains(&r.volume))
                .partition(|r| r.nodes.is_empty());
            let remove: Vec<VolumeId> = remove.into_iter().map(|r| r.volume).collect();
            let unfenced = self.fence_cleared(&put, &remove).await;
            let put: Vec<Record> = put
                .into_iter()
                .filter(|r| !unfenced.contains(&r.volume))
                .collect();
            let remove: Vec<VolumeId> = remove
                .into_iter()
                .filter(|v| !unfenced.contains(v))
                .collect();
            let (done, pvcs): (Vec<_>, Vec<_>) = done
                .into_iter()
                .zip(pvcs)
                .filter(|((v, _), _)| !unfenced.contains(v))
                .unzip();
            self.commit(put, remove).await?;
            drop(guards);
            for ((v, n), pvc) in done.iter().zip(pvcs) {
                self.metrics.reconcile("clear_stale");
                tracing::info!(volume_id = %v, node_id = %n, post_events, "cleared stale attachment");
                if post_events {
                    self.events
                        .post(v, Some(n), pvc.as_ref(), events::stale_cleared(n));
                }
            }
            self.metrics.stale_cleared(done.len() as u64);
            cleared.extend(done);
        }
        Ok(cleared)
    }

    /// Takes the stale pairs out of the working copies of their records,
    /// deciding again for each (still gone, attached before it was seen
    /// missing). Returns the pairs taken and the PVC of each.
    fn drop_stale_pairs(
        &self,
        chunk: &[(VolumeId, NodeId, Timestamp)],
        work: &mut BTreeMap<VolumeId, Record>,
    ) -> (Vec<(VolumeId, NodeId)>, Vec<Option<PvcRef>>) {
        let mut done = Vec::new();
        let mut pvcs = Vec::new();
        for (v, n, missing_since) in chunk {
            let Some(rec) = work.get_mut(v) else { continue };
            let Some(pos) = rec.nodes.iter().position(|x| &x.node == n) else {
                continue;
            };
            let still_gone = self.cluster.node(n) == Presence::Gone
                || self.cluster.attachment_object(v, n) == Presence::Gone;
            if !still_gone || rec.nodes[pos].attached_at > *missing_since {
                tracing::info!(volume_id = %v, node_id = %n, still_gone,
                    "not clearing: no longer stale, or attached after it was seen missing");
                continue;
            }
            rec.nodes.remove(pos);
            if rec.migration.take().is_some_and(|m| !m.timed_out) {
                self.metrics.migration_closed();
            }
            pvcs.push(rec.pvc.clone());
            done.push((v.clone(), n.clone()));
        }
        (done, pvcs)
    }

    /// Storage fencing: the RDS stops admitting the cleared nodes before the
    /// table forgets them. Returns the volumes the RDS did not confirm: they
    /// stay as they were (retried on the next pass).
    async fn fence_cleared(
        &self,
        put: &[Record],
        remove: &[VolumeId],
    ) -> std::collections::HashSet<VolumeId> {
        let mut unfenced = std::collections::HashSet::new();
        for r in put {
            if self
                .fence_to(&r.volume, &r.node_ids(), "clear stale")
                .await
                .is_err()
            {
                unfenced.insert(r.volume.clone());
            }
        }
        for v in remove {
            if self.fence_to(v, &[], "clear stale").await.is_err() {
                unfenced.insert(v.clone());
            }
        }
        unfenced
    }

    /// The earliest deadline of an open migration window.
    pub fn next_migration_deadline(&self) -> Option<Timestamp> {
        self.read()
            .values()
            .filter_map(|r| r.migration.as_ref().filter(|m| !m.timed_out))
            .map(Migration::deadline)
            .min()
    }

    /// Resolves when a migration window opens or the table is installed.
    pub async fn migration_changed(&self) {
        self.migration_wake.notified().await;
    }

    /// Marks expired migration windows timed out (durably), then posts
    /// MigrationFailed for each. Both nodes stay attached (see
    /// [`fencing::expire_migration`]). Returns how many expired.
    pub async fn expire_migrations(&self, now: Timestamp) -> Result<usize, Error> {
        let due: Vec<VolumeId> = self
            .read()
            .values()
            .filter(|r| fencing::expire_migration(r, now).is_some())
            .map(|r| r.volume.clone())
            .collect();
        let mut n = 0;
        for v in due {
            let _guard = self.locks.lock(&v).await;
            let Some(cur) = self.record(&v) else { continue };
            let Some(next) = fencing::expire_migration(&cur, now) else {
                continue;
            };
            self.commit(vec![next.clone()], vec![]).await?;
            let started = next.migration.as_ref().map_or(now, |m| m.started_at);
            let elapsed = to_std(now.duration_since(started));
            self.metrics.migration_finished("timeout", elapsed);
            let (source, target) = (&next.nodes[0].node, &next.nodes[1].node);
            // A trace of its own for the watchdog's decision and its event.
            tracing::warn_span!("attachment.migration_timeout", volume_id = %v).in_scope(|| {
                tracing::warn!(%source, %target, "live migration timed out; both nodes stay attached");
                self.events.post(
                    &v,
                    Some(target),
                    next.pvc.as_ref(),
                    events::migration_failed(source, target, "timeout", elapsed),
                );
            });
            n += 1;
        }
        Ok(n)
    }

    /// Kubernetes mode: a VolumeAttachment says `node` holds `volume` (e.g. a
    /// replica that served the Attach). Adds it without events; never refuses
    /// — the API is the source of truth and dropping an attachment a node may
    /// be using is the one thing fencing must not do.
    pub async fn adopt(
        &self,
        volume: &VolumeId,
        node: &NodeId,
        meta: Adopted,
    ) -> Result<(), Error> {
        let _guard = self.locks.lock(volume).await;
        let mut rec = match self.record(volume) {
            Some(r) if r.holds(node) => return Ok(()),
            Some(r) => r,
            None => Record {
                volume: volume.clone(),
                nodes: Vec::new(),
                access_mode: meta.access_mode,
                block: meta.block,
                pvc: meta.pvc.clone(),
                migration_timeout_secs: meta.migration_timeout_secs,
                migration: None,
                inferred: true,
            },
        };
        rec.nodes.push(NodeAttachment {
            node: node.clone(),
            attached_at: meta.attached_at,
            readonly: false,
        });
        if rec.nodes.len() == 2 && rec.access_mode.is_multi_node() {
            rec.migration = Some(Migration {
                started_at: meta.attached_at,
                timeout_secs: meta.migration_timeout_secs,
                timed_out: false,
            });
            self.metrics.migration_started();
            self.migration_wake.notify_one();
        } else if rec.nodes.len() > 1 {
            tracing::warn!(volume_id = %volume, nodes = ?rec.node_ids(),
                "VolumeAttachments show more nodes than the access mode allows; keeping all");
        }
        tracing::info!(volume_id = %volume, node_id = %node, "adopted attachment from VolumeAttachment");
        self.commit(vec![rec], vec![]).await
    }

    /// Kubernetes mode: a VolumeAttachment finished detaching (served by
    /// another replica, which posted the event). Removes it silently — unless
    /// the entry was (re)attached at or after `seen_gone`, i.e. it belongs to
    /// a newer VolumeAttachment. Returns whether it removed anything.
    pub async fn forget(
        &self,
        volume: &VolumeId,
        node: &NodeId,
        seen_gone: Timestamp,
    ) -> Result<bool, Error> {
        let _guard = self.locks.lock(volume).await;
        let Some(mut rec) = self.record(volume) else {
            return Ok(false);
        };
        let Some(pos) = rec
            .nodes
            .iter()
            .position(|n| &n.node == node && n.attached_at < seen_gone)
        else {
            return Ok(false);
        };
        rec.nodes.remove(pos);
        if rec.migration.take().is_some_and(|m| !m.timed_out) {
            self.metrics.migration_closed();
        }
        tracing::info!(volume_id = %volume, node_id = %node, "VolumeAttachment detached elsewhere; forgetting");
        if rec.nodes.is_empty() {
            self.commit(vec![], vec![volume.clone()]).await?;
        } else {
            self.commit(vec![rec], vec![]).await?;
        }
        Ok(true)
    }
}
