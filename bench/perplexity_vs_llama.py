#!/usr/bin/env python3
"""Full-text perplexity of `tandem perplexity` for the KV cache types f16,
q8_0 and q4_0, beside llama.cpp's numbers for the same text, model and context
(tests/data/smollm2_perplexity_golden.json, made by
tests/data/make_generation_golden.py). Prints a table and the relative
differences. Usage: perplexity_vs_llama.py --tandem build/tandem --model M
"""
import argparse
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tandem", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", default="2")
    a = ap.parse_args()
    golden = json.load(open(os.path.join(DATA, "smollm2_perplexity_golden.json")))
    text = os.path.join(DATA, golden["meta"]["text"])
    ctx = golden["ctx"]
    print(f"perplexity of {os.path.basename(a.model)} on {golden['meta']['text']}, ctx {ctx}; "
          f"llama.cpp = llama-cpp-python {golden['meta']['llama_cpp_python']}")
    print(f"{'KV':>5} {'tandem':>16} {'llama.cpp':>10} {'diff':>8} {'vs f16':>7} {'seconds':>8}")
    base = None
    for kv in ("f16", "q8_0", "q4_0"):
        out = subprocess.run([a.tandem, "perplexity", "-m", a.model, "-f", text, "--ctx", str(ctx), "--threads",
                              a.threads, "--cache-type-k", kv, "--cache-type-v", kv, "--json"],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        want = golden["runs"][kv]["ppl"]
        base = base or r["ppl"]
        print(f"{kv:>5} {r['ppl']:8.4f} ± {r['error']:5.3f} {want:10.4f} {100 * (r['ppl'] / want - 1):+7.3f}% "
              f"{100 * (r['ppl'] / base - 1):+6.2f}% {r['seconds']:8.1f}")


if __name__ == "__main__":
    main()
