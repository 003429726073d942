//! StorageClass / VolumeSnapshotClass parameters (docs/csi.md §3): the Go
//! driver's keys, the ones it documents
//! but ignores (accepted with a warning so old StorageClasses keep working),
//! and every `csi.storage.k8s.io/*` key. Anything else is INVALID_ARGUMENT
//! naming the key; every value is checked, a bad one is INVALID_ARGUMENT
//! naming the key and the value. `volumeLayout` (not in the Go driver)
//! chooses flat or Btrfs-subvolume volumes (docs/btrfs.md).

use std::collections::HashMap;

pub use rds_bus::PvcRef;
pub use rds_bus::volume_context::VolumeLayout;
use rds_bus::volume_context::{self as vc, key};

use crate::config::Config;
use crate::error::FrontendError;
use crate::validate;

// StorageClass keys that share their name with the volume_context key they
// feed (one definition: rds_bus::volume_context).
pub const VOLUME_PATH: &str = key::VOLUME_PATH;
pub const NVME_PORT: &str = key::NVME_PORT;
pub const NVME_ADDRESS: &str = key::NVME_ADDRESS;
pub const RDS_ADDRESS: &str = key::RDS_ADDRESS;
pub const CTRL_LOSS_TMO: &str = key::CTRL_LOSS_TMO;
pub const RECONNECT_DELAY: &str = key::RECONNECT_DELAY;
pub const KEEP_ALIVE_TMO: &str = key::KEEP_ALIVE_TMO;
pub const MIGRATION_TIMEOUT: &str = key::MIGRATION_TIMEOUT;
/// Not in the Go driver: `"true"` lets the node format a restored or cloned
/// volume that reads blank (off by default: such a volume is refused).
pub const FORMAT_BLANK_RESTORE: &str = key::FORMAT_BLANK_RESTORE;
/// Not in the Go driver: `flat` (default) or `subvolume` (Btrfs pools only).
pub const VOLUME_LAYOUT: &str = key::VOLUME_LAYOUT;

/// Documented by the Go driver but never read by it.
pub const IGNORED_KEYS: [&str; 5] = ["sshPort", "nqnPrefix", "fsType", "rdsPort", "rdsBasePath"];

pub const K8S_PREFIX: &str = "csi.storage.k8s.io/";
pub const PVC_NAME: &str = key::PVC_NAME;
pub const PVC_NAMESPACE: &str = key::PVC_NAMESPACE;
pub const PV_NAME: &str = "csi.storage.k8s.io/pv/name";
const K8S_FSTYPE: &str = "csi.storage.k8s.io/fstype";

pub use vc::{
    DEFAULT_CTRL_LOSS_TMO, DEFAULT_KEEP_ALIVE_TMO, DEFAULT_MIGRATION_TIMEOUT,
    DEFAULT_RECONNECT_DELAY, MIGRATION_TIMEOUT_RANGE,
};

/// Checked CreateVolume parameters with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeParams {
    pub base_path: String,
    pub nvme_port: u16,
    pub nvme_address: String,
    pub rds_address: String,
    pub ctrl_loss_tmo: i32,
    pub reconnect_delay: u32,
    pub keep_alive_tmo: u32,
    pub migration_timeout_seconds: u32,
    pub pvc: Option<PvcRef>,
    /// The PV the provisioner will create (`--extra-create-metadata`).
    pub pv_name: Option<String>,
    pub format_blank_restore: bool,
    pub layout: VolumeLayout,
    /// Accepted-but-ignored keys and clamped values, for a warning log line.
    pub warnings: Vec<String>,
}

fn bad(key: &str, why: impl std::fmt::Display) -> FrontendError {
    FrontendError::InvalidArgument(format!("parameter {key:?}: {why}"))
}

fn int_in(key: &str, v: &str, min: i64, max: i64) -> Result<i64, FrontendError> {
    match v.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad(
            key,
            format!(
                "{:?} is not an integer in [{min}, {max}]",
                validate::truncate(v)
            ),
        )),
    }
}

