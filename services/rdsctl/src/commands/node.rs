//! `rdsctl node stage|unstage|publish|unpublish|expand|info`.

use std::path::Path;

use rds_proto::csi::v1 as csi;

use crate::cli::{AccessArgs, ContextArgs, NodeCmd};
use crate::commands::{Ctx, size_arg};
use crate::csi::requests::key_values;
use crate::error::{CtlError, Result};

/// An absolute UTF-8 path (CSI paths are strings; relative ones mean nothing to the plugin).
pub fn path_arg(p: &Path, flag: &str) -> Result<String> {
    let s = p
        .to_str()
        .ok_or_else(|| CtlError::Usage(format!("{flag} {}: not UTF-8", p.display())))?;
    if !p.is_absolute() {
        return Err(CtlError::Usage(format!(
            "{flag} {s:?}: must be an absolute path"
        )));
    }
    Ok(s.to_owned())
}

/// What stage and publish both take: the capability and both contexts.
struct VolumeArgs<'a> {
    volume_id: &'a str,
    access: &'a AccessArgs,
    context: &'a ContextArgs,
    publish_context: &'a [String],
}

pub async fn run(ctx: &Ctx, cmd: NodeCmd) -> Result<()> {
    match cmd {
        NodeCmd::Stage {
            volume_id,
            staging_path,
            access,
            context,
            publish_context,
        } => {
            let args = VolumeArgs {
                volume_id: &volume_id,
                access: &access,
                context: &context,
                publish_context: &publish_context,
            };
            stage(ctx, &args, &staging_path).await
        }
        NodeCmd::Unstage {
            volume_id,
            staging_path,
        } => unstage(ctx, &volume_id, &staging_path).await,
        NodeCmd::Publish {
            volume_id,
            staging_path,
            target_path,
            readonly,
            access,
            context,
            publish_context,
        } => {
            let args = VolumeArgs {
                volume_id: &volume_id,
                access: &access,
                context: &context,
                publish_context: &publish_context,
            };
            publish(ctx, &args, (&staging_path, &target_path), readonly).await
        }
        NodeCmd::Unpublish {
            volume_id,
            target_path,
        } => unpublish(ctx, &volume_id, &target_path).await,
        NodeCmd::Expand {
            volume_id,
            path,
            staging_path,
            size,
            access,
        } => {
            expand(
                ctx,
                &volume_id,
                (&path, staging_path.as_deref()),
                &size,
                &access,
            )
            .await
        }
        NodeCmd::Info => info(ctx).await,
    }
}

async fn stage(ctx: &Ctx, args: &VolumeArgs<'_>, staging_path: &Path) -> Result<()> {
    let volume_id = args.volume_id;
    let staging = path_arg(staging_path, "--staging-path")?;
    let volume_context = ctx.volume_context(volume_id, args.context, true).await?;
    ctx.done(
        ctx.csi
            .node_stage(csi::NodeStageVolumeRequest {
                volume_id: volume_id.to_owned(),
                publish_context: key_values(args.publish_context, "--publish-context")?,
                staging_target_path: staging.clone(),
                volume_capability: Some(args.access.access().capability()),
                secrets: Default::default(),
                volume_context,
            })
            .await,
    )?;
    ctx.print_done(
        "NodeStageVolume",
        volume_id,
        None,
        Some(staging.clone()),
        || format!("staged volume {volume_id} at {staging}"),
    )
}

async fn unstage(ctx: &Ctx, volume_id: &str, staging_path: &Path) -> Result<()> {
    let staging = path_arg(staging_path, "--staging-path")?;
    ctx.done(
        ctx.csi
            .node_unstage(csi::NodeUnstageVolumeRequest {
                volume_id: volume_id.to_owned(),
                staging_target_path: staging.clone(),
            })
            .await,
    )?;
    ctx.print_done(
        "NodeUnstageVolume",
        volume_id,
        None,
        Some(staging.clone()),
        || format!("unstaged volume {volume_id} from {staging}"),
    )
}

