#!/usr/bin/env python3
"""The Helm chart deploy/helm/rds-csi, rendered and linted by real Helm
(helm_render.py: PyPI helm-python-sdk, Helm v4 as a library).

1. `helm lint --strict` finds nothing above info, with the default values
   and with non-default ones, for Kubernetes 1.34 and 1.37.
2. Every rendered object validates strictly (test_render.validate_object:
   Kubernetes 1.34 and the newest schemas; custom resources against their
   registry schemas), and passes the kustomize render's structure checks.
3. The default render equals `kubectl kustomize deploy/overlays/prod`, object
   for object. The only differences allowed (NORMALIZED below):
   - the labels Helm's conventions add: app.kubernetes.io/managed-by, helm.sh/chart;
   - kustomize's generator name suffix: rds-csi-config-<hash> is rds-csi-config
     in the chart, which instead rolls the pods through a pod-template
     annotation checksum/config.
   With every option on (snapshots, ServiceMonitor, PrometheusRule,
   dashboard, storage fencing) it equals prod plus the components snapshots,
   servicemonitor, monitoring and storage-fencing.
4. A non-default render (namespace, kubelet dir, 3 replicas, registry and
   tag, JSON logs, OTLP endpoint, snapshots off) equals the kustomize render
   with exactly those edits applied by this test — nothing else moves.
5. values.schema.json refuses a wrong type, unknown keys (top level and
   nested) and a bad enum; StorageClasses come from a list.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

import helm_render
import test_render
from common import DEPLOY, Checks, obj_id, render

HELM_LABELS = ("app.kubernetes.io/managed-by", "helm.sh/chart")
CHECKSUM_ANNOTATION = "checksum/config"
GENERATED = re.compile(r"\brds-csi-config-[a-z0-9]{10}\b")
ALL_ON = {
    "snapshots": {"enabled": True},
    "storageFencing": {"enabled": True},
    "monitoring": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    },
}
OUR_IMAGES = ("csi-frontend", "rds-agent", "attachment-service", "event-service")
NON_DEFAULT = {
    "namespace": "storage-rds",
    "kubeletDir": "/var/lib/k0s/kubelet",
    "controller": {"replicas": 3},
    "snapshots": {"enabled": False},
    "image": {"registry": "registry.example.com/mirror", "tag": "0.1.1"},
    "logFormat": "json",
    "otlpEndpoint": "http://otel-collector.tracing:4317",
}

# The PrometheusRule is a custom resource too: its schema comes from the
# same registry package as the others'.
test_render.CRDS.add(("monitoring.coreos.com", "PrometheusRule"))


def normalize(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Objects by id with the listed Helm/kustomize differences removed."""
    out = {}
    for o in objs:
        o = json.loads(GENERATED.sub("rds-csi-config", json.dumps(o)))
        labels = o["metadata"].get("labels", {})
        for k in HELM_LABELS:
            labels.pop(k, None)
        tmpl = o.get("spec", {}).get("template", {}).get("metadata")
        if tmpl is not None:
            ann = tmpl.get("annotations", {})
            ann.pop(CHECKSUM_ANNOTATION, None)
            if "annotations" in tmpl and not ann:
                del tmpl["annotations"]
        out[obj_id(o)] = o
    return out


def diff(want: dict[str, Any], got: dict[str, Any]) -> str:
    lines = []
    for k in sorted(set(want) - set(got)):
        lines.append(f"missing from the chart: {k}")
    for k in sorted(set(got) - set(want)):
        lines.append(f"only in the chart: {k}")
    for k in sorted(set(want) & set(got)):
        if want[k] != got[k]:
            lines.append(f"differs: {k}")
            lines.extend("  " + d for d in leaf_diff(want[k], got[k]))
    return "\n".join(lines[:80])


