//! CSI Node service: a thin gRPC layer over the data plane
//! (rds-dataplane's `NodePlane`), which holds every node safety rule
//! (docs/safety.md §3). This layer checks the request in csi-sanity's order, turns
//! it into the plane's validated types, opens the root span and maps errors
//! through the one table (`FrontendError` → `DataPlaneError::to_status`).

mod convert;
pub mod events;
pub mod nvme_tcp;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rds_bus::{HostIdentity, NodeId};
use rds_dataplane::source::pvc_from_context;
use rds_dataplane::{
    Backend, CommandRunner, DataPlane, ExpandRequest, LoopConfig, LoopPlane, NodeConfig,
    NodeMetrics, NodePlane, NvmeConfig, NvmePlane, PublishRequest, StageRequest, StatsRequest,
    SystemRunner, UnpublishRequest, UnstageRequest, mountinfo,
};
use rds_proto::csi::v1::node_server::Node;
use rds_proto::csi::v1::node_service_capability::rpc::Type as Rpc;
use rds_proto::csi::v1::node_service_capability::{Rpc as RpcCap, Type as CapType};
use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::volume_usage::Unit;
use rds_proto::csi::v1::*;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::backends::Backends;
use crate::config::{Config, DataPlaneKind};
use crate::error::FrontendError;
use crate::span::{self, csi_span, finish, record_pvc};
use events::BusEventSink;

/// The Go driver's topology segment (docs/csi.md §2.6); no topology is enforced.
pub const TOPOLOGY_KEY: &str = "topology.rds.csi.srvlab.io/zone";
pub const TOPOLOGY_ZONE: &str = "default";

/// Node capabilities this node implements.
pub const NODE_CAPABILITIES: [Rpc; 5] = [
    Rpc::StageUnstageVolume,
    Rpc::GetVolumeStats,
    Rpc::ExpandVolume,
    Rpc::VolumeCondition,
    Rpc::SingleNodeMultiWriter,
];

const MOUNTINFO: &str = "/proc/self/mountinfo";
const MOUNTINFO_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the data plane for the configured backend, with node events going
/// to event-service.
pub fn build_plane(
    cfg: &Config,
    backends: &Backends,
    metrics: Arc<NodeMetrics>,
) -> Result<NodePlane, FrontendError> {
    let node_id = node_id(cfg)?;
    let runner: Arc<dyn CommandRunner> = Arc::new(SystemRunner);
    let backend: Backend = match cfg.data_plane {
        DataPlaneKind::Loop => {
            let root = cfg.loop_files_root.clone().ok_or_else(|| {
                FrontendError::InvalidArgument("--loop-files-root is required".into())
            })?;
            LoopPlane::new(LoopConfig::new(root), runner.clone()).into()
        }
        DataPlaneKind::Nvme => {
            let host = match (&cfg.host_nqn, &cfg.host_id) {
                (Some(n), Some(i)) => Some(
                    HostIdentity::explicit(n, i)
                        .map_err(|e| FrontendError::InvalidArgument(e.to_string()))?,
                ),
                _ => None,
            };
            let ncfg = NvmeConfig {
                managed_prefix: cfg.managed_nqn_prefix.clone(),
                host,
                ..NvmeConfig::default()
            };
            NvmePlane::new(ncfg, runner.clone(), metrics.clone())?.into()
        }
    };
    let events = Arc::new(BusEventSink::new(backends.clone(), node_id.clone()));
    Ok(NodePlane::new(
        NodeConfig::new(node_id, &cfg.node_state_dir),
        backend,
        runner,
        events,
        metrics,
    )?)
}

fn node_id(cfg: &Config) -> Result<NodeId, FrontendError> {
    let raw = cfg.node_id.as_deref().ok_or_else(|| {
        FrontendError::InvalidArgument("--node-id is required for the node role".into())
    })?;
    NodeId::parse(raw).map_err(|e| FrontendError::InvalidArgument(e.to_string()))
}

#[derive(Clone)]
pub struct NodeService {
    cfg: Arc<Config>,
    node_id: String,
    plane: Arc<NodePlane>,
    nvme_tcp: nvme_tcp::NvmeTcpLoaded,
}

