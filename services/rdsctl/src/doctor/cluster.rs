//! The cluster checks: CSIDriver, controller and node pods, CSINode per node,
//! `nvme_tcp` per node (read from the node plugin's `/metrics` through the
//! API server's pod proxy: [`super::nvme_tcp`]), sidecar versions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode};
use kube::Api;
use kube::api::ListParams;

use super::Check;
use crate::target::KubeArgs;

/// Sidecars each pod must run (container names in deploy/base).
const CONTROLLER_SIDECARS: &[&str] = &["csi-provisioner", "csi-attacher", "csi-resizer"];
const NODE_SIDECARS: &[&str] = &["node-driver-registrar"];

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_node(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

type Listed<T> = crate::error::Result<Vec<T>>;

pub async fn checks(k: &KubeArgs, client: &kube::Client) -> Vec<Check> {
    let mut out = Vec::new();
    match csidriver(k, client).await {
        Ok(c) => out.push(c),
        Err(c) => {
            out.push(c);
            return out;
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &k.namespace);
    let list = |component: &'static str| {
        let lp = ListParams::default().labels(&format!(
            "app.kubernetes.io/name=rds-csi,app.kubernetes.io/component={component}"
        ));
        let pods = pods.clone();
        async move { pods.list(&lp).await.map(|l| l.items) }
    };
    let controllers = k.call("list controller pods", list("controller")).await;
    let node_pods = k.call("list node pods", list("node")).await;
    let nodes_api: Api<Node> = Api::all(client.clone());
    let nodes = k
        .call("list nodes", nodes_api.list(&ListParams::default()))
        .await
        .map(|l| l.items);
    let csinodes_api: Api<CSINode> = Api::all(client.clone());
    let csinodes = k
        .call("list CSINodes", csinodes_api.list(&ListParams::default()))
        .await
        .map(|l| l.items);

    out.push(controller_pods(k, &controllers));
    let node_names: Vec<String> = match &nodes {
        Ok(ns) => ns.iter().filter_map(|n| n.metadata.name.clone()).collect(),
        Err(e) => {
            out.push(Check::fail(
                "nodes",
                e.to_string(),
                "check RBAC: list nodes",
            ));
            Vec::new()
        }
    };
    out.push(node_pods_check(&node_pods, &node_names));
    let registered = registered_nodes(k, &csinodes, &mut out);
    if let Ok(ns) = &nodes {
        out.extend(per_node(k, client, ns, &node_pods, &registered).await);
    }
    out.extend(sidecars(&controllers, &node_pods));
    out
}

/// The CSIDriver object; `Err` (stop checking) when the API server cannot
/// be asked.
async fn csidriver(k: &KubeArgs, client: &kube::Client) -> Result<Check, Check> {
    let drivers: Api<CSIDriver> = Api::all(client.clone());
    match k.call("get CSIDriver", drivers.get_opt(&k.driver)).await {
        Ok(Some(d)) => {
            let attach = d.spec.attach_required.unwrap_or(true);
            Ok(Check::pass(
                "csidriver",
                format!("{} present (attachRequired={attach})", k.driver),
            ))
        }
        Ok(None) => Ok(Check::fail(
            "csidriver",
            format!("no CSIDriver {}", k.driver),
            "install the driver: `kubectl apply -k deploy/overlays/prod`",
        )),
        Err(e) => Err(Check::fail(
            "kubernetes",
            e.to_string(),
            "check the kubeconfig/context and that the API server is reachable",
        )),
    }
}

/// Controller pods: all ready passes, some ready warns, none fails.
fn controller_pods(k: &KubeArgs, controllers: &Listed<Pod>) -> Check {
    match controllers {
        Ok(ps) if ps.is_empty() => Check::fail(
            "controller-pods",
            format!("no controller pod in namespace {}", k.namespace),
            "`kubectl -n rds-csi get deploy rds-csi-controller` and its events",
        ),
        Ok(ps) => {
            let ready = ps.iter().filter(|p| pod_ready(p)).count();
            let not: Vec<String> = ps.iter().filter(|p| !pod_ready(p)).map(pod_name).collect();
            let detail = format!("{ready}/{} ready", ps.len());
            if not.is_empty() {
                Check::pass("controller-pods", detail)
            } else {
                let fix = format!("`kubectl -n {} describe pod {}`", k.namespace, not[0]);
                if ready > 0 {
                    Check::warn(
                        "controller-pods",
                        format!("{detail}; not ready: {}", not.join(", ")),
                        fix,
                    )
                } else {
                    Check::fail(
                        "controller-pods",
                        format!("{detail}; not ready: {}", not.join(", ")),
                        fix,
                    )
                }
            }
        }
        Err(e) => Check::fail("controller-pods", e.to_string(), "check RBAC: list pods"),
    }
}

/// A ready node pod on every node.
fn node_pods_check(node_pods: &Listed<Pod>, node_names: &[String]) -> Check {
    let ps = match node_pods {
        Ok(ps) => ps,
        Err(e) => return Check::fail("node-pods", e.to_string(), "check RBAC: list pods"),
    };
    let by_node: BTreeMap<String, &Pod> = ps.iter().map(|p| (pod_node(p), p)).collect();
    let missing: Vec<&String> = node_names
        .iter()
        .filter(|n| !by_node.contains_key(*n))
        .collect();
    let unready: Vec<String> = ps.iter().filter(|p| !pod_ready(p)).map(pod_name).collect();
    let detail = format!(
        "{} of {} nodes run a ready node pod",
        ps.iter().filter(|p| pod_ready(p)).count(),
        node_names.len()
    );
    if missing.is_empty() && unready.is_empty() {
        return Check::pass("node-pods", detail);
    }
    let mut why = Vec::new();
    if !missing.is_empty() {
        why.push(format!("no pod on {}", join(&missing)));
    }
    if !unready.is_empty() {
        why.push(format!("not ready: {}", unready.join(", ")));
    }
    Check::fail(
        "node-pods",
        format!("{detail}; {}", why.join("; ")),
        "`kubectl -n rds-csi describe ds rds-csi-node` (taints, node selector, image pulls)",
    )
}

/// CSINode name → whether it lists our driver; a failed list adds a check.
fn registered_nodes(
    k: &KubeArgs,
    csinodes: &Listed<CSINode>,
    out: &mut Vec<Check>,
) -> BTreeMap<String, bool> {
    match csinodes {
        Ok(cs) => cs
            .iter()
            .map(|c| {
                let has = c.spec.drivers.iter().any(|d| d.name == k.driver);
                (c.metadata.name.clone().unwrap_or_default(), has)
            })
            .collect(),
        Err(e) => {
            out.push(Check::fail(
                "csinodes",
                e.to_string(),
                "check RBAC: list csinodes",
            ));
            BTreeMap::new()
        }
    }
}

/// Per node: its CSINode registration, then its `nvme_tcp` check.
async fn per_node(
    k: &KubeArgs,
    client: &kube::Client,
    ns: &[Node],
    node_pods: &Listed<Pod>,
    registered: &BTreeMap<String, bool>,
) -> Vec<Check> {
    let mut out = Vec::new();
    // nvme_tcp per node (asked in parallel), listed after its CSINode check.
    let pods: &[Pod] = node_pods.as_deref().unwrap_or(&[]);
    let names: Vec<String> = ns
        .iter()
        .map(|n| n.metadata.name.clone().unwrap_or_default())
        .collect();
    let mut nvme = super::nvme_tcp::checks(k, client, &names, |n| {
        pods.iter().find(|p| pod_node(p) == n)
    })
    .await
    .into_iter();
    for n in ns {
        let name = n.metadata.name.clone().unwrap_or_default();
        out.push(if registered.get(&name).copied().unwrap_or(false) {
            Check::pass(format!("csinode/{name}"), format!("{} registered", k.driver))
        } else {
            Check::fail(
                format!("csinode/{name}"),
                format!("{} not registered on {name}", k.driver),
                format!(
                    "check the node pod on {name}: `kubectl -n {} logs <pod> -c node-driver-registrar`",
                    k.namespace
                ),
            )
        });
        out.extend(nvme.next());
    }
    out
}

/// Sidecar containers present and their images pinned to a version.
fn sidecars(controllers: &Listed<Pod>, node_pods: &Listed<Pod>) -> Option<Check> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut missing = Vec::new();
    for (pods, wanted) in [
        (controllers, CONTROLLER_SIDECARS),
        (node_pods, NODE_SIDECARS),
    ] {
        let Ok(pods) = pods else { continue };
        if pods.is_empty() {
            continue;
        }
        for want in wanted {
            match sidecar_image(pods, want) {
                Some(i) => {
                    seen.insert((*want).to_owned(), i);
                }
                None => missing.push((*want).to_owned()),
            }
        }
    }
    let untagged: Vec<String> = seen
        .iter()
        .filter(|(_, i)| image_tag(i).is_none_or(|t| t == "latest"))
        .map(|(n, i)| format!("{n}={i}"))
        .collect();
    let detail = seen
        .iter()
        .map(|(n, i)| format!("{n} {}", image_tag(i).unwrap_or("untagged")))
        .collect::<Vec<_>>()
        .join(", ");
    if !missing.is_empty() {
        Some(Check::fail(
            "sidecars",
            format!("missing: {}; running: {detail}", missing.join(", ")),
            "re-apply the manifests (`kubectl apply -k deploy/overlays/prod`)",
        ))
    } else if !untagged.is_empty() {
        Some(Check::warn(
            "sidecars",
            format!("not pinned: {}", untagged.join(", ")),
            "pin sidecar images to a version (kustomize `images:`)",
        ))
    } else if !seen.is_empty() {
        Some(Check::pass("sidecars", detail))
    } else {
        None
    }
}

/// The image of the first pod's container named `want`.
fn sidecar_image(pods: &[Pod], want: &str) -> Option<String> {
    pods.iter().find_map(|p| {
        p.spec.as_ref().and_then(|s| {
            s.containers
                .iter()
                .find(|c| c.name == want)
                .and_then(|c| c.image.clone())
        })
    })
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// `repo:tag` → `tag` (a digest-only reference has none).
fn image_tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':').map(|(_, t)| t)
}
