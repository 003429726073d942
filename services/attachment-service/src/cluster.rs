//! What the outside world says about nodes and VolumeAttachments, for the
//! reconciler (is this attachment stale?) and for Attach (does the node
//! exist?). `Unknown` always means "do nothing": the reconciler never clears
//! on a guess, e.g. before a watch has synced.

use std::collections::BTreeSet;

use rds_bus::{NodeId, VolumeId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Present,
    Gone,
    Unknown,
}

pub trait Cluster: Send + Sync + 'static {
    /// Does the node exist?
    fn node(&self, node: &NodeId) -> Presence;
    /// Does a VolumeAttachment (ours) for this volume on this node exist?
    fn attachment_object(&self, volume: &VolumeId, node: &NodeId) -> Presence;
    /// Err(why) while the view Attach and Detach decide on is incomplete
    /// (Kubernetes mode: the VolumeAttachment cache is being (re)listed).
    fn decisions_ready(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Local mode: the configured node ids (none configured → `Unknown`, so the
/// reconciler skips); there are no VolumeAttachments.
pub struct KnownNodes(Option<BTreeSet<NodeId>>);

impl KnownNodes {
    pub fn new(nodes: &[NodeId]) -> Self {
        KnownNodes((!nodes.is_empty()).then(|| nodes.iter().cloned().collect()))
    }
}

impl Cluster for KnownNodes {
    fn node(&self, node: &NodeId) -> Presence {
        match &self.0 {
            None => Presence::Unknown,
            Some(set) if set.contains(node) => Presence::Present,
            Some(_) => Presence::Gone,
        }
    }

    fn attachment_object(&self, _: &VolumeId, _: &NodeId) -> Presence {
        Presence::Unknown
    }
}
