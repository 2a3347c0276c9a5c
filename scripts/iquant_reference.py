#!/usr/bin/env python3
"""Dequantize raw ggml blocks with llama.cpp's Python reference (gguf-py).

    iquant_reference.py TYPE IN.bin OUT.bin

TYPE is a ggml type name (IQ2_XXS, IQ4_NL, ...); IN.bin holds whole blocks
of that type back to back, as in a GGUF tensor; OUT.bin receives the values
gguf.quants.dequantize gives for them, as little-endian float32.
tests/unit/test_iquants.cpp runs this to check our reference dequantizers
bit for bit. Needs `pip install gguf numpy` (scripts/install-deps.sh puts
them in a venv at ~/.cache/tandem/pyref when the system Python lacks them).
"""
import sys

import numpy as np
from gguf import GGMLQuantizationType, quants
from gguf.constants import GGML_QUANT_SIZES


def main(argv):
    if len(argv) != 4:
        sys.exit(f"usage: {argv[0]} TYPE IN.bin OUT.bin")
    try:
        qtype = GGMLQuantizationType[argv[1].upper()]
    except KeyError:
        sys.exit(f"unknown ggml type '{argv[1]}'")
    _, type_size = GGML_QUANT_SIZES[qtype]
    raw = np.fromfile(argv[2], dtype=np.uint8)
    if raw.size == 0 or raw.size % type_size:
        sys.exit(f"{argv[2]}: {raw.size} bytes is not a whole number of {qtype.name} blocks ({type_size} bytes)")
    values = quants.dequantize(raw.reshape(-1, type_size), qtype)
    values.astype("<f4", copy=False).tofile(argv[3])


if __name__ == "__main__":
    main(sys.argv)
