//! Reading our state out of Kubernetes objects (pure functions).
//!
//! Where the record's fields come from in Kubernetes mode — no annotations,
//! nothing written by us:
//! - who holds a volume: VolumeAttachments with `spec.attacher` = our driver
//!   (node = `spec.nodeName`, attached-at = creation time);
//! - the volume id, access mode, volume mode, PVC and migration window: the
//!   PV named by `spec.source.persistentVolumeName` — `spec.csi.volumeHandle`,
//!   `spec.accessModes`, `spec.volumeMode`, the `csi.storage.k8s.io/pvc/*`
//!   volume attributes (else `spec.claimRef`) and the
//!   `migrationTimeoutSeconds` attribute. So RBAC stays read-only: get PVs,
//!   list/watch VolumeAttachments and Nodes, plus the Lease.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::VolumeAttachment;
use rds_bus::{NodeId, VolumeId};

use crate::model::{AccessMode, Migration, NodeAttachment, PvcRef, Record};

pub const PVC_NAME_KEY: &str = "csi.storage.k8s.io/pvc/name";
pub const PVC_NAMESPACE_KEY: &str = "csi.storage.k8s.io/pvc/namespace";
pub const MIGRATION_TIMEOUT_KEY: &str = "migrationTimeoutSeconds";

/// What a PV of ours tells us.
#[derive(Clone, Debug, PartialEq)]
pub struct PvInfo {
    pub volume: VolumeId,
    pub access_mode: AccessMode,
    pub block: bool,
    pub pvc: Option<PvcRef>,
    pub migration_timeout_secs: Option<u32>,
}

impl PvInfo {
    /// A PV that no longer exists: dynamically provisioned PVs are named
    /// after the volume (CreateVolume name = PV name), and the most
    /// restrictive mode is assumed.
    pub fn fallback(pv_name: &str) -> Option<PvInfo> {
        Some(PvInfo {
            volume: VolumeId::parse(pv_name).ok()?,
            access_mode: AccessMode::SingleNodeWriter,
            block: false,
            pvc: None,
            migration_timeout_secs: None,
        })
    }
}

pub fn pv_info(pv: &PersistentVolume, driver: &str) -> Option<PvInfo> {
    let spec = pv.spec.as_ref()?;
    let csi = spec.csi.as_ref()?;
    if csi.driver != driver {
        return None;
    }
    let volume = VolumeId::parse(&csi.volume_handle).ok()?;
    let block = spec.volume_mode.as_deref() == Some("Block");
    let modes = spec.access_modes.clone().unwrap_or_default();
    let has = |m: &str| modes.iter().any(|x| x == m);
    let access_mode = if block && has("ReadWriteMany") {
        AccessMode::MultiNodeMultiWriter
    } else if block && has("ReadOnlyMany") {
        AccessMode::MultiNodeReaderOnly
    } else if has("ReadWriteOncePod") {
        AccessMode::SingleNodeSingleWriter
    } else if has("ReadOnlyMany") {
        AccessMode::SingleNodeReaderOnly
    } else {
        AccessMode::SingleNodeWriter
    };
    let attrs = csi.volume_attributes.clone().unwrap_or_default();
    let from_attrs = PvcRef::new(
        attrs.get(PVC_NAMESPACE_KEY).map_or("", String::as_str),
        attrs.get(PVC_NAME_KEY).map_or("", String::as_str),
    );
    let from_claim = spec.claim_ref.as_ref().and_then(|c| {
        PvcRef::new(
            c.namespace.as_deref().unwrap_or(""),
            c.name.as_deref().unwrap_or(""),
        )
    });
    Some(PvInfo {
        volume,
        access_mode,
        block,
        pvc: from_attrs.or(from_claim),
        migration_timeout_secs: attrs
            .get(MIGRATION_TIMEOUT_KEY)
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|s| *s > 0),
    })
}

/// One VolumeAttachment of ours.
#[derive(Clone, Debug, PartialEq)]
pub struct VaInfo {
    pub name: String,
    pub pv: String,
    pub node: NodeId,
    pub attached: bool,
    pub deleting: bool,
    pub attach_error: bool,
    pub created: Timestamp,
}

impl VaInfo {
    /// Holds the volume: attached, or being attached (not deleting, not
    /// refused). A refused VA carries an attachError; a detaching one a
    /// deletionTimestamp and, once detached, attached=false.
    pub fn holds(&self) -> bool {
        self.attached || (!self.deleting && !self.attach_error)
    }
}