impl NodeService {
    /// Reads `nvme_tcp` once (under the plane's sysfs root); register the
    /// gauge with [`NodeService::register_metrics`].
    pub fn new(cfg: Arc<Config>, plane: Arc<NodePlane>) -> Result<Self, FrontendError> {
        let node_id = node_id(&cfg)?.to_string();
        let nvme_tcp = nvme_tcp::NvmeTcpLoaded::new(plane.backend().sysfs_root());
        nvme_tcp.refresh();
        Ok(NodeService {
            cfg,
            node_id,
            plane,
            nvme_tcp,
        })
    }

    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.nvme_tcp.register(registry);
    }

    async fn stage(
        &self,
        req: NodeStageVolumeRequest,
    ) -> Result<NodeStageVolumeResponse, FrontendError> {
        // Before any check: every NodeStage refreshes what doctor reports.
        self.nvme_tcp.refresh();
        let volume = convert::volume(&req.volume_id)?;
        let staging = convert::path("staging_target_path", &req.staging_target_path)?;
        let cap = convert::capability(req.volume_capability.as_ref())?;
        let ctx = self.plane.node_context(&volume, &req.volume_context)?;
        let out = self
            .plane
            .stage(StageRequest {
                volume_id: volume.clone(),
                staging_path: staging,
                source: ctx.source,
                access: cap.access,
                readonly: cap.reader_only,
                pvc: ctx.pvc,
                content: ctx.content,
            })
            .await?;
        tracing::info!(
            volume_id = %volume,
            device = %out.device,
            formatted = out.formatted,
            already_staged = out.already_staged,
            "volume staged"
        );
        Ok(NodeStageVolumeResponse {})
    }

    async fn unstage(
        &self,
        req: NodeUnstageVolumeRequest,
    ) -> Result<NodeUnstageVolumeResponse, FrontendError> {
        let volume = convert::volume(&req.volume_id)?;
        let staging = convert::path("staging_target_path", &req.staging_target_path)?;
        let out = self
            .plane
            .unstage(UnstageRequest {
                volume_id: volume.clone(),
                staging_path: staging,
            })
            .await?;
        tracing::info!(volume_id = %volume, was_mounted = out.was_mounted, detached = out.detached, "volume unstaged");
        Ok(NodeUnstageVolumeResponse {})
    }

    async fn publish(
        &self,
        req: NodePublishVolumeRequest,
    ) -> Result<NodePublishVolumeResponse, FrontendError> {
        let volume = convert::volume(&req.volume_id)?;
        let target = convert::path("target_path", &req.target_path)?;
        let cap = convert::capability(req.volume_capability.as_ref())?;
        if req.staging_target_path.is_empty() {
            return Err(FrontendError::NodePrecondition(
                "staging_target_path is required: this driver stages volumes (STAGE_UNSTAGE_VOLUME)".into(),
            ));
        }
        let staging = convert::path("staging_target_path", &req.staging_target_path)?;
        if cap.checked.mode == Mode::SingleNodeSingleWriter && !cap.checked.block {
            single_writer_check(staging.as_path(), target.as_path()).await?;
        }
        let out = self
            .plane
            .publish(PublishRequest {
                volume_id: volume.clone(),
                staging_path: staging,
                target_path: target,
                // The staged record wins; the context is the fallback.
                source: self
                    .plane
                    .source_from_context(&volume, &req.volume_context)
                    .ok(),
                access: cap.access,
                readonly: req.readonly || cap.reader_only,
                pvc: pvc_from_context(&req.volume_context),
                single_writer: cap.checked.mode == Mode::SingleNodeSingleWriter,
            })
            .await?;
        tracing::info!(volume_id = %volume, already_published = out.already_published, "volume published");
        Ok(NodePublishVolumeResponse {})
    }

    async fn unpublish(
        &self,
        req: NodeUnpublishVolumeRequest,
    ) -> Result<NodeUnpublishVolumeResponse, FrontendError> {
        let volume = convert::volume(&req.volume_id)?;
        let target = convert::path("target_path", &req.target_path)?;
        let out = self
            .plane
            .unpublish(UnpublishRequest {
                volume_id: volume.clone(),
                target_path: target,
            })
            .await?;
        tracing::info!(
            volume_id = %volume,
            was_mounted = out.was_mounted,
            removed_target = out.removed_target,
            "volume unpublished"
        );
        Ok(NodeUnpublishVolumeResponse {})
    }

    async fn stats(
        &self,
        req: NodeGetVolumeStatsRequest,
    ) -> Result<NodeGetVolumeStatsResponse, FrontendError> {
        let volume = convert::volume(&req.volume_id)?;
        let path = convert::existing_path("volume_path", &req.volume_path)?;
        let s = self
            .plane
            .stats(StatsRequest {
                volume_id: volume,
                volume_path: path,
            })
            .await?;
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut usage = Vec::new();
        if let Some(u) = &s.usage {
            usage.push(VolumeUsage {
                available: i(u.available_bytes),
                total: i(u.total_bytes),
                used: i(u.used_bytes),
                unit: Unit::Bytes as i32,
            });
            usage.push(VolumeUsage {
                available: i(u.free_inodes),
                total: i(u.total_inodes),
                used: i(u.used_inodes),
                unit: Unit::Inodes as i32,
            });
        }
        if let Some(size) = s.block_size_bytes {
            usage.push(VolumeUsage {
                available: 0,
                total: i(size),
                used: 0,
                unit: Unit::Bytes as i32,
            });
        }
        Ok(NodeGetVolumeStatsResponse {
            usage,
            volume_condition: Some(VolumeCondition {
                abnormal: s.condition.abnormal,
                message: s.condition.message,
            }),
        })
    }

    async fn expand(
        &self,
        req: NodeExpandVolumeRequest,
    ) -> Result<NodeExpandVolumeResponse, FrontendError> {
        let volume = convert::volume(&req.volume_id)?;
        let path = convert::existing_path("volume_path", &req.volume_path)?;
        if let Some(cap) = &req.volume_capability {
            crate::capability::check(cap).map_err(FrontendError::InvalidArgument)?;
        }
        let out = self
            .plane
            .expand(ExpandRequest {
                volume_id: volume.clone(),
                volume_path: path,
            })
            .await?;
        tracing::info!(volume_id = %volume, capacity_bytes = out.capacity_bytes, "volume expanded on the node");
        Ok(NodeExpandVolumeResponse {
            capacity_bytes: i64::try_from(out.capacity_bytes).unwrap_or(i64::MAX),
        })
    }
}

/// SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod): a filesystem volume already
/// bind-mounted at another target may not be published again (raw block:
/// the data plane checks its recorded device nodes).
async fn single_writer_check(staging: &Path, target: &Path) -> Result<(), FrontendError> {
    let table = mountinfo::read(Path::new(MOUNTINFO), MOUNTINFO_TIMEOUT).await?;
    let staging_c = mountinfo::comparable(staging);
    let target_c = mountinfo::comparable(target);
    let Some(top) = table.top_at(&staging_c) else {
        return Ok(()); // not staged: the plane answers that
    };
    if let Some(other) = table
        .of_device(top.dev())
        .into_iter()
        .find(|e| e.mount_point != staging_c && e.mount_point != target_c)
    {
        return Err(FrontendError::NodePrecondition(format!(
            "SINGLE_NODE_SINGLE_WRITER volume is already published at {}",
            other.mount_point.display()
        )));
    }
    Ok(())
}

type CsiResult<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        req: Request<NodeStageVolumeRequest>,
    ) -> CsiResult<NodeStageVolumeResponse> {
        let span = csi_span!("csi.NodeStageVolume");
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.volume_id);
        span::record(&span, "node_id", &self.node_id);
        record_pvc(&span, &req.volume_context);
        let r = self.stage(req).instrument(span.clone()).await;
        finish(&span, r)
    }

    async fn node_unstage_volume(
        &self,
        req: Request<NodeUnstageVolumeRequest>,
    ) -> CsiResult<NodeUnstageVolumeResponse> {
        let span = csi_span!("csi.NodeUnstageVolume");
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.volume_id);
        span::record(&span, "node_id", &self.node_id);
        let r = self.unstage(req).instrument(span.clone()).await;
        finish(&span, r)
    }

    async fn node_publish_volume(
        &self,
        req: Request<NodePublishVolumeRequest>,
    ) -> CsiResult<NodePublishVolumeResponse> {
        let span = csi_span!("csi.NodePublishVolume");
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.volume_id);
        span::record(&span, "node_id", &self.node_id);
        record_pvc(&span, &req.volume_context);
        let r = self.publish(req).instrument(span.clone()).await;
        finish(&span, r)
    }

    async fn node_unpublish_volume(
        &self,
        req: Request<NodeUnpublishVolumeRequest>,
    ) -> CsiResult<NodeUnpublishVolumeResponse> {
        let span = csi_span!("csi.NodeUnpublishVolume");
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.volume_id);
        span::record(&span, "node_id", &self.node_id);
        let r = self.unpublish(req).instrument(span.clone()).await;
        finish(&span, r)
    }

    async fn node_get_volume_stats(
        &self,
        req: Request<NodeGetVolumeStatsRequest>,
    ) -> CsiResult<NodeGetVolumeStatsResponse> {
        let span = csi_span!("csi.NodeGetVolumeStats");
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.volume_id);
        span::record(&span, "node_id", &self.node_id);
        let r = self.stats(req).instrument(span.clone()).await;
        finish(&span, r)
    }

    async fn node_expand_volume(
        &self,
        req: Request<NodeExpandVolumeRequest>,
    ) -> CsiResult<NodeExpandVolumeResponse> {
        let span = csi_span!("csi.NodeExpandVolume");
        let req = req.into_inner();
        span::record(&span, "volume_id", &req.volume_id);
        span::record(&span, "node_id", &self.node_id);
        let r = self.expand(req).instrument(span.clone()).await;
        finish(&span, r)
    }

    async fn node_get_capabilities(
        &self,
        _req: Request<NodeGetCapabilitiesRequest>,
    ) -> CsiResult<NodeGetCapabilitiesResponse> {
        let _span = csi_span!("csi.NodeGetCapabilities").entered();
        Ok(Response::new(NodeGetCapabilitiesResponse {
            capabilities: NODE_CAPABILITIES
                .iter()
                .map(|t| NodeServiceCapability {
                    r#type: Some(CapType::Rpc(RpcCap { r#type: *t as i32 })),
                })
                .collect(),
        }))
    }

    async fn node_get_info(
        &self,
        _req: Request<NodeGetInfoRequest>,
    ) -> CsiResult<NodeGetInfoResponse> {
        Ok(Response::new(NodeGetInfoResponse {
            node_id: self.node_id.clone(),
            max_volumes_per_node: self.cfg.max_volumes_per_node,
            accessible_topology: Some(Topology {
                segments: HashMap::from([(TOPOLOGY_KEY.to_owned(), TOPOLOGY_ZONE.to_owned())]),
            }),
        }))
    }
}
