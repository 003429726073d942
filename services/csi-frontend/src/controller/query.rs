//! Read-only controller calls: ValidateVolumeCapabilities, ListVolumes,
//! ControllerGetVolume, GetCapacity.

use std::collections::HashMap;

use rds_bus::VolumeId;
use rds_proto::agent;
use rds_proto::csi::v1::controller_get_volume_response::VolumeStatus as GetStatus;
use rds_proto::csi::v1::list_volumes_response::{Entry, VolumeStatus as ListStatus};
use rds_proto::csi::v1::validate_volume_capabilities_response::Confirmed;
use rds_proto::csi::v1::volume_content_source::{SnapshotSource, Type as SourceType, VolumeSource};
use rds_proto::csi::v1::{
    ControllerGetVolumeRequest, ControllerGetVolumeResponse, GetCapacityRequest,
    GetCapacityResponse, ListVolumesRequest, ListVolumesResponse,
    ValidateVolumeCapabilitiesRequest, ValidateVolumeCapabilitiesResponse, Volume,
    VolumeContentSource,
};

use super::Core;
use crate::capability;
use crate::capacity::{self, MAX_VOLUME_BYTES};
use crate::deadline::CallCtx;
use crate::error::FrontendError;
use crate::ids;
use crate::paging;
use crate::params;

impl Core {
    pub async fn validate_capabilities(
        &self,
        ctx: &CallCtx,
        req: ValidateVolumeCapabilitiesRequest,
    ) -> Result<ValidateVolumeCapabilitiesResponse, FrontendError> {
        let id = ids::volume("volume_id", &req.volume_id)?;
        if req.volume_capabilities.is_empty() {
            return Err(FrontendError::InvalidArgument(
                "volume_capabilities must not be empty".into(),
            ));
        }
        self.require_volume(ctx, &id).await?;
        let unconfirmed = |message: String| ValidateVolumeCapabilitiesResponse {
            confirmed: None,
            message,
        };
        if let Err(e) = capability::check_all(&req.volume_capabilities) {
            return Ok(unconfirmed(e));
        }
        if !req.parameters.is_empty()
            && let Err(e) = params::volume_params(&req.parameters, &self.cfg)
        {
            return Ok(unconfirmed(e.to_string()));
        }
        if !req.mutable_parameters.is_empty() {
            return Ok(unconfirmed("mutable_parameters are not supported".into()));
        }
        Ok(ValidateVolumeCapabilitiesResponse {
            confirmed: Some(Confirmed {
                volume_context: req.volume_context,
                volume_capabilities: req.volume_capabilities,
                parameters: req.parameters,
                mutable_parameters: HashMap::new(),
            }),
            message: String::new(),
        })
    }

    pub async fn list_volumes(
        &self,
        ctx: &CallCtx,
        req: ListVolumesRequest,
    ) -> Result<ListVolumesResponse, FrontendError> {
        // Check the token before doing any work (ABORTED for a foreign one).
        paging::page(
            Vec::<String>::new(),
            |s| s.as_str(),
            req.max_entries,
            &req.starting_token,
        )?;
        let vols: Vec<agent::Volume> = self
            .backends
            .list_volumes(ctx)
            .await?
            .into_iter()
            .filter(is_csi_volume)
            .collect();
        let mut published: HashMap<String, Vec<String>> = HashMap::new();
        for a in self.backends.attachments(ctx).await? {
            published
                .entry(a.volume_id)
                .or_default()
                .extend(a.nodes.into_iter().map(|n| n.node_id));
        }
        let (page, next_token) = paging::page(
            vols,
            |v| v.volume_id.as_str(),
            req.max_entries,
            &req.starting_token,
        )?;
        let entries = page
            .into_iter()
            .map(|v| Entry {
                status: Some(ListStatus {
                    published_node_ids: published.remove(&v.volume_id).unwrap_or_default(),
                    volume_condition: None,
                }),
                volume: Some(csi_volume(v)),
            })
            .collect();
        Ok(ListVolumesResponse {
            entries,
            next_token,
        })
    }

    pub async fn get_volume(
        &self,
        ctx: &CallCtx,
        req: ControllerGetVolumeRequest,
    ) -> Result<ControllerGetVolumeResponse, FrontendError> {
        let id = ids::volume("volume_id", &req.volume_id)?;
        let vol = self.require_volume(ctx, &id).await?;
        let nodes = self
            .backends
            .attachment(ctx, &id)
            .await?
            .map(|a| a.nodes.into_iter().map(|n| n.node_id).collect())
            .unwrap_or_default();
        Ok(ControllerGetVolumeResponse {
            volume: Some(csi_volume(vol)),
            status: Some(GetStatus {
                published_node_ids: nodes,
                volume_condition: None,
            }),
        })
    }

    pub async fn get_capacity(
        &self,
        ctx: &CallCtx,
        req: GetCapacityRequest,
    ) -> Result<GetCapacityResponse, FrontendError> {
        let p = params::volume_params(&req.parameters, &self.cfg)?;
        // CSI: capabilities we cannot serve have no capacity.
        if !req.volume_capabilities.is_empty()
            && capability::check_all(&req.volume_capabilities).is_err()
        {
            return Ok(GetCapacityResponse {
                available_capacity: 0,
                maximum_volume_size: None,
                minimum_volume_size: None,
            });
        }
        let cap = self.backends.capacity(ctx, &p.base_path).await?;
        let max = capacity::round_down_mib(cap.free_bytes.min(MAX_VOLUME_BYTES));
        Ok(GetCapacityResponse {
            available_capacity: capacity::to_i64(cap.free_bytes),
            maximum_volume_size: Some(capacity::to_i64(max)),
            minimum_volume_size: Some(capacity::to_i64(capacity::MIB)),
        })
    }

    /// The volume or NOT_FOUND (a `snap-` id is never a volume).
    pub(super) async fn require_volume(
        &self,
        ctx: &CallCtx,
        id: &VolumeId,
    ) -> Result<agent::Volume, FrontendError> {
        let found = if ids::is_snapshot_slot(id.as_str()) {
            None
        } else {
            self.backends.get_volume(ctx, id).await?
        };
        found.ok_or_else(|| FrontendError::VolumeNotFound(format!("volume {id} not found")))
    }
}

/// Disks of this driver: not snapshots, and exported under the managed NQN
/// of their slot (the pool disk and foreign disks are left out).
fn is_csi_volume(v: &agent::Volume) -> bool {
    match VolumeId::parse(&v.volume_id) {
        Ok(id) => {
            !ids::is_snapshot_slot(id.as_str()) && (v.nqn.is_empty() || v.nqn == id.nqn().as_str())
        }
        Err(_) => false,
    }
}

fn csi_volume(v: agent::Volume) -> Volume {
    let content_source = if !v.source_snapshot_id.is_empty() {
        Some(SourceType::Snapshot(SnapshotSource {
            snapshot_id: v.source_snapshot_id.clone(),
        }))
    } else if !v.source_volume_id.is_empty() {
        Some(SourceType::Volume(VolumeSource {
            volume_id: v.source_volume_id.clone(),
        }))
    } else {
        None
    };
    // The listed context carries the file path, the layout and the ownership
    // tag, so `rdsctl volume list` can show who owns each disk.
    let volume_context = crate::volume_context::listed(&v);
    Volume {
        capacity_bytes: capacity::to_i64(v.size_bytes),
        volume_id: v.volume_id,
        volume_context,
        content_source: content_source.map(|t| VolumeContentSource { r#type: Some(t) }),
        accessible_topology: Vec::new(),
    }
}
