#!/usr/bin/env python3
"""The Dockerfiles are consistent with the workspace and the manifests.

No Docker engine runs here, so the images are not built (deploy/README.md
says how to build and check them). What can be checked without one:
  - deploy/docker/Dockerfile has one target per service binary, each copying
    that binary from the builder and running it as its entrypoint;
  - the builder builds every service binary and copies every workspace
    member (a member missing from the build context breaks `cargo build`),
    and the build-context ignore file lets those paths through;
  - builder and runtime are the same Debian release (glibc of the binary);
  - the csi-frontend image (it serves the node role) carries nvme-cli,
    e2fsprogs, xfsprogs and util-linux, in the release and the dev image;
  - every rds-csi image the rendered manifests use has a release target.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

from common import DEPLOY, REPO, SERVICES, Checks, containers, our_binary, pod_templates, render

RELEASE = DEPLOY / "docker/Dockerfile"
DEV = DEPLOY / "docker/dev.Dockerfile"
NODE_TOOLS = ["nvme-cli", "e2fsprogs", "xfsprogs", "util-linux"]


def stages(text: str) -> dict[str, str]:
    """stage name → its instructions (text up to the next FROM)."""
    out = {}
    text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
    parts = re.split(r"(?im)^(?=FROM\s)", text)
    for p in parts:
        m = re.match(r"(?i)FROM\s+(\S+)(?:\s+AS\s+(\S+))?", p)
        if m:
            out[m.group(2) or m.group(1)] = p
    return out


def base_of(stage_text: str) -> str:
    return re.match(r"(?i)FROM\s+(\S+)", stage_text).group(1)


def resolve_args(text: str, ref: str) -> str:
    args = dict(re.findall(r"(?m)^ARG\s+(\w+)=(\S+)", text))
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), ref)


def chain(st: dict[str, str], name: str) -> list[str]:
    """The stage and its ancestors (by FROM)."""
    out = []
    while name in st:
        out.append(name)
        name = base_of(st[name])
    return out


def ignored(patterns: list[str], path: str) -> bool:
    """.dockerignore semantics (last matching pattern wins, `!` re-includes)."""
    result = False
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        if p == "**" or fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.replace("/**", "")) \
                or (p.endswith("/**") and path.startswith(p[:-3] + "/")) \
                or (p.startswith("**/") and (fnmatch.fnmatch(path, p[3:]) or f"/{p[3:]}/" in f"/{path}/")):
            result = not neg
    return result


def main() -> None:
    c = Checks("Dockerfiles match the workspace and the manifests (static; no Docker engine here)")
    text = RELEASE.read_text()
    st = stages(text)
    builder = st.get("builder", "")
    c.ok("release: a builder stage", bool(builder))
    for svc in SERVICES:
        s = st.get(svc)
        if not c.ok(f"release: target {svc}", s is not None):
            continue
        c.ok(f"release: {svc} copies its binary from the builder",
             re.search(rf"COPY --from=builder /out/{svc} /usr/local/bin/{svc}\b", s) is not None)
        c.ok(f"release: {svc} runs its binary", f'ENTRYPOINT ["/usr/local/bin/{svc}"]' in s)
        c.ok(f"release: builder builds --bin {svc}", f"--bin {svc}" in builder)
        c.ok(f"release: builder collects {svc} into /out", f"target/release/{svc}" in builder)
    rust = resolve_args(text, base_of(builder)) if builder else ""
    runtimes = {resolve_args(text, base_of(st[n])) for n in ("runtime", "runtime-node") if n in st}
    c.ok(f"release: builder {rust} and runtime {runtimes} are both Debian bookworm",
         rust.endswith("-bookworm") and runtimes == {"debian:bookworm-slim"})
    node_chain = "".join(st[n] for n in chain(st, "csi-frontend"))
    for tool in NODE_TOOLS:
        c.ok(f"release: the csi-frontend image installs {tool}", re.search(rf"\b{tool}\b", node_chain) is not None)
    others = "".join(st[n] for n in chain(st, "rds-agent"))
    c.ok("release: the controller-side images carry no node tools", "nvme-cli" not in others)

    members = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["members"]
    copied = re.findall(r"(?m)^COPY\s+(?!--)(.+?)\s+\S+\s*$", builder)
    sources = {p for line in copied for p in line.split()}
    for m in members:
        top = m.split("/")[0]
        c.ok(f"release: workspace member {m} is in the build", top in sources, str(sorted(sources)))
    ign = DEPLOY / "docker/Dockerfile.dockerignore"
    if c.ok("release: a Dockerfile-specific .dockerignore keeps the context small", ign.is_file()):
        pats = [l.strip() for l in ign.read_text().splitlines() if l.strip() and not l.startswith("#")]
        for path in ["Cargo.toml", "Cargo.lock"] + [m + "/Cargo.toml" for m in members] + ["proto/build.rs"]:
            c.ok(f"release: build context includes {path}", not ignored(pats, path))
        c.ok("release: build context excludes target/", ignored(pats, "target/debug/csi-frontend"))
        c.ok("release: build context excludes services/x/target/", ignored(pats, "services/rds-sim/target/x"))

    dtext = DEV.read_text()
    dst = stages(dtext)
    for t in ("node", "service"):
        c.ok(f"dev: target {t}", t in dst)
    dnode = "".join(dst[n] for n in chain(dst, "node"))
    for tool in NODE_TOOLS:
        c.ok(f"dev: the node target installs {tool}", re.search(rf"\b{tool}\b", dnode) is not None)
    c.ok("dev: the base has a shell (Tilt's restart wrapper needs one): debian:bookworm-slim",
         {resolve_args(dtext, base_of(dst[n])) for n in chain(dst, "service")} >= {"debian:bookworm-slim"})

    for r in ("overlays/prod", "overlays/dev"):
        objs = c.run(f"render deploy/{r}", lambda r=r: render(r))
        for w, pod in pod_templates(objs or []):
            for ct in containers(pod):
                b = our_binary(ct)
                if b:
                    c.ok(f"{r}: {w['metadata']['name']}:{ct['name']} image has a release target ({b})", b in st)
    c.finish()


if __name__ == "__main__":
    main()
