#!/usr/bin/env bash
# Prints, one per line, the Debian packages that provide the shared libraries
# the given binaries load (ldd), so that a runtime image installs exactly
# those. Fails, naming the library, when one is missing or comes from no
# package (a library built by hand would be silently absent in the image).
# Used by deploy/docker/*.Dockerfile and tests/deploy/check_dockerfiles.py.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: runtime-packages.sh BINARY..." >&2; exit 2; }

declare -A owner=()   # library path (resolved) -> package
libs=()
bad=0
for bin in "$@"; do
  [ -x "$bin" ] || { echo "runtime-packages: $bin: not an executable" >&2; exit 1; }
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    if [ "$path" = "not" ]; then
      echo "runtime-packages: $bin needs $name, which is not found" >&2
      bad=1
      continue
    fi
    libs+=("$(readlink -f "$path")")
  done < <(ldd "$bin")
done
[ "$bad" = 0 ] || exit 1
mapfile -t libs < <(printf '%s\n' "${libs[@]}" | sort -u)

# One dpkg query for all (it is slow per call). Debian 12 merged /lib into
# /usr/lib; dpkg knows whichever path the package shipped, so ask for both.
queries=()
for l in "${libs[@]}"; do queries+=("$l" "${l/#\/usr\/lib//lib}"); done
while IFS= read -r line; do
  pkg="${line%%: *}"
  path="${line#*: }"
  owner["$path"]="${pkg%%:*}"   # drop the :amd64 architecture suffix
done < <(dpkg -S "${queries[@]}" 2>/dev/null || true)

declare -A pkgs=()
for l in "${libs[@]}"; do
  p="${owner[$l]:-${owner[${l/#\/usr\/lib//lib}]:-}}"
  if [ -z "$p" ]; then
    echo "runtime-packages: $l is loaded but no Debian package provides it" >&2
    bad=1
    continue
  fi
  pkgs["$p"]=1
done
[ "$bad" = 0 ] || exit 1
printf '%s\n' "${!pkgs[@]}" | sort
