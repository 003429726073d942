//! `rdsctl info` exits non-zero (6) when the plugin's Probe says not ready,
//! and 0 when it is ready: a minimal CSI Identity server over TCP answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rds_proto::csi::v1 as csi;
use rds_proto::csi::v1::identity_server::{Identity, IdentityServer};
use tonic::{Request, Response, Status};

struct Plugin {
    ready: bool,
}

#[tonic::async_trait]
impl Identity for Plugin {
    async fn get_plugin_info(
        &self,
        _: Request<csi::GetPluginInfoRequest>,
    ) -> Result<Response<csi::GetPluginInfoResponse>, Status> {
        Ok(Response::new(csi::GetPluginInfoResponse {
            name: "rds.csi.srvlab.io".into(),
            vendor_version: "test".into(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _: Request<csi::GetPluginCapabilitiesRequest>,
    ) -> Result<Response<csi::GetPluginCapabilitiesResponse>, Status> {
        Ok(Response::new(csi::GetPluginCapabilitiesResponse {
            capabilities: Vec::new(),
        }))
    }

    async fn probe(
        &self,
        _: Request<csi::ProbeRequest>,
    ) -> Result<Response<csi::ProbeResponse>, Status> {
        Ok(Response::new(csi::ProbeResponse {
            ready: Some(self.ready),
        }))
    }
}

async fn info_against(ready: bool) -> std::process::Output {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IdentityServer::new(Plugin { ready }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rdsctl"))
        .args([
            "info",
            "--endpoint",
            &format!("tcp://{addr}"),
            "--timeout",
            "10s",
        ])
        .output()
        .await
        .unwrap();
    server.abort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn info_exits_6_when_the_plugin_is_not_ready() {
    let out = info_against(false).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(6), "{text}");
    assert!(
        text.contains("ready: false") && text.contains("not ready"),
        "{text}"
    );
    let out = info_against(true).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
