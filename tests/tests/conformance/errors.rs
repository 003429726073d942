//! Failures map to the right CSI codes through the real services: RDS
//! unreachable → UNAVAILABLE, no space → RESOURCE_EXHAUSTED, a concurrent
//! operation on the same volume → ABORTED, the caller's deadline bounds the
//! bus calls under it.

use std::time::{Duration, Instant};

use rds_proto::csi::v1::*;
use rds_sim::{FaultAction, FaultRule};
use tonic::Code;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn rds_unreachable_is_unavailable() {
    let mut t = Sanity::start().await;
    t.stack.sim.reboot(Duration::from_secs(30)).await;
    let started = Instant::now();
    let s = assert_code(
        t.create_volume(create_req(&unique("down"))).await,
        Code::Unavailable,
    );
    assert_eq!(
        rds_bus::reason_of(&s),
        Some(rds_bus::Reason::RdsUnreachable),
        "{}",
        s.message()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Reads too.
    assert_code(
        t.ctl.list_volumes(ListVolumesRequest::default()).await,
        Code::Unavailable,
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_space_is_resource_exhausted() {
    let mut t = Sanity::start().await;
    t.stack
        .sim
        .faults()
        .add(FaultRule::new(FaultAction::DiskFull).on("disk add").once());
    let name = unique("full");
    let s = assert_code(
        t.create_volume(create_req(&name)).await,
        Code::ResourceExhausted,
    );
    assert_eq!(
        rds_bus::reason_of(&s),
        Some(rds_bus::Reason::CapacityExhausted)
    );
    assert!(t.stack.sim.disks().iter().all(|d| d.slot != name));
    // The retry succeeds once there is room.
    t.volume(create_req(&name)).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_operation_on_the_same_volume_is_aborted() {
    let mut t = Sanity::start().await;
    t.stack.sim.faults().add(
        FaultRule::new(FaultAction::Latency(Duration::from_millis(1500)))
            .on("disk add")
            .once(),
    );
    let name = unique("busy");
    let mut c1 = t.ctl.clone();
    let req = create_req(&name);
    let first = tokio::spawn(async move { c1.create_volume(req).await });
    // Let the first call take the volume.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let s = assert_code(t.ctl.create_volume(create_req(&name)).await, Code::Aborted);
    assert_eq!(
        rds_bus::reason_of(&s),
        Some(rds_bus::Reason::OperationPending)
    );
    // Deleting it meanwhile is refused the same way.
    assert_code(t.delete_volume(&name).await, Code::Aborted);
    let v = first.await.unwrap().unwrap().into_inner().volume.unwrap();
    assert_eq!(v.volume_id, name);
    // Once the first finished, the retry is an idempotent success.
    t.volume(create_req(&name)).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_callers_deadline_bounds_the_bus_calls() {
    let mut t = Sanity::start().await;
    t.stack.sim.faults().add(
        FaultRule::new(FaultAction::Latency(Duration::from_secs(4)))
            .on("disk add")
            .once(),
    );
    let name = unique("deadline");
    let mut req = tonic::Request::new(create_req(&name));
    req.set_timeout(Duration::from_millis(700));
    let started = Instant::now();
    let r = t.ctl.create_volume(req).await;
    let took = started.elapsed();
    let s = r.expect_err("the call cannot finish within its deadline");
    assert!(
        matches!(s.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{:?}: {}",
        s.code(),
        s.message()
    );
    assert!(took < Duration::from_millis(1500), "{took:?}");
    // The guard was released with the cancelled call: a retry is not ABORTED.
    tokio::time::sleep(Duration::from_secs(4)).await;
    t.volume(create_req(&name)).await;
    t.finish().await;
}
