//! Shared helpers: request builders in csi-sanity's shape, the exact-code
//! assertion, and csi-sanity's resource tracking + LIFO cleanup.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::PathBuf;

use integration_tests::{BusChannel, NODE_ID, Stack, StackOpts};
use rds_proto::csi::v1::controller_client::ControllerClient;
use rds_proto::csi::v1::identity_client::IdentityClient;
use rds_proto::csi::v1::node_client::NodeClient;
use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use rds_proto::csi::v1::*;
use tonic::{Code, Response, Status};

pub const GIB: i64 = 1 << 30;
pub const MIB: i64 = 1 << 20;
/// csi-sanity's TestVolumeSize, scaled down (see the suite header).
pub const SIZE: i64 = GIB;
/// csi-sanity's expand size: size + 1 GiB.
pub const EXPAND_SIZE: i64 = SIZE + GIB;

/// `prefix-XXXXXXXX-XXXXXXXX` like csi-sanity's unique names.
pub fn unique(prefix: &str) -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}-{}", &u[..8], &u[8..16])
}

/// csi-sanity's "valid-looking unknown" ids.
pub fn unknown_volume_id() -> String {
    format!(
        "fake-vol-id-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}
pub fn unknown_node_id() -> String {
    format!(
        "fake-node-id-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

pub fn cap(mode: Mode, block: bool) -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(if block {
            AccessType::Block(BlockVolume {})
        } else {
            AccessType::Mount(MountVolume::default())
        }),
    }
}

pub fn snw() -> VolumeCapability {
    cap(Mode::SingleNodeWriter, false)
}

pub fn range(required: i64, limit: i64) -> Option<CapacityRange> {
    Some(CapacityRange {
        required_bytes: required,
        limit_bytes: limit,
    })
}

/// csi-sanity's standard CreateVolume request.
pub fn create_req(name: &str) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.to_owned(),
        capacity_range: range(SIZE, 0),
        volume_capabilities: vec![snw()],
        ..Default::default()
    }
}

pub fn publish_req(volume: &str, node: &str) -> ControllerPublishVolumeRequest {
    ControllerPublishVolumeRequest {
        volume_id: volume.to_owned(),
        node_id: node.to_owned(),
        volume_capability: Some(snw()),
        readonly: false,
        ..Default::default()
    }
}

pub fn snapshot_req(name: &str, source: &str) -> CreateSnapshotRequest {
    CreateSnapshotRequest {
        name: name.to_owned(),
        source_volume_id: source.to_owned(),
        ..Default::default()
    }
}

/// The call must fail with exactly `code` (csi-sanity's assertion).
#[track_caller]
pub fn assert_code<T: Debug>(r: Result<Response<T>, Status>, code: Code) -> Status {
    match r {
        Ok(resp) => panic!("expected {code:?}, got OK: {:?}", resp.into_inner()),
        Err(s) => {
            assert_eq!(s.code(), code, "wrong code; message: {}", s.message());
            s
        }
    }
}

#[derive(Debug, Clone)]
enum Resource {
    Volume { id: String, node: Option<String> },
    Snapshot { id: String },
}

/// One test's view: the stack, clients, and csi-sanity's resource list.
pub struct Sanity {
    pub stack: Stack,
    pub ctl: ControllerClient<BusChannel>,
    pub ident: IdentityClient<BusChannel>,
    /// Node client (node role only).
    pub nodec: Option<NodeClient<BusChannel>>,
    /// csi-sanity's staging dir (NodeStage uses it as is).
    pub staging: PathBuf,
    /// csi-sanity's target parent dir (NodePublish uses `<it>/target`).
    pub target_dir: PathBuf,
    resources: Vec<Resource>,
}

impl Sanity {
    pub async fn start() -> Sanity {
        Sanity::start_with(StackOpts::default()).await
    }

    /// The stack with the node role (loop devices; needs root).
    pub async fn start_node() -> Sanity {
        Sanity::start_with(StackOpts {
            node_role: true,
            ..Default::default()
        })
        .await
    }

    pub async fn start_with(opts: StackOpts) -> Sanity {
        let node_role = opts.node_role;
        let stack = Stack::start_with(opts).await.unwrap();
        // csi-sanity mkdirs both (non-recursively) before each test.
        let staging = stack.dir.path().join("csi-staging");
        let target_dir = stack.dir.path().join("csi-mount");
        std::fs::create_dir(&staging).unwrap();
        std::fs::create_dir(&target_dir).unwrap();
        Sanity {
            ctl: stack.controller().unwrap(),
            ident: stack.identity().unwrap(),
            nodec: node_role.then(|| stack.node().unwrap()),
            stack,
            staging,
            target_dir,
            resources: Vec::new(),
        }
    }

    pub fn node_client(&self) -> NodeClient<BusChannel> {
        self.nodec.clone().expect("started with the node role")
    }

    pub fn staging_path(&self) -> String {
        self.staging.display().to_string()
    }

    pub fn target_path(&self) -> String {
        self.target_dir.join("target").display().to_string()
    }

