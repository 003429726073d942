//! A small CSI driver-side rig for the data round trips of issue #19: volumes
//! in a chosen layout (StorageClass parameter `volumeLayout`, docs/csi.md),
//! each staged and published at paths of its own (so a source and its clone
//! can be mounted at once), snapshots waited for until ready, and the path of
//! a volume's backing file in the sim (volume context `volumePath`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rds_proto::csi::v1::controller_client::ControllerClient;
use rds_proto::csi::v1::node_client::NodeClient;
use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use rds_proto::csi::v1::volume_content_source::{SnapshotSource, Type as SourceType, VolumeSource};
use rds_proto::csi::v1::*;
use tonic::Code;

use crate::backing_fs::{self, BackingFs};
use crate::{BoxError, BusChannel, NODE_ID, Stack, StackOpts};

/// The volume layout a test asks for through the StorageClass parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// No parameter: the Go-compatible default (`<base>/<id>.img`, copy-from snapshots).
    Flat,
    /// `volumeLayout=subvolume`: one Btrfs subvolume per volume.
    Subvolume,
}

impl Layout {
    pub fn params(self) -> HashMap<String, String> {
        match self {
            Layout::Flat => HashMap::new(),
            Layout::Subvolume => HashMap::from([("volumeLayout".into(), "subvolume".into())]),
        }
    }
}

/// What a new volume is made from.
pub enum Source<'a> {
    Empty,
    Snapshot(&'a str),
    Volume(&'a str),
}

/// How a volume is consumed on the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// ext4 mount (ext4: a clone with its source's fs UUID still mounts beside it).
    Ext4,
    Block,
}

impl Access {
    pub fn capability(self) -> VolumeCapability {
        VolumeCapability {
            access_mode: Some(AccessMode {
                mode: Mode::SingleNodeWriter as i32,
            }),
            access_type: Some(match self {
                Access::Ext4 => AccessType::Mount(MountVolume {
                    fs_type: "ext4".into(),
                    ..Default::default()
                }),
                Access::Block => AccessType::Block(BlockVolume {}),
            }),
        }
    }
}

/// A stack with the node role on loop devices and a CSI client to it.
pub struct Rig {
    pub stack: Stack,
    pub ctl: ControllerClient<BusChannel>,
    pub node: NodeClient<BusChannel>,
    pub layout: Layout,
}

/// How long a snapshot copy (flat layout: copy-from, detached) may take.
const READY_WITHIN: Duration = Duration::from_secs(120);

impl Rig {
    /// The stack with the node role; the sim's state dir on a fresh
    /// loop-mounted `backing` of `fs_size` bytes when given (root needed in any case).
    pub async fn start(
        layout: Layout,
        backing: Option<BackingFs>,
        fs_size: u64,
    ) -> Result<Rig, BoxError> {
        let opts = StackOpts {
            node_role: true,
            ..Default::default()
        };
        let opts = match backing {
            Some(fs) => backing_fs::on(fs, fs_size, opts),
            None => opts,
        };
        let stack = Stack::start_with(opts).await?;
        Ok(Rig {
            ctl: stack.controller()?,
            node: stack.node()?,
            stack,
            layout,
        })
    }

    /// The sim's files root (`<state>/files`): RDS path `/x` is `<files>/x`.
    pub fn files_root(&self) -> PathBuf {
        self.stack.sim.state_dir().join("files")
    }

    /// The backing file of `v` in the sim (from its `volumePath`).
    pub fn backing_file(&self, v: &Volume) -> Result<PathBuf, BoxError> {
        let p = v
            .volume_context
            .get("volumePath")
            .ok_or_else(|| format!("{}: no volumePath in {:?}", v.volume_id, v.volume_context))?;
        Ok(self.files_root().join(p.trim_start_matches('/')))
    }

