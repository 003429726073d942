//! Id newtypes that validate once, at the edge (docs/csi.md §2). Everything
//! past the edge takes these types, so an unchecked string can never reach a
//! RouterOS command, a path or a log line as an id.

use std::fmt;

/// NQN prefix of every volume the driver manages (Go-driver compatible).
pub const MANAGED_NQN_PREFIX: &str = "nqn.2000-02.com.mikrotik:";

/// Default `--managed-nqn-prefix` of the agent and the node: the Go driver's
/// `pvc-` guard, so a disk of the same RDS under another name (a node's boot
/// disk) is never created, connected or swept by this driver.
pub const DEFAULT_MANAGED_NQN_PREFIX: &str = "nqn.2000-02.com.mikrotik:pvc-";

/// The one host an export admits while no node holds its volume (storage
/// fencing). RouterOS reads an empty allow list as "any host", so "nobody" is
/// a host NQN no node of this driver presents (nodes use
/// [`UUID_HOST_NQN_PREFIX`]); see docs/safety.md.
pub const NO_HOST_NQN: &str = "nqn.2000-02.com.mikrotik:rds-csi-no-host";

/// Prefix of every snapshot id ([`SnapshotId::from_name`], the Go driver's
/// formula). Volumes and snapshots share the RouterOS slot namespace, so a
/// volume id may not start with it: a snapshot is never taken for a volume.
pub const SNAPSHOT_PREFIX: &str = "snap-";

/// Longest value of a disk's ownership tag (a DNS subdomain, the longest
/// Kubernetes name).
pub const TAG_VALUE_MAX: usize = 253;

/// A value of a disk's ownership tag (`comment="rds-csi: cluster=… pv=…
/// pvc=<ns>/<name>"`, docs/decisions.md §13): `[a-z0-9][a-z0-9.-]*`, at most
/// [`TAG_VALUE_MAX`] bytes — what Kubernetes allows in names and namespaces,
/// and nothing RouterOS would need to escape. One grammar for the frontend
/// (which leaves a bad value out) and rds-agent (which refuses it).
pub fn is_tag_value(v: &str) -> bool {
    v.len() <= TAG_VALUE_MAX
        && v.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
}

/// Longest volume/snapshot id (CSI names are at most 128 bytes).
const MAX_ID_LEN: usize = 128;
/// Longest node id (a Kubernetes node name is a DNS subdomain, ≤ 253).
const MAX_NODE_LEN: usize = 253;
/// Longest NQN the NVMe spec allows.
const MAX_NQN_LEN: usize = 223;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {why}")]
pub struct IdError {
    pub kind: &'static str,
    /// The offending value, truncated so a hostile input cannot flood logs.
    pub value: String,
    pub why: &'static str,
}

impl IdError {
    fn new(kind: &'static str, value: &str, why: &'static str) -> Self {
        let value: String = value.chars().take(64).collect();
        IdError { kind, value, why }
    }
}

/// `^[A-Za-z0-9][A-Za-z0-9-]{0,127}$` — the one grammar of volume ids,
/// snapshot ids and RouterOS slots. Every accepted value is a bare RouterOS
/// token (nothing to quote or escape).
fn check_slot_grammar(kind: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::new(kind, s, "must not be empty"));
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::new(kind, s, "longer than 128 bytes"));
    }
    let mut chars = s.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err(IdError::new(kind, s, "must start with a letter or digit"));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(IdError::new(
            kind,
            s,
            "only letters, digits and '-' are allowed",
        ));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

/// A volume id = the CSI CreateVolume name = the RouterOS disk slot
/// (e.g. `pvc-<uuid>`, or `sanity-…` names from conformance suites).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VolumeId(String);
string_newtype!(VolumeId);

impl VolumeId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_slot_grammar("volume id", s)?;
        Ok(VolumeId(s.to_owned()))
    }

    /// This volume's NQN ([`Nqn::for_volume`]).
    pub fn nqn(&self) -> Nqn {
        Nqn::for_volume(&Slot::from(self))
    }

    /// True when the id uses the snapshot prefix (CreateVolume refuses it).
    pub fn has_snapshot_prefix(&self) -> bool {
        self.0.starts_with(SNAPSHOT_PREFIX)
    }

    /// Backing file of this volume under `base` (`<base>/<id>.img`).
    pub fn file_name(&self) -> String {
        format!("{}.img", self.0)
    }
}

