//! The monitoring kit (deploy/components/monitoring: the Grafana dashboard
//! and the PrometheusRule; the Helm chart renders the same files) against
//! the real services:
//!
//! - every panel query and alert expression parses as PromQL
//!   (promql-parser), and names at least one metric;
//! - every metric they name is served: `rdsctl demo --metrics-dir` walks one
//!   volume through its life on a local stack and then saves each service's
//!   `/metrics`; each name must be a `# TYPE` family there (or one of its
//!   samples: `_total` of a counter, `_bucket`/`_sum`/`_count` of a
//!   histogram).
//!
//! The rdsctl binary comes from this test's profile directory
//! (`cargo nextest run --workspace` builds it; or `cargo build -p rdsctl`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use promql_parser::parser::{self, Expr};
use serde_json::Value;

const SERVICES: [&str; 4] = [
    "attachment-service",
    "csi-frontend",
    "event-service",
    "rds-agent",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// (where, expression) of every dashboard target and every alert.
fn expressions() -> Vec<(String, String)> {
    let kit = repo_root().join("deploy/components/monitoring");
    let mut out = Vec::new();
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(kit.join("rds-csi-dashboard.json")).unwrap())
            .expect("the dashboard is JSON");
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push((
                    format!("panel {:?} {}", p["title"], t["refId"]),
                    t["expr"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            walk(&p["panels"], out);
        }
    }
    walk(&dash["panels"], &mut out);
    let rule: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(kit.join("prometheusrule.yaml")).unwrap())
            .expect("the PrometheusRule is YAML");
    for g in rule["spec"]["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            out.push((
                format!("alert {}", r["alert"]),
                r["expr"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    out
}

/// Metric names a parsed expression selects.
fn metric_names(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Aggregate(a) => {
            metric_names(&a.expr, out);
            if let Some(p) = &a.param {
                metric_names(p, out);
            }
        }
        Expr::Unary(u) => metric_names(&u.expr, out),
        Expr::Binary(b) => {
            metric_names(&b.lhs, out);
            metric_names(&b.rhs, out);
        }
        Expr::Paren(p) => metric_names(&p.expr, out),
        Expr::Subquery(s) => metric_names(&s.expr, out),
        Expr::VectorSelector(v) => out.extend(v.name.clone()),
        Expr::MatrixSelector(m) => out.extend(m.vs.name.clone()),
        Expr::Call(c) => c.args.args.iter().for_each(|a| metric_names(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// `# TYPE <family> <type>` lines of an exposition.
fn type_families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}

/// Whether `name` is a family or one of its sample names.
fn served(name: &str, families: &BTreeMap<String, String>) -> bool {
    if families.contains_key(name) {
        return true;
    }
    families.iter().any(|(fam, ty)| {
        let suffixes: &[&str] = match ty.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "summary" => &["_sum", "_count", "_created"],
            _ => &[],
        };
        suffixes.iter().any(|s| format!("{fam}{s}") == name)
    })
}

fn parsed() -> BTreeMap<String, BTreeSet<String>> {
    let exprs = expressions();
    assert!(exprs.len() > 20, "too few expressions found: {exprs:?}");
    let mut bad = Vec::new();
    let mut names = BTreeMap::new();
    for (at, e) in &exprs {
        match parser::parse(e) {
            Ok(ast) => {
                let mut n = BTreeSet::new();
                metric_names(&ast, &mut n);
                if n.is_empty() {
                    bad.push(format!("{at}: names no metric: {e}"));
                }
                for m in n {
                    names
                        .entry(m)
                        .or_insert_with(BTreeSet::new)
                        .insert(at.clone());
                }
            }
            Err(why) => bad.push(format!("{at}: {why}\n    {e}")),
        }
    }
    assert!(bad.is_empty(), "PromQL problems:\n{}", bad.join("\n"));
    names
}

#[test]
fn every_dashboard_query_and_alert_expression_parses() {
    let names = parsed();
    println!("{} metric names used: {:?}", names.len(), names.keys());
    // The parser can fail: an unclosed call and a bad range are refused.
    assert!(parser::parse("sum(rate(rds_csi_rds_commands_total[5m])").is_err());
    assert!(parser::parse("rate(rds_csi_rds_commands_total[5x])").is_err());
}

#[test]
fn every_metric_of_the_kit_is_served_after_a_demo_walk() {
    let names = parsed();
    let rdsctl = profile_dir().join("rdsctl");
    assert!(
        rdsctl.is_file(),
        "{} not found: build it first (`cargo build -p rdsctl`; `cargo nextest run --workspace` does)",
        rdsctl.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("metrics");
    let out = Command::new(&rdsctl)
        .args(["demo", "--size", "64Mi", "--metrics-dir"])
        .arg(&dir)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rdsctl demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all = BTreeMap::new();
    let mut text = BTreeMap::new();
    for s in SERVICES {
        let t = std::fs::read_to_string(dir.join(format!("{s}.prom")))
            .unwrap_or_else(|e| panic!("{s}: no /metrics saved: {e}\n{stdout}"));
        let fams = type_families(&t);
        println!("{s}: {} metric families", fams.len());
        assert!(!fams.is_empty(), "{s} served no # TYPE line:\n{t}");
        all.extend(fams);
        text.insert(s, t);
    }
    let missing: Vec<String> = names
        .iter()
        .filter(|(n, _)| !served(n, &all))
        .map(|(n, at)| {
            format!(
                "{n} (used by {})",
                at.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "metrics in the dashboard/alerts that no service serves:\n{}\nserved: {:?}",
        missing.join("\n"),
        all.keys()
    );
    // The check can fail: a name no service has is not "served".
    assert!(!served("rds_csi_no_such_metric_total", &all));
    assert!(
        !served("rds_csi_rds_circuit_open_total", &all),
        "a gauge has no _total"
    );
    // The scrape came after the walk: it counted the walk's work.
    let sample = |svc: &str, prefix: &str| -> f64 {
        text[svc]
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(
        sample(
            "attachment-service",
            "rds_csi_attachment_attach_total{status=\"success\"}"
        ) >= 1.0,
        "no successful attach counted:\n{}",
        text["attachment-service"]
    );
    assert!(
        sample("rds-agent", "rds_csi_rds_commands_total{") >= 1.0,
        "no RouterOS command counted:\n{}",
        text["rds-agent"]
    );
    assert!(
        sample("rds-agent", "rds_csi_rds_sessions_max ") >= 1.0,
        "the session bound is not exported:\n{}",
        text["rds-agent"]
    );
}