    /// CreateVolume in this rig's layout; a source that is still being copied
    /// (ABORTED, operation pending) is asked again, as the provisioner does.
    pub async fn create(
        &mut self,
        name: &str,
        size: u64,
        access: Access,
        source: Source<'_>,
    ) -> Result<Volume, BoxError> {
        let content = match source {
            Source::Empty => None,
            Source::Snapshot(id) => Some(SourceType::Snapshot(SnapshotSource {
                snapshot_id: id.into(),
            })),
            Source::Volume(id) => Some(SourceType::Volume(VolumeSource {
                volume_id: id.into(),
            })),
        };
        let req = CreateVolumeRequest {
            name: name.into(),
            capacity_range: Some(CapacityRange {
                required_bytes: size as i64,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![access.capability()],
            parameters: self.layout.params(),
            volume_content_source: content.map(|t| VolumeContentSource { r#type: Some(t) }),
            ..Default::default()
        };
        let until = Instant::now() + READY_WITHIN;
        loop {
            match self.ctl.create_volume(req.clone()).await {
                Ok(r) => {
                    let v = r.into_inner().volume.ok_or("no volume")?;
                    self.check_layout(&v)?;
                    return Ok(v);
                }
                Err(s) if s.code() == Code::Aborted && Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(s) => return Err(format!("CreateVolume {name}: {s}").into()),
            }
        }
    }

    /// The volume is in this rig's layout: its context says so (`volumeLayout`
    /// only for subvolume, docs/csi.md) and its file is where that layout puts
    /// it (`<base>/<id>/volume.img` or `<base>/<id>.img`).
    fn check_layout(&self, v: &Volume) -> Result<(), BoxError> {
        let path = v
            .volume_context
            .get("volumePath")
            .cloned()
            .unwrap_or_default();
        let key = v.volume_context.get("volumeLayout").map(String::as_str);
        let ok = match self.layout {
            Layout::Subvolume => {
                key == Some("subvolume") && path.ends_with(&format!("/{}/volume.img", v.volume_id))
            }
            Layout::Flat => key.is_none() && path.ends_with(&format!("/{}.img", v.volume_id)),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{}: not a {:?} volume: {:?}",
                v.volume_id, self.layout, v.volume_context
            )
            .into())
        }
    }

    /// CreateSnapshot, asked again (same name) until it is ready to use.
    pub async fn snapshot(&mut self, name: &str, source: &str) -> Result<Snapshot, BoxError> {
        let req = CreateSnapshotRequest {
            name: name.into(),
            source_volume_id: source.into(),
            ..Default::default()
        };
        let until = Instant::now() + READY_WITHIN;
        loop {
            let s = self
                .ctl
                .create_snapshot(req.clone())
                .await
                .map_err(|e| format!("CreateSnapshot {name}: {e}"))?
                .into_inner()
                .snapshot
                .ok_or("no snapshot")?;
            if s.ready_to_use {
                return Ok(s);
            }
            if Instant::now() >= until {
                return Err(format!("snapshot {name} not ready after {READY_WITHIN:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn staging(&self, id: &str) -> PathBuf {
        self.stack.dir.path().join("stage").join(id)
    }

    /// The published path of `id`: a directory (mount) or a device node (block).
    pub fn target(&self, id: &str) -> PathBuf {
        self.stack.dir.path().join("pub").join(id).join("target")
    }

    /// ControllerPublish + NodeStage + NodePublish of `v` on the rig's node;
    /// returns the target path.
    pub async fn attach(&mut self, v: &Volume, access: Access) -> Result<PathBuf, BoxError> {
        let (staging, target) = (self.staging(&v.volume_id), self.target(&v.volume_id));
        std::fs::create_dir_all(&staging)?;
        std::fs::create_dir_all(target.parent().ok_or("target parent")?)?;
        let cap = access.capability();
        let pc = self
            .ctl
            .controller_publish_volume(ControllerPublishVolumeRequest {
                volume_id: v.volume_id.clone(),
                node_id: NODE_ID.into(),
                volume_capability: Some(cap.clone()),
                volume_context: v.volume_context.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("ControllerPublish {}: {e}", v.volume_id))?
            .into_inner()
            .publish_context;
        self.node
            .node_stage_volume(NodeStageVolumeRequest {
                volume_id: v.volume_id.clone(),
                publish_context: pc.clone(),
                staging_target_path: path(&staging)?,
                volume_capability: Some(cap.clone()),
                volume_context: v.volume_context.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("NodeStage {}: {e}", v.volume_id))?;
        self.node
            .node_publish_volume(NodePublishVolumeRequest {
                volume_id: v.volume_id.clone(),
                publish_context: pc,
                staging_target_path: path(&staging)?,
                target_path: path(&target)?,
                volume_capability: Some(cap),
                volume_context: v.volume_context.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("NodePublish {}: {e}", v.volume_id))?;
        Ok(target)
    }

    /// NodeUnpublish + NodeUnstage + ControllerUnpublish of `id`.
    pub async fn detach(&mut self, id: &str) -> Result<(), BoxError> {
        self.node
            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: id.into(),
                target_path: path(&self.target(id))?,
            })
            .await
            .map_err(|e| format!("NodeUnpublish {id}: {e}"))?;
        self.node
            .node_unstage_volume(NodeUnstageVolumeRequest {
                volume_id: id.into(),
                staging_target_path: path(&self.staging(id))?,
            })
            .await
            .map_err(|e| format!("NodeUnstage {id}: {e}"))?;
        self.ctl
            .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                volume_id: id.into(),
                node_id: NODE_ID.into(),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("ControllerUnpublish {id}: {e}"))?;
        Ok(())
    }

    pub async fn delete_volume(&mut self, id: &str) -> Result<(), BoxError> {
        self.ctl
            .delete_volume(DeleteVolumeRequest {
                volume_id: id.into(),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("DeleteVolume {id}: {e}"))?;
        Ok(())
    }

    pub async fn delete_snapshot(&mut self, id: &str) -> Result<(), BoxError> {
        self.ctl
            .delete_snapshot(DeleteSnapshotRequest {
                snapshot_id: id.into(),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("DeleteSnapshot {id}: {e}"))?;
        Ok(())
    }

    /// Stops the stack (its scratch dir unmounts and detaches what is left).
    pub async fn stop(self) {
        self.stack.stop().await;
    }
}

fn path(p: &Path) -> Result<String, BoxError> {
    p.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{}: not UTF-8", p.display()).into())
}

/// Flushes every filesystem (the loop devices' dirty pages reach their
/// backing files) — what an application-consistent snapshot asks of the user.
pub fn sync_all() {
    nix::unistd::sync();
}
