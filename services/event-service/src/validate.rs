//! Validation of a Post at the edge: ids through the bus newtypes, the PVC
//! reference against Kubernetes name rules, the typed event present and its
//! node names valid. What passes becomes a [`Pending`] event.

use rds_bus::{NodeId, PvcRef, VolumeId};
use rds_proto::event::{PostRequest, post_request::Event as Typed};

use crate::catalogue::{self, Rendered};
use crate::error::Error;

/// Longest free-text field (error text, reason, address, device) accepted.
/// Messages longer than the API's 1 KiB note limit are cut only on the way
/// to Kubernetes; the file sink keeps them whole.
pub const MAX_TEXT_LEN: usize = 4096;

/// A validated event waiting in the queue.
#[derive(Clone, Debug)]
pub struct Pending {
    /// When Post received it (RFC 3339 in the file sink).
    pub time: jiff::Timestamp,
    pub rendered: Rendered,
    pub volume_id: VolumeId,
    pub node_id: Option<NodeId>,
    /// From the request; the Kubernetes sink falls back to the PV's claimRef.
    pub pvc: Option<PvcRef>,
    /// Trace of the Post call (hex; empty when there is none).
    pub trace_id: String,
    /// OTel context of the Post span, so delivery spans join its trace.
    pub parent: opentelemetry::Context,
}

/// The checked parts of a request.
#[derive(Debug)]
pub struct Valid {
    pub rendered: Rendered,
    pub volume_id: VolumeId,
    pub node_id: Option<NodeId>,
    pub pvc: Option<PvcRef>,
}

pub fn check(req: &PostRequest) -> Result<Valid, Error> {
    let volume_id = VolumeId::parse(&req.volume_id)?;
    let node_id = match req.node_id.as_str() {
        "" => None,
        n => Some(NodeId::parse(n)?),
    };
    let event = req
        .event
        .as_ref()
        .ok_or_else(|| Error::InvalidRequest("no event set in PostRequest".to_owned()))?;
    if catalogue::needs_node_id(event) && node_id.is_none() {
        return Err(Error::InvalidRequest(
            "node events (MountFailure, RecoveryFailed, StaleMountDetected, Connection*) need node_id"
                .to_owned(),
        ));
    }
    check_event_fields(event)?;
    let pvc = match &req.pvc {
        Some(p) if p.namespace.is_empty() && p.name.is_empty() => None,
        Some(p) => {
            if !is_dns_label(&p.namespace) {
                return Err(Error::InvalidRequest(format!(
                    "invalid PVC namespace {:?}: must be a DNS-1123 label",
                    truncated(&p.namespace)
                )));
            }
            if !is_dns_subdomain(&p.name) {
                return Err(Error::InvalidRequest(format!(
                    "invalid PVC name {:?}: must be a DNS-1123 subdomain",
                    truncated(&p.name)
                )));
            }
            Some(PvcRef {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
            })
        }
        None => None,
    };
    let rendered = catalogue::message_for(req)
        .ok_or_else(|| Error::InvalidRequest("no event set in PostRequest".to_owned()))?;
    Ok(Valid {
        rendered,
        volume_id,
        node_id,
        pvc,
    })
}

fn check_event_fields(event: &Typed) -> Result<(), Error> {
    let node = |n: &str| NodeId::parse(n).map(|_| ()).map_err(Error::from);
    let text = |field: &str, v: &str| {
        if v.len() > MAX_TEXT_LEN {
            Err(Error::InvalidRequest(format!(
                "{field} is {} bytes; at most {MAX_TEXT_LEN} allowed",
                v.len()
            )))
        } else {
            Ok(())
        }
    };
    match event {
        Typed::VolumeAttached(e) => node(&e.node_id),
        Typed::VolumeDetached(e) => node(&e.node_id),
        Typed::StaleAttachmentCleared(e) => node(&e.node_id),
        Typed::MigrationStarted(e) => node(&e.source_node).and(node(&e.target_node)),
        Typed::MigrationCompleted(e) => node(&e.source_node).and(node(&e.target_node)),
        Typed::MigrationFailed(e) => node(&e.source_node)
            .and(node(&e.target_node))
            .and(text("reason", &e.reason)),
        Typed::AttachmentConflict(e) => node(&e.requested_node).and(node(&e.attached_node)),
        Typed::MountFailure(e) => text("error", &e.error),
        Typed::RecoveryFailed(e) => text("error", &e.error),
        Typed::StaleMountDetected(e) => {
            text("old_device", &e.old_device).and(text("new_device", &e.new_device))
        }
        Typed::ConnectionFailure(e) => text("address", &e.address).and(text("error", &e.error)),
        Typed::ConnectionRecovery(e) => text("address", &e.address),
        Typed::StorageFenceRepaired(e) => {
            text("found", &e.found).and(text("expected", &e.expected))
        }
        Typed::OrphanFileRefused(e) => {
            text("file_path", &e.file_path).and(text("inspect_command", &e.inspect_command))
        }
    }
}

fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

/// DNS-1123 label: ≤ 63 of `[a-z0-9-]`, alphanumeric at both ends (namespaces).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 subdomain: ≤ 253, dot-separated labels (most object names).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rds_proto::common::PvcRef as WirePvcRef;
    use rds_proto::event::VolumeAttached;

    fn attached(vol: &str, node: &str) -> PostRequest {
        PostRequest {
            volume_id: vol.into(),
            node_id: String::new(),
            pvc: None,
            event: Some(Typed::VolumeAttached(VolumeAttached {
                node_id: node.into(),
                duration_ms: 5,
            })),
        }
    }

    #[test]
    fn names() {
        assert!(is_dns_label("default"));
        assert!(!is_dns_label("Default"));
        assert!(!is_dns_label("-a"));
        assert!(is_dns_subdomain("data-db-0.x"));
        assert!(!is_dns_subdomain("a..b"));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(check(&attached("pvc-1", "n1")).is_ok());
        assert!(matches!(
            check(&attached("bad id!", "n1")),
            Err(Error::InvalidId(_))
        ));
        assert!(matches!(
            check(&attached("pvc-1", "")),
            Err(Error::InvalidId(_))
        ));
        let mut r = attached("pvc-1", "n1");
        r.event = None;
        assert!(matches!(check(&r), Err(Error::InvalidRequest(_))));
        let mut r = attached("pvc-1", "n1");
        r.pvc = Some(WirePvcRef {
            namespace: "ns".into(),
            name: String::new(),
        });
        assert!(matches!(check(&r), Err(Error::InvalidRequest(_))));
        let mut r = attached("pvc-1", "n1");
        r.pvc = Some(WirePvcRef::default());
        assert!(check(&r).is_ok_and(|v| v.pvc.is_none()));
    }
}
