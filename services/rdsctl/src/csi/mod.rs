//! A CSI client over any endpoint (`unix:///path` or `tcp://host:port`).
//! Every call runs in its own client span (a fresh trace, see [`crate::trace`])
//! with a deadline, and reports its trace id and duration with the result.

pub mod requests;
pub mod views;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rds_bus::{BusChannel, ClientOptions};
use rds_proto::csi::v1 as csi;
use rds_proto::csi::v1::controller_client::ControllerClient;
use rds_proto::csi::v1::identity_client::IdentityClient;
use rds_proto::csi::v1::node_client::NodeClient;

use crate::error::{CtlError, Result};
use crate::trace::ClientTracer;

/// What one call produced: its result, trace id and duration.
pub struct Traced<T> {
    pub result: Result<T>,
    pub trace_id: String,
    pub elapsed: Duration,
}

impl<T> Traced<T> {
    /// Just the result (for commands that do not print timings).
    pub fn into_result(self) -> Result<T> {
        self.result
    }
}

#[derive(Clone)]
pub struct Csi {
    endpoint: String,
    identity: IdentityClient<BusChannel>,
    controller: ControllerClient<BusChannel>,
    node: NodeClient<BusChannel>,
    tracer: Arc<ClientTracer>,
    timeout: Duration,
}

