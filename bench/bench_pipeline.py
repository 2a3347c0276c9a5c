#!/usr/bin/env python3
"""Single-stream decode tok/s: the three-process pipeline (tandem-coordinator
+ both workers, gRPC + shared memory) against the single-process engine
(`tandem generate`), same model, same threads, greedy, fixed token count.

Usage: bench_pipeline.py --build BUILD --model GGUF [--threads N] [--tokens N] [--runs N]
"""
import argparse
import json
import re
import statistics
import subprocess
import time

PROMPT = "Write a short story about a lighthouse keeper."


def single_process(build, model, threads, tokens):
    out = subprocess.run([f"{build}/tandem", "generate", "-m", model, "-t", str(threads), "--temp", "0",
                          "--ignore-eos", "-n", str(tokens), "--json", "-p", PROMPT],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["timings"]["decode_tokens_per_s"]


def pipeline(build, model, threads, tokens, runs, gpu_layers):
    coord = subprocess.Popen([f"{build}/tandem-coordinator", "-m", model, "--listen", "127.0.0.1:0",
                              "--metrics", "127.0.0.1:0", "--gpu-layers", str(gpu_layers),
                              "--threads-gpu", str(threads), "--threads-cpu", str(threads)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        addr = None
        for line in coord.stdout:
            m = re.search(r"on (\S+) \(gRPC", line)
            if m:
                addr = m.group(1)
                break
        subprocess.run([f"{build}/tandem", "client", "health", "--addr", addr, "--wait", "60"],
                       check=True, capture_output=True)
        rates = []
        for _ in range(runs):
            out = subprocess.run([f"{build}/tandem", "client", "generate", "--addr", addr, "--temp", "0",
                                  "--ignore-eos", "-n", str(tokens), "--json", PROMPT], check=True, capture_output=True, text=True).stdout
            rates.append(json.loads(out)["timings"]["decode_tokens_per_s"])
        return rates
    finally:
        coord.terminate()
        coord.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--gpu-layers", type=int, default=10)
    a = ap.parse_args()
    single = [single_process(a.build, a.model, a.threads, a.tokens) for _ in range(a.runs)]
    piped = pipeline(a.build, a.model, a.threads, a.tokens, a.runs, a.gpu_layers)
    s, p = statistics.median(single), statistics.median(piped)
    print(f"decode, {a.tokens} tokens, {a.threads} thread(s) per process, median of {a.runs}:")
    print(f"  single process   {s:7.1f} tok/s   runs {', '.join(f'{x:.1f}' for x in single)}")
    print(f"  3-process split  {p:7.1f} tok/s   runs {', '.join(f'{x:.1f}' for x in piped)}  "
          f"(--gpu-layers {a.gpu_layers})")
    print(f"  pipeline / single = {p / s:.3f}  ({(1 - p / s) * 100:+.1f}% slower)")


if __name__ == "__main__":
    main()
