//! The demo's steps, in order. Each CSI step is one call (one trace) plus a
//! check of what it should have done; a failed step ends the walk and
//! [`Walk::cleanup`] undoes what was done, newest first.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rds_proto::csi::v1 as csi;

use super::data;
use super::report::Report;
use crate::commands::{snapshot as snap_cmd, volume as vol_cmd};
use crate::csi::requests::{Access, AccessMode, pvc_parameters};
use crate::csi::{Csi, Traced};
use crate::error::{CtlError, Result};
use crate::stack::Stack;
use crate::stack::layout::Layout;
use crate::units::format_size;

const PVC: &str = "demo/demo-data";
const FILE: &str = "demo.bin";
/// Offset of the pattern in the backing file when there is no mount (no root).
const RAW_OFFSET: u64 = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Undo {
    DeleteVolume(String),
    DeleteSnapshot(String),
    Detach(String),
    Unstage(String, String),
    Unpublish(String, String),
}

pub struct Walk {
    csi: Csi,
    layout: Layout,
    node_id: String,
    root: bool,
    size: u64,
    undo: Vec<Undo>,
}

/// Runs one CSI call as a step: prints it, checks its reply.
async fn step<T>(
    r: &mut Report,
    title: &str,
    call: impl Future<Output = Traced<T>>,
    check: impl FnOnce(&T) -> std::result::Result<Option<String>, String>,
) -> Result<T> {
    r.begin(title);
    let t = call.await;
    match t.result {
        Ok(v) => match check(&v) {
            Ok(note) => {
                r.ok(t.elapsed, Some(&t.trace_id), note.as_deref());
                Ok(v)
            }
            Err(why) => {
                r.fail(t.elapsed, Some(&t.trace_id), &why);
                Err(CtlError::Check(format!("{title}: {why}")))
            }
        },
        Err(e) => {
            r.fail(t.elapsed, Some(&t.trace_id), &e.to_string());
            Err(CtlError::Check(format!("{title}: {e}")))
        }
    }
}

/// Runs a local (non-CSI) step.
async fn local(
    r: &mut Report,
    title: &str,
    work: impl Future<Output = Result<Option<String>>>,
) -> Result<()> {
    r.begin(title);
    let t = Instant::now();
    match work.await {
        Ok(note) => {
            r.ok(t.elapsed(), None, note.as_deref());
            Ok(())
        }
        Err(e) => {
            r.fail(t.elapsed(), None, &e.to_string());
            Err(CtlError::Check(format!("{title}: {e}")))
        }
    }
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The demo's source volume as the plugin made it.
struct DemoVolume {
    id: String,
    ctx: HashMap<String, String>,
    backing: PathBuf,
    /// What the plugin made (it may round the request up).
    size: u64,
}

/// Where the node steps stage and publish one volume.
#[derive(Clone, Copy)]
struct NodePaths<'a> {
    staging: &'a std::path::Path,
    target: &'a std::path::Path,
}

/// Eight hex digits that keep the demo's names apart from earlier runs.
fn short_suffix() -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(8)
        .collect()
}

fn random_seed() -> u64 {
    u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .unwrap_or([7; 8]),
    )
}

/// The CreateVolume reply carries a volume at least `size` large with a volumePath.
fn check_created(
    resp: &csi::CreateVolumeResponse,
    size: u64,
) -> std::result::Result<Option<String>, String> {
    let v = resp.volume.as_ref().ok_or("no volume in the reply")?;
    if v.capacity_bytes < i64_of(size) {
        return Err(format!("capacity {} < requested {size}", v.capacity_bytes));
    }
    let path = v
        .volume_context
        .get("volumePath")
        .ok_or("volume_context has no volumePath")?;
    let got = u64::try_from(v.capacity_bytes).unwrap_or(0);
    Ok(Some(format!(
        "{} at {path}, {}",
        v.volume_id,
        format_size(got)
    )))
}

/// `Ok(note)` when what was read back is what was written, else a check failure.
fn same_data(back: &[u8], written: &[u8], note: &str, differs: &str) -> Result<Option<String>> {
    if back == written {
        Ok(Some(note.into()))
    } else {
        Err(CtlError::Check(differs.into()))
    }
}

