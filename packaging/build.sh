#!/usr/bin/env bash
# Configures and builds raftlock into build/ (or $RAFTLOCK_BUILD_DIR).
#   RAFTLOCK_BUILD_TYPE   CMake build type (default RelWithDebInfo)
#   RAFTLOCK_TARGETS      space-separated targets to build (default: everything)
# Extra arguments go to cmake's configure step.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${RAFTLOCK_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${RAFTLOCK_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
targets=()
for t in ${RAFTLOCK_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build" -j"$(nproc)" "${targets[@]}"
