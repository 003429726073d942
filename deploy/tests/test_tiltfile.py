#!/usr/bin/env python3
"""The Tiltfile parses and evaluates, and declares what the dev loop needs.

The Tiltfile is evaluated by a real Starlark interpreter (the `starlark-pyo3`
package: Python bindings of the Rust `starlark` crate) with stub Tilt
builtins that record their calls. The stubs have Tilt's signatures (an
unknown keyword argument is an error, as in Tilt) and do the real work where
it is cheap: `kustomize()` runs `kubectl kustomize`, `decode_yaml_stream` /
`encode_yaml_stream` parse and write YAML, `read_file` reads the file. The
`ext://restart_process` extension is replaced by a stub with its signature.

Checked, for `tilt up` with the defaults (rds-sim), for `tilt ci`, and with
the real-RDS switch:
  - an image (docker_build_with_restart) for every service whose image the
    applied YAML uses, built from deploy/docker/dev.Dockerfile targets that
    exist, live-updating the binary to the path the entrypoint runs;
  - deploy/overlays/dev is what gets applied (k8s_yaml);
  - resources are labelled; the Jaeger UI (16686) and CSI metrics ports are
    port-forwarded, each to a port the workload declares;
  - a manual, not-auto-started resource runs the cluster tests (auto under
    `tilt ci`);
  - the real-RDS switch drops rds-sim, points the config at the given
    address and builds the Secret from the given files.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import starlark as sl
import yaml

from common import DEPLOY, REPO, SERVICES, Checks, kubectl, our_binary, pod_templates, containers

TILTFILE = REPO / "Tiltfile"
TRIGGER_MODE_AUTO = "TRIGGER_MODE_AUTO"
TRIGGER_MODE_MANUAL = "TRIGGER_MODE_MANUAL"


class TiltError(Exception):
    pass


class QuietChecks(Checks):
    """Collects results without printing (for the mutation self-tests)."""

    def __init__(self) -> None:
        self.title, self.passed, self.failed = "", 0, []

    def ok(self, name: str, cond: bool, detail: str = "") -> bool:
        if cond:
            self.passed += 1
        else:
            self.failed.append(name)
        return cond


class Recorder:
    """Stub Tilt: records every call; signatures follow Tilt's API reference."""

    def __init__(self, settings: dict[str, Any], subcommand: str) -> None:
        self.settings = settings
        self.subcommand = subcommand
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.defined: dict[str, str] = {}

    def rec(self, _call: str, /, **kw: Any) -> None:
        self.calls.append((_call, kw))

    def of(self, name: str) -> list[dict[str, Any]]:
        return [kw for n, kw in self.calls if n == name]

    # -- config
    def define(self, kind: str):
        def f(name, args=False, usage=""):
            self.defined[name] = kind
            self.rec("config.define_" + kind, name=name, args=args, usage=usage)
        return f

    def parse(self):
        unknown = set(self.settings) - set(self.defined)
        if unknown:
            raise TiltError(f"settings not defined by the Tiltfile: {unknown}")
        return dict(self.settings)

    # -- builtins
    def local_resource(self, name, cmd="", deps=None, trigger_mode=TRIGGER_MODE_AUTO, resource_deps=None,
                       ignore=None, auto_init=True, serve_cmd="", cmd_bat="", serve_cmd_bat="",
                       allow_parallel=False, links=None, tags=None, env=None, serve_env=None,
                       readiness_probe=None, dir="", serve_dir="", labels=None):
        self.rec("local_resource", name=name, cmd=cmd, deps=deps or [], trigger_mode=trigger_mode,
                 resource_deps=resource_deps or [], ignore=ignore, auto_init=auto_init, env=env or {},
                 labels=labels or [])

    def docker_build(self, ref, context, build_args=None, dockerfile="Dockerfile", dockerfile_contents="",
                     live_update=None, match_in_env_vars=False, ignore=None, only=None, entrypoint=None,
                     target="", ssh="", network="", secret="", extra_tag="", container_args=None,
                     cache_from=None, pull=False, platform=""):
        self.rec("docker_build", ref=ref, context=context, build_args=build_args or {}, dockerfile=dockerfile,
                 live_update=live_update or [], only=only or [], entrypoint=entrypoint, target=target)

    def docker_build_with_restart(self, ref, context, entrypoint, live_update, base_suffix="-base",
                                  restart_file="/.restart-proc", **kwargs):
        # The extension forwards **kwargs to docker_build: check them the same way.
        self.docker_build(ref + base_suffix, context, **kwargs)
        self.calls.pop()
        self.rec("docker_build_with_restart", ref=ref, context=context, entrypoint=entrypoint,
                 live_update=live_update, restart_file=restart_file, **kwargs)

    def sync(self, local_path, remote_path):
        return {"step": "sync", "local": local_path, "remote": remote_path}

    def port_forward(self, local_port, container_port=None, name=None, link_path=None, host=None):
        return {"local": local_port, "container": container_port or local_port, "name": name}

    def k8s_resource(self, workload="", new_name="", port_forwards=None, extra_pod_selectors=None,
                     trigger_mode=TRIGGER_MODE_AUTO, resource_deps=None, objects=None, auto_init=True,
                     pod_readiness="", links=None, labels=None, discovery_strategy=""):
        pf = port_forwards or []
        if not isinstance(pf, list):
            pf = [pf]
        self.rec("k8s_resource", workload=workload, new_name=new_name, port_forwards=pf,
                 resource_deps=resource_deps or [], objects=objects or [], labels=labels or [],
                 trigger_mode=trigger_mode, auto_init=auto_init)

    def kustomize(self, pathToDir, kustomize_bin=None, flags=None):
        self.rec("kustomize", path=pathToDir)
        p = subprocess.run([kubectl(), "kustomize", str(REPO / pathToDir)], capture_output=True, text=True,
                           timeout=120)
        if p.returncode != 0:
            raise TiltError(p.stderr)
        return p.stdout

    def k8s_yaml(self, yaml_text, allow_duplicates=False):
        self.rec("k8s_yaml", yaml=yaml_text)

    def decode_yaml_stream(self, text):
        return [d for d in yaml.safe_load_all(text) if d]

    def encode_yaml_stream(self, objs):
        return yaml.safe_dump_all(objs)

    def read_file(self, file_path, default=None):
        p = Path(file_path).expanduser()
        p = p if p.is_absolute() else REPO / p
        if not p.exists():
            if default is not None:
                return default
            raise TiltError(f"read_file: {p} does not exist")
        return p.read_text()

    def fail(self, msg):
        raise TiltError(str(msg))


