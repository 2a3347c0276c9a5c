#!/usr/bin/env bash
# `make bench`: kernel throughput, then end-to-end prefill/decode tok/s on the
# default model at 1 and 2 threads, beside llama.cpp when llama-cpp-python is
# installed. Usage: bench/run.sh BUILD_DIR MODEL
set -euo pipefail
build="${1:-build}"
model="${2:-$HOME/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
echo "== kernels (matrix-vector, 4096x4096) =="
"$build/tandem_bench_kernels" --benchmark_min_time=0.3 --benchmark_counters_tabular=true
echo
echo "== end to end =="
python3 "$(dirname "$0")/bench_e2e.py" --tandem "$build/tandem" --model "$model"
echo
echo "== shared-memory hop =="
"$build/tandem_bench_shm_hop" 20000 8192
echo
echo "== split service vs single process (decode) =="
python3 "$(dirname "$0")/bench_pipeline.py" --build "$build" --model "$model" --threads 1
if [ "${BENCH_PPL:-0}" = "1" ]; then
  echo
  echo "== perplexity (full text) =="
  python3 "$(dirname "$0")/perplexity_vs_llama.py" --tandem "$build/tandem" --model "$model"
fi
