//! The volume_context contract (PV `volumeAttributes`): one definition of
//! every key, its type, its range and its default. The controller writes it
//! at CreateVolume ([`VolumeContext::to_map`]); the node reads it at
//! NodeStage/NodePublish and ControllerPublish reads the advisory part
//! ([`VolumeContext::parse`]). The Go driver's nine keys keep their names and
//! formats, so its PVs stage unchanged; keys it never wrote are optional and
//! absent means "as before".

use std::collections::HashMap;
use std::fmt;

use crate::ids::{IdError, Nqn, SnapshotId, VolumeId};

/// Key names (all values are strings).
pub mod key {
    pub const RDS_ADDRESS: &str = "rdsAddress";
    pub const NVME_ADDRESS: &str = "nvmeAddress";
    pub const NVME_PORT: &str = "nvmePort";
    pub const NQN: &str = "nqn";
    /// The FULL backing-file path (not the directory), as the Go driver.
    pub const VOLUME_PATH: &str = "volumePath";
    pub const CTRL_LOSS_TMO: &str = "ctrlLossTmo";
    pub const RECONNECT_DELAY: &str = "reconnectDelay";
    pub const KEEP_ALIVE_TMO: &str = "keepAliveTmo";
    pub const MIGRATION_TIMEOUT: &str = "migrationTimeoutSeconds";
    /// Present when the provisioner runs with `--extra-create-metadata`.
    pub const PVC_NAME: &str = "csi.storage.k8s.io/pvc/name";
    pub const PVC_NAMESPACE: &str = "csi.storage.k8s.io/pvc/namespace";
    /// Not in the Go driver: `snapshot:<id>` or `volume:<id>` when the volume
    /// was created from a snapshot or cloned (absent = created empty).
    pub const CONTENT_SOURCE: &str = "contentSource";
    /// Not in the Go driver: `"true"` when the StorageClass allows the node to
    /// format a restored/cloned volume that reads blank (absent = refuse).
    pub const FORMAT_BLANK_RESTORE: &str = "formatBlankRestore";
    /// Not in the Go driver: `subvolume` when the volume's file sits in a
    /// Btrfs subvolume of its own (`<base>/<id>/volume.img`); absent = `flat`
    /// (`<base>/<id>.img`, every Go-driver PV). docs/csi.md §4.
    pub const VOLUME_LAYOUT: &str = "volumeLayout";
}

/// Reconnect forever, so filesystems never go read-only (the Go driver's).
pub const DEFAULT_CTRL_LOSS_TMO: i32 = -1;
pub const DEFAULT_RECONNECT_DELAY: u32 = 5;
/// 0 = the kernel's keep-alive default.
pub const DEFAULT_KEEP_ALIVE_TMO: u32 = 0;
pub const DEFAULT_MIGRATION_TIMEOUT: u32 = 300;
/// The Go driver clamps the migration window to [30 s, 1 h].
pub const MIGRATION_TIMEOUT_RANGE: (u32, u32) = (30, 3600);
/// Upper bound of `reconnectDelay` and `keepAliveTmo` (seconds).
pub const MAX_TIMER_SECONDS: u32 = 3600;

/// A malformed value of a key the contract defines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("volume context {key} {value:?}: {why}")]
pub struct ContextError {
    pub key: &'static str,
    /// Truncated so a hostile value cannot flood logs.
    pub value: String,
    pub why: String,
}

impl ContextError {
    fn new(key: &'static str, value: &str, why: impl Into<String>) -> Self {
        ContextError {
            key,
            value: value.chars().take(64).collect(),
            why: why.into(),
        }
    }
}

/// The PVC a volume belongs to (for events and logs). The one Rust type of
/// `rds.common.v1.PvcRef`; state files store it as `{namespace, name}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PvcRef {
    pub namespace: String,
    pub name: String,
}