const NO_ROOT: &str = "needs root (loop devices)";

impl Walk {
    pub fn new(csi: Csi, stack: &Stack, root: bool, size: u64) -> Walk {
        Walk {
            csi,
            layout: stack.layout.clone(),
            node_id: stack.endpoints.node_id.clone(),
            root,
            size,
            undo: Vec::new(),
        }
    }

    fn access() -> Access {
        Access {
            block: false,
            fs_type: "ext4".into(),
            mount_flags: Vec::new(),
            mode: AccessMode::SingleNodeWriter,
        }
    }

    fn done(&mut self, u: &Undo) {
        if let Some(i) = self.undo.iter().rposition(|x| x == u) {
            self.undo.remove(i);
        }
    }

    fn paths(&self, volume_id: &str) -> Result<(PathBuf, PathBuf)> {
        let base = self.layout.dir.join("demo");
        let staging = base.join("staging").join(volume_id);
        let target_parent = base.join("target");
        for d in [&staging, &target_parent] {
            std::fs::create_dir_all(d).map_err(|e| CtlError::io(d, e))?;
        }
        // The CO creates the staging directory; the target's parent only (csi-sanity does the same).
        Ok((staging, target_parent.join(volume_id)))
    }

    fn path_str(p: &std::path::Path) -> String {
        p.display().to_string()
    }

    pub async fn run(&mut self, r: &mut Report) -> Result<()> {
        let name = format!("demo-{}", short_suffix());
        let pattern = data::pattern(random_seed());
        let params: HashMap<String, String> = pvc_parameters(PVC)?.into_iter().collect();

        let src = self.create_source(r, &name, params.clone()).await?;
        let publish_ctx = self.attach(r, &src.id, &src.ctx).await?;
        let (staging, target) = self.paths(&src.id)?;
        let node = NodePaths {
            staging: &staging,
            target: &target,
        };
        self.write_pattern(r, &src, &publish_ctx, node, &pattern)
            .await?;
        let sid = self.snapshot(r, &name, &src.id).await?;
        self.expand(r, &src, node).await?;

        // unpublish, unstage, detach
        if self.root {
            self.unpublish_unstage(r, &src.id, &staging, &target)
                .await?;
        } else {
            r.skip("NodeUnpublishVolume", NO_ROOT);
            r.skip("NodeUnstageVolume", NO_ROOT);
        }
        self.detach(r, &src.id).await?;

        let restored = self.restore(r, &name, src.size, params, &sid).await?;
        self.check_restored(r, &restored, &pattern).await?;
        self.delete_all(r, &sid, &restored, &src).await?;
        self.events(r, &src.id).await
    }

    /// CreateVolume for the demo's source volume; its backing file must exist.
    async fn create_source(
        &mut self,
        r: &mut Report,
        name: &str,
        params: HashMap<String, String>,
    ) -> Result<DemoVolume> {
        let size = self.size;
        let req = vol_cmd::create_request(
            name,
            i64_of(size),
            Self::access().capability(),
            params,
            None,
            None,
        );
        let resp = step(
            r,
            &format!(
                "CreateVolume {name} ({}, ext4, pvc {PVC})",
                format_size(size)
            ),
            self.csi.create_volume(req),
            |resp| check_created(resp, size),
        )
        .await?;
        let vol = resp
            .volume
            .ok_or_else(|| CtlError::Check("no volume".into()))?;
        // The plugin may round the size up (a minimum size): work with what it made.
        let size = u64::try_from(vol.capacity_bytes).unwrap_or(size).max(size);
        self.undo.push(Undo::DeleteVolume(vol.volume_id.clone()));
        let backing = data::backing_file(
            &self.layout.sim_files(),
            vol.volume_context
                .get("volumePath")
                .map_or("", String::as_str),
        )?;
        if !backing.is_file() {
            return Err(CtlError::Check(format!(
                "backing file {} does not exist",
                backing.display()
            )));
        }
        Ok(DemoVolume {
            id: vol.volume_id,
            ctx: vol.volume_context,
            backing,
            size,
        })
    }

