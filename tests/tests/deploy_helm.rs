//! The Helm chart (deploy/helm/rds-csi) and the monitoring kit
//! (deploy/components/monitoring), checked by the Python scripts
//! deploy/tests/test_helm.py and test_monitoring.py, so that the README's
//! test command (`./test`) runs them.
//!
//! They need `python3` with helm-python-sdk (Helm v4 as a library: real Helm
//! renders and lints the chart, offline), kubernetes-validate, jsonschema and
//! pyyaml — `./test` installs them in its virtualenv — and `kubectl` (the
//! kustomize render the chart must equal). A script prints one line per
//! check and exits non-zero if any failed; its whole output is shown then.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent: the repository root")
        .to_path_buf()
}

fn run(script: &str) {
    let root = repo_root();
    let path = root.join("deploy/tests").join(script);
    let out = Command::new("python3")
        .arg(&path)
        .current_dir(&root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot start python3 for {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let hint = if stderr.contains("ModuleNotFoundError") || stderr.contains("helm-python-sdk") {
        "\nhint: run ./test (it installs the deploy checks' Python packages), or \
         pip install helm-python-sdk==0.2.2 kubernetes-validate jsonschema pyyaml"
    } else {
        ""
    };
    assert!(
        out.status.success(),
        "deploy/tests/{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}{hint}",
        out.status
    );
    println!("{stdout}");
}

#[test]
fn helm_chart_renders_lints_validates_and_equals_the_prod_overlay() {
    run("test_helm.py");
}

#[test]
fn monitoring_dashboard_parses_and_prometheus_rule_validates() {
    run("test_monitoring.py");
}
