//! Typed calls to the bus services behind csi-frontend. Every call carries
//! the CSI call's shrunk deadline ([`CallCtx::request`]) and runs inside the
//! handler's span, so the trace context travels with it. "Not found" answers
//! that a handler needs to branch on come back as `None`, everything else as
//! a [`FrontendError::Bus`] that keeps the bus reason.

use std::time::Duration;

use rds_bus::{BusChannel, ClientOptions, NodeId, SnapshotId, VolumeId};
use rds_proto::agent::agent_client::AgentClient;
use rds_proto::agent::{self as agent, Capacity, Snapshot, Volume};
use rds_proto::attachment::attachments_client::AttachmentsClient;
use rds_proto::attachment::{self as att, Attachment};
use rds_proto::event::PostRequest;
use rds_proto::event::events_client::EventsClient;
use tonic::Code;

use crate::config::Config;
use crate::deadline::CallCtx;
use crate::error::{Backend, FrontendError};

#[derive(Clone)]
pub struct Backends {
    agent: AgentClient<BusChannel>,
    attachments: AttachmentsClient<BusChannel>,
    events: EventsClient<BusChannel>,
    agent_timeout: Duration,
    attachment_timeout: Duration,
    event_timeout: Duration,
    probe_timeout: Duration,
}

/// A NOT_FOUND answer (with or without our reason): the object is absent.
fn is_not_found(s: &tonic::Status) -> bool {
    s.code() == Code::NotFound
}

impl Backends {
    /// Lazy channels: the services may start in any order.
    pub fn connect(cfg: &Config) -> Result<Self, FrontendError> {
        let chan = |ep: &str, timeout: Duration| {
            rds_bus::connect(
                ep,
                ClientOptions {
                    connect_timeout: cfg.connect_timeout,
                    request_timeout: timeout,
                },
            )
            .map_err(|e| FrontendError::Internal(format!("bus endpoint {ep:?}: {e}")))
        };
        Ok(Backends {
            agent: AgentClient::new(chan(&cfg.agent_endpoint, cfg.agent_timeout)?),
            attachments: AttachmentsClient::new(chan(
                &cfg.attachment_endpoint,
                cfg.attachment_timeout,
            )?),
            events: EventsClient::new(chan(&cfg.event_endpoint, cfg.event_timeout)?),
            agent_timeout: cfg.agent_timeout,
            attachment_timeout: cfg.attachment_timeout,
            event_timeout: cfg.event_timeout,
            probe_timeout: cfg.probe_timeout,
        })
    }

    // ---- rds-agent ----

    pub async fn get_volume(
        &self,
        ctx: &CallCtx,
        id: &VolumeId,
    ) -> Result<Option<Volume>, FrontendError> {
        let req = ctx.request(
            agent::GetVolumeRequest {
                volume_id: id.to_string(),
            },
            self.agent_timeout,
        )?;
        match self.agent.clone().get_volume(req).await {
            Ok(r) => Ok(Some(r.into_inner())),
            Err(s) if is_not_found(&s) => Ok(None),
            Err(s) => Err(FrontendError::bus(Backend::Agent, "GetVolume", s)),
        }
    }

    /// Every volume, collected from the agent's stream of pages (each page
    /// a message well under the gRPC limit; docs/decisions.md §9.12).
    pub async fn list_volumes(&self, ctx: &CallCtx) -> Result<Vec<Volume>, FrontendError> {
        let within = ctx.bus_timeout(self.agent_timeout)?;
        let req = ctx.request(agent::ListVolumesRequest {}, self.agent_timeout)?;
        let fail = |s| FrontendError::bus(Backend::Agent, "ListVolumes", s);
        let call = async {
            let mut stream = self.agent.clone().list_volumes(req).await?.into_inner();
            let mut all = Vec::new();
            while let Some(page) = stream.message().await? {
                all.extend(page.volumes);
            }
            Ok(all)
        };
        collect_within(within, "ListVolumes", call)
            .await?
            .map_err(fail)
    }

