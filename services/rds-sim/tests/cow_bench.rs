//! Benchmark (ignored, prints numbers; needs root, loop devices and mkfs.btrfs): a subvolume
//! snapshot of a 10 GiB volume file holding 1 GiB of written data, with the sim's state
//! directory on a loop-mounted Btrfs (the copy is a reflink: no data moves) and on the
//! machine's own file system (ext4 here: the kernel copies the data extents).
//!
//! `cargo nextest run -p rds-sim --test cow_bench --run-ignored only --no-capture`
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A loop-mounted Btrfs, unmounted when dropped.
struct BtrfsMount {
    mnt: PathBuf,
}

impl BtrfsMount {
    fn new(dir: &Path) -> Option<Self> {
        let img = dir.join("btrfs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(4 << 30)
            .unwrap();
        let mkfs = Command::new("mkfs.btrfs").arg("-q").arg(&img).status();
        if !mkfs.is_ok_and(|s| s.success()) {
            return None;
        }
        let mnt = dir.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mounted = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt)
            .status();
        mounted.is_ok_and(|s| s.success()).then_some(Self { mnt })
    }
}

impl Drop for BtrfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

/// Bytes used on the file system holding `p` (`df`, 1 KiB blocks).
fn fs_used(p: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-k", "--output=used"])
        .arg(p)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1).unwrap().trim().parse::<u64>().unwrap() * 1024
}

/// Snapshot time (ms) and file-system bytes the snapshot added, with the state under `dir`.
async fn snapshot_cost(dir: &Path) -> (f64, i64) {
    let sim = common::start(common::config(dir).local_mode()).await;
    let c = common::connect(&sim).await;
    common::ok(
        &c,
        "/disk/btrfs/subvolume/add fs=storage-pool name=metal-csi/pvc-a",
    )
    .await;
    common::ok(
        &c,
        "/disk add type=file file-path=/storage-pool/metal-csi/pvc-a/volume.img file-size=10G slot=pvc-a",
    )
    .await;
    let file = sim
        .host_path("/storage-pool/metal-csi/pvc-a/volume.img")
        .unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    let block = vec![0x5au8; 1 << 20];
    for _ in 0..1024 {
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    let before = fs_used(dir);
    let t = Instant::now();
    common::ok(
        &c,
        "/disk/btrfs/subvolume/add fs=storage-pool name=metal-csi/snap-1.from-pvc-a parent=metal-csi/pvc-a read-only=yes",
    )
    .await;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let _ = Command::new("sync").status();
    let added = i64::try_from(fs_used(dir)).unwrap() - i64::try_from(before).unwrap();
    let snap = sim
        .host_path("/storage-pool/metal-csi/snap-1.from-pvc-a/volume.img")
        .unwrap();
    let mut head = vec![0u8; 4];
    std::io::Read::read_exact(&mut std::fs::File::open(&snap).unwrap(), &mut head).unwrap();
    assert_eq!(head, [0x5a; 4], "the snapshot carries the data");
    assert_eq!(std::fs::metadata(&snap).unwrap().len(), 10 << 30);
    sim.stop().await;
    (ms, added)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: prints numbers (run with --run-ignored only --no-capture); needs root, a loop device and mkfs.btrfs"]
async fn bench_subvolume_snapshot_of_1gib_written_on_btrfs_and_ext4() {
    let dir = tempfile::tempdir().unwrap();
    match BtrfsMount::new(dir.path()) {
        Some(m) => {
            let (ms, added) = snapshot_cost(&m.mnt.join("sim")).await;
            println!(
                "btrfs (loop): snapshot of a 10 GiB file with 1 GiB written: {ms:.1} ms, {:.1} MiB added to the file system (reflink)",
                added as f64 / f64::from(1 << 20)
            );
        }
        None => println!("btrfs: skipped (needs root, loop devices and mkfs.btrfs)"),
    }
    let plain = tempfile::tempdir().unwrap();
    let (ms, added) = snapshot_cost(plain.path()).await;
    println!(
        "host file system ({}): same snapshot: {ms:.1} ms, {:.1} MiB added (copy of the data extents; not evidence for Btrfs)",
        fs_type(plain.path()),
        added as f64 / f64::from(1 << 20)
    );
}

fn fs_type(p: &Path) -> String {
    let out = Command::new("df")
        .args(["--output=fstype"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap_or("?")
        .trim()
        .to_owned()
}
