//! csi-frontend against a small in-process fake rds-agent (real gRPC): the
//! deadline of a CSI call shrinks every bus call under it, a cancelled CSI
//! call cancels its bus call, bus reasons keep their CSI meaning, Probe
//! follows the agent, CSI ListVolumes pages through the agent's stream however
//! many volumes there are (more than one 4 MiB message could carry), and
//! CreateVolume hands `limit_bytes` to the agent after checking it itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use csi_frontend::Config;
use rds_bus::{BusChannel, ClientOptions, Listener, Reason, Shutdown, status};
use rds_proto::agent::agent_server::{Agent, AgentServer};
use rds_proto::agent::*;
use rds_proto::attachment as att;
use rds_proto::attachment::attachments_server::{Attachments, AttachmentsServer};
use rds_proto::csi::v1::controller_client::ControllerClient;
use rds_proto::csi::v1::identity_client::IdentityClient;
use rds_proto::csi::v1::volume_capability::access_mode::Mode;
use rds_proto::csi::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use rds_proto::csi::v1::{self as csi, VolumeCapability};
use tonic::{Code, Request, Response, Status};

/// What the fake does on GetVolume and CreateVolume (CreateVolume is one
/// bus call: rds-agent decides existence itself).
#[derive(Clone)]
enum OnGet {
    NotFound,
    Hang,
    Fail(Reason),
    /// Answer with this status (any code, reason or none).
    Status(Code, &'static str),
    /// Answer CreateVolume with this volume.
    Answer(Box<Volume>),
    /// Answer CreateVolume with the volume it asked for (GetVolume: not found).
    Echo,
}

struct State {
    on_get: OnGet,
    reachable: bool,
    /// What ListVolumes streams, in pages of 500 as rds-agent sends them.
    listed: Arc<Vec<Volume>>,
    seen_timeouts: Vec<String>,
    seen_creates: Vec<CreateVolumeRequest>,
}

#[derive(Clone)]
struct FakeAgent {
    state: Arc<Mutex<State>>,
    /// Set when a hanging handler is dropped (its call was cancelled).
    dropped: Arc<AtomicBool>,
}

struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

type PageStream<T> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("fake"))
}

/// A volume as rds-agent describes one of the flat layout.
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

/// No attachments at all (ListVolumes asks for them).
#[derive(Clone)]
struct NoAttachments;

#[tonic::async_trait]
impl Attachments for NoAttachments {
    async fn attach(
        &self,
        _r: Request<att::AttachRequest>,
    ) -> Result<Response<att::AttachResponse>, Status> {
        unimplemented()
    }
    async fn detach(
        &self,
        _r: Request<att::DetachRequest>,
    ) -> Result<Response<att::DetachResponse>, Status> {
        unimplemented()
    }
    async fn get(&self, _r: Request<att::GetRequest>) -> Result<Response<att::Attachment>, Status> {
        unimplemented()
    }
    async fn list(
        &self,
        _r: Request<att::ListRequest>,
    ) -> Result<Response<att::ListResponse>, Status> {
        Ok(Response::new(att::ListResponse::default()))
    }
}

impl FakeAgent {
    async fn scripted(
        &self,
        md: &tonic::metadata::MetadataMap,
    ) -> Result<Response<Volume>, Status> {
        let on_get = {
            let mut s = self.state.lock().unwrap();
            if let Some(t) = md.get("grpc-timeout") {
                s.seen_timeouts.push(t.to_str().unwrap().to_owned());
            }
            s.on_get.clone()
        };
        match on_get {
            OnGet::NotFound | OnGet::Echo => Err(status(Reason::VolumeNotFound, "no such volume")),
            OnGet::Fail(r) => Err(status(r, "scripted failure")),
            OnGet::Status(code, msg) => Err(Status::new(code, msg)),
            OnGet::Answer(v) => Ok(Response::new(*v)),
            OnGet::Hang => {
                let _flag = DropFlag(self.dropped.clone());
                tokio::time::sleep(Duration::from_secs(30)).await;
                Err(Status::internal("hang ended"))
            }
        }
    }
}