impl PvcRef {
    /// Both parts or nothing: half a reference names no PVC.
    pub fn new(namespace: &str, name: &str) -> Option<PvcRef> {
        (!namespace.is_empty() && !name.is_empty()).then(|| PvcRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// From the wire: `None` unless both parts are set.
    pub fn from_proto(p: &rds_proto::common::PvcRef) -> Option<PvcRef> {
        PvcRef::new(&p.namespace, &p.name)
    }

    /// To the wire.
    pub fn to_proto(&self) -> rds_proto::common::PvcRef {
        rds_proto::common::PvcRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

/// Where a volume's initial content came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContentSource {
    Snapshot(SnapshotId),
    Volume(VolumeId),
}

impl ContentSource {
    pub fn parse(s: &str) -> Result<Self, ContextError> {
        let bad = |why: &str| ContextError::new(key::CONTENT_SOURCE, s, why);
        let map_id = |e: IdError| bad(e.why);
        match s.split_once(':') {
            Some(("snapshot", id)) => SnapshotId::parse(id)
                .map(ContentSource::Snapshot)
                .map_err(map_id),
            Some(("volume", id)) => VolumeId::parse(id)
                .map(ContentSource::Volume)
                .map_err(map_id),
            _ => Err(bad("expected snapshot:<id> or volume:<id>")),
        }
    }
}

impl fmt::Display for ContentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentSource::Snapshot(s) => write!(f, "snapshot:{s}"),
            ContentSource::Volume(v) => write!(f, "volume:{v}"),
        }
    }
}

/// Where a volume's backing file sits on the pool (docs/csi.md §3, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VolumeLayout {
    /// `<base>/<id>.img`: the Go driver's layout, and the default.
    #[default]
    Flat,
    /// `<base>/<id>/volume.img` inside a Btrfs subvolume of its own.
    Subvolume,
}

impl VolumeLayout {
    /// Every accepted spelling, for error messages.
    pub const ALLOWED: &'static str = "flat, subvolume";

    pub fn as_str(self) -> &'static str {
        match self {
            VolumeLayout::Flat => "flat",
            VolumeLayout::Subvolume => "subvolume",
        }
    }

    /// Exactly `flat` or `subvolume` (no case folding: the same text is
    /// written back into the PV).
    pub fn parse(s: &str) -> Option<VolumeLayout> {
        match s {
            "flat" => Some(VolumeLayout::Flat),
            "subvolume" => Some(VolumeLayout::Subvolume),
            _ => None,
        }
    }

    /// The agent's wire value (UNSPECIFIED is flat: what every caller meant
    /// before layouts existed).
    pub fn to_proto(self) -> rds_proto::agent::VolumeLayout {
        match self {
            VolumeLayout::Flat => rds_proto::agent::VolumeLayout::Flat,
            VolumeLayout::Subvolume => rds_proto::agent::VolumeLayout::Subvolume,
        }
    }

    /// From the wire: `None` for UNSPECIFIED or an unknown number (the agent
    /// did not say), so callers keep what they asked for.
    pub fn from_proto(v: i32) -> Option<VolumeLayout> {
        match rds_proto::agent::VolumeLayout::try_from(v) {
            Ok(rds_proto::agent::VolumeLayout::Flat) => Some(VolumeLayout::Flat),
            Ok(rds_proto::agent::VolumeLayout::Subvolume) => Some(VolumeLayout::Subvolume),
            _ => None,
        }
    }
}

impl fmt::Display for VolumeLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The typed volume_context. Addresses stay text here: the controller checks
/// them as IP or host name, the NVMe plane requires an IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeContext {
    /// `""` when absent.
    pub rds_address: String,
    /// `""` when absent; readers fall back to `rds_address`.
    pub nvme_address: String,
    pub nvme_port: Option<u16>,
    /// Absent in hand-written PVs; readers fall back to the volume's own NQN.
    pub nqn: Option<Nqn>,
    pub volume_path: Option<String>,
    /// -1 (forever) or ≥ 0.
    pub ctrl_loss_tmo: i32,
    pub reconnect_delay: u32,
    pub keep_alive_tmo: u32,
    /// Advisory (ControllerPublish's migration window), clamped to the range.
    pub migration_timeout_seconds: Option<u32>,
    /// Advisory.
    pub pvc: Option<PvcRef>,
    pub content_source: Option<ContentSource>,
    pub format_blank_restore: bool,
    /// Written only when not flat, so a flat context keeps the Go driver's
    /// keys byte for byte; a context without the key is flat.
    pub layout: VolumeLayout,
    /// Advisory values that were malformed and dropped (for a warning log).
    pub warnings: Vec<String>,
}

