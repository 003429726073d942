#!/usr/bin/env python3
"""The monitoring kit (deploy/components/monitoring; the Helm chart renders
the same files).

1. The Grafana dashboard JSON parses, every panel has a PromQL target, and
   each topic operators asked for has a panel.
2. The PrometheusRule has the seven alerts and validates strictly against its
   kind's schema from the registry package (common.resource_schema), as the
   component renders it (`kubectl kustomize`).

The metric names and the PromQL syntax are checked by
tests/tests/monitoring.rs (promql-parser, and a live scrape of every service
after an `rdsctl demo` walk).
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import yaml

import test_render
from common import DEPLOY, Checks, render

KIT = DEPLOY / "components" / "monitoring"
DASHBOARD = KIT / "rds-csi-dashboard.json"

# Topic → words that a panel title covering it contains.
TOPICS = {
    "attach/detach rate": ["Attach / detach rate"],
    "attach/detach latency": ["Attach / detach latency"],
    "RouterOS command latency by verb": ["RouterOS command latency by verb"],
    "RouterOS command errors by verb": ["RouterOS command errors by verb"],
    "SSH pool saturation": ["SSH session pool saturation"],
    "SSH pool capacity and use": ["SSH session pool: capacity and use"],
    "storage pool size and free": ["Storage pool: size and free"],
    "storage pool used %": ["Storage pool used %"],
    "breaker state": ["Breaker"],
    "event posting drops": ["Event posting drops"],
    "node stage/publish latency": ["Node stage / publish latency"],
    "node failures": ["Node operation failures"],
    "format refusals": ["Format refusals"],
}
ALERTS = {
    "RdsCsiRdsUnreachable", "RdsCsiBreakerOpen", "RdsCsiSshSessionPoolSaturated",
    "RdsCsiStaleAttachmentsCleared", "RdsCsiFormatRefused", "RdsCsiEventsDropped",
    "RdsCsiStoragePoolAlmostFull",
}

test_render.CRDS.add(("monitoring.coreos.com", "PrometheusRule"))


def panels(d):
    for p in d.get("panels", []):
        yield p
        yield from panels(p)


def main() -> None:
    c = Checks("monitoring kit: dashboard and PrometheusRule")
    dash = c.run("the dashboard JSON parses", lambda: json.loads(DASHBOARD.read_text()))
    if dash is not None:
        graphs = [p for p in panels(dash) if p.get("type") != "row"]
        c.ok(f"{len(graphs)} panels, each with at least one PromQL target",
             graphs and all(p.get("targets") and all(t.get("expr") for t in p["targets"]) for p in graphs))
        titles = [p.get("title", "") for p in graphs]
        for topic, words in TOPICS.items():
            c.ok(f"dashboard covers {topic}", any(all(w in t for w in words) for t in titles), str(titles))
        ids = [p["id"] for p in panels(dash)]
        c.ok("panel ids are unique", len(ids) == len(set(ids)))
        c.ok("queries use the datasource variable", all(
            p.get("datasource", {}).get("uid") == "${datasource}" for p in graphs))

    with tempfile.TemporaryDirectory(dir=DEPLOY) as td:
        tmp = Path(td)
        (tmp / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "components": ["../components/monitoring"]}))
        objs = c.run("kubectl kustomize components/monitoring", lambda: render(tmp))
    if objs is not None:
        kinds = sorted(o["kind"] for o in objs)
        c.ok("the component renders a PrometheusRule and the dashboard ConfigMap",
             kinds == ["ConfigMap", "PrometheusRule"], str(kinds))
        test_render.check_schemas(c, "components/monitoring", objs)
        rule = next((o for o in objs if o["kind"] == "PrometheusRule"), None)
        cm = next((o for o in objs if o["kind"] == "ConfigMap"), None)
        if rule:
            names = {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]}
            c.ok("the PrometheusRule has the seven alerts", names == ALERTS, str(sorted(names - {None})))
            c.ok("every alert has a severity and a summary", all(
                r.get("labels", {}).get("severity") in ("critical", "warning", "info")
                and r.get("annotations", {}).get("summary")
                for g in rule["spec"]["groups"] for r in g["rules"]))
            bad = copy.deepcopy(rule)
            bad["spec"]["groups"][0]["rules"][0]["expresion"] = "up"
            c.ok("self-test: a rule with an unknown field is refused", bool(test_render.validate_object(bad, {})))
        if cm and dash is not None:
            c.ok("the ConfigMap carries the dashboard unchanged, labelled for Grafana's sidecar",
                 json.loads(cm["data"]["rds-csi-dashboard.json"]) == dash
                 and cm["metadata"]["labels"].get("grafana_dashboard") == "1"
                 and cm["metadata"]["name"] == "rds-csi-dashboard")
    c.finish()


if __name__ == "__main__":
    main()
