//! CSI Identity: plugin info, capabilities, and Probe.
//!
//! Probe reports csi-frontend's own readiness only: it answers once this
//! process serves its socket (the node role's start-up sweep has finished
//! before the socket is served). It never asks rds-agent or the RDS. The
//! livenessprobe sidecar turns `ready=false` into HTTP 500, so a Probe that
//! followed the RDS would restart csi-frontend through every RDS outage and
//! stop attach/detach, which never need the RDS. RDS reachability is reported
//! by rds-agent's metrics (`rds_agent_connection_state`, circuit state) and
//! events instead (docs/decisions.md, "Probe is the frontend's own health").

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

use crate::backends::Backends;
use crate::config::Config;
use crate::span::{csi_span, finish};

#[derive(Clone)]
pub struct IdentityService {
    cfg: Arc<Config>,
}

impl IdentityService {
    /// `_backends` is kept in the signature so callers need not change; Probe
    /// deliberately uses no backend.
    pub fn new(cfg: Arc<Config>, _backends: Backends) -> Self {
        IdentityService { cfg }
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

    async fn probe(&self, _req: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        let span = csi_span!("csi.Probe");
        // This handler runs only once the services are registered and the
        // socket is served, so answering is being ready.
        finish(&span, Ok(ProbeResponse { ready: Some(true) }))
    }
}
