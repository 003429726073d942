//! Benchmark (ignored, prints numbers): the sim's own time per agent-style
//! command at 0 and at 2,000 existing disks. A real RouterOS answers a
//! filtered print or one add/remove in about the same time at either size;
//! the sim should too, or the controller benchmarks measure the sim.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

fn cycle(sim: &rds_sim::SimHandle, slot: &str) -> [Duration; 6] {
    let nqn = format!("nqn.2000-02.com.mikrotik:{slot}");
    let path = format!("/storage-pool/metal-csi/{slot}.img");
    let lines = [
        format!(
            "/disk print detail without-paging where slot=\"{slot}\" || nvme-tcp-server-nqn=\"{nqn}\"; :put \"rds-csi:end\"; /file print detail without-paging where name=\"storage-pool/metal-csi/{slot}.img\"; :put \"rds-csi:end\""
        ),
        format!(
            "/disk add type=file file-path={path} file-size=1G slot={slot} nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn={nqn}"
        ),
        format!("/disk print detail without-paging where slot=\"{slot}\""),
        format!(
            "/disk print detail without-paging where slot=\"{slot}\"; :put \"rds-csi:end\"; /file print detail without-paging where name=\"storage-pool/metal-csi/{slot}.img\"; :put \"rds-csi:end\""
        ),
        format!("/disk remove [find slot=\"{slot}\"]"),
        format!("/file remove [find name=\"storage-pool/metal-csi/{slot}.img\"]"),
    ];
    let mut out = [Duration::ZERO; 6];
    for (i, l) in lines.iter().enumerate() {
        let t = Instant::now();
        let r = sim.console(l);
        out[i] = t.elapsed();
        assert!(!r.contains("failure"), "{l}: {r}");
    }
    out
}

fn avg(sim: &rds_sim::SimHandle, tag: &str) -> [f64; 6] {
    let n = 20;
    let mut sum = [0f64; 6];
    for i in 0..n {
        let d = cycle(sim, &format!("pvc-{tag}-{i}"));
        for (s, x) in sum.iter_mut().zip(d) {
            *s += x.as_secs_f64() * 1000.0 / f64::from(n);
        }
    }
    sum
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: prints numbers (run with --run-ignored only --no-capture)"]
async fn bench_sim_command_cost_at_0_and_2000_disks() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.sync_state = false;
    let sim = common::start(cfg).await;
    let s2 = sim.clone();
    let (a0, a1) = tokio::task::spawn_blocking(move || {
        let a0 = avg(&s2, "empty");
        for chunk in 0..20 {
            let line: Vec<String> = (0..100)
                .map(|i| {
                    let slot = format!("pvc-fill-{chunk:02}-{i:02}");
                    format!(
                        "/disk add type=file file-path=/storage-pool/metal-csi/{slot}.img file-size=1M slot={slot} nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:{slot}"
                    )
                })
                .collect();
            let out = s2.console(&line.join("; "));
            assert!(out.trim().is_empty(), "{out}");
        }
        let a1 = avg(&s2, "full");
        (a0, a1)
    })
    .await
    .unwrap();
    let names = [
        "batched read",
        "disk add",
        "verify print",
        "delete read",
        "disk remove",
        "file remove",
    ];
    for ((n, x), y) in names.iter().zip(a0).zip(a1) {
        println!(
            "{n:>13}: {x:7.2} ms at 0 disks, {y:7.2} ms at 2,000 ({:.1}x)",
            y / x
        );
    }
    let (t0, t1): (f64, f64) = (a0.iter().sum(), a1.iter().sum());
    println!(
        "create+delete cycle inside the sim: {t0:.2} ms at 0, {t1:.2} ms at 2,000 ({:.1}x)",
        t1 / t0
    );
    sim.stop().await;
}
