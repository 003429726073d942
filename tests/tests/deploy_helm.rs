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

use integration_tests::deploy_checks::run_deploy_check as run;

#[test]
fn helm_chart_renders_lints_validates_and_equals_the_prod_overlay() {
    run("test_helm.py");
}

#[test]
fn monitoring_dashboard_parses_and_prometheus_rule_validates() {
    run("test_monitoring.py");
}
