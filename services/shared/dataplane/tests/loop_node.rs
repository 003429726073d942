//! The node role on REAL loop devices, REAL mkfs and REAL mounts (root).
//! Each test owns a scratch dir; its guard unmounts and detaches everything
//! under it even on panic, and touches nothing else (tests run in parallel).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rds_bus::{Reason, VolumeId};
use rds_dataplane::testing::loops_backed_under;
use rds_dataplane::{AccessType, DataPlane, DataPlaneError, FsType, NodePath, Reply, StatsRequest};

use support::*;

/// Publish twice → one bind mount; data goes through.
async fn publish_twice_then_write(h: &Harness, v: &Vol, fs: FsType) {
    assert!(
        !h.publish_to(v, &v.target, mount(fs), false)
            .await
            .unwrap()
            .already_published
    );
    assert!(
        h.publish_to(v, &v.target, mount(fs), false)
            .await
            .unwrap()
            .already_published
    );
    assert_eq!(
        mounts_at(v.target.as_path()),
        1,
        "publish twice = one mount"
    );
    std::fs::write(
        v.target.as_path().join("hello.txt"),
        b"written through the bind",
    )
    .unwrap();
    assert_eq!(
        std::fs::read(v.staging.as_path().join("hello.txt")).unwrap(),
        b"written through the bind"
    );
}

/// A readonly publish is really read-only; the same target with the other
/// flag is ALREADY_EXISTS. Returns the readonly target.
async fn readonly_publish_is_read_only(h: &Harness, v: &Vol, fs: FsType) -> NodePath {
    let ro = h.path(&format!("kubelet/pods/p2/volumes/{}/mount", v.id));
    h.publish_to(v, &ro, mount(fs), true).await.unwrap();
    h.publish_to(v, &ro, mount(fs), true).await.unwrap();
    assert_eq!(mounts_at(ro.as_path()), 1);
    assert_eq!(
        std::fs::read(ro.as_path().join("hello.txt")).unwrap(),
        b"written through the bind"
    );
    let err = std::fs::write(ro.as_path().join("nope.txt"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::libc::EROFS), "{err}");
    // Same target, other readonly flag: incompatible → ALREADY_EXISTS.
    let e = h.publish_to(v, &ro, mount(fs), false).await.unwrap_err();
    assert_eq!(e.to_status().code(), tonic::Code::AlreadyExists, "{e}");
    ro
}

/// Unpublish twice (unmounted, empty target removed, no error), then unstage
/// twice (unmounted, detached, state removed).
async fn unpublish_and_unstage_twice(h: &Harness, v: &Vol, ro: &NodePath) {
    for t in [&v.target, ro] {
        let u = h.unpublish(v, t).await;
        assert!(u.was_mounted && u.removed_target);
        let u = h.unpublish(v, t).await;
        assert!(!u.was_mounted && !u.removed_target);
        assert_eq!(mounts_at(t.as_path()), 0);
        assert!(!t.as_path().exists());
    }

    // Unstage twice: unmounted and detached.
    let u = h.unstage(v).await;
    assert!(u.was_mounted && u.detached);
    let u = h.unstage(v).await;
    assert!(!u.was_mounted && !u.detached);
    assert_eq!(mounts_at(v.staging.as_path()), 0);
    assert!(
        loops_of_after_detach(&v.file).is_empty(),
        "loop device detached"
    );
    assert!(
        !h.scratch
            .path()
            .join(format!("node/volumes/{}.json", v.id))
            .exists(),
        "state removed"
    );
}