def leaf_diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += leaf_diff(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += leaf_diff(x, y, f"{path}/{i}")
        return out
    return [] if a == b else [f"{path}: kustomize {json.dumps(a)[:200]} / chart {json.dumps(b)[:200]}"]


def kustomize_with(components: list[str]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(dir=DEPLOY) as td:
        tmp = Path(td)
        (tmp / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["../overlays/prod"],
            "components": [f"../components/{c}" for c in components],
        }))
        return render(tmp)


def expected_non_default(prod: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The kustomize prod render with NON_DEFAULT's edits, made by hand."""
    ns, kubelet = NON_DEFAULT["namespace"], NON_DEFAULT["kubeletDir"]
    out = {}
    for o in copy.deepcopy(list(prod.values())):
        md = o["metadata"]
        if md.get("namespace") == "rds-csi":
            md["namespace"] = ns
        if o["kind"] == "Namespace":
            md["name"] = ns
        for s in o.get("subjects", []) or []:
            if s.get("namespace") == "rds-csi":
                s["namespace"] = ns
        if o["kind"] == "Deployment":
            o["spec"]["replicas"] = 3
        if o["kind"] == "DaemonSet":
            o = json.loads(json.dumps(o).replace('/var/lib/kubelet', kubelet))
        for _, pod in test_render.pod_templates([o]):
            for ct in test_render.containers(pod):
                for svc in OUR_IMAGES:
                    if ct["image"] == f"rds-csi/{svc}:0.1.0":
                        ct["image"] = f"registry.example.com/mirror/rds-csi/{svc}:0.1.1"
                        ct.setdefault("env", []).extend([
                            {"name": "LOG_FORMAT", "value": "json"},
                            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": NON_DEFAULT["otlpEndpoint"]},
                        ])
        out[obj_id(o)] = o
    return out


def refused(values: dict[str, Any], needle: str) -> tuple[bool, str]:
    try:
        helm_render.render(values)
    except Exception as e:  # noqa: BLE001 - Helm's values error is the expected outcome
        return (type(e).__name__ == "HelmValuesError" and needle in str(e)), f"{type(e).__name__}: {e}"
    return False, "rendered without complaint"


def main() -> None:
    c = Checks("Helm chart deploy/helm/rds-csi (real Helm via helm-python-sdk)")
    h = helm_render.helm()
    print(f"  helm-python-sdk {h.__version__}, Helm {h.helm_sdk_version()}")

    for label, values in (("default values", None), ("non-default values", NON_DEFAULT), ("every option on", ALL_ON)):
        for kube in ("v1.34.0", "v1.37.0"):
            with helm_render.helm_stderr():
                rep = h.lint(str(helm_render.CHART), values, strict=True, kube_version=kube)
            bad = [m for m in rep.get("messages", []) if m.get("severity", 0) >= 2] + rep.get("errors", [])
            c.ok(f"helm lint --strict ({label}, Kubernetes {kube}): nothing above info", not bad,
                 json.dumps(rep, indent=1))

    default = c.run("helm template (default values)", lambda: helm_render.render())
    non_default = c.run("helm template (non-default values)", lambda: helm_render.render(NON_DEFAULT))
    all_on = c.run("helm template (every option on)", lambda: helm_render.render(ALL_ON))
    prod = c.run("kubectl kustomize deploy/overlays/prod", lambda: render("overlays/prod"))
    prod_all = c.run("kubectl kustomize prod + snapshots, servicemonitor, monitoring, storage-fencing",
                     lambda: kustomize_with(["snapshots", "servicemonitor", "monitoring", "storage-fencing"]))

    for name, r in (("chart default", default), ("chart non-default", non_default), ("chart every option on", all_on)):
        if r is not None:
            test_render.check_schemas(c, name, r[0])
    if prod_all is not None:
        test_render.check_schemas(c, "kustomize prod + monitoring", [
            o for o in prod_all if o["kind"] in ("PrometheusRule", "ConfigMap")])
    if default is not None:
        test_render.check_structure(c, "chart default", default[0])
    if all_on is not None:
        test_render.check_structure(c, "chart every option on", all_on[0])

    if default is not None and prod is not None:
        want, got = normalize(prod), normalize(default[0])
        c.ok(f"default render equals the kustomize prod render ({len(want)} objects; "
             f"modulo {', '.join(HELM_LABELS)}, {CHECKSUM_ANNOTATION}, the rds-csi-config suffix)",
             want == got, diff(want, got))
        raw_names = {o["metadata"]["name"] for o in prod}
        c.ok("the kustomize render does carry a generator suffix (the normalization is needed)",
             any(GENERATED.fullmatch(n) for n in raw_names), str(sorted(raw_names)))
    if all_on is not None and prod_all is not None:
        want, got = normalize(prod_all), normalize(all_on[0])
        c.ok(f"every option on equals prod + snapshots, servicemonitor, monitoring, storage-fencing "
             f"({len(want)} objects)",
             want == got, diff(want, got))
    if non_default is not None and prod is not None:
        want, got = expected_non_default(normalize(prod)), normalize(non_default[0])
        c.ok("non-default render = prod with exactly the namespace, kubelet dir, replicas, images, "
             "log format and OTLP edits", want == got, diff(want, got))
        c.ok("non-default: no VolumeSnapshotClass with snapshots off",
             not any(o["kind"] == "VolumeSnapshotClass" for o in non_default[0]))
        ds = next(o for o in non_default[0] if o["kind"] == "DaemonSet")
        c.ok("non-default: no path under /var/lib/kubelet remains in the node DaemonSet",
             "/var/lib/kubelet/" not in json.dumps(ds) and '"/var/lib/kubelet"' not in json.dumps(ds))
        # The self-check of the comparison: the default render is not the
        # non-default expectation.
        c.ok("self-test: the comparison tells the default render from the non-default one",
             normalize(default[0]) != want if default else False)

    if all_on is not None:
        def packaged():
            # What a chart repository serves: `helm package` (the files/
            # links inlined), loaded back from the archive.
            with tempfile.TemporaryDirectory() as td, helm_render.helm_stderr():
                tgz = h.package(str(helm_render.CHART), destination=td)
                chart = h.Chart.load_archive(Path(tgz).read_bytes())
                out = chart.render(ALL_ON, name=helm_render.RELEASE, namespace=helm_render.RELEASE_NAMESPACE)
                docs = "\n---\n".join(v for k, v in sorted(out.items()) if k.endswith(".yaml"))
                return [d for d in yaml.safe_load_all(docs) if d]
        pkg = c.run("helm package, then render the archive (every option on)", packaged)
        if pkg is not None:
            c.ok("the packaged chart renders the same objects, dashboard and rules included",
                 normalize(pkg) == normalize(all_on[0]), diff(normalize(all_on[0]), normalize(pkg)))

    if default is not None:
        notes = default[1]
        c.ok("NOTES.txt names the Secret to create, the rollout commands and the placeholder warning",
             all(s in notes for s in ("create secret generic rds-csi-secret",
                                      "rollout status ds/rds-csi-node", "WARNING")), notes)

    other = c.run("helm template (createNamespace off, logLevel, controller placement)", lambda: helm_render.render({
        "createNamespace": False, "logLevel": "debug,h2=info",
        "controller": {"nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
                       "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                                        "effect": "NoSchedule"}],
                       "antiAffinity": False},
    })[0])
    if other is not None and default is not None:
        c.ok("createNamespace: false renders no Namespace, and nothing else goes",
             sorted(normalize(other)) == sorted(k for k in normalize(default[0]) if not k.startswith("Namespace/")))
        ours = [ct for _, pod in test_render.pod_templates(other) for ct in test_render.containers(pod)
                if ct["image"].startswith("rds-csi/")]
        c.ok("logLevel sets RUST_LOG on each of our six containers, and only there",
             len(ours) == 6 and all({"name": "RUST_LOG", "value": "debug,h2=info"} in ct.get("env", []) for ct in ours)
             and "RUST_LOG" not in json.dumps([ct for _, pod in test_render.pod_templates(other)
                                               for ct in test_render.containers(pod) if ct not in ours]))
        dep = next(o for o in other if o["kind"] == "Deployment")["spec"]["template"]["spec"]
        c.ok("controller nodeSelector and tolerations set, anti-affinity off",
             dep.get("nodeSelector") == {"node-role.kubernetes.io/control-plane": ""}
             and dep.get("tolerations", [{}])[0].get("effect") == "NoSchedule" and "affinity" not in dep, json.dumps(dep)[:400])
        test_render.check_schemas(c, "chart createNamespace off", [o for o in other if o["kind"] in ("Deployment", "DaemonSet")])

    classes = c.run("two StorageClasses from the list, one default", lambda: helm_render.render({
        "storageClasses": [
            {"name": "fast", "isDefault": True, "parameters": {"csi.storage.k8s.io/fstype": "xfs"}},
            {"name": "other-pool", "reclaimPolicy": "Retain", "volumeLayout": "subvolume",
             "parameters": {"volumePath": "/other-pool/k8s", "nvmePort": 4421}},
        ]})[0])
    if classes is not None:
        sc = {o["metadata"]["name"]: o for o in classes if o["kind"] == "StorageClass"}
        c.ok("StorageClasses: exactly the listed ones", sorted(sc) == ["fast", "other-pool"], str(sorted(sc)))
        if sorted(sc) == ["fast", "other-pool"]:
            fast, other = sc["fast"], sc["other-pool"]
            c.ok("StorageClass fast: the default class, xfs, addresses from rds/nvme values",
                 fast["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"
                 and fast["parameters"] == {"csi.storage.k8s.io/fstype": "xfs", "nvmeAddress": "192.0.2.20",
                                            "nvmePort": "4420", "rdsAddress": "192.0.2.10",
                                            "volumePath": "/storage-pool/metal-csi"}, json.dumps(fast))
            c.ok("StorageClass fast: no volumeLayout parameter (flat, the default)",
                 "volumeLayout" not in fast["parameters"], json.dumps(fast))
            c.ok("StorageClass other-pool: volumeLayout subvolume becomes its parameter",
                 other["parameters"].get("volumeLayout") == "subvolume", json.dumps(other))
            c.ok("StorageClass other-pool: its own volumePath and port (as strings), Retain, not default",
                 other["parameters"]["volumePath"] == "/other-pool/k8s" and other["parameters"]["nvmePort"] == "4421"
                 and other["reclaimPolicy"] == "Retain" and "annotations" not in other["metadata"], json.dumps(other))
        test_render.check_schemas(c, "chart two StorageClasses", [o for o in classes if o["kind"] == "StorageClass"])

    for what, values, needle in (
        ("a wrong type (controller.replicas: \"three\")", {"controller": {"replicas": "three"}}, "/controller/replicas"),
        ("an unknown top-level key (replica)", {"replica": 3}, "'replica' not allowed"),
        ("an unknown nested key (rds.adress)", {"rds": {"adress": "10.0.0.1"}}, "'adress' not allowed"),
        ("an unknown key in a StorageClass (parameter)", {"storageClasses": [{"name": "x", "parameter": {}}]}, "'parameter' not allowed"),
        ("a bad enum (logFormat: xml)", {"logFormat": "xml"}, "/logFormat"),
        ("a bad volumeLayout (btrfs)", {"storageClasses": [{"name": "x", "volumeLayout": "btrfs"}]},
         "/storageClasses/0/volumeLayout"),
        ("a string for storageFencing.enabled", {"storageFencing": {"enabled": "yes"}}, "/storageFencing/enabled"),
        ("a relative kubeletDir", {"kubeletDir": "var/lib/kubelet"}, "/kubeletDir"),
        ("a port out of range (rds.sshPort: 70000)", {"rds": {"sshPort": 70000}}, "/rds/sshPort"),
    ):
        ok, detail = refused(values, needle)
        c.ok(f"values.schema.json refuses {what}", ok, detail)
    c.finish()


if __name__ == "__main__":
    main()
