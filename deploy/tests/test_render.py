#!/usr/bin/env python3
"""The manifests render and are valid.

1. `kubectl kustomize` renders deploy/base, deploy/examples, both overlays and
   the prod overlay with the optional ServiceMonitor component.
2. Every built-in object validates against the Kubernetes OpenAPI schema (the
   `kubernetes-validate` package, strict mode: unknown fields are errors) of
   the oldest version we support and of the newest the package carries.
3. Every custom resource (VolumeSnapshotClass, ServiceMonitor) validates
   against its kind's OpenAPI schema from a pinned registry package
   (`common.resource_schema`; with `jsonschema`; object schemas made strict
   the way the API server prunes unknown fields, metadata checked as ObjectMeta).
4. Structure the schemas cannot see: pinned images, references that resolve,
   probes that name real ports, privileges, the sidecar flags each pinned
   sidecar release really has, the dev overlay's tracing wiring.
"""

from __future__ import annotations

import base64
import copy
import os
import functools
import re
import shutil
import tempfile
from pathlib import Path

import jsonschema
import kubernetes_validate
import referencing
import yaml
from kubernetes_validate import utils as kv_utils

# kubernetes-validate re-reads its JSON schemas on every call; read each once.
kv_utils.schema_contents = functools.lru_cache(maxsize=None)(kv_utils.schema_contents)

from common import (
    DEPLOY,
    REPO,
    IMAGE_PREFIX,
    KUSTOMIZATIONS,
    SIDECAR_PREFIX,
    Checks,
    containers,
    image_repo,
    obj_id,
    our_binary,
    pod_templates,
    render,
    resource_schema,
    with_servicemonitor,
)

# provisioner v6 needs Kubernetes 1.34 (storage/v1 VolumeAttributesClass), so
# 1.34 is the oldest version the manifests must be valid for.
MIN_K8S = "1.34"
NEWEST_K8S_FULL = kv_utils.latest_version()  # e.g. 1.37.0
NEWEST_K8S = kv_utils.major_minor(NEWEST_K8S_FULL)

# Custom resource kinds we render; their schemas come from common.resource_schema.
CRDS = {
    ("snapshot.storage.k8s.io", "VolumeSnapshotClass"),
    ("monitoring.coreos.com", "ServiceMonitor"),
}

# Sidecars pinned in deploy/base/kustomization.yaml, and every flag their
# binaries define at that tag (cmd/<sidecar>/main.go plus the vendored
# csi-lib-utils standardflags, read from the upstream repositories; `v` is
# klog's). A flag a release dropped fails here instead of crash-looping.
_STANDARD = (
    "version kubeconfig csi-address leader-election leader-election-namespace "
    "leader-election-lease-duration leader-election-renew-deadline leader-election-retry-period "
    "leader-election-labels kube-api-qps kube-api-burst http-endpoint metrics-address metrics-path v"
).split()
SIDECARS = {
    "csi-provisioner": (
        "v6.3.0",
        _STANDARD
        + (
            "capacity-for-immediate-binding capacity-ownerref-level capacity-poll-interval capacity-threads "
            "cloning-protection-threads controller-publish-readonly default-fstype enable-capacity enable-pprof "
            "extra-create-metadata feature-gates immediate-topology kube-api-capacity-burst kube-api-capacity-qps "
            "master node-deployment node-deployment-base-delay node-deployment-immediate-binding "
            "node-deployment-max-delay prevent-volume-mode-conversion retry-interval-max retry-interval-start "
            "snapshot-orphan-sweep-interval strict-topology timeout volume-name-prefix volume-name-uuid-length "
            "worker-threads"
        ).split(),
    ),
    "csi-attacher": (
        "v4.12.0",
        _STANDARD
        + (
            "default-fstype feature-gates max-entries max-grpc-log-length reconcile-sync resync "
            "retry-interval-max retry-interval-start timeout worker-threads"
        ).split(),
    ),
    "csi-resizer": (
        "v2.2.1",
        _STANDARD
        + (
            "extra-modify-metadata feature-gates handle-volume-inuse-error master resync-period "
            "retry-interval-max retry-interval-start timeout workers"
        ).split(),
    ),
    "csi-snapshotter": (
        "v8.6.0",
        _STANDARD
        + (
            "extra-create-metadata feature-gates groupsnapshot-name-prefix groupsnapshot-name-uuid-length "
            "node-deployment resync-period retry-interval-max retry-interval-start snapshot-name-prefix "
            "snapshot-name-uuid-length timeout worker-threads"
        ).split(),
    ),
    "csi-node-driver-registrar": (
        "v2.17.0",
        (
            "connection-timeout csi-address enable-pprof health-port http-endpoint kubelet-registration-path "
            "mode plugin-registration-path timeout version v"
        ).split(),
    ),
    "livenessprobe": (
        "v2.19.0",
        "csi-address health-port http-endpoint metrics-address metrics-path probe-timeout v".split(),
    ),
}
CONTROLLER_SIDECARS = ["csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter"]