async fn filesystem_lifecycle(fs: FsType, size: u64) {
    let h = harness();
    let v = h.volume(&format!("pvc-life-{}", fs.as_str()), size);
    let staging = v.staging.as_path();

    let first = h.stage(&v, mount(fs)).await.unwrap();
    assert!(first.formatted && !first.already_staged);
    let again = h.stage(&v, mount(fs)).await.unwrap();
    assert!(again.already_staged && !again.formatted);
    assert_eq!(mounts_at(staging), 1, "stage twice = one mount");
    assert_eq!(loops_of(&v.file).len(), 1, "attach twice = one loop device");
    let uuid = fs_uuid(&first.device.path);
    assert!(!uuid.is_empty());

    publish_twice_then_write(&h, &v, fs).await;
    let ro = readonly_publish_is_read_only(&h, &v, fs).await;
    unpublish_and_unstage_twice(&h, &v, &ro).await;

    // The data is still there when staged again, and it was not reformatted.
    let back = h.stage(&v, mount(fs)).await.unwrap();
    assert!(!back.formatted);
    assert_eq!(fs_uuid(&back.device.path), uuid);
    assert_eq!(
        std::fs::read(staging.join("hello.txt")).unwrap(),
        b"written through the bind"
    );
    h.unstage(&v).await;

    let calls = h.runner.calls_to(&format!("mkfs.{}", fs.as_str()));
    assert_eq!(calls.len(), 1, "formatted exactly once: {calls:?}");
    assert!(
        h.events.events().is_empty(),
        "no failure events: {:?}",
        h.events.events()
    );
}

#[tokio::test]
async fn ext4_stage_publish_unpublish_unstage_idempotent() {
    filesystem_lifecycle(FsType::Ext4, 64 * MIB).await;
}

#[tokio::test]
async fn xfs_stage_publish_unpublish_unstage_idempotent() {
    // mkfs.xfs needs at least 300 MB.
    filesystem_lifecycle(FsType::Xfs, 320 * MIB).await;
}

#[tokio::test]
async fn block_publish_is_a_device_node_never_a_mount() {
    let h = harness();
    let v = h.volume("pvc-block", 16 * MIB);
    let before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();

    let s = h.stage(&v, AccessType::Block).await.unwrap();
    assert!(!s.already_staged);
    assert!(h.stage(&v, AccessType::Block).await.unwrap().already_staged);
    assert!(
        !v.staging.as_path().exists(),
        "block stage creates nothing at the staging path"
    );
    assert_eq!(loops_of(&v.file).len(), 1);

    let target = h.path("kubelet/plugins/volumeDevices/publish/pvc-block/pod1");
    assert!(
        !h.publish_to(&v, &target, AccessType::Block, false)
            .await
            .unwrap()
            .already_published
    );
    assert!(
        h.publish_to(&v, &target, AccessType::Block, false)
            .await
            .unwrap()
            .already_published
    );
    let md = std::fs::symlink_metadata(target.as_path()).unwrap();
    assert!(md.file_type().is_block_device());
    assert_eq!(
        md.rdev(),
        std::fs::metadata(&s.device.path).unwrap().rdev(),
        "same major:minor"
    );
    assert_eq!(md.permissions().mode() & 0o777, 0o660);
    assert_eq!(mounts_at(target.as_path()), 0, "never a mount");
    let after = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    assert_eq!(before, after, "block stage+publish added no mount at all");

    // Raw data through the node lands in the backing file.
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(target.as_path())
            .unwrap();
        f.write_all(b"raw block bytes").unwrap();
        f.sync_all().unwrap();
    }
    let on_disk = std::fs::read(&v.file).unwrap();
    assert_eq!(&on_disk[..15], b"raw block bytes");

    // Readonly node has mode 0440.
    let ro = h.path("kubelet/plugins/volumeDevices/publish/pvc-block/pod2");
    h.publish_to(&v, &ro, AccessType::Block, true)
        .await
        .unwrap();
    assert_eq!(
        std::fs::metadata(ro.as_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o440
    );

    // Block stats: the device size; healthy.
    let st = h.stats(&v, &target).await;
    assert_eq!(st.block_size_bytes, Some(16 * MIB));
    assert!(!st.condition.abnormal, "{:?}", st.condition);

    for t in [&target, &ro] {
        assert!(h.unpublish(&v, t).await.removed_target);
        assert!(!t.as_path().exists());
        assert!(!h.unpublish(&v, t).await.removed_target);
    }
    assert!(h.unstage(&v).await.detached);
    assert!(!h.unstage(&v).await.detached);
    assert!(loops_of_after_detach(&v.file).is_empty());
    // Never formatted: raw bytes intact.
    assert_eq!(&std::fs::read(&v.file).unwrap()[..15], b"raw block bytes");
    assert!(h.runner.calls_to("mkfs.ext4").is_empty() && h.runner.calls_to("blkid").is_empty());
}

