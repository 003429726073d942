//! Node events through a hook: the node role wires [`EventSink`] to
//! event-service (best effort, never blocking the RPC); tests record them.

use std::sync::{Mutex, PoisonError};

use rds_bus::NodeId;
use rds_proto::event as pb;

use crate::source::PvcRef;

/// A node event about one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    pub volume_id: String,
    pub pvc: Option<PvcRef>,
    pub kind: NodeEventKind,
}

/// The node events of docs/csi.md §9.1, plus one the bus has no message for yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEventKind {
    StaleMountDetected {
        old_device: String,
        new_device: String,
    },
    MountFailure {
        error: String,
    },
    ConnectionFailure {
        address: String,
        error: String,
    },
    ConnectionRecovery {
        address: String,
        attempts: u32,
    },
    RecoveryFailed {
        attempts: u32,
        error: String,
    },
    /// Unpublish/unstage went ahead despite a busy mount or device after
    /// bounded retries (lazy unmount / detach anyway). No rds.event.v1
    /// message exists for it yet: the node role logs it.
    ForcedCleanup {
        detail: String,
    },
    /// Unstage/unpublish refused: the volume is in use (delivered as a
    /// MountFailure event until the bus has its own message).
    InUse {
        detail: String,
    },
    /// A format was refused: the device does not read as provably blank, or
    /// it is a restore/clone that reads blank (delivered as MountFailure).
    FormatRefused {
        detail: String,
    },
}

impl NodeEventKind {
    pub fn reason(&self) -> &'static str {
        match self {
            NodeEventKind::StaleMountDetected { .. } => "StaleMountDetected",
            NodeEventKind::MountFailure { .. } => "MountFailure",
            NodeEventKind::ConnectionFailure { .. } => "ConnectionFailure",
            NodeEventKind::ConnectionRecovery { .. } => "ConnectionRecovery",
            NodeEventKind::RecoveryFailed { .. } => "RecoveryFailed",
            NodeEventKind::ForcedCleanup { .. } => "ForcedCleanup",
            NodeEventKind::InUse { .. } => "VolumeInUse",
            NodeEventKind::FormatRefused { .. } => "FormatRefused",
        }
    }
}

impl NodeEvent {
    /// The event-service request for this event; `None` for kinds the bus
    /// has no message for (the node role logs those).
    pub fn to_post_request(&self, node_id: &NodeId) -> Option<pb::PostRequest> {
        use pb::post_request::Event;
        let event = match &self.kind {
            NodeEventKind::StaleMountDetected {
                old_device,
                new_device,
            } => Event::StaleMountDetected(pb::StaleMountDetected {
                old_device: old_device.clone(),
                new_device: new_device.clone(),
            }),
            NodeEventKind::MountFailure { error } => Event::MountFailure(pb::MountFailure {
                error: error.clone(),
            }),
            NodeEventKind::ConnectionFailure { address, error } => {
                Event::ConnectionFailure(pb::ConnectionFailure {
                    address: address.clone(),
                    error: error.clone(),
                })
            }
            NodeEventKind::ConnectionRecovery { address, attempts } => {
                Event::ConnectionRecovery(pb::ConnectionRecovery {
                    address: address.clone(),
                    attempts: *attempts,
                })
            }
            NodeEventKind::RecoveryFailed { attempts, error } => {
                Event::RecoveryFailed(pb::RecoveryFailed {
                    attempts: *attempts,
                    error: error.clone(),
                })
            }
            NodeEventKind::InUse { detail } | NodeEventKind::FormatRefused { detail } => {
                Event::MountFailure(pb::MountFailure {
                    error: detail.clone(),
                })
            }
            NodeEventKind::ForcedCleanup { .. } => return None,
        };
        Some(pb::PostRequest {
            volume_id: self.volume_id.clone(),
            node_id: node_id.to_string(),
            pvc: self.pvc.as_ref().map(PvcRef::to_proto),
            event: Some(event),
        })
    }
}

/// Where node events go. Must not block (queue and return).
pub trait EventSink: Send + Sync {
    fn post(&self, event: NodeEvent);
}

/// Drops every event (tools that run the plane without event-service).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopEventSink;

impl EventSink for NoopEventSink {
    fn post(&self, _event: NodeEvent) {}
}

/// Keeps every event (tests).
#[derive(Debug, Default)]
pub struct RecordingEventSink {
    events: Mutex<Vec<NodeEvent>>,
}

impl RecordingEventSink {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn events(&self) -> Vec<NodeEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn reasons(&self) -> Vec<&'static str> {
        self.events().iter().map(|e| e.kind.reason()).collect()
    }
}

impl EventSink for RecordingEventSink {
    fn post(&self, event: NodeEvent) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn maps_to_event_service_requests() {
        let node = NodeId::parse("worker-1").unwrap();
        let e = NodeEvent {
            volume_id: "pvc-1".into(),
            pvc: Some(PvcRef {
                namespace: "ns".into(),
                name: "data".into(),
            }),
            kind: NodeEventKind::StaleMountDetected {
                old_device: "/dev/nvme0n1".into(),
                new_device: "/dev/nvme3n1".into(),
            },
        };
        let req = e.to_post_request(&node).unwrap();
        assert_eq!(req.node_id, "worker-1");
        assert_eq!(req.pvc.unwrap().name, "data");
        assert!(
            matches!(req.event, Some(pb::post_request::Event::StaleMountDetected(ref s)) if s.new_device == "/dev/nvme3n1")
        );
        let forced = NodeEvent {
            kind: NodeEventKind::ForcedCleanup { detail: "x".into() },
            ..e
        };
        assert!(forced.to_post_request(&node).is_none());
    }
}
