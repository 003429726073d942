//! ControllerPublishVolume / ControllerUnpublishVolume through
//! attachment-service. attachment-service owns fencing and posts
//! VolumeAttached / VolumeDetached (with the PVC ref passed here); this side
//! checks the request, the node and the volume, and builds the publish context.

use std::collections::HashMap;

use rds_bus::PvcRef;
use rds_bus::{NodeId, VolumeId};
use rds_proto::agent::Volume;
use rds_proto::attachment::AttachRequest;
use rds_proto::csi::v1::{
    ControllerPublishVolumeRequest, ControllerPublishVolumeResponse,
    ControllerUnpublishVolumeRequest, ControllerUnpublishVolumeResponse,
};

use super::Core;
use crate::capability::{self, Checked};
use crate::deadline::CallCtx;
use crate::error::FrontendError;
use crate::ids;
use crate::params::NVME_ADDRESS;
use crate::volume_context;

/// Publish context keys (the Go driver's; its node never read them, ours
/// neither — the node uses volume_context — but tools may).
pub const PC_NVME_ADDRESS: &str = "nvme_address";
pub const PC_NVME_PORT: &str = "nvme_port";
pub const PC_NVME_NQN: &str = "nvme_nqn";
pub const PC_FS_TYPE: &str = "fs_type";

impl Core {
    pub async fn publish(
        &self,
        ctx: &CallCtx,
        req: ControllerPublishVolumeRequest,
    ) -> Result<ControllerPublishVolumeResponse, FrontendError> {
        // Argument checks first, existence checks after (csi-sanity order).
        ids::required("volume_id", &req.volume_id)?;
        ids::required("node_id", &req.node_id)?;
        let cap = req.volume_capability.as_ref().ok_or_else(|| {
            FrontendError::InvalidArgument("volume_capability is required".into())
        })?;
        let volume = ids::volume("volume_id", &req.volume_id)?;
        let node = ids::node("node_id", &req.node_id)?;
        let cap = capability::check(cap).map_err(FrontendError::InvalidArgument)?;

        if !self.nodes.is_known(ctx, &node).await? {
            return Err(FrontendError::NodeNotFound(format!(
                "node {node} is not known to driver {} ({})",
                self.cfg.driver_name,
                self.nodes.describe()
            )));
        }
        let _held = self.guard.volume(volume.as_str())?;
        let vol = self.volume_to_publish(ctx, &volume).await?;

        self.check_readonly_matches(ctx, &volume, &node, req.readonly)
            .await?;

        self.check_attach_limit(ctx, &volume, &node).await?;

        let info = volume_context::publish_info(&req.volume_context);
        for w in &info.warnings {
            tracing::warn!(volume_id = %volume, "volume_context: {w}");
        }
        let resp = self
            .backends
            .attach(
                ctx,
                AttachRequest {
                    volume_id: volume.to_string(),
                    node_id: node.to_string(),
                    access_mode: cap.bus_mode() as i32,
                    block: cap.block,
                    readonly: req.readonly,
                    pvc: info.pvc.as_ref().map(PvcRef::to_proto),
                    migration_timeout_seconds: info.migration_timeout_seconds,
                },
            )
            .await?;
        tracing::info!(
            volume_id = %volume,
            node_id = %node,
            already_attached = resp.already_attached,
            "volume published"
        );

        Ok(ControllerPublishVolumeResponse {
            publish_context: self.publish_context(&req.volume_context, &vol, &volume, &cap),
        })
    }

    /// The volume as the agent reports it (`Default` for a snapshot slot or
    /// when the RDS is unreachable); NOT_FOUND when it does not exist.
    async fn volume_to_publish(
        &self,
        ctx: &CallCtx,
        volume: &VolumeId,
    ) -> Result<Volume, FrontendError> {
        match ids::is_snapshot_slot(volume.as_str()) {
            true => None,
            false => match self.backends.get_volume(ctx, volume).await {
                Ok(v) => v,
                // Attach is bookkeeping in attachment-service: an RDS outage
                // must not stop it (the PV exists, so the volume did). The
                // publish context then falls back to the volume id's NQN
                // and the configured port. See docs/decisions.md.
                Err(e) if rds_unreachable(&e) => {
                    tracing::warn!(volume_id = %volume, error = %e,
                        "RDS unreachable: publishing without the existence check");
                    Some(Default::default())
                }
                Err(e) => return Err(e),
            },
        }
        .ok_or_else(|| FrontendError::VolumeNotFound(format!("volume {volume} not found")))
    }

