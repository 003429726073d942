#!/usr/bin/env python3
"""Fail when the repository cites a document, section, file or test that is not in it.

What counts as a citation, in every source, doc and manifest file:
  * `docs/<name>.md` and `docs/<name>.md §N[.M]` (also lists such as `§1, §4` and ranges
    such as `§2.1–2.2`): the file must exist and have a heading numbered N[.M]
    (`## 3. Title`, `### 3.2 Title`);
  * a bare `§N` is attributed to the nearest `<name>.md` before it; in a file under docs/
    with no such name it means that same file;
  * markdown links to local files `[text](path)`: the path must exist;
  * in markdown, backticked repository paths (`services/...`, `tests/...`, `docs/...`, ...)
    and tests written `path/to/file.rs::test_name`: the file must exist and define the fn;
  * names of documents that are not in the repository (the design notes and reference
    files the project started from, their numbered facts, incidents and pitfalls, their
    source keys): always an error — cite docs/ instead.

Python 3 standard library only. Usage: check-doc-refs.py [REPO_ROOT]
"""

import os
import re
import subprocess
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
SELF = os.path.join(".ci", os.path.basename(__file__))

TEXT_EXT = (".rs", ".proto", ".md", ".yaml", ".yml", ".py", ".toml", ".sh", ".json", ".txt")
TEXT_NAMES = ("Tiltfile", "Dockerfile", "run")
SKIP_DIRS = ("target/", ".git/")
FIXTURES = "services/shared/routeros/tests/fixtures/"  # RouterOS output, not prose
SKIP_FILES = ("Cargo.lock",)

HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)[.)]?(?:\s|$)")
MD_NAME = re.compile(r"[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b")
SECTION = re.compile(r"§\s?(\d+(?:\.\d+)*)(?:\s?[–-]\s?§?\s?(\d+(?:\.\d+)*))?")
MD_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
TEST_REF = re.compile(r"`([A-Za-z0-9_./-]+\.rs)::([A-Za-z_][A-Za-z0-9_]*)`")
# What may stand between a document's name and a section that belongs to it:
# `docs/x.md §1, §4`, `docs/x.md` §2–§3, `x.md §4.1/§4.2 and §5`, comment markers of a
# wrapped line.
CHAIN = re.compile(r"^(?:[\s`'\"*,/;:&()!]|//+|#|and\b|or\b|§\s?\d+(?:\.\d+)*[a-z]?|[–-])*$")
REPO_PATH = re.compile(r"`((?:services|tests|proto|deploy|docs|\.ci)/[^`\s]*)`")

# Documents that live outside the repository. Built from pieces so this file does not
# match itself when it scans the tree.
OUTSIDE = [
    (re.compile(r"\bDESIGN(?:\.md)?\b"), "the design notes are not in the repository"),
    (re.compile(r"\banchor(?:-go-driver\.md)?\s?§"), "the Go-driver reference is not in the repository"),
    (re.compile(r"anchor-go-driver\.md"), "the Go-driver reference is not in the repository"),
    (re.compile(r"\b(?:rust-stack|csi-sanity-cases|nvme-vm|style)\.md\b"), "reference file not in the repository"),
    (re.compile(r"(?:(?:\.\./)+shared/(?:reference|DESIGN|hooks|tools)\b|/work/shared\b|\breference/[a-z-]+\.md)"), "path outside the repository"),
    (re.compile(r"\b[Ff]act" + r"s? \d+"), "numbered fact of a document outside the repository"),
    (re.compile(r"\b[Ii]ncident" + r" \d+"), "numbered incident of a document outside the repository"),
    (re.compile(r"\b[Pp]itfall" + r" \d+"), "numbered pitfall of a document outside the repository"),
    (re.compile(r"\bG" + r"@[0-9a-f]{7}\b|\bG" + r":(?:pkg|test|docs)/"), "Go-repository source key"),
    (re.compile(r"\bMT-" + r"(?:disk|files|rose|btrfs|regex|script|login|console)\b"), "source key of a document outside the repository"),
]


