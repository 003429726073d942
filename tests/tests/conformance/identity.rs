//! Identity Service cases I1–I3, plus Probe staying ready through an RDS outage.

use std::time::{Duration, Instant};

use rds_proto::csi::v1::plugin_capability::Type as CapType;
use rds_proto::csi::v1::plugin_capability::service::Type as ServiceType;
use rds_proto::csi::v1::plugin_capability::volume_expansion::Type as ExpansionType;
use rds_proto::csi::v1::{
    ControllerUnpublishVolumeRequest, GetPluginCapabilitiesRequest, GetPluginInfoRequest,
    ProbeRequest, ProbeResponse,
};

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
    assert_eq!(r.ready, Some(true), "csi-frontend is serving");
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

/// What the livenessprobe sidecar answers kubelet for one Probe result:
/// 200 when Probe returns ready (an unset `ready` counts as ready), 500 when
/// Probe fails or says not ready. kubelet restarts csi-frontend on 500.
fn livenessprobe_http_status(probe: Result<ProbeResponse, tonic::Status>) -> u16 {
    match probe {
        Ok(r) if r.ready.unwrap_or(true) => 200,
        _ => 500,
    }
}

/// Probe is csi-frontend's own health: with the RDS down it still answers
/// ready (so the livenessprobe sidecar answers 200 and kubelet restarts
/// nothing), and attach/detach, which need no RDS, keep working.
#[tokio::test(flavor = "multi_thread")]
async fn rds_down_probe_stays_ready_and_attach_detach_work() {
    let mut t = Sanity::start().await;
    let vol = t
        .volume(crate::common::create_req(&crate::common::unique("pvc")))
        .await;
    assert_eq!(
        livenessprobe_http_status(t.ident.probe(ProbeRequest {}).await.map(|r| r.into_inner())),
        200
    );

    // The RDS goes away (returns once the sim refuses connections).
    t.stack.sim.reboot(Duration::from_secs(600)).await;
    // Positive barrier: rds-agent has seen the outage.
    wait_agent_reachable(&t, false).await;

    let probe = t.ident.probe(ProbeRequest {}).await.map(|r| r.into_inner());
    assert_eq!(
        livenessprobe_http_status(probe),
        200,
        "an RDS outage must not make the livenessprobe sidecar fail csi-frontend"
    );

    let node = t.node().to_owned();
    let published = t
        .ctl
        .controller_publish_volume(crate::common::publish_req(&vol.volume_id, &node))
        .await
        .expect("ControllerPublish with the RDS down")
        .into_inner();
    assert!(
        published
            .publish_context
            .values()
            .any(|v| v.contains(&vol.volume_id)),
        "publish context names the volume's NQN: {:?}",
        published.publish_context
    );
    t.ctl
        .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
            volume_id: vol.volume_id.clone(),
            node_id: node,
            ..Default::default()
        })
        .await
        .expect("ControllerUnpublish with the RDS down");

    // Back up for the clean-up (DeleteVolume needs the RDS).
    t.stack.sim.reboot(Duration::ZERO).await;
    assert!(t.stack.sim.wait_up(Duration::from_secs(10)).await);
    wait_agent_reachable(&t, true).await;
    t.finish().await;
}

/// Waits until rds-agent's own probe says `reachable == want`.
async fn wait_agent_reachable(t: &Sanity, want: bool) {
    let mut agent = t.stack.agent().unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let p = agent
            .probe(rds_proto::agent::ProbeRequest {})
            .await
            .unwrap()
            .into_inner();
        if p.reachable == want {
            return;
        }
        assert!(
            Instant::now() < until,
            "rds-agent never reported reachable={want}: {}",
            p.detail
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
