//! `rdsctl snapshot create|list|delete`.

use rds_proto::csi::v1 as csi;

use crate::cli::SnapshotCmd;
use crate::commands::{Ctx, Done};
use crate::csi::views::{SnapshotView, snapshot_table};
use crate::error::{CtlError, Result};

pub async fn run(ctx: &Ctx, cmd: SnapshotCmd) -> Result<()> {
    match cmd {
        SnapshotCmd::Create { name, source } => {
            let resp = ctx.done(
                ctx.csi
                    .create_snapshot(create_request(&name, &source))
                    .await,
            )?;
            let snap = resp.snapshot.ok_or_else(|| {
                CtlError::Stack("CreateSnapshot answered OK without a snapshot".into())
            })?;
            let view = SnapshotView::from_snapshot(&snap);
            ctx.print(&view, || view.human())
        }
        SnapshotCmd::List { source, id } => {
            let snaps = ctx
                .csi
                .all_snapshots(id.as_deref().unwrap_or(""), source.as_deref().unwrap_or(""))
                .await?;
            let views: Vec<SnapshotView> = snaps.iter().map(SnapshotView::from_snapshot).collect();
            ctx.print(&views, || snapshot_table(&views))
        }
        SnapshotCmd::Delete { snapshot_id } => {
            ctx.done(
                ctx.csi
                    .delete_snapshot(csi::DeleteSnapshotRequest {
                        snapshot_id: snapshot_id.clone(),
                        secrets: Default::default(),
                    })
                    .await,
            )?;
            let done = Done {
                ok: true,
                call: "DeleteSnapshot",
                volume_id: "",
                node_id: None,
                path: None,
            };
            #[derive(serde::Serialize)]
            struct Deleted<'a> {
                #[serde(flatten)]
                done: Done<'a>,
                snapshot_id: &'a str,
            }
            ctx.print(
                &Deleted {
                    done,
                    snapshot_id: &snapshot_id,
                },
                || format!("deleted snapshot {snapshot_id}"),
            )
        }
    }
}

pub fn create_request(name: &str, source: &str) -> csi::CreateSnapshotRequest {
    csi::CreateSnapshotRequest {
        source_volume_id: source.to_owned(),
        name: name.to_owned(),
        secrets: Default::default(),
        parameters: Default::default(),
    }
}