    pub async fn create_volume(
        &self,
        ctx: &CallCtx,
        msg: agent::CreateVolumeRequest,
    ) -> Result<Volume, FrontendError> {
        let req = ctx.request(msg, self.agent_timeout)?;
        self.agent
            .clone()
            .create_volume(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| FrontendError::bus(Backend::Agent, "CreateVolume", s))
    }

    pub async fn delete_volume(
        &self,
        ctx: &CallCtx,
        id: &VolumeId,
        base_path: &str,
    ) -> Result<bool, FrontendError> {
        let req = ctx.request(
            agent::DeleteVolumeRequest {
                volume_id: id.to_string(),
                base_path: base_path.to_owned(),
            },
            self.agent_timeout,
        )?;
        self.agent
            .clone()
            .delete_volume(req)
            .await
            .map(|r| r.into_inner().existed)
            .map_err(|s| FrontendError::bus(Backend::Agent, "DeleteVolume", s))
    }

    pub async fn expand_volume(
        &self,
        ctx: &CallCtx,
        id: &VolumeId,
        size: u64,
    ) -> Result<Volume, FrontendError> {
        let req = ctx.request(
            agent::ExpandVolumeRequest {
                volume_id: id.to_string(),
                size_bytes: size,
            },
            self.agent_timeout,
        )?;
        self.agent
            .clone()
            .expand_volume(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| FrontendError::bus(Backend::Agent, "ExpandVolume", s))
    }

    pub async fn capacity(
        &self,
        ctx: &CallCtx,
        base_path: &str,
    ) -> Result<Capacity, FrontendError> {
        let req = ctx.request(
            agent::GetCapacityRequest {
                base_path: base_path.to_owned(),
            },
            self.agent_timeout,
        )?;
        self.agent
            .clone()
            .get_capacity(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| FrontendError::bus(Backend::Agent, "GetCapacity", s))
    }

    pub async fn create_snapshot(
        &self,
        ctx: &CallCtx,
        id: &SnapshotId,
        source: &VolumeId,
        base_path: &str,
    ) -> Result<Snapshot, FrontendError> {
        let req = ctx.request(
            agent::CreateSnapshotRequest {
                snapshot_id: id.to_string(),
                source_volume_id: source.to_string(),
                base_path: base_path.to_owned(),
            },
            self.agent_timeout,
        )?;
        self.agent
            .clone()
            .create_snapshot(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| FrontendError::bus(Backend::Agent, "CreateSnapshot", s))
    }

    pub async fn delete_snapshot(
        &self,
        ctx: &CallCtx,
        id: &SnapshotId,
    ) -> Result<bool, FrontendError> {
        let req = ctx.request(
            agent::DeleteSnapshotRequest {
                snapshot_id: id.to_string(),
            },
            self.agent_timeout,
        )?;
        self.agent
            .clone()
            .delete_snapshot(req)
            .await
            .map(|r| r.into_inner().existed)
            .map_err(|s| FrontendError::bus(Backend::Agent, "DeleteSnapshot", s))
    }

    /// Snapshots, optionally filtered by id and/or source volume.
    pub async fn list_snapshots(
        &self,
        ctx: &CallCtx,
        id: Option<&SnapshotId>,
        source: Option<&VolumeId>,
    ) -> Result<Vec<Snapshot>, FrontendError> {
        let within = ctx.bus_timeout(self.agent_timeout)?;
        let req = ctx.request(
            agent::ListSnapshotsRequest {
                snapshot_id: id.map(|i| i.to_string()).unwrap_or_default(),
                source_volume_id: source.map(|s| s.to_string()).unwrap_or_default(),
            },
            self.agent_timeout,
        )?;
        let call = async {
            let mut stream = self.agent.clone().list_snapshots(req).await?.into_inner();
            let mut all = Vec::new();
            while let Some(page) = stream.message().await? {
                all.extend(page.snapshots);
            }
            Ok(all)
        };
        match collect_within(within, "ListSnapshots", call).await? {
            Ok(all) => Ok(all),
            // A filter that matches nothing may be answered with NOT_FOUND.
            Err(s) if is_not_found(&s) && (id.is_some() || source.is_some()) => Ok(Vec::new()),
            Err(s) => Err(FrontendError::bus(Backend::Agent, "ListSnapshots", s)),
        }
    }

