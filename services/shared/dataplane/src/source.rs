//! Where a volume's blocks come from, from the CSI volume_context — read
//! through the one typed contract, [`rds_bus::VolumeContext`], that the
//! controller writes. The Go driver's keys keep their meaning, so PVs it made
//! stage unchanged; the node role reads nothing else.

use std::collections::HashMap;
use std::net::IpAddr;

pub use rds_bus::PvcRef;
use rds_bus::volume_context::{self as vc, VolumeContext};
use rds_bus::{ContentSource, Nqn, VolumeId};
use serde::{Deserialize, Serialize};

use crate::error::{DataPlaneError, Result};
use crate::paths::validate_volume_path;

pub use vc::{DEFAULT_CTRL_LOSS_TMO, DEFAULT_KEEP_ALIVE_TMO, DEFAULT_RECONNECT_DELAY};

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

/// A volume's origin, for the format decision: a restore or clone that reads
/// blank is refused (the copy may not have happened) unless the StorageClass
/// allowed formatting blank restores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentOrigin {
    pub source: Option<ContentSource>,
    pub format_blank_restore: bool,
}

/// Everything NodeStage takes from the volume_context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeContext {
    pub source: VolumeSource,
    pub content: ContentOrigin,
    pub pvc: Option<PvcRef>,
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

fn shown(v: &str) -> String {
    v.chars().take(64).collect()
}

fn typed(ctx: &HashMap<String, String>) -> Result<VolumeContext> {
    VolumeContext::parse(ctx).map_err(|e| DataPlaneError::InvalidArgument(e.to_string()))
}

/// Parses what NodeStage needs for `volume_id` from a CSI volume_context.
pub fn node_context(
    kind: BackendKind,
    volume_id: &VolumeId,
    ctx: &HashMap<String, String>,
) -> Result<NodeContext> {
    let c = typed(ctx)?;
    for w in &c.warnings {
        tracing::warn!(volume = %volume_id, "{w}");
    }
    Ok(NodeContext {
        source: source_of(kind, volume_id, &c)?,
        content: ContentOrigin {
            source: c.content_source.clone(),
            format_blank_restore: c.format_blank_restore,
        },
        pvc: c.pvc,
    })
}

/// Parses the source for `volume_id` from a CSI volume_context.
pub fn source_from_context(
    kind: BackendKind,
    volume_id: &VolumeId,
    ctx: &HashMap<String, String>,
) -> Result<VolumeSource> {
    source_of(kind, volume_id, &typed(ctx)?)
}

fn source_of(kind: BackendKind, volume_id: &VolumeId, c: &VolumeContext) -> Result<VolumeSource> {
    match kind {
        BackendKind::Loop => {
            let path = c.volume_path.as_deref().ok_or_else(|| {
                DataPlaneError::InvalidArgument(format!(
                    "missing required volume context {} (the backing file of {volume_id})",
                    vc::key::VOLUME_PATH
                ))
            })?;
            validate_volume_path(path)?;
            Ok(VolumeSource::Loop(LoopTarget {
                volume_path: path.to_owned(),
            }))
        }
        BackendKind::Nvme => {
            let (Some(addr), Some(port)) = (c.connect_address(), c.nvme_port) else {
                return Err(DataPlaneError::InvalidArgument(format!(
                    "missing required volume context: nqn={:?}, nvmeAddress={:?}, nvmePort={:?}",
                    c.nqn
                        .as_ref()
                        .map(|n| shown(n.as_str()))
                        .unwrap_or_default(),
                    shown(&c.nvme_address),
                    c.nvme_port.map(|p| p.to_string()).unwrap_or_default()
                )));
            };
            // The NQN is the volume's own: fencing and attachments are keyed
            // on the volume id, so an edited or static PV naming another
            // volume's NQN would stage that volume's data.
            let own = volume_id.nqn();
            if let Some(n) = &c.nqn
                && *n != own
            {
                return Err(DataPlaneError::InvalidArgument(format!(
                    "volume context nqn {n} is not the NQN of volume {volume_id} ({own}); \
                     refusing to stage another volume's data"
                )));
            }
            let ip: IpAddr = addr.parse().map_err(|_| {
                DataPlaneError::InvalidArgument(format!(
                    "volume context nvmeAddress {:?} must be an IP address",
                    shown(addr)
                ))
            })?;
            Ok(VolumeSource::Nvme(NvmeTarget {
                nqn: own,
                ip,
                port,
                ctrl_loss_tmo: c.ctrl_loss_tmo,
                reconnect_delay: c.reconnect_delay,
                keep_alive_tmo: c.keep_alive_tmo,
            }))
        }
    }
}

/// The PVC named in the volume_context (present with `--extra-create-metadata`).
pub fn pvc_from_context(ctx: &HashMap<String, String>) -> Option<PvcRef> {
    VolumeContext::parse(ctx).ok().and_then(|c| c.pvc)
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
    fn the_nqn_must_be_the_volumes_own() {
        let v = VolumeId::parse("pvc-1").unwrap();
        let base = [("nvmeAddress", "10.0.0.1"), ("nvmePort", "4420")];
        let with = |nqn: &str| {
            let mut c = ctx(&base);
            c.insert("nqn".into(), nqn.into());
            source_from_context(BackendKind::Nvme, &v, &c)
        };
        // The Go driver's PVs: nqn = prefix + lowercased id.
        assert!(with("nqn.2000-02.com.mikrotik:pvc-1").is_ok());
        for other in [
            "nqn.2000-02.com.mikrotik:pvc-2",
            "nqn.2000-02.com.mikrotik:boot-disk",
            "nqn.2014-08.org.example:pvc-1",
        ] {
            let e = with(other).unwrap_err();
            assert_eq!(e.reason(), rds_bus::Reason::InvalidArgument, "{other}");
            assert!(e.to_string().contains("not the NQN of volume pvc-1"), "{e}");
        }
    }

    #[test]
    fn content_origin_comes_from_the_context() {
        let v = VolumeId::parse("pvc-1").unwrap();
        let mut c = ctx(&[("volumePath", "/storage-pool/a/pvc-1.img")]);
        let n = node_context(BackendKind::Loop, &v, &c).unwrap();
        assert_eq!(n.content, ContentOrigin::default());
        c.insert("contentSource".into(), "volume:pvc-0".into());
        c.insert("formatBlankRestore".into(), "true".into());
        let n = node_context(BackendKind::Loop, &v, &c).unwrap();
        assert_eq!(n.content.source.unwrap().to_string(), "volume:pvc-0");
        assert!(n.content.format_blank_restore);
        c.insert("contentSource".into(), "nonsense".into());
        let e = node_context(BackendKind::Loop, &v, &c).unwrap_err();
        assert_eq!(e.reason(), rds_bus::Reason::InvalidArgument);
    }

    #[test]
    fn pvc_ref() {
        let c = ctx(&[(vc::key::PVC_NAMESPACE, "ns"), (vc::key::PVC_NAME, "data")]);
        assert_eq!(
            pvc_from_context(&c),
            Some(PvcRef {
                namespace: "ns".into(),
                name: "data".into()
            })
        );
        assert_eq!(pvc_from_context(&ctx(&[(vc::key::PVC_NAME, "data")])), None);
    }
}
