//! `rds.attachment.v1.Attachments`: thin handlers — parse ids at the edge,
//! call the manager, map the error once (`Error` → `Status`).

use std::sync::Arc;

use rds_bus::{NodeId, VolumeId};
use rds_proto::attachment as pb;
use rds_proto::attachment::attachments_server::Attachments;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::fencing::AttachIntent;
use crate::manager::Manager;
use crate::model::{AccessMode, PvcRef};

#[derive(Clone)]
pub struct AttachmentsService {
    manager: Arc<Manager>,
}

impl AttachmentsService {
    pub fn new(manager: Arc<Manager>) -> Self {
        AttachmentsService { manager }
    }
}

fn volume(s: &str) -> Result<VolumeId, Error> {
    if s.is_empty() {
        return Err(Error::InvalidArgument("volume_id is required".into()));
    }
    Ok(VolumeId::parse(s)?)
}

fn optional_node(s: &str) -> Result<Option<NodeId>, Error> {
    if s.is_empty() {
        Ok(None)
    } else {
        Ok(Some(NodeId::parse(s)?))
    }
}

fn intent(r: &pb::AttachRequest) -> Result<AttachIntent, Error> {
    let volume = volume(&r.volume_id)?;
    let node = optional_node(&r.node_id)?
        .ok_or_else(|| Error::InvalidArgument("node_id is required".into()))?;
    Ok(AttachIntent {
        volume,
        node,
        access_mode: AccessMode::from_proto(r.access_mode)?,
        block: r.block,
        readonly: r.readonly,
        pvc: r.pvc.as_ref().and_then(PvcRef::from_proto),
        migration_timeout_secs: r.migration_timeout_seconds,
    })
}

/// Runs a state change to its end even when the caller goes away. A dropped
/// call would otherwise stop the manager between its store commit (which a
/// blocking thread finishes anyway) and the update of the in-memory table,
/// and release the volume lock while the write is still landing: disk and
/// memory would disagree. The spawned task keeps the lock until both agree.
async fn to_completion<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    use tracing::Instrument;
    tokio::spawn(work.instrument(tracing::Span::current()))
        .await
        .map_err(|e| Error::Internal(format!("attachment task failed: {e}")))?
}

#[tonic::async_trait]
impl Attachments for AttachmentsService {
    #[tracing::instrument(name = "attachment.Attach", skip_all,
        fields(volume_id = %req.get_ref().volume_id, node_id = %req.get_ref().node_id))]
    async fn attach(
        &self,
        req: Request<pb::AttachRequest>,
    ) -> Result<Response<pb::AttachResponse>, Status> {
        let want = intent(req.get_ref())?;
        let manager = self.manager.clone();
        let (rec, already) = to_completion(async move { manager.attach(want).await })
            .await
            .inspect_err(|e| {
                tracing::info!(error = %e, "attach refused");
            })?;
        Ok(Response::new(pb::AttachResponse {
            attachment: Some(rec.to_proto()),
            already_attached: already,
        }))
    }

    #[tracing::instrument(name = "attachment.Detach", skip_all,
        fields(volume_id = %req.get_ref().volume_id, node_id = %req.get_ref().node_id))]
    async fn detach(
        &self,
        req: Request<pb::DetachRequest>,
    ) -> Result<Response<pb::DetachResponse>, Status> {
        let r = req.get_ref();
        let vol = volume(&r.volume_id)?;
        let node = optional_node(&r.node_id)?;
        let manager = self.manager.clone();
        let was_attached =
            to_completion(async move { manager.detach(&vol, node.as_ref()).await }).await?;
        Ok(Response::new(pb::DetachResponse { was_attached }))
    }

    #[tracing::instrument(name = "attachment.Get", skip_all, fields(volume_id = %req.get_ref().volume_id))]
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::Attachment>, Status> {
        let vol = volume(&req.get_ref().volume_id)?;
        Ok(Response::new(self.manager.get(&vol)?.to_proto()))
    }

    #[tracing::instrument(name = "attachment.List", skip_all)]
    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let r = req.get_ref();
        let node = optional_node(&r.node_id)?;
        let vol = if r.volume_id.is_empty() {
            None
        } else {
            Some(volume(&r.volume_id)?)
        };
        let attachments = self
            .manager
            .list(node.as_ref(), vol.as_ref())?
            .iter()
            .map(|r| r.to_proto())
            .collect();
        Ok(Response::new(pb::ListResponse { attachments }))
    }
}
