//! Layout subvolume and the ownership tag (issue 19, docs/decisions.md §13),
//! end to end: rds-agent over real gRPC, rds-sim over real SSH. Data is
//! checked at the file level in the sim's files directory (a pattern written
//! into a volume's `volume.img`, snapshot, overwrite, restore → the pattern
//! back), and every call's RouterOS command count is read from the sim's
//! commands.log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Seek, SeekFrom, Write};

use common::{GIB, MIB, Opts, create_req, delete_req, env};
use rds_bus::BusChannel;
use rds_proto::agent::agent_client::AgentClient;
use rds_proto::agent::create_volume_request::Source;
use rds_proto::agent::{
    CreateSnapshotRequest, DeleteSnapshotRequest, GetVolumeRequest, ListSnapshotsRequest, Snapshot,
    VolumeLayout, VolumeOwner,
};
use rds_proto::common::PvcRef;
use rds_sim::{ExistingFileMode, LiveSnapshotMode, PoolFilesystem, SlotLimit};
use tonic::Code;

const BASE: &str = "/storage-pool/metal-csi";

fn subvol(id: &str, size: u64) -> rds_proto::agent::CreateVolumeRequest {
    rds_proto::agent::CreateVolumeRequest {
        layout: VolumeLayout::Subvolume as i32,
        ..create_req(id, size)
    }
}

fn owner(pv: &str) -> VolumeOwner {
    VolumeOwner {
        cluster_id: "home".into(),
        pv_name: pv.into(),
        pvc: Some(PvcRef {
            namespace: "default".into(),
            name: "data".into(),
        }),
    }
}

fn snap_req(id: &str, source: &str) -> CreateSnapshotRequest {
    CreateSnapshotRequest {
        snapshot_id: id.into(),
        source_volume_id: source.into(),
        base_path: String::new(),
    }
}

fn img(env: &common::Env, id: &str) -> std::path::PathBuf {
    env.sim
        .host_path(&format!("{BASE}/{id}/volume.img"))
        .unwrap()
}

fn write_at(p: &std::path::Path, off: u64, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

fn read_at(p: &std::path::Path, off: u64, n: usize) -> Vec<u8> {
    let mut f = std::fs::File::open(p).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    let mut b = vec![0; n];
    f.read_exact(&mut b).unwrap();
    b
}

fn pattern(seed: u8) -> Vec<u8> {
    (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(31) as u8) ^ seed)
        .collect()
}

/// Subvolumes the sim lists under the base path (by name).
fn subvolumes(env: &common::Env) -> Vec<String> {
    let out = env
        .sim
        .console("/disk/btrfs/subvolume/print detail where name~\"^metal-csi/\"");
    rds_routeros::parse_subvolume_print_detail(&out)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect()
}

/// Commands the sim received while `f` ran, and `f`'s result.
async fn counted<T>(
    env: &common::Env,
    f: impl std::future::Future<Output = T>,
) -> (T, Vec<String>) {
    let before = env.commands().len();
    let out = f.await;
    let after = env.commands();
    (out, after[before..].to_vec())
}

