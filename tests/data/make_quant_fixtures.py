#!/usr/bin/env python3
"""Write the quantization fixtures in tests/data/quant/ from llama.cpp's Python
reference (the `gguf` package, gguf-py in the llama.cpp repository).

    pip install gguf==0.19.0 numpy
    python3 tests/data/make_quant_fixtures.py            # writes tests/data/quant/

Generated with: gguf 0.19.0, numpy 2.4.6 (seed 20240611). The output is
deterministic for a given numpy version.

tests/unit/test_quant.cpp reads, for every type T (lower-case ggml name):
  T.bin        8 blocks with random bytes and sane scale fields
  T.f32        gguf.quants.dequantize(T.bin)                 (little-endian f32)
and, for the types gguf.quants can quantize (F16 via numpy's astype, BF16,
Q4_0, Q4_1, Q5_0, Q5_1, Q8_0):
  T.qin.f32    16 blocks of input floats (several distributions, edge cases)
  T.qout.bin   gguf.quants.quantize(T.qin.f32)
Our to_float must equal T.f32 and our from_float must equal T.qout.bin bit for
bit. gguf-py has no K-quant quantizers and no Q8_1 / Q8_K code at all (its
GGML_QUANT_SIZES still lists the old 40-byte Q8_1 block), so those are covered
by round-trip tests in C++ instead.

"Sane scale fields": every fp16 scale (d, dmin, m) is set to a magnitude in
0.01..1 (sign random where the format allows it); all other bytes are random.
"""
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

SEED = 20240611
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quant")
N_BLOCKS = 8

# fp16 scale fields: type -> [(byte offset, may be negative)]
SCALE_FIELDS = {
    T.Q4_0: [(0, True)],
    T.Q4_1: [(0, False), (2, True)],
    T.Q5_0: [(0, True)],
    T.Q5_1: [(0, False), (2, True)],
    T.Q8_0: [(0, True)],
    T.Q2_K: [(80, False), (82, False)],   # scales[16] qs[64] d dmin
    T.Q3_K: [(108, True)],                # hmask[32] qs[64] scales[12] d
    T.Q4_K: [(0, False), (2, False)],     # d dmin scales[12] qs[128]
    T.Q5_K: [(0, False), (2, False)],     # d dmin scales[12] qh[32] qs[128]
    T.Q6_K: [(208, True)],                # ql[128] qh[64] scales[16] d
}


def sane_half(rng, allow_negative):
    v = np.float32(rng.uniform(0.01, 1.0))
    if allow_negative and rng.integers(2):
        v = -v
    return np.array([v], dtype=np.float32).astype(np.float16).view(np.uint8)


def random_blocks(rng, qtype):
    block_size, type_size = quants.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(N_BLOCKS, type_size), dtype=np.uint8)
    for off, neg in SCALE_FIELDS[qtype]:
        for b in range(N_BLOCKS):
            raw[b, off:off + 2] = sane_half(rng, neg)
    return raw


def float_blocks(rng, n_blocks, block=32):
    """Inputs for the quantizers: a mix of shapes, plus edge cases."""
    out = []
    for b in range(n_blocks):
        kind = b % 8
        if kind == 0:
            x = rng.standard_normal(block)
        elif kind == 1:
            x = rng.uniform(-0.05, 0.05, block)
        elif kind == 2:
            x = rng.uniform(-0.2, 1.0, block)                      # mostly positive
        elif kind == 3:
            x = rng.standard_normal(block) * 0.01
            x[rng.integers(block)] = 7.5                            # one outlier
        elif kind == 4:
            x = (rng.integers(-8, 9, block) * 0.25)                 # exact steps, ties
        elif kind == 5:
            x = np.zeros(block)                                     # all zero
        elif kind == 6:
            x = np.full(block, 0.3)                                 # constant (max == min)
        else:
            x = -np.abs(rng.standard_normal(block)) * 3             # all negative
        out.append(x.astype(np.float32))
    return np.concatenate(out)


def f16_bits(rng, n):
    """Random fp16 bit patterns; NaNs made quiet (numpy keeps a signalling
    NaN's payload as is, ggml and F16C set the quiet bit)."""
    h = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    nan = ((h & 0x7C00) == 0x7C00) & ((h & 0x03FF) != 0)
    h[nan] |= 0x0200
    h[:8] = [0x0000, 0x8000, 0x7C00, 0xFC00, 0x0001, 0x83FF, 0x0400, 0x7BFF]
    return h


def float_edge_cases():
    f = np.array([
        0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, -65520.0, 1e10, np.inf, -np.inf,
        6.1035156e-05, 6.0975552e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 1e-9,
        1.00048828125, 1.00146484375, 3.0517578e-05 + 1.5e-12,      # fp16 ties / near-ties
        1.00390625, 1.01171875, -2.0078125, 1.0000001,               # bf16 ties
        3.4028235e38, 1.1754944e-38, 1e-40, -1e-45,
    ], dtype=np.float32)
    return f


def write(name, arr):
    path = os.path.join(OUT, name)
    with open(path, "wb") as fh:
        fh.write(np.ascontiguousarray(arr).tobytes())


def main():
    if sys.byteorder != "little":
        sys.exit("fixtures are little-endian; run on a little-endian machine")
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(SEED)

    # ---- dequantization ------------------------------------------------------------
    f32 = rng.standard_normal(256).astype(np.float32)
    write("f32.bin", f32)
    write("f32.f32", quants.dequantize(f32.view(np.uint8), T.F32))

    h = f16_bits(rng, 256)
    write("f16.bin", h)
    write("f16.f32", quants.dequantize(h.view(np.uint8), T.F16))

    bf = rng.integers(0, 1 << 16, size=256, dtype=np.uint32).astype(np.uint16)
    write("bf16.bin", bf)
    write("bf16.f32", quants.dequantize(bf.view(np.uint8), T.BF16))

    for qtype in SCALE_FIELDS:
        blocks = random_blocks(rng, qtype)
        name = qtype.name.lower()
        write(name + ".bin", blocks)
        write(name + ".f32", quants.dequantize(blocks, qtype).astype(np.float32))

    # ---- quantization ----------------------------------------------------------------
    edges = float_edge_cases()
    x = np.concatenate([edges, (rng.standard_normal(256 - edges.size) * 100).astype(np.float32)])
    xf16 = x.copy()
    write("f16.qin.f32", xf16)
    with np.errstate(over="ignore"):  # 1e10 and 65520 overflow to inf on purpose
        write("f16.qout.bin", xf16.astype(np.float16))  # numpy rounds to nearest even, like ggml
    xbf = x.copy()
    xbf[-3:] = np.array([0x7FC00001, 0xFF800001, 0x7F800001], dtype=np.uint32).view(np.float32)  # NaNs
    write("bf16.qin.f32", xbf)
    write("bf16.qout.bin", quants.quantize(xbf, T.BF16))

    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
        xq = float_blocks(rng, 16)
        name = qtype.name.lower()
        write(name + ".qin.f32", xq)
        write(name + ".qout.bin", quants.quantize(xq.reshape(1, -1), qtype))

    print("wrote fixtures to", OUT)


if __name__ == "__main__":
    main()
