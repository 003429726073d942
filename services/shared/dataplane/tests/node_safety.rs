//! Never pull a device from a live consumer (real loop devices, real mounts,
//! real processes; root). Each refusal is checked the way the CO sees it
//! (FAILED_PRECONDITION naming the holder) and the way the data sees it
//! (still mounted, still attached, the record kept); then the holder goes
//! away and unstage completes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use rds_dataplane::{AccessType, FsType, UnstageRequest};
use support::*;

/// A process that holds something open until dropped.
struct Holder(Child);

impl Holder {
    /// `sh` opens `path` on fd 3, says so, then becomes `sleep` (fd kept).
    fn open(path: &Path) -> Holder {
        Self::spawn(Command::new("sh").args([
            "-c",
            "exec 3<\"$1\" && echo ready && exec sleep 600",
            "sh",
            path.to_str().unwrap(),
        ]))
    }

    fn spawn(cmd: &mut Command) -> Holder {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        // Positive barrier: the holder has its file open once it says so.
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Holder(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run in a fresh mount namespace with `$1` = this test's scratch dir:
/// drops the copies of other tests' scratch mounts (tests run in parallel
/// and would see the namespace as a user of their volumes).
const DROP_OTHER_SCRATCH_MOUNTS: &str = r#"for m in $(awk '{print $5}' /proc/self/mountinfo | grep '^/tmp/rds-dp-' | sort -r); do
  case "$m" in "$1"|"$1"/*) ;; *) umount -l "$m" 2>/dev/null ;; esac
done"#;

async fn try_unstage(h: &Harness, v: &Vol) -> rds_dataplane::Result<rds_dataplane::UnstageOutcome> {
    h.plane
        .unstage(UnstageRequest {
            volume_id: v.id.clone(),
            staging_path: v.staging.clone(),
        })
        .await
}

/// The refusal as the CO and the data see it.
async fn assert_refused(h: &Harness, v: &Vol, names: &[&str]) {
    let e = try_unstage(h, v).await.unwrap_err();
    assert_eq!(e.to_status().code(), tonic::Code::FailedPrecondition, "{e}");
    for n in names {
        assert!(e.to_string().contains(n), "{n:?} not in: {e}");
    }
    assert_eq!(loops_of(&v.file).len(), 1, "device left attached");
    assert!(
        h.events.reasons().contains(&"VolumeInUse"),
        "{:?}",
        h.events.reasons()
    );
}

#[tokio::test]
async fn unstage_is_refused_while_a_file_is_open_on_the_filesystem() {
    let h = harness();
    let v = h.volume("pvc-open-file", 64 * MIB);
    h.stage(&v, mount(FsType::Ext4)).await.unwrap();
    let file = v.staging.as_path().join("data.txt");
    std::fs::write(&file, b"written before unstage").unwrap();
    let holder = Holder::open(&file);

    assert_refused(&h, &v, &[&format!("pid {}", holder.pid()), "sleep"]).await;
    assert_eq!(mounts_at(v.staging.as_path()), 1, "still mounted");
    assert_eq!(std::fs::read(&file).unwrap(), b"written before unstage");
    let again = h.stage(&v, mount(FsType::Ext4)).await.unwrap();
    assert!(again.already_staged, "record kept: restage is a no-op");

    drop(holder);
    let u = try_unstage(&h, &v).await.unwrap();
    assert!(u.was_mounted && u.detached);
    assert!(loops_of_after_detach(&v.file).is_empty());
    h.stage(&v, mount(FsType::Ext4)).await.unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"written before unstage");
    h.unstage(&v).await;
}

#[tokio::test]
async fn unstage_is_refused_while_a_process_works_in_the_filesystem() {
    let h = harness();
    let v = h.volume("pvc-cwd", 64 * MIB);
    h.stage(&v, mount(FsType::Ext4)).await.unwrap();
    let holder = Holder::spawn(
        Command::new("sh")
            .args(["-c", "echo ready && exec sleep 600"])
            .current_dir(v.staging.as_path()),
    );
    assert_refused(&h, &v, &[&format!("pid {}", holder.pid())]).await;
    drop(holder);
    assert!(try_unstage(&h, &v).await.unwrap().detached);
}

#[tokio::test]
async fn unstage_is_refused_while_another_mount_of_the_device_exists() {
    let h = harness();
    let v = h.volume("pvc-bind", 64 * MIB);
    h.stage(&v, mount(FsType::Ext4)).await.unwrap();
    let extra = h.path("extra-bind");
    std::fs::create_dir_all(extra.as_path()).unwrap();
    let st = Command::new("mount")
        .arg("--bind")
        .arg(v.staging.as_path())
        .arg(extra.as_path())
        .status()
        .unwrap();
    assert!(st.success());

    assert_refused(&h, &v, &[extra.as_path().to_str().unwrap()]).await;
    assert_eq!(
        mounts_at(v.staging.as_path()),
        1,
        "checked before unmounting"
    );

    assert!(
        Command::new("umount")
            .arg(extra.as_path())
            .status()
            .unwrap()
            .success()
    );
    assert!(try_unstage(&h, &v).await.unwrap().detached);
    assert!(loops_of_after_detach(&v.file).is_empty());
}

#[tokio::test]
async fn unstage_is_refused_while_another_mount_namespace_has_it_mounted() {
    let h = harness();
    let v = h.volume("pvc-ns", 64 * MIB);
    h.stage(&v, mount(FsType::Ext4)).await.unwrap();
    // A private copy of our mount table: its staging mount does not go away
    // when ours does, and it keeps the filesystem alive. It drops the copies
    // of other tests' scratch mounts at once (they run in parallel and would
    // see this namespace as a user of their volumes).
    let script = format!("{DROP_OTHER_SCRATCH_MOUNTS}\necho ready && exec sleep 600");
    let holder = Holder::spawn(Command::new("unshare").args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
        h.scratch.path().to_str().unwrap(),
    ]));
    assert_refused(
        &h,
        &v,
        &["mount namespace", &format!("pid {}", holder.pid())],
    )
    .await;
    drop(holder);
    // The namespace died with its only process: unstage completes.
    let u = try_unstage(&h, &v).await.unwrap();
    assert!(u.detached, "{u:?}");
    assert!(loops_of_after_detach(&v.file).is_empty());
}

#[tokio::test]
async fn raw_block_unstage_is_refused_while_a_process_holds_the_device() {
    let h = harness();
    let v = h.volume("pvc-raw-held", 16 * MIB);
    let s = h.stage(&v, AccessType::Block).await.unwrap();
    let holder = Holder::open(&s.device.path);

    assert_refused(&h, &v, &[&format!("pid {}", holder.pid()), "device open"]).await;
    drop(holder);
    assert!(try_unstage(&h, &v).await.unwrap().detached);
    assert!(loops_of_after_detach(&v.file).is_empty());
}

#[tokio::test]
async fn our_own_open_device_is_not_a_holder() {
    let h = harness();
    let v = h.volume("pvc-own", 16 * MIB);
    let s = h.stage(&v, AccessType::Block).await.unwrap();
    let own = std::fs::File::open(&s.device.path).unwrap();
    let u = try_unstage(&h, &v).await.unwrap();
    assert!(u.detached, "our own fd must never block unstage");
    drop(own);
}

#[tokio::test]
async fn unpublish_is_refused_while_the_target_is_busy() {
    let h = harness();
    let v = h.volume("pvc-busy-target", 64 * MIB);
    h.stage(&v, mount(FsType::Ext4)).await.unwrap();
    h.publish_to(&v, &v.target, mount(FsType::Ext4), false)
        .await
        .unwrap();
    let file = v.target.as_path().join("in-use.txt");
    std::fs::write(&file, b"x").unwrap();
    let holder = Holder::open(&file);
    let e = h
        .plane
        .unpublish(rds_dataplane::UnpublishRequest {
            volume_id: v.id.clone(),
            target_path: v.target.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.to_status().code(), tonic::Code::FailedPrecondition, "{e}");
    assert!(
        e.to_string().contains(&format!("pid {}", holder.pid())),
        "{e}"
    );
    assert_eq!(mounts_at(v.target.as_path()), 1, "no lazy unmount");
    drop(holder);
    h.unpublish(&v, &v.target).await;
    h.unstage(&v).await;
}

#[tokio::test]
async fn single_writer_raw_block_is_published_at_one_target_only() {
    let h = harness();
    let v = h.volume("pvc-rwop-block", 16 * MIB);
    h.stage(&v, AccessType::Block).await.unwrap();
    let other = h.path("kubelet/pods/p2/volumeDevices/pvc-rwop-block");
    let publish = |target: &rds_dataplane::NodePath| {
        h.plane.publish(rds_dataplane::PublishRequest {
            volume_id: v.id.clone(),
            staging_path: v.staging.clone(),
            target_path: target.clone(),
            source: Some(v.source.clone()),
            access: AccessType::Block,
            readonly: false,
            pvc: None,
            single_writer: true,
        })
    };
    publish(&v.target).await.unwrap();
    let e = publish(&other).await.unwrap_err();
    assert_eq!(e.to_status().code(), tonic::Code::FailedPrecondition, "{e}");
    assert!(e.to_string().contains("already published"), "{e}");
    assert!(!other.as_path().exists(), "no device node left behind");
    assert!(publish(&v.target).await.unwrap().already_published);
    h.unpublish(&v, &v.target).await;
    publish(&other).await.unwrap();
    h.unpublish(&v, &other).await;
    h.unstage(&v).await;
}

fn unstage_req(v: &Vol) -> UnstageRequest {
    UnstageRequest {
        volume_id: v.id.clone(),
        staging_path: v.staging.clone(),
    }
}

/// Serves `content` to each reader of the FIFO at `path` until `stop`.
fn serve_fifo(
    path: std::path::PathBuf,
    content: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            // Non-blocking open fails (ENXIO) until a reader is there.
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = f.write_all(content.as_bytes());
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
    })
}

/// Ends every read of the FIFO still waiting when dropped (even on a
/// failed assertion: a blocked read would keep the runtime from shutting
/// down).
struct ReleaseFifo(std::path::PathBuf);

impl Drop for ReleaseFifo {
    fn drop(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        for _ in 0..200 {
            // Opening and closing without writing gives a reader its EOF.
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(&self.0);
            if opened.is_err() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_call_keeps_the_volume_busy_until_its_work_ends() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("mountinfo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let f = fifo.clone();
    let h = harness_with(move |c| c.mountinfo_path = f);
    let _release = ReleaseFifo(fifo.clone());
    let v = h.volume("pvc-cancelled", 16 * MIB);

    // The call blocks reading the mount table (a FIFO nobody writes yet);
    // the CO gives up on it: the call's future is dropped.
    let cancelled = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        h.plane.unstage(unstage_req(&v)),
    )
    .await;
    assert!(cancelled.is_err(), "cancelled while its read was in flight");
    // The read still runs on the blocking pool: the volume stays busy.
    let e = try_unstage(&h, &v).await.unwrap_err();
    assert_eq!(e.to_status().code(), tonic::Code::Aborted, "{e}");
    assert_eq!(h.plane.lock_entries(), 1);

    // The read ends (the mount table arrives): the volume is free again.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let server = serve_fifo(fifo.clone(), mountinfo, stop.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while h.plane.lock_entries() > 0 {
        assert!(std::time::Instant::now() < deadline, "lock never released");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    try_unstage(&h, &v).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap();
}

#[tokio::test]
async fn idle_lock_entries_are_dropped() {
    let h = harness();
    for i in 0..20 {
        let v = h.volume(&format!("pvc-idle-{i}"), MIB);
        try_unstage(&h, &v).await.unwrap();
    }
    assert_eq!(h.plane.lock_entries(), 0, "no entry outlives its call");
}

#[tokio::test]
async fn a_superblock_kept_only_by_a_namespace_without_processes_does_not_block_unstage() {
    let h = harness();
    let v = h.volume("pvc-orphan-ns", 64 * MIB);
    h.stage(&v, mount(FsType::Ext4)).await.unwrap();
    std::fs::write(v.staging.as_path().join("f"), b"synced").unwrap();
    // A mount namespace pinned by a bind mount of its nsfs file, whose only
    // process has exited: it keeps a copy of the staging mount (and the
    // superblock alive), but no process can use it and /proc cannot see it.
    let pin = h.scratch.path().join("pinned-ns");
    std::fs::write(&pin, b"").unwrap();
    // As in the namespace test, the copies of other tests' mounts are
    // dropped at once (they run in parallel).
    let st = Command::new("unshare")
        .arg(format!("--mount={}", pin.display()))
        .args([
            "--propagation",
            "private",
            "sh",
            "-c",
            DROP_OTHER_SCRATCH_MOUNTS,
            "sh",
        ])
        .arg(h.scratch.path())
        .status()
        .unwrap();
    assert!(st.success());
    let u = try_unstage(&h, &v).await;
    // Release the namespace before asserting (its mounts go with it).
    let released = Command::new("umount").arg(&pin).status().unwrap();
    let u = u.unwrap();
    assert!(released.success());
    assert!(u.detached, "not blocked forever by an invisible namespace");
    assert!(
        h.events.reasons().contains(&"ForcedCleanup"),
        "{:?}",
        h.events.reasons()
    );
    // What we wrote was flushed before the detach.
    h.stage(&v, mount(FsType::Ext4)).await.unwrap();
    assert_eq!(
        std::fs::read(v.staging.as_path().join("f")).unwrap(),
        b"synced"
    );
    h.unstage(&v).await;
}
