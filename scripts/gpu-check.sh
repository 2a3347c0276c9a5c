#!/usr/bin/env bash
# The GPU check: build for this machine's GPU, run the `gpu`-labelled tests
# (every kernel against the CPU reference on fresh random data; the CUDA stage
# against the CPU stage on synthetic models and, when the model is in the
# cache, greedy tokens on SmolLM2), then the GEMV bandwidth benchmark, and
# print one short table. Budget: under 8 minutes on an H200.
#
#   scripts/gpu-check.sh                  build here (needs the Debian deps and a GPU), then check
#   scripts/gpu-check.sh --prepare DIR    on a machine WITHOUT a GPU: build for sm_${ARCH:-90} into
#                                         DIR with the shared libraries the binaries need (to carry
#                                         to a GPU machine that lacks the deps)
#   scripts/gpu-check.sh --prebuilt DIR   on the GPU machine: run what --prepare built
#
# With the lent H200 (no Debian packages there, no network, 64 MiB carried per
# call): `scripts/gpu-check.sh --prepare build-gpu` here. It builds the carry
# (14 MB) and, when SmolLM2 is in the model cache, splits it into
# build-gpu/model/a and build-gpu/model/b (47 MB each). Then, back to back so the
# machine stays warm (files carried earlier stay there):
#   run 1: carry [build-gpu/model/a], command `true`
#   run 2: carry [build-gpu/carry, build-gpu/model/b],
#          command `scripts/gpu-check.sh --prebuilt build-gpu/carry`
# --prebuilt joins the parts back into the model cache and checks the sha256
# recorded by --prepare; without them the SmolLM2 test skips, saying why.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=build
dir=build-gpu
case "${1:-}" in
  --prepare) mode=prepare; dir=${2:?--prepare DIR} ;;
  --prebuilt) mode=prebuilt; dir=${2:?--prebuilt DIR} ;;
  "") ;;
  *) echo "usage: $0 [--prepare DIR | --prebuilt DIR]" >&2; exit 2 ;;
esac
t0=$(date +%s)

configure_and_build() {  # $1 = CUDA architectures
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTANDEM_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$1" >/dev/null || return 1
  cmake --build "$dir" -j "$(nproc)" --target tandem_gpu_tests tandem_bench_gpu_gemv || return 1
}

if [ "$mode" = prepare ]; then
  configure_and_build "${ARCH:-90}" || { echo "gpu-check: build failed" >&2; exit 1; }
  mkdir -p "$dir/carry/lib"
  cp "$dir/tests/tandem_gpu_tests" "$dir/tandem_bench_gpu_gemv" "$dir/carry/"
  # Shared libraries outside the CUDA toolkit (the GPU image has CUDA's own).
  for bin in "$dir/carry/tandem_gpu_tests" "$dir/carry/tandem_bench_gpu_gemv"; do
    ldd "$bin" | awk '/=> \// {print $3}' | grep -Ev 'libc\.so|libm\.so|libgcc_s|libstdc\+\+|ld-linux|libpthread|libdl|librt|libcuda|libcublas|libcudart' |
      xargs -r -I{} cp -L {} "$dir/carry/lib/"
  done
  du -sh "$dir/carry"
  model="$HOME/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ -f "$model" ]; then
    rm -rf "$dir/model" && mkdir -p "$dir/model"
    half=$(( ($(stat -c %s "$model") + 1) / 2 ))
    head -c "$half" "$model" >"$dir/model/a"
    tail -c +"$((half + 1))" "$model" >"$dir/model/b"
    sha256sum "$model" | cut -d' ' -f1 >"$dir/carry/model.sha256"
    echo "gpu-check: model split into $dir/model/a and $dir/model/b (carry them in two runs, see the header)"
  fi
  echo "gpu-check: carry $dir/carry and run: scripts/gpu-check.sh --prebuilt $dir/carry"
  exit 0
fi

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU here (nvidia-smi finds none); use --prepare on this machine and --prebuilt on one with a GPU" >&2
  exit 1
fi
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)

if [ "$mode" = build ]; then
  bash scripts/install-deps.sh || exit 1
  configure_and_build "$arch" || { echo "gpu-check: build failed" >&2; exit 1; }
  tests="$dir/tests/tandem_gpu_tests"
  bench="$dir/tandem_bench_gpu_gemv"
else
  tests="$dir/tandem_gpu_tests"
  bench="$dir/tandem_bench_gpu_gemv"
  export LD_LIBRARY_PATH="$dir/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  parts="$dir/../model"
  if [ -f "$parts/a" ] && [ -f "$parts/b" ] && [ -f "$dir/model.sha256" ]; then
    models="$HOME/.cache/tandem/models"
    mkdir -p "$models"
    cat "$parts/a" "$parts/b" >"$models/SmolLM2-135M-Instruct.Q4_1.gguf"
    if [ "$(sha256sum "$models/SmolLM2-135M-Instruct.Q4_1.gguf" | cut -d' ' -f1)" != "$(cat "$dir/model.sha256")" ]; then
      echo "gpu-check: the joined model's sha256 differs from the one --prepare recorded; SmolLM2 test will skip" >&2
      rm -f "$models/SmolLM2-135M-Instruct.Q4_1.gguf"
    fi
  fi
fi

log=$(mktemp)
timeout 300 "$tests" --gtest_color=no 2>&1 | tee "$log" | grep -E '^\[ +(FAILED|SKIPPED) +\]|cuda e2e|cuda graphs|Failure' || true
passed=$(grep -cE '^\[ +OK +\]' "$log")
failed=$(grep -cE '^\[ +FAILED +\] [A-Za-z]' "$log")
skipped=$(grep -cE '^\[ +SKIPPED +\] [A-Za-z]' "$log")
bench_out=$(timeout 180 "$bench" 2>&1)

echo
echo "== gpu-check: $gpu (sm_$arch), $(date -u +%Y-%m-%d) =="
printf '%-28s %s\n' "gpu tests passed" "$passed" "gpu tests failed" "$failed" "gpu tests skipped" "$skipped"
grep 'cuda e2e' "$log" | sed 's/^\[ cuda e2e \] /greedy vs CPU: /'
grep 'cuda graphs' "$log" | sed 's/^\[ cuda graphs \] /graphs: /'
echo
echo "$bench_out"
echo
echo "gpu-check: $(( $(date +%s) - t0 )) s"
rm -f "$log"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