#[tokio::test]
async fn subvolume_volume_create_delete_and_its_tag() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    let id = "pvc-sv1";
    let req = rds_proto::agent::CreateVolumeRequest {
        owner: Some(owner(id)),
        ..subvol(id, GIB + 1)
    };
    let (v, cmds) = counted(&env, c.create_volume(req.clone())).await;
    let v = v.unwrap().into_inner();
    assert_eq!(
        cmds.len(),
        4,
        "read, subvolume add, disk add, verify: {cmds:#?}"
    );
    assert!(
        cmds[1].starts_with("/disk/btrfs/subvolume/add fs=storage-pool name=metal-csi/pvc-sv1")
    );
    assert_eq!(v.layout, VolumeLayout::Subvolume as i32);
    assert_eq!(v.file_path, format!("{BASE}/{id}/volume.img"));
    assert_eq!(v.size_bytes, GIB + MIB);
    assert_eq!(v.owner, Some(owner(id)));
    assert_eq!(subvolumes(&env), vec![format!("metal-csi/{id}")]);
    // The operator's view: the tag on the disk's first line.
    let print = env
        .sim
        .console(&format!("/disk print detail where slot={id}"));
    assert!(
        print.contains(";;; rds-csi: cluster=home pv=pvc-sv1 pvc=default/data"),
        "{print}"
    );
    // Retry: same answer, nothing sent but the read.
    let (again, cmds) = counted(&env, c.create_volume(req)).await;
    assert_eq!(again.unwrap().into_inner(), v);
    assert_eq!(cmds.len(), 1, "{cmds:#?}");
    // GetVolume and ListVolumes carry layout and owner.
    let got = c
        .get_volume(GetVolumeRequest {
            volume_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.owner, Some(owner(id)));
    assert_eq!(got.layout, VolumeLayout::Subvolume as i32);
    let all = common::all_volumes(&mut c).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].owner, Some(owner(id)));
    // Delete: disk, then subvolume (its file goes with it).
    let (d, cmds) = counted(&env, c.delete_volume(delete_req(id))).await;
    assert!(d.unwrap().into_inner().existed);
    assert_eq!(
        cmds.len(),
        3,
        "read, disk remove, subvolume remove: {cmds:#?}"
    );
    assert!(subvolumes(&env).is_empty());
    assert!(!env.sim.file_exists(&format!("{BASE}/{id}")));
    assert!(
        !c.delete_volume(delete_req(id))
            .await
            .unwrap()
            .into_inner()
            .existed
    );
    env.shutdown().await;
}

#[tokio::test]
async fn flat_volumes_get_the_tag_and_keep_their_counts() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    let req = rds_proto::agent::CreateVolumeRequest {
        owner: Some(owner("pvc-f1")),
        ..create_req("pvc-f1", GIB)
    };
    let (v, cmds) = counted(&env, c.create_volume(req)).await;
    let v = v.unwrap().into_inner();
    assert_eq!(cmds.len(), 3, "{cmds:#?}");
    assert!(cmds[1].ends_with("comment=\"rds-csi: cluster=home pv=pvc-f1 pvc=default/data\""));
    assert_eq!(v.layout, VolumeLayout::Flat as i32);
    assert_eq!(v.file_path, format!("{BASE}/pvc-f1.img"));
    assert_eq!(v.owner, Some(owner("pvc-f1")));
    // No owner → no comment; a bad owner value never reaches the RDS.
    let plain = c
        .create_volume(create_req("pvc-f2", GIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plain.owner, None);
    let bad = rds_proto::agent::CreateVolumeRequest {
        owner: Some(owner("Bad\"Name")),
        ..create_req("pvc-f3", GIB)
    };
    let (e, cmds) = counted(&env, c.create_volume(bad)).await;
    assert_eq!(e.unwrap_err().code(), Code::InvalidArgument);
    assert!(cmds.is_empty(), "{cmds:#?}");
    let (d, cmds) = counted(&env, c.delete_volume(delete_req("pvc-f1"))).await;
    assert!(d.unwrap().into_inner().existed);
    assert_eq!(cmds.len(), 3, "{cmds:#?}");
    env.shutdown().await;
}

/// Snapshot of `pvc-src`: a read-only subvolume child, and a retry returns it again.
async fn snapshot_subvolume(env: &common::Env, c: &mut AgentClient<BusChannel>) -> Snapshot {
    let (s, cmds) = counted(env, c.create_snapshot(snap_req("snap-a", "pvc-src"))).await;
    let s = s.unwrap().into_inner();
    assert_eq!(cmds.len(), 3, "read, subvolume add, read back: {cmds:#?}");
    assert!(
        cmds[1].contains("parent=metal-csi/pvc-src read-only=yes"),
        "{}",
        cmds[1]
    );
    assert_eq!(s.layout, VolumeLayout::Subvolume as i32);
    assert!(s.ready_to_use);
    assert!(s.creation_time.is_some_and(|t| t.seconds > 1_700_000_000));
    assert_eq!(s.source_volume_id, "pvc-src");
    assert_eq!(s.size_bytes, GIB);
    assert_eq!(
        s.file_path,
        format!("{BASE}/snap-a.from-pvc-src/volume.img")
    );
    // Retry: the same snapshot, one read.
    let (again, cmds) = counted(env, c.create_snapshot(snap_req("snap-a", "pvc-src"))).await;
    assert_eq!(again.unwrap().into_inner(), s);
    assert_eq!(cmds.len(), 1, "{cmds:#?}");

    s
}