#[tonic::async_trait]
impl Agent for FakeAgent {
    async fn get_volume(&self, req: Request<GetVolumeRequest>) -> Result<Response<Volume>, Status> {
        self.scripted(req.metadata()).await
    }
    async fn create_volume(
        &self,
        req: Request<CreateVolumeRequest>,
    ) -> Result<Response<Volume>, Status> {
        let md = req.metadata().clone();
        let req = req.into_inner();
        let echo = {
            let mut s = self.state.lock().unwrap();
            s.seen_creates.push(req.clone());
            matches!(s.on_get, OnGet::Echo)
        };
        if echo {
            return Ok(Response::new(volume(&req.volume_id, req.size_bytes)));
        }
        self.scripted(&md).await
    }
    async fn delete_volume(
        &self,
        _r: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        unimplemented()
    }
    type ListVolumesStream = PageStream<ListVolumesResponse>;
    async fn list_volumes(
        &self,
        _r: Request<ListVolumesRequest>,
    ) -> Result<Response<Self::ListVolumesStream>, Status> {
        let listed = self.state.lock().unwrap().listed.clone();
        let pages: Vec<Result<ListVolumesResponse, Status>> = listed
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
        unimplemented()
    }
    async fn get_capacity(
        &self,
        _r: Request<GetCapacityRequest>,
    ) -> Result<Response<Capacity>, Status> {
        Err(status(Reason::RdsUnreachable, "rds down"))
    }
    async fn create_snapshot(
        &self,
        _r: Request<CreateSnapshotRequest>,
    ) -> Result<Response<Snapshot>, Status> {
        unimplemented()
    }
    async fn delete_snapshot(
        &self,
        _r: Request<DeleteSnapshotRequest>,
    ) -> Result<Response<DeleteSnapshotResponse>, Status> {
        unimplemented()
    }
    type ListSnapshotsStream = PageStream<ListSnapshotsResponse>;
    async fn list_snapshots(
        &self,
        _r: Request<ListSnapshotsRequest>,
    ) -> Result<Response<Self::ListSnapshotsStream>, Status> {
        unimplemented()
    }
    async fn probe(&self, _r: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        let reachable = self.state.lock().unwrap().reachable;
        Ok(Response::new(ProbeResponse {
            reachable,
            detail: if reachable {
                "connected"
            } else {
                "circuit open"
            }
            .into(),
        }))
    }
    async fn set_allowed_hosts(
        &self,
        _r: Request<SetAllowedHostsRequest>,
    ) -> Result<Response<AllowedHosts>, Status> {
        Err(Status::unimplemented("not used by csi-frontend"))
    }
    async fn list_allowed_hosts(
        &self,
        _r: Request<ListAllowedHostsRequest>,
    ) -> Result<Response<ListAllowedHostsResponse>, Status> {
        Err(Status::unimplemented("not used by csi-frontend"))
    }
}

