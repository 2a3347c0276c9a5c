#!/usr/bin/env python3
"""The soak run of `make soak`: the three-process service under 16 verified
streams for SECONDS, with memory and file descriptors sampled.

usage: soak.py BUILD_DIR MODEL [SECONDS]

Starts tandem-coordinator (supervisor mode, 16 KV slots) on free ports, warms
it up, samples RSS and open fds of the coordinator and both workers, runs
`tandem client bench -c 16 -d SECONDS --verify --cancel-rate 0.1`, samples
again (RSS also every 30 s), and checks: no failed request, no
lost/duplicated/changed token (--verify), requests in = requests out on the
coordinator's counters, no slot left held, fds flat, and RSS flat once the
load has settled: under 3% growth from the first quarter of the run to its
end (the KV cache's pages are touched as positions are first written, and
the allocator grows to its working set, so the very start may rise). Prints one summary (the lines
docs/RELIABILITY.md records). Exit 0 when all hold.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            out += [int(c) for c in open(f"/proc/{pid}/task/{task}/children").read().split()]
        except OSError:
            pass
    return out


def metrics(url):
    return urllib.request.urlopen(url, timeout=5).read().decode()


def series_sum(body, name):
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", body, re.M))


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    build, model = sys.argv[1], sys.argv[2]
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 600
    port, mport = free_port(), free_port()
    addr = f"127.0.0.1:{port}"
    coord = subprocess.Popen([os.path.join(build, "tandem-coordinator"), "-m", model, "--listen", addr,
                              "--metrics", f"127.0.0.1:{mport}", "--gpu-layers", "10", "-c", "2048",
                              "--max-sequences", "16", "--max-queue", "64"],
                             stdout=subprocess.DEVNULL, stderr=open("/tmp/tandem-soak-coordinator.log", "w"))
    client = os.path.join(build, "tandem")
    try:
        if subprocess.run([client, "client", "health", "--addr", addr, "--wait", "120"],
                          capture_output=True).returncode != 0:
            print("soak: the service did not come up (see /tmp/tandem-soak-coordinator.log)")
            return 1
        load = ["--min-tokens", "16", "--max-tokens", "160", "--cancel-rate", "0.1"]
        # Warm-up with the same load: every code path and allocation once, and
        # the KV cache pages that the longest prompt + output touch.
        subprocess.run([client, "client", "bench", "--addr", addr, "-c", "16", "-d", "60", "--json", *load],
                       capture_output=True)
        procs = {"coordinator": coord.pid, **{f"worker {p}": p for p in children(coord.pid)}}
        start = {n: (rss_kib(p), fds(p)) for n, p in procs.items()}
        before = metrics(f"http://127.0.0.1:{mport}/metrics")
        t0 = time.time()
        bench = subprocess.Popen([client, "client", "bench", "--addr", addr, "-c", "16", "-d", str(seconds),
                                  "--verify", "--json", *load], stdout=subprocess.PIPE, text=True)
        samples = {n: [] for n in procs}  # RSS every 30 s: flat means no growth after the first quarter
        while bench.poll() is None:
            for n, p in procs.items():
                samples[n].append(rss_kib(p))
            time.sleep(30)
        r = subprocess.CompletedProcess(bench.args, bench.returncode, bench.stdout.read(), "")
        wall = time.time() - t0
        time.sleep(2)
        end = {n: (rss_kib(p), fds(p)) for n, p in procs.items()}
        after = metrics(f"http://127.0.0.1:{mport}/metrics")
        j = json.loads(r.stdout)
        finished = series_sum(after, "tandem_requests_total") - series_sum(before, "tandem_requests_total")
        expected = j["requests"] + 8  # the --verify reference runs
        print(f"soak: {seconds} s (wall {wall:.0f} s), 16 streams, cancel rate 0.1: {j['requests']} requests, "
              f"{j['generated_tokens']} tokens, {j['tokens_per_s']:.1f} tok/s; outcomes {j['outcomes']}")
        print(f"soak: verify: {j['verify']['checked']} streams checked, {j['verify']['mismatches']} mismatches")
        for k in ("ttft_s", "inter_token_s", "e2e_s"):
            print(f"soak: {k}: p50 {j[k]['p50'] * 1e3:.0f} ms, p95 {j[k]['p95'] * 1e3:.0f} ms, p99 {j[k]['p99'] * 1e3:.0f} ms")
        print(f"soak: requests finished on the coordinator {finished:.0f}, sent {expected}")
        ok = r.returncode == 0 and j["verify"]["mismatches"] == 0 and finished == expected
        for n in procs:
            (r0, f0), (r1, f1) = start[n], end[n]
            grow = (r1 - r0) / max(r0, 1)
            quarter = samples[n][len(samples[n]) // 4] if samples[n] else r0
            late = (r1 - quarter) / max(quarter, 1)
            print(f"soak: {n}: RSS {r0 / 1024:.1f} -> {r1 / 1024:.1f} MiB ({grow * 100:+.1f}%; "
                  f"{late * 100:+.1f}% after the first quarter), fds {f0} -> {f1}; "
                  f"samples MiB {[round(x / 1024, 1) for x in samples[n]]}")
            ok = ok and late < 0.03 and f1 <= f0 + 4
        for g in ("tandem_requests_running", "tandem_requests_waiting", "tandem_kv_slots_in_use"):
            v = series_sum(after, g)
            print(f"soak: {g} after: {v:.0f}")
            ok = ok and v == 0
        print("soak: PASS" if ok else "soak: FAIL")
        return 0 if ok else 1
    finally:
        coord.send_signal(signal.SIGTERM)
        coord.wait(60)


if __name__ == "__main__":
    sys.exit(main())
