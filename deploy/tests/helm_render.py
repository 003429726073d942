#!/usr/bin/env python3
"""The Helm chart deploy/helm/rds-csi rendered by real Helm (PyPI
`helm-python-sdk`, which ships Helm v4 as a shared library: no helm binary,
no cluster).

As a module: `render(values)` → (objects, NOTES text). As a script it writes
the rendered manifest stream, so the pod contract test (tests/tests/
pod_contract) can run the chart's pods the way it runs the overlays':

    python3 deploy/tests/helm_render.py OUT.yaml ['{"controller": {"replicas": 3}}']
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "helm" / "rds-csi"
RELEASE = "rds-csi"
# The Release namespace (where Helm keeps its release record); the objects
# go to .Values.namespace.
RELEASE_NAMESPACE = "rds-csi"


def helm():
    try:
        import helm_python
    except ModuleNotFoundError as e:
        raise RuntimeError(
            "the Python package helm-python-sdk is missing: run ./test (it installs the "
            "deploy checks' packages), or pip install helm-python-sdk==0.2.2"
        ) from e
    return helm_python


@contextlib.contextmanager
def helm_stderr():
    """Helm (Go) writes its log to fd 2 itself. Its INFO line for each
    file under files/ (links to deploy/components/monitoring, the one copy
    of the dashboard and the rules) is expected; every other line is shown."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as cap:
        os.dup2(cap.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            cap.seek(0)
            for line in cap.read().decode(errors="replace").splitlines():
                if "found symbolic link in path" not in line:
                    print(line, file=sys.stderr)


def render_text(values: dict[str, Any] | None = None) -> tuple[str, str]:
    """(manifest stream, NOTES.txt) of the chart with `values`."""
    h = helm()
    with helm_stderr():
        chart = h.Chart.load(str(CHART))
        out = chart.render(values or {}, name=RELEASE, namespace=RELEASE_NAMESPACE)
    notes = ""
    docs = []
    for path in sorted(out):
        if path.endswith("NOTES.txt"):
            notes = out[path]
        elif path.endswith((".yaml", ".yml")):
            docs.append(f"# Source: {path}\n{out[path]}")
    return "\n---\n".join(docs) + "\n", notes


def render(values: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], str]:
    text, notes = render_text(values)
    return [d for d in yaml.safe_load_all(text) if d], notes


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    values = json.loads(sys.argv[2]) if len(sys.argv) == 3 else {}
    text, _ = render_text(values)
    Path(sys.argv[1]).write_text(text)


if __name__ == "__main__":
    main()
