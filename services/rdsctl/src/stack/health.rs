//! Readiness of a local stack: every service answers its gRPC health check
//! (the named service when it reports one, else the server's overall
//! status), rds-sim's SSH port accepts connections and rds-agent's Probe
//! reaches it over SSH, and csi-frontend answers health and CSI Probe.

use std::time::{Duration, Instant};

use rds_bus::ClientOptions;
use rds_proto::agent::ProbeRequest;
use rds_proto::agent::agent_client::AgentClient;
use rds_proto::csi::v1::identity_client::IdentityClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::stack::layout::Endpoints;

const CHECK_DEADLINE: Duration = Duration::from_secs(2);

fn opts() -> ClientOptions {
    ClientOptions {
        connect_timeout: CHECK_DEADLINE,
        request_timeout: CHECK_DEADLINE,
    }
}

/// SERVING for `service`, or — when the server does not report that name —
/// for the server as a whole.
pub async fn grpc_health(endpoint: &str, service: &str) -> Result<(), String> {
    let channel = rds_bus::connect(endpoint, opts()).map_err(|e| e.to_string())?;
    let mut client = HealthClient::new(channel);
    for name in [service, ""] {
        match client
            .check(HealthCheckRequest {
                service: name.to_owned(),
            })
            .await
        {
            Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => return Ok(()),
            Ok(r) => {
                let status = ServingStatus::try_from(r.get_ref().status)
                    .map(|s| s.as_str_name().to_owned())
                    .unwrap_or_else(|_| r.get_ref().status.to_string());
                return Err(format!("health {name:?}: {status}"));
            }
            Err(s) if s.code() == tonic::Code::NotFound && !name.is_empty() => continue,
            Err(s) => return Err(format!("health: {}: {}", s.code(), s.message())),
        }
    }
    Err("health: no status".into())
}

async fn sim_ready(ep: &Endpoints) -> Result<(), String> {
    tokio::time::timeout(CHECK_DEADLINE, tokio::net::TcpStream::connect(&ep.sim_ssh))
        .await
        .map_err(|_| {
            format!(
                "SSH port {} does not accept within {CHECK_DEADLINE:?}",
                ep.sim_ssh
            )
        })?
        .map_err(|e| format!("SSH port {}: {e}", ep.sim_ssh))?;
    // The agent logging in and running a command is the real test of the sim.
    let channel = rds_bus::connect(&ep.agent, opts()).map_err(|e| e.to_string())?;
    let probe = AgentClient::new(channel)
        .probe(ProbeRequest {})
        .await
        .map_err(|s| format!("rds-agent Probe: {}: {}", s.code(), s.message()))?
        .into_inner();
    if probe.reachable {
        Ok(())
    } else {
        Err(format!("rds-agent cannot reach it: {}", probe.detail))
    }
}

async fn csi_ready(ep: &Endpoints) -> Result<(), String> {
    grpc_health(&ep.csi, "csi.v1.Identity").await?;
    let channel = rds_bus::connect(&ep.csi, opts()).map_err(|e| e.to_string())?;
    let probe = IdentityClient::new(channel)
        .probe(rds_proto::csi::v1::ProbeRequest {})
        .await
        .map_err(|s| format!("CSI Probe: {}: {}", s.code(), s.message()))?
        .into_inner();
    match probe.ready {
        Some(false) => Err("CSI Probe: not ready".into()),
        _ => Ok(()),
    }
}

/// Checks one service; `Err` says why it is not ready yet.
pub async fn check(service: &str, ep: &Endpoints) -> Result<(), String> {
    match service {
        "rds-sim" => sim_ready(ep).await,
        "event-service" => grpc_health(&ep.events, "rds.event.v1.Events").await,
        "attachment-service" => grpc_health(&ep.attachment, "rds.attachment.v1.Attachments").await,
        "rds-agent" => grpc_health(&ep.agent, "rds.agent.v1.Agent").await,
        "csi-frontend" => csi_ready(ep).await,
        other => Err(format!("unknown service {other}")),
    }
}

/// Polls every service until all are ready; `Err` lists those that are not
/// when `deadline` passes.
pub async fn wait_all(
    services: &[&str],
    ep: &Endpoints,
    deadline: Duration,
) -> Result<(), Vec<(String, String)>> {
    let until = Instant::now() + deadline;
    let mut pending: Vec<String> = services.iter().map(|s| (*s).to_owned()).collect();
    loop {
        let results = futures::future::join_all(pending.iter().map(|s| check(s, ep))).await;
        let failed: Vec<(String, String)> = pending
            .iter()
            .zip(results)
            .filter_map(|(s, r)| r.err().map(|why| (s.clone(), why)))
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(failed);
        }
        pending = failed.into_iter().map(|(s, _)| s).collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
