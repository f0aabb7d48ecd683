#!/usr/bin/env bash
# Installs the Debian 12 packages raftlock needs to build and test. Does nothing when all are present.
# Runs `apt-get update` first only when something is missing.
set -euo pipefail
packages=(
  build-essential cmake pkg-config git
  libcpp-httplib-dev nlohmann-json3-dev libsqlite3-dev libspdlog-dev libgtest-dev libgmock-dev
  prometheus-cpp-dev curl
  prometheus  # promtool and the server, for the metrics and scrape tests
)
# Optional extras (e.g. gcovr for coverage) are passed as arguments. `bench` stands for what only
# the etcd comparison (bench/compare.sh) needs: Debian's etcd 3.4 server and etcdctl.
for extra in "$@"; do
  if [ "$extra" = bench ]; then packages+=(etcd-server etcd-client); else packages+=("$extra"); fi
done
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