#[tokio::test]
async fn data_survives_restage_under_a_new_device_name() {
    let h = harness();
    let v = h.volume("pvc-renumber", 64 * MIB);
    let first = h.stage(&v, mount(FsType::Ext4)).await.unwrap();
    let uuid = fs_uuid(&first.device.path);
    h.publish_to(&v, &v.target, mount(FsType::Ext4), false)
        .await
        .unwrap();
    std::fs::write(v.target.as_path().join("keep.txt"), b"precious").unwrap();
    h.unpublish(&v, &v.target).await;
    assert!(h.unstage(&v).await.detached);

    // "Reconnect" under another name: hold the old loop number with a
    // scratch file so the volume must come back as a different device.
    let holder = h.scratch.path().join("holder.img");
    std::fs::File::create(&holder)
        .unwrap()
        .set_len(MIB)
        .unwrap();
    let mut held = false;
    for _ in 0..50 {
        let st = Command::new("losetup")
            .arg(&first.device.path)
            .arg(&holder)
            .status()
            .unwrap();
        if st.success() {
            held = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(held, "could not hold {}", first.device.path.display());

    let second = h.stage(&v, mount(FsType::Ext4)).await.unwrap();
    assert_ne!(second.device.path, first.device.path, "new device name");
    assert!(!second.formatted, "never recreated");
    assert_eq!(fs_uuid(&second.device.path), uuid, "same filesystem");
    assert_eq!(
        std::fs::read(v.staging.as_path().join("keep.txt")).unwrap(),
        b"precious"
    );
    assert_eq!(h.runner.calls_to("mkfs.ext4").len(), 1);
    h.unstage(&v).await;
}

#[tokio::test]
async fn blkid_exit_1_never_formats_and_the_breaker_stops_the_storm() {
    let h = harness();
    let v = h.volume("pvc-unreadable", 32 * MIB);
    // The device is genuinely empty, but blkid "cannot read" it.
    h.runner.on(
        "blkid",
        &[],
        vec![Reply::exit(1, "blkid: cannot read /dev/loopX")],
    );
    for attempt in 1..=3 {
        let e = h.stage(&v, mount(FsType::Ext4)).await.unwrap_err();
        assert!(
            matches!(e, DataPlaneError::FsUndetermined { attempts: 5, .. }),
            "attempt {attempt}: {e}"
        );
        assert!(e.to_string().contains("refusing to format"), "{e}");
        assert_eq!(e.to_status().code(), tonic::Code::Internal);
    }
    assert_eq!(
        h.runner.calls_to("blkid").len(),
        15,
        "5 bounded probes per stage"
    );
    // Open breaker: fast UNAVAILABLE, no more probing.
    let started = Instant::now();
    let e = h.stage(&v, mount(FsType::Ext4)).await.unwrap_err();
    assert_eq!(e.reason(), Reason::CircuitOpen, "{e}");
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(h.runner.calls_to("blkid").len(), 15);

    assert!(
        h.runner.calls().iter().all(|c| !c[0].starts_with("mkfs")),
        "never formatted"
    );
    assert_eq!(
        std::fs::read(&v.file)
            .unwrap()
            .iter()
            .filter(|b| **b != 0)
            .count(),
        0,
        "not a byte written"
    );
    assert_eq!(mounts_at(v.staging.as_path()), 0);
    assert!(
        loops_of_after_detach(&v.file).is_empty(),
        "a failed stage leaves no loop device behind"
    );
    assert_eq!(h.events.reasons(), vec!["MountFailure"; 3]);
}

#[tokio::test]
async fn blkid_saying_nothing_about_an_unreadable_device_is_not_trusted() {
    // Real blkid exits 2 for a device it cannot open; the plane must prove
    // readability before treating exit 2 as "empty".
    let h = harness();
    let v = h.volume("pvc-zero", 32 * MIB);
    // A zero-size file: the loop device reads nothing at all.
    std::fs::File::create(&v.file).unwrap().set_len(0).unwrap();
    let e = h.stage(&v, mount(FsType::Ext4)).await.unwrap_err();
    assert!(matches!(e, DataPlaneError::FsUndetermined { .. }), "{e}");
    assert!(e.to_string().contains("size 0"), "{e}");
    assert!(h.runner.calls().iter().all(|c| !c[0].starts_with("mkfs")));
}

#[tokio::test]
async fn a_foreign_filesystem_is_mounted_not_formatted() {
    let h = harness();
    let v = h.volume("pvc-foreign", 64 * MIB);
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&v.file)
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new("blkid")
        .args(["-p", "-s", "UUID", "-o", "value"])
        .arg(&v.file)
        .output()
        .unwrap();
    let uuid = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    // xfs requested, ext4 found: mount it as it is.
    let s = h.stage(&v, mount(FsType::Xfs)).await.unwrap();
    assert!(!s.formatted);
    assert_eq!(fs_uuid(&s.device.path), uuid);
    let line = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(&v.staging.to_string()))
        .unwrap()
        .to_owned();
    assert!(line.contains(" - ext4 "), "{line}");
    assert!(h.runner.calls().iter().all(|c| !c[0].starts_with("mkfs")));
    h.unstage(&v).await;
}