struct Env {
    agent: FakeAgent,
    ctl: ControllerClient<BusChannel>,
    ident: IdentityClient<BusChannel>,
    shutdown: Shutdown,
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

/// A fake agent (or none: `agent = false` points at a closed port) and the
/// frontend on a temp unix socket, optionally with its own `--agent-timeout`.
async fn env(agent: bool, agent_timeout: Option<&str>) -> (Env, tempfile::TempDir) {
    let shutdown = Shutdown::new();
    let fake = FakeAgent {
        state: Arc::new(Mutex::new(State {
            on_get: OnGet::NotFound,
            reachable: true,
            listed: Arc::new(Vec::new()),
            seen_timeouts: Vec::new(),
            seen_creates: Vec::new(),
        })),
        dropped: Arc::new(AtomicBool::new(false)),
    };
    let agent_ep = if agent {
        let l = Listener::bind("127.0.0.1:0").await.unwrap();
        let ep = l.endpoint();
        let svc = fake.clone();
        let sd = shutdown.clone();
        tokio::spawn(async move {
            rds_bus::Bus::new()
                .add_service(AgentServer::new(svc))
                .serve(l, async move { sd.wait().await })
                .await
        });
        ep
    } else {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        ep
    };
    let dir = tempfile::tempdir().unwrap();
    // An attachment-service that holds nothing (ListVolumes asks it).
    let lt = Listener::bind("127.0.0.1:0").await.unwrap();
    let att_ep = lt.endpoint();
    let sd = shutdown.clone();
    tokio::spawn(async move {
        rds_bus::Bus::new()
            .add_service(AttachmentsServer::new(NoAttachments))
            .serve(lt, async move { sd.wait().await })
            .await
    });
    let mut cfg = Config::for_tests(&agent_ep, &att_ep, "127.0.0.1:1", &["n1"]).unwrap();
    let sock = format!("unix://{}/csi.sock", dir.path().display());
    cfg.endpoint = sock.clone();
    if let Some(t) = agent_timeout {
        cfg.agent_timeout = csi_frontend::validate::duration(t).unwrap();
    }
    let l = Listener::bind(&sock).await.unwrap();
    // Serving goes on in its own task; `shutdown` stops it.
    let _running = csi_frontend::start(cfg, l, shutdown.clone()).await.unwrap();
    let env = Env {
        agent: fake,
        ctl: ControllerClient::new(channel(&sock)),
        ident: IdentityClient::new(channel(&sock)),
        shutdown,
    };
    (env, dir)
}

fn create_req(name: &str) -> csi::CreateVolumeRequest {
    csi::CreateVolumeRequest {
        name: name.into(),
        volume_capabilities: vec![VolumeCapability {
            access_mode: Some(AccessMode {
                mode: Mode::SingleNodeWriter as i32,
            }),
            access_type: Some(AccessType::Mount(MountVolume::default())),
        }],
        ..Default::default()
    }
}

fn timeout_of(v: &str) -> Duration {
    csi_frontend::deadline::parse_grpc_timeout(v).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_csi_deadline_shrinks_the_bus_call_and_cancelling_it_cancels_the_bus_call() {
    let (mut e, _dir) = env(true, None).await;
    e.agent.state.lock().unwrap().on_get = OnGet::Hang;
    let mut req = Request::new(create_req("pvc-1"));
    req.set_timeout(Duration::from_millis(400));
    let started = Instant::now();
    let err = e.ctl.create_volume(req).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let seen = e.agent.state.lock().unwrap().seen_timeouts.clone();
    assert_eq!(seen.len(), 1);
    assert!(
        timeout_of(&seen[0]) <= Duration::from_millis(400),
        "agent saw {seen:?}"
    );
    // The agent's handler future was dropped: the bus call was cancelled.
    let until = Instant::now() + Duration::from_secs(2);
    while !e.agent.dropped.load(Ordering::SeqCst) {
        assert!(Instant::now() < until, "the bus call outlived the CSI call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The volume guard went with it: the next call is not ABORTED.
    e.agent.state.lock().unwrap().on_get = OnGet::Fail(Reason::RdsUnreachable);
    let err = e.ctl.create_volume(create_req("pvc-1")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    e.shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_csi_deadline_the_configured_bus_timeout_bounds_the_call() {
    let (mut e, _dir) = env(true, Some("300ms")).await;
    e.agent.state.lock().unwrap().on_get = OnGet::Hang;
    let started = Instant::now();
    let err = e.ctl.create_volume(create_req("pvc-2")).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let seen = e.agent.state.lock().unwrap().seen_timeouts.clone();
    assert!(
        timeout_of(&seen[0]) <= Duration::from_millis(300),
        "{seen:?}"
    );
    e.shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread")]
async fn bus_reasons_keep_their_csi_meaning_over_the_wire() {
    let (mut e, _dir) = env(true, None).await;
    for (reason, code) in [
        (Reason::RdsUnreachable, Code::Unavailable),
        (Reason::CapacityExhausted, Code::ResourceExhausted),
        (Reason::RdsTimeout, Code::DeadlineExceeded),
        (Reason::RdsAuthFailed, Code::Unavailable),
    ] {
        e.agent.state.lock().unwrap().on_get = OnGet::Fail(reason);
        let err = e.ctl.create_volume(create_req("pvc-3")).await.unwrap_err();
        assert_eq!(err.code(), code, "{reason}");
        assert_eq!(rds_bus::reason_of(&err), Some(reason));
        assert!(
            err.message().starts_with("rds-agent CreateVolume: "),
            "{}",
            err.message()
        );
    }
    let err = e
        .ctl
        .get_capacity(csi::GetCapacityRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    e.shutdown.trigger();
}

/// Probe is csi-frontend's own health (docs: deploy/README.md, "Health"):
/// it stays ready whatever the agent reports about the RDS, so the
/// livenessprobe sidecar never restarts csi-frontend for an RDS outage.
#[tokio::test(flavor = "multi_thread")]
async fn probe_stays_ready_whatever_the_agent_reports_about_the_rds() {
    let (mut e, _dir) = env(true, None).await;
    let probe = |mut c: IdentityClient<BusChannel>| async move {
        c.probe(csi::ProbeRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    };
    assert_eq!(probe(e.ident.clone()).await, Some(true));
    e.agent.state.lock().unwrap().reachable = false;
    assert_eq!(probe(e.ident.clone()).await, Some(true));
    let info = e
        .ident
        .get_plugin_info(csi::GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));
    e.shutdown.trigger();
}

/// With rds-agent not answering at all, calls that need it are UNAVAILABLE
/// while Probe still answers ready (each container has its own liveness).
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_agent_is_unavailable_and_probe_stays_ready() {
    let (mut e, _dir) = env(false, None).await;
    let err = e.ctl.create_volume(create_req("pvc-4")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let ready = e
        .ident
        .probe(csi::ProbeRequest {})
        .await
        .unwrap()
        .into_inner()
        .ready;
    assert_eq!(ready, Some(true));
    e.shutdown.trigger();
}

fn with_params(name: &str, kv: &[(&str, &str)]) -> csi::CreateVolumeRequest {
    let mut r = create_req(name);
    r.parameters = kv
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    r
}

/// The StorageClass's layout and the provisioner's metadata reach the agent
/// as CreateVolumeRequest.layout/owner; the metadata keys are not unknown
/// parameters; the layout the agent answers is recorded in volume_context.
#[tokio::test(flavor = "multi_thread")]
async fn layout_and_owner_reach_the_agent_and_the_layout_lands_in_the_context() {
    let (mut e, _dir) = env(true, None).await;
    let name = "pvc-5";
    let answer = Volume {
        volume_id: name.into(),
        size_bytes: 1 << 30,
        file_path: format!("/storage-pool/metal-csi/{name}/volume.img"),
        nvme_export: true,
        nvme_port: 4420,
        layout: VolumeLayout::Subvolume as i32,
        ..Default::default()
    };
    e.agent.state.lock().unwrap().on_get = OnGet::Answer(Box::new(answer.clone()));
    let req = with_params(
        name,
        &[
            ("volumeLayout", "subvolume"),
            ("csi.storage.k8s.io/pvc/namespace", "apps"),
            ("csi.storage.k8s.io/pvc/name", "data"),
            ("csi.storage.k8s.io/pv/name", name),
        ],
    );
    let vol = e
        .ctl
        .create_volume(req)
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let sent = e.agent.state.lock().unwrap().seen_creates.pop().unwrap();
    assert_eq!(sent.layout, VolumeLayout::Subvolume as i32);
    let owner = sent.owner.unwrap();
    assert_eq!(owner.cluster_id, "default");
    assert_eq!(owner.pv_name, name);
    let pvc = owner.pvc.unwrap();
    assert_eq!(
        (pvc.namespace.as_str(), pvc.name.as_str()),
        ("apps", "data")
    );
    assert_eq!(vol.volume_context["volumeLayout"], "subvolume");
    assert_eq!(
        vol.volume_context["volumePath"],
        format!("/storage-pool/metal-csi/{name}/volume.img")
    );

    flat_by_default_and_layout_refusals(&mut e, name, &answer).await;
    e.shutdown.trigger();
}

/// No layout parameter: flat on the wire, no key in the context; a retried
/// create finding the other layout is ALREADY_EXISTS; a bad layout never
/// reaches the agent.
async fn flat_by_default_and_layout_refusals(e: &mut Env, name: &str, answer: &Volume) {
    e.agent.state.lock().unwrap().on_get = OnGet::Answer(Box::new(Volume {
        file_path: format!("/storage-pool/metal-csi/{name}.img"),
        layout: VolumeLayout::Flat as i32,
        ..answer.clone()
    }));
    let vol = e
        .ctl
        .create_volume(create_req(name))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let sent = e.agent.state.lock().unwrap().seen_creates.pop().unwrap();
    assert_eq!(sent.layout, VolumeLayout::Flat as i32);
    assert!(!vol.volume_context.contains_key("volumeLayout"));

    // A retried create that finds the volume with the other layout.
    let err = e
        .ctl
        .create_volume(with_params(name, &[("volumeLayout", "subvolume")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains("layout flat"), "{}", err.message());

    // A bad layout never reaches the agent.
    let before = e.agent.state.lock().unwrap().seen_creates.len();
    let err = e
        .ctl
        .create_volume(with_params(name, &[("volumeLayout", "zfs")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("flat, subvolume"),
        "{}",
        err.message()
    );
    assert_eq!(e.agent.state.lock().unwrap().seen_creates.len(), before);
}

/// The agent's refusal of a subvolume volume on a pool that is not Btrfs
/// reaches the CO as FAILED_PRECONDITION with the agent's words.
#[tokio::test(flavor = "multi_thread")]
async fn a_non_btrfs_pool_refusal_passes_through_with_its_message() {
    let (mut e, _dir) = env(true, None).await;
    const WHY: &str = "layout subvolume needs a Btrfs pool; storage-pool is xfs";
    e.agent.state.lock().unwrap().on_get = OnGet::Status(Code::FailedPrecondition, WHY);
    let err = e
        .ctl
        .create_volume(with_params("pvc-6", &[("volumeLayout", "subvolume")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains(WHY), "{}", err.message());
    e.shutdown.trigger();
}

const GIB: u64 = 1 << 30;
/// Volumes the fake lists: about 190 bytes each on the wire, so about
/// 7.6 MB in one message — past the 4 MiB default limit.
const MANY: usize = 40_000;

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
    let (mut e, _dir) = env(true, None).await;
    e.agent.state.lock().unwrap().listed = Arc::new(vols);
    let ctl = &mut e.ctl;
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
    e.shutdown.trigger();
}

fn ranged_req(name: &str, required: i64, limit: i64) -> csi::CreateVolumeRequest {
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
    let (mut e, _dir) = env(true, None).await;
    e.agent.state.lock().unwrap().on_get = OnGet::Echo;
    let ctl = &mut e.ctl;
    let limit = (GIB + GIB / 2) as i64;
    ctl.create_volume(ranged_req("pvc-lim", GIB as i64, limit))
        .await
        .unwrap();
    ctl.create_volume(ranged_req("pvc-nolim", GIB as i64, 0))
        .await
        .unwrap();
    {
        let state = e.agent.state.lock().unwrap();
        let seen = &state.seen_creates;
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].limit_bytes, limit as u64);
        assert_eq!(seen[1].limit_bytes, 0);
    }
    let err = ctl
        .create_volume(ranged_req("pvc-bad", 2 * GIB as i64, GIB as i64))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    let err = ctl
        .create_volume(ranged_req("pvc-bad2", GIB as i64 + 1, GIB as i64 + 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "no whole MiB fits: {err:?}");
    assert_eq!(
        e.agent.state.lock().unwrap().seen_creates.len(),
        2,
        "refused before the agent"
    );
    e.shutdown.trigger();
}
