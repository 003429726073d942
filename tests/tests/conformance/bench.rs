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

#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn bench_node_stage_publish_1gib_ext4_vs_by_hand() {
    let mut t = Sanity::start_node().await;
    let rounds = 5;
    let v = t.volume(create_req("bench-node")).await;
    let mut nc = t.node_client();
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
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let s = Instant::now();
        nc.node_stage_volume(stage.clone()).await.unwrap();
        nc.node_publish_volume(publish.clone()).await.unwrap();
        up.push(s.elapsed());
        let s = Instant::now();
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
        down.push(s.elapsed());
    }
    let first = up[0];
    summary("CSI stage+publish (1st round formats)", up);
    summary("CSI unpublish+unstage", down);

    // The same steps by hand on a fresh 1 GiB sparse file.
    let dir = t.stack.dir.path().join("byhand");
    std::fs::create_dir_all(dir.join("stage")).unwrap();
    std::fs::create_dir_all(dir.join("target")).unwrap();
    let img = dir.join("vol.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(SIZE as u64)
        .unwrap();
    let (img, st, tg) = (
        img.display().to_string(),
        dir.join("stage").display().to_string(),
        dir.join("target").display().to_string(),
    );
    let (mut hup, mut hdown) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let s = Instant::now();
        let dev = run("losetup", &["--find", "--show", "--direct-io=on", &img]);
        if round == 0 {
            run("mkfs.ext4", &["-q", "-F", &dev]);
        }
        run("mount", &["-t", "ext4", &dev, &st]);
        run("mount", &["--bind", &st, &tg]);
        hup.push(s.elapsed());
        let s = Instant::now();
        run("umount", &[&tg]);
        run("umount", &[&st]);
        run("losetup", &["-d", &dev]);
        hdown.push(s.elapsed());
    }
    let hfirst = hup[0];
    summary("by hand losetup+mount+bind (1st round mkfs)", hup);
    summary("by hand umount+umount+losetup -d", hdown);
    println!(
        "first round (with mkfs): CSI {:.1} ms vs by hand {:.1} ms",
        first.as_secs_f64() * 1000.0,
        hfirst.as_secs_f64() * 1000.0
    );
    t.finish().await;
}
