//! CSI Controller service: the gRPC surface. Each handler opens its root
//! span, reads the caller's deadline, runs the logic in [`Core`] inside the
//! span and maps the result through [`span::finish`]. The logic lives in the
//! sibling modules, one per concern.

mod attach_limit;
mod capabilities;
mod expand;
mod publish;
mod query;
mod snapshots;
mod volumes;

use std::sync::Arc;

use rds_proto::csi::v1::controller_server::Controller;
use rds_proto::csi::v1::*;
use rds_proto::event::post_request::Event;
use rds_proto::event::{OrphanFileRefused, PostRequest};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::backends::Backends;
use crate::config::Config;
use crate::deadline::CallCtx;
use crate::error::FrontendError;
use crate::guard::OpGuard;
use crate::known_nodes::KnownNodes;
use crate::span::{self, csi_span, finish, record_pvc};

pub use capabilities::controller_capabilities;

/// What every controller operation needs.
pub struct Core {
    pub cfg: Arc<Config>,
    pub backends: Backends,
    pub guard: OpGuard,
    pub nodes: Arc<dyn KnownNodes>,
}

#[derive(Clone)]
pub struct ControllerService {
    core: Arc<Core>,
}

impl ControllerService {
    pub fn new(core: Arc<Core>) -> Self {
        ControllerService { core }
    }
}

type CsiResult<T> = Result<Response<T>, Status>;

/// The PVC a CreateVolume is for (from `--extra-create-metadata`), if named.
fn pvc_of(parameters: &std::collections::HashMap<String, String>) -> Option<rds_bus::PvcRef> {
    rds_bus::PvcRef::new(
        parameters.get(crate::params::PVC_NAMESPACE)?,
        parameters.get(crate::params::PVC_NAME)?,
    )
}

