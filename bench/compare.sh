#!/usr/bin/env bash
# Side-by-side benchmark of raftlock and etcd (issue 7): builds raftlockd and lockbench, then for
# every scenario starts a fresh 3-node raftlock cluster and a fresh 3-node etcd cluster on
# loopback (one at a time, same settings: heartbeat 100 ms, election timeout 1000 ms, fsync on),
# runs the same load against each, stops it, and prints the table raftlock | etcd | ratio.
#
#   bench/compare.sh [--quick] [--scenarios single,multi,...] [--duration S]
#                    [--repeat N] [--build-dir DIR] [--no-build] [--out DIR] [--plan]
#
#   --quick       shorter runs; scenario 4 with 5,000 leases (TTL 15 s) instead of 50,000
#                 (TTL 60 s), scenario 7 with 10,000 locks instead of 100,000: about 3-4 minutes
#   --scenarios   any of: single multi contended leases failover reads memory (default: all)
#   --systems     raftlock,etcd,floor (default all three; one system alone is for debugging, not
#                 for comparing). floor is bench/floor_bench, this machine's floor for a contended
#                 handoff, run after the two systems in each round of the contended scenario
#   --duration    seconds of measured load per scenario (default 10, quick 5)
#   --repeat      rounds of the steady-load scenarios (single, multi, contended, reads), each
#                 round both systems on fresh clusters; the table shows each system's median
#                 round and the targets list every round's ratio (default 3, quick 1)
#   --plan        print the runs in the order they would go (scenario, round, system) and exit
#   --build-dir   where raftlockd and lockbench are built (default $RAFTLOCK_BUILD_DIR or build/)
#   --raftlockd   benchmark this raftlockd binary instead of the one in the build dir
#   --out         where results go (default: a new temp dir); the JSON path is printed at the end
# Needs etcd 3.4 (Debian's etcd-server): packaging/install-deps.sh bench
# Ports: raftlock 27171-27173 (client) 27181-27183 (peer); etcd 27271-27273 / 27281-27283;
# floor_bench 27390-27392
# (override the base with BENCH_PORT_BASE, default 27000).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

quick=0
scenarios="single,multi,contended,leases,failover,reads,memory"
systems="raftlock,etcd,floor"
duration=""
repeat=""
build="${RAFTLOCK_BUILD_DIR:-$root/build}"
do_build=1
out=""
raftlockd_override=""
plan=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --scenarios) scenarios="$2"; shift ;;
    --systems) systems="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --repeat) repeat="$2"; shift ;;
    --build-dir) build="$2"; shift ;;
    --no-build) do_build=0 ;;
    --raftlockd) raftlockd_override="$2"; shift ;;
    --out) out="$2"; shift ;;
    --plan) plan=1 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { print }' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$quick" = 1 ]; then
  duration="${duration:-5}"; leases=5000; lease_ttl=15; lease_hold=16; grant_budget=20
  memory_locks=10000; repeat="${repeat:-1}"
else
  duration="${duration:-10}"; leases=50000; lease_ttl=60; lease_hold=60; grant_budget=60
  memory_locks=100000; repeat="${repeat:-3}"
fi
case "$repeat" in
  '' | *[!0-9]* | 0) echo "compare.sh: --repeat takes a whole number of rounds >= 1" >&2; exit 2 ;;
esac

# The runs, in order: "scenario round system" per line. The steady-load scenarios take a few
# rounds: the machine's own latency drifts by more than some targets' margins from one 10 s
# window to the next. The others run once (long, or a one-off event). The system that goes first
# alternates from one round to the next, across scenarios too: the disk is still slower for a
# minute or two after a sustained fsync load (+100-200 us on a raw fdatasync, docs/performance.md),
# so always starting with the same system would hand it every scenario change's after-effect.
rounds_of() {  # $1 = scenario
  case "$1" in single | multi | contended | reads) echo "$repeat" ;; *) echo 1 ;; esac
}
run_plan() {
  local s round turn=0 first second
  IFS=, read -r -a scenario_list <<<"$scenarios"
  for s in "${scenario_list[@]}"; do
    for round in $(seq 1 "$(rounds_of "$s")"); do
      if [ $((turn % 2)) = 0 ]; then first=raftlock; second=etcd; else first=etcd; second=raftlock; fi
      turn=$((turn + 1))
      for system in "$first" "$second"; do
        case ",$systems," in *,"$system",*) echo "$s $round $system" ;; esac
      done
      # The machine's floor in the same minute (the disk's flush time drifts): after both, so its
      # after-effect falls on the next round's first system, which alternates.
      if [ "$s" = contended ]; then
        case ",$systems," in *,floor,*) echo "$s $round floor" ;; esac
      fi
    done
  done
}
if [ "$plan" = 1 ]; then
  run_plan
  exit 0
fi

if ! command -v etcd >/dev/null; then
  echo "compare.sh: etcd not found; install it with: packaging/install-deps.sh bench" >&2
  exit 1
fi

