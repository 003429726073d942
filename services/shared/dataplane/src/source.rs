//! Where a volume's blocks come from, parsed and validated from the CSI
//! volume_context (the Go driver's keys, anchor §3.4) — the node role reads
//! nothing else, so PVs made by the Go driver stage unchanged.

use std::collections::HashMap;
use std::net::IpAddr;

use rds_bus::{Nqn, VolumeId};
use serde::{Deserialize, Serialize};

use crate::error::{DataPlaneError, Result};
use crate::paths::validate_volume_path;

pub const CTX_NQN: &str = "nqn";
pub const CTX_NVME_ADDRESS: &str = "nvmeAddress";
pub const CTX_RDS_ADDRESS: &str = "rdsAddress";
pub const CTX_NVME_PORT: &str = "nvmePort";
pub const CTX_VOLUME_PATH: &str = "volumePath";
pub const CTX_CTRL_LOSS_TMO: &str = "ctrlLossTmo";
pub const CTX_RECONNECT_DELAY: &str = "reconnectDelay";
pub const CTX_KEEP_ALIVE_TMO: &str = "keepAliveTmo";
pub const CTX_PVC_NAME: &str = "csi.storage.k8s.io/pvc/name";
pub const CTX_PVC_NAMESPACE: &str = "csi.storage.k8s.io/pvc/namespace";

/// The Go driver's resilience defaults (anchor §8.4): reconnect forever so
/// filesystems never go read-only, retry every 5 s, kernel keep-alive.
pub const DEFAULT_CTRL_LOSS_TMO: i32 = -1;
pub const DEFAULT_RECONNECT_DELAY: u32 = 5;
pub const DEFAULT_KEEP_ALIVE_TMO: u32 = 0;

/// Which data plane this node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// NVMe/TCP to the RDS (Kubernetes mode).
    Nvme,
    /// Loop devices over rds-sim's files (local mode).
    Loop,
}

/// A volume's source of blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum VolumeSource {
    Nvme(NvmeTarget),
    Loop(LoopTarget),
}

impl VolumeSource {
    /// Short description for logs and events (no secrets exist here).
    pub fn describe(&self) -> String {
        match self {
            VolumeSource::Nvme(t) => format!("nvme {} at {}", t.nqn, t.address()),
            VolumeSource::Loop(t) => format!("loop file {}", t.volume_path),
        }
    }

    /// The address events name for a connection (`ip:port`, or the file).
    pub fn address(&self) -> String {
        match self {
            VolumeSource::Nvme(t) => t.address(),
            VolumeSource::Loop(t) => t.volume_path.clone(),
        }
    }

    /// Re-checks invariants (after reading a state file).
    pub fn validate(&self) -> Result<()> {
        match self {
            VolumeSource::Nvme(t) => {
                Nqn::parse(t.nqn.as_str())?;
                if t.port == 0 {
                    return Err(DataPlaneError::InvalidArgument("nvme port 0".into()));
                }
                Ok(())
            }
            VolumeSource::Loop(t) => validate_volume_path(&t.volume_path),
        }
    }
}

/// An NVMe/TCP subsystem on the RDS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvmeTarget {
    #[serde(with = "nqn_serde")]
    pub nqn: Nqn,
    pub ip: IpAddr,
    pub port: u16,
    pub ctrl_loss_tmo: i32,
    pub reconnect_delay: u32,
    pub keep_alive_tmo: u32,
}

impl NvmeTarget {
    pub fn address(&self) -> String {
        match self.ip {
            IpAddr::V4(a) => format!("{a}:{}", self.port),
            IpAddr::V6(a) => format!("[{a}]:{}", self.port),
        }
    }
}

/// An rds-sim backing file, by its RDS path (`/storage-pool/…/pvc-x.img`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopTarget {
    pub volume_path: String,
}

/// The PVC a volume belongs to (for events), when the context names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PvcRef {
    pub namespace: String,
    pub name: String,
}

