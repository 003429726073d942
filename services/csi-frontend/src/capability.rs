//! Volume capabilities and access modes (docs/csi.md §6): the four single-node
//! modes for everything; MULTI_NODE_MULTI_WRITER and MULTI_NODE_READER_ONLY
//! for raw block only (the KubeVirt live-migration window); filesystem RWX and
//! MULTI_NODE_SINGLE_WRITER refused.

use rds_proto::attachment::AccessMode as BusMode;
use rds_proto::csi::v1::VolumeCapability;
use rds_proto::csi::v1::volume_capability::AccessType;
use rds_proto::csi::v1::volume_capability::access_mode::Mode;

use crate::validate;

/// One checked capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub mode: Mode,
    pub block: bool,
    /// Filesystem type for mount volumes ("" = node default, ext4).
    pub fs_type: String,
}

impl Checked {
    pub fn bus_mode(&self) -> BusMode {
        match self.mode {
            Mode::SingleNodeWriter => BusMode::SingleNodeWriter,
            Mode::SingleNodeReaderOnly => BusMode::SingleNodeReaderOnly,
            Mode::SingleNodeSingleWriter => BusMode::SingleNodeSingleWriter,
            Mode::SingleNodeMultiWriter => BusMode::SingleNodeMultiWriter,
            Mode::MultiNodeMultiWriter => BusMode::MultiNodeMultiWriter,
            Mode::MultiNodeReaderOnly => BusMode::MultiNodeReaderOnly,
            // `check` never lets these through.
            Mode::Unknown | Mode::MultiNodeSingleWriter => BusMode::Unspecified,
        }
    }
}

/// Checks one capability; the error says what is unsupported and why.
pub fn check(cap: &VolumeCapability) -> Result<Checked, String> {
    let mode_raw = cap
        .access_mode
        .as_ref()
        .ok_or("volume capability without access_mode")?
        .mode;
    let mode = Mode::try_from(mode_raw).map_err(|_| format!("unknown access mode {mode_raw}"))?;
    let (block, fs_type) = match cap.access_type.as_ref() {
        Some(AccessType::Block(_)) => (true, String::new()),
        Some(AccessType::Mount(m)) => {
            if !m.fs_type.is_empty() {
                validate::fs_type(&m.fs_type).map_err(|e| format!("fs_type {e}"))?;
            }
            for flag in &m.mount_flags {
                mount_flag(flag)?;
            }
            (false, m.fs_type.clone())
        }
        None => return Err("volume capability without access_type (block or mount)".into()),
    };
    match mode {
        Mode::SingleNodeWriter
        | Mode::SingleNodeReaderOnly
        | Mode::SingleNodeSingleWriter
        | Mode::SingleNodeMultiWriter => {}
        Mode::MultiNodeMultiWriter | Mode::MultiNodeReaderOnly if block => {}
        Mode::MultiNodeMultiWriter | Mode::MultiNodeReaderOnly => {
            return Err(format!(
                "{} requires volumeMode: Block. Filesystem volumes risk data corruption with \
                 multi-node access. For KubeVirt VM live migration, use volumeMode: Block in your PVC",
                mode.as_str_name()
            ));
        }
        Mode::MultiNodeSingleWriter | Mode::Unknown => {
            return Err(format!(
                "access mode {} is not supported",
                mode.as_str_name()
            ));
        }
    }
    Ok(Checked {
        mode,
        block,
        fs_type,
    })
}

/// Checks a list (CreateVolume, ValidateVolumeCapabilities); at least one.
pub fn check_all(caps: &[VolumeCapability]) -> Result<Vec<Checked>, String> {
    if caps.is_empty() {
        return Err("volume_capabilities must not be empty".into());
    }
    caps.iter().map(check).collect()
}

/// Mount flags reach the node's mount(2) call: plain option words only, plus
/// the double quotes of kubelet's SELinux `context="…"` (the node's allow-list,
/// rds-dataplane `MountFlags`, checks each option exactly).
fn mount_flag(flag: &str) -> Result<(), String> {
    let ok = !flag.is_empty()
        && flag.len() <= 256
        && flag.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '=' | ',' | '.' | '_' | '-' | ':' | '/' | '"')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "mount flag {:?} contains characters outside [A-Za-z0-9=,._:/\"-]",
            validate::truncate(flag)
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rds_proto::csi::v1::volume_capability::{AccessMode, BlockVolume, MountVolume};

    pub fn cap(mode: Mode, block: bool) -> VolumeCapability {
        VolumeCapability {
            access_mode: Some(AccessMode { mode: mode as i32 }),
            access_type: Some(if block {
                AccessType::Block(BlockVolume {})
            } else {
                AccessType::Mount(MountVolume::default())
            }),
        }
    }

    #[test]
    fn single_node_modes_work_for_both_volume_modes() {
        for m in [
            Mode::SingleNodeWriter,
            Mode::SingleNodeReaderOnly,
            Mode::SingleNodeSingleWriter,
            Mode::SingleNodeMultiWriter,
        ] {
            assert!(check(&cap(m, false)).is_ok(), "{m:?} fs");
            assert!(check(&cap(m, true)).is_ok(), "{m:?} block");
        }
    }

    #[test]
    fn multi_node_modes_only_for_block() {
        for m in [Mode::MultiNodeMultiWriter, Mode::MultiNodeReaderOnly] {
            let c = check(&cap(m, true)).unwrap();
            assert!(c.block);
            let e = check(&cap(m, false)).unwrap_err();
            assert!(e.contains("volumeMode: Block"), "{e}");
        }
        assert!(check(&cap(Mode::MultiNodeSingleWriter, true)).is_err());
        assert!(check(&cap(Mode::Unknown, true)).is_err());
    }

    #[test]
    fn fs_types_and_flags_are_checked() {
        let mut c = cap(Mode::SingleNodeWriter, false);
        c.access_type = Some(AccessType::Mount(MountVolume {
            fs_type: "xfs".into(),
            mount_flags: vec!["noatime".into(), "discard".into()],
            volume_mount_group: String::new(),
        }));
        assert_eq!(check(&c).unwrap().fs_type, "xfs");
        // What kubelet adds for a CSIDriver with seLinuxMount: true.
        c.access_type = Some(AccessType::Mount(MountVolume {
            mount_flags: vec!["context=\"system_u:object_r:container_file_t:s0:c1,c2\"".into()],
            ..Default::default()
        }));
        assert!(check(&c).is_ok());
        c.access_type = Some(AccessType::Mount(MountVolume {
            fs_type: "btrfs".into(),
            ..Default::default()
        }));
        assert!(check(&c).unwrap_err().contains("btrfs"));
        c.access_type = Some(AccessType::Mount(MountVolume {
            mount_flags: vec!["ro; reboot".into()],
            ..Default::default()
        }));
        assert!(check(&c).is_err());
        c.access_type = None;
        assert!(check(&c).is_err());
        assert!(check_all(&[]).is_err());
    }
}