/// A snapshot id = the RouterOS slot of the snapshot disk.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotId(String);
string_newtype!(SnapshotId);

impl SnapshotId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_slot_grammar("snapshot id", s)?;
        Ok(SnapshotId(s.to_owned()))
    }

    /// The Go driver's deterministic id for a CSI snapshot name:
    /// `snap-<uuidv5(DNS, name)>-at-<first 10 hex of that uuid>`, so snapshots
    /// it created are found again by name.
    pub fn from_name(name: &str) -> Self {
        let u = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, name.as_bytes());
        let simple = u.simple().to_string();
        SnapshotId(format!(
            "{SNAPSHOT_PREFIX}{}-at-{}",
            u.hyphenated(),
            &simple[..10]
        ))
    }

    /// True when the id uses the snapshot prefix (every snapshot this driver
    /// or the Go driver created does).
    pub fn has_snapshot_prefix(&self) -> bool {
        self.0.starts_with(SNAPSHOT_PREFIX)
    }
}

/// A RouterOS disk `slot` (the `/disk` item name): the id of a volume or of a
/// snapshot disk. Same grammar as [`VolumeId`] and [`SnapshotId`], which
/// convert into it without a second check; [`Slot::parse`] is for slots read
/// back from RouterOS output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(String);
string_newtype!(Slot);

impl Slot {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_slot_grammar("slot", s)?;
        Ok(Slot(s.to_owned()))
    }

    /// Same as [`Slot::parse`] (the RouterOS crate's constructor name).
    pub fn new(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl From<&VolumeId> for Slot {
    fn from(v: &VolumeId) -> Slot {
        Slot(v.0.clone())
    }
}
impl From<VolumeId> for Slot {
    fn from(v: VolumeId) -> Slot {
        Slot(v.0)
    }
}
impl From<&SnapshotId> for Slot {
    fn from(v: &SnapshotId) -> Slot {
        Slot(v.0.clone())
    }
}
impl From<SnapshotId> for Slot {
    fn from(v: SnapshotId) -> Slot {
        Slot(v.0)
    }
}

/// A node id (Kubernetes node name or, in local mode, a host name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);
string_newtype!(NodeId);

impl NodeId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::new("node id", s, "must not be empty"));
        }
        if s.len() > MAX_NODE_LEN {
            return Err(IdError::new("node id", s, "longer than 253 bytes"));
        }
        let mut chars = s.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) {
            return Err(IdError::new(
                "node id",
                s,
                "must start with a letter or digit",
            ));
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
            return Err(IdError::new(
                "node id",
                s,
                "only letters, digits, '-', '.' and '_' are allowed",
            ));
        }
        Ok(NodeId(s.to_owned()))
    }
}

/// An NVMe qualified name, `^nqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9.-]+:[a-z0-9._-]+$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nqn(String);
string_newtype!(Nqn);

impl Nqn {
    /// The one "NQN of a volume": [`MANAGED_NQN_PREFIX`] + the slot
    /// lowercased (the Go driver's rule). Always a valid NQN: the slot
    /// grammar lowercased is inside the NQN name grammar and ≤ 128 bytes.
    pub fn for_volume(slot: &Slot) -> Nqn {
        Nqn(format!(
            "{MANAGED_NQN_PREFIX}{}",
            slot.0.to_ascii_lowercase()
        ))
    }

    /// Same as [`Nqn::parse`] (the RouterOS crate's constructor name).
    pub fn new(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bad = |why| Err(IdError::new("nqn", s, why));
        if s.len() > MAX_NQN_LEN {
            return bad("longer than 223 bytes");
        }
        let Some(rest) = s.strip_prefix("nqn.") else {
            return bad("must start with 'nqn.'");
        };
        let date_ok = rest.len() > 8
            && rest.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && rest.as_bytes()[4] == b'-'
            && rest.as_bytes()[5..7].iter().all(u8::is_ascii_digit)
            && rest.as_bytes()[7] == b'.';
        if !date_ok {
            return bad("expected nqn.yyyy-mm.<domain>:<name>");
        }
        let Some((domain, name)) = rest[8..].split_once(':') else {
            return bad("missing ':' between domain and name");
        };
        let lower = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        if domain.is_empty() || !domain.chars().all(|c| lower(c) || c == '.' || c == '-') {
            return bad("domain must be [a-z0-9.-]+");
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| lower(c) || matches!(c, '.' | '_' | '-'))
        {
            return bad("name must be [a-z0-9._-]+");
        }
        Ok(Nqn(s.to_owned()))
    }

