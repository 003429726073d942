//! volume_context (PV `volumeAttributes`): the Go driver's nine keys with the
//! same meanings (reference/anchor-go-driver.md §3.4) plus the PVC name and
//! namespace when the provisioner passed them. The node role reads only
//! these, so PVs created by the Go driver stage unchanged. Also the reading
//! side used by ControllerPublish.

use std::collections::HashMap;

use rds_bus::VolumeId;
use rds_proto::agent::Volume;

use crate::params::{
    self, CTRL_LOSS_TMO, KEEP_ALIVE_TMO, MIGRATION_TIMEOUT, NVME_ADDRESS, NVME_PORT, PVC_NAME,
    PVC_NAMESPACE, PvcRef, RDS_ADDRESS, RECONNECT_DELAY, VolumeParams,
};
use crate::validate;

pub const NQN: &str = "nqn";
/// The FULL backing-file path (not the directory), as the Go driver.
pub const VOLUME_PATH: &str = "volumePath";

/// The context returned by CreateVolume for `vol` (as the RDS reports it).
pub fn build(p: &VolumeParams, id: &VolumeId, vol: &Volume) -> HashMap<String, String> {
    let port = if vol.nvme_port > 0 {
        vol.nvme_port.to_string()
    } else {
        p.nvme_port.to_string()
    };
    let nqn = if vol.nqn.is_empty() {
        id.nqn().to_string()
    } else {
        vol.nqn.clone()
    };
    let path = if vol.file_path.is_empty() {
        format!("{}/{}", p.base_path, id.file_name())
    } else {
        vol.file_path.clone()
    };
    let mut ctx = HashMap::from([
        (RDS_ADDRESS.to_owned(), p.rds_address.clone()),
        (NVME_ADDRESS.to_owned(), p.nvme_address.clone()),
        (NVME_PORT.to_owned(), port),
        (NQN.to_owned(), nqn),
        (VOLUME_PATH.to_owned(), path),
        (CTRL_LOSS_TMO.to_owned(), p.ctrl_loss_tmo.to_string()),
        (RECONNECT_DELAY.to_owned(), p.reconnect_delay.to_string()),
        (KEEP_ALIVE_TMO.to_owned(), p.keep_alive_tmo.to_string()),
        (
            MIGRATION_TIMEOUT.to_owned(),
            p.migration_timeout_seconds.to_string(),
        ),
    ]);
    if let Some(pvc) = &p.pvc {
        ctx.insert(PVC_NAMESPACE.to_owned(), pvc.namespace.clone());
        ctx.insert(PVC_NAME.to_owned(), pvc.name.clone());
    }
    ctx
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
    let mut info = PublishInfo::default();
    match (ctx.get(PVC_NAMESPACE), ctx.get(PVC_NAME)) {
        (Some(ns), Some(name))
            if validate::k8s_namespace(ns).is_ok() && validate::k8s_name(name).is_ok() =>
        {
            info.pvc = Some(PvcRef {
                namespace: ns.clone(),
                name: name.clone(),
            });
        }
        (None, None) => {}
        _ => info
            .warnings
            .push("ignoring an incomplete or invalid PVC reference in volume_context".into()),
    }
    if let Some(v) = ctx.get(MIGRATION_TIMEOUT) {
        let (lo, hi) = params::MIGRATION_TIMEOUT_RANGE;
        match v.trim().parse::<i64>() {
            Ok(n) if n > 0 => {
                info.migration_timeout_seconds =
                    u32::try_from(n.clamp(lo.into(), hi.into())).unwrap_or(hi);
            }
            _ => info.warnings.push(format!(
                "ignoring {MIGRATION_TIMEOUT}={:?}; using the default",
                validate::truncate(v)
            )),
        }
    }
    info
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Config;

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
