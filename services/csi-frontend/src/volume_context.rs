//! volume_context (PV `volumeAttributes`), written through the one typed
//! contract, [`rds_bus::VolumeContext`], that the node reads: the Go driver's
//! nine keys with the same meanings, the PVC name and namespace when the
//! provisioner passed them, and — not in the Go driver — `contentSource` for
//! a restore or clone and `formatBlankRestore` when the StorageClass allows
//! formatting a restore that reads blank. PVs created by the Go driver stage
//! unchanged. Also the reading side used by ControllerPublish.

use std::collections::HashMap;

use rds_bus::volume_context::{VolumeContext, key};
use rds_bus::{ContentSource, Nqn, SnapshotId, VolumeId};
use rds_proto::agent::Volume;

use crate::params::{PvcRef, VolumeParams};

pub const NQN: &str = key::NQN;
/// The FULL backing-file path (not the directory), as the Go driver.
pub const VOLUME_PATH: &str = key::VOLUME_PATH;

/// The content source the agent reports for `vol` (set for volumes made
/// from a snapshot or a volume in this request).
fn content_source(vol: &Volume) -> Option<ContentSource> {
    if let Ok(s) = SnapshotId::parse(&vol.source_snapshot_id) {
        return Some(ContentSource::Snapshot(s));
    }
    VolumeId::parse(&vol.source_volume_id)
        .ok()
        .map(ContentSource::Volume)
}

/// The context returned by CreateVolume for `vol` (as the RDS reports it).
pub fn build(p: &VolumeParams, id: &VolumeId, vol: &Volume) -> HashMap<String, String> {
    let port = u16::try_from(vol.nvme_port)
        .ok()
        .filter(|p| *p > 0)
        .unwrap_or(p.nvme_port);
    let nqn = Nqn::parse(&vol.nqn).unwrap_or_else(|_| id.nqn());
    let path = if vol.file_path.is_empty() {
        format!("{}/{}", p.base_path, id.file_name())
    } else {
        vol.file_path.clone()
    };
    VolumeContext {
        rds_address: p.rds_address.clone(),
        nvme_address: p.nvme_address.clone(),
        nvme_port: Some(port),
        nqn: Some(nqn),
        volume_path: Some(path),
        ctrl_loss_tmo: p.ctrl_loss_tmo,
        reconnect_delay: p.reconnect_delay,
        keep_alive_tmo: p.keep_alive_tmo,
        migration_timeout_seconds: Some(p.migration_timeout_seconds),
        pvc: p.pvc.clone(),
        content_source: content_source(vol),
        format_blank_restore: p.format_blank_restore,
        warnings: Vec::new(),
    }
    .to_map()
}

/// What ControllerPublish needs from a PV's volume_context. The context was
/// written by us or by the Go driver; a value that does not check out is
/// dropped with a warning (it only feeds events and the migration window).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishInfo {
    pub pvc: Option<PvcRef>,
    /// 0 = attachment-service default.
    pub migration_timeout_seconds: u32,
    pub warnings: Vec<String>,
}

pub fn publish_info(ctx: &HashMap<String, String>) -> PublishInfo {
    // Only the advisory keys: a malformed connection key is the node's
    // business, never a reason to refuse an attach.
    let advisory: HashMap<String, String> = ctx
        .iter()
        .filter(|(k, _)| {
            [key::PVC_NAME, key::PVC_NAMESPACE, key::MIGRATION_TIMEOUT].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match VolumeContext::parse(&advisory) {
        Ok(c) => PublishInfo {
            pvc: c.pvc,
            migration_timeout_seconds: c.migration_timeout_seconds.unwrap_or(0),
            warnings: c.warnings,
        },
        Err(e) => PublishInfo {
            warnings: vec![e.to_string()],
            ..PublishInfo::default()
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Config;
    use crate::params::{self, MIGRATION_TIMEOUT, PVC_NAME, PVC_NAMESPACE};

    #[test]
    fn nine_go_keys_plus_pvc() {
        let cfg = Config::for_tests("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", &[]).unwrap();
        let mut params = HashMap::new();
        let p = params::volume_params(&params, &cfg).unwrap();
        let id = VolumeId::parse("pvc-ABC").unwrap();
        let vol = Volume {
            volume_id: "pvc-ABC".into(),
            size_bytes: 1 << 30,
            file_path: "/storage-pool/metal-csi/pvc-ABC.img".into(),
            nvme_export: true,
            nvme_port: 4420,
            nqn: String::new(),
            ..Default::default()
        };
        let ctx = build(&p, &id, &vol);
        let mut keys: Vec<_> = ctx.keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "ctrlLossTmo",
                "keepAliveTmo",
                "migrationTimeoutSeconds",
                "nqn",
                "nvmeAddress",
                "nvmePort",
                "rdsAddress",
                "reconnectDelay",
                "volumePath"
            ]
        );
        assert_eq!(ctx["nqn"], "nqn.2000-02.com.mikrotik:pvc-abc");
        assert_eq!(ctx["volumePath"], "/storage-pool/metal-csi/pvc-ABC.img");
        assert_eq!(ctx["ctrlLossTmo"], "-1");
        assert_eq!(ctx["migrationTimeoutSeconds"], "300");

        params.insert(PVC_NAME.to_owned(), "data".to_owned());
        params.insert(PVC_NAMESPACE.to_owned(), "ns".to_owned());
        let p = params::volume_params(&params, &cfg).unwrap();
        let ctx = build(&p, &id, &vol);
        assert_eq!(ctx.len(), 11);
        let info = publish_info(&ctx);
        assert_eq!(
            info.pvc,
            Some(PvcRef {
                namespace: "ns".into(),
                name: "data".into()
            })
        );
        assert_eq!(info.migration_timeout_seconds, 300);
        assert!(info.warnings.is_empty());

        // A restore records its source; the node reads it back.
        let restored = Volume {
            source_snapshot_id: "snap-1".into(),
            ..vol.clone()
        };
        let ctx = build(&p, &id, &restored);
        assert_eq!(ctx["contentSource"], "snapshot:snap-1");
        let node = VolumeContext::parse(&ctx).unwrap();
        assert!(matches!(
            node.content_source,
            Some(ContentSource::Snapshot(_))
        ));
        assert!(!node.format_blank_restore);
        params.insert("formatBlankRestore".to_owned(), "true".to_owned());
        let p = params::volume_params(&params, &cfg).unwrap();
        let ctx = build(&p, &id, &restored);
        assert_eq!(ctx["formatBlankRestore"], "true");
    }

    #[test]
    fn bad_publish_context_values_are_dropped_not_fatal() {
        let ctx: HashMap<String, String> = [
            (PVC_NAME.to_owned(), "Bad Name".to_owned()),
            (PVC_NAMESPACE.to_owned(), "ns".to_owned()),
            (MIGRATION_TIMEOUT.to_owned(), "x".to_owned()),
        ]
        .into();
        let info = publish_info(&ctx);
        assert_eq!(info.pvc, None);
        assert_eq!(info.migration_timeout_seconds, 0);
        assert_eq!(info.warnings.len(), 2);
        let ctx: HashMap<String, String> =
            [(MIGRATION_TIMEOUT.to_owned(), "99999".to_owned())].into();
        assert_eq!(publish_info(&ctx).migration_timeout_seconds, 3600);
    }
}
