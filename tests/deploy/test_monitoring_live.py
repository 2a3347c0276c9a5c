#!/usr/bin/env python3
"""The monitoring files against the real service and a real Prometheus.

usage: test_monitoring_live.py REPO_ROOT BUILD_DIR

1. Starts the three-process service (tandem-coordinator in supervisor mode)
   on free ports with the default model and puts it under a short load of
   streaming chat requests (`tandem client chat`).
2. Scrapes the three /metrics endpoints: every tandem_* name that the
   Grafana dashboard or the Prometheus rules reference must be exported.
3. Starts Debian's prometheus on monitoring/prometheus/prometheus.yml as
   shipped (its rules, its relabeling), with only the targets file and the
   intervals (1 s, so a short test has samples) replaced. Checks that the
   three targets are up and labelled as the dashboard expects, that every
   rule evaluates without error, that every dashboard query is valid
   PromQL there, and that the dashboard's "Generated tokens/s" query
   returns a positive rate.
Exit 0: passed; 77: skipped (no model and TANDEM_REQUIRE_MODEL unset); else failed.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_support import SKIP, Reporter, free_port  # noqa: E402

_r = Reporter("test_monitoring_live")
log, fail = _r.log, _r.fail


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def prom_query(base, expr):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return json.loads(http_get(url))
    except urllib.error.HTTPError as e:  # 400/422: a bad query; the body says why
        return json.loads(e.read().decode())


def exported_names(body):
    names = set()
    for line in body.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def dashboard_queries(dash):
    out = []
    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p.get("title", ""), t["expr"]))
            walk(p.get("panels", []))
    walk(dash["panels"])
    return out


def substitute(expr):
    # What Grafana does before sending a query: the template variables.
    for var, val in (("$__rate_interval", "15s"), ("$__interval", "5s"), ("$__range", "1m"),
                     ("$instance", ".*"), ("$model", ".*")):
        expr = expr.replace(var, val)
    return re.sub(r"\$\{(instance|model)(:\w+)?\}", ".*", expr)


def rule_exprs(rule_dir):
    out = []
    for f in sorted(os.listdir(rule_dir)):
        if f.endswith(".yml"):
            for g in yaml.safe_load(open(os.path.join(rule_dir, f)))["groups"]:
                out += [r["expr"] for r in g["rules"]]
    return out


class Proc:
    def __init__(self, argv, logfile, **kw):
        self.logfile = logfile
        self.p = subprocess.Popen(argv, stdout=open(logfile, "w"), stderr=subprocess.STDOUT, **kw)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def tail(self):
        return "".join(open(self.logfile).readlines()[-30:])


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    root, build = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    model_dir = os.environ.get("TANDEM_MODEL_DIR", os.path.expanduser("~/.cache/tandem/models"))
    model = os.path.join(model_dir, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(model):
        if os.environ.get("TANDEM_REQUIRE_MODEL"):
            fail(f"model {model} missing (TANDEM_REQUIRE_MODEL is set; run `make model`)")
        log(f"SKIP: model {model} missing (run `make model`)")
        return SKIP
    prometheus = shutil.which("prometheus")
    if not prometheus:
        fail("prometheus not found: install Debian's `prometheus` package (scripts/install-deps.sh does)")

    dash = json.load(open(os.path.join(root, "monitoring/grafana/tandem.json")))
    queries = dashboard_queries(dash)
    rules = rule_exprs(os.path.join(root, "monitoring/prometheus/rules"))
    referenced = set()
    for e in [q for _, q in queries] + rules:
        referenced.update(re.findall(r"\btandem_[a-z0-9_]+\b", e))
    if not referenced:
        fail("found no tandem_* metric in the dashboard and rules")

    tmp = tempfile.mkdtemp(prefix="tandem-mon-")
    procs = []
    try:
        grpc_port, m_coord, m_gpu, m_cpu, prom_port = (free_port() for _ in range(5))
        addr = f"127.0.0.1:{grpc_port}"
        coord = Proc([os.path.join(build, "tandem-coordinator"), "-m", model, "--listen", addr,
                      "--metrics", f"127.0.0.1:{m_coord}", "--gpu-worker-metrics", f"127.0.0.1:{m_gpu}",
                      "--cpu-worker-metrics", f"127.0.0.1:{m_cpu}", "--gpu-layers", "10", "-c", "512",
                      "--max-sequences", "4", "--threads-gpu", "1", "--threads-cpu", "1"],
                     os.path.join(tmp, "coordinator.log"))
        procs.append(coord)
        client = os.path.join(build, "tandem")
        deadline = time.time() + 120
        while subprocess.run([client, "client", "health", "--addr", addr], capture_output=True).returncode != 0:
            if coord.p.poll() is not None or time.time() > deadline:
                fail("the service did not become SERVING:\n" + coord.tail())
            time.sleep(0.3)
        log(f"service SERVING on {addr}; metrics on {m_coord}, {m_gpu}, {m_cpu}")

        # Prometheus on the shipped config: copy monitoring/prometheus, point
        # the file_sd targets at this service, scrape and evaluate every second.
        pdir = os.path.join(tmp, "prometheus")
        shutil.copytree(os.path.join(root, "monitoring/prometheus"), pdir)
        cfg_path = os.path.join(pdir, "prometheus.yml")
        cfg = yaml.safe_load(open(cfg_path))
        cfg["global"]["scrape_interval"] = "1s"
        cfg["global"]["evaluation_interval"] = "1s"
        yaml.safe_dump(cfg, open(cfg_path, "w"))
        tdir = os.path.join(pdir, "targets")
        for f in os.listdir(tdir):
            os.remove(os.path.join(tdir, f))
        yaml.safe_dump([{"targets": [f"127.0.0.1:{m_coord}"], "labels": {"component": "coordinator"}},
                        {"targets": [f"127.0.0.1:{m_gpu}"], "labels": {"component": "gpu-worker"}},
                        {"targets": [f"127.0.0.1:{m_cpu}"], "labels": {"component": "cpu-worker"}}],
                       open(os.path.join(tdir, "live.yml"), "w"))
        prom = Proc([prometheus, f"--config.file={cfg_path}", f"--storage.tsdb.path={os.path.join(tmp, 'tsdb')}",
                     f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                    os.path.join(tmp, "prometheus.log"))
        procs.append(prom)
        base = f"http://127.0.0.1:{prom_port}"

        # Load: 3 clients stream chat answers for ~8 s.
        load = []
        t_end = time.time() + 8
        prompts = ["Name three rivers.", "What is 2+2?", "Say hello in French."]
        while time.time() < t_end:
            load = [p for p in load if p.poll() is None]
            while len(load) < 3:
                load.append(subprocess.Popen([client, "client", "chat", "--addr", addr, "-n", "24",
                                              prompts[len(load) % 3]], stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL))
            time.sleep(0.2)
        for p in load:
            if p.wait(60) != 0:
                fail(f"a load client exited with {p.returncode}")
        log("load done: 3 concurrent streaming clients for 8 s")

        # 2. every referenced metric is exported by the running binaries.
        exported = set()
        for port in (m_coord, m_gpu, m_cpu):
            exported |= exported_names(http_get(f"http://127.0.0.1:{port}/metrics"))
        missing = sorted(referenced - exported)
        if missing:
            fail(f"the dashboard/rules reference metrics the binaries do not export: {missing}")
        log(f"all {len(referenced)} tandem_* names of the dashboard and rules are exported")

        # 3. Prometheus: wait for a few scrapes after the load.
        time.sleep(3)
        targets = json.loads(http_get(base + "/api/v1/targets"))["data"]["activeTargets"]
        comps = sorted(t["labels"].get("component", "") for t in targets if t["health"] == "up")
        if comps != ["coordinator", "cpu-worker", "gpu-worker"]:
            fail(f"Prometheus targets up: {comps} ({[(t['scrapeUrl'], t['health'], t.get('lastError')) for t in targets]})")
        if any(t["labels"].get("instance") != "127.0.0.1" for t in targets):
            fail(f"relabeling did not set instance to the host: {[t['labels'] for t in targets]}")
        log("Prometheus scrapes the three processes as instance=127.0.0.1, component=coordinator|gpu-worker|cpu-worker")

        groups = json.loads(http_get(base + "/api/v1/rules"))["data"]["groups"]
        n_rules = 0
        for g in groups:
            for r in g["rules"]:
                n_rules += 1
                if r.get("health") != "ok":
                    fail(f"rule {r['name']} in {g['name']}: health {r.get('health')}: {r.get('lastError')}")
        if n_rules != len(rules):
            fail(f"Prometheus loaded {n_rules} rules, the files have {len(rules)}")
        log(f"all {n_rules} rules loaded and evaluate without error")

        for title, expr in queries:
            r = prom_query(base, substitute(expr))
            if r.get("status") != "success":
                fail(f"dashboard panel {title!r}: query {substitute(expr)!r} fails: {r.get('error')}")
        log(f"all {len(queries)} dashboard queries are valid PromQL")

        # The HPA's query: prometheus-adapter's metricsQuery template for
        # tandem_requests_waiting, filled in as the adapter does (by pod there;
        # by instance here, where there are no pods).
        adapter = yaml.safe_load(open(os.path.join(root, "deploy/k8s/base/prometheus-adapter-tandem-rules.yaml")))
        arule = yaml.safe_load(adapter["data"]["config.yaml"])["rules"][0]
        series = re.match(r"[a-z_:]+", arule["seriesQuery"].strip("'\"")).group(0)
        aq = (arule["metricsQuery"].replace("<<.Series>>", series)
              .replace("<<.LabelMatchers>>", 'instance="127.0.0.1"').replace("<<.GroupBy>>", "instance"))
        r = prom_query(base, aq)
        if r.get("status") != "success" or not r["data"]["result"]:
            fail(f"the prometheus-adapter query {aq!r} for the HPA returns {r}")
        log(f"the HPA's adapter query {aq!r} returns {r['data']['result'][0]['value'][1]}")

        tps = [e for t, e in queries if t == "Generated tokens/s"]
        if not tps:
            fail('no dashboard panel titled "Generated tokens/s"')
        r = prom_query(base, substitute(tps[0]))
        vals = [float(s["value"][1]) for s in r["data"]["result"]]
        if not vals or max(vals) <= 0:
            fail(f"Generated tokens/s returned {r['data']['result']} after the load")
        log(f"dashboard 'Generated tokens/s' = {max(vals):.2f} tokens/s (positive)")
        log("PASS")
        return 0
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