    /// PUBLISH_READONLY: the same node with the other readonly flag is
    /// incompatible (ALREADY_EXISTS), not an idempotent repeat.
    async fn check_readonly_matches(
        &self,
        ctx: &CallCtx,
        volume: &VolumeId,
        node: &NodeId,
        readonly: bool,
    ) -> Result<(), FrontendError> {
        if let Some(att) = self.backends.attachment(ctx, volume).await?
            && let Some(held) = att.nodes.iter().find(|n| n.node_id == node.as_str())
            && held.readonly != readonly
        {
            return Err(FrontendError::AlreadyExists(format!(
                "volume {volume} is already published to node {node} with readonly={}",
                held.readonly
            )));
        }
        Ok(())
    }

    /// The NVMe target (address, port, NQN) and, for mount volumes, the
    /// filesystem type.
    fn publish_context(
        &self,
        volume_context: &HashMap<String, String>,
        vol: &Volume,
        volume: &VolumeId,
        cap: &Checked,
    ) -> HashMap<String, String> {
        let mut pc = HashMap::new();
        let addr = volume_context
            .get(NVME_ADDRESS)
            .cloned()
            .unwrap_or_else(|| self.cfg.nvme_address.clone());
        pc.insert(PC_NVME_ADDRESS.to_owned(), addr);
        let port = if vol.nvme_port > 0 {
            vol.nvme_port
        } else {
            self.cfg.nvme_port.into()
        };
        pc.insert(PC_NVME_PORT.to_owned(), port.to_string());
        let nqn = if vol.nqn.is_empty() {
            volume.nqn().to_string()
        } else {
            vol.nqn.clone()
        };
        pc.insert(PC_NVME_NQN.to_owned(), nqn);
        if !cap.block {
            let fs = if cap.fs_type.is_empty() {
                "ext4"
            } else {
                cap.fs_type.as_str()
            };
            pc.insert(PC_FS_TYPE.to_owned(), fs.to_owned());
        }
        pc
    }

    pub async fn unpublish(
        &self,
        ctx: &CallCtx,
        req: ControllerUnpublishVolumeRequest,
    ) -> Result<ControllerUnpublishVolumeResponse, FrontendError> {
        let volume = ids::volume("volume_id", &req.volume_id)?;
        let _held = self.guard.volume(volume.as_str())?;
        if req.node_id.is_empty() {
            // CSI: no node id = unpublish from every node.
            return self.unpublish_everywhere(ctx, &volume).await;
        }
        // A node id that cannot exist holds nothing: already unpublished.
        let Ok(node) = NodeId::parse(&req.node_id) else {
            return Ok(ControllerUnpublishVolumeResponse {});
        };
        let was = self.backends.detach(ctx, &volume, &node).await?;
        tracing::info!(volume_id = %volume, node_id = %node, was_attached = was, "volume unpublished");
        Ok(ControllerUnpublishVolumeResponse {})
    }

    async fn unpublish_everywhere(
        &self,
        ctx: &CallCtx,
        volume: &VolumeId,
    ) -> Result<ControllerUnpublishVolumeResponse, FrontendError> {
        let Some(att) = self.backends.attachment(ctx, volume).await? else {
            return Ok(ControllerUnpublishVolumeResponse {});
        };
        for n in &att.nodes {
            let Ok(node) = NodeId::parse(&n.node_id) else {
                continue;
            };
            let was = self.backends.detach(ctx, volume, &node).await?;
            tracing::info!(volume_id = %volume, node_id = %node, was_attached = was, "volume unpublished");
        }
        Ok(ControllerUnpublishVolumeResponse {})
    }
}

/// The agent could not reach the RDS (or refuses to try while its circuit is open).
fn rds_unreachable(e: &FrontendError) -> bool {
    matches!(
        e.bus_reason(),
        Some(rds_bus::Reason::RdsUnreachable | rds_bus::Reason::CircuitOpen)
    )
}
