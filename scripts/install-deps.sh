#!/usr/bin/env bash
# Installs the Debian packages Tandem builds and tests with, and llama.cpp's
# Python reference (gguf-py) the quantization tests compare against.
# Idempotent and quiet when everything is present; needs root (or sudo) only
# when a Debian package is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git python3 python3-pip python3-venv unzip
  libtbb-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libspdlog-dev
  nlohmann-json3-dev zlib1g-dev clang libclang-rt-14-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc grpc-proto prometheus-cpp-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "install-deps: done"
fi

# gguf-py for tests/unit/test_iquants.cpp, which looks for it in this venv
# when the system python3 lacks it. A venv because Debian 12's python3 refuses
# pip installs into the system (PEP 668). Installed as the calling user.
pyref="$HOME/.cache/tandem/pyref"
has_gguf() { "$1" -c "import gguf.quants, numpy" >/dev/null 2>&1; }
if ! has_gguf python3 && ! has_gguf "$pyref/bin/python"; then
  echo "install-deps: installing gguf-py (gguf==0.19.0, numpy) into $pyref"
  python3 -m venv "$pyref"
  "$pyref/bin/pip" install -q --disable-pip-version-check gguf==0.19.0 numpy
  echo "install-deps: done"
fi