    /// One snapshot by id, `None` when absent.
    pub async fn get_snapshot(
        &self,
        ctx: &CallCtx,
        id: &SnapshotId,
    ) -> Result<Option<Snapshot>, FrontendError> {
        let found = self.list_snapshots(ctx, Some(id), None).await?;
        Ok(found.into_iter().find(|s| s.snapshot_id == id.as_str()))
    }

    /// Whether the RDS is reachable, as rds-agent sees it.
    pub async fn probe(&self, ctx: &CallCtx) -> Result<agent::ProbeResponse, FrontendError> {
        let req = ctx.request(agent::ProbeRequest {}, self.probe_timeout)?;
        self.agent
            .clone()
            .probe(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| FrontendError::bus(Backend::Agent, "Probe", s))
    }

    // ---- attachment-service ----

    pub async fn attach(
        &self,
        ctx: &CallCtx,
        msg: att::AttachRequest,
    ) -> Result<att::AttachResponse, FrontendError> {
        let req = ctx.request(msg, self.attachment_timeout)?;
        self.attachments
            .clone()
            .attach(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| FrontendError::bus(Backend::Attachments, "Attach", s))
    }

    pub async fn detach(
        &self,
        ctx: &CallCtx,
        volume: &VolumeId,
        node: &NodeId,
    ) -> Result<bool, FrontendError> {
        let req = ctx.request(
            att::DetachRequest {
                volume_id: volume.to_string(),
                node_id: node.to_string(),
            },
            self.attachment_timeout,
        )?;
        match self.attachments.clone().detach(req).await {
            Ok(r) => Ok(r.into_inner().was_attached),
            // Nothing attached (however the service words it): already detached.
            Err(s) if is_not_found(&s) => Ok(false),
            Err(s) => Err(FrontendError::bus(Backend::Attachments, "Detach", s)),
        }
    }

    /// The attachment of a volume, `None` when it is attached nowhere.
    pub async fn attachment(
        &self,
        ctx: &CallCtx,
        volume: &VolumeId,
    ) -> Result<Option<Attachment>, FrontendError> {
        let req = ctx.request(
            att::GetRequest {
                volume_id: volume.to_string(),
            },
            self.attachment_timeout,
        )?;
        match self.attachments.clone().get(req).await {
            Ok(r) => Ok(Some(r.into_inner()).filter(|a| !a.nodes.is_empty())),
            Err(s) if is_not_found(&s) => Ok(None),
            Err(s) => Err(FrontendError::bus(Backend::Attachments, "Get", s)),
        }
    }

    pub async fn attachments(&self, ctx: &CallCtx) -> Result<Vec<Attachment>, FrontendError> {
        let req = ctx.request(att::ListRequest::default(), self.attachment_timeout)?;
        self.attachments
            .clone()
            .list(req)
            .await
            .map(|r| r.into_inner().attachments)
            .map_err(|s| FrontendError::bus(Backend::Attachments, "List", s))
    }

    // ---- event-service ----

    /// Best effort: a failing event path is logged and never changes the
    /// caller's answer; the short event deadline bounds the wait.
    pub async fn post_event(&self, ctx: &CallCtx, msg: PostRequest) {
        let req = match ctx.request(msg, self.event_timeout) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "event not posted");
                return;
            }
        };
        match self.events.clone().post(req).await {
            Ok(r) if r.get_ref().queued => {}
            Ok(_) => tracing::warn!("event-service rejected an event"),
            Err(s) => tracing::warn!(code = ?s.code(), message = s.message(), "event not posted"),
        }
    }
}

/// Reads a whole server stream under the call's deadline: `grpc-timeout`
/// bounds the answer's start, this bounds its last page too.
async fn collect_within<T>(
    within: Duration,
    method: &'static str,
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<Result<T, tonic::Status>, FrontendError> {
    tokio::time::timeout(within, call).await.map_err(|_| {
        FrontendError::DeadlineExceeded(format!(
            "rds-agent {method}: the listing did not finish within {within:?}"
        ))
    })
}