/// A restore of `snap-a` (taken before the overwrite) adopts the snapshot's file.
async fn restore_keeps_the_snapshot_bytes(
    env: &common::Env,
    c: &mut AgentClient<BusChannel>,
    p: &[u8],
) {
    let restore = rds_proto::agent::CreateVolumeRequest {
        source: Some(Source::SourceSnapshotId("snap-a".into())),
        owner: Some(owner("pvc-r1")),
        ..subvol("pvc-r1", GIB)
    };
    let (r, cmds) = counted(env, c.create_volume(restore)).await;
    let r = r.unwrap().into_inner();
    assert_eq!(
        cmds.len(),
        4,
        "read, subvolume snapshot, adopting add, verify: {cmds:#?}"
    );
    assert!(
        !cmds[2].contains("file-size="),
        "adopts the file: {}",
        cmds[2]
    );
    assert_eq!(r.size_bytes, GIB);
    assert_eq!(r.owner, Some(owner("pvc-r1")));
    assert!(
        read_at(&img(env, "pvc-r1"), 3 * MIB, p.len()) == p,
        "pvc-r1 does not hold the expected bytes"
    );
}

/// A larger clone of the (overwritten) source is grown after the add.
async fn clone_larger_is_grown_after_the_add(
    env: &common::Env,
    c: &mut AgentClient<BusChannel>,
    p: &[u8],
) {
    // Clone of the (overwritten) source, larger: grown after the add.
    let clone = rds_proto::agent::CreateVolumeRequest {
        source: Some(Source::SourceVolumeId("pvc-src".into())),
        ..subvol("pvc-c1", 2 * GIB)
    };
    let (cl, cmds) = counted(env, c.create_volume(clone)).await;
    let cl = cl.unwrap().into_inner();
    assert_eq!(
        cmds.len(),
        5,
        "read, subvolume snapshot, add, set, verify: {cmds:#?}"
    );
    assert!(cmds[3].starts_with("/disk set [find slot=pvc-c1] file-size=2147483648"));
    assert_eq!(cl.size_bytes, 2 * GIB);
    assert!(
        read_at(&img(env, "pvc-c1"), 3 * MIB, p.len()) == pattern(9),
        "pvc-c1 does not hold the expected bytes"
    );
}

/// With its source deleted the snapshot stays listed by source and restorable.
async fn snapshot_outlives_its_source(
    env: &common::Env,
    c: &mut AgentClient<BusChannel>,
    s: &Snapshot,
    p: &[u8],
) {
    // The source goes; its snapshot stays usable and listed by source.
    assert!(
        c.delete_volume(delete_req("pvc-src"))
            .await
            .unwrap()
            .into_inner()
            .existed
    );
    let listed = common::snapshot_pages(
        c.list_snapshots(ListSnapshotsRequest {
            snapshot_id: String::new(),
            source_volume_id: "pvc-src".into(),
        })
        .await
        .unwrap()
        .into_inner(),
    )
    .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].snapshot_id, "snap-a");
    assert_eq!(listed[0].creation_time, s.creation_time);
    let later = rds_proto::agent::CreateVolumeRequest {
        source: Some(Source::SourceSnapshotId("snap-a".into())),
        ..subvol("pvc-r2", GIB)
    };
    c.create_volume(later).await.unwrap();
    assert!(
        read_at(&img(env, "pvc-r2"), 3 * MIB, p.len()) == p,
        "pvc-r2 does not hold the expected bytes"
    );
}

/// Deleting the snapshot removes its subvolume; a second delete finds nothing.
async fn delete_snapshot_removes_its_subvolume(env: &common::Env, c: &mut AgentClient<BusChannel>) {
    let (d, cmds) = counted(
        env,
        c.delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: "snap-a".into(),
        }),
    )
    .await;
    assert!(d.unwrap().into_inner().existed);
    assert_eq!(cmds.len(), 2, "read, subvolume remove: {cmds:#?}");
    assert!(!subvolumes(env).iter().any(|s| s.contains("snap-a")));
    assert!(
        !c.delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: "snap-a".into()
        })
        .await
        .unwrap()
        .into_inner()
        .existed
    );
}