    /// Stages and publishes (root) and writes the pattern through the mount, or
    /// checks the plain refusal without root and writes into the backing file.
    async fn write_pattern(
        &mut self,
        r: &mut Report,
        src: &DemoVolume,
        publish_ctx: &HashMap<String, String>,
        node: NodePaths<'_>,
        pattern: &[u8],
    ) -> Result<()> {
        if self.root {
            self.stage_publish(r, &src.id, &src.ctx, publish_ctx, node.staging, node.target)
                .await?;
            let file = node.target.join(FILE);
            let p2 = pattern.to_vec();
            local(
                r,
                &format!("write 1 MiB to {FILE} on the mounted volume, read it back"),
                async move {
                    data::write_durable(file.clone(), p2.clone()).await?;
                    same_data(
                        &data::read(file).await?,
                        &p2,
                        "identical, fsynced",
                        "read back differs",
                    )
                },
            )
            .await
        } else {
            self.stage_without_root(r, &src.id, &src.ctx, publish_ctx, node.staging)
                .await?;
            r.skip("NodePublishVolume", NO_ROOT);
            let (b2, p2) = (src.backing.clone(), pattern.to_vec());
            local(
                r,
                "write 1 MiB into the backing file (no mount without root)",
                async move {
                    data::write_at(b2.clone(), RAW_OFFSET, p2.clone()).await?;
                    let back = data::read_at(b2, RAW_OFFSET, p2.len()).await?;
                    same_data(&back, &p2, "identical, fsynced", "read back differs")
                },
            )
            .await
        }
    }

    /// CreateSnapshot of the source; returns the snapshot id.
    async fn snapshot(&mut self, r: &mut Report, name: &str, vid: &str) -> Result<String> {
        let snap_name = format!("{name}-snap");
        let snap = step(
            r,
            &format!("CreateSnapshot {snap_name}"),
            self.csi
                .create_snapshot(snap_cmd::create_request(&snap_name, vid)),
            |resp| {
                let s = resp.snapshot.as_ref().ok_or("no snapshot in the reply")?;
                if s.source_volume_id != vid {
                    return Err(format!("source {} is not {vid}", s.source_volume_id));
                }
                if !s.ready_to_use {
                    return Err("not ready_to_use".into());
                }
                Ok(Some(s.snapshot_id.clone()))
            },
        )
        .await?
        .snapshot
        .ok_or_else(|| CtlError::Check("no snapshot".into()))?;
        let sid = snap.snapshot_id;
        self.undo.push(Undo::DeleteSnapshot(sid.clone()));
        Ok(sid)
    }

    /// ControllerExpandVolume to twice the size (the backing file must grow),
    /// then NodeExpandVolume where this process can run it.
    async fn expand(
        &mut self,
        r: &mut Report,
        src: &DemoVolume,
        node: NodePaths<'_>,
    ) -> Result<()> {
        let grown = src.size * 2;
        let exp = step(
            r,
            &format!("ControllerExpandVolume to {}", format_size(grown)),
            self.csi.expand_volume(vol_cmd::expand_request(
                &src.id,
                i64_of(grown),
                Self::access().capability(),
            )),
            |resp| {
                if resp.capacity_bytes < i64_of(grown) {
                    return Err(format!("capacity {} < {grown}", resp.capacity_bytes));
                }
                Ok(Some(format!(
                    "node expansion {}",
                    if resp.node_expansion_required {
                        "required"
                    } else {
                        "not required"
                    }
                )))
            },
        )
        .await?;
        let backing_len = std::fs::metadata(&src.backing)
            .map(|m| m.len())
            .unwrap_or(0);
        if backing_len < grown {
            r.note(&format!(
                "     backing file is {backing_len} bytes, expected ≥ {grown}"
            ));
            return Err(CtlError::Check("the backing file did not grow".into()));
        }
        const TITLE: &str = "NodeExpandVolume (grow the filesystem)";
        if !self.root {
            r.skip(TITLE, NO_ROOT);
        } else if !exp.node_expansion_required {
            r.skip(TITLE, "the controller says no node expansion is required");
        } else if !data::has_cap_sys_resource() {
            r.skip(
                TITLE,
                "online ext4 resize needs CAP_SYS_RESOURCE, which this process (and the stack) lacks",
            );
        } else {
            self.node_expand(r, &src.id, grown, node).await?;
        }
        Ok(())
    }

