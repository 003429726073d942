//! The `rds.agent.v1.Agent` gRPC service: parse the request, run the volume
//! or snapshot logic, and turn errors into statuses in one place
//! ([`AgentService::finish`] → [`AgentError::to_status`]).
//!
//! Each handler opens one span (`agent.<Method>`), a child of the bus call's
//! server span; every RouterOS command span is a child of it.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;

use rds_proto::agent::agent_server::Agent;
use rds_proto::agent::create_volume_request::Source;
use rds_proto::agent::{
    Capacity, CreateSnapshotRequest, CreateVolumeRequest, DeleteSnapshotRequest,
    DeleteSnapshotResponse, DeleteVolumeRequest, DeleteVolumeResponse, ExpandVolumeRequest,
    GetCapacityRequest, GetVolumeRequest, ListSnapshotsRequest, ListSnapshotsResponse,
    ListVolumesRequest, ListVolumesResponse, ProbeRequest, ProbeResponse, Snapshot, Volume,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;
use tracing::field::Empty;

use crate::error::AgentError;
use crate::executor::Executor;
use crate::snapshots::SnapshotInfo;
use crate::volumes::{SourceSpec, Volumes, parse_snapshot_id, parse_volume_id};

pub struct AgentService {
    volumes: Arc<Volumes>,
    exec: Arc<Executor>,
    /// Probe answers within this, whatever the queue looks like.
    probe_timeout: std::time::Duration,
}

/// Entries per message of the list streams: a Volume is about 300 bytes
/// with a full ownership tag, so a page stays far below the 4 MiB gRPC
/// message limit (docs/decisions.md §9.12).
pub const LIST_PAGE: usize = 500;

type PageStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// `items` as a stream of pages of at most [`LIST_PAGE`] entries (none for
/// an empty list).
fn pages<T, R>(items: Vec<T>, wrap: fn(Vec<T>) -> R) -> PageStream<R>
where
    T: Send + 'static,
    R: Send + 'static,
{
    let mut chunks = Vec::with_capacity(items.len().div_ceil(LIST_PAGE));
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(Ok(wrap(it.by_ref().take(LIST_PAGE).collect())));
    }
    Box::pin(futures::stream::iter(chunks))
}