/// Checks a `csi.storage.k8s.io/*` value we understand; others pass as-is
/// (they are Kubernetes metadata we never use).
fn k8s_key(key: &str, v: &str) -> Result<(), FrontendError> {
    match key {
        PVC_NAME | PV_NAME => validate::k8s_name(v).map_err(|e| bad(key, e)),
        PVC_NAMESPACE => validate::k8s_namespace(v).map_err(|e| bad(key, e)),
        K8S_FSTYPE => validate::fs_type(v).map_err(|e| bad(key, e)),
        _ => Ok(()),
    }
}

fn sorted(map: &HashMap<String, String>) -> Vec<(&String, &String)> {
    let mut v: Vec<_> = map.iter().collect();
    v.sort();
    v
}

/// CreateVolume (and GetCapacity / ValidateVolumeCapabilities) parameters.
pub fn volume_params(
    map: &HashMap<String, String>,
    cfg: &Config,
) -> Result<VolumeParams, FrontendError> {
    let mut p = defaults(cfg);
    // The node reads the timers in these ranges (rds_bus::volume_context):
    // nothing creatable may be unstageable.
    let timer = |key: &str, v: &str, min: i64| -> Result<u32, FrontendError> {
        let n = int_in(key, v, min, vc::MAX_TIMER_SECONDS.into())?;
        Ok(u32::try_from(n).unwrap_or(vc::MAX_TIMER_SECONDS))
    };
    let mut nvme_address = None;
    for (key, v) in sorted(map) {
        let key = key.as_str();
        match key {
            VOLUME_PATH => {
                validate::storage_path(v, &cfg.pool_root).map_err(|e| bad(key, e))?;
                p.base_path = v.clone();
            }
            NVME_PORT => p.nvme_port = validate::port(v).map_err(|e| bad(key, e))?,
            NVME_ADDRESS => {
                validate::address(v).map_err(|e| bad(key, e))?;
                nvme_address = Some(v.clone());
            }
            RDS_ADDRESS => {
                validate::address(v).map_err(|e| bad(key, e))?;
                p.rds_address = v.clone();
            }
            CTRL_LOSS_TMO => {
                let n = int_in(key, v, -1, i32::MAX.into())?;
                p.ctrl_loss_tmo = i32::try_from(n).unwrap_or(i32::MAX);
            }
            RECONNECT_DELAY => p.reconnect_delay = timer(key, v, 1)?,
            KEEP_ALIVE_TMO => p.keep_alive_tmo = timer(key, v, 0)?,
            VOLUME_LAYOUT => p.layout = layout(v)?,
            FORMAT_BLANK_RESTORE => p.format_blank_restore = boolean(key, v)?,
            MIGRATION_TIMEOUT => {
                p.migration_timeout_seconds = migration_timeout(key, v, &mut p.warnings)?;
            }
            "sshPort" | "rdsPort" | "fsType" | "rdsBasePath" | "nqnPrefix" => {
                p.warnings.push(ignored_key(key, v, cfg)?);
            }
            k if k.starts_with(K8S_PREFIX) => k8s_key(k, v)?,
            _ => return Err(unknown(key, "StorageClass")),
        }
    }
    // nvmeAddress falls back to rdsAddress, then to the controller's default.
    p.nvme_address = nvme_address.unwrap_or_else(|| {
        if map.contains_key(RDS_ADDRESS) || cfg.nvme_address.is_empty() {
            p.rds_address.clone()
        } else {
            cfg.nvme_address.clone()
        }
    });
    p.pvc = match (map.get(PVC_NAMESPACE), map.get(PVC_NAME)) {
        (Some(ns), Some(name)) => Some(PvcRef {
            namespace: ns.clone(),
            name: name.clone(),
        }),
        _ => None,
    };
    p.pv_name = map.get(PV_NAME).cloned();
    Ok(p)
}