impl Default for VolumeContext {
    fn default() -> Self {
        VolumeContext {
            rds_address: String::new(),
            nvme_address: String::new(),
            nvme_port: None,
            nqn: None,
            volume_path: None,
            ctrl_loss_tmo: DEFAULT_CTRL_LOSS_TMO,
            reconnect_delay: DEFAULT_RECONNECT_DELAY,
            keep_alive_tmo: DEFAULT_KEEP_ALIVE_TMO,
            migration_timeout_seconds: None,
            pvc: None,
            content_source: None,
            format_blank_restore: false,
            layout: VolumeLayout::Flat,
            warnings: Vec::new(),
        }
    }
}

fn get<'a>(ctx: &'a HashMap<String, String>, k: &str) -> Option<&'a str> {
    ctx.get(k).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn num<T: std::str::FromStr + PartialOrd + fmt::Display + Copy>(
    ctx: &HashMap<String, String>,
    k: &'static str,
    default: T,
    range: (T, T),
) -> Result<T, ContextError> {
    let Some(v) = get(ctx, k) else {
        return Ok(default);
    };
    match v.parse::<T>() {
        Ok(n) if n >= range.0 && n <= range.1 => Ok(n),
        _ => Err(ContextError::new(
            k,
            v,
            format!("must be an integer in [{}, {}]", range.0, range.1),
        )),
    }
}