mod nqn_serde {
    use rds_bus::Nqn;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &Nqn, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(n.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Nqn, D::Error> {
        let s = String::deserialize(d)?;
        Nqn::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn get<'a>(ctx: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    ctx.get(key).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn shown(v: &str) -> String {
    v.chars().take(64).collect()
}

fn parse_num<T: std::str::FromStr>(
    ctx: &HashMap<String, String>,
    key: &str,
    default: T,
) -> Result<T> {
    match get(ctx, key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            DataPlaneError::InvalidArgument(format!(
                "volume context {key} {:?} is not a valid number",
                shown(v)
            ))
        }),
    }
}

/// Parses the source for `volume_id` from a CSI volume_context.
pub fn source_from_context(
    kind: BackendKind,
    volume_id: &VolumeId,
    ctx: &HashMap<String, String>,
) -> Result<VolumeSource> {
    match kind {
        BackendKind::Loop => {
            let path = get(ctx, CTX_VOLUME_PATH).ok_or_else(|| {
                DataPlaneError::InvalidArgument(format!(
                    "missing required volume context {CTX_VOLUME_PATH} (the backing file of {volume_id})"
                ))
            })?;
            validate_volume_path(path)?;
            Ok(VolumeSource::Loop(LoopTarget {
                volume_path: path.to_owned(),
            }))
        }
        BackendKind::Nvme => {
            let nqn_s = get(ctx, CTX_NQN);
            let addr = get(ctx, CTX_NVME_ADDRESS).or_else(|| get(ctx, CTX_RDS_ADDRESS));
            let port = get(ctx, CTX_NVME_PORT);
            let (Some(addr), Some(port)) = (addr, port) else {
                return Err(DataPlaneError::InvalidArgument(format!(
                    "missing required volume context: nqn={:?}, nvmeAddress={:?}, nvmePort={:?}",
                    nqn_s.map(shown).unwrap_or_default(),
                    addr.map(shown).unwrap_or_default(),
                    port.map(shown).unwrap_or_default()
                )));
            };
            let nqn = match nqn_s {
                Some(s) => Nqn::parse(s).map_err(|e| {
                    DataPlaneError::InvalidArgument(format!("volume context nqn: {e}"))
                })?,
                None => volume_id.nqn(),
            };
            let ip: IpAddr = addr.parse().map_err(|_| {
                DataPlaneError::InvalidArgument(format!(
                    "volume context nvmeAddress {:?} must be an IP address",
                    shown(addr)
                ))
            })?;
            let port: u16 = match port.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    return Err(DataPlaneError::InvalidArgument(format!(
                        "volume context nvmePort {:?} must be a number in 1-65535",
                        shown(port)
                    )));
                }
            };
            let ctrl_loss_tmo = parse_num(ctx, CTX_CTRL_LOSS_TMO, DEFAULT_CTRL_LOSS_TMO)?;
            if ctrl_loss_tmo < -1 {
                return Err(DataPlaneError::InvalidArgument(format!(
                    "volume context {CTX_CTRL_LOSS_TMO} {ctrl_loss_tmo} must be -1 (forever) or >= 0"
                )));
            }
            let reconnect_delay = parse_num(ctx, CTX_RECONNECT_DELAY, DEFAULT_RECONNECT_DELAY)?;
            let keep_alive_tmo = parse_num(ctx, CTX_KEEP_ALIVE_TMO, DEFAULT_KEEP_ALIVE_TMO)?;
            if reconnect_delay > 3600 || keep_alive_tmo > 3600 {
                return Err(DataPlaneError::InvalidArgument(format!(
                    "volume context {CTX_RECONNECT_DELAY}/{CTX_KEEP_ALIVE_TMO} must be at most 3600 s"
                )));
            }
            Ok(VolumeSource::Nvme(NvmeTarget {
                nqn,
                ip,
                port,
                ctrl_loss_tmo,
                reconnect_delay,
                keep_alive_tmo,
            }))
        }
    }
}