    pub fn node(&self) -> &'static str {
        NODE_ID
    }

    // --- the tracking wrapper of csi-sanity's resources.go ---

    pub async fn create_volume(
        &mut self,
        req: CreateVolumeRequest,
    ) -> Result<Response<CreateVolumeResponse>, Status> {
        let r = self.ctl.create_volume(req).await;
        if let Ok(resp) = &r
            && let Some(v) = &resp.get_ref().volume
            && !v.volume_id.is_empty()
        {
            self.resources.push(Resource::Volume {
                id: v.volume_id.clone(),
                node: None,
            });
        }
        r
    }

    /// Creates and returns the volume (must succeed).
    pub async fn volume(&mut self, req: CreateVolumeRequest) -> Volume {
        self.create_volume(req)
            .await
            .unwrap()
            .into_inner()
            .volume
            .unwrap()
    }

    pub async fn publish(
        &mut self,
        req: ControllerPublishVolumeRequest,
    ) -> Result<Response<ControllerPublishVolumeResponse>, Status> {
        let (v, n) = (req.volume_id.clone(), req.node_id.clone());
        let r = self.ctl.controller_publish_volume(req).await;
        if r.is_ok() && !v.is_empty() && !n.is_empty() {
            self.resources.push(Resource::Volume {
                id: v,
                node: Some(n),
            });
        }
        r
    }

    pub async fn delete_volume(
        &mut self,
        id: &str,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        let r = self
            .ctl
            .delete_volume(DeleteVolumeRequest {
                volume_id: id.to_owned(),
                ..Default::default()
            })
            .await;
        if r.is_ok()
            && let Some(i) = self
                .resources
                .iter()
                .position(|x| matches!(x, Resource::Volume { id: v, .. } if v == id))
        {
            self.resources.remove(i);
        }
        r
    }

    pub async fn create_snapshot(
        &mut self,
        req: CreateSnapshotRequest,
    ) -> Result<Response<CreateSnapshotResponse>, Status> {
        let r = self.ctl.create_snapshot(req).await;
        if let Ok(resp) = &r
            && let Some(s) = &resp.get_ref().snapshot
        {
            self.resources.push(Resource::Snapshot {
                id: s.snapshot_id.clone(),
            });
        }
        r
    }

    pub async fn snapshot(&mut self, name: &str, source: &str) -> Snapshot {
        self.create_snapshot(snapshot_req(name, source))
            .await
            .unwrap()
            .into_inner()
            .snapshot
            .unwrap()
    }

    pub async fn delete_snapshot(
        &mut self,
        id: &str,
    ) -> Result<Response<DeleteSnapshotResponse>, Status> {
        let r = self
            .ctl
            .delete_snapshot(DeleteSnapshotRequest {
                snapshot_id: id.to_owned(),
                ..Default::default()
            })
            .await;
        if r.is_ok()
            && let Some(i) = self
                .resources
                .iter()
                .position(|x| matches!(x, Resource::Snapshot { id: s } if s == id))
        {
            self.resources.remove(i);
        }
        r
    }

    /// csi-sanity's AfterEach: LIFO over the resource list; every error
    /// counts (NOT_FOUND excepted for the node calls).
    pub async fn finish(mut self) {
        let mut errors = Vec::new();
        while let Some(r) = self.resources.pop() {
            match r {
                Resource::Volume { id, node } => {
                    if let Some(mut nc) = self.nodec.clone() {
                        let r = nc
                            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                                volume_id: id.clone(),
                                target_path: self.target_path(),
                            })
                            .await;
                        if let Err(e) = r
                            && e.code() != Code::NotFound
                        {
                            errors.push(format!("NodeUnpublish({id}): {e}"));
                        }
                        let r = nc
                            .node_unstage_volume(NodeUnstageVolumeRequest {
                                volume_id: id.clone(),
                                staging_target_path: self.staging_path(),
                            })
                            .await;
                        if let Err(e) = r
                            && e.code() != Code::NotFound
                        {
                            errors.push(format!("NodeUnstage({id}): {e}"));
                        }
                    }
                    if let Some(node) = node
                        && let Err(e) = self
                            .ctl
                            .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                                volume_id: id.clone(),
                                node_id: node.clone(),
                                ..Default::default()
                            })
                            .await
                    {
                        errors.push(format!("ControllerUnpublish({id}, {node}): {e}"));
                    }
                    if let Err(e) = self
                        .ctl
                        .delete_volume(DeleteVolumeRequest {
                            volume_id: id.clone(),
                            ..Default::default()
                        })
                        .await
                    {
                        errors.push(format!("DeleteVolume({id}): {e}"));
                    }
                }
                Resource::Snapshot { id } => {
                    if let Err(e) = self
                        .ctl
                        .delete_snapshot(DeleteSnapshotRequest {
                            snapshot_id: id.clone(),
                            ..Default::default()
                        })
                        .await
                    {
                        errors.push(format!("DeleteSnapshot({id}): {e}"));
                    }
                }
            }
        }
        self.stack.stop().await;
        assert!(errors.is_empty(), "cleanup failed: {errors:#?}");
    }
}

/// Parameters with the PVC metadata the provisioner adds (`--extra-create-metadata`).
pub fn pvc_params(namespace: &str, name: &str) -> HashMap<String, String> {
    HashMap::from([
        (
            "csi.storage.k8s.io/pvc/namespace".to_owned(),
            namespace.to_owned(),
        ),
        ("csi.storage.k8s.io/pvc/name".to_owned(), name.to_owned()),
        ("csi.storage.k8s.io/pv/name".to_owned(), "pv-x".to_owned()),
    ])
}