macro_rules! csi_call {
    ($(#[$doc:meta])* $fn:ident, $client:ident, $method:ident, $name:literal, $req:ty, $resp:ty) => {
        $(#[$doc])*
        pub async fn $fn(&self, req: $req) -> Traced<$resp> {
            let mut c = self.$client.clone();
            self.call($name, req, |r| async move { c.$method(r).await }).await
        }
    };
}

impl Csi {
    /// Lazily connected: an unreachable endpoint shows on the first call.
    pub fn connect(endpoint: &str, timeout: Duration, tracer: Arc<ClientTracer>) -> Result<Csi> {
        let endpoint = normalize_endpoint(endpoint)?;
        let channel = rds_bus::connect(
            &endpoint,
            ClientOptions {
                connect_timeout: Duration::from_secs(5).min(timeout),
                request_timeout: timeout,
            },
        )
        .map_err(|e| CtlError::Connect {
            endpoint: endpoint.clone(),
            why: e.to_string(),
        })?;
        Ok(Csi {
            endpoint,
            identity: IdentityClient::new(channel.clone()),
            controller: ControllerClient::new(channel.clone()),
            node: NodeClient::new(channel),
            tracer,
            timeout,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn call<Req, Resp, F, Fut>(&self, name: &'static str, req: Req, f: F) -> Traced<Resp>
    where
        F: FnOnce(tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let span = self.tracer.start(&format!("csi.{name}"));
        span.set_attribute("rpc.method", name.to_owned());
        let trace_id = span.trace_id();
        let mut request = tonic::Request::new(req);
        request.set_timeout(self.timeout);
        span.inject(&mut request);
        let started = Instant::now();
        let outcome = f(request).await;
        let elapsed = started.elapsed();
        let result = match outcome {
            Ok(resp) => {
                span.end(None);
                Ok(resp.into_inner())
            }
            Err(status) => {
                span.end(Some(status.message()));
                Err(CtlError::rpc(name, &status))
            }
        };
        Traced {
            result,
            trace_id,
            elapsed,
        }
    }

    csi_call!(
        plugin_info,
        identity,
        get_plugin_info,
        "GetPluginInfo",
        csi::GetPluginInfoRequest,
        csi::GetPluginInfoResponse
    );
    csi_call!(
        plugin_capabilities,
        identity,
        get_plugin_capabilities,
        "GetPluginCapabilities",
        csi::GetPluginCapabilitiesRequest,
        csi::GetPluginCapabilitiesResponse
    );
    csi_call!(
        probe,
        identity,
        probe,
        "Probe",
        csi::ProbeRequest,
        csi::ProbeResponse
    );
    csi_call!(
        create_volume,
        controller,
        create_volume,
        "CreateVolume",
        csi::CreateVolumeRequest,
        csi::CreateVolumeResponse
    );
    csi_call!(
        delete_volume,
        controller,
        delete_volume,
        "DeleteVolume",
        csi::DeleteVolumeRequest,
        csi::DeleteVolumeResponse
    );
    csi_call!(
        list_volumes,
        controller,
        list_volumes,
        "ListVolumes",
        csi::ListVolumesRequest,
        csi::ListVolumesResponse
    );
    csi_call!(
        expand_volume,
        controller,
        controller_expand_volume,
        "ControllerExpandVolume",
        csi::ControllerExpandVolumeRequest,
        csi::ControllerExpandVolumeResponse
    );
    csi_call!(
        controller_publish,
        controller,
        controller_publish_volume,
        "ControllerPublishVolume",
        csi::ControllerPublishVolumeRequest,
        csi::ControllerPublishVolumeResponse
    );
    csi_call!(
        controller_unpublish,
        controller,
        controller_unpublish_volume,
        "ControllerUnpublishVolume",
        csi::ControllerUnpublishVolumeRequest,
        csi::ControllerUnpublishVolumeResponse
    );
    csi_call!(
        controller_capabilities,
        controller,
        controller_get_capabilities,
        "ControllerGetCapabilities",
        csi::ControllerGetCapabilitiesRequest,
        csi::ControllerGetCapabilitiesResponse
    );
    csi_call!(
        create_snapshot,
        controller,
        create_snapshot,
        "CreateSnapshot",
        csi::CreateSnapshotRequest,
        csi::CreateSnapshotResponse
    );
    csi_call!(
        delete_snapshot,
        controller,
        delete_snapshot,
        "DeleteSnapshot",
        csi::DeleteSnapshotRequest,
        csi::DeleteSnapshotResponse
    );
    csi_call!(
        list_snapshots,
        controller,
        list_snapshots,
        "ListSnapshots",
        csi::ListSnapshotsRequest,
        csi::ListSnapshotsResponse
    );
    csi_call!(
        node_stage,
        node,
        node_stage_volume,
        "NodeStageVolume",
        csi::NodeStageVolumeRequest,
        csi::NodeStageVolumeResponse
    );
    csi_call!(
        node_unstage,
        node,
        node_unstage_volume,
        "NodeUnstageVolume",
        csi::NodeUnstageVolumeRequest,
        csi::NodeUnstageVolumeResponse
    );
    csi_call!(
        node_publish,
        node,
        node_publish_volume,
        "NodePublishVolume",
        csi::NodePublishVolumeRequest,
        csi::NodePublishVolumeResponse
    );
    csi_call!(
        node_unpublish,
        node,
        node_unpublish_volume,
        "NodeUnpublishVolume",
        csi::NodeUnpublishVolumeRequest,
        csi::NodeUnpublishVolumeResponse
    );
    csi_call!(
        node_expand,
        node,
        node_expand_volume,
        "NodeExpandVolume",
        csi::NodeExpandVolumeRequest,
        csi::NodeExpandVolumeResponse
    );
    csi_call!(
        node_info,
        node,
        node_get_info,
        "NodeGetInfo",
        csi::NodeGetInfoRequest,
        csi::NodeGetInfoResponse
    );
    csi_call!(
        node_capabilities,
        node,
        node_get_capabilities,
        "NodeGetCapabilities",
        csi::NodeGetCapabilitiesRequest,
        csi::NodeGetCapabilitiesResponse
    );

    /// Every volume, following `next_token` until the end (bounded).
    pub async fn all_volumes(&self) -> Result<Vec<csi::list_volumes_response::Entry>> {
        let mut out = Vec::new();
        let mut token = String::new();
        // A server that never ends its pages must not hang the CLI.
        for _ in 0..10_000 {
            let page = self
                .list_volumes(csi::ListVolumesRequest {
                    max_entries: 0,
                    starting_token: token.clone(),
                })
                .await
                .into_result()?;
            out.extend(page.entries);
            if page.next_token.is_empty() {
                return Ok(out);
            }
            token = page.next_token;
        }
        Err(CtlError::Stack(
            "ListVolumes never returned a last page".into(),
        ))
    }

    /// Every snapshot matching the filters, following `next_token`.
    pub async fn all_snapshots(
        &self,
        snapshot_id: &str,
        source_volume_id: &str,
    ) -> Result<Vec<csi::Snapshot>> {
        let mut out = Vec::new();
        let mut token = String::new();
        for _ in 0..10_000 {
            let page = self
                .list_snapshots(csi::ListSnapshotsRequest {
                    max_entries: 0,
                    starting_token: token.clone(),
                    source_volume_id: source_volume_id.to_owned(),
                    snapshot_id: snapshot_id.to_owned(),
                    secrets: Default::default(),
                })
                .await
                .into_result()?;
            out.extend(page.entries.into_iter().filter_map(|e| e.snapshot));
            if page.next_token.is_empty() {
                return Ok(out);
            }
            token = page.next_token;
        }
        Err(CtlError::Stack(
            "ListSnapshots never returned a last page".into(),
        ))
    }
}

/// Accepts `unix:///abs`, `/abs/path.sock` (a unix socket), `tcp://h:p`, `h:p`.
pub fn normalize_endpoint(endpoint: &str) -> Result<String> {
    let e = endpoint.trim();
    if let Some(path) = e.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(CtlError::Usage(format!(
                "endpoint {e:?}: a unix socket path must be absolute (unix:///path)"
            )));
        }
        return Ok(e.to_owned());
    }
    if e.starts_with('/') {
        return Ok(format!("unix://{e}"));
    }
    let hostport = e
        .strip_prefix("tcp://")
        .or_else(|| e.strip_prefix("http://"))
        .unwrap_or(e);
    if hostport
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    {
        return Ok(format!("tcp://{hostport}"));
    }
    Err(CtlError::Usage(format!(
        "endpoint {e:?}: expected unix:///path, /path, tcp://host:port or host:port"
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn endpoints_normalize() {
        assert_eq!(
            normalize_endpoint("unix:///tmp/x.sock").unwrap(),
            "unix:///tmp/x.sock"
        );
        assert_eq!(
            normalize_endpoint("/tmp/x.sock").unwrap(),
            "unix:///tmp/x.sock"
        );
        assert_eq!(
            normalize_endpoint("127.0.0.1:5000").unwrap(),
            "tcp://127.0.0.1:5000"
        );
        assert_eq!(normalize_endpoint("tcp://h:1").unwrap(), "tcp://h:1");
        assert!(normalize_endpoint("unix://relative").is_err());
        assert!(normalize_endpoint("nonsense").is_err());
        assert!(normalize_endpoint("h:port").is_err());
    }
}
