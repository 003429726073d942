//! csi-frontend against an in-process fake rds-agent and attachment-service
//! (real gRPC): CSI ListVolumes pages through the agent's stream however
//! many volumes there are (more than one 4 MiB message could carry), and
//! CreateVolume hands `limit_bytes` to the agent after checking it itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csi_frontend::Config;
use futures::Stream;
use rds_bus::{BusChannel, ClientOptions, Listener, Shutdown};
use rds_proto::agent::agent_server::{Agent, AgentServer};
use rds_proto::agent::*;
use rds_proto::attachment as att;
use rds_proto::attachment::attachments_server::{Attachments, AttachmentsServer};
use rds_proto::csi::v1::controller_client::ControllerClient;
use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use rds_proto::csi::v1::{self as csi, VolumeCapability};
use tonic::{Code, Request, Response, Status};

type PageStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

const GIB: u64 = 1 << 30;
/// Volumes the fake lists: about 190 bytes each on the wire, so about
/// 7.6 MB in one message — past the 4 MiB default limit.
const MANY: usize = 40_000;

#[derive(Clone, Default)]
struct Fake {
    volumes: Arc<Vec<Volume>>,
    creates: Arc<Mutex<Vec<CreateVolumeRequest>>>,
}

fn nope<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("fake"))
}

