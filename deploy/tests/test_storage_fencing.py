#!/usr/bin/env python3
"""The opt-in storage fencing wiring (deploy/components/storage-fencing).

1. prod + the component differs from prod in exactly: rds-agent gains
   `--storage-fencing=true`; attachment-service gains `--storage-fencing=true`,
   `--agent-endpoint=<rds-agent's --listen>` and RDS_CSI_CLUSTER_ID from the
   ConfigMap key cluster-id (the csi-frontends' source). Nothing else moves.
2. The binaries accept that render (`--check-config`, test_args.run_check) and
   their effective config says fencing is on, with the endpoint and the
   cluster id set.
3. Without the component nothing of it is rendered (prod stays unfenced).
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

import test_args
from common import DEPLOY, Checks, containers, obj_id, pod_templates, render

AGENT_ARGS = ["--storage-fencing=true"]
ATTACH_ARGS = ["--storage-fencing=true", "--agent-endpoint=http://127.0.0.1:50061"]
CLUSTER_ID_ENV = {
    "name": "RDS_CSI_CLUSTER_ID",
    "valueFrom": {"configMapKeyRef": {"name": "rds-csi-config", "key": "cluster-id"}},
}


def fenced() -> list[dict[str, Any]]:
    """prod + the component, through a throwaway overlay (as a user adds it)."""
    with tempfile.TemporaryDirectory(dir=DEPLOY) as td:
        tmp = Path(td)
        (tmp / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["../overlays/prod"],
            "components": ["../components/storage-fencing"],
        }))
        return render(tmp)


def by_id(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj_id(o): o for o in objs}


def container(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(ct for w, pod in pod_templates(objs) if w["kind"] == "Deployment"
                for ct in containers(pod) if ct["name"] == name)


def expected(prod: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """prod with exactly the component's edits applied by hand."""
    want = by_id(copy.deepcopy(prod))
    dep = next(o for o in want.values() if o["kind"] == "Deployment")
    cts = {ct["name"]: ct for ct in dep["spec"]["template"]["spec"]["containers"]}
    cts["rds-agent"]["args"] += AGENT_ARGS
    cts["attachment-service"]["args"] += ATTACH_ARGS
    env = copy.deepcopy(CLUSTER_ID_ENV)
    # The ConfigMap carries kustomize's generator suffix in both renders.
    cm = next(o["metadata"]["name"] for o in prod if o["kind"] == "ConfigMap"
              and o["metadata"]["name"].startswith("rds-csi-config"))
    env["valueFrom"]["configMapKeyRef"]["name"] = cm
    cts["attachment-service"]["env"].append(env)
    return want


def main() -> None:
    c = Checks("storage fencing component (deploy/components/storage-fencing)")
    prod = c.run("kubectl kustomize deploy/overlays/prod", lambda: render("overlays/prod"))
    on = c.run("kubectl kustomize prod + components/storage-fencing", fenced)
    if prod is None or on is None:
        c.finish()
        return
    want, got = expected(prod), by_id(on)
    c.ok("prod + storage-fencing = prod with exactly the fencing flags and the cluster id",
         want == got, json.dumps({k: got.get(k) for k in got if want.get(k) != got.get(k)}, indent=1)[:4000])
    c.ok("self-test: the comparison tells prod from prod + storage-fencing", by_id(prod) != got)
    listen = [a for a in container(on, "rds-agent")["args"] if a.startswith("--listen=")]
    c.ok("attachment-service's --agent-endpoint is rds-agent's --listen",
         listen == ["--listen=127.0.0.1:50061"], str(listen))
    for ct in ("rds-agent", "attachment-service"):
        c.ok(f"prod alone: {ct} runs without storage fencing",
             not any("storage-fencing" in a for a in container(prod, ct).get("args", [])))

    outputs: dict = {}
    test_args.run_check(c, "prod+storage-fencing", on, outputs)
    eff = outputs.get("prod+storage-fencing", {})
    dep = next(obj_id(o) for o in on if o["kind"] == "Deployment")
    agent = eff.get((dep, "rds-agent"), {})
    attach = eff.get((dep, "attachment-service"), {})
    c.ok("rds-agent's effective config: storage_fencing on", agent.get("storage_fencing") is True,
         json.dumps(agent)[:2000])
    c.ok("attachment-service's effective config: fencing on, agent endpoint and cluster id set",
         attach.get("storage_fencing") is True
         and attach.get("agent_endpoint") == "http://127.0.0.1:50061"
         and attach.get("cluster_id") == "prod-cluster-1", json.dumps(attach)[:2000])
    c.finish()


if __name__ == "__main__":
    main()