def evaluate(settings: dict[str, Any], subcommand: str = "up", source: str | None = None) -> Recorder:
    r = Recorder(settings, subcommand)
    m = sl.Module()
    simple = ["local_resource", "docker_build", "sync", "port_forward", "k8s_resource", "kustomize",
              "k8s_yaml", "decode_yaml_stream", "encode_yaml_stream", "read_file", "fail"]
    for n in simple:
        m.add_callable(n, getattr(r, n))
    m.add_callable("_define_string", r.define("string"))
    m.add_callable("_define_bool", r.define("bool"))
    m.add_callable("_define_string_list", r.define("string_list"))
    m.add_callable("_parse", r.parse)
    m["TRIGGER_MODE_AUTO"] = TRIGGER_MODE_AUTO
    m["TRIGGER_MODE_MANUAL"] = TRIGGER_MODE_MANUAL
    m["_main_dir"] = str(REPO)
    m["_subcommand"] = subcommand
    globals_ = sl.Globals.extended_by([sl.LibraryExtension.StructType, sl.LibraryExtension.Print,
                                       sl.LibraryExtension.Json])
    prelude = (
        "config = struct(define_string=_define_string, define_bool=_define_bool, "
        "define_string_list=_define_string_list, parse=_parse, main_dir=_main_dir, "
        "tilt_subcommand=_subcommand)\n"
    )
    sl.eval(m, sl.parse("prelude", prelude, sl.Dialect.extended()), globals_)

    def load(module_id: str):
        if module_id != "ext://restart_process":
            raise TiltError(f"unexpected load({module_id!r})")
        ext = sl.Module()
        ext.add_callable("docker_build_with_restart", r.docker_build_with_restart)
        return ext.freeze()

    ast = sl.parse("Tiltfile", source if source is not None else TILTFILE.read_text(), sl.Dialect.extended())
    sl.eval(m, ast, globals_, sl.FileLoader(load))
    return r


