//! CSI Identity: plugin info, capabilities, and Probe (ready only while
//! rds-agent reports the RDS reachable, for the controller role).

use std::collections::HashMap;
use std::sync::Arc;

use rds_proto::csi::v1::identity_server::Identity;
use rds_proto::csi::v1::plugin_capability::service::Type as ServiceType;
use rds_proto::csi::v1::plugin_capability::volume_expansion::Type as ExpansionType;
use rds_proto::csi::v1::plugin_capability::{Service, Type as CapType, VolumeExpansion};
use rds_proto::csi::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::backends::Backends;
use crate::config::Config;
use crate::deadline::CallCtx;
use crate::span::{csi_span, finish};

#[derive(Clone)]
pub struct IdentityService {
    cfg: Arc<Config>,
    backends: Backends,
}

impl IdentityService {
    pub fn new(cfg: Arc<Config>, backends: Backends) -> Self {
        IdentityService { cfg, backends }
    }
}

/// Plugin capabilities for a role. No topology is offered (every node reaches
/// the RDS), so VOLUME_ACCESSIBILITY_CONSTRAINTS is not advertised.
pub fn plugin_capabilities(cfg: &Config) -> Vec<PluginCapability> {
    let mut caps = Vec::new();
    if cfg.role.controller() {
        caps.push(PluginCapability {
            r#type: Some(CapType::Service(Service {
                r#type: ServiceType::ControllerService as i32,
            })),
        });
    }
    caps.push(PluginCapability {
        r#type: Some(CapType::VolumeExpansion(VolumeExpansion {
            r#type: ExpansionType::Online as i32,
        })),
    });
    caps
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _req: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        let _span = csi_span!("csi.GetPluginInfo").entered();
        Ok(Response::new(GetPluginInfoResponse {
            name: self.cfg.driver_name.clone(),
            vendor_version: self.cfg.vendor_version.clone(),
            manifest: HashMap::new(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _req: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        let _span = csi_span!("csi.GetPluginCapabilities").entered();
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: plugin_capabilities(&self.cfg),
        }))
    }

    async fn probe(&self, req: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        let span = csi_span!("csi.Probe");
        let ctx = CallCtx::from_metadata(req.metadata());
        let ready = if self.cfg.role.controller() {
            // A failing agent call is "not ready", never a failed Probe: the
            // liveness probe must not restart us for the RDS being down.
            match self.backends.probe(&ctx).instrument(span.clone()).await {
                Ok(p) => {
                    if !p.reachable {
                        span.in_scope(|| tracing::warn!(detail = %p.detail, "RDS not reachable"));
                    }
                    p.reachable
                }
                Err(e) => {
                    span.in_scope(|| tracing::warn!(error = %e, "rds-agent probe failed"));
                    false
                }
            }
        } else {
            true
        };
        finish(&span, Ok(ProbeResponse { ready: Some(ready) }))
    }
}