async fn publish(
    ctx: &Ctx,
    args: &VolumeArgs<'_>,
    (staging_path, target_path): (&Path, &Path),
    readonly: bool,
) -> Result<()> {
    let volume_id = args.volume_id;
    let staging = path_arg(staging_path, "--staging-path")?;
    let target = path_arg(target_path, "--target-path")?;
    let volume_context = ctx.volume_context(volume_id, args.context, true).await?;
    ctx.done(
        ctx.csi
            .node_publish(csi::NodePublishVolumeRequest {
                volume_id: volume_id.to_owned(),
                publish_context: key_values(args.publish_context, "--publish-context")?,
                staging_target_path: staging,
                target_path: target.clone(),
                volume_capability: Some(args.access.access().capability()),
                readonly,
                secrets: Default::default(),
                volume_context,
            })
            .await,
    )?;
    ctx.print_done(
        "NodePublishVolume",
        volume_id,
        None,
        Some(target.clone()),
        || format!("published volume {volume_id} at {target}"),
    )
}

async fn unpublish(ctx: &Ctx, volume_id: &str, target_path: &Path) -> Result<()> {
    let target = path_arg(target_path, "--target-path")?;
    ctx.done(
        ctx.csi
            .node_unpublish(csi::NodeUnpublishVolumeRequest {
                volume_id: volume_id.to_owned(),
                target_path: target.clone(),
            })
            .await,
    )?;
    ctx.print_done(
        "NodeUnpublishVolume",
        volume_id,
        None,
        Some(target.clone()),
        || format!("unpublished volume {volume_id} from {target}"),
    )
}

async fn expand(
    ctx: &Ctx,
    volume_id: &str,
    (path, staging_path): (&Path, Option<&Path>),
    size: &str,
    access: &AccessArgs,
) -> Result<()> {
    let volume_path = path_arg(path, "--path")?;
    let staging = match staging_path {
        Some(p) => path_arg(p, "--staging-path")?,
        None => String::new(),
    };
    let resp = ctx.done(
        ctx.csi
            .node_expand(csi::NodeExpandVolumeRequest {
                volume_id: volume_id.to_owned(),
                volume_path,
                capacity_range: Some(csi::CapacityRange {
                    required_bytes: size_arg(size)?,
                    limit_bytes: 0,
                }),
                staging_target_path: staging,
                volume_capability: Some(access.access().capability()),
                secrets: Default::default(),
            })
            .await,
    )?;
    #[derive(serde::Serialize)]
    struct Expanded<'a> {
        volume_id: &'a str,
        capacity_bytes: i64,
    }
    let out = Expanded {
        volume_id,
        capacity_bytes: resp.capacity_bytes,
    };
    ctx.print(&out, || {
        format!(
            "expanded volume {volume_id} on the node to {} bytes",
            resp.capacity_bytes
        )
    })
}

async fn info(ctx: &Ctx) -> Result<()> {
    let info = ctx.done(ctx.csi.node_info(csi::NodeGetInfoRequest {}).await)?;
    let caps = ctx.done(
        ctx.csi
            .node_capabilities(csi::NodeGetCapabilitiesRequest {})
            .await,
    )?;
    let names: Vec<String> = caps
        .capabilities
        .iter()
        .filter_map(|c| {
            c.r#type
                .as_ref()
                .map(|csi::node_service_capability::Type::Rpc(r)| r.r#type)
        })
        .map(|t| {
            csi::node_service_capability::rpc::Type::try_from(t)
                .map(|t| t.as_str_name().to_owned())
                .unwrap_or_else(|_| format!("UNKNOWN({t})"))
        })
        .collect();
    #[derive(serde::Serialize)]
    struct NodeInfo {
        node_id: String,
        max_volumes_per_node: i64,
        capabilities: Vec<String>,
    }
    let out = NodeInfo {
        node_id: info.node_id,
        max_volumes_per_node: info.max_volumes_per_node,
        capabilities: names,
    };
    ctx.print(&out, || {
        format!(
            "node {}  max volumes {}\ncapabilities: {}",
            out.node_id,
            out.max_volumes_per_node,
            out.capabilities.join(", ")
        )
    })
}
