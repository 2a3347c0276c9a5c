#!/usr/bin/env python3
"""Runs the cpu-only overlay's pod here, as the kubelet would, without a cluster.

usage: test_k8s_pod_local.py REPO_ROOT BUILD_DIR [KUBECTL]

Renders deploy/k8s/overlays/cpu-only, then for each of the pod's containers
takes its command and args after the kubelet's $(VAR) expansion (env,
ConfigMap keys, resourceFieldRef, via check_k8s.py), with three mechanical
changes so it can run beside other tests: /opt/tandem/bin -> BUILD_DIR,
/models -> the model cache, and every declared containerPort -> a free port
(the same substitution in args and probes). It starts the three processes
together, the way a pod starts its containers, and then:
  - runs each container's startupProbe, then its readiness and liveness
    probes, as gRPC health checks (`tandem client health --service`) within
    the probe's periodSeconds x failureThreshold;
  - sends a chat request to the port the Service targets and expects an answer;
  - scrapes every port the PodMonitor names and expects Tandem metrics;
  - restarts the CPU worker container (kill -9, start again with the same
    argv) and expects the pod to be ready again with
    tandem_worker_restarts_total{worker="cpu"} 1: what a container restart
    in Kubernetes does.
Exit 0: passed; 77: skipped (no model, TANDEM_REQUIRE_MODEL unset).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_k8s  # noqa: E402  (the rendering and $(VAR) expansion shared with the static check)
from deploy_support import SKIP, Reporter, free_port  # noqa: E402

_r = Reporter("test_k8s_pod_local")
log, fail = _r.log, _r.fail


def remap(arg, ports):
    for old, new in ports.items():
        arg = re.sub(rf"^(0\.0\.0\.0|127\.0\.0\.1|localhost):{old}$", rf"127.0.0.1:{new}", arg)
    return arg


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__)
        return 2
    root, build = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    kubectl = sys.argv[3] if len(sys.argv) == 4 else "kubectl"
    model_dir = os.environ.get("TANDEM_MODEL_DIR", os.path.expanduser("~/.cache/tandem/models"))
    client = os.path.join(build, "tandem")

    docs, _ = check_k8s.render(kubectl, os.path.join(root, "deploy/k8s/overlays/cpu-only"))
    o = check_k8s.Overlay("cpu-only", docs)
    ports = {}  # every port the pod uses, declared or loopback-only -> a free one here
    for c in o.pod["containers"]:
        for p in c.get("ports", []):
            ports[p["containerPort"]] = free_port()
        for a in o.args(c["name"]):
            m = re.fullmatch(r"(?:0\.0\.0\.0|127\.0\.0\.1|localhost):([0-9]+)", a)
            if m and int(m.group(1)) not in ports:
                ports[int(m.group(1))] = free_port()

    procs, argvs, envs = {}, {}, {}
    for name, c in o.by_name.items():
        args = o.args(name)
        if not args[0].startswith("/opt/tandem/bin/"):
            fail(f"container {name}: command {args[0]} is not one of the image's binaries in /opt/tandem/bin")
        args = [os.path.join(build, os.path.basename(args[0]))] + [remap(a, ports) for a in args[1:]]
        args = [model_dir + a[len("/models"):] if a.startswith("/models/") else a for a in args]
        argvs[name] = args
        env = dict(os.environ)
        env.update({k: v for k, v in check_k8s.container_env(o.pod, c, o.cms).items()})
        envs[name] = env
    model = check_k8s.arg_value(argvs["coordinator"], "-m", "--model")
    if not os.path.exists(model):
        if os.environ.get("TANDEM_REQUIRE_MODEL"):
            fail(f"model {model} missing (TANDEM_REQUIRE_MODEL is set)")
        log(f"SKIP: model {model} missing (run `make model`)")
        return SKIP

    tmp = tempfile.mkdtemp(prefix="tandem-pod-")

    def start(name):
        logf = open(os.path.join(tmp, name + ".log"), "a")
        procs[name] = subprocess.Popen(argvs[name], env=envs[name], stdout=logf, stderr=subprocess.STDOUT)

    def logs():
        return "\n".join(f"--- {n}\n" + "".join(open(os.path.join(tmp, n + ".log")).readlines()[-15:]) for n in procs)

    def probe(name, kind, wait_s):
        pr = o.by_name[name][kind]["grpc"]
        port = ports[pr["port"]]
        until = time.time() + wait_s
        while True:  # ask in 2 s rounds, so that a container that died fails at once
            r = subprocess.run([client, "client", "health", "--addr", f"127.0.0.1:{port}",
                                "--service", pr.get("service", ""), "--wait", "2"], capture_output=True, text=True)
            if r.returncode == 0 or time.time() > until or procs[name].poll() is not None:
                break
        if r.returncode != 0:
            fail(f"{name} {kind} (grpc :{pr['port']} service {pr.get('service', '')!r}) after {wait_s} s: "
                 f"{r.stdout.strip()}\n{logs()}")
        return pr

    try:
        for name in ("cpu-worker", "gpu-worker", "coordinator"):
            start(name)
        for name in ("cpu-worker", "gpu-worker", "coordinator"):
            c = o.by_name[name]
            sp = c["startupProbe"]
            # The kubelet gives a startup probe periodSeconds x failureThreshold;
            # the default model needs seconds, so cap the wait at 120 s here.
            budget = min(120, sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3))
            pr = probe(name, "startupProbe", budget)
            probe(name, "readinessProbe", 5)
            probe(name, "livenessProbe", 5)
            log(f"{name}: startup ({pr.get('service')!r}), readiness, liveness probes pass on :{pr['port']}")

        svc = check_k8s.one(docs, "Service")
        grpc_port = next(p for p in svc["spec"]["ports"] if p.get("name") == "grpc" or p["port"] == 50051)
        target = grpc_port.get("targetPort", grpc_port["port"])
        if isinstance(target, str):
            target = next(p["containerPort"] for p in o.by_name["coordinator"]["ports"] if p.get("name") == target)
        r = subprocess.run([client, "client", "chat", "--addr", f"127.0.0.1:{ports[target]}", "-n", "16", "--temp", "0",
                            "Name a river."], capture_output=True, text=True, timeout=120)
        if r.returncode != 0 or not r.stdout.strip():
            fail(f"chat through the Service's target port {target} failed: {r.stderr}\n{logs()}")
        log(f"chat through Service port {grpc_port['port']} -> :{target}: {r.stdout.strip()[:60]!r}")

        pm = check_k8s.one(docs, "PodMonitor")
        named = {p.get("name"): p["containerPort"] for c in o.pod["containers"] for p in c.get("ports", [])}
        for ep in pm["spec"]["podMetricsEndpoints"]:
            port = named[ep["port"]]
            body = urllib.request.urlopen(f"http://127.0.0.1:{ports[port]}{ep.get('path', '/metrics')}", timeout=5).read().decode()
            if "tandem_" not in body:
                fail(f"PodMonitor endpoint {ep['port']} (:{port}) serves no Tandem metrics")
        log(f"PodMonitor endpoints {[ep['port'] for ep in pm['spec']['podMetricsEndpoints']]} serve Tandem metrics")

        # A container restart: kill -9 the CPU worker, start the same argv.
        procs["cpu-worker"].send_signal(signal.SIGKILL)
        procs["cpu-worker"].wait()
        start("cpu-worker")
        probe("cpu-worker", "startupProbe", 60)
        probe("coordinator", "readinessProbe", 60)
        metrics_port = ports[named["metrics"]]
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        m = re.search(r'^tandem_worker_restarts_total\{worker="cpu"\} (\S+)$', body, re.M)
        if not m or float(m.group(1)) != 1:
            fail(f"after a CPU worker container restart: tandem_worker_restarts_total{{worker=\"cpu\"}} is "
                 f"{m.group(1) if m else 'absent'}, want 1")
        r = subprocess.run([client, "client", "chat", "--addr", f"127.0.0.1:{ports[target]}", "-n", "8", "--temp", "0",
                            "Name a river."], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            fail(f"chat after the CPU worker restart failed: {r.stderr}\n{logs()}")
        log("CPU worker container restarted: pod ready again, tandem_worker_restarts_total{worker=\"cpu\"} 1, chat answers")
        log("PASS")
        return 0
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
