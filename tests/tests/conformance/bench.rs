//! Benchmarks (ignored by default; run with
//! `cargo test -p integration-tests --test conformance bench -- --ignored --nocapture`).
//! They print numbers; they assert only that every call succeeded.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use rds_proto::agent as ag;
use rds_proto::csi::v1::*;

use crate::common::*;

fn summary(label: &str, mut d: Vec<Duration>) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    let p = |q: f64| d[((d.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{label:<46} n={:<3} median={:>7.2} ms  p90={:>7.2} ms  max={:>7.2} ms",
        d.len(),
        ms(p(0.5)),
        ms(p(0.9)),
        ms(*d.last().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn bench_controller_calls_through_csi_vs_rds_agent_directly() {
    let mut t = Sanity::start().await;
    let n = 30;
    let mut csi = Vec::new();
    for i in 0..n {
        let name = format!("bench-csi-{i}");
        let s = Instant::now();
        t.ctl.create_volume(create_req(&name)).await.unwrap();
        t.ctl
            .delete_volume(DeleteVolumeRequest {
                volume_id: name,
                ..Default::default()
            })
            .await
            .unwrap();
        csi.push(s.elapsed());
    }
    let mut agent = t.stack.agent().unwrap();
    let mut direct = Vec::new();
    for i in 0..n {
        let name = format!("bench-agent-{i}");
        let s = Instant::now();
        agent
            .create_volume(ag::CreateVolumeRequest {
                volume_id: name.clone(),
                size_bytes: SIZE as u64,
                ..Default::default()
            })
            .await
            .unwrap();
        agent
            .delete_volume(ag::DeleteVolumeRequest {
                volume_id: name,
                ..Default::default()
            })
            .await
            .unwrap();
        direct.push(s.elapsed());
    }
    summary("CreateVolume+DeleteVolume via csi-frontend", csi);
    summary("CreateVolume+DeleteVolume via rds-agent", direct);

    let v = t.volume(create_req("bench-publish")).await;
    let mut pubs = Vec::new();
    for _ in 0..n {
        let s = Instant::now();
        t.ctl
            .controller_publish_volume(publish_req(&v.volume_id, "node-1"))
            .await
            .unwrap();
        t.ctl
            .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                volume_id: v.volume_id.clone(),
                node_id: "node-1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        pubs.push(s.elapsed());
    }
    summary("ControllerPublish+Unpublish (events on)", pubs);
    t.finish().await;
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The backing file of `volume_id` under the stack's scratch dir.
fn backing_file(root: &std::path::Path, volume_id: &str) -> std::path::PathBuf {
    let want = format!("{volume_id}.img");
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.file_name().is_some_and(|n| n == want.as_str()) {
                return p;
            }
        }
    }
    panic!("no backing file {want} under {}", root.display());
}

fn median_ms(mut d: Vec<Duration>) -> f64 {
    d.sort();
    d[d.len() / 2].as_secs_f64() * 1000.0
}

/// Reads what the node reads to prove a device blank (same regions).
fn safety_read(dev: &str) -> Duration {
    use std::io::{Read, Seek, SeekFrom};
    let s = Instant::now();
    let mut f = std::fs::File::open(dev).unwrap();
    let size = f.seek(SeekFrom::End(0)).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let zeros = vec![0u8; 1 << 20];
    for (offset, len) in rds_dataplane::fs::blank_regions(size) {
        let mut at = offset;
        while at < offset + len {
            let n = (offset + len - at).min(1 << 20) as usize;
            f.seek(SeekFrom::Start(at)).unwrap();
            f.read_exact(&mut buf[..n]).unwrap();
            assert!(buf[..n] == zeros[..n]);
            at += n as u64;
        }
    }
    s.elapsed()
}

/// One P7 round through CSI: a fresh blank volume, its loop device
/// attached beforehand, timed NodeStage+NodePublish, then torn down.
async fn csi_stage_publish_round(t: &mut Sanity, round: usize) -> Duration {
    let mut nc = t.node_client();
    let v = t.volume(create_req(&format!("bench-node-{round}"))).await;
    let file = backing_file(t.stack.dir.path(), &v.volume_id);
    let dev = run("losetup", &["--find", "--show", file.to_str().unwrap()]);
    let stage = NodeStageVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: t.staging_path(),
        volume_capability: Some(snw()),
        volume_context: v.volume_context.clone(),
        publish_context: HashMap::new(),
        ..Default::default()
    };
    let publish = NodePublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: t.staging_path(),
        target_path: t.target_path(),
        volume_capability: Some(snw()),
        volume_context: v.volume_context.clone(),
        ..Default::default()
    };
    let s = Instant::now();
    nc.node_stage_volume(stage).await.unwrap();
    nc.node_publish_volume(publish).await.unwrap();
    let took = s.elapsed();
    nc.node_unpublish_volume(NodeUnpublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        target_path: t.target_path(),
    })
    .await
    .unwrap();
    nc.node_unstage_volume(NodeUnstageVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: t.staging_path(),
    })
    .await
    .unwrap();
    let _ = Command::new("losetup").args(["-d", &dev]).status();
    t.delete_volume(&v.volume_id).await.unwrap();
    took
}

