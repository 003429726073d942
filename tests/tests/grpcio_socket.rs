//! The CSI unix socket accepts clients that send the socket path as the
//! HTTP/2 `:authority` (Python grpcio does; grpc-go sends `localhost`).
//! Tools users script against the socket must just work.

use std::process::Command;

use integration_tests::Stack;

const CLIENT: &str = r#"
import sys, grpc
ch = grpc.insecure_channel(sys.argv[1])
call = ch.unary_unary("/csi.v1.Identity/GetPluginInfo",
                      request_serializer=lambda x: x, response_deserializer=lambda x: x)
reply = call(b"", timeout=10)
print("ok", len(reply))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn python_grpcio_can_call_the_csi_socket() {
    let have_grpcio = Command::new("python3")
        .args(["-c", "import grpc"])
        .status()
        .is_ok_and(|s| s.success());
    if !have_grpcio {
        eprintln!("SKIPPED: python3 with grpcio is not installed (pip install grpcio)");
        return;
    }
    let stack = Stack::start().await.expect("stack");
    let endpoint = stack.csi_endpoint.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", CLIENT, &endpoint])
            .output()
            .expect("python3")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.starts_with("ok"),
        "grpcio client failed: {stdout}\n{stderr}"
    );
}