    /// True when the driver may touch this subsystem (nodes may boot from the
    /// same RDS with other NQNs: never disconnect those).
    pub fn is_managed(&self) -> bool {
        self.0.starts_with(MANAGED_NQN_PREFIX)
    }
}

/// Host NQN prefix of the NVMe spec's UUID-based host NQNs.
pub const UUID_HOST_NQN_PREFIX: &str = "nqn.2014-08.org.nvmexpress:uuid:";

/// Namespace of every derived host id: uuidv5(DNS, "rds.csi.srvlab.io").
fn host_id_namespace() -> uuid::Uuid {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, b"rds.csi.srvlab.io")
}

/// A node's NVMe host identity: what `nvme connect -q/-I` presents to the
/// RDS. Derived from the cluster id and the node name, so every node has
/// its own, nothing is baked into an image, and the controller can compute
/// any node's host NQN without asking it (docs/decisions.md).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostIdentity {
    host_nqn: String,
    host_id: uuid::Uuid,
}

impl HostIdentity {
    /// `host_id = uuidv5(uuidv5(ns, cluster_id), node)`,
    /// `host_nqn = nqn.2014-08.org.nvmexpress:uuid:<host_id>`.
    pub fn derive(cluster_id: &ClusterId, node: &NodeId) -> Self {
        let cluster = uuid::Uuid::new_v5(&host_id_namespace(), cluster_id.as_str().as_bytes());
        let host_id = uuid::Uuid::new_v5(&cluster, node.as_str().as_bytes());
        HostIdentity {
            host_nqn: format!("{UUID_HOST_NQN_PREFIX}{}", host_id.hyphenated()),
            host_id,
        }
    }

    /// An explicit identity (operator override): `nqn.` + yyyy-mm + `.`, at
    /// most 223 bytes of `[a-z0-9.:_-]`, and a UUID host id.
    pub fn explicit(host_nqn: &str, host_id: &str) -> Result<Self, IdError> {
        let bad = |why| Err(IdError::new("host nqn", host_nqn, why));
        if host_nqn.len() > MAX_NQN_LEN {
            return bad("longer than 223 bytes");
        }
        let Some(rest) = host_nqn.strip_prefix("nqn.") else {
            return bad("must start with 'nqn.'");
        };
        let b = rest.as_bytes();
        let date_ok = b.len() > 8
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[5..7].iter().all(u8::is_ascii_digit)
            && b[7] == b'.';
        if !date_ok || !rest.contains(':') {
            return bad("expected nqn.yyyy-mm.<domain>:<name>");
        }
        if !rest.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | ':' | '_' | '-')
        }) {
            return bad("only [a-z0-9.:_-] are allowed");
        }
        let host_id = uuid::Uuid::parse_str(host_id)
            .map_err(|_| IdError::new("host id", host_id, "must be a UUID"))?;
        Ok(HostIdentity {
            host_nqn: host_nqn.to_owned(),
            host_id,
        })
    }

    pub fn host_nqn(&self) -> &str {
        &self.host_nqn
    }

    /// The host id in nvme-cli's form (lowercase, hyphenated).
    pub fn host_id(&self) -> String {
        self.host_id.hyphenated().to_string()
    }
}

/// A cluster id (input of [`HostIdentity::derive`]): 1-63 of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(String);
string_newtype!(ClusterId);