if [ "$do_build" = 1 ]; then
  echo "building raftlockd, lockbench and floor_bench in $build ..."
  RAFTLOCK_BUILD_DIR="$build" RAFTLOCK_TARGETS="raftlockd lockbench floor_bench" \
    bash "$root/packaging/build.sh" -DRAFTLOCK_BUILD_TESTS=OFF >"${TMPDIR:-/tmp}/raftlock-bench-build.log" 2>&1 ||
    { echo "build failed: see ${TMPDIR:-/tmp}/raftlock-bench-build.log" >&2; exit 1; }
fi
raftlockd="${raftlockd_override:-$build/bin/raftlockd}"
lockbench="$build/bin/lockbench"
floor_bench="$build/bin/floor_bench"
binaries=("$raftlockd" "$lockbench")
case ",$systems," in *,floor,*) binaries+=("$floor_bench") ;; esac
for b in "${binaries[@]}"; do
  [ -x "$b" ] || { echo "compare.sh: $b is missing (build it or drop --no-build)" >&2; exit 1; }
done

# Bash reports every node the failover scenario SIGKILLs ("line N: PID Killed ..."): expected, so
# not shown.
exec 2> >(grep --line-buffered -v ': line [0-9]*: *[0-9]* Killed' >&2)

work="$(mktemp -d "${TMPDIR:-/tmp}/raftlock-bench.XXXXXX")"
out="${out:-$work}"
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"
base="${BENCH_PORT_BASE:-27000}"
rl_client=(); rl_peer=(); et_client=(); et_peer=()
for i in 1 2 3; do
  rl_client+=("$((base + 170 + i))"); rl_peer+=("$((base + 180 + i))")
  et_client+=("$((base + 270 + i))"); et_peer+=("$((base + 280 + i))")
done

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'cleanup' EXIT
trap 'echo "interrupted"; exit 130' INT TERM

stop_cluster() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  cleanup
}

wait_ready() {  # url... : every url answers 2xx within 30 s
  for url in "$@"; do
    local ok=0
    for _ in $(seq 1 300); do
      if curl -fs -m 1 "$url" >/dev/null 2>&1; then ok=1; break; fi
      sleep 0.1
    done
    [ "$ok" = 1 ] || { echo "compare.sh: $url not ready after 30 s" >&2; return 1; }
  done
}

start_raftlock() {  # $1 = run name
  local dir="$work/$1/raftlock" cluster=""
  mkdir -p "$dir"
  for i in 1 2 3; do cluster+="${cluster:+,}$i=127.0.0.1:${rl_peer[$((i - 1))]}"; done
  for i in 1 2 3; do
    "$raftlockd" --id "$i" --data-dir "$dir/node$i" --client-addr "127.0.0.1:${rl_client[$((i - 1))]}" \
      --peer-addr "127.0.0.1:${rl_peer[$((i - 1))]}" --initial-cluster "$cluster" \
      --heartbeat-ms 100 --election-timeout-ms 1000 2>"$dir/node$i.log" &
    pids+=("$!")
  done
  local urls=()
  for i in 1 2 3; do urls+=("http://127.0.0.1:${rl_client[$((i - 1))]}/readyz"); done
  wait_ready "${urls[@]}"
}

start_etcd() {  # $1 = run name
  local dir="$work/$1/etcd" cluster=""
  mkdir -p "$dir"
  for i in 1 2 3; do cluster+="${cluster:+,}e$i=http://127.0.0.1:${et_peer[$((i - 1))]}"; done
  for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$dir/node$i" \
      --listen-client-urls "http://127.0.0.1:${et_client[$((i - 1))]}" \
      --advertise-client-urls "http://127.0.0.1:${et_client[$((i - 1))]}" \
      --listen-peer-urls "http://127.0.0.1:${et_peer[$((i - 1))]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${et_peer[$((i - 1))]}" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "bench-$1" \
      --heartbeat-interval 100 --election-timeout 1000 --logger zap 2>"$dir/node$i.log" &
    pids+=("$!")
  done
  local urls=()
  for i in 1 2 3; do urls+=("http://127.0.0.1:${et_client[$((i - 1))]}/health"); done
  wait_ready "${urls[@]}"
  # /health answers before a leader is elected on some members: wait for one.
  for _ in $(seq 1 100); do
    if curl -fs -m 1 -XPOST "http://127.0.0.1:${et_client[0]}/v3/maintenance/status" -d '{}' |
      grep -q '"leader":"[1-9]'; then return 0; fi
    sleep 0.1
  done
  echo "compare.sh: etcd elected no leader" >&2; return 1
}

