//! Data round trips through the node path (issue #19): a known pattern is
//! written into a staged volume (ext4 mount or raw block, loop devices over
//! the sim's backing files), snapshotted, overwritten, restored into a new
//! volume and read back byte for byte; a clone is taken while its source is
//! mounted and being written; a snapshot outlives its deleted source.
//!
//! Every case runs in both layouts: `subvolume` (StorageClass parameter
//! `volumeLayout=subvolume`) with the sim's state on a loop-mounted Btrfs, so
//! its subvolume snapshots are real reflinks; `flat` (no parameter, the Go
//! driver's layout and copy-from snapshots) on the plain scratch dir.
//!
//! Root and, for `subvolume`, mkfs.btrfs are needed: without them each test
//! prints why and passes (`./test` installs btrfs-progs as root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use integration_tests::backing_fs::{self, BackingFs};
use integration_tests::pattern;
use integration_tests::roundtrip::{Access, Layout, Rig, Source, sync_all};

const MIB: u64 = 1 << 20;
/// Volume size: room for the pattern and ext4's own metadata.
const SIZE: u64 = 256 * MIB;
/// The pattern written and read back.
const LEN: u64 = 64 * MIB;
/// Sparse size of the Btrfs image under the sim (only written data uses space).
const POOL_FS: u64 = 4 << 30;
const SEED: u64 = 0x5eed_0019;
const OVERWRITE: u64 = 0x0bad_da7a;

