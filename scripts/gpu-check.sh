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
# With the lent H200 (no Debian packages there): `scripts/gpu-check.sh --prepare
# build-gpu` here (14 MB), then run `scripts/gpu-check.sh --prebuilt build-gpu/carry`
# there with build-gpu/carry in the run's carry list.
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
fi

log=$(mktemp)
timeout 300 "$tests" --gtest_color=no 2>&1 | tee "$log" | grep -E '^\[ +(FAILED|SKIPPED) +\]|cuda e2e|Failure' || true
passed=$(grep -cE '^\[ +OK +\]' "$log")
failed=$(grep -cE '^\[ +FAILED +\] [A-Za-z]' "$log")
skipped=$(grep -cE '^\[ +SKIPPED +\] [A-Za-z]' "$log")
bench_out=$(timeout 180 "$bench" 2>&1)

echo
echo "== gpu-check: $gpu (sm_$arch), $(date -u +%Y-%m-%d) =="
printf '%-28s %s\n' "gpu tests passed" "$passed" "gpu tests failed" "$failed" "gpu tests skipped" "$skipped"
grep 'cuda e2e' "$log" | sed 's/^\[ cuda e2e \] /greedy vs CPU: /'
echo
echo "$bench_out"
echo
echo "gpu-check: $(( $(date +%s) - t0 )) s"
rm -f "$log"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
