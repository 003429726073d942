//! `rdsctl doctor --btrfs` against rds-sim (real SSH, real rdsctl binary):
//! a Btrfs pool passes the read-only checks once a subvolume exists to read,
//! an xfs pool is one clear failed check (and the rest skipped), and without
//! `--btrfs` none of them run. docs/btrfs.md is the runbook they back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use serde_json::Value;

mod support;
use support::{Env, check, rdsctl, sim_env};

async fn doctor(env: &Env, extra: &[&str]) -> (Output, Value) {
    let mut args = vec!["doctor".to_owned(), "--no-cluster".to_owned()];
    args.extend(env.rds_args());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.extend(["-o".to_owned(), "json".to_owned()]);
    let (out, _) = rdsctl(&args).await;
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, report)
}

fn has_check(report: &Value, name: &str) -> bool {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == name)
}

#[tokio::test(flavor = "multi_thread")]
async fn btrfs_checks_pass_on_a_btrfs_pool_with_a_subvolume_to_read() {
    let env = sim_env(|_| {}).await;
    // Without --btrfs nothing of it runs.
    let (_, report) = doctor(&env, &[]).await;
    assert!(!has_check(&report, "btrfs-pool"), "{report:#}");

    // Before any subvolume exists the print parses but proves no property.
    let (out, report) = doctor(&env, &["--btrfs"]).await;
    assert_eq!(check(&report, "btrfs-pool")["status"], "pass", "{report:#}");
    assert_eq!(
        check(&report, "btrfs-filesystem")["status"],
        "pass",
        "{report:#}"
    );
    let subs = check(&report, "btrfs-subvolumes");
    assert_eq!(subs["status"], "warn", "{report:#}");
    assert!(
        subs["fix"].as_str().unwrap().contains("docs/btrfs.md"),
        "{subs}"
    );
    assert_eq!(out.status.code(), Some(5), "a warning is a finding");

    // The runbook's test subvolume and its read-only snapshot.
    for line in [
        "/disk/btrfs/subvolume/add fs=storage-pool name=metal-csi/doctor-test",
        "/disk/btrfs/subvolume/add fs=storage-pool name=metal-csi/doctor-test-snap parent=metal-csi/doctor-test read-only=yes",
    ] {
        env.plant(line).await;
    }
    let (out, report) = doctor(&env, &["--btrfs"]).await;
    let subs = check(&report, "btrfs-subvolumes");
    assert_eq!(subs["status"], "pass", "{report:#}");
    let detail = subs["detail"].as_str().unwrap();
    assert!(
        detail.contains("2 subvolume(s)") && detail.contains("1 read-only"),
        "{subs}"
    );
    assert_eq!(report["worst"], "pass", "{report:#}");
    assert_eq!(out.status.code(), Some(0));
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_xfs_pool_is_one_clear_failed_check() {
    let env = sim_env(|c| c.behaviour.pool_filesystem = rds_sim::PoolFilesystem::Xfs).await;
    let (out, report) = doctor(&env, &["--btrfs"]).await;
    assert_eq!(out.status.code(), Some(6), "{report:#}");
    let pool = check(&report, "btrfs-pool");
    assert_eq!(pool["status"], "fail", "{report:#}");
    assert!(
        pool["detail"]
            .as_str()
            .unwrap()
            .contains("is xfs, not btrfs"),
        "{pool}"
    );
    assert!(pool["fix"].as_str().unwrap().contains("flat"), "{pool}");
    for name in ["btrfs-filesystem", "btrfs-subvolumes"] {
        assert_eq!(check(&report, name)["status"], "skip", "{name}: {report:#}");
    }
    // The ordinary RDS checks are unaffected.
    assert_eq!(check(&report, "pool")["status"], "pass", "{report:#}");
    env.sim.stop().await;
}
