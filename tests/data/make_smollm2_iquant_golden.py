#!/usr/bin/env python3
"""Makes tests/data/smollm2_iquant_golden.json: SmolLM2-135M-Instruct
re-quantized by llama.cpp to i-quant file types, and llama.cpp's greedy tokens
and perplexity on each.

Not part of `make test` (llama-cpp-python builds llama.cpp from source). Run:
    python3 tests/data/make_smollm2_iquant_golden.py [SOURCE.gguf]

For each file type (IQ4_NL, IQ4_XS, IQ3_S, IQ3_XXS), llama.cpp's
llama_model_quantize (no importance matrix, --allow-requantize, as
`llama-quantize --allow-requantize SRC DST TYPE`) re-quantizes the shipped
Q4_1 file into ~/.cache/tandem/models/SmolLM2-135M-Instruct.<TYPE>.llamacpp.gguf.
Rows of 576 (not a multiple of 256) fall back to IQ4_NL there, so every file
mixes IQ4_NL with its own type (ffn_down, 1536 wide) and Q8_0 (the tied
embedding). The JSON records, per file, every tensor's type and the CRC-32
(zlib) of its bytes: `tandem quantize` must produce the same bytes for
the types it can quantize (tests/unit/test_iquant_smollm2.cpp).

Greedy: 4 prompts x 64 argmax tokens with the settings of
smollm2_greedy_golden.json (flash attention, q8_0 KV cache, Walsh-Hadamard
rotation disabled). Perplexity: llama-perplexity's method on
kjv_genesis_1-25.txt at ctx 512 with the q8_0 cache (running PPL per chunk).
"""
import ctypes
import json
import os
import sys
import zlib

os.environ["LLAMA_ATTN_ROT_DISABLE"] = "1"

import llama_cpp
import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_generation_golden import PROMPTS, greedy, perplexity  # noqa: E402

CACHE = os.path.expanduser(os.environ.get("TANDEM_MODEL_DIR", "~/.cache/tandem/models"))
SOURCE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf")
FTYPES = {"IQ4_NL": llama_cpp.LLAMA_FTYPE_MOSTLY_IQ4_NL, "IQ4_XS": llama_cpp.LLAMA_FTYPE_MOSTLY_IQ4_XS,
          "IQ3_S": llama_cpp.LLAMA_FTYPE_MOSTLY_IQ3_S, "IQ3_XXS": llama_cpp.LLAMA_FTYPE_MOSTLY_IQ3_XXS}
CASES = [p for p in PROMPTS if p["name"] in ("plain_story", "plain_code", "chat_sky", "chat_math")]
GGML_Q8_0 = 8


def crc32(data):
    return "%08x" % zlib.crc32(bytes(data))


def quantize(dst, ftype):
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.allow_requantize = True
    p.nthread = 2
    if llama_cpp.llama_model_quantize(SOURCE.encode(), dst.encode(), ctypes.byref(p)) != 0:
        raise SystemExit("llama_model_quantize failed for " + dst)


def tensors(path):
    r = gguf.GGUFReader(path)
    return [{"name": t.name, "type": t.tensor_type.name, "crc32": crc32(t.data.tobytes())} for t in r.tensors]


def main():
    import make_generation_golden as mg
    doc = {"meta": {"llama_cpp_python": llama_cpp.__version__, "gguf_py": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0",
                    "source": os.path.basename(SOURCE),
                    "command": "python3 tests/data/make_smollm2_iquant_golden.py",
                    "quantize": "llama_model_quantize, no imatrix, allow_requantize",
                    "greedy": "n_ctx=1024 n_batch=512 n_threads=2 flash_attn q8_0 KV, LLAMA_ATTN_ROT_DISABLE=1",
                    "perplexity": "kjv_genesis_1-25.txt, ctx 512, q8_0 KV, flash_attn"},
           "new_tokens": 64, "files": []}
    for name, ftype in FTYPES.items():
        path = os.path.join(CACHE, "SmolLM2-135M-Instruct.%s.llamacpp.gguf" % name)
        if not os.path.exists(path):
            quantize(path, ftype)
        mg.MODEL = path
        ppl = perplexity(os.path.join(HERE, "kjv_genesis_1-25.txt"), 512, GGML_Q8_0, GGML_Q8_0)
        print(name, "ppl", ppl["ppl"], file=sys.stderr)
        doc["files"].append({"ftype": name, "file": os.path.basename(path), "tensors": tensors(path),
                             "cases": greedy(path, CASES), "perplexity_q8_0": ppl})
    with open(os.path.join(HERE, "smollm2_iquant_golden.json"), "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