    /// NodeExpandVolume; the mounted filesystem must be larger afterwards.
    async fn node_expand(
        &mut self,
        r: &mut Report,
        vid: &str,
        grown: u64,
        node: NodePaths<'_>,
    ) -> Result<()> {
        let before = data::fs_size(node.target)?;
        let req = csi::NodeExpandVolumeRequest {
            volume_id: vid.to_owned(),
            volume_path: Self::path_str(node.target),
            capacity_range: Some(csi::CapacityRange {
                required_bytes: i64_of(grown),
                limit_bytes: 0,
            }),
            staging_target_path: Self::path_str(node.staging),
            volume_capability: Some(Self::access().capability()),
            secrets: Default::default(),
        };
        let t2 = node.target.to_path_buf();
        step(
            r,
            "NodeExpandVolume (grow the filesystem)",
            self.csi.node_expand(req),
            move |_| {
                let after = data::fs_size(&t2).map_err(|e| e.to_string())?;
                if after > before {
                    Ok(Some(format!(
                        "filesystem {} → {}",
                        format_size(before),
                        format_size(after)
                    )))
                } else {
                    Err(format!("filesystem still {before} bytes"))
                }
            },
        )
        .await?;
        Ok(())
    }

    /// CreateVolume from the snapshot; the reply must name it as the source.
    async fn restore(
        &mut self,
        r: &mut Report,
        name: &str,
        size: u64,
        params: HashMap<String, String>,
        sid: &str,
    ) -> Result<csi::Volume> {
        let restore_name = format!("{name}-restore");
        let req = vol_cmd::create_request(
            &restore_name,
            i64_of(size),
            Self::access().capability(),
            params,
            Some(sid.to_owned()),
            None,
        );
        let restored = step(
            r,
            &format!("CreateVolume {restore_name} from the snapshot"),
            self.csi.create_volume(req),
            |resp| {
                let v = resp.volume.as_ref().ok_or("no volume in the reply")?;
                match v.content_source.as_ref().and_then(|c| c.r#type.as_ref()) {
                    Some(csi::volume_content_source::Type::Snapshot(s)) if s.snapshot_id == sid => {
                        Ok(None)
                    }
                    other => Err(format!("content_source is {other:?}, not snapshot {sid}")),
                }
            },
        )
        .await?
        .volume
        .ok_or_else(|| CtlError::Check("no volume".into()))?;
        self.undo
            .push(Undo::DeleteVolume(restored.volume_id.clone()));
        Ok(restored)
    }

    /// The restored volume holds the pattern: read through a mount (root) or
    /// straight from its backing file.
    async fn check_restored(
        &mut self,
        r: &mut Report,
        restored: &csi::Volume,
        pattern: &[u8],
    ) -> Result<()> {
        let (rid, rctx) = (&restored.volume_id, &restored.volume_context);
        let rbacking = data::backing_file(
            &self.layout.sim_files(),
            rctx.get("volumePath").map_or("", String::as_str),
        )?;
        if !self.root {
            let p2 = pattern.to_vec();
            return local(
                r,
                "restored backing file holds the written data",
                async move {
                    let back = data::read_at(rbacking, RAW_OFFSET, p2.len()).await?;
                    same_data(
                        &back,
                        &p2,
                        "identical to what was written",
                        "restored data differs",
                    )
                },
            )
            .await;
        }
        let rpub = self.attach(r, rid, rctx).await?;
        let (rstaging, rtarget) = self.paths(rid)?;
        self.stage_publish(r, rid, rctx, &rpub, &rstaging, &rtarget)
            .await?;
        let file = rtarget.join(FILE);
        let p2 = pattern.to_vec();
        local(
            r,
            &format!("read {FILE} on the restored volume: same data?"),
            async move {
                let back = data::read(file).await?;
                same_data(
                    &back,
                    &p2,
                    "identical to what was written",
                    "restored data differs",
                )
            },
        )
        .await?;
        self.unpublish_unstage(r, rid, &rstaging, &rtarget).await?;
        self.detach(r, rid).await
    }

