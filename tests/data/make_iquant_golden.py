#!/usr/bin/env python3
"""Makes tests/data/iquant_greedy_golden.json: llama.cpp's greedy tokens on
synthetic models whose matrices are random valid i-quant blocks.

Not part of `make test` (llama-cpp-python builds llama.cpp from source). Run,
after a build:
    python3 tests/data/make_iquant_golden.py build/tandem

For each type, `tandem synth --preset tiny --layers 2 --type T --vocab 0
--seed 7` writes the model (every matrix, the embedding included, of type T:
random bytes with each block's scale set for an RMS of 1 in the embedding and
1/sqrt(fan-in) elsewhere; deterministic in the seed), then llama.cpp
evaluates each prompt and 64 times takes the argmax of the last logits and
feeds it back, with the same settings as smollm2_greedy_golden.json
(flash attention, q8_0 KV cache, Walsh-Hadamard rotation disabled).
"""
import json
import os
import subprocess
import sys
import tempfile

os.environ["LLAMA_ATTN_ROT_DISABLE"] = "1"

import numpy as np
import llama_cpp
from llama_cpp import Llama

HERE = os.path.dirname(os.path.abspath(__file__))
TYPES = ["IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M", "IQ4_NL", "IQ4_XS"]
PROMPTS = ["hello world", "The quick brown fox", "0123456789", "Once upon a time, in a land far away"]
N_NEW = 64
SYNTH = ["--preset", "tiny", "--layers", "2", "--vocab", "0", "--seed", "7"]


def last_logits(llm):
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()


def main():
    tandem = sys.argv[1] if len(sys.argv) > 1 else "build/tandem"
    out = {"llama_cpp_python": llama_cpp.__version__, "synth_args": SYNTH, "n_new": N_NEW, "models": []}
    with tempfile.TemporaryDirectory() as tmp:
        for t in TYPES:
            path = os.path.join(tmp, t + ".gguf")
            subprocess.run([tandem, "synth", "-o", path, "--type", t] + SYNTH, check=True, stdout=subprocess.DEVNULL)
            llm = Llama(model_path=path, n_ctx=512, n_batch=512, n_threads=2, seed=0, verbose=False,
                        flash_attn=True, type_k=llama_cpp.GGML_TYPE_Q8_0, type_v=llama_cpp.GGML_TYPE_Q8_0)
            cases = []
            for p in PROMPTS:
                ids = llm.tokenize(p.encode("utf-8"), add_bos=False, special=False)
                llm.reset()
                llm.eval(ids)
                gen = []
                for _ in range(N_NEW):
                    tok = int(np.argmax(last_logits(llm)))
                    gen.append(tok)
                    llm.eval([tok])
                cases.append({"prompt": p, "prompt_ids": [int(i) for i in ids], "output_ids": gen})
            out["models"].append({"type": t, "cases": cases})
            del llm
    with open(os.path.join(HERE, "iquant_greedy_golden.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