/// The parameters a StorageClass without parameters gets.
fn defaults(cfg: &Config) -> VolumeParams {
    VolumeParams {
        base_path: cfg.base_path.clone(),
        nvme_port: cfg.nvme_port,
        nvme_address: String::new(),
        rds_address: cfg.rds_address.clone(),
        ctrl_loss_tmo: DEFAULT_CTRL_LOSS_TMO,
        reconnect_delay: DEFAULT_RECONNECT_DELAY,
        keep_alive_tmo: DEFAULT_KEEP_ALIVE_TMO,
        migration_timeout_seconds: DEFAULT_MIGRATION_TIMEOUT,
        pvc: None,
        pv_name: None,
        format_blank_restore: false,
        layout: VolumeLayout::Flat,
        warnings: Vec::new(),
    }
}

/// `true` or `false`, nothing else.
fn boolean(key: &str, v: &str) -> Result<bool, FrontendError> {
    match v.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(bad(
            key,
            format!("{:?} is not true or false", validate::truncate(other)),
        )),
    }
}

/// The migration timeout, clamped into its range with a warning.
fn migration_timeout(key: &str, v: &str, warnings: &mut Vec<String>) -> Result<u32, FrontendError> {
    let n = int_in(key, v, 1, i32::MAX.into())?;
    let (lo, hi) = MIGRATION_TIMEOUT_RANGE;
    let clamped = n.clamp(lo.into(), hi.into());
    if clamped != n {
        warnings.push(format!("{key}={n} clamped to {clamped} (range {lo}-{hi})"));
    }
    Ok(u32::try_from(clamped).unwrap_or(hi))
}

/// The Go driver's parameters that are checked but have no effect here;
/// returns the warning to hand back.
fn ignored_key(key: &str, v: &str, cfg: &Config) -> Result<String, FrontendError> {
    match key {
        "sshPort" | "rdsPort" => {
            validate::port(v).map_err(|e| bad(key, e))?;
            Ok(format!("{key} is accepted but ignored"))
        }
        "fsType" => {
            validate::fs_type(v).map_err(|e| bad(key, e))?;
            Ok(format!(
                "{key} is accepted but ignored (use csi.storage.k8s.io/fstype)"
            ))
        }
        "rdsBasePath" => {
            validate::storage_path(v, &cfg.pool_root).map_err(|e| bad(key, e))?;
            Ok(format!("{key} is accepted but ignored (use {VOLUME_PATH})"))
        }
        "nqnPrefix" => {
            nqn_prefix(v).map_err(|e| bad(key, e))?;
            Ok(format!("{key} is accepted but ignored"))
        }
        _ => Err(unknown(key, "StorageClass")),
    }
}

/// `flat` or `subvolume`; anything else names the allowed values.
fn layout(v: &str) -> Result<VolumeLayout, FrontendError> {
    VolumeLayout::parse(v.trim()).ok_or_else(|| {
        bad(
            VOLUME_LAYOUT,
            format!(
                "{:?} is not a layout (allowed: {})",
                validate::truncate(v),
                VolumeLayout::ALLOWED
            ),
        )
    })
}

/// VolumeSnapshotClass parameters: `volumePath` and `csi.storage.k8s.io/*`.
/// Returns the directory for the snapshot file.
pub fn snapshot_base_path(
    map: &HashMap<String, String>,
    cfg: &Config,
) -> Result<String, FrontendError> {
    let mut base = cfg.base_path.clone();
    for (key, v) in sorted(map) {
        match key.as_str() {
            VOLUME_PATH => {
                validate::storage_path(v, &cfg.pool_root).map_err(|e| bad(key, e))?;
                base = v.clone();
            }
            k if k.starts_with(K8S_PREFIX) => {}
            k => return Err(unknown(k, "VolumeSnapshotClass")),
        }
    }
    Ok(base)
}