#[tokio::test]
async fn unpublish_never_deletes_files_of_an_unmounted_target() {
    let h = harness();
    let v = h.volume("pvc-keepfiles", 16 * MIB);
    let t = h.path("kubelet/pods/p9/volumes/pvc-keepfiles/mount");
    std::fs::create_dir_all(t.as_path().join("sub")).unwrap();
    std::fs::write(t.as_path().join("data.txt"), b"do not delete").unwrap();
    std::fs::write(t.as_path().join("sub/more.txt"), b"nor this").unwrap();
    let u = h.unpublish(&v, &t).await;
    assert!(!u.was_mounted && !u.removed_target);
    assert_eq!(
        std::fs::read(t.as_path().join("data.txt")).unwrap(),
        b"do not delete"
    );
    assert_eq!(
        std::fs::read(t.as_path().join("sub/more.txt")).unwrap(),
        b"nor this"
    );

    // A non-empty regular file target (not a device node) is left too.
    let f = h.path("kubelet/pods/p9/volumeDevices/file");
    std::fs::create_dir_all(f.as_path().parent().unwrap()).unwrap();
    std::fs::write(f.as_path(), b"bytes").unwrap();
    assert!(!h.unpublish(&v, &f).await.removed_target);
    assert!(f.as_path().exists());
}

#[tokio::test]
async fn expansion_grows_the_filesystem_and_stats_match_df() {
    let h = harness();
    for (fs, size, grown) in [
        (FsType::Ext4, 64 * MIB, 160 * MIB),
        (FsType::Xfs, 320 * MIB, 512 * MIB),
    ] {
        let v = h.volume(&format!("pvc-grow-{}", fs.as_str()), size);
        h.stage(&v, mount(fs)).await.unwrap();
        h.publish_to(&v, &v.target, mount(fs), false).await.unwrap();
        std::fs::write(v.target.as_path().join("f"), vec![7u8; 3 * MIB as usize]).unwrap();

        let st = h.stats(&v, &v.target).await;
        assert!(!st.condition.abnormal, "{:?}", st.condition);
        let u = st.usage.unwrap();
        let d = df(v.target.as_path());
        assert_eq!(
            vec![
                u.total_bytes,
                u.used_bytes,
                u.available_bytes,
                u.total_inodes,
                u.used_inodes,
                u.free_inodes
            ],
            d,
            "{fs} stats = df"
        );
        let before = d[0];

        // The controller grew the file; the node rescans and grows the fs.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&v.file)
            .unwrap()
            .set_len(grown)
            .unwrap();
        let r = h
            .plane
            .expand(rds_dataplane::ExpandRequest {
                volume_id: v.id.clone(),
                volume_path: v.target.clone(),
            })
            .await;
        if fs == FsType::Ext4 && !has_cap_sys_resource() {
            // Online ext4 resize needs CAP_SYS_RESOURCE (the node DaemonSet
            // is privileged; this sandbox is not): the failure must be a
            // clear error, and nothing else may have changed.
            let e = r.unwrap_err();
            assert!(
                e.to_string().contains("resize2fs") && e.to_string().contains("CAP_SYS_RESOURCE"),
                "{e}"
            );
            assert_eq!(e.reason(), Reason::NodePrecondition, "{e}");
            println!("SKIPPED ext4 online grow: no CAP_SYS_RESOURCE here ({e})");
            assert_eq!(df(v.target.as_path())[0], before);
            h.unpublish(&v, &v.target).await;
            h.unstage(&v).await;
            continue;
        }
        let out = r.unwrap();
        assert_eq!(out.capacity_bytes, grown);
        let after = df(v.target.as_path())[0];
        assert!(
            after > before + (grown - size) / 2,
            "{fs}: {before} -> {after}"
        );
        let st = h.stats(&v, &v.target).await;
        assert_eq!(st.usage.unwrap().total_bytes, after);
        assert_eq!(
            std::fs::read(v.target.as_path().join("f")).unwrap().len(),
            3 * MIB as usize
        );
        h.unpublish(&v, &v.target).await;
        h.unstage(&v).await;
    }
    let rescans = h
        .runner
        .calls_to("losetup")
        .into_iter()
        .filter(|c| c[0] == "--set-capacity")
        .count();
    assert_eq!(rescans, 2);
    assert_eq!(h.runner.calls_to("resize2fs").len(), 1);
    assert_eq!(h.runner.calls_to("xfs_growfs").len(), 1);
}