    /// Deletes the snapshot and both volumes (their backing files must go),
    /// then checks that the lists no longer show them.
    async fn delete_all(
        &mut self,
        r: &mut Report,
        sid: &str,
        restored: &csi::Volume,
        src: &DemoVolume,
    ) -> Result<()> {
        step(
            r,
            &format!("DeleteSnapshot {sid}"),
            self.csi.delete_snapshot(csi::DeleteSnapshotRequest {
                snapshot_id: sid.to_owned(),
                secrets: Default::default(),
            }),
            |_| Ok(None),
        )
        .await?;
        self.done(&Undo::DeleteSnapshot(sid.to_owned()));
        let rid = restored.volume_id.clone();
        for (id, path) in [
            (rid.clone(), self.backing_of(&restored.volume_context)),
            (src.id.clone(), Some(src.backing.clone())),
        ] {
            step(
                r,
                &format!("DeleteVolume {id}"),
                self.csi.delete_volume(csi::DeleteVolumeRequest {
                    volume_id: id.clone(),
                    secrets: Default::default(),
                }),
                |_| match &path {
                    Some(p) if p.exists() => {
                        Err(format!("backing file {} still exists", p.display()))
                    }
                    _ => Ok(Some("backing file removed".into())),
                },
            )
            .await?;
            self.done(&Undo::DeleteVolume(id));
        }
        let csi2 = self.csi.clone();
        let (v2, s2) = (src.id.clone(), sid.to_owned());
        local(
            r,
            "ListVolumes / ListSnapshots no longer show them",
            async move {
                let vols = csi2.all_volumes().await?;
                if vols
                    .iter()
                    .filter_map(|e| e.volume.as_ref())
                    .any(|v| v.volume_id == v2 || v.volume_id == rid)
                {
                    return Err(CtlError::Check("a deleted volume is still listed".into()));
                }
                if !csi2.all_snapshots(&s2, "").await?.is_empty() {
                    return Err(CtlError::Check(
                        "the deleted snapshot is still listed".into(),
                    ));
                }
                Ok(None)
            },
        )
        .await
    }

    fn backing_of(&self, ctx: &HashMap<String, String>) -> Option<PathBuf> {
        data::backing_file(&self.layout.sim_files(), ctx.get("volumePath")?).ok()
    }

    async fn attach(
        &mut self,
        r: &mut Report,
        vid: &str,
        vctx: &HashMap<String, String>,
    ) -> Result<HashMap<String, String>> {
        let req = csi::ControllerPublishVolumeRequest {
            volume_id: vid.to_owned(),
            node_id: self.node_id.clone(),
            volume_capability: Some(Self::access().capability()),
            readonly: false,
            secrets: Default::default(),
            volume_context: vctx.clone(),
        };
        let resp = step(
            r,
            &format!("ControllerPublishVolume {vid} → node {}", self.node_id),
            self.csi.controller_publish(req),
            |_| Ok(None),
        )
        .await?;
        self.undo.push(Undo::Detach(vid.to_owned()));
        Ok(resp.publish_context)
    }

    async fn detach(&mut self, r: &mut Report, vid: &str) -> Result<()> {
        let req = csi::ControllerUnpublishVolumeRequest {
            volume_id: vid.to_owned(),
            node_id: self.node_id.clone(),
            secrets: Default::default(),
        };
        step(
            r,
            &format!("ControllerUnpublishVolume {vid}"),
            self.csi.controller_unpublish(req),
            |_| Ok(None),
        )
        .await?;
        self.done(&Undo::Detach(vid.to_owned()));
        Ok(())
    }

    fn stage_request(
        &self,
        vid: &str,
        vctx: &HashMap<String, String>,
        pctx: &HashMap<String, String>,
        staging: &std::path::Path,
    ) -> csi::NodeStageVolumeRequest {
        csi::NodeStageVolumeRequest {
            volume_id: vid.to_owned(),
            publish_context: pctx.clone(),
            staging_target_path: Self::path_str(staging),
            volume_capability: Some(Self::access().capability()),
            secrets: Default::default(),
            volume_context: vctx.clone(),
        }
    }

