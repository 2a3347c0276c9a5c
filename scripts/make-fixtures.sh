#!/usr/bin/env bash
# Builds the test fixtures that are made from the default model, into the
# model cache (TANDEM_MODEL_DIR, default ~/.cache/tandem/models), once:
#   SmolLM2-135M-Instruct.IQ4_NL.gguf, SmolLM2-135M-Instruct.IQ4_XS.gguf
# re-quantized from the Q4_1 file by `tandem quantize --mix T` (the same
# bytes llama-quantize --allow-requantize writes; tests/unit/test_iquant_smollm2.cpp
# compares every tensor with llama.cpp's). Usage: make-fixtures.sh BUILD_DIR
set -euo pipefail

build="${1:?usage: make-fixtures.sh BUILD_DIR}"
dir="${TANDEM_MODEL_DIR:-$HOME/.cache/tandem/models}"
src="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -s "$src" ] || { echo "make-fixtures: error: $src missing (run \`make model\`)" >&2; exit 1; }
[ -x "$build/tandem" ] || { echo "make-fixtures: error: $build/tandem missing (run \`make build\`)" >&2; exit 1; }

for t in IQ4_NL IQ4_XS; do
  out="$dir/SmolLM2-135M-Instruct.$t.gguf"
  [ -s "$out" ] && continue
  echo "make-fixtures: writing $out" >&2
  "$build/tandem" quantize "$src" "$out.part" --mix "$t" >/dev/null
  mv "$out.part" "$out"
done