/// Online ext4 resize (EXT4_IOC_RESIZE_FS) needs CAP_SYS_RESOURCE (bit 24).
fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    u64::from_str_radix(eff, 16).unwrap() & (1 << 24) != 0
}

#[tokio::test]
async fn condition_turns_abnormal_when_the_backing_device_disappears() {
    let h = harness();
    // Block volume: the loop device is detached behind the plane's back.
    let b = h.volume("pvc-cond-block", 16 * MIB);
    let s = h.stage(&b, AccessType::Block).await.unwrap();
    let bt = h.path("kubelet/plugins/volumeDevices/publish/pvc-cond-block/pod");
    h.publish_to(&b, &bt, AccessType::Block, false)
        .await
        .unwrap();
    assert!(!h.stats(&b, &bt).await.condition.abnormal);
    assert!(
        Command::new("losetup")
            .arg("-d")
            .arg(&s.device.path)
            .status()
            .unwrap()
            .success()
    );
    let st = h.stats(&b, &bt).await;
    assert!(st.condition.abnormal, "{:?}", st.condition);

    // Filesystem volume: its backing file vanishes (volume deleted under us).
    let f = h.volume("pvc-cond-fs", 64 * MIB);
    h.stage(&f, mount(FsType::Ext4)).await.unwrap();
    h.publish_to(&f, &f.target, mount(FsType::Ext4), false)
        .await
        .unwrap();
    let st = h.stats(&f, &f.target).await;
    assert!(!st.condition.abnormal && st.condition.message == "Volume is healthy");
    let moved = f.file.with_extension("moved");
    std::fs::rename(&f.file, &moved).unwrap();
    let st = h.stats(&f, &f.target).await;
    assert!(st.condition.abnormal, "{:?}", st.condition);
    assert!(
        st.condition
            .message
            .starts_with("Stale mount detected: device_disappeared"),
        "{}",
        st.condition.message
    );
    assert!(st.usage.is_none());
    std::fs::rename(&moved, &f.file).unwrap();
    assert!(
        !h.stats(&f, &f.target).await.condition.abnormal,
        "healthy again"
    );

    // Stats of something that is not there / not a mount → NOT_FOUND.
    let e = h
        .plane
        .stats(StatsRequest {
            volume_id: f.id.clone(),
            volume_path: h.path("nowhere"),
        })
        .await
        .unwrap_err();
    assert_eq!(e.to_status().code(), tonic::Code::NotFound);
    let m = h.metrics.stale_mounts_detected.get();
    assert_eq!(m, 2, "two abnormal reports counted");
    h.unpublish(&f, &f.target).await;
    h.unstage(&f).await;
}