impl Core {
    /// A refusal because a file sits at the target path without a disk entry
    /// (docs/decisions.md §9.5) is also told to the PVC's owner as a Warning
    /// event naming the file and the command that inspects it. Best effort:
    /// posted in the background, so it never delays or changes the answer.
    fn report_orphan_file(
        &self,
        volume_id: &str,
        pvc: Option<rds_bus::PvcRef>,
        err: &FrontendError,
    ) {
        let FrontendError::Bus { status, .. } = err else {
            return;
        };
        let Some(file_path) = rds_bus::info_of(status, "file_path") else {
            return;
        };
        let inspect_command = rds_bus::info_of(status, "inspect_command").unwrap_or_default();
        let req = PostRequest {
            volume_id: volume_id.to_owned(),
            node_id: String::new(),
            pvc: pvc.as_ref().map(rds_bus::PvcRef::to_proto),
            event: Some(Event::OrphanFileRefused(OrphanFileRefused {
                file_path,
                inspect_command,
            })),
        };
        let backends = self.backends.clone();
        tokio::spawn(
            async move { backends.post_event(&CallCtx::unbounded(), req).await }
                .instrument(tracing::Span::current()),
        );
    }
}

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn create_volume(
        &self,
        req: Request<CreateVolumeRequest>,
    ) -> CsiResult<CreateVolumeResponse> {
        let span = csi_span!("csi.CreateVolume");
        let ctx = CallCtx::from_metadata(req.metadata());
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.name);
        record_pvc(&span, &req.parameters);
        let (volume_id, pvc) = (req.name.clone(), pvc_of(&req.parameters));
        let r = self
            .core
            .create_volume(&ctx, req)
            .instrument(span.clone())
            .await;
        if let Err(e) = &r {
            self.core.report_orphan_file(&volume_id, pvc, e);
        }
        finish(&span, r)
    }

    async fn delete_volume(
        &self,
        req: Request<DeleteVolumeRequest>,
    ) -> CsiResult<DeleteVolumeResponse> {
        let span = csi_span!("csi.DeleteVolume");
        let ctx = CallCtx::from_metadata(req.metadata());
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.volume_id);
        let r = self
            .core
            .delete_volume(&ctx, req)
            .instrument(span.clone())
            .await;
        finish(&span, r)
    }

    async fn controller_publish_volume(
        &self,
        req: Request<ControllerPublishVolumeRequest>,
    ) -> CsiResult<ControllerPublishVolumeResponse> {
        let span = csi_span!("csi.ControllerPublishVolume");
        let ctx = CallCtx::from_metadata(req.metadata());
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.volume_id);
        span::record(&span, "node_id", &req.node_id);
        record_pvc(&span, &req.volume_context);
        let r = self.core.publish(&ctx, req).instrument(span.clone()).await;
        finish(&span, r)
    }

    async fn controller_unpublish_volume(
        &self,
        req: Request<ControllerUnpublishVolumeRequest>,
    ) -> CsiResult<ControllerUnpublishVolumeResponse> {
        let span = csi_span!("csi.ControllerUnpublishVolume");
        let ctx = CallCtx::from_metadata(req.metadata());
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.volume_id);
        span::record(&span, "node_id", &req.node_id);
        let r = self
            .core
            .unpublish(&ctx, req)
            .instrument(span.clone())
            .await;
        finish(&span, r)
    }

    async fn validate_volume_capabilities(
        &self,
        req: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> CsiResult<ValidateVolumeCapabilitiesResponse> {
        let span = csi_span!("csi.ValidateVolumeCapabilities");
        let ctx = CallCtx::from_metadata(req.metadata());
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.volume_id);
        record_pvc(&span, &req.volume_context);
        let r = self
            .core
            .validate_capabilities(&ctx, req)
            .instrument(span.clone())
            .await;
        finish(&span, r)
    }

    async fn list_volumes(
        &self,
        req: Request<ListVolumesRequest>,
    ) -> CsiResult<ListVolumesResponse> {
        let span = csi_span!("csi.ListVolumes");
        let ctx = CallCtx::from_metadata(req.metadata());
        let r = self
            .core
            .list_volumes(&ctx, req.into_inner())
            .instrument(span.clone())
            .await;
        finish(&span, r)
    }

    async fn get_capacity(
        &self,
        req: Request<GetCapacityRequest>,
    ) -> CsiResult<GetCapacityResponse> {
        let span = csi_span!("csi.GetCapacity");
        let ctx = CallCtx::from_metadata(req.metadata());
        let r = self
            .core
            .get_capacity(&ctx, req.into_inner())
            .instrument(span.clone())
            .await;
        finish(&span, r)
    }

    async fn controller_get_capabilities(
        &self,
        _req: Request<ControllerGetCapabilitiesRequest>,
    ) -> CsiResult<ControllerGetCapabilitiesResponse> {
        let _span = csi_span!("csi.ControllerGetCapabilities").entered();
        Ok(Response::new(ControllerGetCapabilitiesResponse {
            capabilities: controller_capabilities(),
        }))
    }

    async fn create_snapshot(
        &self,
        req: Request<CreateSnapshotRequest>,
    ) -> CsiResult<CreateSnapshotResponse> {
        let span = csi_span!("csi.CreateSnapshot");
        let ctx = CallCtx::from_metadata(req.metadata());
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.source_volume_id);
        // The event lands on the source volume's PVC (event-service resolves
        // it from the PV): the snapshot has no PVC of its own.
        let volume_id = req.source_volume_id.clone();
        let r = self
            .core
            .create_snapshot(&ctx, req)
            .instrument(span.clone())
            .await;
        if let Err(e) = &r {
            self.core.report_orphan_file(&volume_id, None, e);
        }
        finish(&span, r)
    }

    async fn delete_snapshot(
        &self,
        req: Request<DeleteSnapshotRequest>,
    ) -> CsiResult<DeleteSnapshotResponse> {
        let span = csi_span!("csi.DeleteSnapshot");
        let ctx = CallCtx::from_metadata(req.metadata());
        let req = req.into_inner();
        span::record(&span, "snapshot_id", &req.snapshot_id);
        let r = self
            .core
            .delete_snapshot(&ctx, req)
            .instrument(span.clone())
            .await;
        finish(&span, r)
    }

    async fn list_snapshots(
        &self,
        req: Request<ListSnapshotsRequest>,
    ) -> CsiResult<ListSnapshotsResponse> {
        let span = csi_span!("csi.ListSnapshots");
        let ctx = CallCtx::from_metadata(req.metadata());
        let req = req.into_inner();
        span::record(&span, "snapshot_id", &req.snapshot_id);
        span::record(&span, "volume_id", &req.source_volume_id);
        let r = self
            .core
            .list_snapshots(&ctx, req)
            .instrument(span.clone())
            .await;
        finish(&span, r)
    }

    async fn get_snapshot(
        &self,
        req: Request<GetSnapshotRequest>,
    ) -> CsiResult<GetSnapshotResponse> {
        let span = csi_span!("csi.GetSnapshot");
        let ctx = CallCtx::from_metadata(req.metadata());
        let req = req.into_inner();
        span::record(&span, "snapshot_id", &req.snapshot_id);
        let r = self
            .core
            .get_snapshot(&ctx, req)
            .instrument(span.clone())
            .await;
        finish(&span, r)
    }

    async fn controller_expand_volume(
        &self,
        req: Request<ControllerExpandVolumeRequest>,
    ) -> CsiResult<ControllerExpandVolumeResponse> {
        let span = csi_span!("csi.ControllerExpandVolume");
        let ctx = CallCtx::from_metadata(req.metadata());
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.volume_id);
        let r = self.core.expand(&ctx, req).instrument(span.clone()).await;
        finish(&span, r)
    }

    async fn controller_get_volume(
        &self,
        req: Request<ControllerGetVolumeRequest>,
    ) -> CsiResult<ControllerGetVolumeResponse> {
        let span = csi_span!("csi.ControllerGetVolume");
        let ctx = CallCtx::from_metadata(req.metadata());
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.volume_id);
        let r = self
            .core
            .get_volume(&ctx, req)
            .instrument(span.clone())
            .await;
        finish(&span, r)
    }

    async fn controller_modify_volume(
        &self,
        _req: Request<ControllerModifyVolumeRequest>,
    ) -> CsiResult<ControllerModifyVolumeResponse> {
        let _span = csi_span!("csi.ControllerModifyVolume").entered();
        Err(Status::unimplemented(
            "ControllerModifyVolume is not supported (no MODIFY_VOLUME capability)",
        ))
    }
}