def repo_files():
    try:
        out = subprocess.run(
            ["git", "-C", ROOT, "ls-files", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True, text=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        out = []
        for d, dirs, files in os.walk(ROOT):
            dirs[:] = [x for x in dirs if x not in ("target", ".git")]
            out += [os.path.relpath(os.path.join(d, f), ROOT) for f in files]
    for f in sorted(set(out)):
        if not f or f == SELF or f in SKIP_FILES or f.startswith(SKIP_DIRS):
            continue
        if f.startswith(FIXTURES) and not f.endswith(".md"):
            continue
        if not os.path.isfile(os.path.join(ROOT, f)):
            continue
        if f.endswith(TEXT_EXT) or os.path.basename(f) in TEXT_NAMES or os.path.basename(f).startswith("Dockerfile"):
            yield f


_sections = {}


def sections_of(rel):
    if rel not in _sections:
        found = set()
        try:
            with open(os.path.join(ROOT, rel), encoding="utf-8") as fh:
                in_code = False
                for line in fh:
                    if line.startswith("```"):
                        in_code = not in_code
                        continue
                    m = None if in_code else HEADING.match(line)
                    if m:
                        found.add(m.group(1))
        except OSError:
            pass
        _sections[rel] = found
    return _sections[rel]


def resolve(name, src):
    """Repository-relative path of the .md `name` cited from `src`, or None."""
    for cand in (os.path.normpath(os.path.join(os.path.dirname(src), name)), os.path.normpath(name)):
        if not cand.startswith("..") and os.path.isfile(os.path.join(ROOT, cand)):
            return cand
    return None


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def check_file(rel, problems):
    try:
        with open(os.path.join(ROOT, rel), encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return
    is_md = rel.endswith(".md")
    in_docs = rel.startswith("docs/")

    def bad(pos, msg):
        problems.append(f"{rel}:{line_of(text, pos)}: {msg}")

    for rx, why in OUTSIDE:
        for m in rx.finditer(text):
            bad(m.start(), f"{m.group(0)!r}: {why}; cite docs/ instead")

    # The RouterOS reference the project started from had the same file name as ours.
    if not in_docs:
        for m in re.finditer(r"(?<![A-Za-z0-9_./-])routeros\.md\b(?!\]\()", text):
            bad(m.start(), "'routeros.md': not in the repository; cite docs/routeros.md")

    # docs/<name>.md mentioned anywhere must exist.
    for m in re.finditer(r"(?<![A-Za-z0-9_./-])docs/[A-Za-z0-9_-]+\.md\b", text):
        if resolve(m.group(0), "") is None:
            bad(m.start(), f"{m.group(0)} does not exist")

    # Sections.
    for m in SECTION.finditer(text):
        start = max(0, m.start() - 200)
        while start > 0 and re.match(r"[A-Za-z0-9_./-]", text[start - 1]):
            start -= 1
        window = text[start:m.start()]
        names = [n for n in MD_NAME.finditer(window) if CHAIN.match(window[n.end():])]
        if re.search(r"\bRFC\s?\d+\s*$", window):
            continue  # a section of an RFC, not of a document of ours
        if names:
            name = names[-1].group(0)
            target = resolve(name, rel)
            if target is None:
                if not any(rx.search(name) for rx, _ in OUTSIDE):
                    bad(m.start(), f"{name} §{m.group(1)}: {name} is not in the repository")
                continue
        elif in_docs:
            target = rel
        else:
            bad(m.start(), f"§{m.group(1)} names no document; write docs/<name>.md §{m.group(1)}")
            continue
        for sec in (m.group(1), m.group(2)):
            if sec and sec not in sections_of(target):
                bad(m.start(), f"{target} has no section §{sec}")

    if not is_md:
        return
    for m in MD_LINK.finditer(text):
        target = m.group(1).split("#", 1)[0]
        if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        path = os.path.normpath(os.path.join(os.path.dirname(rel), target))
        if path.startswith("..") or not os.path.exists(os.path.join(ROOT, path)):
            bad(m.start(), f"link to {m.group(1)}: no such file in the repository")
    for m in TEST_REF.finditer(text):
        path, fn = m.group(1), m.group(2)
        full = os.path.join(ROOT, path)
        if not os.path.isfile(full):
            bad(m.start(), f"{path}: no such file (cited test {fn})")
            continue
        with open(full, encoding="utf-8") as fh:
            if not re.search(r"\bfn\s+" + re.escape(fn) + r"\b", fh.read()):
                bad(m.start(), f"{path} has no test {fn}")
    for m in REPO_PATH.finditer(text):
        path = m.group(1).split("::", 1)[0].rstrip("/.,;:")
        if any(c in path for c in "<>*{}$") or re.fullmatch(r"docs/[A-Za-z0-9_-]+\.md", path):
            continue
        here = os.path.normpath(os.path.join(os.path.dirname(rel), path))
        top = "/".join(path.split("/")[:2])
        top_here = os.path.normpath(os.path.join(os.path.dirname(rel), top))
        if "/" in path and not os.path.exists(os.path.join(ROOT, top)) and not os.path.exists(os.path.join(ROOT, top_here)):
            continue  # a path in another project (e.g. an upstream repository's deploy/)
        if not os.path.exists(os.path.join(ROOT, path)) and not os.path.exists(os.path.join(ROOT, here)):
            bad(m.start(), f"{path}: no such file or directory in the repository")


def main():
    problems = []
    count = 0
    for rel in repo_files():
        count += 1
        check_file(rel, problems)
    for p in problems:
        print(p)
    if problems:
        print(f"check-doc-refs: {len(problems)} unresolved reference(s) in {count} files", file=sys.stderr)
        return 1
    print(f"check-doc-refs: every cited document, section, file and test exists ({count} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
