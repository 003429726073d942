//! The node attach limit on the controller side. NodeGetInfo reports
//! `max_volumes_per_node` (one figure for the whole cluster, the same flag on
//! both roles) and the scheduler places pods by it; ControllerPublish is the
//! backstop for a publish the scheduler did not count (static PVs, a CO
//! without the limit): CSI's answer for a full node is RESOURCE_EXHAUSTED.
//! Publishes of different volumes to one node are not serialised, so racing
//! publishes can pass the limit by their number; the scheduler stays the
//! primary guard.

use rds_bus::{NodeId, VolumeId};

use super::Core;
use crate::deadline::CallCtx;
use crate::error::FrontendError;

impl Core {
    /// Refuses a new attachment to `node` when it already holds the limit;
    /// a repeat for a volume the node already holds always passes.
    pub(super) async fn check_attach_limit(
        &self,
        ctx: &CallCtx,
        volume: &VolumeId,
        node: &NodeId,
    ) -> Result<(), FrontendError> {
        let Ok(limit) = usize::try_from(self.cfg.max_volumes_per_node) else {
            return Ok(());
        };
        if limit == 0 {
            return Ok(());
        }
        let held: Vec<String> = self
            .backends
            .attachments(ctx)
            .await?
            .into_iter()
            .filter(|a| a.nodes.iter().any(|n| n.node_id == node.as_str()))
            .map(|a| a.volume_id)
            .collect();
        if held.len() < limit || held.iter().any(|v| v == volume.as_str()) {
            return Ok(());
        }
        Err(FrontendError::NodeAttachLimit(format!(
            "node {node} already has {} volumes attached, its limit (max_volumes_per_node, \
             --max-volumes-per-node) is {limit}; unpublish one first",
            held.len()
        )))
    }
}
