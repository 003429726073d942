//! `rdsctl demo` as a user runs it: exit 0, every step printed with its
//! duration (and trace id for CSI calls). As root the node steps run on real
//! loop devices; otherwise they must be reported as skipped, with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rdsctl");

#[test]
fn demo_walks_one_volume_through_its_life() {
    let out = Command::new(BIN)
        .args(["demo"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The timings are part of the closing note: keep them in the test output.
    println!("{stdout}");
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");

    let root = nix::unistd::geteuid().is_root();
    let line = |needle: &str| -> String {
        stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no step {needle:?} in:\n{stdout}"))
            .to_owned()
    };
    let traced = |needle: &str| {
        let l = line(needle);
        assert!(l.contains(" ok "), "{needle} not ok: {l}");
        assert!(
            l.contains(" ms") || l.contains(" s"),
            "{needle} has no duration: {l}"
        );
        let trace = l
            .split("trace ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .unwrap_or("");
        assert_eq!(trace.len(), 32, "{needle}: no trace id in {l}");
        assert!(trace.chars().all(|c| c.is_ascii_hexdigit()), "{l}");
    };
    line("start the stack");
    for step in [
        "CreateVolume demo-",
        "ControllerPublishVolume demo-",
        "CreateSnapshot",
        "ControllerExpandVolume",
        "ControllerUnpublishVolume demo-",
        "from the snapshot",
        "DeleteSnapshot",
        "DeleteVolume demo-",
    ] {
        traced(step);
    }
    assert!(line("events.jsonl has VolumeAttached").contains(" ok "));
    assert!(line("stop the stack").contains(" ok "));
    if root {
        for step in [
            "NodeStageVolume demo-",
            "NodePublishVolume demo-",
            "NodeUnpublishVolume demo-",
            "NodeUnstageVolume demo-",
        ] {
            traced(step);
        }
        assert!(line("on the mounted volume").contains(" ok "));
        assert!(line("on the restored volume").contains(" ok "));
        assert!(!stdout.contains("skipped: needs root"), "{stdout}");
    } else {
        traced("NodeStageVolume without root");
        assert!(line("NodePublishVolume").contains("skipped: needs root"));
        assert!(line("restored backing file holds the written data").contains(" ok "));
    }
    assert!(stdout.contains(" failed, "), "no summary: {stdout}");
    assert!(stdout.contains("0 failed"), "{stdout}");
}
