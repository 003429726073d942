//! The attachment table's record and its conversions to and from the bus
//! proto. A record is one volume: the node(s) holding it (two only during a
//! live migration), how it is accessed and the PVC it belongs to.

use jiff::Timestamp;
use rds_bus::{NodeId, VolumeId};
use rds_proto::attachment as pb;

use crate::error::Error;

/// CSI access modes (docs/csi.md §6): the four single-node modes hold one node;
/// the two multi-node modes are for block volumes and a migration window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessMode {
    SingleNodeWriter,
    SingleNodeReaderOnly,
    SingleNodeSingleWriter,
    SingleNodeMultiWriter,
    MultiNodeMultiWriter,
    MultiNodeReaderOnly,
}

impl AccessMode {
    pub fn is_multi_node(self) -> bool {
        matches!(
            self,
            AccessMode::MultiNodeMultiWriter | AccessMode::MultiNodeReaderOnly
        )
    }

    pub fn as_str(self) -> &'static str {
        self.to_proto().as_str_name()
    }

    pub fn from_proto(v: i32) -> Result<Self, Error> {
        use pb::AccessMode as P;
        match P::try_from(v) {
            Ok(P::SingleNodeWriter) => Ok(AccessMode::SingleNodeWriter),
            Ok(P::SingleNodeReaderOnly) => Ok(AccessMode::SingleNodeReaderOnly),
            Ok(P::SingleNodeSingleWriter) => Ok(AccessMode::SingleNodeSingleWriter),
            Ok(P::SingleNodeMultiWriter) => Ok(AccessMode::SingleNodeMultiWriter),
            Ok(P::MultiNodeMultiWriter) => Ok(AccessMode::MultiNodeMultiWriter),
            Ok(P::MultiNodeReaderOnly) => Ok(AccessMode::MultiNodeReaderOnly),
            Ok(P::Unspecified) => Err(Error::InvalidArgument("access_mode must be set".to_owned())),
            Err(_) => Err(Error::InvalidArgument(format!("unknown access_mode {v}"))),
        }
    }

    pub fn to_proto(self) -> pb::AccessMode {
        use pb::AccessMode as P;
        match self {
            AccessMode::SingleNodeWriter => P::SingleNodeWriter,
            AccessMode::SingleNodeReaderOnly => P::SingleNodeReaderOnly,
            AccessMode::SingleNodeSingleWriter => P::SingleNodeSingleWriter,
            AccessMode::SingleNodeMultiWriter => P::SingleNodeMultiWriter,
            AccessMode::MultiNodeMultiWriter => P::MultiNodeMultiWriter,
            AccessMode::MultiNodeReaderOnly => P::MultiNodeReaderOnly,
        }
    }
}

/// The one PVC reference type (same `{namespace, name}` JSON in the store).
pub use rds_bus::PvcRef;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAttachment {
    pub node: NodeId,
    pub attached_at: Timestamp,
    pub readonly: bool,
}

/// The live-migration window of an RWX volume held by two nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    pub started_at: Timestamp,
    pub timeout_secs: u32,
    /// The window expired while both nodes still held the volume. Both stay
    /// attached (either may still be writing); MigrationFailed was posted.
    pub timed_out: bool,
}

impl Migration {
    pub fn deadline(&self) -> Timestamp {
        self.started_at
            .saturating_add(jiff::SignedDuration::from_secs(i64::from(
                self.timeout_secs,
            )))
            .unwrap_or(Timestamp::MAX)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub volume: VolumeId,
    /// Index 0 = the holder (the migration source while two nodes hold it),
    /// index 1 = the migration target.
    pub nodes: Vec<NodeAttachment>,
    pub access_mode: AccessMode,
    pub block: bool,
    pub pvc: Option<PvcRef>,
    /// The migration window asked for at attach time (seconds).
    pub migration_timeout_secs: u32,
    /// Set while two nodes hold the volume.
    pub migration: Option<Migration>,
    /// Access mode, volume mode and readonly were inferred from the API (a
    /// rebuild or a VolumeAttachment seen by the watch), not received in an
    /// Attach; the holder's next Attach replaces them instead of being
    /// refused as incompatible.
    pub inferred: bool,
}

impl Record {
    pub fn holds(&self, node: &NodeId) -> bool {
        self.nodes.iter().any(|n| &n.node == node)
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.node.clone()).collect()
    }

    pub fn to_proto(&self) -> pb::Attachment {
        pb::Attachment {
            volume_id: self.volume.to_string(),
            nodes: self
                .nodes
                .iter()
                .map(|n| pb::NodeAttachment {
                    node_id: n.node.to_string(),
                    attached_at: Some(timestamp_to_proto(n.attached_at)),
                    readonly: n.readonly,
                })
                .collect(),
            access_mode: self.access_mode.to_proto() as i32,
            block: self.block,
            pvc: self.pvc.as_ref().map(PvcRef::to_proto),
            migration_started_at: self
                .migration
                .as_ref()
                .map(|m| timestamp_to_proto(m.started_at)),
            migration_timeout_seconds: self.migration_timeout_secs,
        }
    }
}

pub fn timestamp_to_proto(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}