# raftlock's own mean write in a run (each node's persist histogram over the cluster's life, which
# is the run): what the disk gave raftlock. The floor runs at the end of the round (up to 20 s
# later) and the disk's write time moves within a minute, so a round's share of the floor mixes two
# disks; the time per handoff beyond raftlock's own mean write does not. Saved with the logs; one
# line in the output.
note_writes() {  # $1 = run name
  local i line="" file rate
  for i in 1 2 3; do
    file="$work/$1/raftlock/metrics-node$i.txt"
    if ! curl -fs -m 5 "http://127.0.0.1:${rl_client[$((i - 1))]}/metrics" >"$file"; then
      line+=" -"
      continue
    fi
    line+=" $(awk '$1 == "raftlock_raft_persist_duration_seconds_sum" { s = $2 }
                  $1 == "raftlock_raft_persist_duration_seconds_count" { c = $2 }
                  END { if (c > 0) printf "%.3f", s / c * 1000; else printf "-" }' "$file")"
  done
  line="${line# }"
  echo -n "  raftlock: $1: mean write per node ${line// //} ms"
  rate="$(grep -o '"name":"handoffs_per_s","unit":"1/s","value":[0-9.]*' "$work/$1-raftlock.out" |
    sed 's/.*://' || true)"
  # The nodes that answered ("-": one that did not, such as failover's killed node).
  awk -v rate="${rate:-0}" -v line="$line" 'BEGIN {
    k = split(line, w, " "); n = 0; s = 0
    for (i = 1; i <= k; i++) if (w[i] != "-") { n++; s += w[i] }
    if (rate > 0 && n > 0)
      printf "; %.3f ms per handoff, %.3f beyond the mean write", 1000 / rate, 1000 / rate - s / n
    printf "\n" }'
}

run_one() {  # $1 = system, $2 = scenario, $3 = this run's name (logs; default the scenario), $4 = round
  local system="$1" scenario="$2" run="${3:-$2}" round="${4:-1}" endpoints=""
  if [ "$system" = floor ]; then
    echo "  floor: $run ..."
    mkdir -p "$work/$run"
    "$floor_bench" --duration "$duration" --dir "$work/$run" --port-base "$((base + 390))" \
      --results "$results" --round "$round" >"$work/$run-floor.out" 2>&1 ||
      echo "  floor: $run reported an error (see $work/$run-floor.out)"
    # Its own mean write, next to raftlock's line (note_writes): the time beyond each system's own
    # write compares the two across the disk's windows.
    sed -n "s/^floor: mean write/  floor: $run: mean write/p" "$work/$run-floor.out"
    return 0
  fi
  local ports=("${rl_client[@]}")
  [ "$system" = etcd ] && ports=("${et_client[@]}")
  for p in "${ports[@]}"; do endpoints+="${endpoints:+,}127.0.0.1:$p"; done
  # A port can be taken for a moment by someone else's test on a shared machine: retry, and if
  # the cluster still does not start, skip this run rather than the whole comparison.
  local attempt started=0
  for attempt in 1 2 3; do
    if "start_$system" "$run"; then started=1; break; fi
    stop_cluster
    rm -rf "$work/$run/$system"/node?
    echo "  $system: cluster did not start (attempt $attempt; logs in $work/$run/$system)" >&2
    sleep 2
  done
  if [ "$started" = 0 ]; then
    echo "  $system: $run SKIPPED: the cluster did not start" >&2
    return 0
  fi
  local pid_list
  pid_list="$(IFS=,; echo "${pids[*]}")"
  echo "  $system: $run ..."
  "$lockbench" run --system "$system" --endpoints "$endpoints" --scenario "$scenario" \
    --duration "$duration" --pids "$pid_list" --leases "$leases" --lease-ttl-s "$lease_ttl" \
    --lease-hold-s "$lease_hold" \
    --lease-grant-budget-s "$grant_budget" --memory-locks "$memory_locks" --results "$results" --round "$round" \
    >"$work/$run-$system.out" 2>&1 || echo "  $system: $run reported an error (see $work/$run-$system.out)"
  [ "$system" = raftlock ] && note_writes "$run"
  stop_cluster
  rm -rf "$work/$run/$system"/node?  # the data; the logs stay
}

echo "results and logs: $work"
echo "raftlockd binary: $raftlockd; repository: HEAD $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'),\
 $(git -C "$root" status --porcelain 2>/dev/null | wc -l) uncommitted paths; $(etcd --version | head -1)"
echo "started $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores; scenarios: $scenarios; duration ${duration}s;\
 rounds of the steady-load scenarios: $repeat"
last_run=""
while read -r s round system; do
  rounds="$(rounds_of "$s")"
  run="$s"
  [ "$rounds" -gt 1 ] && run="$s-$round"
  if [ "$run" != "$last_run" ]; then
    if [ "$rounds" -gt 1 ]; then echo "scenario $s, round $round of $rounds"; else echo "scenario $s"; fi
  fi
  last_run="$run"
  run_one "$system" "$s" "$run" "$round" </dev/null
done < <(run_plan)
echo
echo "raftlock vs etcd, $(date -u +%Y-%m-%dT%H:%M:%SZ), 3+3 nodes and the client on one machine ($(nproc) cores)"
"$lockbench" report --results "$results" --json "$out/compare.json" | tee "$out/compare.txt"
echo
echo "JSON: $out/compare.json"
