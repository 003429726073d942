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

use integration_tests::deploy_checks::run_deploy_check as run;

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
