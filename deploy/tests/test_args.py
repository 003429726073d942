#!/usr/bin/env python3
"""Every arg and env var our binaries get in the rendered manifests is accepted.

For each container that runs one of our images (rds-csi/<binary>) in the
rendered base, prod and dev manifests, run

    target/debug/<binary> <container args> --check-config

with exactly the container's environment, and require exit 0. The binary
parses and validates its flags, env and files, prints the effective config
and exits without serving (docs/local-mode.md §6).

Substitutions, the only differences from what the kubelet would run:
  - env `valueFrom.configMapKeyRef`: the value from the rendered ConfigMap
    (a missing key fails, unless the ref is optional);
  - env `valueFrom.fieldRef`: a placeholder per field (spec.nodeName →
    "node-1", metadata.name → "<workload>-0", metadata.namespace → the
    object's namespace, status.podIP/hostIP → 192.0.2.1);
  - env `valueFrom.secretKeyRef`: "placeholder" (our containers use none);
  - `$(VAR)` in args is expanded from the env, as the kubelet does;
  - a path under a volume mount is moved under a temp dir standing in for
    that volume: Secret and ConfigMap volumes are materialized with their
    rendered data (honouring `items`); a Secret the user creates (rds-csi-secret,
    see deploy/base/secret.example.yaml) gets stand-in content of the same
    shape: the dev overlay's public DEV ONLY key pair; emptyDir and hostPath
    volumes become empty directories.
Nothing else of the test machine's environment reaches the binary (PATH only).

Also: every env var a container sets must be one the binary reads (clap's
`[env: NAME=]` in --help, or a name the crate/rds-bus reads with
std::env::var) or one its args use as $(VAR), else it would be silently
ignored; and the sidecar timeouts
must exceed csi-frontend's bus deadlines (docs/ARCHITECTURE.md §4, deadlines shrink
inward).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from common import (
    DEPLOY,
    REPO,
    Checks,
    binary,
    containers,
    obj_id,
    our_binary,
    pod_templates,
    render,
)

RENDERS = ["base", "overlays/prod", "overlays/dev"]

DEV_KEYS = DEPLOY / "overlays/dev/dev-keys"
# Stand-in content for Secrets the user creates: same keys, same shape.
EXTERNAL_SECRET_STANDINS = {
    "rds-csi-secret": {
        "rds-private-key": DEV_KEYS / "client_ed25519",
        "rds-host-key": DEV_KEYS / "sim_host_ed25519.pub",
    }
}


def field_placeholder(fieldpath: str, workload: dict) -> str:
    md = workload["metadata"]
    return {
        "spec.nodeName": "node-1",
        "metadata.name": f"{md['name']}-0",
        "metadata.namespace": md.get("namespace", "default"),
        "status.podIP": "192.0.2.1",
        "status.hostIP": "192.0.2.1",
        "spec.serviceAccountName": "sa",
    }.get(fieldpath, "placeholder")


def resolve_env(ct: dict, workload: dict, objs: list[dict]) -> tuple[dict[str, str], list[str]]:
    cms = {o["metadata"]["name"]: o.get("data") or {} for o in objs if o["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    problems: list[str] = []
    for src in ct.get("envFrom", []) or []:
        if "configMapRef" in src:
            data = cms.get(src["configMapRef"]["name"])
            if data is None:
                problems.append(f"envFrom ConfigMap {src['configMapRef']['name']} not rendered")
            else:
                env.update({src.get("prefix", "") + k: v for k, v in data.items()})
        else:
            problems.append(f"unsupported envFrom {src}")
    for e in ct.get("env", []) or []:
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
            continue
        vf = e.get("valueFrom") or {}
        if "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            data = cms.get(ref["name"])
            if data is not None and ref["key"] in data:
                env[e["name"]] = data[ref["key"]]
            elif not ref.get("optional"):
                problems.append(f"env {e['name']}: ConfigMap {ref['name']} key {ref['key']} not rendered")
        elif "fieldRef" in vf:
            env[e["name"]] = field_placeholder(vf["fieldRef"]["fieldPath"], workload)
        elif "secretKeyRef" in vf:
            env[e["name"]] = "placeholder"
        elif "resourceFieldRef" in vf:
            env[e["name"]] = "1"
        elif "value" not in e:
            env[e["name"]] = ""
    return env, problems


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(s: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: `$$` escapes, unknown refs stay as is."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, s)


def materialize_volumes(ct, pod, objs, root: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """Temp dirs standing in for the container's volume mounts: (mountPath,
    temp path) longest first, and problems."""
    secrets = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Secret"}
    cms = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
    vols = {v["name"]: v for v in pod.get("volumes", []) or []}
    mapping, problems = [], []
    for i, m in enumerate(ct.get("volumeMounts", []) or []):
        v = vols.get(m["name"])
        d = root / f"vol{i}-{m['name']}"
        d.mkdir(parents=True)
        files: dict[str, bytes] = {}
        items = None
        if v is None:
            problems.append(f"mount {m['name']} has no volume")
        elif "secret" in v:
            name = v["secret"]["secretName"]
            items = v["secret"].get("items")
            if name in secrets:
                s = secrets[name]
                files = {k: base64.b64decode(x) for k, x in (s.get("data") or {}).items()}
                files.update({k: x.encode() for k, x in (s.get("stringData") or {}).items()})
            elif name in EXTERNAL_SECRET_STANDINS:
                files = {k: p.read_bytes() for k, p in EXTERNAL_SECRET_STANDINS[name].items()}
            else:
                problems.append(f"Secret {name} neither rendered nor a known user-supplied Secret")
        elif "configMap" in v:
            c = cms.get(v["configMap"]["name"])
            items = v["configMap"].get("items")
            if c is None:
                problems.append(f"ConfigMap {v['configMap']['name']} not rendered")
            else:
                files = {k: x.encode() for k, x in (c.get("data") or {}).items()}
        if items:
            files = {it["path"]: files[it["key"]] for it in items if it["key"] in files}
        sub = m.get("subPath")
        if sub:
            # The mount point is the one file (or directory) `sub` of the volume.
            files = {sub: files[sub]} if sub in files else {}
        for name, data in files.items():
            p = d / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            # The kubelet writes Secret files 0440 with the pod's fsGroup.
            p.chmod(0o440 if v and "secret" in v else 0o444)
        target = d / sub if sub else d
        mapping.append((m["mountPath"].rstrip("/") or "/", str(target)))
    mapping.sort(key=lambda t: -len(t[0]))
    return mapping, problems


def remap(value: str, mapping: list[tuple[str, str]]) -> str:
    for mount, tmp in mapping:
        if mount == "/":
            continue
        value = re.sub(
            r"(^|=|unix://|file:)" + re.escape(mount) + r"(?=/|$)",
            lambda m: m.group(1) + tmp,
            value,
        )
    return value


_HELP_ENV = re.compile(r"\[env:\s*([A-Z0-9_]+)=")
_CODE_ENV = re.compile(r'"([A-Z][A-Z0-9_]{2,})"')


def env_names_read(bin_name: str, exe: Path) -> set[str]:
    """Env vars the binary reads: clap's `[env: X=]` from --help, plus upper
    case string literals passed to std::env::var in the crate and rds-bus
    (e.g. POD_NAME, OTEL_EXPORTER_OTLP_ENDPOINT), plus RUST_LOG when the
    telemetry uses EnvFilter::from_default_env."""
    names: set[str] = set()
    h = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=30, env={"PATH": os.environ.get("PATH", "")})
    names |= set(_HELP_ENV.findall(h.stdout))
    for root in (REPO / "services" / bin_name / "src", REPO / "services/shared/bus/src"):
        for f in root.rglob("*.rs"):
            text = f.read_text()
            if "env::var" not in text and "from_default_env" not in text:
                continue
            names |= set(_CODE_ENV.findall(text))
            if "from_default_env" in text:
                names.add("RUST_LOG")
    return names


def run_check(c: Checks, label: str, objs: list[dict], outputs: dict) -> None:
    for w, pod in pod_templates(objs):
        for ct in containers(pod):
            b = our_binary(ct)
            if not b:
                continue
            cid = f"{label}: {obj_id(w)}:{ct['name']} ({b})"
            try:
                exe = binary(b)
            except FileNotFoundError as e:
                c.ok(f"{cid}: binary exists", False, str(e))
                continue
            env, problems = resolve_env(ct, w, objs)
            with tempfile.TemporaryDirectory() as td:
                mapping, vproblems = materialize_volumes(ct, pod, objs, Path(td))
                problems += vproblems
                args = [remap(expand(a, env), mapping) for a in (ct.get("command") or [])[1:]]
                args += [remap(expand(a, env), mapping) for a in ct.get("args", []) or []]
                env = {k: remap(v, mapping) for k, v in env.items()}
                full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
                proc = subprocess.run(
                    [str(exe), *args, "--check-config"],
                    capture_output=True, text=True, timeout=60, env=full_env, cwd=td,
                )
            detail = (
                f"command: {b} {' '.join(args)} --check-config\n"
                f"env: {json.dumps(env, sort_keys=True)}\n"
                f"exit: {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
            c.ok(f"{cid}: manifest references resolve", not problems, "\n".join(problems))
            if c.ok(f"{cid}: --check-config accepts the container's args and env", proc.returncode == 0, detail):
                print("        " + proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "")
                try:
                    eff = json.loads(proc.stdout)
                    outputs.setdefault(label, {})[(obj_id(w), ct["name"])] = eff
                    check_metrics_port(c, cid, ct, eff)
                except json.JSONDecodeError:
                    c.ok(f"{cid}: effective config is JSON on stdout", False, proc.stdout)
            known = env_names_read(b, exe)
            # A var used as $(VAR) in command/args is consumed by the kubelet.
            raw_args = " ".join((ct.get("command") or []) + (ct.get("args") or []))
            in_args = set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", raw_args))
            ignored = sorted(k for k in env if k not in known and k not in in_args)
            c.ok(f"{cid}: every env var it gets is one it reads", not ignored, f"never read: {ignored}")


def check_metrics_port(c: Checks, cid: str, ct: dict, eff: dict) -> None:
    """The metrics port the container declares is where the binary serves
    them, on all interfaces (a loopback bind cannot be scraped)."""
    addr = next((v for k, v in eff.items() if k.startswith("metrics_addr") and v), None)
    declared = {p["containerPort"]: p.get("name", "") for p in ct.get("ports", []) or []}
    named = [port for port, name in declared.items() if name.startswith("metrics")]
    if addr is None:
        c.ok(f"{cid}: declares no metrics port (the binary serves none)", not named, str(named))
        return
    host, _, port = str(addr).rpartition(":")
    c.ok(f"{cid}: serves metrics on {addr}, a declared metrics port",
         port.isdigit() and int(port) in named, f"declared metrics ports: {named}")
    c.ok(f"{cid}: metrics bind to all interfaces (scrapable)", host in ("0.0.0.0", "[::]", "::"), str(addr))


def check_deadlines(c: Checks, objs: list[dict], outputs: dict, label: str) -> None:
    """Sidecar --timeout > csi-frontend bus deadline for that call."""
    ctrl = next((p for w, p in pod_templates(objs) if w["metadata"]["name"] == "rds-csi-controller"), None)
    fe = next((v for (wid, name), v in outputs.get(label, {}).items()
               if name == "csi-frontend" and "rds-csi-controller" in wid), None)
    if ctrl is None or fe is None:
        c.ok(f"{label}: controller csi-frontend effective config available", False)
        return

    def ms(v: str) -> int:
        m = re.fullmatch(r"(\d+)(ms|s|m)", v)
        assert m, v
        return int(m.group(1)) * {"ms": 1, "s": 1000, "m": 60000}[m.group(2)]

    timeouts = {}
    for ct in containers(ctrl):
        for a in ct.get("args", []):
            if a.startswith("--timeout="):
                timeouts[ct["name"]] = ms(a.split("=", 1)[1])
            if a.startswith("--probe-timeout="):
                timeouts[ct["name"]] = ms(a.split("=", 1)[1])
    agent = next((v for (wid, name), v in outputs.get(label, {}).items()
                  if name == "rds-agent" and "rds-csi-controller" in wid), None)
    if c.ok(f"{label}: controller rds-agent effective config available", agent is not None):
        c.ok(
            f"{label}: rds-agent pins the RDS host key (docs/safety.md §5.1)",
            str(agent.get("host_key", "")).startswith("public key")
            and "NOT VERIFIED" not in str(agent.get("host_key")),
            str(agent.get("host_key")),
        )
        cmd_ms = agent.get("command_timeout_ms")
        c.ok(
            f"{label}: csi-frontend agent_timeout {ms(fe['agent_timeout'])}ms > rds-agent "
            f"command timeout {cmd_ms}ms",
            isinstance(cmd_ms, int) and ms(fe["agent_timeout"]) > cmd_ms,
        )
    for sidecar, key in [
        ("csi-provisioner", "agent_timeout"),
        ("csi-resizer", "agent_timeout"),
        ("csi-snapshotter", "agent_timeout"),
        ("csi-attacher", "attachment_timeout"),
        ("liveness-probe", "probe_timeout"),
    ]:
        fe_ms = ms(fe[key]) if key in fe else None
        c.ok(
            f"{label}: {sidecar} timeout {timeouts.get(sidecar)}ms > csi-frontend {key} {fe_ms}ms",
            fe_ms is not None and timeouts.get(sidecar, 0) > fe_ms,
        )


# Bus wiring inside one pod: (client binary, its flag / effective-config key)
# must reach (server binary, its listen flag / key).
BUS_LINKS = [
    ("csi-frontend", "agent-endpoint", "agent_endpoint", "rds-agent"),
    ("csi-frontend", "attachment-endpoint", "attachment_endpoint", "attachment-service"),
    ("csi-frontend", "event-endpoint", "event_endpoint", "event-service"),
    ("attachment-service", "events-endpoint", "events_endpoint", "event-service"),
]


def arg_value(ct: dict, env: dict, flag: str) -> str | None:
    args = [expand(a, env) for a in ct.get("args", []) or []]
    for i, a in enumerate(args):
        if a.startswith(f"--{flag}="):
            return a.split("=", 1)[1]
        if a == f"--{flag}" and i + 1 < len(args):
            return args[i + 1]
    return None


def norm_endpoint(v: str) -> str:
    for prefix in ("http://", "tcp://"):
        if v.startswith(prefix):
            return v[len(prefix):]
    return v


def check_bus(c: Checks, label: str, objs: list[dict], outputs: dict) -> None:
    """Every bus client in a pod points at the address its server listens on
    (flag in the manifest, else the binary's default from --check-config), and
    a unix socket lies on a volume both containers mount at the same place."""
    for w, pod in pod_templates(objs):
        by_bin = {}
        for ct in containers(pod):
            b = our_binary(ct)
            if b:
                by_bin[b] = ct
        for client, flag, key, server in BUS_LINKS:
            if client not in by_bin or server not in by_bin:
                continue
            if client == "csi-frontend" and server != "event-service" and "--role=node" in by_bin[client].get("args", []):
                continue
            cct, sct = by_bin[client], by_bin[server]
            cenv, _ = resolve_env(cct, w, objs)
            senv, _ = resolve_env(sct, w, objs)
            out = outputs.get(label, {})
            cval = arg_value(cct, cenv, flag) or (out.get((obj_id(w), cct["name"])) or {}).get(key)
            sval = arg_value(sct, senv, "listen") or (out.get((obj_id(w), sct["name"])) or {}).get("listen")
            ok = cval is not None and sval is not None and norm_endpoint(str(cval)) == norm_endpoint(str(sval))
            c.ok(f"{label}: {obj_id(w)}: {client} --{flag} {cval} reaches {server} --listen {sval}", ok)
            if ok and str(sval).startswith("unix://"):
                path = str(sval)[len("unix://"):]

                def vol_at(ct):
                    best = None
                    for m in ct.get("volumeMounts", []) or []:
                        mp = m["mountPath"].rstrip("/")
                        if path.startswith(mp + "/") and (best is None or len(mp) > len(best[0])):
                            best = (mp, m["name"])
                    return best

                c.ok(f"{label}: {obj_id(w)}: socket {path} is on a volume {client} and {server} share",
                     vol_at(cct) is not None and vol_at(cct) == vol_at(sct), f"{vol_at(cct)} vs {vol_at(sct)}")


def self_test(c: Checks) -> None:
    """The harness can fail: a flag no binary has, and a controller without
    its RDS address, are refused."""
    try:
        exe = binary("csi-frontend")
    except FileNotFoundError as e:
        c.ok("self-test: csi-frontend binary exists", False, str(e))
        return
    env = {"PATH": os.environ.get("PATH", "")}
    p = subprocess.run([str(exe), "--role=controller", "--rds-address=192.0.2.10", "--no-such-flag", "--check-config"],
                       capture_output=True, text=True, env=env, timeout=30)
    c.ok("self-test: an unknown flag is refused", p.returncode != 0, p.stderr)
    p = subprocess.run([str(exe), "--role=controller", "--check-config"], capture_output=True, text=True, env=env, timeout=30)
    c.ok("self-test: a controller without an RDS address is refused", p.returncode != 0, p.stderr)
    assert expand("a$(X)b$$(X)$(Y)", {"X": "1"}) == "a1b$(X)$(Y)"
    c.ok("self-test: $(VAR) expansion as the kubelet does it", True)
    m = [("/var/lib/kubelet", "/T1"), ("/csi", "/T2")]
    c.ok(
        "self-test: paths under mounts are remapped, look-alikes are not",
        remap("unix:///csi/csi.sock", m) == "unix:///T2/csi.sock"
        and remap("--x=/csi", m) == "--x=/T2"
        and remap("/csix/a", m) == "/csix/a"
        and remap("/var/lib/kubelet/plugins/x", m) == "/T1/plugins/x",
    )


def main() -> None:
    c = Checks("our binaries accept the manifests' args and env (--check-config)")
    outputs: dict = {}
    for r in RENDERS:
        objs = c.run(f"render deploy/{r}", lambda r=r: render(r))
        if objs is None:
            continue
        run_check(c, r, objs, outputs)
        check_deadlines(c, objs, outputs, r)
        check_bus(c, r, objs, outputs)
    self_test(c)
    c.finish()


if __name__ == "__main__":
    main()
