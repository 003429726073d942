//! The one catalogue of events: reason, type, action and the exact message
//! text of each typed event, as the Go driver wrote them
//! (docs/csi.md §9.2).
//!
//! Message formats (literal brackets, Go `fmt.Sprintf` verbs):
//! - attachment events: `[<vol>]: …`
//! - node events: `[<vol>] on [<node>]: …`
//! - durations via [`crate::go_duration`]: VolumeAttached rounds to the
//!   millisecond (`duration.Round(time.Millisecond)`), the migration events
//!   to the second (`Round(time.Second)`), exactly like the Go driver.

use rds_proto::event::{PostRequest, post_request::Event as Typed};

use crate::go_duration;

/// Kubernetes event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One rendered catalogue entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// e.g. `VolumeAttached` (the Go driver's reason constants).
    pub reason: &'static str,
    pub type_: EventType,
    /// Exact Go-driver message text.
    pub message: String,
    /// events.k8s.io `action` (required by the API; the Go driver used core/v1
    /// events, which have none): what the driver was doing.
    pub action: &'static str,
    /// The node the event is about, posted as the event's `related` object,
    /// so events about different nodes are not merged by the Recorder's
    /// dedup (its key is reason + action + regarding + related, not the note).
    pub related_node: Option<String>,
}

/// Every reason the catalogue can produce (for metrics pre-registration and
/// for tests that walk the whole catalogue).
pub const REASONS: [&str; 14] = [
    "VolumeAttached",
    "VolumeDetached",
    "StaleAttachmentCleared",
    "MigrationStarted",
    "MigrationCompleted",
    "MigrationFailed",
    "AttachmentConflict",
    "MountFailure",
    "RecoveryFailed",
    "StaleMountDetected",
    "ConnectionFailure",
    "ConnectionRecovery",
    "StorageFenceRepaired",
    "OrphanFileRefused",
];

/// Renders the event of `req`; `None` when no event is set.
///
/// Values are inserted as given (validation happens before, in
/// [`crate::validate`]); node events name `req.node_id`.
#[expect(
    clippy::too_many_lines,
    reason = "the event catalogue: one arm per event with its reason, type, action and \
              message, read side by side; split up it would scatter the catalogue"
)]
pub fn message_for(req: &PostRequest) -> Option<Rendered> {
    let vol = req.volume_id.as_str();
    let node = req.node_id.as_str();
    let entry = |reason, type_, action, message: String, related: &str| Rendered {
        reason,
        type_,
        message,
        action,
        related_node: (!related.is_empty()).then(|| related.to_owned()),
    };
    use EventType::{Normal, Warning};
    let r = match req.event.as_ref()? {
        Typed::VolumeAttached(e) => entry(
            "VolumeAttached",
            Normal,
            "Attach",
            format!(
                "[{vol}]: Attached to node {} (duration: {})",
                e.node_id,
                go_duration::millis_rounded_to_millis(e.duration_ms)
            ),
            &e.node_id,
        ),
        Typed::VolumeDetached(e) => entry(
            "VolumeDetached",
            Normal,
            "Detach",
            format!("[{vol}]: Detached from node {}", e.node_id),
            &e.node_id,
        ),
        Typed::StaleAttachmentCleared(e) => entry(
            "StaleAttachmentCleared",
            Normal,
            "ClearStaleAttachment",
            format!(
                "[{vol}]: Cleared stale attachment from deleted node {}",
                e.node_id
            ),
            &e.node_id,
        ),
        Typed::MigrationStarted(e) => entry(
            "MigrationStarted",
            Normal,
            "Migrate",
            format!(
                "[{vol}]: KubeVirt live migration started - source: {}, target: {}, timeout: {}",
                e.source_node,
                e.target_node,
                go_duration::seconds(u64::from(e.timeout_seconds))
            ),
            &e.target_node,
        ),
        Typed::MigrationCompleted(e) => entry(
            "MigrationCompleted",
            Normal,
            "Migrate",
            format!(
                "[{vol}]: KubeVirt live migration completed - source: {} -> target: {} (duration: {})",
                e.source_node,
                e.target_node,
                go_duration::millis_rounded_to_seconds(e.duration_ms)
            ),
            &e.target_node,
        ),
        Typed::MigrationFailed(e) => entry(
            "MigrationFailed",
            Warning,
            "Migrate",
            format!(
                "[{vol}]: KubeVirt live migration failed - source: {}, attempted target: {}, reason: {}, elapsed: {}",
                e.source_node,
                e.target_node,
                e.reason,
                go_duration::millis_rounded_to_seconds(e.elapsed_ms)
            ),
            &e.target_node,
        ),
        Typed::AttachmentConflict(e) => entry(
            "AttachmentConflict",
            Warning,
            "Attach",
            format!(
                "[{vol}]: Attachment to node {req_node} rejected - volume already attached to node {att}. Delete the pod on {att} to release the volume.",
                req_node = e.requested_node,
                att = e.attached_node
            ),
            &e.requested_node,
        ),
        Typed::MountFailure(e) => entry(
            "MountFailure",
            Warning,
            "StageVolume",
            format!("[{vol}] on [{node}]: stage volume failed: {}", e.error),
            node,
        ),
        Typed::RecoveryFailed(e) => entry(
            "RecoveryFailed",
            Warning,
            "RecoverMount",
            format!(
                "[{vol}] on [{node}]: Recovery failed after {} attempts: {}",
                e.attempts, e.error
            ),
            node,
        ),
        Typed::StaleMountDetected(e) => entry(
            "StaleMountDetected",
            Normal,
            "PublishVolume",
            format!(
                "[{vol}] on [{node}]: Stale mount detected - old device: {}, new device: {}",
                e.old_device, e.new_device
            ),
            node,
        ),
        Typed::ConnectionFailure(e) => entry(
            "ConnectionFailure",
            Warning,
            "Connect",
            format!(
                "[{vol}] on [{node}]: Connection to {} failed: {}",
                e.address, e.error
            ),
            node,
        ),
        Typed::ConnectionRecovery(e) => entry(
            "ConnectionRecovery",
            Normal,
            "Connect",
            format!(
                "[{vol}] on [{node}]: Connection to {} recovered after {} attempts",
                e.address, e.attempts
            ),
            node,
        ),
        Typed::StorageFenceRepaired(e) => entry(
            "StorageFenceRepaired",
            Warning,
            "Fence",
            format!(
                "[{vol}]: storage fence drift repaired - the RDS admitted [{}], set back to [{}]",
                e.found, e.expected
            ),
            node,
        ),
        Typed::OrphanFileRefused(e) => entry(
            "OrphanFileRefused",
            Warning,
            "Provision",
            format!(
                "[{vol}]: backing file {} exists without a disk entry; not overwritten - inspect it with: {}",
                e.file_path, e.inspect_command
            ),
            node,
        ),
    };
    Some(r)
}

/// Whether the typed event is about a node-side operation (its message reads
/// `[vol] on [node]`), so the request must name the node.
pub fn needs_node_id(event: &Typed) -> bool {
    matches!(
        event,
        Typed::MountFailure(_)
            | Typed::RecoveryFailed(_)
            | Typed::StaleMountDetected(_)
            | Typed::ConnectionFailure(_)
            | Typed::ConnectionRecovery(_)
    )
}