# Secrets the user creates (deploy/base/secret.example.yaml); every other
# referenced Secret/ConfigMap must be rendered.
EXTERNAL_SECRETS = {"rds-csi-secret"}

CLUSTER_SCOPED = {
    "Namespace", "CSIDriver", "ClusterRole", "ClusterRoleBinding", "StorageClass",
    "VolumeSnapshotClass", "PriorityClass", "CustomResourceDefinition",
}


def crd_validator(group: str, kind: str, version: str) -> jsonschema.protocols.Validator:
    schema = strict_openapi(resource_schema(group, kind, version))
    # metadata: the real ObjectMeta schema (strict) from kubernetes-validate.
    defs = kv_utils.schema_contents(
        f"kubernetes-json-schema/v{NEWEST_K8S_FULL}-local-strict/_definitions.json", NEWEST_K8S
    )
    schema["properties"]["metadata"] = {
        "$ref": f"{defs['$id']}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    }
    registry = referencing.Registry().with_resource(
        defs["$id"], referencing.Resource.from_contents(defs)
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def strict_openapi(s):
    """OpenAPI v3 (structural) → JSON Schema: unknown fields are errors
    (the API server prunes them; kubectl --validate=strict rejects them),
    `nullable` allows null, int-or-string allows both."""
    if isinstance(s, dict):
        for k in ("properties", "patternProperties"):
            for v in (s.get(k) or {}).values():
                strict_openapi(v)
        for k in ("items", "additionalProperties", "not"):
            if isinstance(s.get(k), dict):
                strict_openapi(s[k])
        for k in ("allOf", "anyOf", "oneOf"):
            for v in s.get(k) or []:
                strict_openapi(v)
        if s.get("x-kubernetes-int-or-string"):
            s.pop("type", None)
            s["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if s.get("nullable") and "type" in s:
            s["type"] = [s["type"], "null"]
        if (
            s.get("type") == "object"
            and "properties" in s
            and "additionalProperties" not in s
            and not s.get("x-kubernetes-preserve-unknown-fields")
        ):
            s["additionalProperties"] = False
    return s


def validate_object(o, validators) -> list[str]:
    api = o.get("apiVersion", "")
    group, _, version = api.rpartition("/")
    kind = o.get("kind")
    if (group, kind) in CRDS:
        key = (group, kind, version)
        if key not in validators:
            validators[key] = crd_validator(group, kind, version)
        errs = sorted(validators[key].iter_errors(o), key=lambda e: list(e.path))
        return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errs]
    problems = []
    for k8s in (MIN_K8S, NEWEST_K8S):
        try:
            kubernetes_validate.validate(o, k8s, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"no Kubernetes {k8s} schema for {api} {kind} (and no CRD schema)")
        except kubernetes_validate.ValidationError as e:
            problems.append(f"Kubernetes {k8s}: {'/'.join(map(str, e.path))}: {e.message}")
    return problems


def check_schemas(c: Checks, name: str, objs) -> None:
    validators: dict = {}
    for o in objs:
        problems = validate_object(o, validators)
        c.ok(f"{name}: {obj_id(o)} valid ({o['apiVersion']})", not problems, "\n".join(problems))


def flags_of(args: list[str]) -> list[str]:
    out = []
    for a in args:
        if a.startswith("-"):
            out.append(a.lstrip("-").split("=", 1)[0])
    return out


def check_structure(c: Checks, name: str, objs) -> None:
    by_kind_name = {(o["kind"], o["metadata"]["name"]) for o in objs}
    configmaps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
    secrets = {o["metadata"]["name"] for o in objs if o["kind"] == "Secret"}

    for o in objs:
        if o["kind"] not in CLUSTER_SCOPED:
            c.ok(
                f"{name}: {obj_id(o)} is in namespace rds-csi",
                o["metadata"].get("namespace") == "rds-csi",
            )
        else:
            c.ok(f"{name}: {obj_id(o)} is cluster-scoped: no namespace", "namespace" not in o["metadata"])

    for w, pod in pod_templates(objs):
        wid = obj_id(w)
        ports = {}
        for ct in containers(pod):
            for p in ct.get("ports", []) or []:
                ports.setdefault(p["containerPort"], []).append(ct["name"])
        dup = {p: cs for p, cs in ports.items() if len(cs) > 1}
        c.ok(f"{name}: {wid} container ports are distinct", not dup, str(dup))
        port_names = {
            p["name"]: p["containerPort"] for ct in containers(pod) for p in ct.get("ports", []) or [] if "name" in p
        }
        sa = pod.get("serviceAccountName")
        if sa:
            c.ok(f"{name}: {wid} ServiceAccount {sa} exists", ("ServiceAccount", sa) in by_kind_name)
        volumes = {v["name"]: v for v in pod.get("volumes", []) or []}
        for v in volumes.values():
            if "secret" in v:
                sn = v["secret"]["secretName"]
                c.ok(
                    f"{name}: {wid} volume {v['name']} → Secret {sn} rendered or user-supplied",
                    sn in secrets or sn in EXTERNAL_SECRETS,
                )
            if "configMap" in v:
                c.ok(f"{name}: {wid} volume {v['name']} → ConfigMap exists", v["configMap"]["name"] in configmaps)

        for ct in containers(pod):
            cid = f"{wid}:{ct['name']}"
            image = ct.get("image", "")
            tag = image.split("@")[0].rsplit("/", 1)[-1].partition(":")[2]
            c.ok(f"{name}: {cid} image {image} is pinned by tag", bool(tag) and tag != "latest")
            for m in ct.get("volumeMounts", []) or []:
                c.ok(f"{name}: {cid} mount {m['name']} names a pod volume", m["name"] in volumes)
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                pr = ct.get(probe)
                if not pr:
                    continue
                for kind in ("httpGet", "tcpSocket", "grpc"):
                    if kind in pr:
                        port = pr[kind]["port"]
                        real = port_names.get(port) if isinstance(port, str) else port
                        c.ok(
                            f"{name}: {cid} {probe} port {port} is declared in the pod",
                            real in ports,
                        )
            for e in ct.get("env", []) or []:
                ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
                if ref:
                    cm = configmaps.get(ref["name"])
                    c.ok(
                        f"{name}: {cid} env {e['name']} → ConfigMap key {ref['key']} exists",
                        ref.get("optional") or (cm is not None and ref["key"] in (cm.get("data") or {})),
                    )
                if our_binary(ct):
                    c.ok(
                        f"{name}: {cid} env {e['name']} is no Secret (secrets come from files)",
                        "secretKeyRef" not in (e.get("valueFrom") or {}),
                    )

            repo = image_repo(image)
            if repo.startswith(SIDECAR_PREFIX):
                sidecar = repo[len(SIDECAR_PREFIX):]
                c.ok(f"{name}: {cid} sidecar {sidecar} is one we hold a flag table for", sidecar in SIDECARS)
                if sidecar in SIDECARS:
                    want, known = SIDECARS[sidecar]
                    c.ok(f"{name}: {cid} runs {sidecar} {want}", tag == want, f"image tag {tag}")
                    unknown = [f for f in flags_of(ct.get("args", [])) if f not in known]
                    c.ok(f"{name}: {cid} {sidecar} {want} knows every flag", not unknown, f"unknown: {unknown}")
                    c.ok(
                        f"{name}: {cid} talks to /csi/csi.sock",
                        "--csi-address=/csi/csi.sock" in ct.get("args", []),
                    )
            elif not repo.startswith(IMAGE_PREFIX) and repo != "jaegertracing/jaeger":
                c.ok(f"{name}: {cid} image {repo} is one we know", False)

        # privileges: only the node csi-frontend is privileged.
        for ct in containers(pod):
            sc = ct.get("securityContext") or {}
            privileged = bool(sc.get("privileged"))
            expected = w["kind"] == "DaemonSet" and ct["name"] == "csi-frontend"
            c.ok(
                f"{name}: {wid}:{ct['name']} privileged={privileged} (only the node csi-frontend is)",
                privileged == expected,
            )
            if not privileged:
                c.ok(
                    f"{name}: {wid}:{ct['name']} cannot escalate, drops all capabilities",
                    sc.get("allowPrivilegeEscalation") is False
                    and "ALL" in ((sc.get("capabilities") or {}).get("drop") or []),
                )


def check_driver(c: Checks, objs) -> None:
    drv = [o for o in objs if o["kind"] == "CSIDriver"]
    c.ok("base: one CSIDriver rds.csi.srvlab.io", [d["metadata"]["name"] for d in drv] == ["rds.csi.srvlab.io"])
    if drv:
        s = drv[0]["spec"]
        c.ok("base: CSIDriver attachRequired (attachment tracking)", s.get("attachRequired") is True)
        c.ok("base: CSIDriver Persistent volumes only", s.get("volumeLifecycleModes") == ["Persistent"])
        c.ok("base: CSIDriver fsGroupPolicy File", s.get("fsGroupPolicy") == "File")
        c.ok("base: CSIDriver seLinuxMount (mount -o context=, no recursive relabel)", s.get("seLinuxMount") is True)

    ctrl = next(p for w, p in pod_templates(objs) if w["metadata"]["name"] == "rds-csi-controller")
    node = next(p for w, p in pod_templates(objs) if w["metadata"]["name"] == "rds-csi-node")
    names = [ct["name"] for ct in containers(ctrl)]
    c.ok(
        "base: controller pod runs our four services and the five sidecars",
        sorted(names)
        == sorted(
            ["csi-frontend", "rds-agent", "attachment-service", "event-service", "csi-provisioner",
             "csi-attacher", "csi-resizer", "csi-snapshotter", "liveness-probe"]
        ),
        str(names),
    )
    nnames = [ct["name"] for ct in containers(node)]
    c.ok(
        "base: node pod runs csi-frontend, event-service, registrar, livenessprobe",
        sorted(nnames) == sorted(["csi-frontend", "event-service", "node-driver-registrar", "liveness-probe"]),
        str(nnames),
    )
    byname = {ct["name"]: ct for ct in containers(ctrl)}
    prov = byname.get("csi-provisioner", {}).get("args", [])
    c.ok("base: provisioner passes --extra-create-metadata", "--extra-create-metadata" in prov)
    # The ownership tag on every disk names the cluster: the controller's
    # csi-frontend must get the same cluster id as the nodes (docs/btrfs.md).
    fe_env = {e["name"]: e for e in byname.get("csi-frontend", {}).get("env", [])}
    ref = fe_env.get("RDS_CSI_CLUSTER_ID", {}).get("valueFrom", {}).get("configMapKeyRef", {})
    c.ok("base: controller csi-frontend reads RDS_CSI_CLUSTER_ID from cluster-id (ownership tag)",
         ref.get("key") == "cluster-id", str(fe_env.get("RDS_CSI_CLUSTER_ID")))
    for s in CONTROLLER_SIDECARS:
        c.ok(f"base: {s.removeprefix('csi-')} sidecar uses --leader-election", "--leader-election" in byname.get(s, {}).get("args", []))
    c.ok("base: controller pod mounts no host path", not any("hostPath" in v for v in ctrl.get("volumes", [])))
    c.ok("base: controller pod is not on the host network", not ctrl.get("hostNetwork"))
    fe = next(ct for ct in containers(node) if ct["name"] == "csi-frontend")
    mounts = {m["mountPath"]: m for m in fe.get("volumeMounts", [])}
    c.ok(
        "base: node csi-frontend mounts /var/lib/kubelet Bidirectional",
        mounts.get("/var/lib/kubelet", {}).get("mountPropagation") == "Bidirectional",
    )
    for p in ("/dev", "/sys", "/csi"):
        c.ok(f"base: node csi-frontend mounts {p}", p in mounts)
    agent = byname.get("rds-agent", {})
    vols = {v["name"]: v for v in ctrl.get("volumes", [])}
    secret_mounts = [
        m for m in agent.get("volumeMounts", []) if "secret" in vols.get(m["name"], {})
    ]
    c.ok(
        "base: rds-agent reads the SSH key and host key from the Secret as files (read-only)",
        len(secret_mounts) == 1 and secret_mounts[0].get("readOnly") is True
        and vols[secret_mounts[0]["name"]]["secret"]["secretName"] == "rds-csi-secret",
    )
    others = [
        ct["name"] for ct in containers(ctrl) if ct["name"] != "rds-agent"
        for m in ct.get("volumeMounts", []) if "secret" in vols.get(m["name"], {})
    ]
    c.ok("base: no other container mounts the RDS Secret", not others, str(others))


def check_dev(c: Checks, objs) -> None:
    svcs = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Service"}
    jaeger = svcs.get("jaeger")
    jports = {p["port"] for p in (jaeger or {}).get("spec", {}).get("ports", [])}
    c.ok("dev: Service jaeger exposes OTLP 4317 and UI 16686", {4317, 16686} <= jports, str(jports))
    c.ok("dev: Deployment jaeger", any(o["kind"] == "Deployment" and o["metadata"]["name"] == "jaeger" for o in objs))
    c.ok("dev: Deployment + Service rds-sim", "rds-sim" in svcs and any(
        o["kind"] == "Deployment" and o["metadata"]["name"] == "rds-sim" for o in objs))
    cm = next((o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("rds-csi-config")), None)
    c.ok("dev: RDS address is the rds-sim Service", cm is not None and cm["data"].get("rds-address") == "rds-sim")
    sim_ports = {p["port"] for p in svcs.get("rds-sim", {}).get("spec", {}).get("ports", [])}
    c.ok(
        "dev: rds-ssh-port is a port of the rds-sim Service",
        cm is not None and int(cm["data"].get("rds-ssh-port", 0)) in sim_ports,
        f"{cm and cm['data'].get('rds-ssh-port')} vs {sim_ports}",
    )
    for w, pod in pod_templates(objs):
        for ct in containers(pod):
            if not our_binary(ct):
                continue
            env = {e["name"]: e.get("value") for e in ct.get("env", []) or []}
            cid = f"{obj_id(w)}:{ct['name']}"
            c.ok(
                f"dev: {cid} exports traces to http://jaeger:4317",
                env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == "http://jaeger:4317",
            )
            c.ok(f"dev: {cid} logs at debug", "debug" in (env.get("RUST_LOG") or ""), str(env.get("RUST_LOG")))
    # The generated dev Secret pins the key rds-sim really serves.
    secret = next((o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"].startswith("rds-csi-secret")), None)
    simkeys = next((o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"].startswith("rds-sim-keys")), None)
    if c.ok("dev: Secrets rds-csi-secret and rds-sim-keys generated", secret is not None and simkeys is not None):
        import subprocess

        def b64(o, k):
            return base64.b64decode(o["data"][k]).decode()

        if shutil.which("ssh-keygen") is None:
            c.ok("dev: ssh-keygen (openssh-client) is installed to check the dev keys", False)
            return
        with tempfile.TemporaryDirectory() as td:
            hk = Path(td) / "host"
            hk.write_text(b64(simkeys, "host-key"))
            hk.chmod(0o600)
            pub = subprocess.run(["ssh-keygen", "-y", "-f", str(hk)], capture_output=True, text=True)
            ck = Path(td) / "client"
            ck.write_text(b64(secret, "rds-private-key"))
            ck.chmod(0o600)
            cpub = subprocess.run(["ssh-keygen", "-y", "-f", str(ck)], capture_output=True, text=True)
        if pub.returncode == 0 and cpub.returncode == 0:
            c.ok(
                "dev: pinned rds-host-key is the public half of rds-sim's host key",
                b64(secret, "rds-host-key").split()[:2] == pub.stdout.split()[:2],
            )
            c.ok(
                "dev: rds-sim authorizes the public half of rds-agent's key",
                cpub.stdout.split()[:2] in [l.split()[:2] for l in b64(simkeys, "authorized-keys").splitlines() if l],
            )
        else:
            c.ok("dev: ssh-keygen reads the dev keys", False, pub.stderr + cpub.stderr)


PARAMS_RS = REPO / "services/csi-frontend/src/params.rs"


def check_storage_classes(c: Checks, name: str, objs) -> None:
    """StorageClass / VolumeSnapshotClass parameters are keys csi-frontend
    accepts (its params.rs: the Go driver's keys, the ignored-but-accepted
    ones, csi.storage.k8s.io/*), for our driver."""
    text = PARAMS_RS.read_text() if PARAMS_RS.is_file() else ""
    if not c.ok(f"{name}: csi-frontend's parameter table found ({PARAMS_RS.relative_to(REPO)})", bool(text)):
        return
    consts = set(re.findall(r'const\s+[A-Z_]+\s*:\s*&str\s*=\s*"([A-Za-z]+)"', text))
    # Keys defined once in rds-bus (`pub const X: &str = key::Y;`).
    vc = REPO / "services/shared/bus/src/volume_context.rs"
    shared = dict(re.findall(r'const\s+([A-Z_]+)\s*:\s*&str\s*=\s*"([^"]+)"', vc.read_text())) if vc.is_file() else {}
    for ref in re.findall(r'const\s+[A-Z_]+\s*:\s*&str\s*=\s*key::([A-Z_]+)\s*;', text):
        if ref in shared and re.fullmatch(r"[A-Za-z]+", shared[ref]):
            consts.add(shared[ref])
    ignored = re.search(r"IGNORED_KEYS[^=]*=\s*\[([^\]]*)\]", text)
    consts |= set(re.findall(r'"([A-Za-z]+)"', ignored.group(1))) if ignored else set()
    for o in objs:
        if o["kind"] == "StorageClass":
            params, drv = o.get("parameters") or {}, o.get("provisioner")
        elif o["kind"] == "VolumeSnapshotClass":
            params, drv = o.get("parameters") or {}, o.get("driver")
        else:
            continue
        c.ok(f"{name}: {obj_id(o)} is for rds.csi.srvlab.io", drv == "rds.csi.srvlab.io")
        unknown = [k for k in params if not k.startswith("csi.storage.k8s.io/") and k not in consts]
        c.ok(f"{name}: {obj_id(o)} parameters are keys csi-frontend accepts", not unknown,
             f"unknown: {unknown}; accepted: {sorted(consts)}")


def check_layouts(c: Checks, rendered) -> None:
    """Flat stays the default (docs/btrfs.md): no installed StorageClass asks
    for another layout; the Btrfs example asks for subvolume and is not part
    of any overlay."""
    for name in ("examples", "overlays/prod", "overlays/dev"):
        if name in rendered:
            layouts = {obj_id(o): (o.get("parameters") or {}).get("volumeLayout", "flat")
                       for o in rendered[name] if o["kind"] == "StorageClass"}
            c.ok(f"{name}: every StorageClass is flat (the default layout)",
                 all(v == "flat" for v in layouts.values()), str(layouts))
    if "examples/btrfs" in rendered:
        sc = [o for o in rendered["examples/btrfs"] if o["kind"] == "StorageClass"]
        c.ok("examples/btrfs: one StorageClass with volumeLayout: subvolume",
             len(sc) == 1 and sc[0]["parameters"].get("volumeLayout") == "subvolume", str(sc))
        names = {o["metadata"]["name"] for o in sc}
        for name in ("overlays/prod", "overlays/dev"):
            if name in rendered:
                ours = {o["metadata"]["name"] for o in rendered[name] if o["kind"] == "StorageClass"}
                c.ok(f"{name}: the subvolume example is not installed", not names & ours, str(ours))


def with_component(tmp: Path, component: str):
    """The prod overlay plus one optional component, as a user adds it."""
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(DEPLOY / "overlays/prod", tmp)],
        "components": [os.path.relpath(DEPLOY / "components" / component, tmp)],
    }))
    return render(tmp)


def main() -> None:
    c = Checks("deploy manifests render and validate")
    rendered = {}
    for k in KUSTOMIZATIONS:
        objs = c.run(f"kubectl kustomize deploy/{k}", lambda k=k: render(k))
        if objs is not None:
            rendered[k] = objs
            c.ok(f"deploy/{k} renders objects", len(objs) > 0)
    with tempfile.TemporaryDirectory(dir=DEPLOY) as td:
        sm = c.run(
            "kubectl kustomize deploy/overlays/prod + components/servicemonitor",
            lambda: with_servicemonitor(Path(td)),
        )
    if sm is not None:
        rendered["prod+servicemonitor"] = sm
        kinds = [o["kind"] for o in sm]
        c.ok("servicemonitor component adds two ServiceMonitors", kinds.count("ServiceMonitor") == 2)

    with tempfile.TemporaryDirectory(dir=DEPLOY) as td:
        snap = c.run(
            "kubectl kustomize deploy/overlays/prod + components/snapshots",
            lambda: with_component(Path(td), "snapshots"),
        )
    if snap is not None:
        rendered["prod+snapshots"] = snap
        vsc = [o for o in snap if o["kind"] == "VolumeSnapshotClass"]
        c.ok("snapshots component adds the VolumeSnapshotClass, cluster-scoped",
             len(vsc) == 1 and "namespace" not in vsc[0]["metadata"], str(vsc))

    for name, objs in rendered.items():
        check_schemas(c, name, objs)
    for name in ("overlays/prod", "overlays/dev", "prod+servicemonitor"):
        if name in rendered:
            check_structure(c, name, rendered[name])
    if "base" in rendered:
        check_driver(c, rendered["base"])
    for name in ("examples", "examples/btrfs", "overlays/prod", "overlays/dev"):
        if name in rendered:
            check_storage_classes(c, name, rendered[name])
    check_layouts(c, rendered)
    if "overlays/dev" in rendered:
        check_dev(c, rendered["overlays/dev"])
    if "overlays/prod" in rendered:
        kinds = {o["kind"] for o in rendered["overlays/prod"]}
        c.ok("prod: the StorageClass example included", "StorageClass" in kinds)
        # Applying prod must work on a cluster without the snapshot CRDs.
        c.ok("prod: no VolumeSnapshotClass unless the snapshots component is added", "VolumeSnapshotClass" not in kinds)
        sc = [o["metadata"]["name"] for o in rendered["overlays/prod"] if o["kind"] == "StorageClass"]
        c.ok("prod: the example StorageClass is not the Go driver's rds-nvme", "rds-nvme" not in sc, str(sc))
        c.ok("prod: no rds-sim, no Jaeger", not any(
            o["metadata"]["name"] in ("rds-sim", "jaeger") for o in rendered["overlays/prod"]))

    # The validators must be able to fail: a typo'd field and a bad enum.
    bad_vsc = {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
               "metadata": {"name": "x"}, "driver": "d", "deletionPolicy": "Sometimes"}
    c.ok("self-test: a VolumeSnapshotClass with a bad deletionPolicy is refused", bool(validate_object(bad_vsc, {})))
    bad_sm = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
              "metadata": {"name": "x", "namespace": "n"}, "spec": {"selector": {}, "endpoints": [{"prot": "m"}]}}
    c.ok("self-test: a ServiceMonitor with an unknown field is refused", bool(validate_object(bad_sm, {})))
    bad_meta = dict(bad_vsc, deletionPolicy="Delete", metadata={"name": "x", "lables": {}})
    c.ok("self-test: CR metadata is checked as ObjectMeta", bool(validate_object(bad_meta, {})))
    bad_dep = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}, "secrts": []}
    c.ok("self-test: a built-in object with an unknown field is refused", bool(validate_object(bad_dep, {})))
    if "base" in rendered:
        ctrl = copy.deepcopy(next(o for o in rendered["base"] if o["kind"] == "Deployment"))
        ctrl["spec"]["template"]["spec"]["containers"][0]["mountPropagaton"] = "Bidirectional"
        c.ok("self-test: a typo deep in the controller Deployment's pod spec is refused",
             bool(validate_object(ctrl, {})))
    c.finish()


if __name__ == "__main__":
    main()