/// At most 128 characters of a caller-supplied value for span fields (a
/// hostile name must not bloat every trace).
fn short(s: &str) -> &str {
    match s.char_indices().nth(128) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn to_snapshot(s: &SnapshotInfo) -> Snapshot {
    Snapshot {
        snapshot_id: s.id.to_string(),
        source_volume_id: s.source.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        size_bytes: s.size,
        creation_time: s
            .created_unix
            .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
        file_path: s.file_path.to_string(),
        // False while the detached copy-from still runs.
        ready_to_use: s.ready,
        layout: s.layout.to_proto(),
    }
}

fn span(method: &'static str, id: &str) -> tracing::Span {
    tracing::info_span!(
        "agent.handler",
        otel.name = method,
        rpc.method = method,
        rds.id = short(id),
        otel.status_code = Empty,
        error.reason = Empty,
    )
}

impl AgentService {
    pub fn new(
        volumes: Arc<Volumes>,
        exec: Arc<Executor>,
        probe_timeout: std::time::Duration,
    ) -> Self {
        AgentService {
            volumes,
            exec,
            probe_timeout,
        }
    }

    /// The one exit of every handler: errors are counted by reason, marked
    /// on the span and mapped to a status by [`AgentError::to_status`].
    fn finish<T>(
        &self,
        span: &tracing::Span,
        r: Result<T, AgentError>,
    ) -> Result<Response<T>, Status> {
        match r {
            Ok(v) => Ok(Response::new(v)),
            Err(e) => {
                let reason = e.reason();
                self.exec.metrics().error(reason);
                span.record("otel.status_code", "ERROR");
                span.record("error.reason", reason.as_str());
                span.in_scope(|| tracing::warn!(reason = %reason, error = %e, "call failed"));
                Err(e.to_status())
            }
        }
    }

    async fn create_volume_impl(&self, r: CreateVolumeRequest) -> Result<Volume, AgentError> {
        let source = match r.source {
            None => None,
            Some(Source::SourceSnapshotId(s)) => Some(SourceSpec::Snapshot(parse_snapshot_id(&s)?)),
            Some(Source::SourceVolumeId(v)) => Some(SourceSpec::Volume(parse_volume_id(&v)?)),
        };
        let mut spec = self.volumes.validate_create(
            &r.volume_id,
            r.size_bytes,
            &r.base_path,
            r.nvme_port,
            source,
        )?;
        // Checked here for the requested size; a restore also checks the
        // size it takes from its source before anything is created.
        crate::volumes::check_limit(spec.size, r.limit_bytes)?;
        spec.limit = r.limit_bytes;
        let spec = self
            .volumes
            .with_layout_and_owner(spec, r.layout, r.owner.as_ref())?;
        self.volumes.create(spec).await
    }

    async fn delete_volume_impl(
        &self,
        r: DeleteVolumeRequest,
    ) -> Result<DeleteVolumeResponse, AgentError> {
        let slot = parse_volume_id(&r.volume_id)?;
        // Validated, but every configured base path is searched anyway.
        self.volumes.base_path(&r.base_path)?;
        let existed = self.volumes.delete(&slot).await?;
        Ok(DeleteVolumeResponse { existed })
    }

    async fn create_snapshot_impl(&self, r: CreateSnapshotRequest) -> Result<Snapshot, AgentError> {
        let id = parse_snapshot_id(&r.snapshot_id)?;
        let source = parse_volume_id(&r.source_volume_id)?;
        let base = self.volumes.base_path(&r.base_path)?;
        let s = self.volumes.snapshots().create(&id, &source, &base).await?;
        Ok(to_snapshot(&s))
    }

    async fn list_snapshots_impl(
        &self,
        r: ListSnapshotsRequest,
    ) -> Result<Vec<Snapshot>, AgentError> {
        let source = if r.source_volume_id.is_empty() {
            None
        } else {
            Some(parse_volume_id(&r.source_volume_id)?)
        };
        let snaps = if r.snapshot_id.is_empty() {
            self.volumes.snapshots().list().await?
        } else {
            let id = parse_snapshot_id(&r.snapshot_id)?;
            self.volumes
                .snapshots()
                .get(&id)
                .await?
                .into_iter()
                .collect()
        };
        let mut out: Vec<Snapshot> = snaps
            .iter()
            .filter(|s| source.is_none() || s.source == source)
            .map(to_snapshot)
            .collect();
        out.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
        Ok(out)
    }

    async fn probe_impl(&self) -> ProbeResponse {
        let transport = self.exec.transport();
        if transport.is_down() {
            return ProbeResponse {
                reachable: false,
                detail: transport.describe(),
            };
        }
        // Never longer than the prober waits (its deadline shrinks ours).
        let within =
            crate::deadline::remaining().map_or(self.probe_timeout, |r| r.min(self.probe_timeout));
        match tokio::time::timeout(within, self.exec.probe()).await {
            Ok(Ok(version)) => ProbeResponse {
                reachable: true,
                detail: format!("connected (RouterOS {version}); {}", transport.describe()),
            },
            Ok(Err(e)) => ProbeResponse {
                reachable: false,
                detail: e.to_string(),
            },
            // Every session busy for the whole budget: commands are running,
            // so the box answers; report that rather than block the prober.
            Err(_) => ProbeResponse {
                reachable: !transport.is_down(),
                detail: format!(
                    "no free session within {:?}; {}",
                    self.probe_timeout,
                    transport.describe()
                ),
            },
        }
    }
}

#[tonic::async_trait]
impl Agent for AgentService {
    async fn create_volume(
        &self,
        req: Request<CreateVolumeRequest>,
    ) -> Result<Response<Volume>, Status> {
        let deadline = crate::deadline::from_metadata(req.metadata());
        let r = req.into_inner();
        let span = span("CreateVolume", &r.volume_id);
        let res = self.create_volume_impl(r).instrument(span.clone());
        let res = crate::deadline::scoped(deadline, res).await;
        self.finish(&span, res)
    }

    async fn delete_volume(
        &self,
        req: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        let deadline = crate::deadline::from_metadata(req.metadata());
        let r = req.into_inner();
        let span = span("DeleteVolume", &r.volume_id);
        let res = self.delete_volume_impl(r).instrument(span.clone());
        let res = crate::deadline::scoped(deadline, res).await;
        self.finish(&span, res)
    }

    async fn get_volume(&self, req: Request<GetVolumeRequest>) -> Result<Response<Volume>, Status> {
        let deadline = crate::deadline::from_metadata(req.metadata());
        let r = req.into_inner();
        let span = span("GetVolume", &r.volume_id);
        let res = async {
            let slot = parse_volume_id(&r.volume_id)?;
            self.volumes.get(&slot).await
        }
        .instrument(span.clone());
        let res = crate::deadline::scoped(deadline, res).await;
        self.finish(&span, res)
    }

    type ListVolumesStream = PageStream<ListVolumesResponse>;

    /// The whole listing is read (and checked) before the first page goes
    /// out, so an error is a plain status, never a half-sent list.
    async fn list_volumes(
        &self,
        req: Request<ListVolumesRequest>,
    ) -> Result<Response<Self::ListVolumesStream>, Status> {
        let deadline = crate::deadline::from_metadata(req.metadata());
        let span = span("ListVolumes", "");
        let res = self.volumes.list().instrument(span.clone());
        let res = crate::deadline::scoped(deadline, res).await;
        self.finish(&span, res).map(|r| {
            Response::new(pages(r.into_inner(), |volumes| ListVolumesResponse {
                volumes,
            }))
        })
    }

    async fn expand_volume(
        &self,
        req: Request<ExpandVolumeRequest>,
    ) -> Result<Response<Volume>, Status> {
        let deadline = crate::deadline::from_metadata(req.metadata());
        let r = req.into_inner();
        let span = span("ExpandVolume", &r.volume_id);
        let res = async {
            let slot = parse_volume_id(&r.volume_id)?;
            self.volumes.expand(&slot, r.size_bytes).await
        }
        .instrument(span.clone());
        let res = crate::deadline::scoped(deadline, res).await;
        self.finish(&span, res)
    }

    async fn get_capacity(
        &self,
        req: Request<GetCapacityRequest>,
    ) -> Result<Response<Capacity>, Status> {
        let deadline = crate::deadline::from_metadata(req.metadata());
        let r = req.into_inner();
        let span = span("GetCapacity", &r.base_path);
        let res = self.volumes.capacity(&r.base_path).instrument(span.clone());
        let res = crate::deadline::scoped(deadline, res).await;
        self.finish(&span, res)
    }

    async fn create_snapshot(
        &self,
        req: Request<CreateSnapshotRequest>,
    ) -> Result<Response<Snapshot>, Status> {
        let deadline = crate::deadline::from_metadata(req.metadata());
        let r = req.into_inner();
        let span = span("CreateSnapshot", &r.snapshot_id);
        let res = self.create_snapshot_impl(r).instrument(span.clone());
        let res = crate::deadline::scoped(deadline, res).await;
        self.finish(&span, res)
    }

    async fn delete_snapshot(
        &self,
        req: Request<DeleteSnapshotRequest>,
    ) -> Result<Response<DeleteSnapshotResponse>, Status> {
        let deadline = crate::deadline::from_metadata(req.metadata());
        let r = req.into_inner();
        let span = span("DeleteSnapshot", &r.snapshot_id);
        let res = async {
            let id = parse_snapshot_id(&r.snapshot_id)?;
            let existed = self.volumes.snapshots().delete(&id).await?;
            Ok(DeleteSnapshotResponse { existed })
        }
        .instrument(span.clone());
        let res = crate::deadline::scoped(deadline, res).await;
        self.finish(&span, res)
    }

    type ListSnapshotsStream = PageStream<ListSnapshotsResponse>;

    async fn list_snapshots(
        &self,
        req: Request<ListSnapshotsRequest>,
    ) -> Result<Response<Self::ListSnapshotsStream>, Status> {
        let deadline = crate::deadline::from_metadata(req.metadata());
        let r = req.into_inner();
        let span = span("ListSnapshots", &r.snapshot_id);
        let res = self.list_snapshots_impl(r).instrument(span.clone());
        let res = crate::deadline::scoped(deadline, res).await;
        self.finish(&span, res).map(|r| {
            Response::new(pages(r.into_inner(), |snapshots| ListSnapshotsResponse {
                snapshots,
            }))
        })
    }

    async fn probe(&self, req: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        let deadline = crate::deadline::from_metadata(req.metadata());
        let span = span("Probe", "");
        let res = self.probe_impl().instrument(span);
        Ok(Response::new(crate::deadline::scoped(deadline, res).await))
    }

    async fn set_allowed_hosts(
        &self,
        req: Request<rds_proto::agent::SetAllowedHostsRequest>,
    ) -> Result<Response<rds_proto::agent::AllowedHosts>, Status> {
        let deadline = crate::deadline::from_metadata(req.metadata());
        let r = req.into_inner();
        let span = span("SetAllowedHosts", &r.volume_id);
        let list = crate::allow_hosts::AllowList::new(self.volumes.rds().clone());
        let res = list.set(r).instrument(span.clone());
        let res = crate::deadline::scoped(deadline, res).await;
        self.finish(&span, res)
    }

    async fn list_allowed_hosts(
        &self,
        req: Request<rds_proto::agent::ListAllowedHostsRequest>,
    ) -> Result<Response<rds_proto::agent::ListAllowedHostsResponse>, Status> {
        let deadline = crate::deadline::from_metadata(req.metadata());
        let span = span("ListAllowedHosts", "");
        let list = crate::allow_hosts::AllowList::new(self.volumes.rds().clone());
        let res = list.list().instrument(span.clone());
        let res = crate::deadline::scoped(deadline, res).await;
        self.finish(&span, res)
    }
}
