//! `rdsctl info`: GetPluginInfo, capabilities and Probe.

use rds_proto::csi::v1 as csi;

use crate::commands::Ctx;
use crate::error::{CtlError, Result};

#[derive(Debug, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub vendor_version: String,
    pub plugin_capabilities: Vec<String>,
    pub controller_capabilities: Vec<String>,
    /// `None` when the plugin does not say.
    pub ready: Option<bool>,
}

pub async fn run(ctx: &Ctx) -> Result<()> {
    let info = ctx.done(ctx.csi.plugin_info(csi::GetPluginInfoRequest {}).await)?;
    let caps = ctx.done(
        ctx.csi
            .plugin_capabilities(csi::GetPluginCapabilitiesRequest {})
            .await,
    )?;
    let probe = ctx.done(ctx.csi.probe(csi::ProbeRequest {}).await)?;
    let plugin_capabilities = plugin_capability_names(&caps);
    let serves_controller = plugin_capabilities
        .iter()
        .any(|c| c == "CONTROLLER_SERVICE");
    let controller_capabilities = if serves_controller {
        controller_capability_names(ctx).await?
    } else {
        Vec::new()
    };
    let out = PluginInfo {
        name: info.name,
        vendor_version: info.vendor_version,
        plugin_capabilities,
        controller_capabilities,
        ready: probe.ready,
    };
    let not_ready = out.ready == Some(false);
    ctx.print(&out, || {
        format!(
            "plugin {} {}\nready: {}\nplugin capabilities: {}\ncontroller capabilities: {}",
            out.name,
            out.vendor_version,
            out.ready.map_or("unknown".to_owned(), |r| r.to_string()),
            out.plugin_capabilities.join(", "),
            if out.controller_capabilities.is_empty() {
                "-".to_owned()
            } else {
                out.controller_capabilities.join(", ")
            }
        )
    })?;
    if not_ready {
        // Scripts and probes can rely on the exit code alone.
        return Err(CtlError::Findings {
            what: format!(
                "{}: the plugin reports it is not ready (Probe ready=false)",
                ctx.csi.endpoint()
            ),
            unhealthy: true,
        });
    }
    Ok(())
}

/// The plugin's capabilities by their proto names (expansion ones prefixed).
fn plugin_capability_names(caps: &csi::GetPluginCapabilitiesResponse) -> Vec<String> {
    caps.capabilities
        .iter()
        .filter_map(|c| match &c.r#type {
            Some(csi::plugin_capability::Type::Service(s)) => {
                csi::plugin_capability::service::Type::try_from(s.r#type)
                    .ok()
                    .map(|t| t.as_str_name().to_owned())
            }
            Some(csi::plugin_capability::Type::VolumeExpansion(e)) => {
                csi::plugin_capability::volume_expansion::Type::try_from(e.r#type)
                    .ok()
                    .map(|t| format!("VOLUME_EXPANSION_{}", t.as_str_name()))
            }
            None => None,
        })
        .collect()
}

/// ControllerGetCapabilities, by proto names.
async fn controller_capability_names(ctx: &Ctx) -> Result<Vec<String>> {
    let cc = ctx.done(
        ctx.csi
            .controller_capabilities(csi::ControllerGetCapabilitiesRequest {})
            .await,
    )?;
    Ok(cc
        .capabilities
        .iter()
        .filter_map(|c| match &c.r#type {
            Some(csi::controller_service_capability::Type::Rpc(r)) => {
                csi::controller_service_capability::rpc::Type::try_from(r.r#type)
                    .ok()
                    .map(|t| t.as_str_name().to_owned())
            }
            None => None,
        })
        .collect())
}