#[tokio::test]
async fn mount_storm_guard_refuses_the_next_mount() {
    let h = harness_with(|c| c.mount_storm_limit = 3);
    let v = h.volume("pvc-storm", 64 * MIB);
    h.stage(&v, mount(FsType::Ext4)).await.unwrap(); // 1
    h.publish_to(&v, &h.path("t/1"), mount(FsType::Ext4), false)
        .await
        .unwrap(); // 2
    h.publish_to(&v, &h.path("t/2"), mount(FsType::Ext4), false)
        .await
        .unwrap(); // 3
    let e = h
        .publish_to(&v, &h.path("t/3"), mount(FsType::Ext4), false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            DataPlaneError::MountStorm {
                count: 3,
                limit: 3,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.to_status().code(), tonic::Code::FailedPrecondition);
    assert_eq!(mounts_at(h.path("t/3").as_path()), 0);
}

#[tokio::test]
async fn orphan_sweep_detaches_only_unstaged_loops_under_the_files_root() {
    let h = harness();
    let staged = h.volume("pvc-staged", 16 * MIB);
    h.stage(&staged, AccessType::Block).await.unwrap();
    let orphan = h.volume("pvc-orphan", 16 * MIB);
    let st = Command::new("losetup")
        .args(["-f"])
        .arg(&orphan.file)
        .status()
        .unwrap();
    assert!(st.success());
    // A loop device over a file outside the files root is not ours.
    let foreign = h.scratch.path().join("elsewhere/foreign.img");
    std::fs::create_dir_all(foreign.parent().unwrap()).unwrap();
    std::fs::File::create(&foreign)
        .unwrap()
        .set_len(MIB)
        .unwrap();
    assert!(
        Command::new("losetup")
            .args(["-f"])
            .arg(&foreign)
            .status()
            .unwrap()
            .success()
    );

    let report = h.plane.start().await;
    assert_eq!(report.cleaned.len(), 1, "{report:?}");
    assert!(report.cleaned[0].contains("pvc-orphan.img"), "{report:?}");
    assert!(loops_of(&orphan.file).is_empty());
    assert_eq!(loops_of(&staged.file).len(), 1, "staged volume kept");
    assert_eq!(loops_of(&foreign).len(), 1, "foreign loop device untouched");
    assert_eq!(h.metrics.orphans_cleaned.get(), 1);
    h.unstage(&staged).await;
    assert_eq!(loops_backed_under(&h.scratch.files_root()).len(), 0);
}

#[tokio::test]
async fn stage_of_a_missing_backing_file_is_not_found() {
    let h = harness();
    let v = h.volume("pvc-missing", MIB);
    std::fs::remove_file(&v.file).unwrap();
    let e = h.stage(&v, mount(FsType::Ext4)).await.unwrap_err();
    assert_eq!(e.to_status().code(), tonic::Code::NotFound, "{e}");
    assert_eq!(h.events.reasons(), vec!["ConnectionFailure"]);
    let e = h
        .publish_to(&v, &v.target, mount(FsType::Ext4), false)
        .await
        .unwrap_err();
    assert_eq!(e.to_status().code(), tonic::Code::FailedPrecondition, "{e}");
    let direct = h.plane.backend().resolve(&v.source).await.unwrap();
    assert!(direct.is_none());
}

#[tokio::test]
async fn concurrent_calls_on_one_volume_are_aborted_not_interleaved() {
    let h = harness();
    let v = h.volume("pvc-concurrent", 32 * MIB);
    // A slow probe keeps the first stage busy.
    h.runner.on(
        "blkid",
        &[],
        vec![Reply::exit(1, "not ready").after(Duration::from_millis(200))],
    );
    let (first, second) = tokio::join!(h.stage(&v, mount(FsType::Ext4)), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.stage(&v, mount(FsType::Ext4)).await
    });
    assert!(
        matches!(first, Err(DataPlaneError::FsUndetermined { .. })),
        "{first:?}"
    );
    let e = second.unwrap_err();
    assert_eq!(e.to_status().code(), tonic::Code::Aborted, "{e}");
}