def dockerfile_targets(path: Path) -> set[str]:
    return set(re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", path.read_text()))


def check_up(c: Checks, r: Recorder, label: str, expect_sim: bool) -> None:
    services = [s for s in SERVICES if expect_sim or s != "rds-sim"]
    builds = {kw["ref"]: kw for kw in r.of("docker_build_with_restart")}
    c.ok(f"{label}: an image for every service", sorted(builds) == sorted("rds-csi/" + s for s in services),
         str(sorted(builds)))
    for ref, kw in builds.items():
        svc = ref.split("/", 1)[1]
        df = REPO / kw.get("dockerfile", "Dockerfile")
        c.ok(f"{label}: {ref} Dockerfile {df.relative_to(REPO)} exists", df.is_file())
        if df.is_file():
            c.ok(f"{label}: {ref} target {kw.get('target')} exists", kw.get("target") in dockerfile_targets(df))
        c.ok(f"{label}: {ref} builds only its binary, passed as BIN", kw.get("only") == [svc]
             and kw.get("build_args", {}).get("BIN") == svc)
        syncs = [s for s in kw["live_update"] if isinstance(s, dict) and s.get("step") == "sync"]
        entry = kw["entrypoint"][0] if kw.get("entrypoint") else None
        c.ok(f"{label}: {ref} live-updates {kw['context']}/{svc} to the binary its entrypoint runs",
             len(syncs) == 1 and syncs[0]["local"] == f"{kw['context']}/{svc}" and syncs[0]["remote"] == entry,
             str(syncs) + f" entrypoint {entry}")
        c.ok(f"{label}: {ref} restart file sits next to the binary (writable by the pod's user)",
             Path(kw["restart_file"]).parent == Path(entry or "/").parent)

    compile_ = [kw for kw in r.of("local_resource") if kw["name"] == "compile"]
    if c.ok(f"{label}: a compile resource builds the binaries", len(compile_) == 1):
        cmd = compile_[0]["cmd"]
        c.ok(f"{label}: compile is an argv (no shell) running cargo build", isinstance(cmd, list)
             and "cargo" in cmd and "build" in cmd, str(cmd))
        packages = {cmd[i + 1] for i, a in enumerate(cmd[:-1]) if a == "-p"}
        c.ok(f"{label}: compile builds every imaged service", set(services) <= packages, str(cmd))
        target = cmd[cmd.index("--target-dir") + 1] if "--target-dir" in cmd else "target"
        ctx = {kw["context"] for kw in builds.values()}
        c.ok(f"{label}: images are built from compile's output dir", ctx == {target + "/debug"}, f"{ctx} vs {target}")
        for d in compile_[0]["deps"]:
            c.ok(f"{label}: compile dep {d} exists", (REPO / d).exists())

    kz = r.of("kustomize")
    c.ok(f"{label}: applies deploy/overlays/dev", [k["path"] for k in kz] == ["deploy/overlays/dev"], str(kz))
    ky = r.of("k8s_yaml")
    if not c.ok(f"{label}: k8s_yaml called once", len(ky) == 1):
        return
    objs = [d for d in yaml.safe_load_all(ky[0]["yaml"]) if d]
    used = set()
    for w, pod in pod_templates(objs):
        for ct in containers(pod):
            if our_binary(ct):
                used.add(ct["image"].split(":")[0])
    c.ok(f"{label}: every rds-csi image the YAML uses is built by Tilt, and only those",
         used == set(builds), f"used {sorted(used)} built {sorted(builds)}")

    resources = {(kw["workload"] or kw["new_name"]): kw for kw in r.of("k8s_resource")}
    workloads = {o["metadata"]["name"]: o for o in objs if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job")}
    for name, kw in resources.items():
        if kw["workload"]:
            c.ok(f"{label}: k8s_resource {name} is a workload of the YAML", name in workloads)
        c.ok(f"{label}: resource {name} has a label", bool(kw["labels"]))
    for kw in r.of("local_resource"):
        c.ok(f"{label}: local resource {kw['name']} has a label", bool(kw["labels"]))
    # Tilt's grouping (internal/tiltfile/tiltfile_state.go assembleK8s): each
    # workload is a resource together with the Services whose selector
    # matches its pod labels; an `objects` fragment (name:kind, full match,
    # case-insensitive) must name exactly one object, still unassigned.
    templates = [w["spec"]["template"]["metadata"].get("labels", {}) for w in workloads.values()]

    def auto_grouped(o):
        sel = (o.get("spec") or {}).get("selector") or {} if o["kind"] == "Service" else {}
        return bool(sel) and any(all(t.get(k) == v for k, v in sel.items()) for t in templates)

    unassigned = [o for o in objs if o["metadata"]["name"] not in workloads or o["kind"] not in
                  ("Deployment", "DaemonSet", "StatefulSet", "Job")]
    unassigned = [o for o in unassigned if not auto_grouped(o)]
    for kw in resources.values():
        for frag in kw["objects"]:
            parts = frag.lower().split(":")

            def hit(o, parts=parts):
                want = [o["metadata"]["name"].lower(), o["kind"].lower(), o["metadata"].get("namespace", "").lower()]
                return all(p == w for p, w in zip(parts, want))

            everywhere = [o for o in objs if hit(o)]
            left = [o for o in unassigned if hit(o)]
            c.ok(f"{label}: objects fragment {frag} names one object not already grouped by Tilt",
                 len(everywhere) == 1 and len(left) == 1, f"matches {len(everywhere)}, unassigned {len(left)}")
            unassigned = [o for o in unassigned if not hit(o)]
    names = set(resources) | {kw["name"] for kw in r.of("local_resource")}
    for n, kw in list(resources.items()) + [(k["name"], k) for k in r.of("local_resource")]:
        missing = [d for d in kw["resource_deps"] if d not in names]
        c.ok(f"{label}: {n} depends only on declared resources", not missing, str(missing))
    c.ok(f"{label}: nothing is left uncategorized", not unassigned,
         str([f"{o['metadata']['name']}:{o['kind']}" for o in unassigned]))

    def forwards(name):
        return resources.get(name, {}).get("port_forwards", [])

    def declared(name):
        w = workloads.get(name)
        if not w:
            return set()
        return {p["containerPort"] for ct in containers(w["spec"]["template"]["spec"]) for p in ct.get("ports", []) or []}

    c.ok(f"{label}: Jaeger UI port-forwarded on 16686", any(p["local"] == 16686 and p["container"] == 16686
                                                          for p in forwards("jaeger")), str(forwards("jaeger")))
    for name in resources:
        for p in forwards(name):
            c.ok(f"{label}: {name} forwards {p['local']}→{p['container']}, a port the workload declares",
                 p["container"] in declared(name), str(declared(name)))
    metrics_fwd = [p for n in ("rds-csi-controller", "rds-csi-node") for p in forwards(n)]
    c.ok(f"{label}: CSI metrics ports are port-forwarded", len(metrics_fwd) >= 1, str(metrics_fwd))
    locals_ = [p["local"] for n in resources for p in forwards(n)]
    c.ok(f"{label}: local forward ports are distinct", len(locals_) == len(set(locals_)), str(locals_))

    manual = [kw for kw in r.of("local_resource") if kw["trigger_mode"] == TRIGGER_MODE_MANUAL]
    if c.ok(f"{label}: a manual resource runs the cluster tests", len(manual) == 1, str(manual)):
        m = manual[0]
        c.ok(f"{label}: cluster tests run cargo test on the ignored tests", m["cmd"][:2] == ["cargo", "test"]
             and "--ignored" in m["cmd"], str(m["cmd"]))
        c.ok(f"{label}: cluster tests start only {'under tilt ci' if r.subcommand != 'ci' else 'automatically in ci'}",
             m["auto_init"] == (r.subcommand == "ci"))
        c.ok(f"{label}: cluster tests wait for the driver", {"rds-csi-controller", "rds-csi-node"} <= set(m["resource_deps"]))
    c.ok(f"{label}: a switch selects a real RDS", r.defined.get("rds-address") == "string")
    sim = [o for o in objs if o["metadata"]["name"] == "rds-sim"]
    c.ok(f"{label}: rds-sim {'deployed' if expect_sim else 'not deployed'}", bool(sim) == expect_sim)


def main() -> None:
    c = Checks("Tiltfile evaluates with stub Tilt builtins (starlark-pyo3)")
    r = c.run("Tiltfile evaluates: tilt up (defaults, rds-sim)", lambda: evaluate({}))
    if r:
        check_up(c, r, "up", expect_sim=True)
    r = c.run("Tiltfile evaluates: tilt ci", lambda: evaluate({}, "ci"))
    if r:
        check_up(c, r, "ci", expect_sim=True)

    keys = DEPLOY / "overlays/dev/dev-keys"
    real = {
        "rds-address": "192.0.2.10",
        "rds-key-file": str(keys / "client_ed25519"),
        "rds-host-key-file": str(keys / "sim_host_ed25519.pub"),
        "nvme-address": "192.0.2.20",
        "rds-user": "metal-csi",
    }
    r = c.run("Tiltfile evaluates: tilt up -- --rds-address=… (real RDS)", lambda: evaluate(real))
    if r:
        check_up(c, r, "real-rds", expect_sim=False)
        objs = [d for d in yaml.safe_load_all(r.of("k8s_yaml")[0]["yaml"]) if d]
        cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("rds-csi-config"))
        c.ok("real-rds: config points at the given RDS", cm["data"]["rds-address"] == "192.0.2.10"
             and cm["data"]["nvme-address"] == "192.0.2.20" and cm["data"]["rds-user"] == "metal-csi", str(cm["data"]))
        sec = next(o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"].startswith("rds-csi-secret"))
        c.ok("real-rds: Secret built from the given key files",
             sec.get("stringData", {}).get("rds-private-key") == Path(real["rds-key-file"]).read_text()
             and sec.get("stringData", {}).get("rds-host-key") == Path(real["rds-host-key-file"]).read_text()
             and "data" not in sec)
        c.ok("real-rds: rds-sim's keys not deployed",
             not any(o["metadata"]["name"].startswith("rds-sim-keys") for o in objs))
    try:
        evaluate({"rds-address": "192.0.2.10"})
        c.ok("real-rds without key files fails with a reason", False)
    except Exception as e:  # noqa: BLE001 - the Starlark error wraps fail()
        c.ok("real-rds without key files fails with a reason", "rds-key-file" in str(e), str(e))

    # The stubs must be able to fail: a misspelt keyword is an error as in Tilt.
    r0 = Recorder({}, "up")
    try:
        r0.k8s_resource("x", port_forward=[1])
        c.ok("self-test: stubs refuse unknown keyword arguments", False)
    except TypeError:
        c.ok("self-test: stubs refuse unknown keyword arguments", True)

    # Mutations of the Tiltfile that the checks must catch.
    text = TILTFILE.read_text()
    mutations = {
        "no Jaeger port-forward": ("port_forward(16686, 16686", "port_forward(16687, 16686", "Jaeger UI"),
        "a service without an image": ("SERVICES = ['csi-frontend', 'attachment-service'",
                                       "SERVICES = ['csi-frontend'", "every rds-csi image"),
        "another overlay": ("kustomize('deploy/overlays/dev')", "kustomize('deploy/overlays/prod')",
                            "applies deploy/overlays/dev"),
        "cluster tests on auto": ("trigger_mode=TRIGGER_MODE_MANUAL,", "", "manual resource"),
        "Services Tilt already grouped listed again": (" and not selects_a_workload(o)", "",
                                                       "not already grouped by Tilt"),
    }
    for what, (old, new, check) in mutations.items():
        q = QuietChecks()
        if not c.ok(f"self-test: mutation '{what}' applies", old in text):
            continue
        try:
            check_up(q, evaluate({}, source=text.replace(old, new, 1)), "m", expect_sim=True)
        except Exception as e:  # noqa: BLE001 - an evaluation failure also catches it
            q.failed.append(str(e))
        c.ok(f"self-test: mutation '{what}' is caught", any(check in f for f in q.failed), str(q.failed))
    c.finish()


if __name__ == "__main__":
    main()
