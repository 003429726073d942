//! `rdsctl volume create|list|delete|expand`.

use rds_proto::csi::v1 as csi;

use crate::cli::{AccessArgs, VolumeCmd};
use crate::commands::{Ctx, size_arg};
use crate::csi::requests::key_values;
use crate::csi::views::{VolumeView, volume_table};
use crate::error::{CtlError, Result};

pub async fn run(ctx: &Ctx, cmd: VolumeCmd) -> Result<()> {
    match cmd {
        VolumeCmd::Create {
            name,
            size,
            access,
            params,
            pvc,
            from_snapshot,
            from_volume,
        } => {
            let mut parameters = key_values(&params, "--param")?;
            if let Some(pvc) = pvc {
                for (k, v) in crate::csi::requests::pvc_parameters(&pvc)? {
                    parameters.insert(k, v);
                }
            }
            let req = create_request(
                &name,
                size_arg(&size)?,
                access.access().capability(),
                parameters,
                from_snapshot,
                from_volume,
            );
            create(ctx, req).await
        }
        VolumeCmd::List => {
            let entries = ctx.csi.all_volumes().await?;
            let views: Vec<VolumeView> =
                entries.iter().filter_map(VolumeView::from_entry).collect();
            ctx.print(&views, || volume_table(&views))
        }
        VolumeCmd::Delete { volume_id } => delete(ctx, &volume_id).await,
        VolumeCmd::Expand {
            volume_id,
            size,
            access,
        } => expand(ctx, &volume_id, &size, &access).await,
    }
}

async fn create(ctx: &Ctx, req: csi::CreateVolumeRequest) -> Result<()> {
    let resp = ctx.done(ctx.csi.create_volume(req).await)?;
    let vol = resp
        .volume
        .ok_or_else(|| CtlError::Stack("CreateVolume answered OK without a volume".into()))?;
    let view = VolumeView::from_volume(&vol);
    ctx.print(&view, || view.human())
}

async fn delete(ctx: &Ctx, volume_id: &str) -> Result<()> {
    ctx.done(
        ctx.csi
            .delete_volume(csi::DeleteVolumeRequest {
                volume_id: volume_id.to_owned(),
                secrets: Default::default(),
            })
            .await,
    )?;
    ctx.print_done("DeleteVolume", volume_id, None, None, || {
        format!("deleted volume {volume_id}")
    })
}

async fn expand(ctx: &Ctx, volume_id: &str, size: &str, access: &AccessArgs) -> Result<()> {
    let resp = ctx.done(
        ctx.csi
            .expand_volume(expand_request(
                volume_id,
                size_arg(size)?,
                access.access().capability(),
            ))
            .await,
    )?;
    #[derive(serde::Serialize)]
    struct Expanded<'a> {
        volume_id: &'a str,
        capacity_bytes: i64,
        node_expansion_required: bool,
    }
    let out = Expanded {
        volume_id,
        capacity_bytes: resp.capacity_bytes,
        node_expansion_required: resp.node_expansion_required,
    };
    ctx.print(&out, || {
        format!(
            "expanded volume {volume_id} to {}{}",
            crate::units::format_size(u64::try_from(resp.capacity_bytes).unwrap_or(0)),
            if resp.node_expansion_required {
                " (node expansion required)"
            } else {
                ""
            }
        )
    })
}

pub fn create_request(
    name: &str,
    bytes: i64,
    capability: csi::VolumeCapability,
    parameters: std::collections::HashMap<String, String>,
    from_snapshot: Option<String>,
    from_volume: Option<String>,
) -> csi::CreateVolumeRequest {
    use csi::volume_content_source::{SnapshotSource, Type, VolumeSource};
    let source = match (from_snapshot, from_volume) {
        (Some(snapshot_id), _) => Some(Type::Snapshot(SnapshotSource { snapshot_id })),
        (None, Some(volume_id)) => Some(Type::Volume(VolumeSource { volume_id })),
        (None, None) => None,
    };
    csi::CreateVolumeRequest {
        name: name.to_owned(),
        capacity_range: Some(csi::CapacityRange {
            required_bytes: bytes,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![capability],
        parameters,
        volume_content_source: source.map(|t| csi::VolumeContentSource { r#type: Some(t) }),
        ..Default::default()
    }
}

pub fn expand_request(
    volume_id: &str,
    bytes: i64,
    capability: csi::VolumeCapability,
) -> csi::ControllerExpandVolumeRequest {
    csi::ControllerExpandVolumeRequest {
        volume_id: volume_id.to_owned(),
        capacity_range: Some(csi::CapacityRange {
            required_bytes: bytes,
            limit_bytes: 0,
        }),
        secrets: Default::default(),
        volume_capability: Some(capability),
    }
}