fn unknown(key: &str, class: &str) -> FrontendError {
    FrontendError::InvalidArgument(format!(
        "unknown {class} parameter {:?} (accepted: {VOLUME_PATH}, {NVME_PORT}, {NVME_ADDRESS}, \
         {RDS_ADDRESS}, {CTRL_LOSS_TMO}, {RECONNECT_DELAY}, {KEEP_ALIVE_TMO}, {MIGRATION_TIMEOUT}, \
         {FORMAT_BLANK_RESTORE}, {VOLUME_LAYOUT}, {}, {K8S_PREFIX}*)",
        validate::truncate(key),
        IGNORED_KEYS.join(", ")
    ))
}

/// An NQN prefix such as `nqn.2000-02.com.mikrotik:pvc-`.
fn nqn_prefix(v: &str) -> Result<(), String> {
    let ok = v.starts_with("nqn.")
        && v.len() <= 223
        && v.contains(':')
        && v.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | ':' | '-' | '_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{:?} is not an NQN prefix", validate::truncate(v)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cfg() -> Config {
        Config::for_tests("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", &[]).unwrap()
    }

    fn map(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_go_driver() {
        let p = volume_params(&HashMap::new(), &cfg()).unwrap();
        assert_eq!(p.base_path, "/storage-pool/metal-csi");
        assert_eq!(p.nvme_port, 4420);
        assert_eq!(p.nvme_address, "127.0.0.1");
        assert_eq!(
            (p.ctrl_loss_tmo, p.reconnect_delay, p.keep_alive_tmo),
            (-1, 5, 0)
        );
        assert_eq!(p.migration_timeout_seconds, 300);
        assert!(p.pvc.is_none());
        assert_eq!(p.layout, VolumeLayout::Flat, "flat stays the default");
        assert!(
            !p.format_blank_restore,
            "blank restores are refused by default"
        );
        let p = volume_params(&map(&[("formatBlankRestore", "true")]), &cfg()).unwrap();
        assert!(p.format_blank_restore);
    }

    #[test]
    fn go_keys_are_read_and_nvme_address_falls_back_to_rds_address() {
        let p = volume_params(
            &map(&[
                ("volumePath", "/storage-pool/k8s"),
                ("nvmePort", "4421"),
                ("rdsAddress", "10.1.1.1"),
                ("ctrlLossTmo", "600"),
                ("reconnectDelay", "2"),
                ("keepAliveTmo", "10"),
                ("migrationTimeoutSeconds", "10"),
                (PVC_NAME, "data-0"),
                (PVC_NAMESPACE, "apps"),
                ("csi.storage.k8s.io/pv/name", "pvc-1"),
            ]),
            &cfg(),
        )
        .unwrap();
        assert_eq!(p.base_path, "/storage-pool/k8s");
        assert_eq!(p.nvme_port, 4421);
        assert_eq!(p.nvme_address, "10.1.1.1");
        assert_eq!(p.ctrl_loss_tmo, 600);
        assert_eq!(
            p.migration_timeout_seconds, 30,
            "clamped like the Go driver"
        );
        assert_eq!(
            p.pvc,
            Some(PvcRef {
                namespace: "apps".into(),
                name: "data-0".into()
            })
        );
        assert!(p.warnings.iter().any(|w| w.contains("clamped")));
    }

    #[test]
    fn ignored_go_keys_are_accepted_with_a_warning() {
        let p = volume_params(
            &map(&[
                ("sshPort", "22"),
                ("nqnPrefix", "nqn.2000-02.com.mikrotik:pvc-"),
                ("fsType", "xfs"),
                ("rdsPort", "22"),
                ("rdsBasePath", "/storage-pool/x"),
            ]),
            &cfg(),
        )
        .unwrap();
        assert_eq!(p.warnings.len(), 5, "{:?}", p.warnings);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = volume_params(&map(&[("volumepath", "/storage-pool/x")]), &cfg()).unwrap_err();
        assert!(e.to_string().contains("\"volumepath\""), "{e}");
        for (k, v) in [
            ("volumePath", "/etc"),
            ("volumePath", "/storage-pool/a;b"),
            ("volumePath", "relative"),
            ("nvmePort", "70000"),
            ("nvmePort", "abc"),
            ("nvmeAddress", "1.2.3.4; reboot"),
            ("rdsAddress", ""),
            ("ctrlLossTmo", "-2"),
            ("reconnectDelay", "0"),
            ("reconnectDelay", "7200"),
            ("keepAliveTmo", "3601"),
            ("formatBlankRestore", "yes"),
            ("keepAliveTmo", "-1"),
            ("migrationTimeoutSeconds", "0"),
            ("migrationTimeoutSeconds", "soon"),
            ("sshPort", "0"),
            ("fsType", "ntfs"),
            ("nqnPrefix", "NQN"),
            ("rdsBasePath", "/x/../y"),
            (PVC_NAME, "Bad Name"),
            (PVC_NAMESPACE, "a.b"),
            ("csi.storage.k8s.io/fstype", "zfs"),
            ("volumeLayout", "btrfs"),
            ("volumeLayout", "Subvolume"),
            ("volumeLayout", ""),
        ] {
            let e = volume_params(&map(&[(k, v)]), &cfg()).unwrap_err();
            assert!(matches!(e, FrontendError::InvalidArgument(_)));
            assert!(e.to_string().contains(&format!("{k:?}")), "{k}={v}: {e}");
        }
        // Every other csi.storage.k8s.io/* key is accepted.
        assert!(volume_params(&map(&[("csi.storage.k8s.io/anything", "x y")]), &cfg()).is_ok());
    }

    #[test]
    fn volume_layout_is_flat_or_subvolume_and_a_bad_one_names_both() {
        for (v, want) in [
            ("flat", VolumeLayout::Flat),
            ("subvolume", VolumeLayout::Subvolume),
        ] {
            let p = volume_params(&map(&[("volumeLayout", v)]), &cfg()).unwrap();
            assert_eq!(p.layout, want);
        }
        let e = volume_params(&map(&[("volumeLayout", "zfs")]), &cfg()).unwrap_err();
        assert!(matches!(e, FrontendError::InvalidArgument(_)), "{e:?}");
        let msg = e.to_string();
        for part in ["\"volumeLayout\"", "\"zfs\"", "flat", "subvolume"] {
            assert!(msg.contains(part), "{part} missing in {msg}");
        }
        // The unknown-key message lists it among the accepted keys.
        let e = volume_params(&map(&[("layout", "flat")]), &cfg()).unwrap_err();
        assert!(e.to_string().contains("volumeLayout"), "{e}");
    }

    #[test]
    fn provisioner_metadata_keys_are_accepted_and_read() {
        let p = volume_params(
            &map(&[
                (PVC_NAME, "data-0"),
                (PVC_NAMESPACE, "apps"),
                (PV_NAME, "pvc-1234"),
            ]),
            &cfg(),
        )
        .unwrap();
        assert_eq!(p.pv_name.as_deref(), Some("pvc-1234"));
        assert_eq!(p.pvc, PvcRef::new("apps", "data-0"));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let e = volume_params(&map(&[(PV_NAME, "PV 1")]), &cfg()).unwrap_err();
        assert!(e.to_string().contains(PV_NAME), "{e}");
    }

    #[test]
    fn snapshot_class_parameters() {
        assert_eq!(
            snapshot_base_path(&HashMap::new(), &cfg()).unwrap(),
            "/storage-pool/metal-csi"
        );
        assert_eq!(
            snapshot_base_path(
                &map(&[
                    ("volumePath", "/storage-pool/snaps"),
                    ("csi.storage.k8s.io/volumesnapshot/name", "s")
                ]),
                &cfg()
            )
            .unwrap(),
            "/storage-pool/snaps"
        );
        assert!(snapshot_base_path(&map(&[("nvmePort", "4420")]), &cfg()).is_err());
    }
}
