#!/usr/bin/env bash
# Installs what is missing, builds, and runs a 3-node raftlock cluster on loopback in the
# foreground. Ctrl-C stops all three. Data lives in .cluster/ (delete it for a fresh cluster).
#   node 1: client 127.0.0.1:7071  peer 127.0.0.1:7081
#   node 2: client 127.0.0.1:7072  peer 127.0.0.1:7082
#   node 3: client 127.0.0.1:7073  peer 127.0.0.1:7083
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/packaging/install-deps.sh"
echo "building (first time takes a few minutes)..."
RAFTLOCK_TARGETS=raftlockd bash "$root/packaging/build.sh"
bin="${RAFTLOCK_BUILD_DIR:-$root/build}/bin/raftlockd"
data="$root/.cluster"
mkdir -p "$data"
cluster="1=127.0.0.1:7081,2=127.0.0.1:7082,3=127.0.0.1:7083"
pids=()
stop() {
  trap - INT TERM
  echo; echo "stopping the cluster..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  exit 0
}
trap stop INT TERM
for i in 1 2 3; do
  "$bin" --id "$i" --data-dir "$data/node$i" --client-addr "127.0.0.1:707$i" \
    --peer-addr "127.0.0.1:708$i" --initial-cluster "$cluster" \
    2> >(sed -u "s/^/[node $i] /" >>"$data/node$i.log") &
  pids+=("$!")
done
for _ in $(seq 1 100); do
  if curl -fs http://127.0.0.1:7071/readyz >/dev/null 2>&1; then break; fi
  sleep 0.1
done
cat <<'TXT'

raftlock: 3-node cluster running on loopback (logs: .cluster/node*.log). Ctrl-C stops it.

  curl -s localhost:7071/v1/status
  # take a lease and a lock, see the holder, release:
  curl -s -XPOST localhost:7071/v1/leases -d '{"ttl_ms": 10000}'
  curl -s -XPOST localhost:7071/v1/locks/db-migration/acquire -d '{"lease_id": LEASE, "owner": "me"}'
  curl -s localhost:7072/v1/locks/db-migration
  curl -s -XPOST localhost:7071/v1/locks/db-migration/release -d '{"lease_id": LEASE, "fencing_token": TOKEN}'
  # elect a primary and observe it:
  curl -s -XPOST localhost:7073/v1/elections/primary/campaign -d '{"ttl_ms": 10000, "value": "host-a"}'
  curl -s 'localhost:7072/v1/elections/primary/observe?after_revision=0&wait_ms=10000'
  curl -s localhost:7071/metrics | head

More in README.md and docs/api.md.
TXT
wait "${pids[@]}"