impl ClusterId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() || s.len() > 63 {
            return Err(IdError::new("cluster id", s, "must be 1-63 bytes"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(IdError::new(
                "cluster id",
                s,
                "only letters, digits, '.', '_' and '-' are allowed",
            ));
        }
        Ok(ClusterId(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn volume_ids_follow_the_grammar() {
        for ok in [
            "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8",
            "a",
            "sanity-node-full-1A",
        ] {
            assert!(VolumeId::parse(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in [
            "",
            "-x",
            "a b",
            "a;b",
            "a\"b",
            "a$b",
            "a\\b",
            "a[b",
            "a\nb",
            "/system reboot",
            long.as_str(),
            "ä",
        ] {
            assert!(VolumeId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(VolumeId::parse(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn nqn_is_lowercased_id_with_managed_prefix() {
        let v = VolumeId::parse("PVC-ABC").unwrap();
        assert_eq!(v.nqn().as_str(), "nqn.2000-02.com.mikrotik:pvc-abc");
        assert!(v.nqn().is_managed());
        assert!(Nqn::parse(v.nqn().as_str()).is_ok());
        let other = Nqn::parse("nqn.2014-08.org.nvmexpress:uuid-1").unwrap();
        assert!(!other.is_managed());
        for bad in [
            "nqn.2000-02.com.mikrotik:PVC",
            "nqn.20x0-02.a:b",
            "nqn.2000-02.a",
            "nqn.2000-02.a:b;c",
            "x",
        ] {
            assert!(Nqn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn snapshot_id_matches_the_go_driver_formula() {
        let id = SnapshotId::from_name("snapshot-1");
        let s = id.as_str();
        assert!(s.starts_with("snap-") && s.contains("-at-"), "{s}");
        let (uuid_part, hex) = s["snap-".len()..].split_once("-at-").unwrap();
        let u = uuid::Uuid::parse_str(uuid_part).unwrap();
        assert_eq!(u.get_version_num(), 5);
        assert_eq!(hex, &u.simple().to_string()[..10]);
        assert_eq!(id, SnapshotId::from_name("snapshot-1"), "deterministic");
        assert_ne!(id, SnapshotId::from_name("snapshot-2"));
        assert!(SnapshotId::parse(s).is_ok());
    }

    #[test]
    fn node_ids() {
        assert!(NodeId::parse("worker-1.example.com").is_ok());
        assert!(NodeId::parse("").is_err());
        assert!(NodeId::parse("a/b").is_err());
    }

    #[test]
    fn host_identity_is_per_node_and_deterministic() {
        let c = ClusterId::parse("prod-1").unwrap();
        let a = HostIdentity::derive(&c, &NodeId::parse("worker-a").unwrap());
        let b = HostIdentity::derive(&c, &NodeId::parse("worker-b").unwrap());
        assert_ne!(a, b);
        assert_ne!(a.host_id(), b.host_id());
        assert_eq!(
            a,
            HostIdentity::derive(&c, &NodeId::parse("worker-a").unwrap())
        );
        let other = HostIdentity::derive(
            &ClusterId::parse("prod-2").unwrap(),
            &NodeId::parse("worker-a").unwrap(),
        );
        assert_ne!(a, other, "the cluster id separates clusters sharing an RDS");
        assert_eq!(
            a.host_nqn(),
            format!("{UUID_HOST_NQN_PREFIX}{}", a.host_id())
        );
        let again = HostIdentity::explicit(a.host_nqn(), &a.host_id()).unwrap();
        assert_eq!(again, a);
        assert!(HostIdentity::explicit("nqn.2014-08.org.x:host A", &a.host_id()).is_err());
        assert!(HostIdentity::explicit(a.host_nqn(), "not-a-uuid").is_err());
        assert!(ClusterId::parse("a b").is_err());
        assert!(ClusterId::parse("").is_err());
    }

    #[test]
    fn a_slot_is_the_id_itself_with_the_same_grammar() {
        for ok in ["pvc-1", "Sanity-A", "snap-x-at-0123456789"] {
            let v = VolumeId::parse(ok).unwrap();
            assert_eq!(Slot::from(&v), Slot::parse(ok).unwrap());
            assert_eq!(Slot::from(v.clone()).as_str(), ok);
            assert_eq!(Nqn::for_volume(&Slot::from(&v)), v.nqn(), "one NQN rule");
            let s = SnapshotId::parse(ok).unwrap();
            assert_eq!(Slot::from(&s).as_str(), ok);
        }
        for bad in ["", "-x", "a b", "a;b", "a\"b", "ä"] {
            assert!(Slot::parse(bad).is_err(), "{bad:?}");
            assert!(VolumeId::parse(bad).is_err(), "{bad:?}");
            assert!(SnapshotId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Slot::parse(&"a".repeat(129)).is_err());
        let longest = VolumeId::parse(&"A".repeat(128)).unwrap();
        assert!(Nqn::parse(longest.nqn().as_str()).is_ok());
        assert!(SnapshotId::from_name("n").has_snapshot_prefix());
        assert!(VolumeId::parse("snap-1").unwrap().has_snapshot_prefix());
        assert!(!VolumeId::parse("pvc-1").unwrap().has_snapshot_prefix());
        assert!(DEFAULT_MANAGED_NQN_PREFIX.starts_with(MANAGED_NQN_PREFIX));
    }
}
