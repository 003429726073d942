//! rds-agent on rds-sim: the list RPCs stream bounded pages, the listing
//! has its own (larger, bounded) output cap, `limit_bytes` is enforced, and
//! an agent nobody calls closes its idle SSH login (docs/decisions.md §9.9,
//! §9.12).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{GIB, MIB, Opts, create_req, env, eventually};
use rds_bus::{ClientOptions, Reason, reason_of};
use rds_proto::agent::agent_client::AgentClient;
use rds_proto::agent::create_volume_request::Source;
use rds_proto::agent::{CreateSnapshotRequest, CreateVolumeRequest};
use rds_sim::{FaultAction, FaultRule, Garble, SimHandle};
use tonic::Code;

/// Seeds `n` volume disks in-process, 100 `/disk add` per console line.
fn seed(sim: &SimHandle, prefix: &str, n: usize) {
    for chunk in 0..n.div_ceil(100) {
        let line: Vec<String> = (chunk * 100..n.min(chunk * 100 + 100))
            .map(|i| {
                let slot = format!("{prefix}-{i:05}");
                format!(
                    "/disk add type=file file-path=/storage-pool/metal-csi/{slot}.img file-size=1M slot={slot} nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:{slot}"
                )
            })
            .collect();
        let out = sim.console(&line.join("; "));
        assert!(out.trim().is_empty(), "{out}");
    }
}

/// The agent's list stream never sends a message bigger than a page: with a
/// client that refuses messages over 96 KiB, 1,200 volumes (about 140 KB in
/// one message, which is what the unary RPC sent) still list, each exactly
/// once, in pages of at most 500, sorted.
#[tokio::test(flavor = "multi_thread")]
async fn list_volumes_streams_pages_that_fit_a_small_message_limit() {
    let env = env(Opts::default()).await;
    let sim = env.sim.clone();
    tokio::task::spawn_blocking(move || seed(&sim, "pvc-many", 1200))
        .await
        .unwrap();
    let channel = rds_bus::connect(
        &env.agent.as_ref().unwrap().endpoint,
        ClientOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
        },
    )
    .unwrap();
    let mut small = AgentClient::new(channel).max_decoding_message_size(96 << 10);
    let (all, pages) = common::volume_pages(&mut small).await.unwrap();
    assert!(pages.len() >= 3, "pages: {pages:?}");
    assert!(pages.iter().all(|&n| n <= 500 && n > 0), "pages: {pages:?}");
    let ids: Vec<&str> = all.iter().map(|v| v.volume_id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "sorted, no duplicates");
    let want: Vec<String> = (0..1200).map(|i| format!("pvc-many-{i:05}")).collect();
    let got: Vec<String> = ids
        .iter()
        .filter(|i| i.starts_with("pvc-many-"))
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(got, want);
    env.shutdown().await;
}

/// The listing may be larger than the 8 MiB cap of every other command (a
/// 9 MiB reply is not refused for its size), and is still bounded: past
/// 32 MiB it is BAD_OUTPUT naming that cap, and its channel is closed.
#[tokio::test(flavor = "multi_thread")]
async fn the_listing_has_a_larger_but_bounded_output_cap() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    c.create_volume(create_req("pvc-one", GIB)).await.unwrap();
    // Only the unfiltered print ends right after `detail`.
    let listing = "^/disk print detail$";
    let rule = env
        .sim
        .faults()
        .add(FaultRule::new(FaultAction::Garble(Garble::Oversize(9 << 20))).on(listing));
    let err = common::all_volumes(&mut c).await.err();
    assert!(env.sim.faults().fired(rule) > 0);
    if let Some(e) = &err {
        assert!(!e.message().contains("8388608 bytes"), "{e:?}");
    }
    env.sim.faults().remove(rule);
    let rule = env
        .sim
        .faults()
        .add(FaultRule::new(FaultAction::Garble(Garble::Oversize(33 << 20))).on(listing));
    let err = common::all_volumes(&mut c).await.unwrap_err();
    assert!(env.sim.faults().fired(rule) > 0);
    assert_eq!(reason_of(&err), Some(Reason::RdsBadOutput), "{err:?}");
    assert!(err.message().contains("33554432 bytes"), "{err:?}");
    assert!(
        eventually(Duration::from_secs(5), async || env.sim.open_channels()
            == 0)
        .await,
        "open channels: {}",
        env.sim.open_channels()
    );
    env.sim.faults().remove(rule);
    assert_eq!(common::all_volumes(&mut c).await.unwrap().len(), 1);
    env.shutdown().await;
}

/// `limit_bytes` is the agent's rule too: a size above it is OUT_OF_RANGE,
/// and a restore whose source is larger than the limit is refused before
/// any `/disk add` (the frontend cannot know the source's size).
#[tokio::test(flavor = "multi_thread")]
async fn limit_bytes_is_refused_before_anything_is_created() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    let over = c
        .create_volume(CreateVolumeRequest {
            limit_bytes: GIB,
            ..create_req("pvc-over", GIB + 1)
        })
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::OutOfRange, "{over:?}");
    assert_eq!(env.adds_for("pvc-over"), 0);
    // Within the limit: fine.
    c.create_volume(CreateVolumeRequest {
        limit_bytes: 2 * GIB,
        ..create_req("pvc-src", 2 * GIB)
    })
    .await
    .unwrap();
    let snap_id = rds_bus::SnapshotId::from_name("limit-src").to_string();
    c.create_snapshot(CreateSnapshotRequest {
        snapshot_id: snap_id.clone(),
        source_volume_id: "pvc-src".into(),
        base_path: String::new(),
    })
    .await
    .unwrap();
    for source in [
        Source::SourceSnapshotId(snap_id.clone()),
        Source::SourceVolumeId("pvc-src".into()),
    ] {
        let err = c
            .create_volume(CreateVolumeRequest {
                limit_bytes: GIB + 512 * MIB,
                source: Some(source.clone()),
                ..create_req("pvc-restored", GIB)
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange, "{source:?}: {err:?}");
        assert!(err.message().contains("limit_bytes"), "{err:?}");
    }
    assert_eq!(env.adds_for("pvc-restored"), 0, "nothing was created");
    assert_eq!(env.disks_with_slot("pvc-restored"), 0);
    env.shutdown().await;
}

/// SSH logins the sim has right now (`/user active`).
fn logins(sim: &SimHandle) -> usize {
    rds_routeros::parse_active_user_print(&sim.console("/user active print detail"))
        .unwrap()
        .len()
}

/// An agent nobody calls (a standby replica's) closes its start-up login
/// once it has been idle for `--idle-timeout`, and reconnects on the next
/// call (docs/decisions.md §9.9).
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_agent_closes_its_login_and_reconnects_on_demand() {
    let env = env(Opts {
        agent_args: vec!["--idle-timeout".into(), "300ms".into()],
        ..Opts::default()
    })
    .await;
    // Barrier: the start-up warm-up logged in ...
    let sim = env.sim.clone();
    let mut seen = false;
    let gone = eventually(Duration::from_secs(10), async || {
        let n = logins(&sim);
        seen |= n > 0;
        seen && n == 0
    })
    .await;
    // ... and that login ended with no call made.
    assert!(seen, "the warm-up login was never seen");
    assert!(gone, "idle login still open: {}", logins(&env.sim));
    assert_eq!(env.sim.open_channels(), 0);
    // The next call reconnects on demand, and that login is closed again.
    let mut c = env.client();
    c.create_volume(create_req("pvc-after-idle", GIB))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || logins(&env.sim) == 0).await,
        "login after the call still open: {}",
        logins(&env.sim)
    );
    env.shutdown().await;
}
