#!/usr/bin/env bash
# `make bench`: memory bandwidth and kernel throughput, then end-to-end
# prefill/decode tok/s at 1 and 2 threads on the default model and on
# synthetic files with Llama-3-70B layer shapes (Q4_K_M, Q3_K_M; made by
# `tandem synth` once, cached under ~/.cache/tandem/synth), beside llama.cpp
# when llama-cpp-python is installed; then the split-service overheads.
# Usage: bench/run.sh BUILD_DIR MODEL
set -euo pipefail
build="${1:-build}"
model="${2:-$HOME/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
here="$(dirname "$0")"
synth_dir="$HOME/.cache/tandem/synth"
mkdir -p "$synth_dir"
echo "== memory read probe =="
"$build/tandem" bench bandwidth --threads 1,2
echo
echo "== kernels (matrix-vector, 8192x8192, weight GB/s beside the read probe) =="
"$build/tandem" bench kernels --threads 1,2
echo
echo "== kernels' compute ceiling (weights in L2, one thread) =="
"$build/tandem_bench_kernels" --benchmark_min_time=0.2
echo
echo "== end to end: $(basename "$model") =="
python3 "$here/bench_e2e.py" --tandem "$build/tandem" --model "$model" --out bench_e2e.json
for mix in Q4_K_M Q3_K_M; do
  f="$synth_dir/llama-3-70b-2L-$mix.gguf"
  if [ ! -f "$f" ]; then
    echo "making $f (two Llama-3-70B layers, vocabulary 32000; a few minutes, once)"
    "$build/tandem" synth -o "$f" --preset llama-3-70b --layers 2 --mix "$mix" --vocab 32000 >/dev/null
  fi
  echo
  echo "== end to end: two Llama-3-70B layers, $mix (64-token prompt, 16 decoded) =="
  "$build/tandem" bench model -m "$f" --threads 1,2 --prompt 64 --gen 16
  python3 "$here/bench_e2e.py" --tandem "$build/tandem" --model "$f" --prompt-chars 64 --n-gen 16 --repeat 3 \
    --out "bench_e2e_70b_$mix.json"
done
for t in IQ2_XXS IQ2_S IQ3_XXS; do
  f="$synth_dir/llama-3-70b-2L-$t.gguf"
  if [ ! -f "$f" ]; then
    echo "making $f (two Llama-3-70B layers, every matrix $t: random valid blocks)"
    "$build/tandem" synth -o "$f" --preset llama-3-70b --layers 2 --type "$t" --vocab 32000 >/dev/null
  fi
  echo
  echo "== end to end: two Llama-3-70B layers, all $t (64-token prompt, 16 decoded) =="
  python3 "$here/bench_e2e.py" --tandem "$build/tandem" --model "$f" --prompt-chars 64 --n-gen 16 --repeat 3 \
    --out "bench_e2e_70b_$t.json"
done
echo
echo "== shared-memory hop =="
"$build/tandem_bench_shm_hop" 20000 8192
echo
echo "== split service vs single process (decode) =="
python3 "$here/bench_pipeline.py" --build "$build" --model "$model" --threads 1
if [ "${BENCH_PPL:-0}" = "1" ]; then
  echo
  echo "== perplexity (full text) =="
  python3 "$here/perplexity_vs_llama.py" --tandem "$build/tandem" --model "$model"
fi