    async fn stage_publish(
        &mut self,
        r: &mut Report,
        vid: &str,
        vctx: &HashMap<String, String>,
        pctx: &HashMap<String, String>,
        staging: &std::path::Path,
        target: &std::path::Path,
    ) -> Result<()> {
        let st = staging.to_path_buf();
        step(
            r,
            &format!("NodeStageVolume {vid} (loop device, ext4, mount)"),
            self.csi
                .node_stage(self.stage_request(vid, vctx, pctx, staging)),
            move |_| {
                if data::is_mounted(&st) {
                    Ok(None)
                } else {
                    Err(format!("{} is not a mount point", st.display()))
                }
            },
        )
        .await?;
        self.undo
            .push(Undo::Unstage(vid.to_owned(), Self::path_str(staging)));
        let req = csi::NodePublishVolumeRequest {
            volume_id: vid.to_owned(),
            publish_context: pctx.clone(),
            staging_target_path: Self::path_str(staging),
            target_path: Self::path_str(target),
            volume_capability: Some(Self::access().capability()),
            readonly: false,
            secrets: Default::default(),
            volume_context: vctx.clone(),
        };
        let tg = target.to_path_buf();
        step(
            r,
            &format!("NodePublishVolume {vid} (bind mount)"),
            self.csi.node_publish(req),
            move |_| {
                if data::is_mounted(&tg) {
                    Ok(None)
                } else {
                    Err(format!("{} is not a mount point", tg.display()))
                }
            },
        )
        .await?;
        self.undo
            .push(Undo::Unpublish(vid.to_owned(), Self::path_str(target)));
        Ok(())
    }

    /// Without root the node role must refuse plainly, not half-work.
    async fn stage_without_root(
        &mut self,
        r: &mut Report,
        vid: &str,
        vctx: &HashMap<String, String>,
        pctx: &HashMap<String, String>,
        staging: &std::path::Path,
    ) -> Result<()> {
        r.begin("NodeStageVolume without root: refused with FAILED_PRECONDITION?");
        let t = self
            .csi
            .node_stage(self.stage_request(vid, vctx, pctx, staging))
            .await;
        match &t.result {
            Err(e) if e.code() == Some(tonic::Code::FailedPrecondition) => {
                r.ok(
                    t.elapsed,
                    Some(&t.trace_id),
                    Some("yes; node steps skipped"),
                );
                Ok(())
            }
            Err(e) => {
                r.fail(
                    t.elapsed,
                    Some(&t.trace_id),
                    &format!("expected FAILED_PRECONDITION, got {e}"),
                );
                Err(CtlError::Check(format!(
                    "NodeStageVolume without root: {e}"
                )))
            }
            Ok(_) => {
                self.undo
                    .push(Undo::Unstage(vid.to_owned(), Self::path_str(staging)));
                r.fail(t.elapsed, Some(&t.trace_id), "succeeded without root");
                Err(CtlError::Check(
                    "NodeStageVolume succeeded without root".into(),
                ))
            }
        }
    }

    async fn unpublish_unstage(
        &mut self,
        r: &mut Report,
        vid: &str,
        staging: &std::path::Path,
        target: &std::path::Path,
    ) -> Result<()> {
        let tg = target.to_path_buf();
        let req = csi::NodeUnpublishVolumeRequest {
            volume_id: vid.to_owned(),
            target_path: Self::path_str(target),
        };
        step(
            r,
            &format!("NodeUnpublishVolume {vid}"),
            self.csi.node_unpublish(req),
            move |_| {
                if data::is_mounted(&tg) {
                    Err(format!("{} is still mounted", tg.display()))
                } else {
                    Ok(None)
                }
            },
        )
        .await?;
        self.done(&Undo::Unpublish(vid.to_owned(), Self::path_str(target)));
        let st = staging.to_path_buf();
        let req = csi::NodeUnstageVolumeRequest {
            volume_id: vid.to_owned(),
            staging_target_path: Self::path_str(staging),
        };
        step(
            r,
            &format!("NodeUnstageVolume {vid} (unmount, detach loop device)"),
            self.csi.node_unstage(req),
            move |_| {
                if data::is_mounted(&st) {
                    Err(format!("{} is still mounted", st.display()))
                } else {
                    Ok(None)
                }
            },
        )
        .await?;
        self.done(&Undo::Unstage(vid.to_owned(), Self::path_str(staging)));
        Ok(())
    }