fn volume(id: &str, size: u64) -> Volume {
    Volume {
        volume_id: id.to_owned(),
        size_bytes: size,
        file_path: format!("/storage-pool/metal-csi/{id}.img"),
        nvme_export: true,
        nvme_port: 4420,
        nqn: format!("nqn.2000-02.com.mikrotik:{id}"),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Agent for Fake {
    async fn create_volume(
        &self,
        req: Request<CreateVolumeRequest>,
    ) -> Result<Response<Volume>, Status> {
        let r = req.into_inner();
        self.creates.lock().unwrap().push(r.clone());
        Ok(Response::new(volume(&r.volume_id, r.size_bytes)))
    }
    async fn delete_volume(
        &self,
        _r: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        nope()
    }
    async fn get_volume(&self, _r: Request<GetVolumeRequest>) -> Result<Response<Volume>, Status> {
        nope()
    }
    type ListVolumesStream = PageStream<ListVolumesResponse>;
    /// Pages of 500, as rds-agent sends them.
    async fn list_volumes(
        &self,
        _r: Request<ListVolumesRequest>,
    ) -> Result<Response<Self::ListVolumesStream>, Status> {
        let pages: Vec<Result<ListVolumesResponse, Status>> = self
            .volumes
            .chunks(500)
            .map(|c| {
                Ok(ListVolumesResponse {
                    volumes: c.to_vec(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(pages))))
    }
    async fn expand_volume(
        &self,
        _r: Request<ExpandVolumeRequest>,
    ) -> Result<Response<Volume>, Status> {
        nope()
    }
    async fn get_capacity(
        &self,
        _r: Request<GetCapacityRequest>,
    ) -> Result<Response<Capacity>, Status> {
        nope()
    }
    async fn create_snapshot(
        &self,
        _r: Request<CreateSnapshotRequest>,
    ) -> Result<Response<Snapshot>, Status> {
        nope()
    }
    async fn delete_snapshot(
        &self,
        _r: Request<DeleteSnapshotRequest>,
    ) -> Result<Response<DeleteSnapshotResponse>, Status> {
        nope()
    }
    type ListSnapshotsStream = PageStream<ListSnapshotsResponse>;
    async fn list_snapshots(
        &self,
        _r: Request<ListSnapshotsRequest>,
    ) -> Result<Response<Self::ListSnapshotsStream>, Status> {
        nope()
    }
    async fn probe(&self, _r: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        nope()
    }
    async fn set_allowed_hosts(
        &self,
        _r: Request<SetAllowedHostsRequest>,
    ) -> Result<Response<AllowedHosts>, Status> {
        nope()
    }
    async fn list_allowed_hosts(
        &self,
        _r: Request<ListAllowedHostsRequest>,
    ) -> Result<Response<ListAllowedHostsResponse>, Status> {
        nope()
    }
}

/// No attachments at all (ListVolumes asks for them).
#[derive(Clone)]
struct NoAttachments;

#[tonic::async_trait]
impl Attachments for NoAttachments {
    async fn attach(
        &self,
        _r: Request<att::AttachRequest>,
    ) -> Result<Response<att::AttachResponse>, Status> {
        nope()
    }
    async fn detach(
        &self,
        _r: Request<att::DetachRequest>,
    ) -> Result<Response<att::DetachResponse>, Status> {
        nope()
    }
    async fn get(&self, _r: Request<att::GetRequest>) -> Result<Response<att::Attachment>, Status> {
        nope()
    }
    async fn list(
        &self,
        _r: Request<att::ListRequest>,
    ) -> Result<Response<att::ListResponse>, Status> {
        Ok(Response::new(att::ListResponse::default()))
    }
}

fn channel(ep: &str) -> BusChannel {
    rds_bus::connect(
        ep,
        ClientOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(60),
        },
    )
    .unwrap()
}

async fn start(fake: Fake) -> (ControllerClient<BusChannel>, Shutdown, tempfile::TempDir) {
    let shutdown = Shutdown::new();
    let la = Listener::bind("127.0.0.1:0").await.unwrap();
    let agent_ep = la.endpoint();
    let lt = Listener::bind("127.0.0.1:0").await.unwrap();
    let att_ep = lt.endpoint();
    let sd = shutdown.clone();
    tokio::spawn(async move {
        rds_bus::Bus::new()
            .add_service(AgentServer::new(fake))
            .serve(la, async move { sd.wait().await })
            .await
    });
    let sd = shutdown.clone();
    tokio::spawn(async move {
        rds_bus::Bus::new()
            .add_service(AttachmentsServer::new(NoAttachments))
            .serve(lt, async move { sd.wait().await })
            .await
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(&agent_ep, &att_ep, "127.0.0.1:1", &["n1"]).unwrap();
    let sock = format!("unix://{}/csi.sock", dir.path().display());
    cfg.endpoint = sock.clone();
    let l = Listener::bind(&sock).await.unwrap();
    // Serving once `start` returns; it stops when `shutdown` fires.
    let running = csi_frontend::start(cfg, l, shutdown.clone()).await.unwrap();
    tokio::spawn(running.wait());
    (ControllerClient::new(channel(&sock)), shutdown, dir)
}

/// 40,000 volumes (more than one 4 MiB message holds) reach the CO through
/// CSI ListVolumes pages, each exactly once, following the cursor token.
#[tokio::test(flavor = "multi_thread")]
async fn csi_list_volumes_pages_return_every_volume_of_a_large_pool_exactly_once() {
    // Listed out of order on purpose: the frontend sorts for its cursor.
    let mut vols: Vec<Volume> = (0..MANY)
        .map(|i| {
            volume(
                &format!("pvc-{:08x}-4a1b-8c2d-9e3f{i:08}", i * 7919 % MANY),
                GIB,
            )
        })
        .collect();
    vols.reverse();
    let want: BTreeSet<String> = vols.iter().map(|v| v.volume_id.clone()).collect();
    assert_eq!(want.len(), MANY);
    let fake = Fake {
        volumes: Arc::new(vols),
        ..Fake::default()
    };
    let (mut ctl, shutdown, _dir) = start(fake).await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = ctl
            .list_volumes(csi::ListVolumesRequest {
                max_entries: 7_000,
                starting_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(r.entries.len() <= 7_000);
        seen.extend(r.entries.into_iter().map(|e| e.volume.unwrap().volume_id));
        if r.next_token.is_empty() {
            break;
        }
        token = r.next_token;
        assert!(pages < 20, "paging does not end");
    }
    assert_eq!(pages, MANY.div_ceil(7_000));
    assert_eq!(seen.len(), MANY, "every volume once");
    let got: BTreeSet<String> = seen.into_iter().collect();
    assert_eq!(got, want);
    shutdown.trigger();
}

fn create_req(name: &str, required: i64, limit: i64) -> csi::CreateVolumeRequest {
    csi::CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(csi::CapacityRange {
            required_bytes: required,
            limit_bytes: limit,
        }),
        volume_capabilities: vec![VolumeCapability {
            access_mode: Some(AccessMode {
                mode: Mode::SingleNodeWriter as i32,
            }),
            access_type: Some(AccessType::Mount(MountVolume::default())),
        }],
        ..Default::default()
    }
}

/// CSI `limit_bytes` goes to the agent (which alone knows a restore's
/// source size); a range the frontend can already refuse never reaches it.
#[tokio::test(flavor = "multi_thread")]
async fn create_volume_sends_limit_bytes_and_refuses_an_impossible_range_itself() {
    let fake = Fake::default();
    let creates = fake.creates.clone();
    let (mut ctl, shutdown, _dir) = start(fake).await;
    let limit = (GIB + GIB / 2) as i64;
    ctl.create_volume(create_req("pvc-lim", GIB as i64, limit))
        .await
        .unwrap();
    ctl.create_volume(create_req("pvc-nolim", GIB as i64, 0))
        .await
        .unwrap();
    {
        let seen = creates.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].limit_bytes, limit as u64);
        assert_eq!(seen[1].limit_bytes, 0);
    }
    let err = ctl
        .create_volume(create_req("pvc-bad", 2 * GIB as i64, GIB as i64))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    let err = ctl
        .create_volume(create_req("pvc-bad2", GIB as i64 + 1, GIB as i64 + 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "no whole MiB fits: {err:?}");
    assert_eq!(creates.lock().unwrap().len(), 2, "refused before the agent");
    shutdown.trigger();
}
