//! The deploy/ checks (kustomize manifests, RBAC, Dockerfiles, Tiltfile), so
//! that the one test command `cargo nextest run --workspace` runs them.
//!
//! Each check is a Python script in deploy/tests/ (they need `python3` with
//! the packages kubernetes-validate, jsonschema, starlark-pyo3 and pyyaml, and
//! `kubectl` with its built-in kustomize). A script prints one line per check
//! and exits non-zero if any failed; its whole output is shown on failure.
//!
//! The scripts that run our binaries find them next to this test binary's
//! profile directory (`<target>/<profile>/`, passed as RDS_CSI_BIN_DIR):
//! `cargo nextest run --workspace` builds every service binary there first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent: the repository root")
        .to_path_buf()
}

/// `<target>/<profile>`: this test runs as `<target>/<profile>/deps/deploy-<hash>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the running test binary");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

fn run(script: &str) {
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
        "\nhint: pip install kubernetes-validate jsonschema starlark-pyo3 pyyaml"
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

#[test]
fn kustomize_renders_and_every_object_validates_against_its_schema() {
    run("test_render.py");
}

#[test]
fn our_binaries_accept_every_arg_and_env_var_the_manifests_give_them() {
    run("test_args.py");
}

#[test]
fn rbac_grants_exactly_the_verbs_the_code_uses() {
    run("test_rbac.py");
}

#[test]
fn tiltfile_evaluates_and_declares_images_overlay_and_port_forwards() {
    run("test_tiltfile.py");
}

#[test]
fn dockerfiles_match_the_workspace_and_the_manifests() {
    run("test_dockerfiles.py");
}

#[test]
fn kubevirt_examples_validate_against_their_schemas() {
    run("test_kubevirt.py");
}

#[test]
fn storage_fencing_component_adds_exactly_the_fencing_flags() {
    run("test_storage_fencing.py");
}
