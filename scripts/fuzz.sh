#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, coverage on our code)
# and runs each for SECONDS on a working corpus seeded from
# tests/fuzz/corpus/<target>/, after replaying tests/fuzz/regressions/<target>/
# (inputs that once failed). Any failure keeps its input under
# BUILD/artifacts/<target>/ and makes the script exit 1.
#   scripts/fuzz.sh BUILD SECONDS [PARALLEL]   (PARALLEL targets at a time)
set -euo pipefail
build=${1:?build dir}
seconds=${2:?seconds per target}
parallel=${3:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
targets=(gguf tokenizer chat_template requests shm_ring)

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DTANDEM_FUZZ=ON -DTANDEM_CUDA=OFF -DTANDEM_BUILD_BENCH=OFF \
  -DTANDEM_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target fuzzers

# The text fuzzers run against the tokenizer test vocabularies and the
# default model (its chat template and its "smollm" BPE).
vocabs="$root/../shared/testdata/tokenizer"
model="${TANDEM_MODEL_DIR:-$HOME/.cache/tandem/models}/SmolLM2-135M-Instruct.Q4_1.gguf"
for f in "$vocabs/ggml-vocab-llama-spm.gguf" "$vocabs/ggml-vocab-gpt-2.gguf" "$vocabs/ggml-vocab-starcoder.gguf" "$model"; do
  [[ -f $f ]] || { echo "fuzz: $f is missing (the tokenizer test data, or the model: make model)" >&2; exit 2; }
done
export TANDEM_FUZZ_VOCABS="$vocabs/ggml-vocab-llama-spm.gguf:$vocabs/ggml-vocab-gpt-2.gguf:$vocabs/ggml-vocab-starcoder.gguf:$model"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

run_one() {
  local t=$1 bin="$build/fuzz/fuzz_$1" corpus="$build/corpus/$1" art="$build/artifacts/$1/" log="$build/logs/$1.log"
  mkdir -p "$corpus" "$art" "$build/logs"
  cp -n "$root/tests/fuzz/corpus/$t/"* "$corpus/" 2>/dev/null || true
  if [[ -d $root/tests/fuzz/regressions/$t ]]; then
    if ! "$bin" "$root/tests/fuzz/regressions/$t/"* >"$build/logs/$t.regressions.log" 2>&1; then
      echo "fuzz_$t: a regression input fails again (log: $build/logs/$t.regressions.log)"
      return 1
    fi
  fi
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art" \
       "$corpus" >"$log" 2>&1; then
    local runs cov
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    printf 'fuzz_%-14s %4ss  %9s runs  %5s edges  %5s corpus  no finding\n' "$t" "$seconds" "$runs" "$cov" \
      "$(ls "$corpus" | wc -l)"
  else
    echo "fuzz_$t: FINDING after $(grep -c . "$log") log lines; input kept in $art (log: $log)"
    grep -m5 -E 'check failed|ERROR: |runtime error' "$log" || true
    return 1
  fi
}

status=0
pids=()
for t in "${targets[@]}"; do
  run_one "$t" & pids+=($!)
  if (( ${#pids[@]} >= parallel )); then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