/// One P7 round by hand on a fresh blank file of the same size under
/// `dir`: timed `blkid -p`, mkfs.ext4, mount, bind mount. Returns that
/// time and the time of the safety read on the cold device.
fn by_hand_stage_publish_round(dir: &std::path::Path, round: usize) -> (Duration, Duration) {
    let (st, tg) = (
        dir.join("stage").display().to_string(),
        dir.join("target").display().to_string(),
    );
    let img = dir.join(format!("vol-{round}.img"));
    std::fs::File::create(&img)
        .unwrap()
        .set_len(SIZE as u64)
        .unwrap();
    let dev = run("losetup", &["--find", "--show", img.to_str().unwrap()]);
    let read = safety_read(&dev);
    let s = Instant::now();
    let probe = Command::new("blkid").args(["-p", &dev]).status().unwrap();
    assert_eq!(probe.code(), Some(2), "blank");
    run("mkfs.ext4", &["-q", &dev]);
    run("mount", &["-t", "ext4", &dev, &st]);
    run("mount", &["--bind", &st, &tg]);
    let took = s.elapsed();
    run("umount", &[&tg]);
    run("umount", &[&st]);
    run("losetup", &["-d", &dev]);
    std::fs::remove_file(&img).unwrap();
    (took, read)
}

/// P7: NodeStage+NodePublish of a blank 1 GiB ext4 volume through CSI
/// against the same work by hand (`blkid -p`, `mkfs.ext4`, `mount`, bind
/// mount) on the same kind of loop device, each round on a fresh blank
/// volume whose loop device is already attached (so both sides format and
/// mount the same thing). Median of 21 rounds each, interleaved.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn bench_node_stage_publish_1gib_ext4_vs_by_hand() {
    let mut t = Sanity::start_node().await;
    let rounds = 21;
    let dir = t.stack.dir.path().join("byhand");
    std::fs::create_dir_all(dir.join("stage")).unwrap();
    std::fs::create_dir_all(dir.join("target")).unwrap();
    let (mut csi, mut hand, mut reads) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        csi.push(csi_stage_publish_round(&mut t, round).await);
        let (took, read) = by_hand_stage_publish_round(&dir, round);
        hand.push(took);
        reads.push(read);
    }
    let (c, h, r) = (
        median_ms(csi.clone()),
        median_ms(hand.clone()),
        median_ms(reads),
    );
    summary("P7 CSI NodeStage+NodePublish (blank 1 GiB ext4)", csi);
    summary("P7 by hand blkid -p+mkfs.ext4+mount+bind", hand);
    println!(
        "P7 ratio CSI/by hand (medians): {:.2}x ({c:.1} ms / {h:.1} ms)",
        c / h
    );
    println!("P7 safety read (blank regions, cold device): median {r:.2} ms");
    t.finish().await;
}
