#!/usr/bin/env python3
"""Makes tests/data/smollm2_greedy_golden.json and smollm2_perplexity_golden.json
with llama.cpp (through llama-cpp-python), the reference Tandem must match.

Not part of `make test` (llama-cpp-python builds llama.cpp from source). Run:
    CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_CUDA=OFF" pip install llama-cpp-python
    python3 tests/data/make_generation_golden.py [MODEL.gguf]

Greedy: for each prompt, llama.cpp tokenizes it (special tokens parsed for
chat prompts), evaluates it, then 64 times takes the argmax of the last
logits and feeds it back (end-of-generation tokens are not special-cased, so
every prompt yields exactly 64 ids).
Perplexity: llama-perplexity's method (non-overlapping chunks of n_ctx tokens
from an empty cache, the second half of each chunk scored) on the logits
llama.cpp computes, for the KV cache types f16, q8_0 and q4_0.
"""
import json
import math
import os
import sys

# llama.cpp (2026) applies a Walsh-Hadamard rotation to Q/K/V when the KV
# cache is quantized; Tandem does not (yet), so the goldens are made with it
# off, i.e. the plain quantized cache of earlier llama.cpp releases.
os.environ["LLAMA_ATTN_ROT_DISABLE"] = "1"

import numpy as np
import llama_cpp
from llama_cpp import Llama

HERE = os.path.dirname(os.path.abspath(__file__))
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
MODEL = ARGS[0] if ARGS else os.path.expanduser(
    "~/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf")
N_NEW = 64
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml(user):
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")


PROMPTS = [
    {"name": "plain_story", "chat": False, "text": "Once upon a time, in a small village by the sea,"},
    {"name": "plain_code", "chat": False, "text": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"},
    {"name": "plain_facts", "chat": False, "text": "The three largest planets in the solar system are"},
    {"name": "plain_numbers", "chat": False, "text": "1, 2, 3, 5, 8, 13, 21,"},
    {"name": "chat_sky", "chat": True, "text": chatml("Explain in two sentences why the sky is blue.")},
    {"name": "chat_recipe", "chat": True, "text": chatml("Give me a short recipe for pancakes.")},
    {"name": "chat_translate", "chat": True, "text": chatml("Translate 'good morning, my friend' into French and Spanish.")},
    {"name": "chat_math", "chat": True, "text": chatml("What is 17 times 23? Show your steps.")},
]

# llama.cpp's flash-attention path with a q8_0 KV cache (`-fa on -ctk q8_0
# -ctv q8_0`): its arithmetic is the one Tandem's attention follows step for
# step, so the greedy tokens must agree exactly.
GGML_Q8_0 = 8
CTX_SETTINGS = dict(n_ctx=1024, n_batch=512, n_threads=2, seed=0, verbose=False,
                    flash_attn=True, type_k=GGML_Q8_0, type_v=GGML_Q8_0)


def last_logits(llm):
    """llama.cpp's logits of the last evaluated token (llama_get_logits_ith(ctx, -1))."""
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()


def greedy(model=None, prompts=None):
    """llama.cpp's N_NEW greedy tokens for each prompt (default: MODEL, PROMPTS)."""
    llm = Llama(model_path=model or MODEL, logits_all=False, **CTX_SETTINGS)
    cases = []
    for p in prompts or PROMPTS:
        ids = llm.tokenize(p["text"].encode("utf-8"), add_bos=False, special=p["chat"])
        llm.reset()
        llm.eval(ids)
        out = []
        for _ in range(N_NEW):
            tok = int(np.argmax(last_logits(llm)))
            out.append(tok)
            llm.eval([tok])
        cases.append({"name": p["name"], "chat": p["chat"], "prompt": p["text"],
                      "prompt_ids": [int(t) for t in ids], "output_ids": out,
                      "output_text": llm.detokenize(out).decode("utf-8", errors="replace")})
    return cases


def perplexity(text_path, n_ctx, type_k, type_v):
    llm = Llama(model_path=MODEL, logits_all=True, n_ctx=n_ctx, n_batch=n_ctx, n_threads=2, seed=0,
                verbose=False, type_k=type_k, type_v=type_v, flash_attn=(type_v != 1))
    text = open(text_path, "rb").read()
    tokens = llm.tokenize(text, add_bos=llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm.model)), special=False)
    n_chunk = len(tokens) // n_ctx
    first = n_ctx // 2
    nll = nll2 = 0.0
    count = 0
    after = []
    for c in range(n_chunk):
        chunk = tokens[c * n_ctx:(c + 1) * n_ctx]
        llm.reset()
        llm.eval(chunk)
        logits = np.asarray(llm.scores[:n_ctx], dtype=np.float32)
        for i in range(first, n_ctx - 1):
            row = logits[i]
            mx = row.max()
            lse = math.log(np.exp((row - mx).astype(np.float64)).sum())
            v = -(float(row[chunk[i + 1]] - mx) - lse)
            nll += v
            nll2 += v * v
            count += 1
        after.append(math.exp(nll / count))
    mean = nll / count
    var = nll2 / count - mean * mean
    ppl = math.exp(mean)
    return {"ppl": ppl, "error": ppl * math.sqrt(var / (count - 1)), "tokens": len(tokens),
            "chunks": n_chunk, "scored": count, "ppl_after_chunk": after}


def main():
    meta = {"llama_cpp_python": llama_cpp.__version__,
            "model": os.path.basename(MODEL),
            "command": "python3 tests/data/make_generation_golden.py " + os.path.basename(MODEL),
            "settings": {k: v for k, v in CTX_SETTINGS.items() if k != "verbose"}}
    if "--ppl-only" not in sys.argv:
        g = {"meta": meta, "new_tokens": N_NEW, "cases": greedy()}
        with open(os.path.join(HERE, "smollm2_greedy_golden.json"), "w") as f:
            json.dump(g, f, indent=1, ensure_ascii=False)
    if "--greedy-only" in sys.argv:
        return
    text = os.path.join(HERE, "kjv_genesis_1-25.txt")
    GGML_F16, GGML_Q8_0, GGML_Q4_0 = 1, 8, 2
    ppl = {"meta": dict(meta, text=os.path.basename(text), method="llama-perplexity (see script)"), "ctx": 512, "runs": {}}
    for name, t in (("f16", GGML_F16), ("q8_0", GGML_Q8_0), ("q4_0", GGML_Q4_0)):
        ppl["runs"][name] = perplexity(text, 512, t, t)
        print(name, ppl["runs"][name]["ppl"], file=sys.stderr)
    with open(os.path.join(HERE, "smollm2_perplexity_golden.json"), "w") as f:
        json.dump(ppl, f, indent=1)


if __name__ == "__main__":
    main()