/// The PVC named in the volume_context (present with `--extra-create-metadata`).
pub fn pvc_from_context(ctx: &HashMap<String, String>) -> Option<PvcRef> {
    match (get(ctx, CTX_PVC_NAMESPACE), get(ctx, CTX_PVC_NAME)) {
        (Some(ns), Some(name)) => Some(PvcRef {
            namespace: ns.to_owned(),
            name: name.to_owned(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn go_driver_context_parses_with_defaults() {
        let v = VolumeId::parse("pvc-1").unwrap();
        let c = ctx(&[
            ("rdsAddress", "10.42.68.1"),
            ("nvmeAddress", "10.42.68.2"),
            ("nvmePort", "4420"),
            ("nqn", "nqn.2000-02.com.mikrotik:pvc-1"),
            ("volumePath", "/storage-pool/metal-csi/pvc-1.img"),
            ("ctrlLossTmo", "-1"),
            ("reconnectDelay", "5"),
            ("keepAliveTmo", "0"),
            ("migrationTimeoutSeconds", "300"),
        ]);
        let VolumeSource::Nvme(t) = source_from_context(BackendKind::Nvme, &v, &c).unwrap() else {
            panic!("not nvme");
        };
        assert_eq!(t.address(), "10.42.68.2:4420");
        assert_eq!(
            (t.ctrl_loss_tmo, t.reconnect_delay, t.keep_alive_tmo),
            (-1, 5, 0)
        );
        let l = source_from_context(BackendKind::Loop, &v, &c).unwrap();
        assert_eq!(
            l,
            VolumeSource::Loop(LoopTarget {
                volume_path: "/storage-pool/metal-csi/pvc-1.img".into()
            })
        );
        // state round trip
        let s = serde_json::to_string(&VolumeSource::Nvme(t.clone())).unwrap();
        assert_eq!(
            serde_json::from_str::<VolumeSource>(&s).unwrap(),
            VolumeSource::Nvme(t)
        );
    }

    #[test]
    fn bad_values_are_invalid_argument() {
        let v = VolumeId::parse("pvc-1").unwrap();
        let base = [("nvmeAddress", "10.0.0.1"), ("nvmePort", "4420")];
        for (k, bad) in [
            ("nvmePort", "0"),
            ("nvmePort", "70000"),
            ("nvmePort", "x"),
            ("nvmeAddress", "rds.example.com"),
            ("nvmeAddress", "10.0.0.1;reboot"),
            ("nqn", "nqn.2000-02.com.mikrotik:PVC"),
            ("ctrlLossTmo", "-5"),
            ("reconnectDelay", "soon"),
        ] {
            let mut c = ctx(&base);
            c.insert(k.into(), bad.into());
            let e = source_from_context(BackendKind::Nvme, &v, &c).unwrap_err();
            assert_eq!(e.reason(), rds_bus::Reason::InvalidArgument, "{k}={bad}");
        }
        let e = source_from_context(
            BackendKind::Nvme,
            &v,
            &ctx(&[("nqn", "nqn.2000-02.com.mikrotik:pvc-1")]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("missing required volume context"),
            "{e}"
        );
        let e = source_from_context(
            BackendKind::Loop,
            &v,
            &ctx(&[("volumePath", "/a/../b.img")]),
        )
        .unwrap_err();
        assert_eq!(e.reason(), rds_bus::Reason::InvalidArgument);
    }

    #[test]
    fn nqn_falls_back_to_the_volume_id() {
        let v = VolumeId::parse("PVC-ABC").unwrap();
        let VolumeSource::Nvme(t) = source_from_context(
            BackendKind::Nvme,
            &v,
            &ctx(&[("rdsAddress", "::1"), ("nvmePort", "4420")]),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(t.nqn.as_str(), "nqn.2000-02.com.mikrotik:pvc-abc");
        assert_eq!(t.address(), "[::1]:4420");
    }

    #[test]
    fn pvc_ref() {
        let c = ctx(&[(CTX_PVC_NAMESPACE, "ns"), (CTX_PVC_NAME, "data")]);
        assert_eq!(
            pvc_from_context(&c),
            Some(PvcRef {
                namespace: "ns".into(),
                name: "data".into()
            })
        );
        assert_eq!(pvc_from_context(&ctx(&[(CTX_PVC_NAME, "data")])), None);
    }
}
