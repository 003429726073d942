//! The operator commands against rds-sim (real SSH) and the test kit's fake
//! Kubernetes API: `doctor` with each fault, `orphans` with planted leftovers,
//! `attachments` with a planted mismatch, completion scripts. Each test runs the
//! real `rdsctl` binary; the sim and the fake API run in the test process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, Pod};
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode, VolumeAttachment};
use rds_testkit::FakeApi;
use rds_testkit::kube::ResourceType;
use rds_testkit::kube::objects::{self, DRIVER};
use rds_testkit::kube::proxy::ProxyReply;
use russh::keys::PrivateKey;
use russh::keys::ssh_key::private::Ed25519Keypair;
use serde_json::{Value, json};

mod support;
use support::{Env, check, rdsctl, sim_env};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// The node plugin's metrics port in these pod specs (named like
/// deploy/base/node.yaml's, on another number so doctor must read the name).
const NODE_METRICS_PORT: u16 = 19809;

/// A node plugin `/metrics` page with the nvme_tcp gauge at `v`.
fn node_page(v: u8) -> ProxyReply {
    ProxyReply::metrics(format!(
        "# HELP rds_csi_orphans_cleaned Orphans.\n# TYPE rds_csi_orphans_cleaned counter\n\
         rds_csi_orphans_cleaned_total 0\n# HELP rds_csi_node_nvme_tcp_loaded 1 when loaded.\n\
         # TYPE rds_csi_node_nvme_tcp_loaded gauge\nrds_csi_node_nvme_tcp_loaded {v}\n# EOF\n"
    ))
}

/// A ready node plugin pod on `node` (its metrics port named `metrics-node`).
fn node_pod(node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("rds-csi-node-{node}"), "namespace": "rds-csi",
            "labels": {"app.kubernetes.io/name": "rds-csi", "app.kubernetes.io/component": "node"}},
        "spec": {"nodeName": node, "containers": [
            {"name": "csi-frontend", "image": "rds-csi/csi-frontend:0.1.0",
             "ports": [{"name": "healthz", "containerPort": 9808},
                       {"name": "metrics-node", "containerPort": NODE_METRICS_PORT}]},
            {"name": "node-driver-registrar",
             "image": "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.14.0"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
}

/// A cluster where everything is in place: CSIDriver, a ready controller pod
/// with its sidecars, a ready node pod on n1, n1's CSINode, and n1's node
/// plugin reporting nvme_tcp loaded on its `/metrics` (via the pod proxy).
async fn healthy_cluster() -> FakeApi {
    let api = FakeApi::start().await;
    api.register(ResourceType::of::<CSIDriver>());
    api.put_value::<CSIDriver>(
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
        "metadata": {"name": DRIVER}, "spec": {"attachRequired": true}}),
    );
    api.put_value::<Node>(objects::node("n1"));
    api.put_value::<CSINode>(objects::csinode("n1", &[(DRIVER, "n1")]));
    let ready = json!({"conditions": [{"type": "Ready", "status": "True"}]});
    let container = |name: &str, image: &str| json!({"name": name, "image": image});
    api.put_value::<Pod>(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "rds-csi-controller-0", "namespace": "rds-csi",
            "labels": {"app.kubernetes.io/name": "rds-csi", "app.kubernetes.io/component": "controller"}},
        "spec": {"nodeName": "n1", "containers": [
            container("csi-frontend", "rds-csi/csi-frontend:0.1.0"),
            container("csi-provisioner", "registry.k8s.io/sig-storage/csi-provisioner:v5.3.0"),
            container("csi-attacher", "registry.k8s.io/sig-storage/csi-attacher:v4.9.0"),
            container("csi-resizer", "registry.k8s.io/sig-storage/csi-resizer:v1.14.0")]},
        "status": ready}));
    api.put_value::<Pod>(node_pod("n1"));
    api.set_pod_proxy(
        "rds-csi",
        "rds-csi-node-n1",
        NODE_METRICS_PORT,
        "/metrics",
        node_page(1),
    );
    api
}

fn kube_args(api: &FakeApi, dir: &Path) -> Vec<String> {
    vec![
        "--kubeconfig".into(),
        api.kubeconfig(dir).display().to_string(),
        "--kube-timeout".into(),
        "5s".into(),
    ]
}