/// A Kubernetes object name or namespace: lowercase DNS label/subdomain.
fn k8s_name_ok(s: &str) -> bool {
    s.len() <= 253
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

impl VolumeContext {
    /// Reads a volume_context. Keys of the connection (port, NQN, timers,
    /// content source) must be well formed or this fails naming the key;
    /// advisory keys (PVC, migration window) are dropped into `warnings`.
    /// Unknown keys are ignored (Kubernetes adds its own).
    pub fn parse(ctx: &HashMap<String, String>) -> Result<Self, ContextError> {
        let mut c = VolumeContext {
            rds_address: get(ctx, key::RDS_ADDRESS).unwrap_or_default().to_owned(),
            nvme_address: get(ctx, key::NVME_ADDRESS).unwrap_or_default().to_owned(),
            volume_path: get(ctx, key::VOLUME_PATH).map(str::to_owned),
            ctrl_loss_tmo: num(
                ctx,
                key::CTRL_LOSS_TMO,
                DEFAULT_CTRL_LOSS_TMO,
                (-1, i32::MAX),
            )?,
            reconnect_delay: num(
                ctx,
                key::RECONNECT_DELAY,
                DEFAULT_RECONNECT_DELAY,
                (0, MAX_TIMER_SECONDS),
            )?,
            keep_alive_tmo: num(
                ctx,
                key::KEEP_ALIVE_TMO,
                DEFAULT_KEEP_ALIVE_TMO,
                (0, MAX_TIMER_SECONDS),
            )?,
            ..VolumeContext::default()
        };
        if let Some(p) = get(ctx, key::NVME_PORT) {
            c.nvme_port = Some(match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(ContextError::new(
                        key::NVME_PORT,
                        p,
                        "must be a number in 1-65535",
                    ));
                }
            });
        }
        if let Some(n) = get(ctx, key::NQN) {
            c.nqn = Some(Nqn::parse(n).map_err(|e| ContextError::new(key::NQN, n, e.why))?);
        }
        if let Some(s) = get(ctx, key::CONTENT_SOURCE) {
            c.content_source = Some(ContentSource::parse(s)?);
        }
        if let Some(v) = get(ctx, key::FORMAT_BLANK_RESTORE) {
            c.format_blank_restore = match v {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(ContextError::new(
                        key::FORMAT_BLANK_RESTORE,
                        v,
                        "must be true or false",
                    ));
                }
            };
        }
        if let Some(v) = get(ctx, key::VOLUME_LAYOUT) {
            // Strict: a misread layout would look for the file elsewhere.
            c.layout = VolumeLayout::parse(v).ok_or_else(|| {
                ContextError::new(
                    key::VOLUME_LAYOUT,
                    v,
                    format!("must be one of {}", VolumeLayout::ALLOWED),
                )
            })?;
        }
        c.read_advisory(ctx);
        Ok(c)
    }

    fn read_advisory(&mut self, ctx: &HashMap<String, String>) {
        match (get(ctx, key::PVC_NAMESPACE), get(ctx, key::PVC_NAME)) {
            (Some(ns), Some(name)) if k8s_name_ok(ns) && k8s_name_ok(name) => {
                self.pvc = Some(PvcRef {
                    namespace: ns.to_owned(),
                    name: name.to_owned(),
                });
            }
            (None, None) => {}
            _ => self
                .warnings
                .push("ignoring an incomplete or invalid PVC reference in volume_context".into()),
        }
        if let Some(v) = get(ctx, key::MIGRATION_TIMEOUT) {
            let (lo, hi) = MIGRATION_TIMEOUT_RANGE;
            match v.parse::<i64>() {
                Ok(n) if n > 0 => {
                    let clamped = n.clamp(lo.into(), hi.into());
                    self.migration_timeout_seconds = Some(u32::try_from(clamped).unwrap_or(hi));
                }
                _ => self.warnings.push(format!(
                    "ignoring {}={:?}; using the default",
                    key::MIGRATION_TIMEOUT,
                    v.chars().take(64).collect::<String>()
                )),
            }
        }
    }

    /// The map the controller returns from CreateVolume: the Go driver's
    /// nine keys always (timers written even at their defaults), the others
    /// only when set.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::from([
            (key::RDS_ADDRESS.to_owned(), self.rds_address.clone()),
            (key::NVME_ADDRESS.to_owned(), self.nvme_address.clone()),
            (
                key::NVME_PORT.to_owned(),
                self.nvme_port.map(|p| p.to_string()).unwrap_or_default(),
            ),
            (
                key::NQN.to_owned(),
                self.nqn
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
            (
                key::VOLUME_PATH.to_owned(),
                self.volume_path.clone().unwrap_or_default(),
            ),
            (
                key::CTRL_LOSS_TMO.to_owned(),
                self.ctrl_loss_tmo.to_string(),
            ),
            (
                key::RECONNECT_DELAY.to_owned(),
                self.reconnect_delay.to_string(),
            ),
            (
                key::KEEP_ALIVE_TMO.to_owned(),
                self.keep_alive_tmo.to_string(),
            ),
            (
                key::MIGRATION_TIMEOUT.to_owned(),
                self.migration_timeout_seconds
                    .unwrap_or(DEFAULT_MIGRATION_TIMEOUT)
                    .to_string(),
            ),
        ]);
        if let Some(pvc) = &self.pvc {
            m.insert(key::PVC_NAMESPACE.to_owned(), pvc.namespace.clone());
            m.insert(key::PVC_NAME.to_owned(), pvc.name.clone());
        }
        if let Some(s) = &self.content_source {
            m.insert(key::CONTENT_SOURCE.to_owned(), s.to_string());
        }
        if self.format_blank_restore {
            m.insert(key::FORMAT_BLANK_RESTORE.to_owned(), "true".to_owned());
        }
        if self.layout != VolumeLayout::Flat {
            m.insert(key::VOLUME_LAYOUT.to_owned(), self.layout.to_string());
        }
        m
    }

    /// The NVMe address to connect to: `nvmeAddress`, else `rdsAddress`.
    pub fn connect_address(&self) -> Option<&str> {
        [&self.nvme_address, &self.rds_address]
            .into_iter()
            .find(|a| !a.is_empty())
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ctx(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn go_driver_context_round_trips() {
        let go = ctx(&[
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
        let c = VolumeContext::parse(&go).unwrap();
        assert_eq!(c.connect_address(), Some("10.42.68.2"));
        assert_eq!(c.nvme_port, Some(4420));
        assert_eq!(
            (c.ctrl_loss_tmo, c.reconnect_delay, c.keep_alive_tmo),
            (-1, 5, 0)
        );
        assert_eq!(c.content_source, None);
        assert!(!c.format_blank_restore);
        assert_eq!(c.layout, VolumeLayout::Flat, "no volumeLayout key = flat");
        assert_eq!(c.to_map(), go, "the Go driver's nine keys, byte for byte");
    }

    #[test]
    fn new_keys_round_trip_and_are_optional() {
        let mut c = VolumeContext {
            nvme_port: Some(4420),
            content_source: Some(ContentSource::Snapshot(SnapshotId::from_name("s"))),
            format_blank_restore: true,
            pvc: Some(PvcRef {
                namespace: "ns".into(),
                name: "data".into(),
            }),
            ..VolumeContext::default()
        };
        let m = c.to_map();
        assert!(m[key::CONTENT_SOURCE].starts_with("snapshot:snap-"));
        assert_eq!(m[key::FORMAT_BLANK_RESTORE], "true");
        c.migration_timeout_seconds = Some(DEFAULT_MIGRATION_TIMEOUT);
        assert_eq!(VolumeContext::parse(&m).unwrap(), c);
        let v = ContentSource::Volume(VolumeId::parse("pvc-9").unwrap());
        assert_eq!(ContentSource::parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn layout_round_trips_and_flat_is_the_absent_key() {
        let sub = VolumeContext {
            volume_path: Some("/storage-pool/metal-csi/pvc-1/volume.img".into()),
            layout: VolumeLayout::Subvolume,
            ..VolumeContext::default()
        };
        let m = sub.to_map();
        assert_eq!(m[key::VOLUME_LAYOUT], "subvolume");
        assert_eq!(
            VolumeContext::parse(&m).unwrap().layout,
            VolumeLayout::Subvolume
        );
        let mut c = sub.clone();
        c.migration_timeout_seconds = Some(DEFAULT_MIGRATION_TIMEOUT);
        assert_eq!(VolumeContext::parse(&m).unwrap(), c);
        // Flat is never written; an explicit "flat" (hand-written PV) reads as flat.
        let flat = VolumeContext::default().to_map();
        assert!(!flat.contains_key(key::VOLUME_LAYOUT), "{flat:?}");
        assert_eq!(
            VolumeContext::parse(&flat).unwrap().layout,
            VolumeLayout::Flat
        );
        let explicit = ctx(&[(key::VOLUME_LAYOUT, "flat")]);
        assert_eq!(
            VolumeContext::parse(&explicit).unwrap().layout,
            VolumeLayout::Flat
        );
        for l in [VolumeLayout::Flat, VolumeLayout::Subvolume] {
            assert_eq!(VolumeLayout::parse(l.as_str()), Some(l));
            assert_eq!(VolumeLayout::from_proto(l.to_proto() as i32), Some(l));
        }
        assert_eq!(
            VolumeLayout::from_proto(0),
            None,
            "UNSPECIFIED: the agent did not say"
        );
    }

    #[test]
    fn malformed_connection_keys_name_the_key() {
        for (k, v) in [
            ("nvmePort", "0"),
            ("nvmePort", "x"),
            ("nqn", "nqn.2000-02.com.mikrotik:PVC"),
            ("ctrlLossTmo", "-5"),
            ("reconnectDelay", "7200"),
            ("keepAliveTmo", "soon"),
            ("contentSource", "tape:1"),
            ("contentSource", "snapshot:a;b"),
            ("formatBlankRestore", "yes"),
            ("volumeLayout", "Subvolume"),
            ("volumeLayout", "btrfs"),
        ] {
            let e = VolumeContext::parse(&ctx(&[(k, v)])).unwrap_err();
            assert_eq!(e.key, k, "{k}={v}: {e}");
        }
    }

    #[test]
    fn advisory_keys_are_dropped_with_a_warning() {
        let c = VolumeContext::parse(&ctx(&[
            (key::PVC_NAME, "Bad Name"),
            (key::PVC_NAMESPACE, "ns"),
            (key::MIGRATION_TIMEOUT, "x"),
        ]))
        .unwrap();
        assert_eq!((c.pvc, c.migration_timeout_seconds), (None, None));
        assert_eq!(c.warnings.len(), 2);
        let c = VolumeContext::parse(&ctx(&[(key::MIGRATION_TIMEOUT, "99999")])).unwrap();
        assert_eq!(c.migration_timeout_seconds, Some(3600));
    }

    #[test]
    fn pvc_ref_crosses_the_wire_whole_or_not_at_all() {
        let p = PvcRef::new("ns", "claim").unwrap();
        let wire = p.to_proto();
        assert_eq!(
            (wire.namespace.as_str(), wire.name.as_str()),
            ("ns", "claim")
        );
        assert_eq!(PvcRef::from_proto(&wire), Some(p));
        for (ns, name) in [("", "claim"), ("ns", ""), ("", "")] {
            assert_eq!(PvcRef::new(ns, name), None);
            let half = rds_proto::common::PvcRef {
                namespace: ns.into(),
                name: name.into(),
            };
            assert_eq!(PvcRef::from_proto(&half), None, "{ns:?}/{name:?}");
        }
    }
}
