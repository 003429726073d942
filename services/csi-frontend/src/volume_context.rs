//! volume_context (PV `volumeAttributes`), written through the one typed
//! contract, [`rds_bus::VolumeContext`], that the node reads: the Go driver's
//! nine keys with the same meanings, the PVC name and namespace when the
//! provisioner passed them, and — not in the Go driver — `contentSource` for
//! a restore or clone and `formatBlankRestore` when the StorageClass allows
//! formatting a restore that reads blank, and `volumeLayout` for a volume in
//! a Btrfs subvolume (absent = flat). PVs created by the Go driver stage
//! unchanged. Also the reading side used by ControllerPublish, and the
//! context ListVolumes can show (the ownership tag the agent read).

use std::collections::HashMap;

use rds_bus::volume_context::{VolumeContext, VolumeLayout, key};
use rds_bus::{ContentSource, Nqn, SnapshotId, VolumeId};
use rds_proto::agent::Volume;

use crate::params::{PvcRef, VolumeParams};

pub const NQN: &str = key::NQN;
/// The FULL backing-file path (not the directory), as the Go driver:
/// `<base>/<id>.img` for a flat volume, `<base>/<id>/volume.img` for a
/// subvolume one.
pub const VOLUME_PATH: &str = key::VOLUME_PATH;
/// ListVolumes only (never in a PV): the cluster id of the disk's ownership tag.
pub const OWNER_CLUSTER: &str = "rds.csi.srvlab.io/cluster";
/// ListVolumes only: the PV name of the disk's ownership tag.
pub const OWNER_PV: &str = "csi.storage.k8s.io/pv/name";

/// The layout the agent reports for `vol`, else the requested one.
pub fn layout_of(vol: &Volume, requested: VolumeLayout) -> VolumeLayout {
    VolumeLayout::from_proto(vol.layout).unwrap_or(requested)
}

/// Where the agent puts a volume's file when it does not say.
fn default_file_path(base: &str, id: &VolumeId, layout: VolumeLayout) -> String {
    match layout {
        VolumeLayout::Flat => format!("{base}/{}", id.file_name()),
        VolumeLayout::Subvolume => format!("{base}/{id}/volume.img"),
    }
}

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
    let layout = layout_of(vol, p.layout);
    let path = if vol.file_path.is_empty() {
        default_file_path(&p.base_path, id, layout)
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
        layout,
        warnings: Vec::new(),
    }
    .to_map()
}

/// What ListVolumes / ControllerGetVolume can tell about a listed volume
/// without the PV: its file, its layout when not flat, and the owner the
/// disk's tag names (PVC, PV, cluster), each only when known.
pub fn listed(vol: &Volume) -> HashMap<String, String> {
    let mut m = HashMap::new();
    if !vol.file_path.is_empty() {
        m.insert(VOLUME_PATH.to_owned(), vol.file_path.clone());
    }
    if let Some(VolumeLayout::Subvolume) = VolumeLayout::from_proto(vol.layout) {
        m.insert(
            key::VOLUME_LAYOUT.to_owned(),
            VolumeLayout::Subvolume.to_string(),
        );
    }
    if let Some(o) = &vol.owner {
        if let Some(pvc) = o.pvc.as_ref().and_then(PvcRef::from_proto) {
            m.insert(key::PVC_NAMESPACE.to_owned(), pvc.namespace);
            m.insert(key::PVC_NAME.to_owned(), pvc.name);
        }
        for (k, v) in [(OWNER_PV, &o.pv_name), (OWNER_CLUSTER, &o.cluster_id)] {
            if !v.is_empty() {
                m.insert(k.to_owned(), v.clone());
            }
        }
    }
    m
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
    fn subvolume_layout_is_recorded_and_read_back_by_the_node() {
        let cfg = Config::for_tests("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", &[]).unwrap();
        let params: HashMap<String, String> =
            [("volumeLayout".to_owned(), "subvolume".to_owned())].into();
        let p = params::volume_params(&params, &cfg).unwrap();
        let id = VolumeId::parse("pvc-sub").unwrap();
        let vol = Volume {
            volume_id: "pvc-sub".into(),
            file_path: "/storage-pool/metal-csi/pvc-sub/volume.img".into(),
            layout: rds_proto::agent::VolumeLayout::Subvolume as i32,
            ..Default::default()
        };
        let ctx = build(&p, &id, &vol);
        assert_eq!(ctx["volumeLayout"], "subvolume");
        assert_eq!(
            ctx["volumePath"], "/storage-pool/metal-csi/pvc-sub/volume.img",
            "volumePath is the file inside the subvolume"
        );
        let node = VolumeContext::parse(&ctx).unwrap();
        assert_eq!(node.layout, VolumeLayout::Subvolume);
        // The agent did not report a path: the contract's file name.
        let bare = Volume {
            file_path: String::new(),
            layout: 0,
            ..vol.clone()
        };
        let ctx = build(&p, &id, &bare);
        assert_eq!(
            ctx["volumePath"],
            "/storage-pool/metal-csi/pvc-sub/volume.img"
        );
        assert_eq!(ctx["volumeLayout"], "subvolume", "the requested layout");
        // The agent's answer wins (an existing flat volume stays flat).
        let flat = Volume {
            layout: rds_proto::agent::VolumeLayout::Flat as i32,
            file_path: "/storage-pool/metal-csi/pvc-sub.img".into(),
            ..vol
        };
        let ctx = build(&p, &id, &flat);
        assert!(!ctx.contains_key("volumeLayout"), "{ctx:?}");
        assert_eq!(
            ctx.len(),
            9,
            "a flat volume keeps the Go driver's nine keys"
        );
    }

    #[test]
    fn listed_volumes_show_the_owner_tag_when_there_is_one() {
        let mut vol = Volume {
            volume_id: "pvc-1".into(),
            file_path: "/storage-pool/metal-csi/pvc-1.img".into(),
            ..Default::default()
        };
        let m = listed(&vol);
        assert_eq!(
            m.len(),
            1,
            "an untagged Go-driver disk: just its file {m:?}"
        );
        vol.owner = Some(rds_proto::agent::VolumeOwner {
            cluster_id: "home".into(),
            pv_name: "pvc-1".into(),
            pvc: Some(PvcRef::new("apps", "data").unwrap().to_proto()),
        });
        vol.layout = rds_proto::agent::VolumeLayout::Subvolume as i32;
        let m = listed(&vol);
        assert_eq!(m[OWNER_CLUSTER], "home");
        assert_eq!(m[OWNER_PV], "pvc-1");
        assert_eq!(m[PVC_NAMESPACE], "apps");
        assert_eq!(m[PVC_NAME], "data");
        assert_eq!(m["volumeLayout"], "subvolume");
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