async fn doctor(env: &Env, api: &FakeApi, extra: &[String]) -> (Output, String, Value) {
    // A flag in `extra` replaces the default one (every RDS flag takes a value).
    let mut args = s(&["doctor"]);
    for pair in env.rds_args().chunks(2) {
        if !extra.contains(&pair[0]) {
            args.extend(pair.iter().cloned());
        }
    }
    args.extend(kube_args(api, env.dir.path()));
    args.extend(extra.iter().cloned());
    let (out, text) = rdsctl(&args).await;
    let mut jargs = args.clone();
    jargs.extend(s(&["-o", "json"]));
    let (jout, _) = rdsctl(&jargs).await;
    assert_eq!(out.status.code(), jout.status.code(), "{text}");
    (out, text, json_of(&jout))
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_passes_on_a_healthy_sim_and_cluster() {
    let env = sim_env(|_| {}).await;
    let api = healthy_cluster().await;
    let (out, text, report) = doctor(&env, &api, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(report["worst"], "pass", "{report:#}");
    for name in [
        "ssh",
        "host-key",
        "routeros-version",
        "rose-storage",
        "pool",
        "base-paths",
        "ssh-sessions",
        "csidriver",
        "controller-pods",
        "node-pods",
        "csinode/n1",
        "nvme-tcp/n1",
        "sidecars",
    ] {
        assert_eq!(check(&report, name)["status"], "pass", "{name}: {report:#}");
    }
    assert!(
        check(&report, "pool")["detail"]
            .as_str()
            .unwrap()
            .contains("fs=btrfs")
    );
    assert!(
        check(&report, "sidecars")["detail"]
            .as_str()
            .unwrap()
            .contains("csi-provisioner v5.3.0")
    );
    // YAML carries the same report.
    let mut args = s(&["doctor", "-o", "yaml"]);
    args.extend(env.rds_args());
    args.extend(kube_args(&api, env.dir.path()));
    let (yout, ytext) = rdsctl(&args).await;
    assert_eq!(yout.status.code(), Some(0), "{ytext}");
    assert!(
        ytext.contains("worst: pass") && ytext.contains("name: ssh-sessions"),
        "{ytext}"
    );
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_a_wrong_host_key_and_the_fix() {
    let env = sim_env(|_| {}).await;
    let api = healthy_cluster().await;
    // Someone else's key: pin a fingerprint the sim does not present.
    let other = PrivateKey::from(Ed25519Keypair::from_seed(&[9; 32]));
    let wrong = other
        .public_key()
        .fingerprint(Default::default())
        .to_string();
    let (out, text, report) = doctor(&env, &api, &s(&["--rds-host-key-fingerprint", &wrong])).await;
    assert_eq!(out.status.code(), Some(6), "{text}");
    let c = check(&report, "host-key");
    assert_eq!(c["status"], "fail", "{c}");
    let detail = c["detail"].as_str().unwrap();
    assert!(
        detail.contains(&env.sim.host_key_fingerprint()) && detail.contains(&wrong),
        "{c}"
    );
    assert!(c["fix"].as_str().unwrap().contains("update the pin"), "{c}");
    assert_eq!(check(&report, "ssh")["status"], "pass");
    assert_eq!(check(&report, "pool")["status"], "skip");
    assert!(
        text.contains("FAIL host-key: confirm the new key"),
        "{text}"
    );
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_a_missing_pool_and_base_path() {
    let env = sim_env(|_| {}).await;
    let api = healthy_cluster().await;
    let (out, text, report) = doctor(
        &env,
        &api,
        &s(&["--pool", "tank", "--base-path", "/tank/metal-csi"]),
    )
    .await;
    assert_eq!(out.status.code(), Some(6), "{text}");
    let pool = check(&report, "pool");
    assert_eq!(pool["status"], "fail");
    assert!(
        pool["detail"]
            .as_str()
            .unwrap()
            .contains("no disk is mounted at \"tank\""),
        "{pool}"
    );
    assert!(pool["fix"].as_str().unwrap().contains("--pool"), "{pool}");
    let base = check(&report, "base-paths");
    assert_eq!(base["status"], "fail");
    assert!(
        base["fix"]
            .as_str()
            .unwrap()
            .contains("/file add type=directory name=tank/metal-csi")
    );
    // The rest of the RDS is fine.
    assert_eq!(check(&report, "host-key")["status"], "pass");
    assert_eq!(check(&report, "rose-storage")["status"], "pass");
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_exhausted_ssh_sessions() {
    let env = sim_env(|c| c.behaviour.setup.ssh_max_sessions = 3).await;
    let api = healthy_cluster().await;
    // Two other logins hold sessions (e.g. the controller and a human).
    let args = <rds_agent::Args as clap::Parser>::try_parse_from(
        std::iter::once("rds-agent".to_owned()).chain(env.rds_args().into_iter().take(10)),
    )
    .unwrap()
    .validate()
    .unwrap();
    let holders = [
        rds_agent::inspect::Inspector::new(&args),
        rds_agent::inspect::Inspector::new(&args),
    ];
    for h in &holders {
        h.version().await.unwrap();
    }
    let (out, text, report) = doctor(&env, &api, &[]).await;
    assert_eq!(out.status.code(), Some(6), "{text}");
    let c = check(&report, "ssh-sessions");
    assert_eq!(c["status"], "fail", "{c}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("3 of max-sessions=3"),
        "{c}"
    );
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains("/ip service set ssh max-sessions="),
        "{c}"
    );
    // With one login closed there is a session left, but fewer than the
    // driver needs: a warning (exit 5).
    holders[0].close().await;
    let mut n = 0;
    let mut last = String::new();
    for _ in 0..50 {
        let (out, text, report) = doctor(&env, &api, &[]).await;
        last = text;
        if check(&report, "ssh-sessions")["status"] == "warn" {
            assert_eq!(out.status.code(), Some(5), "{last}");
            n += 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(n, 1, "{last}");
    holders[1].close().await;
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_an_rds_that_is_down() {
    let env = sim_env(|_| {}).await;
    let api = healthy_cluster().await;
    env.sim.clone().stop().await;
    let (out, text, report) = doctor(&env, &api, &[]).await;
    assert_eq!(out.status.code(), Some(6), "{text}");
    let c = check(&report, "ssh");
    assert_eq!(c["status"], "fail", "{c}");
    assert!(
        c["detail"].as_str().unwrap().contains("RDS_UNREACHABLE"),
        "{c}"
    );
    assert!(
        c["fix"].as_str().unwrap().contains("that the RDS is up"),
        "{c}"
    );
    for name in ["host-key", "pool", "ssh-sessions"] {
        assert_eq!(check(&report, name)["status"], "skip", "{name}");
    }
    // The cluster half still ran.
    assert_eq!(check(&report, "csidriver")["status"], "pass");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_cluster_faults_name_the_node() {
    let env = sim_env(|_| {}).await;
    let api = healthy_cluster().await;
    // n2: no node pod, no CSINode entry, nvme_tcp not reported.
    api.put_value::<Node>(objects::node("n2"));
    api.delete::<CSIDriver>(None, DRIVER);
    let (out, text, report) = doctor(&env, &api, &s(&["--no-rds"])).await;
    assert_eq!(out.status.code(), Some(6), "{text}");
    assert_eq!(check(&report, "csidriver")["status"], "fail");
    assert_eq!(check(&report, "csinode/n2")["status"], "fail");
    assert_eq!(check(&report, "nvme-tcp/n2")["status"], "warn");
    assert!(
        check(&report, "node-pods")["detail"]
            .as_str()
            .unwrap()
            .contains("no pod on n2")
    );
    assert_eq!(check(&report, "csinode/n1")["status"], "pass");
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reads_nvme_tcp_from_each_node_plugin_through_the_pod_proxy() {
    let env = sim_env(|_| {}).await;
    let api = healthy_cluster().await;
    // n1 reports 0; n2's page lacks the gauge; n3's pod never answers; n4's
    // proxy target is unreachable (nothing planted: 503). Each is bounded by
    // --kube-timeout (5s here) and asked in parallel.
    api.set_pod_proxy(
        "rds-csi",
        "rds-csi-node-n1",
        NODE_METRICS_PORT,
        "/metrics",
        node_page(0),
    );
    for n in ["n2", "n3", "n4"] {
        api.put_value::<Node>(objects::node(n));
        api.put_value::<CSINode>(objects::csinode(n, &[(DRIVER, n)]));
        api.put_value::<Pod>(node_pod(n));
    }
    api.set_pod_proxy(
        "rds-csi",
        "rds-csi-node-n2",
        NODE_METRICS_PORT,
        "/metrics",
        ProxyReply::metrics("rds_csi_orphans_cleaned_total 0\n"),
    );
    api.set_pod_proxy(
        "rds-csi",
        "rds-csi-node-n3",
        NODE_METRICS_PORT,
        "/metrics",
        ProxyReply::hang(),
    );
    let (out, text, report) = doctor(&env, &api, &s(&["--no-rds"])).await;
    assert_eq!(out.status.code(), Some(6), "{text}");
    let n1 = check(&report, "nvme-tcp/n1");
    assert_eq!(n1["status"], "fail", "{report:#}");
    assert!(
        n1["fix"].as_str().unwrap().contains("modprobe nvme_tcp"),
        "{n1}"
    );
    for n in ["n2", "n3", "n4"] {
        let c = check(&report, &format!("nvme-tcp/{n}"));
        assert_eq!(c["status"], "warn", "{n}: {c}");
        assert!(
            c["detail"].as_str().unwrap().starts_with("not reported"),
            "{c}"
        );
    }
    assert!(
        check(&report, "nvme-tcp/n3")["detail"]
            .as_str()
            .unwrap()
            .contains("no answer within 5s")
    );
    // n4: the API server answers 503 (kube's client retries that until the
    // deadline): still one bounded warn, not a hang.
    // What doctor asked: each node pod's metrics port through the proxy,
    // and nothing on the Node objects.
    let proxied: Vec<String> = api
        .calls()
        .into_iter()
        .filter(|c| c.subresource.as_deref() == Some("proxy"))
        .map(|c| c.uri)
        .collect();
    assert!(
        proxied.contains(&format!(
            "/api/v1/namespaces/rds-csi/pods/rds-csi-node-n1:{NODE_METRICS_PORT}/proxy/metrics"
        )),
        "{proxied:#?}"
    );
    env.sim.stop().await;
}

const A: &str = "pvc-aaaaaaaa-0000-0000-0000-000000000001";
const B: &str = "pvc-bbbbbbbb-0000-0000-0000-000000000002";
const C: &str = "pvc-cccccccc-0000-0000-0000-000000000003";
const D: &str = "pvc-dddddddd-0000-0000-0000-000000000004";
const M: &str = "pvc-eeeeeeee-0000-0000-0000-000000000005";
const F: &str = "pvc-ffffffff-0000-0000-0000-000000000006";

fn add_volume(slot: &str) -> String {
    format!(
        "/disk add type=file file-path=/storage-pool/metal-csi/{slot}.img file-size=1M slot={slot} \
         nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:{slot}"
    )
}

/// Runs `rdsctl <cmd>` against the simulator and the fake API server.
async fn run_against(env: &Env, api: &FakeApi, cmd: &[&str]) -> (Output, String) {
    let mut args = s(cmd);
    args.extend(env.rds_args());
    args.extend(kube_args(api, env.dir.path()));
    rdsctl(&args).await
}

/// `field` of every element of the array `r[key]`.
fn column<'a>(r: &'a Value, key: &str, field: &str) -> Vec<&'a str> {
    r[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[field].as_str().unwrap())
        .collect()
}

/// A: a volume with its PV. B: a volume no PV of ours references (orphan
/// disk). C: created then `/disk remove`d, which leaves the file (orphan
/// file). D: a PV whose disk is gone. Plus a snapshot and a disk of someone
/// else.
async fn plant_orphans(env: &Env, api: &FakeApi) {
    env.plant(&add_volume(A)).await;
    env.plant(&add_volume(B)).await;
    env.plant(&add_volume(C)).await;
    env.plant(&format!("/disk remove [find slot={C}]")).await;
    env.plant(&format!(
        "/disk add type=file file-path=/storage-pool/metal-csi/snap-1.from-{A}.img file-size=1M slot=snap-1"
    ))
    .await;
    env.plant(
        "/disk add type=file file-path=/storage-pool/nixos/root.img file-size=1M slot=nixos-root",
    )
    .await;
    api.put_value::<PersistentVolume>(objects::pv(
        "pv-a",
        A,
        &["ReadWriteOnce"],
        false,
        Some(("apps", "data")),
        DRIVER,
    ));
    api.put_value::<PersistentVolume>(objects::pv(
        "pv-d",
        D,
        &["ReadWriteOnce"],
        false,
        Some(("apps", "gone")),
        DRIVER,
    ));
    // Another driver's PV naming B does not make B referenced.
    api.put_value::<PersistentVolume>(objects::pv(
        "pv-x",
        B,
        &["ReadWriteOnce"],
        false,
        None,
        "other.csi.io",
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn orphans_finds_the_planted_disk_and_file_and_nothing_else() {
    let env = sim_env(|_| {}).await;
    let api = FakeApi::start().await;
    plant_orphans(&env, &api).await;

    let (out, text) = run_against(&env, &api, &["orphans", "--json"]).await;
    assert_eq!(out.status.code(), Some(5), "{text}");
    let r = json_of(&out);
    assert_eq!(column(&r, "orphan_disks", "slot"), [B], "{r:#}");
    let d = &r["orphan_disks"][0];
    assert_eq!(d["file_path"], format!("/storage-pool/metal-csi/{B}.img"));
    assert_eq!(d["size_bytes"], 1 << 20);
    assert!(d["age_seconds"].as_i64().unwrap() >= 0, "{d}");
    assert_eq!(
        column(&r, "orphan_files", "path"),
        [format!("/storage-pool/metal-csi/{C}.img")],
        "{r:#}"
    );
    assert_eq!(column(&r, "missing_disks", "pv"), ["pv-d"], "{r:#}");
    assert_eq!(r["missing_disks"][0]["pvc"], "apps/gone");
    assert_eq!(r["snapshots_not_judged"], 1);
    // Report only: everything is still there.
    assert!(
        env.sim
            .file_exists(&format!("/storage-pool/metal-csi/{C}.img"))
    );
    assert!(env.sim.disks().iter().any(|d| d.slot == B));
    // The table names the same things.
    let (out, text) = run_against(&env, &api, &["orphans"]).await;
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        text.contains("orphan disks (1)")
            && text.contains("orphan files (1)")
            && text.contains("missing disks (1)"),
        "{text}"
    );
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orphans_finds_nothing_when_rds_and_cluster_agree() {
    let env = sim_env(|_| {}).await;
    let api = FakeApi::start().await;
    env.plant(&add_volume(A)).await;
    api.put_value::<PersistentVolume>(objects::pv(
        "pv-a",
        A,
        &["ReadWriteOnce"],
        false,
        None,
        DRIVER,
    ));
    let mut args = s(&["orphans", "-o", "json"]);
    args.extend(env.rds_args());
    args.extend(kube_args(&api, env.dir.path()));
    let (out, text) = rdsctl(&args).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    let r = json_of(&out);
    assert_eq!(r["orphan_disks"], json!([]));
    assert_eq!(r["orphan_files"], json!([]));
    assert_eq!(r["missing_disks"], json!([]));
    env.sim.stop().await;
}

/// A: exported, held by n1 and n2 (a live migration). M: attached to n2,
/// but the RDS has no disk (the planted mismatch). F: exported with an allow
/// list admitting n9 (storage fencing), attached to n1. Returns n9's identity.
async fn plant_attachments(env: &Env, api: &FakeApi) -> rds_bus::HostIdentity {
    env.plant(&add_volume(A)).await;
    env.plant(&add_volume(F)).await;
    let n9 = rds_bus::HostIdentity::derive(
        &rds_bus::ClusterId::parse("c1").unwrap(),
        &rds_bus::NodeId::parse("n9").unwrap(),
    );
    env.plant(&format!(
        "/disk set [find slot={F}] nvme-tcp-server-allow-host-name={}",
        n9.host_nqn()
    ))
    .await;
    for (pv, h) in [("pv-a", A), ("pv-m", M), ("pv-f", F)] {
        api.put_value::<PersistentVolume>(objects::pv(
            pv,
            h,
            &["ReadWriteMany"],
            true,
            None,
            DRIVER,
        ));
    }
    for (va, pv, node, driver, since) in [
        ("va-a1", "pv-a", "n1", DRIVER, "2026-01-01T00:00:00Z"),
        ("va-a2", "pv-a", "n2", DRIVER, "2026-01-01T00:10:00Z"),
        ("va-m", "pv-m", "n2", DRIVER, "2026-01-01T00:00:00Z"),
        ("va-f", "pv-f", "n1", DRIVER, "2026-01-01T00:00:00Z"),
        ("va-o", "pv-a", "n3", "other.csi.io", "2026-01-01T00:00:00Z"),
    ] {
        api.put_value::<VolumeAttachment>(objects::va(va, pv, node, true, driver, since));
    }
    n9
}

#[tokio::test(flavor = "multi_thread")]
async fn attachments_shows_migration_windows_and_planted_mismatches() {
    let env = sim_env(|_| {}).await;
    let api = FakeApi::start().await;
    let n9 = plant_attachments(&env, &api).await;

    let cmd = ["attachments", "-o", "json", "--cluster-id", "c1"];
    let (out, text) = run_against(&env, &api, &cmd).await;
    assert_eq!(out.status.code(), Some(5), "{text}");
    let r = json_of(&out);
    let row = |pv: &str| {
        r["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["pv"] == pv)
            .cloned()
            .unwrap_or_else(|| panic!("{pv}: {r:#}"))
    };
    let a = row("pv-a");
    assert_eq!(a["nodes"], json!(["n1", "n2"]));
    assert_eq!(a["rds"], "exported");
    assert_eq!(a["since"], "2026-01-01T00:00:00Z");
    assert_eq!(
        a["migration_window"],
        "2026-01-01T00:10:00Z .. 2026-01-01T00:15:00Z"
    );
    assert!(a.get("mismatch").is_none(), "{a}");
    let m = row("pv-m");
    assert_eq!(m["rds"], "missing");
    assert!(
        m["mismatch"][0].as_str().unwrap().contains("no disk"),
        "{m}"
    );
    let f = row("pv-f");
    assert_eq!(f["allow"], json!([n9.host_nqn()]));
    let why = f["mismatch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("; ");
    assert!(
        why.contains("admits hosts not attached") && why.contains("lacks attached hosts"),
        "{why}"
    );
    assert_eq!(r["mismatches"], 2);
    // Table: the ALLOW column appears because one export has an allow list.
    let (_, text) = run_against(&env, &api, &["attachments", "--cluster-id", "c1"]).await;
    assert!(
        text.contains("ALLOW") && text.contains("MISMATCH: attached, but the RDS has no disk"),
        "{text}"
    );
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn completion_scripts_are_generated_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F _rdsctl"),
        ("zsh", "#compdef rdsctl"),
        ("fish", "complete -c rdsctl"),
    ] {
        let (out, text) = rdsctl(&s(&["completion", shell])).await;
        assert_eq!(out.status.code(), Some(0), "{text}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script:.300}");
        for sub in ["doctor", "orphans", "attachments", "completion"] {
            assert!(script.contains(sub), "{shell} script lacks {sub}");
        }
    }
    let (out, _) = rdsctl(&s(&["completion", "tcsh"])).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_errors_carry_the_reason_and_usage_exits_2() {
    // No RDS named: a usage error.
    let (out, text) = rdsctl(&s(&["orphans", "--kubeconfig", "/nonexistent/kc"])).await;
    assert_eq!(out.status.code(), Some(2), "{text}");
    // A Kubernetes API that fails: the error names the request.
    let env = sim_env(|_| {}).await;
    let api = FakeApi::start().await;
    api.set_failing(true);
    let mut args = s(&["orphans"]);
    args.extend(env.rds_args());
    args.extend(kube_args(&api, env.dir.path()));
    let (out, text) = rdsctl(&args).await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("kubernetes: list PersistentVolumes"),
        "{text}"
    );
    // The RDS down: the agent's ErrorInfo reason is printed, exit 4.
    api.set_failing(false);
    env.sim.clone().stop().await;
    let (out, text) = rdsctl(&args).await;
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("reason=RDS_UNREACHABLE"), "{text}");
}