pub fn va_info(va: &VolumeAttachment, driver: &str) -> Option<VaInfo> {
    if va.spec.attacher != driver {
        return None;
    }
    let pv = va.spec.source.persistent_volume_name.clone()?;
    if pv.is_empty() {
        return None;
    }
    let status = va.status.as_ref();
    Some(VaInfo {
        name: va.metadata.name.clone()?,
        pv,
        node: NodeId::parse(&va.spec.node_name).ok()?,
        attached: status.is_some_and(|s| s.attached),
        deleting: va.metadata.deletion_timestamp.is_some(),
        attach_error: status.is_some_and(|s| s.attach_error.is_some()),
        created: va
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or_else(Timestamp::now, |t| t.0),
    })
}

/// The table as VolumeAttachments describe it. Per volume: every attached VA
/// (never drop an attachment a node may be using), else the oldest
/// being-attached one(s) — up to the mode's node limit. Nodes oldest first
/// (the migration source); two nodes of a multi-node volume form a
/// migration window that opened when the second VA was created.
pub fn rebuild(vas: &[(VaInfo, PvInfo)], default_migration_timeout_secs: u32) -> Vec<Record> {
    let mut by_volume: BTreeMap<VolumeId, Vec<&(VaInfo, PvInfo)>> = BTreeMap::new();
    for entry in vas.iter().filter(|(va, _)| va.holds()) {
        by_volume
            .entry(entry.1.volume.clone())
            .or_default()
            .push(entry);
    }
    let mut out = Vec::new();
    for (volume, mut entries) in by_volume {
        entries.sort_by_key(|(va, _)| (!va.attached, va.created));
        let pv = &entries[0].1;
        let limit = if pv.access_mode.is_multi_node() { 2 } else { 1 };
        let attached = entries.iter().filter(|(va, _)| va.attached).count();
        let keep = attached.max(limit.min(entries.len()));
        if attached > limit {
            tracing::warn!(volume_id = %volume, attached,
                "more attached VolumeAttachments than the access mode allows; keeping all");
        }
        let mut chosen: Vec<&VaInfo> = entries.iter().take(keep).map(|(va, _)| va).collect();
        chosen.sort_by_key(|va| va.created);
        chosen.dedup_by(|a, b| a.node == b.node);
        let timeout = pv
            .migration_timeout_secs
            .unwrap_or(default_migration_timeout_secs);
        let migration = (chosen.len() >= 2 && pv.access_mode.is_multi_node()).then(|| Migration {
            started_at: chosen[1].created,
            timeout_secs: timeout,
            timed_out: false,
        });
        out.push(Record {
            volume,
            nodes: chosen
                .iter()
                .map(|va| NodeAttachment {
                    node: va.node.clone(),
                    attached_at: va.created,
                    readonly: false,
                })
                .collect(),
            access_mode: pv.access_mode,
            block: pv.block,
            pvc: pv.pvc.clone(),
            migration_timeout_secs: timeout,
            migration,
            inferred: true,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn va(name: &str, node: &str, attached: bool, created: i64) -> VaInfo {
        VaInfo {
            name: name.into(),
            pv: "pvc-1".into(),
            node: NodeId::parse(node).unwrap(),
            attached,
            deleting: false,
            attach_error: false,
            created: Timestamp::from_second(1_700_000_000 + created).unwrap(),
        }
    }
    fn pv(mode: AccessMode, block: bool) -> PvInfo {
        PvInfo {
            volume: VolumeId::parse("pvc-1").unwrap(),
            access_mode: mode,
            block,
            pvc: PvcRef::new("ns", "c"),
            migration_timeout_secs: Some(60),
        }
    }

    #[test]
    fn attached_beats_being_attached_and_refused_ones_are_ignored() {
        let mut refused = va("c", "n3", false, 0);
        refused.attach_error = true;
        let rwo = pv(AccessMode::SingleNodeWriter, false);
        let recs = rebuild(
            &[
                (va("a", "n1", false, 1), rwo.clone()),
                (va("b", "n2", true, 5), rwo.clone()),
                (refused, rwo),
            ],
            300,
        );
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].node_ids(), vec![NodeId::parse("n2").unwrap()]);
        assert_eq!(recs[0].pvc, PvcRef::new("ns", "c"));
    }

    #[test]
    fn two_rwx_block_vas_are_a_migration_from_the_older() {
        let rwx = pv(AccessMode::MultiNodeMultiWriter, true);
        let recs = rebuild(
            &[
                (va("b", "dst", true, 50), rwx.clone()),
                (va("a", "src", true, 10), rwx),
            ],
            300,
        );
        let m = recs[0].migration.as_ref().unwrap();
        assert_eq!(recs[0].nodes[0].node.as_str(), "src");
        assert_eq!(m.started_at, Timestamp::from_second(1_700_000_050).unwrap());
        assert_eq!(m.timeout_secs, 60);
    }

    #[test]
    fn a_detached_va_being_deleted_holds_nothing() {
        let mut v = va("a", "n1", false, 0);
        v.deleting = true;
        assert!(rebuild(&[(v, pv(AccessMode::SingleNodeWriter, false))], 300).is_empty());
    }
}
