//! Identity Service cases I1–I3, plus Probe following the RDS.

use std::time::{Duration, Instant};

use rds_proto::csi::v1::plugin_capability::Type as CapType;
use rds_proto::csi::v1::plugin_capability::service::Type as ServiceType;
use rds_proto::csi::v1::plugin_capability::volume_expansion::Type as ExpansionType;
use rds_proto::csi::v1::{GetPluginCapabilitiesRequest, GetPluginInfoRequest, ProbeRequest};

use crate::common::Sanity;

#[tokio::test(flavor = "multi_thread")]
async fn i1_get_plugin_capabilities_should_return_appropriate_capabilities() {
    let mut t = Sanity::start().await;
    let caps = t
        .ident
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    let mut services = Vec::new();
    let mut expansion = Vec::new();
    for c in &caps {
        match c.r#type.as_ref().expect("capability without type") {
            CapType::Service(s) => {
                let ty = ServiceType::try_from(s.r#type).unwrap();
                assert!(
                    matches!(
                        ty,
                        ServiceType::ControllerService
                            | ServiceType::VolumeAccessibilityConstraints
                            | ServiceType::GroupControllerService
                            | ServiceType::SnapshotMetadataService
                    ),
                    "{ty:?}"
                );
                services.push(ty);
            }
            CapType::VolumeExpansion(e) => {
                let ty = ExpansionType::try_from(e.r#type).unwrap();
                assert!(
                    matches!(ty, ExpansionType::Online | ExpansionType::Offline),
                    "{ty:?}"
                );
                expansion.push(ty);
            }
        }
    }
    // Our contract: controller service, online expansion, no topology offered.
    assert_eq!(services, [ServiceType::ControllerService]);
    assert_eq!(expansion, [ExpansionType::Online]);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn i2_probe_should_return_appropriate_information() {
    let mut t = Sanity::start().await;
    let r = t.ident.probe(ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(
        r.ready,
        Some(true),
        "the sim is up, so the RDS is reachable"
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn i3_get_plugin_info_should_return_appropriate_information() {
    let mut t = Sanity::start().await;
    let r = t
        .ident
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let name = r.name.as_bytes();
    assert!(!name.is_empty() && name.len() <= 63);
    assert!(name[0].is_ascii_alphabetic() && name[name.len() - 1].is_ascii_alphabetic());
    assert!(
        name.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-._".contains(c))
    );
    assert_eq!(r.name, "rds.csi.srvlab.io");
    assert!(
        !r.vendor_version.is_empty(),
        "vendor_version is REQUIRED by the spec"
    );
    t.finish().await;
}

/// Probe says not ready while the RDS is down, answers fast, and is ready
/// again once it is back (and never fails at the gRPC level).
#[tokio::test(flavor = "multi_thread")]
async fn probe_follows_rds_reachability() {
    let mut t = Sanity::start().await;
    assert_eq!(
        t.ident
            .probe(ProbeRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready,
        Some(true)
    );
    t.stack.sim.reboot(Duration::from_secs(3)).await;
    let started = Instant::now();
    let r = t.ident.probe(ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(r.ready, Some(false));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(t.stack.sim.wait_up(Duration::from_secs(10)).await);
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let r = t.ident.probe(ProbeRequest {}).await.unwrap().into_inner();
        if r.ready == Some(true) {
            break;
        }
        assert!(Instant::now() < until, "Probe did not become ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    t.finish().await;
}