#[tokio::test]
async fn snapshot_restore_clone_round_trip_the_data() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    c.create_volume(subvol("pvc-src", GIB)).await.unwrap();
    let p = pattern(7);
    write_at(&img(&env, "pvc-src"), 3 * MIB, &p);

    let s = snapshot_subvolume(&env, &mut c).await;
    // Overwrite the source; the snapshot keeps the old bytes.
    write_at(&img(&env, "pvc-src"), 3 * MIB, &pattern(9));

    restore_keeps_the_snapshot_bytes(&env, &mut c, &p).await;
    clone_larger_is_grown_after_the_add(&env, &mut c, &p).await;
    snapshot_outlives_its_source(&env, &mut c, &s, &p).await;
    // A subvolume snapshot cannot be restored as a flat volume (and vice versa).
    let flat = rds_proto::agent::CreateVolumeRequest {
        source: Some(Source::SourceSnapshotId("snap-a".into())),
        ..create_req("pvc-flat", GIB)
    };
    let e = c.create_volume(flat).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("volumeLayout"), "{}", e.message());

    delete_snapshot_removes_its_subvolume(&env, &mut c).await;
    // The restored volumes do not depend on the snapshot.
    assert!(
        read_at(&img(&env, "pvc-r2"), 3 * MIB, p.len()) == p,
        "pvc-r2 does not hold the expected bytes"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn a_pool_that_is_not_btrfs_refuses_the_layout() {
    let env = env(Opts {
        sim: Box::new(|c| c.behaviour.pool_filesystem = PoolFilesystem::Xfs),
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    let (e, cmds) = counted(&env, c.create_volume(subvol("pvc-x", GIB))).await;
    let e = e.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message()
            .contains("layout subvolume needs a Btrfs pool; storage-pool is xfs"),
        "{}",
        e.message()
    );
    assert_eq!(cmds.len(), 1, "refused after the one read: {cmds:#?}");
    assert_eq!(env.disks_with_slot("pvc-x"), 0);
    // Flat still works there.
    c.create_volume(create_req("pvc-x", GIB)).await.unwrap();
    env.shutdown().await;
}

#[tokio::test]
async fn partial_states_are_finished_or_refused() {
    let env = env(Opts {
        sim: Box::new(|c| {
            c.base_dirs.push("storage-pool/other-class".into());
        }),
        agent_args: vec![
            "--base-paths".into(),
            "/storage-pool/metal-csi,/storage-pool/other-class".into(),
        ],
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    // A create that stopped after the subvolume: the retry finishes it.
    env.sim
        .console("/disk/btrfs/subvolume/add fs=storage-pool name=metal-csi/pvc-p1");
    let (v, cmds) = counted(&env, c.create_volume(subvol("pvc-p1", GIB))).await;
    v.unwrap();
    assert_eq!(cmds.len(), 3, "no second subvolume add: {cmds:#?}");
    assert_eq!(env.disks_with_slot("pvc-p1"), 1);

    // A volume.img without a disk: an orphan, refused and left alone.
    c.create_volume(subvol("pvc-o1", GIB)).await.unwrap();
    env.sim.console("/disk remove [find slot=pvc-o1]");
    let e = c.create_volume(subvol("pvc-o1", GIB)).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    assert!(e.message().contains("volume.img"), "{}", e.message());
    assert!(env.sim.file_exists(&format!("{BASE}/pvc-o1/volume.img")));
    assert_eq!(env.disks_with_slot("pvc-o1"), 0);
    // ... which DeleteVolume (disk gone, subvolume left) does remove.
    assert!(
        c.delete_volume(delete_req("pvc-o1"))
            .await
            .unwrap()
            .into_inner()
            .existed
    );
    assert!(!env.sim.file_exists(&format!("{BASE}/pvc-o1")));

    // Same under another configured base path.
    let other = rds_proto::agent::CreateVolumeRequest {
        base_path: "/storage-pool/other-class".into(),
        ..subvol("pvc-o2", GIB)
    };
    c.create_volume(other).await.unwrap();
    env.sim.console("/disk remove [find slot=pvc-o2]");
    let (d, cmds) = counted(&env, c.delete_volume(delete_req("pvc-o2"))).await;
    assert!(d.unwrap().into_inner().existed);
    assert_eq!(cmds.len(), 2, "read, subvolume remove: {cmds:#?}");
    assert!(!env.sim.file_exists("/storage-pool/other-class/pvc-o2"));
    env.shutdown().await;
}

#[tokio::test]
async fn a_slot_the_rds_finds_too_long_is_an_invalid_argument() {
    let env = env(Opts {
        sim: Box::new(|c| c.behaviour.slot_limit = SlotLimit::Max32),
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    let long = "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8";
    for req in [subvol(long, GIB), create_req(long, GIB)] {
        let e = c.create_volume(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(
            e.message()
                .contains("the RDS refuses slots longer than 32 characters; volume id"),
            "{}",
            e.message()
        );
        assert!(e.message().contains(" is 40 "), "{}", e.message());
    }
    assert_eq!(env.disks_with_slot(long), 0);
    assert!(
        subvolumes(&env).is_empty(),
        "the empty subvolume is not left behind"
    );
    c.create_volume(subvol("pvc-short", GIB)).await.unwrap();
    env.shutdown().await;
}

#[tokio::test]
async fn a_refused_adoption_is_a_clear_error_never_an_empty_volume() {
    let env = env(Opts {
        sim: Box::new(|c| c.behaviour.existing_file = ExistingFileMode::Fail),
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    c.create_volume(subvol("pvc-s", GIB)).await.unwrap();
    c.create_snapshot(snap_req("snap-s", "pvc-s"))
        .await
        .unwrap();
    let restore = rds_proto::agent::CreateVolumeRequest {
        source: Some(Source::SourceSnapshotId("snap-s".into())),
        ..subvol("pvc-rs", GIB)
    };
    let e = c.create_volume(restore).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("existing_file"), "{}", e.message());
    assert!(e.message().contains("docs/btrfs.md"), "{}", e.message());
    assert_eq!(env.disks_with_slot("pvc-rs"), 0);
    assert!(!subvolumes(&env).iter().any(|s| s.ends_with("pvc-rs")));
    env.shutdown().await;
}

#[tokio::test]
async fn a_refused_live_snapshot_is_a_failed_precondition() {
    let env = env(Opts {
        sim: Box::new(|c| c.behaviour.live_snapshot = LiveSnapshotMode::Refuse),
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    c.create_volume(subvol("pvc-l", GIB)).await.unwrap();
    let e = c
        .create_snapshot(snap_req("snap-l", "pvc-l"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("exported"), "{}", e.message());
    assert!(!subvolumes(&env).iter().any(|s| s.contains("snap-l")));
    env.shutdown().await;
}

/// The flat layout's snapshot calls, counted the same way (docs/decisions.md
/// §13.8): copy-from is unchanged, its snapshots say layout FLAT.
#[tokio::test]
async fn flat_snapshot_calls_keep_their_counts() {
    let env = env(Opts::default()).await;
    let mut c = env.client();
    c.create_volume(create_req("pvc-fs", GIB)).await.unwrap();
    let (s, cmds) = counted(&env, c.create_snapshot(snap_req("snap-f", "pvc-fs"))).await;
    let s = s.unwrap().into_inner();
    assert_eq!(s.layout, VolumeLayout::Flat as i32);
    assert_eq!(
        cmds.len(),
        4,
        "read, copy-from, verify, file time: {cmds:#?}"
    );
    let restore = rds_proto::agent::CreateVolumeRequest {
        source: Some(Source::SourceSnapshotId("snap-f".into())),
        ..create_req("pvc-fr", GIB)
    };
    let (r, cmds) = counted(&env, c.create_volume(restore)).await;
    r.unwrap();
    assert_eq!(cmds.len(), 3, "read, copy-from, verify: {cmds:#?}");
    let clone = rds_proto::agent::CreateVolumeRequest {
        source: Some(Source::SourceVolumeId("pvc-fs".into())),
        ..create_req("pvc-fc", 2 * GIB)
    };
    let (r, cmds) = counted(&env, c.create_volume(clone)).await;
    assert_eq!(r.unwrap().into_inner().size_bytes, 2 * GIB);
    assert_eq!(cmds.len(), 3, "read, copy-from, verify: {cmds:#?}");
    // A flat volume cannot be cloned into layout subvolume.
    let e = c
        .create_volume(rds_proto::agent::CreateVolumeRequest {
            source: Some(Source::SourceVolumeId("pvc-fs".into())),
            ..subvol("pvc-fx", GIB)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let (d, cmds) = counted(
        &env,
        c.delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: "snap-f".into(),
        }),
    )
    .await;
    assert!(d.unwrap().into_inner().existed);
    assert_eq!(cmds.len(), 3, "read, disk remove, file remove: {cmds:#?}");
    env.shutdown().await;
}

/// A restore still running when its caller's time is up answers ABORTED;
/// the retry joins the same attempt (the in-flight table): one subvolume
/// snapshot, one disk add. Expand then works as for flat volumes.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_restore_is_joined_by_its_retry() {
    use rds_sim::{FaultAction, FaultRule};
    let env = env(Opts::default()).await;
    let mut c = env.client();
    c.create_volume(subvol("pvc-js", GIB)).await.unwrap();
    c.create_snapshot(snap_req("snap-j", "pvc-js"))
        .await
        .unwrap();
    env.sim.faults().add(
        FaultRule::new(FaultAction::Latency(std::time::Duration::from_millis(1200)))
            .on("^/disk add type=file file-path=\\S+/pvc-j/volume[.]img")
            .once(),
    );
    let restore = rds_proto::agent::CreateVolumeRequest {
        source: Some(Source::SourceSnapshotId("snap-j".into())),
        ..subvol("pvc-j", GIB)
    };
    let first = c
        .create_volume(common::with_timeout(
            restore.clone(),
            std::time::Duration::from_millis(400),
        ))
        .await
        .unwrap_err();
    assert_eq!(first.code(), Code::Aborted, "{first:?}");
    let v = c.create_volume(restore).await.unwrap().into_inner();
    assert_eq!(v.volume_id, "pvc-j");
    let cmds = env.commands();
    let snaps = cmds
        .iter()
        .filter(|c| {
            c.starts_with("/disk/btrfs/subvolume/add") && c.contains("name=metal-csi/pvc-j ")
        })
        .count();
    assert_eq!(snaps, 1, "{cmds:#?}");
    assert_eq!(env.adds_for("pvc-j"), 1, "{cmds:#?}");
    // Expand grows the file inside the subvolume like a flat one.
    let grown = c
        .expand_volume(rds_proto::agent::ExpandVolumeRequest {
            volume_id: "pvc-j".into(),
            size_bytes: 3 * GIB,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grown.size_bytes, 3 * GIB);
    assert_eq!(grown.layout, VolumeLayout::Subvolume as i32);
    assert_eq!(
        std::fs::metadata(img(&env, "pvc-j")).unwrap().len(),
        3 * GIB,
        "the file inside the subvolume grew"
    );
    env.shutdown().await;
}

/// Should a box without Btrfs refuse the subvolume prints that ride along in
/// the batched reads, flat calls still work: the read runs again without
/// them.
#[tokio::test]
async fn flat_calls_survive_a_refused_subvolume_print() {
    use rds_sim::{FaultAction, FaultRule};
    let env = env(Opts {
        sim: Box::new(|c| c.behaviour.pool_filesystem = PoolFilesystem::Xfs),
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    c.create_volume(create_req("pvc-x1", GIB)).await.unwrap();
    c.create_snapshot(snap_req("snap-x1", "pvc-x1"))
        .await
        .unwrap();
    env.sim.faults().add(
        FaultRule::new(FaultAction::ErrorText(
            "failure: no btrfs filesystem storage-pool".into(),
        ))
        .on("/disk/btrfs/subvolume/print"),
    );
    let listed = common::snapshot_pages(
        c.list_snapshots(ListSnapshotsRequest::default())
            .await
            .unwrap()
            .into_inner(),
    )
    .await;
    assert_eq!(listed.len(), 1);
    assert!(
        c.delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: "snap-x1".into()
        })
        .await
        .unwrap()
        .into_inner()
        .existed
    );
    assert!(
        c.delete_volume(delete_req("pvc-x1"))
            .await
            .unwrap()
            .into_inner()
            .existed
    );
    assert_eq!(env.disks_with_slot("pvc-x1"), 0);
    env.shutdown().await;
}
