//! Runs one of the deploy/ checks (a Python script in deploy/tests/) from a
//! Rust test, so the README's test command (`./test`) runs it. A script prints
//! one line per check and exits non-zero if any failed; its whole output is
//! shown then. Shared by `tests/deploy.rs` and `tests/deploy_helm.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (this crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// `<target>/<profile>`: a test runs as `<target>/<profile>/deps/<name>-<hash>`,
/// and `cargo nextest run --workspace` builds every service binary there; the
/// scripts that run our binaries find them through RDS_CSI_BIN_DIR.
pub fn profile_dir() -> PathBuf {
    let exe =
        std::env::current_exe().unwrap_or_else(|e| panic!("path of the running test binary: {e}"));
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| {
            panic!(
                "test binary {} is not in <target>/<profile>/deps",
                exe.display()
            )
        })
        .to_path_buf()
}

/// Runs `deploy/tests/<script>` and panics with its output if it failed.
pub fn run_deploy_check(script: &str) {
    let root = repo_root();
    let path = root.join("deploy/tests").join(script);
    let out = Command::new("python3")
        .arg(&path)
        .current_dir(&root)
        .env("RDS_CSI_BIN_DIR", profile_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot start python3 for {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let hint = if stderr.contains("ModuleNotFoundError") {
        "\nhint: run ./test (it installs the deploy checks' pinned Python packages in its \
         virtualenv: kubernetes-validate, jsonschema, starlark-pyo3, pyyaml, helm-python-sdk)"
    } else {
        ""
    };
    assert!(
        out.status.success(),
        "deploy/tests/{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}{hint}",
        out.status
    );
    // Passing output stays visible with --nocapture / nextest --success-output.
    println!("{stdout}");
}
