#!/usr/bin/env python3
"""RBAC grants exactly what the code uses.

1. From the Rust sources of services/<crate>/src (test modules excluded: from
   `#[cfg(test)]` to the end of the file) list the (api group, resource, verb)
   triples each service uses:
     - `Api<T>` bindings (`x: Api<T>` in a let, a struct field or a parameter,
       `let x = Api::<T>::…`; `PartialObjectMeta<T>` counts as T), and calls
       on them: get/get_opt/get_metadata → get, list → list, watch → watch,
       create → create, replace → update, patch → patch, delete → delete,
       `*_status` → the status subresource;
     - `watcher(x, …)`, `metadata_watcher(x, …)`, `Controller::new(x, …)`
       (and reflector, which wraps a watcher) → list + watch;
     - kube's events `Recorder::new` → events.k8s.io events create + patch
       (kube-runtime 5: create, then patch for a repeated event).
   A call on an `Api` whose resource type cannot be told fails the test:
   annotate it (`let x: Api<T>`).
   csi-frontend's triples go to the pod that runs its role: sources under a
   `node` path → node role, the rest → controller role. event-service's PV
   calls live in one file per `--pv-lookup` mode (EVENT_PV_LOOKUP); a
   container gets the mode its args select.
2. The sidecars' rules are their upstream deploy/kubernetes/rbac.yaml at the
   pinned tag (table below; optional rules we do not need left out).
3. For each ServiceAccount of the rendered base: every rule bound to it
   (Roles and ClusterRoles) must equal the union of what its pod's
   containers use. Missing verbs and extra verbs both fail. Each of our
   per-component roles (rds-csi-<component>) must equal its component's
   triples, and each sidecar role its table entry.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from common import (
    REPO,
    SIDECAR_PREFIX,
    Checks,
    containers,
    image_repo,
    our_binary,
    pod_templates,
    render,
)

Triple = tuple[str, str, str]  # (api group, resource, verb)

# Kubernetes types (k8s-openapi names) → (api group, plural resource).
RESOURCES = {
    "Pod": ("", "pods"),
    "Node": ("", "nodes"),
    "PersistentVolume": ("", "persistentvolumes"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "Secret": ("", "secrets"),
    "ConfigMap": ("", "configmaps"),
    "Namespace": ("", "namespaces"),
    "Event": ("", "events"),  # core/v1; events::v1::Event is resolved below
    "VolumeAttachment": ("storage.k8s.io", "volumeattachments"),
    "CSINode": ("storage.k8s.io", "csinodes"),
    "CSIDriver": ("storage.k8s.io", "csidrivers"),
    "StorageClass": ("storage.k8s.io", "storageclasses"),
    "Lease": ("coordination.k8s.io", "leases"),
}

VERBS = {
    "get": ("get", ""), "get_opt": ("get", ""), "get_metadata": ("get", ""),
    "get_metadata_opt": ("get", ""), "list": ("list", ""), "list_metadata": ("list", ""),
    "watch": ("watch", ""), "watch_metadata": ("watch", ""), "create": ("create", ""),
    "replace": ("update", ""), "patch": ("patch", ""), "patch_metadata": ("patch", ""),
    "delete": ("delete", ""), "delete_collection": ("deletecollection", ""),
    "get_status": ("get", "/status"), "replace_status": ("update", "/status"),
    "patch_status": ("patch", "/status"),
}

# Upstream RBAC of the sidecars at the pinned tags (deploy/kubernetes/rbac.yaml
# of each repository), without the optional rules we do not need (secrets,
# CSIStorageCapacity and its owner lookups, referencegrants).
LEASES = [("coordination.k8s.io", "leases", v) for v in ("get", "watch", "list", "delete", "update", "create")]


def _rules(*rules: tuple[str, str, str]) -> set[Triple]:
    out = set()
    for group, resource, verbs in rules:
        for v in verbs.split():
            out.add((group, resource, v))
    return out


SIDECAR_RBAC: dict[str, set[Triple]] = {
    "csi-provisioner": _rules(  # external-provisioner v6.3.0
        ("", "persistentvolumes", "get list watch create patch delete"),
        ("", "persistentvolumeclaims", "get list watch update"),
        ("storage.k8s.io", "storageclasses", "get list watch"),
        ("", "events", "list watch create update patch"),
        ("snapshot.storage.k8s.io", "volumesnapshots", "get list watch update"),
        ("snapshot.storage.k8s.io", "volumesnapshotcontents", "get list"),
        ("storage.k8s.io", "csinodes", "get list watch"),
        ("", "nodes", "get list watch"),
        ("storage.k8s.io", "volumeattachments", "get list watch"),
    ) | set(LEASES),
    "csi-attacher": _rules(  # external-attacher v4.12.0
        ("", "persistentvolumes", "get list watch patch"),
        ("storage.k8s.io", "csinodes", "get list watch"),
        ("storage.k8s.io", "volumeattachments", "get list watch patch"),
        ("storage.k8s.io", "volumeattachments/status", "patch"),
    ) | set(LEASES),
    "csi-resizer": _rules(  # external-resizer v2.2.1
        ("", "persistentvolumes", "get list watch patch"),
        ("", "persistentvolumeclaims", "get list watch"),
        ("", "pods", "get list watch"),
        ("", "persistentvolumeclaims/status", "patch"),
        ("", "events", "list watch create update patch"),
        ("storage.k8s.io", "volumeattributesclasses", "get list watch"),
    ) | set(LEASES),
    "csi-snapshotter": _rules(  # external-snapshotter v8.6.0, csi-snapshotter sidecar
        ("", "events", "list watch create update patch"),
        ("snapshot.storage.k8s.io", "volumesnapshotclasses", "get list watch"),
        ("snapshot.storage.k8s.io", "volumesnapshotcontents", "get list watch update patch"),
        ("snapshot.storage.k8s.io", "volumesnapshotcontents/status", "update patch"),
        ("groupsnapshot.storage.k8s.io", "volumegroupsnapshotclasses", "get list watch"),
        ("groupsnapshot.storage.k8s.io", "volumegroupsnapshotcontents", "get list watch update patch"),
        ("groupsnapshot.storage.k8s.io", "volumegroupsnapshotcontents/status", "update patch"),
    ) | set(LEASES),
    # No API access at all.
    "csi-node-driver-registrar": set(),
    "livenessprobe": set(),
}
# Which rendered role carries which sidecar's rules (leases: one shared Role).
SIDECAR_ROLES = {
    "rds-csi-external-provisioner": "csi-provisioner",
    "rds-csi-external-attacher": "csi-attacher",
    "rds-csi-external-resizer": "csi-resizer",
    "rds-csi-external-snapshotter": "csi-snapshotter",
}


# event-service's `--pv-lookup=MODE` (default watch): the source file of each
# mode's PV calls. The container's triples are the crate's other files plus
# the file of the mode its args select.
EVENT_PV_LOOKUP = {"watch": "pv_watch", "get": "pv_get"}


def event_service_comps(ct: dict) -> list[str]:
    mode = next((a.split("=", 1)[1] for a in ct.get("args", []) if a.startswith("--pv-lookup=")), "watch")
    return ["event-service", f"event-service/pv-{mode}"]


def strip_tests(text: str) -> str:
    i = text.find("#[cfg(test)]")
    return text if i < 0 else text[:i]


def norm_type(t: str) -> str:
    t = t.strip()
    m = re.fullmatch(r"(?:[\w:]+::)?PartialObjectMeta\s*<\s*(.+)\s*>", t)
    if m:
        t = m.group(1)
    return t.split("::")[-1].strip()


def resource_of(t: str, text: str) -> tuple[str, str] | None:
    name = norm_type(t)
    if name == "Event" and re.search(r"events::v1::(?:\{[^}]*\bEvent\b|Event\b)", text):
        return ("events.k8s.io", "events")
    return RESOURCES.get(name)


_BIND_TYPED = re.compile(r"\b(\w+)\s*:\s*(?:kube::)?Api\s*<\s*((?:[\w:]+\s*<\s*[\w:]+\s*>)|[\w:]+)\s*>")
_BIND_TURBO = re.compile(r"\blet\s+(?:mut\s+)?(\w+)\s*=\s*(?:kube::)?Api::<\s*((?:[\w:]+\s*<\s*[\w:]+\s*>)|[\w:]+)\s*>::")
_BIND_UNTYPED = re.compile(r"\blet\s+(?:mut\s+)?(\w+)\s*=\s*(?:kube::)?Api::(?:all|namespaced|default_namespaced)\w*\s*\(")
_CALL = re.compile(r"\b(?:self\s*\.\s*)?(\w+)\s*\.\s*(" + "|".join(sorted(VERBS, key=len, reverse=True)) + r")\s*\(")
_INLINE_CALL = re.compile(r"Api::<\s*((?:[\w:]+\s*<\s*[\w:]+\s*>)|[\w:]+)\s*>::\w+\s*\([^;]*?\)\s*\.\s*(" + "|".join(VERBS) + r")\s*\(")
_WATCH = re.compile(r"\b(?:watcher|metadata_watcher|Controller::new|Controller::new_with)\s*\(\s*(?:self\s*\.\s*)?(\w+)\b")
_WATCH_INLINE = re.compile(r"\b(?:watcher|metadata_watcher|Controller::new)\s*\(\s*Api::<\s*((?:[\w:]+\s*<\s*[\w:]+\s*>)|[\w:]+)\s*>::")


def scan_file(path: Path) -> tuple[set[Triple], list[str]]:
    text = strip_tests(path.read_text())
    if "kube" not in text:
        return set(), []
    rel = path.relative_to(REPO)
    bindings: list[tuple[int, str, str | None]] = []  # (pos, ident, type or None)
    for m in _BIND_TYPED.finditer(text):
        bindings.append((m.start(), m.group(1), m.group(2)))
    for m in _BIND_TURBO.finditer(text):
        bindings.append((m.start(), m.group(1), m.group(2)))
    for m in _BIND_UNTYPED.finditer(text):
        # `let x = Api::all(c)` whose type is annotated elsewhere stays unknown
        # unless a typed binding of the same name exists in the file.
        bindings.append((m.start(), m.group(1), None))
    bindings.sort()

    def type_at(ident: str, pos: int) -> tuple[bool, str | None]:
        before = [b for b in bindings if b[1] == ident and b[0] < pos and b[2] is not None]
        if before:
            return True, before[-1][2]
        typed = [b for b in bindings if b[1] == ident and b[2] is not None]
        if typed:  # struct field declared after its use
            return True, typed[0][2]
        untyped = [b for b in bindings if b[1] == ident]
        return (bool(untyped), None)

    triples: set[Triple] = set()
    problems: list[str] = []

    def add(t: str | None, verbs: list[tuple[str, str]], pos: int, what: str) -> None:
        line = text.count("\n", 0, pos) + 1
        if t is None:
            problems.append(f"{rel}:{line}: {what}: cannot tell the resource type (annotate `let x: Api<T>`)")
            return
        res = resource_of(t, text)
        if res is None:
            problems.append(f"{rel}:{line}: {what}: type {t} is not in RESOURCES of test_rbac.py")
            return
        for verb, sub in verbs:
            triples.add((res[0], res[1] + sub, verb))

    for m in _CALL.finditer(text):
        ident, method = m.group(1), m.group(2)
        is_api, t = type_at(ident, m.start())
        if is_api:
            add(t, [VERBS[method]], m.start(), f"{ident}.{method}()")
    for m in _INLINE_CALL.finditer(text):
        add(m.group(1), [VERBS[m.group(2)]], m.start(), f"Api::<{m.group(1)}>….{m.group(2)}()")
    for m in _WATCH.finditer(text):
        is_api, t = type_at(m.group(1), m.start())
        if is_api:
            add(t, [("list", ""), ("watch", "")], m.start(), f"watcher({m.group(1)})")
    for m in _WATCH_INLINE.finditer(text):
        add(m.group(1), [("list", ""), ("watch", "")], m.start(), "watcher(Api::<…>)")
    for m in re.finditer(r"\bRecorder::new\s*\(", text):
        triples |= {("events.k8s.io", "events", "create"), ("events.k8s.io", "events", "patch")}
    # Any other Api construction we did not account for is a blind spot.
    api_uses = len(re.findall(r"\bApi::", text)) + len(re.findall(r"\bApi\s*<", text))
    if api_uses and not triples and not problems:
        problems.append(f"{rel}: uses kube Api but no call was recognised: extend test_rbac.py")
    return triples, problems


def code_triples() -> tuple[dict[str, set[Triple]], list[str]]:
    """component → triples; components: attachment-service, event-service,
    rds-agent, rds-sim, csi-frontend/controller, csi-frontend/node."""
    out: dict[str, set[Triple]] = defaultdict(set)
    problems: list[str] = []
    for crate in ("csi-frontend", "attachment-service", "event-service", "rds-agent", "rds-sim"):
        src = REPO / "services" / crate / "src"
        for f in sorted(src.rglob("*.rs")):
            t, p = scan_file(f)
            problems += p
            if crate == "csi-frontend":
                role = "node" if "node" in f.relative_to(src).parts or f.stem.startswith("node") else "controller"
                out[f"csi-frontend/{role}"] |= t
            elif crate == "event-service" and f.stem in EVENT_PV_LOOKUP.values():
                mode = next(m for m, stem in EVENT_PV_LOOKUP.items() if stem == f.stem)
                out[f"event-service/pv-{mode}"] |= t
            else:
                out[crate] |= t
    return out, problems


def rules_triples(rules: list[dict]) -> set[Triple]:
    out = set()
    for r in rules or []:
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                for v in r.get("verbs", []):
                    out.add((g, res, v))
    return out


def fmt(ts: set[Triple]) -> str:
    by = defaultdict(list)
    for g, r, v in sorted(ts):
        by[(g or "core", r)].append(v)
    return "\n".join(f"{g} {r}: {' '.join(vs)}" for (g, r), vs in sorted(by.items())) or "(none)"


def bound_rules(objs: list[dict], ns: str, sa: str) -> tuple[set[Triple], list[str]]:
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
             for o in objs if o["kind"] in ("Role", "ClusterRole")}
    triples: set[Triple] = set()
    names = []
    for b in objs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa and s.get("namespace", ns) == ns
                   for s in b.get("subjects", [])):
            continue
        ref = b["roleRef"]
        key = (ref["kind"], b["metadata"].get("namespace") if ref["kind"] == "Role" else None, ref["name"])
        role = roles.get(key)
        if role is None:
            raise AssertionError(f"{b['kind']} {b['metadata']['name']} refers to missing {ref['kind']} {ref['name']}")
        names.append(f"{ref['kind']}/{ref['name']}")
        triples |= rules_triples(role.get("rules"))
    return triples, names


def main() -> None:
    c = Checks("RBAC covers exactly the verbs the code uses")
    code, problems = code_triples()
    c.ok("every kube API use in services/ is understood", not problems, "\n".join(problems))
    for comp in sorted(code):
        print(f"  code: {comp}:\n" + "\n".join("        " + l for l in fmt(code[comp]).splitlines()))

    objs = c.run("render deploy/base", lambda: render("base"))
    if objs is None:
        c.finish()
    roles = {o["metadata"]["name"]: o for o in objs if o["kind"] in ("Role", "ClusterRole")}

    # Per-role exactness.
    for role_name, sidecar in SIDECAR_ROLES.items():
        have = rules_triples(roles.get(role_name, {}).get("rules"))
        want = SIDECAR_RBAC[sidecar] - set(LEASES)
        c.ok(f"{role_name} = upstream {sidecar} RBAC", have == want,
             f"missing:\n{fmt(want - have)}\nextra:\n{fmt(have - want)}")
    le = rules_triples(roles.get("rds-csi-sidecar-leader-election", {}).get("rules"))
    c.ok("rds-csi-sidecar-leader-election = the sidecars' Lease rule", le == set(LEASES), fmt(le))
    c.ok("sidecar leader election is a namespaced Role",
         roles.get("rds-csi-sidecar-leader-election", {}).get("kind") == "Role")

    # role name -> the code components whose calls it must grant exactly.
    ours = {
        "rds-csi-attachment-service": ["attachment-service"],
        "rds-csi-event-service": ["event-service", "event-service/pv-watch"],
        "rds-csi-event-service-node": ["event-service", "event-service/pv-get"],
        "rds-csi-frontend-controller": ["csi-frontend/controller"],
    }
    for rn, comps in ours.items():
        comp = " + ".join(comps)
        role_names = [rn]
        have = set()
        for rn in role_names:
            have |= rules_triples(roles.get(rn, {}).get("rules"))
            # a Role of the same name (namespaced part, e.g. leases)
        have |= {t for o in objs if o["kind"] == "Role" and o["metadata"]["name"] in role_names
                 for t in rules_triples(o.get("rules"))}
        want = set().union(*(code.get(c, set()) for c in comps))
        c.ok(f"roles of {comp} = what its code uses", have == want,
             f"missing (code uses, RBAC lacks):\n{fmt(want - have)}\nextra (RBAC grants, code never uses):\n{fmt(have - want)}")
    for comp in ("rds-agent", "rds-sim", "csi-frontend/node"):
        c.ok(f"{comp} makes no Kubernetes API call (needs no RBAC)", not code.get(comp), fmt(code.get(comp, set())))
    cluster_leases = [n for n, o in roles.items() if o["kind"] == "ClusterRole"
                      and any(t[1] == "leases" for t in rules_triples(o.get("rules")))]
    c.ok("no ClusterRole grants Leases (leader election stays in the namespace)", not cluster_leases, str(cluster_leases))

    # Per-ServiceAccount exactness: what is bound == what its pod's containers use.
    seen_sa = set()
    for w, pod in pod_templates(objs):
        sa = pod.get("serviceAccountName", "default")
        ns = w["metadata"].get("namespace", "default")
        want: set[Triple] = set()
        users = []
        for ct in containers(pod):
            b = our_binary(ct)
            if b == "csi-frontend":
                role = next((a.split("=", 1)[1] for a in ct.get("args", []) if a.startswith("--role=")), "controller")
                comps = ["csi-frontend/controller", "csi-frontend/node"] if role == "all" else [f"csi-frontend/{role}"]
            elif b == "event-service":
                comps = event_service_comps(ct)
            elif b:
                comps = [b]
            else:
                repo = image_repo(ct.get("image", ""))
                sidecar = repo[len(SIDECAR_PREFIX):] if repo.startswith(SIDECAR_PREFIX) else repo
                if not c.ok(f"{w['metadata']['name']}:{ct['name']} image {repo} has a known RBAC table",
                            sidecar in SIDECAR_RBAC):
                    continue
                want |= SIDECAR_RBAC[sidecar]
                users.append(sidecar)
                continue
            for comp in comps:
                want |= code.get(comp, set())
                users.append(comp)
        try:
            have, bound = bound_rules(objs, ns, sa)
        except AssertionError as e:
            c.ok(f"ServiceAccount {sa}: bindings resolve", False, str(e))
            continue
        seen_sa.add(sa)
        c.ok(
            f"ServiceAccount {sa} ({w['kind']} {w['metadata']['name']}: {', '.join(users)}) has exactly the verbs its containers use",
            have == want,
            f"bound: {', '.join(bound)}\nmissing:\n{fmt(want - have)}\nextra:\n{fmt(have - want)}",
        )
    # The node pod runs on every node: it must not hold a cluster-wide list or
    # watch of PVs (its event-service resolves one PV at a time by GET).
    for w, pod in pod_templates(objs):
        if pod.get("serviceAccountName") != "rds-csi-node":
            continue
        have, _ = bound_rules(objs, w["metadata"].get("namespace", "default"), "rds-csi-node")
        pv = {v for g, r, v in have if g == "" and r == "persistentvolumes"}
        c.ok("the node ServiceAccount may get PVs but never list or watch them",
             pv == {"get"}, f"persistentvolumes verbs: {sorted(pv)}")
        ev = [ct for ct in containers(pod) if our_binary(ct) == "event-service"]
        c.ok("the node event-service runs with --pv-lookup=get",
             bool(ev) and all(event_service_comps(ct)[1] == "event-service/pv-get" for ct in ev),
             str([ct.get("args") for ct in ev]))
    c.ok("controller and node pods use separate ServiceAccounts", {"rds-csi-controller", "rds-csi-node"} <= seen_sa,
         str(seen_sa))

    # The scanner must be able to see uses: a synthetic file.
    import tempfile
    with tempfile.TemporaryDirectory(dir=REPO / "deploy") as td:
        f = Path(td) / "sample.rs"
        f.write_text(
            "use kube::Api;\nstruct S { leases: Api<Lease> }\n"
            "async fn a(c: Client) { let pvs: Api<PersistentVolume> = Api::all(c.clone());\n"
            "  pvs.get_opt(\"x\").await; let n = Api::<PartialObjectMeta<Node>>::all(c);\n"
            "  watcher(n, Config::default()); }\n"
            "impl S { async fn b(&self) { self.leases.replace(\"l\", &pp, &l).await; self.leases.patch_status(\"l\", &pp, &p).await; } }\n"
            "fn r(c: Client) { Recorder::new(c, rep); let u = Api::all(c); u.delete(\"x\"); }\n"
            "#[cfg(test)]\nmod tests { fn t(a: Api<Secret>) { a.list(&lp); } }\n"
        )
        t, p = scan_file(f)
    want = {
        ("", "persistentvolumes", "get"), ("", "nodes", "list"), ("", "nodes", "watch"),
        ("coordination.k8s.io", "leases", "update"), ("coordination.k8s.io", "leases/status", "patch"),
        ("events.k8s.io", "events", "create"), ("events.k8s.io", "events", "patch"),
    }
    c.ok("self-test: the scanner finds typed, turbofish, field, watcher and Recorder uses, skips tests", t == want,
         f"found:\n{fmt(t)}\nwanted:\n{fmt(want)}")
    c.ok("self-test: an untyped Api call is reported, not guessed", any("cannot tell" in x for x in p), "\n".join(p))
    c.finish()


if __name__ == "__main__":
    main()