    /// The sink holds the attach and detach events of the volume, with its PVC.
    async fn events(&mut self, r: &mut Report, vid: &str) -> Result<()> {
        let path = self.layout.events_file();
        let vid = vid.to_owned();
        let mut lines = Vec::new();
        let res = local(
            r,
            &format!("events.jsonl has VolumeAttached + VolumeDetached for {PVC}"),
            async {
                // event-service delivers asynchronously: give it a moment.
                let until = Instant::now() + Duration::from_secs(10);
                loop {
                    let evs: Vec<crate::events::Event> = crate::events::read(&path)?
                        .into_iter()
                        .filter_map(|(_, e, _)| e.ok())
                        .filter(|e| e.volume_id == vid)
                        .collect();
                    let has = |reason: &str| {
                        evs.iter().any(|e| {
                            e.reason == reason
                                && format!("{}/{}", e.pvc_namespace, e.pvc_name) == PVC
                        })
                    };
                    if has("VolumeAttached") && has("VolumeDetached") {
                        lines = evs.iter().map(|e| e.line()).collect();
                        return Ok(Some(format!("{} events for the volume", evs.len())));
                    }
                    if Instant::now() >= until {
                        let seen: Vec<String> = evs.iter().map(|e| e.line()).collect();
                        return Err(CtlError::Check(format!(
                            "after 10 s the sink has only: {seen:?}"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        )
        .await;
        for l in lines {
            r.note(&format!("       {l}"));
        }
        res
    }

    /// Runs one undo step: its title and the call's outcome.
    async fn undo_call(&self, u: &Undo) -> (String, Traced<()>) {
        match u {
            Undo::Unpublish(v, p) => (
                format!("cleanup: NodeUnpublishVolume {v}"),
                unit(
                    self.csi
                        .node_unpublish(csi::NodeUnpublishVolumeRequest {
                            volume_id: v.clone(),
                            target_path: p.clone(),
                        })
                        .await,
                ),
            ),
            Undo::Unstage(v, p) => (
                format!("cleanup: NodeUnstageVolume {v}"),
                unit(
                    self.csi
                        .node_unstage(csi::NodeUnstageVolumeRequest {
                            volume_id: v.clone(),
                            staging_target_path: p.clone(),
                        })
                        .await,
                ),
            ),
            Undo::Detach(v) => (
                format!("cleanup: ControllerUnpublishVolume {v}"),
                unit(
                    self.csi
                        .controller_unpublish(csi::ControllerUnpublishVolumeRequest {
                            volume_id: v.clone(),
                            node_id: self.node_id.clone(),
                            secrets: Default::default(),
                        })
                        .await,
                ),
            ),
            Undo::DeleteSnapshot(s) => (
                format!("cleanup: DeleteSnapshot {s}"),
                unit(
                    self.csi
                        .delete_snapshot(csi::DeleteSnapshotRequest {
                            snapshot_id: s.clone(),
                            secrets: Default::default(),
                        })
                        .await,
                ),
            ),
            Undo::DeleteVolume(v) => (
                format!("cleanup: DeleteVolume {v}"),
                unit(
                    self.csi
                        .delete_volume(csi::DeleteVolumeRequest {
                            volume_id: v.clone(),
                            secrets: Default::default(),
                        })
                        .await,
                ),
            ),
        }
    }

    /// Undoes what a failed walk left behind, newest first. `false` if a node
    /// undo failed (a mount may remain: the directory must then be kept).
    pub async fn cleanup(&mut self, r: &mut Report) -> bool {
        let mut clean = true;
        while let Some(u) = self.undo.pop() {
            let (title, res) = self.undo_call(&u).await;
            r.begin(&title);
            match res.result {
                Ok(()) => r.ok(res.elapsed, Some(&res.trace_id), None),
                Err(e) => {
                    if matches!(u, Undo::Unpublish(..) | Undo::Unstage(..)) {
                        clean = false;
                    }
                    r.fail(res.elapsed, Some(&res.trace_id), &e.to_string());
                }
            }
        }
        clean
    }
}

fn unit<T>(t: Traced<T>) -> Traced<()> {
    Traced {
        result: t.result.map(|_| ()),
        trace_id: t.trace_id,
        elapsed: t.elapsed,
    }
}
