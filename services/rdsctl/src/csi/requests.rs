//! Building CSI request pieces from command-line values.

use std::collections::{BTreeMap, HashMap};

use rds_proto::csi::v1 as csi;
use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::volume_capability::{
    AccessMode as CsiAccessMode, AccessType, BlockVolume, MountVolume,
};

use crate::error::{CtlError, Result};

/// CSI access modes, spelled for the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessMode {
    SingleNodeWriter,
    SingleNodeReaderOnly,
    SingleNodeSingleWriter,
    SingleNodeMultiWriter,
    MultiNodeReaderOnly,
    MultiNodeMultiWriter,
}

impl AccessMode {
    fn mode(self) -> Mode {
        match self {
            AccessMode::SingleNodeWriter => Mode::SingleNodeWriter,
            AccessMode::SingleNodeReaderOnly => Mode::SingleNodeReaderOnly,
            AccessMode::SingleNodeSingleWriter => Mode::SingleNodeSingleWriter,
            AccessMode::SingleNodeMultiWriter => Mode::SingleNodeMultiWriter,
            AccessMode::MultiNodeReaderOnly => Mode::MultiNodeReaderOnly,
            AccessMode::MultiNodeMultiWriter => Mode::MultiNodeMultiWriter,
        }
    }
}

/// How the volume is consumed: a filesystem or a raw block device.
#[derive(Clone, Debug)]
pub struct Access {
    pub block: bool,
    pub fs_type: String,
    pub mount_flags: Vec<String>,
    pub mode: AccessMode,
}

impl Access {
    pub fn capability(&self) -> csi::VolumeCapability {
        let access_type = if self.block {
            AccessType::Block(BlockVolume {})
        } else {
            AccessType::Mount(MountVolume {
                fs_type: self.fs_type.clone(),
                mount_flags: self.mount_flags.clone(),
                volume_mount_group: String::new(),
            })
        };
        csi::VolumeCapability {
            access_mode: Some(CsiAccessMode {
                mode: self.mode.mode() as i32,
            }),
            access_type: Some(access_type),
        }
    }
}

/// `k=v` pairs into a map; a repeated key is refused (it would be ambiguous).
pub fn key_values(pairs: &[String], flag: &str) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| CtlError::Usage(format!("{flag} {p:?}: expected key=value")))?;
        if k.is_empty() {
            return Err(CtlError::Usage(format!("{flag} {p:?}: empty key")));
        }
        if out.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(CtlError::Usage(format!("{flag}: key {k:?} given twice")));
        }
    }
    Ok(out)
}

/// `namespace/name` of a PVC, added as the external-provisioner's
/// `--extra-create-metadata` parameters so events can name it.
pub fn pvc_parameters(pvc: &str) -> Result<[(String, String); 2]> {
    let (ns, name) = pvc
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| CtlError::Usage(format!("--pvc {pvc:?}: expected namespace/name")))?;
    Ok([
        ("csi.storage.k8s.io/pvc/namespace".to_owned(), ns.to_owned()),
        ("csi.storage.k8s.io/pvc/name".to_owned(), name.to_owned()),
    ])
}

/// A map in key order, for stable output.
pub fn sorted(map: &HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn key_values_parse_and_refuse_duplicates() {
        let m = key_values(&["a=1".into(), "b=x=y".into()], "--param").unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x=y");
        assert!(key_values(&["a".into()], "--param").is_err());
        assert!(key_values(&["=1".into()], "--param").is_err());
        assert!(key_values(&["a=1".into(), "a=2".into()], "--param").is_err());
    }

    #[test]
    fn pvc_refs_need_namespace_and_name() {
        let p = pvc_parameters("default/data").unwrap();
        assert_eq!(p[0].1, "default");
        assert_eq!(p[1].1, "data");
        for bad in ["data", "/data", "ns/", "a/b/c"] {
            assert!(pvc_parameters(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capabilities_carry_mode_and_type() {
        let a = Access {
            block: true,
            fs_type: String::new(),
            mount_flags: vec![],
            mode: AccessMode::MultiNodeMultiWriter,
        };
        let c = a.capability();
        assert!(matches!(c.access_type, Some(AccessType::Block(_))));
        assert_eq!(
            c.access_mode.unwrap().mode,
            Mode::MultiNodeMultiWriter as i32
        );
    }
}