#[tokio::test]
async fn shared_backing_is_detached_only_by_the_last_unstage() {
    let h = harness();
    let a = h.volume("pvc-shared-a", 16 * MIB);
    // A second (static) PV pointing at the same backing file.
    let b = Vol {
        id: VolumeId::parse("pvc-shared-b").unwrap(),
        source: a.source.clone(),
        file: a.file.clone(),
        staging: h.path("kubelet/plugins/pvc-shared-b/globalmount"),
        target: h.path("kubelet/pods/p1/volumes/pvc-shared-b/mount"),
    };
    h.stage(&a, AccessType::Block).await.unwrap();
    h.stage(&b, AccessType::Block).await.unwrap();
    assert_eq!(loops_of(&a.file).len(), 1, "one device for one file");
    assert!(!h.unstage(&a).await.detached, "b still uses the file");
    assert_eq!(loops_of(&a.file).len(), 1);
    assert!(h.unstage(&b).await.detached);
    assert!(loops_of(&a.file).is_empty());
}

/// Closing-note numbers: 1 GiB ext4 volume, plane vs the same commands by
/// hand on the same loop device. `cargo test -p rds-dataplane --test
/// loop_node -- --ignored --nocapture bench`
#[tokio::test]
#[ignore]
async fn bench_1gib_ext4_plane_vs_by_hand() {
    let rounds = 10;
    let h = harness();
    let (mut plane_up, mut plane_down, mut hand_up, mut hand_down) =
        (vec![], vec![], vec![], vec![]);
    for i in 0..rounds {
        let v = h.volume(&format!("pvc-bench-{i}"), 1024 * MIB);
        let t0 = Instant::now();
        let s = h.stage(&v, mount(FsType::Ext4)).await.unwrap();
        h.publish_to(&v, &v.target, mount(FsType::Ext4), false)
            .await
            .unwrap();
        plane_up.push(t0.elapsed());
        assert!(s.formatted);
        let t0 = Instant::now();
        h.unpublish(&v, &v.target).await;
        h.unstage(&v).await;
        plane_down.push(t0.elapsed());

        let (up, down) = by_hand(&v);
        hand_up.push(up);
        hand_down.push(down);
    }
    println!(
        "BENCH 1 GiB ext4, {rounds} rounds, loop device on {}",
        h.scratch.path().display()
    );
    println!("BENCH plane   stage+publish     {}", ms_summary(&plane_up));
    println!(
        "BENCH by hand losetup+blkid+mkfs+mount+bind {}",
        ms_summary(&hand_up)
    );
    println!(
        "BENCH plane   unpublish+unstage {}",
        ms_summary(&plane_down)
    );
    println!(
        "BENCH by hand umount×2+losetup -d {}",
        ms_summary(&hand_down)
    );
}

/// The bench's reference: the same steps by hand on the same file (attach,
/// probe, mkfs, mount, bind; then umount twice and detach). (up, down) times.
fn by_hand(v: &Vol) -> (Duration, Duration) {
    // By hand, same file, same steps: attach, probe, mkfs, mount, bind.
    assert!(
        Command::new("wipefs")
            .args(["-a", "-q"])
            .arg(&v.file)
            .status()
            .unwrap()
            .success()
    );
    let (st, tg) = (v.staging.as_path(), v.target.as_path());
    std::fs::create_dir_all(tg).unwrap();
    let run = |args: &[&str]| {
        assert!(
            Command::new(args[0])
                .args(&args[1..])
                .status()
                .unwrap()
                .success(),
            "{args:?}"
        )
    };
    let t0 = Instant::now();
    let dev = String::from_utf8(
        Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&v.file)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    assert_eq!(blkid_exit(Path::new(&dev)), Some(2));
    run(&["mkfs.ext4", "-q", &dev]);
    run(&[
        "mount",
        "-o",
        "noatime,nosuid,nodev",
        &dev,
        st.to_str().unwrap(),
    ]);
    run(&[
        "mount",
        "--bind",
        st.to_str().unwrap(),
        tg.to_str().unwrap(),
    ]);
    let up = t0.elapsed();
    let t0 = Instant::now();
    run(&["umount", tg.to_str().unwrap()]);
    run(&["umount", st.to_str().unwrap()]);
    run(&["losetup", "-d", &dev]);
    (up, t0.elapsed())
}

/// "median N ms (min, max)" of a bench's rounds.
fn ms_summary(v: &[Duration]) -> String {
    let mut s: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!(
        "median {:.0} ms (min {:.0}, max {:.0})",
        s[s.len() / 2],
        s[0],
        s[s.len() - 1]
    )
}