/// The rig for `layout`, or None (with the reason printed) when this machine
/// cannot run it.
async fn rig(layout: Layout) -> Option<Rig> {
    let backing = match layout {
        Layout::Subvolume => Some(BackingFs::Btrfs),
        Layout::Flat => None,
    };
    let why = match backing {
        Some(fs) => backing_fs::skip_reason(fs),
        None => (!is_root()).then(|| "needs root (loop devices, mounts)".to_owned()),
    };
    if let Some(why) = why {
        println!("skipped: {why}");
        return None;
    }
    let rig = Rig::start(layout, backing, POOL_FS).await.unwrap();
    if let Some(fs) = backing {
        assert_eq!(
            backing_fs::fs_type_at(&rig.files_root()).as_deref(),
            Some(fs.name()),
            "the sim's files dir sits on {}",
            fs.name()
        );
    }
    Some(rig)
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The file holding the pattern on a mounted volume, or the device itself.
fn data_path(target: &Path, access: Access) -> std::path::PathBuf {
    match access {
        Access::Ext4 => target.join("pattern.bin"),
        Access::Block => target.to_path_buf(),
    }
}

/// Pattern → CreateSnapshot → overwrite → restore into a new volume → the
/// pattern reads back byte for byte (and the source keeps the overwrite).
async fn snapshot_overwrite_restore(layout: Layout, access: Access) {
    let Some(mut r) = rig(layout).await else {
        return;
    };
    let src = r
        .create("rt-src", SIZE, access, Source::Empty)
        .await
        .unwrap();
    let t = r.attach(&src, access).await.unwrap();
    let data = data_path(&t, access);
    pattern::write(&data, SEED, 0, LEN).unwrap();
    sync_all();

    let snap = r.snapshot("rt-snap", &src.volume_id).await.unwrap();
    assert_eq!(snap.source_volume_id, src.volume_id);

    pattern::write(&data, OVERWRITE, 0, LEN).unwrap();
    sync_all();
    pattern::verify(&data, OVERWRITE, 0, LEN).unwrap();

    let restored = r
        .create(
            "rt-restored",
            SIZE,
            access,
            Source::Snapshot(&snap.snapshot_id),
        )
        .await
        .unwrap();
    assert_eq!(
        restored.volume_context.get("contentSource"),
        Some(&format!("snapshot:{}", snap.snapshot_id))
    );
    let rt = r.attach(&restored, access).await.unwrap();
    pattern::verify(&data_path(&rt, access), SEED, 0, LEN).unwrap();
    // The source still has what was written after the snapshot.
    pattern::verify(&data, OVERWRITE, 0, LEN).unwrap();

    r.detach(&restored.volume_id).await.unwrap();
    r.detach(&src.volume_id).await.unwrap();
    r.delete_volume(&restored.volume_id).await.unwrap();
    r.delete_snapshot(&snap.snapshot_id).await.unwrap();
    r.delete_volume(&src.volume_id).await.unwrap();
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn subvolume_fs_pattern_snapshot_overwrite_restore() {
    snapshot_overwrite_restore(Layout::Subvolume, Access::Ext4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn subvolume_block_pattern_snapshot_overwrite_restore() {
    snapshot_overwrite_restore(Layout::Subvolume, Access::Block).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flat_fs_pattern_snapshot_overwrite_restore() {
    snapshot_overwrite_restore(Layout::Flat, Access::Ext4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flat_block_pattern_snapshot_overwrite_restore() {
    snapshot_overwrite_restore(Layout::Flat, Access::Block).await;
}

/// Small files written one after another, each fsynced (file and directory)
/// before it is counted: a crash-consistent copy taken later holds every
/// counted file whole.
struct Writer {
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

const SMALL: u64 = 256 * 1024;

fn small_file(dir: &Path, i: u64) -> std::path::PathBuf {
    dir.join(format!("w-{i:05}"))
}

impl Writer {
    fn start(dir: &Path) -> Writer {
        let (done, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (d, s, dir) = (done.clone(), stop.clone(), dir.to_path_buf());
        let thread = std::thread::spawn(move || {
            let mut i = 0;
            while !s.load(Ordering::SeqCst) {
                pattern::write(&small_file(&dir, i), 1000 + i, 0, SMALL)?;
                std::fs::File::open(&dir)?.sync_all()?;
                i += 1;
                d.store(i, Ordering::SeqCst);
            }
            Ok(())
        });
        Writer { done, stop, thread }
    }

    /// Waits (bounded) until at least `n` files are complete (without
    /// blocking the runtime the services run on).
    async fn wait_for(&self, n: u64) {
        let until = Instant::now() + Duration::from_secs(60);
        while self.done.load(Ordering::SeqCst) < n {
            assert!(!self.thread.is_finished(), "the writer stopped early");
            assert!(Instant::now() < until, "the writer did not reach {n} files");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap().unwrap();
        self.done.load(Ordering::SeqCst)
    }
}

/// e2fsck -f -n on `image`: exit 0 = clean (nothing to fix).
fn fsck_clean(image: &Path) {
    let out = Command::new("e2fsck")
        .args(["-f", "-n"])
        .arg(image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "e2fsck -f -n {}: {}\n{}{}",
        image.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A clone taken while its source is mounted and being written is a
/// consistent filesystem: it mounts, holds every file completed before the
/// clone was asked for, and fsck finds nothing to fix.
async fn clone_while_mounted_and_written(layout: Layout) {
    let Some(mut r) = rig(layout).await else {
        return;
    };
    let src = r
        .create("cl-src", SIZE, Access::Ext4, Source::Empty)
        .await
        .unwrap();
    let t = r.attach(&src, Access::Ext4).await.unwrap();
    pattern::write(&t.join("pattern.bin"), SEED, 0, LEN).unwrap();
    let w = Writer::start(&t);
    w.wait_for(3).await;
    let before = w.done.load(Ordering::SeqCst);
    let clone = r
        .create(
            "cl-clone",
            SIZE,
            Access::Ext4,
            Source::Volume(&src.volume_id),
        )
        .await
        .unwrap();
    // The writer kept going while the clone was made, and after.
    let during = w.done.load(Ordering::SeqCst);
    w.wait_for(during + 3).await;
    let written = w.finish();
    println!(
        "{layout:?}: {before} files complete before the clone, {during} when it returned, {written} in all"
    );

    let ct = r.attach(&clone, Access::Ext4).await.unwrap();
    pattern::verify(&ct.join("pattern.bin"), SEED, 0, LEN).unwrap();
    for i in 0..before {
        pattern::verify(&small_file(&ct, i), 1000 + i, 0, SMALL).unwrap();
    }
    // The clone is its own volume: writing it leaves the source alone.
    pattern::write(&ct.join("pattern.bin"), OVERWRITE, 0, MIB).unwrap();
    pattern::verify(&t.join("pattern.bin"), SEED, 0, LEN).unwrap();
    r.detach(&clone.volume_id).await.unwrap();
    fsck_clean(&r.backing_file(&clone).unwrap());

    r.detach(&src.volume_id).await.unwrap();
    r.delete_volume(&clone.volume_id).await.unwrap();
    r.delete_volume(&src.volume_id).await.unwrap();
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn subvolume_clone_while_mounted_and_written() {
    clone_while_mounted_and_written(Layout::Subvolume).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flat_clone_while_mounted_and_written() {
    clone_while_mounted_and_written(Layout::Flat).await;
}

/// The source is deleted after its snapshot; a restore made later still has
/// the data, and the snapshot still names its source.
async fn restore_after_source_deleted(layout: Layout) {
    let Some(mut r) = rig(layout).await else {
        return;
    };
    let src = r
        .create("del-src", SIZE, Access::Ext4, Source::Empty)
        .await
        .unwrap();
    let src_file = r.backing_file(&src).unwrap();
    let t = r.attach(&src, Access::Ext4).await.unwrap();
    pattern::write(&t.join("pattern.bin"), SEED, 0, LEN).unwrap();
    sync_all();
    let snap = r.snapshot("del-snap", &src.volume_id).await.unwrap();
    r.detach(&src.volume_id).await.unwrap();
    r.delete_volume(&src.volume_id).await.unwrap();
    assert!(!src_file.exists(), "{} deleted", src_file.display());
    if layout == Layout::Subvolume {
        // The whole subvolume of the source went with it.
        let dir = src_file.parent().unwrap();
        assert!(!dir.exists(), "{} removed", dir.display());
    }

    // Later: other volumes come and go, then the restore.
    let other = r
        .create("del-other", SIZE, Access::Ext4, Source::Empty)
        .await
        .unwrap();
    r.delete_volume(&other.volume_id).await.unwrap();
    let listed = r
        .ctl
        .list_snapshots(rds_proto::csi::v1::ListSnapshotsRequest {
            snapshot_id: snap.snapshot_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(listed.len(), 1, "the snapshot is still listed");
    assert_eq!(
        listed[0].snapshot.as_ref().unwrap().source_volume_id,
        src.volume_id
    );
    let restored = r
        .create(
            "del-restored",
            SIZE,
            Access::Ext4,
            Source::Snapshot(&snap.snapshot_id),
        )
        .await
        .unwrap();
    let rt = r.attach(&restored, Access::Ext4).await.unwrap();
    pattern::verify(&rt.join("pattern.bin"), SEED, 0, LEN).unwrap();

    r.detach(&restored.volume_id).await.unwrap();
    r.delete_volume(&restored.volume_id).await.unwrap();
    r.delete_snapshot(&snap.snapshot_id).await.unwrap();
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn subvolume_restore_after_source_deleted() {
    restore_after_source_deleted(Layout::Subvolume).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flat_restore_after_source_deleted() {
    restore_after_source_deleted(Layout::Flat).await;
}

/// On the Btrfs-backed sim a subvolume snapshot shares its data with the
/// source (FIEMAP's "shared" flag on every data extent of the snapshot's
/// file, read with filefrag): copy-on-write, not a copy.
#[tokio::test(flavor = "multi_thread")]
async fn subvolume_snapshot_on_btrfs_shares_the_source_extents() {
    let Some(mut r) = rig(Layout::Subvolume).await else {
        return;
    };
    let src = r
        .create("cow-src", SIZE, Access::Block, Source::Empty)
        .await
        .unwrap();
    let src_file = r.backing_file(&src).unwrap();
    pattern::write(&src_file, SEED, 0, LEN).unwrap();
    sync_all();
    let snap = r.snapshot("cow-snap", &src.volume_id).await.unwrap();
    // contract: <base>/<snap>.from-<src>/volume.img
    let snap_file = src_file
        .parent()
        .unwrap()
        .with_file_name(format!("{}.from-{}", snap.snapshot_id, src.volume_id))
        .join("volume.img");
    pattern::verify(&snap_file, SEED, 0, LEN).unwrap();
    let (shared, total) = extents(&snap_file);
    println!(
        "{}: {shared} of {total} data extents shared",
        snap_file.display()
    );
    assert!(total > 0 && shared == total, "{shared}/{total} shared");
    r.delete_snapshot(&snap.snapshot_id).await.unwrap();
    r.delete_volume(&src.volume_id).await.unwrap();
    r.stop().await;
}

/// (shared, all) data extents of `file` from `filefrag -v`.
fn extents(file: &Path) -> (usize, usize) {
    let out = Command::new("filefrag")
        .arg("-v")
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "filefrag: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains(':'))
        .collect();
    let shared = rows.iter().filter(|l| l.contains("shared")).count();
    (shared, rows.len())
}
