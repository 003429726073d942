//! Timing evidence for issue #19 (ignored; it prints numbers, asserts only
//! that every call worked and the data came through):
//! `cargo nextest run -p integration-tests --test btrfs_bench --run-ignored only --no-capture`.
//!
//! A 10 GiB volume with 1 GiB of seeded pattern written into its backing file,
//! then CreateSnapshot, a restore (CreateVolume from the snapshot) and a clone
//! (CreateVolume from the volume), each timed through CSI with the RouterOS
//! commands it cost (the sim's commands.log) and what it added to the space
//! used on the filesystem under the sim. Three runs, one after the other:
//!
//! - `subvolume` layout, sim state on a loop-mounted Btrfs: the sim's
//!   subvolume snapshots are reflinks, so this is the copy-on-write case;
//! - `subvolume` layout on a loop-mounted ext4: the sim cannot reflink and
//!   copies the data — NOT evidence of copy-on-write, only the contrast;
//! - `flat` layout (copy-from, the Go driver's snapshots) on ext4: the sim's
//!   copy-from data clone, for comparison.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use integration_tests::backing_fs::{self, BackingFs};
use integration_tests::pattern;
use integration_tests::roundtrip::{Access, Layout, Rig, Source, sync_all};

const GIB: u64 = 1 << 30;
const SIZE: u64 = 10 * GIB;
const WRITTEN: u64 = GIB;
const SEED: u64 = 0x0019_be7c;

struct Step {
    what: &'static str,
    took: Duration,
    commands: Vec<String>,
    /// Growth of the space used on the sim's filesystem (MiB; negative = freed).
    used_mib: f64,
}

/// A measurement in progress: started before a call, finished after it.
struct Meter {
    commands: usize,
    used: u64,
    t0: Instant,
}

impl Meter {
    fn start(r: &Rig) -> Meter {
        sync_all();
        Meter {
            commands: r.stack.sim_commands().len(),
            used: used(r),
            t0: Instant::now(),
        }
    }

    fn finish(self, r: &Rig, what: &'static str) -> Step {
        let took = self.t0.elapsed();
        sync_all();
        Step {
            what,
            took,
            commands: r.stack.sim_commands().split_off(self.commands),
            used_mib: (used(r) as f64 - self.used as f64) / (1 << 20) as f64,
        }
    }
}

fn used(r: &Rig) -> u64 {
    backing_fs::used_bytes(&r.files_root()).unwrap()
}

/// One run: volume, 1 GiB written, snapshot, restore, clone; data checked.
async fn run(layout: Layout, fs: BackingFs, fs_size: u64) -> Vec<Step> {
    let mut r = Rig::start(layout, Some(fs), fs_size).await.unwrap();
    assert_eq!(
        backing_fs::fs_type_at(&r.files_root()).as_deref(),
        Some(fs.name())
    );
    let m = Meter::start(&r);
    let src = r
        .create("bench-src", SIZE, Access::Block, Source::Empty)
        .await
        .unwrap();
    let create = m.finish(&r, "CreateVolume 10 GiB");
    let file = r.backing_file(&src).unwrap();
    let t0 = Instant::now();
    pattern::write(&file, SEED, 0, WRITTEN).unwrap();
    sync_all();
    println!(
        "  wrote 1 GiB of pattern into {} in {:.2} s",
        file.display(),
        t0.elapsed().as_secs_f64()
    );

    let m = Meter::start(&r);
    let snap = r.snapshot("bench-snap", &src.volume_id).await.unwrap();
    let snapshot = m.finish(&r, "CreateSnapshot");
    let m = Meter::start(&r);
    let restored = r
        .create(
            "bench-restored",
            SIZE,
            Access::Block,
            Source::Snapshot(&snap.snapshot_id),
        )
        .await
        .unwrap();
    let restore = m.finish(&r, "CreateVolume from snapshot (restore)");
    let m = Meter::start(&r);
    let clone = r
        .create(
            "bench-clone",
            SIZE,
            Access::Block,
            Source::Volume(&src.volume_id),
        )
        .await
        .unwrap();
    let clone_step = m.finish(&r, "CreateVolume from volume (clone)");
    for v in [&restored, &clone] {
        pattern::verify(&r.backing_file(v).unwrap(), SEED, 0, WRITTEN).unwrap();
    }
    for id in [&clone.volume_id, &restored.volume_id] {
        r.delete_volume(id).await.unwrap();
    }
    r.delete_snapshot(&snap.snapshot_id).await.unwrap();
    r.delete_volume(&src.volume_id).await.unwrap();
    r.stop().await;
    vec![create, snapshot, restore, clone_step]
}

fn print(title: &str, steps: &[Step]) {
    println!("{title}");
    for s in steps {
        println!(
            "  {:<38} {:>9.1} ms  {:>3} RouterOS commands  used {:>+9.1} MiB",
            s.what,
            s.took.as_secs_f64() * 1000.0,
            s.commands.len(),
            s.used_mib
        );
        for c in &s.commands {
            println!("      {c}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: prints numbers (run with --run-ignored only --no-capture)"]
async fn bench_snapshot_restore_clone_10gib_btrfs_vs_ext4_vs_flat() {
    for fs in [BackingFs::Btrfs, BackingFs::Ext4] {
        if let Some(why) = backing_fs::skip_reason(fs) {
            println!("skipped: {why}");
            return;
        }
    }
    // Sparse images: Btrfs holds 1 GiB written plus metadata (the snapshot,
    // restore and clone share it); ext4 holds it four times (every step copies).
    let btrfs = run(Layout::Subvolume, BackingFs::Btrfs, 8 * GIB).await;
    print(
        "subvolume layout, sim state on Btrfs (reflink: copy-on-write evidence)",
        &btrfs,
    );
    let ext4 = run(Layout::Subvolume, BackingFs::Ext4, 12 * GIB).await;
    print(
        "subvolume layout, sim state on ext4 (the sim COPIES: not evidence of copy-on-write)",
        &ext4,
    );
    let flat = run(Layout::Flat, BackingFs::Ext4, 12 * GIB).await;
    print(
        "flat layout (copy-from), sim state on ext4 (the sim's data clone copies)",
        &flat,
    );
}
