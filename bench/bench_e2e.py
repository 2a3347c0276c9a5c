#!/usr/bin/env python3
"""End-to-end prefill and decode tok/s of `tandem generate` and, when
llama-cpp-python is importable, of llama.cpp on the same file, prompt, thread
count and greedy decoding. Prints a table and writes bench_e2e.json.

Method (both engines): a fixed prompt (about 128 tokens on SmolLM2; cut to
--prompt-chars characters for the byte-level synthetic models, one token per
character) is prefilled in one batch; then --n-gen tokens are decoded one at a
time (end-of-generation ignored).
prefill tok/s = prompt tokens / prefill seconds; decode tok/s = decoded tokens
/ decode seconds. Each configuration runs `--repeat` times, the two engines
taking turns; the best run of each counts.
"""
import argparse
import json
import subprocess
import sys
import time

PROMPT = ("The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
          "combined movable metal type, oil-based inks and a wooden press adapted from wine making. "
          "Within fifty years, presses were operating in more than two hundred cities across Europe, "
          "and the number of books in circulation grew from thousands to millions. Scholars, merchants "
          "and reformers all found new uses for the technology, and the spread of printed material "
          "changed how ideas travelled, how languages were standardised and how knowledge was stored. "
          "In this essay we look at")
N_GEN = 128


def run_tandem(binary, model, threads):
    cmd = [binary, "generate", "-m", model, "-p", PROMPT, "-n", str(N_GEN), "--temp", "0", "--ignore-eos",
           "--threads", str(threads), "--ctx", "1024", "--json", "--no-bos"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    t = json.loads(out.strip().splitlines()[-1])["timings"]
    return t["prompt_tokens"], t["prefill_tokens_per_s"], t["decode_tokens_per_s"]


def run_llama_cpp(model, threads):
    import llama_cpp
    from llama_cpp import Llama
    import numpy as np
    llm = Llama(model_path=model, n_ctx=1024, n_batch=512, n_threads=threads, n_threads_batch=threads,
                verbose=False, seed=0)
    ids = llm.tokenize(PROMPT.encode(), add_bos=False, special=False)
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    t1 = time.perf_counter()
    for _ in range(N_GEN):
        tok = int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))))
        llm.eval([tok])
    t2 = time.perf_counter()
    return len(ids), len(ids) / (t1 - t0), N_GEN / (t2 - t1)


def best_of(runs):
    return runs[0][0], max(r[1] for r in runs), max(r[2] for r in runs)


def main():
    global PROMPT, N_GEN
    ap = argparse.ArgumentParser()
    ap.add_argument("--tandem", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default="bench_e2e.json")
    ap.add_argument("--prompt-chars", type=int, default=0, help="cut the prompt to this many characters (0: whole)")
    ap.add_argument("--n-gen", type=int, default=N_GEN, help="tokens decoded")
    a = ap.parse_args()
    if a.prompt_chars:
        PROMPT = PROMPT[:a.prompt_chars]
    N_GEN = a.n_gen
    try:
        import llama_cpp
        llama_version = llama_cpp.__version__
    except ImportError:
        llama_version = None
        print("llama-cpp-python not installed: llama.cpp columns skipped "
              "(CMAKE_ARGS=-DGGML_NATIVE=ON pip install llama-cpp-python)", file=sys.stderr)
    rows = []
    for th in [int(x) for x in a.threads.split(",")]:
        # The two engines take turns (ours, theirs, ours, ...), so a burst of
        # load from a noisy neighbour hits both sides alike.
        ours, theirs = [], []
        for _ in range(a.repeat):
            ours.append(run_tandem(a.tandem, a.model, th))
            if llama_version:
                theirs.append(run_llama_cpp(a.model, th))
        n_prompt, pf, dec = best_of(ours)
        row = {"threads": th, "prompt_tokens": n_prompt, "tandem_prefill": pf, "tandem_decode": dec}
        if llama_version:
            _, lpf, ldec = best_of(theirs)
            row.update(llama_prefill=lpf, llama_decode=ldec, prefill_ratio=pf / lpf, decode_ratio=dec / ldec)
        rows.append(row)
    print(f"model {a.model}; prompt {rows[0]['prompt_tokens']} tokens, {N_GEN} decoded; llama-cpp-python {llama_version}")
    print(f"{'threads':>7} {'prefill tok/s':>14} {'llama.cpp':>10} {'ratio':>6} {'decode tok/s':>13} {'llama.cpp':>10} {'ratio':>6}")
    for r in rows:
        lp = f"{r['llama_prefill']:10.1f} {r['prefill_ratio']:6.2f}" if llama_version else f"{'-':>10} {'-':>6}"
        ld = f"{r['llama_decode']:10.1f} {r['decode_ratio']:6.2f}" if llama_version else f"{'-':>10} {'-':>6}"
        print(f"{r['threads']:>7} {r['tandem_prefill']:14.1f} {lp} {r['tandem_decode']:13.1f} {ld}")
    with open(a.out, "w") as f:
        json.dump({"llama_cpp_python": llama_version, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
