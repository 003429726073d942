//! `rdsctl controller publish|unpublish`.

use std::collections::BTreeMap;

use rds_proto::csi::v1 as csi;

use crate::cli::ControllerCmd;
use crate::commands::Ctx;
use crate::csi::requests::sorted;
use crate::error::Result;

pub async fn run(ctx: &Ctx, cmd: ControllerCmd) -> Result<()> {
    match cmd {
        ControllerCmd::Publish {
            volume_id,
            node,
            readonly,
            access,
            context,
        } => {
            let volume_context = ctx.volume_context(&volume_id, &context, false).await?;
            let resp = ctx.done(
                ctx.csi
                    .controller_publish(csi::ControllerPublishVolumeRequest {
                        volume_id: volume_id.clone(),
                        node_id: node.clone(),
                        volume_capability: Some(access.access().capability()),
                        readonly,
                        secrets: Default::default(),
                        volume_context,
                    })
                    .await,
            )?;
            #[derive(serde::Serialize)]
            struct Published {
                volume_id: String,
                node_id: String,
                publish_context: BTreeMap<String, String>,
            }
            let out = Published {
                volume_id,
                node_id: node,
                publish_context: sorted(&resp.publish_context),
            };
            ctx.print(&out, || {
                let mut s = format!("published volume {} to node {}", out.volume_id, out.node_id);
                for (k, v) in &out.publish_context {
                    s.push_str(&format!("\n  {k}={v}"));
                }
                s
            })
        }
        ControllerCmd::Unpublish { volume_id, node } => {
            ctx.done(
                ctx.csi
                    .controller_unpublish(csi::ControllerUnpublishVolumeRequest {
                        volume_id: volume_id.clone(),
                        node_id: node.clone(),
                        secrets: Default::default(),
                    })
                    .await,
            )?;
            ctx.print_done(
                "ControllerUnpublishVolume",
                &volume_id,
                Some(&node),
                None,
                || format!("unpublished volume {volume_id} from node {node}"),
            )
        }
    }
}
