//! The storage pool gauges through the real stack (rds-agent → SSH →
//! rds-sim, scraped over HTTP): read in the background, they follow the
//! sim's pool numbers. (`--pool-metrics-interval 0` turning the poll off is
//! checked on the settings in config.rs: "never reads" has no positive
//! barrier to wait for here.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use rds_routeros::Command;
use rds_routeros::{DiskSelector, PoolName, parse_disk_print_detail};

const SIZE: &str = "rds_csi_rds_pool_size_bytes{pool=\"storage-pool\"} ";
const FREE: &str = "rds_csi_rds_pool_free_bytes{pool=\"storage-pool\"} ";

/// The sim's own pool record (size, free), read in-process, not over SSH.
fn sim_pool(env: &Env) -> (u64, u64) {
    let cmd = Command::DiskPrint(DiskSelector::MountPoint(PoolName::default()));
    let text = env.sim.console(&cmd.to_string());
    let recs = parse_disk_print_detail(&text).unwrap();
    let pool = recs.first().expect("the sim has a storage pool");
    (pool.size.unwrap(), pool.free.unwrap())
}

/// (size, free) as scraped from the agent's `/metrics`, if present.
async fn gauges(env: &Env) -> (Option<u64>, Option<u64>) {
    let text = env.metrics_text().await;
    let value = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
    };
    (value(SIZE), value(FREE))
}

fn interval(every: &str) -> Opts {
    Opts {
        // Space counted at creation, so a new volume moves `free` at once.
        sim: Box::new(|c| c.behaviour.space = rds_sim::SpaceMode::Strict),
        agent_args: vec!["--pool-metrics-interval".into(), every.into()],
        ..Opts::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_pool_gauges_follow_the_sims_pool() {
    let env = common::env(interval("200ms")).await;
    let (size, free) = sim_pool(&env);
    assert!(size > 0 && free > 0);
    let mut last = (None, None);
    let matched = eventually(Duration::from_secs(10), async || {
        last = gauges(&env).await;
        last == (Some(size), Some(free))
    })
    .await;
    assert!(matched, "gauges {last:?}, sim pool ({size}, {free})");

    // A new volume takes space; a later refresh shows it.
    let mut c = env.client();
    c.create_volume(create_req("pvc-pool-metrics", GIB))
        .await
        .unwrap();
    let (size2, free2) = sim_pool(&env);
    assert_eq!((size2, free2), (size, free - GIB), "strict space mode");
    let matched = eventually(Duration::from_secs(10), async || {
        last = gauges(&env).await;
        last == (Some(size2), Some(free2))
    })
    .await;
    assert!(matched, "gauges {last:?}, sim pool ({size2}, {free2})");
    env.shutdown().await;
}
