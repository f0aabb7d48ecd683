// chaos::run_round — one chaos run: start a cluster behind fault-injecting proxies, drive one
// workload while the nemesis injects faults, heal, check convergence and the workload's checker,
// and on any anomaly keep a report (history, verdict, fault log, node logs) on disk.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "history.h"
#include "nemesis.h"

namespace raftlock::chaos {

enum class WorkloadKind { kLinearizable, kFencing, kElections, kDurability };

std::string workload_name(WorkloadKind kind);  // lin, fencing, elections, durability
std::optional<WorkloadKind> parse_workload_name(const std::string& name);

struct RoundConfig {
  uint64_t seed = 1;
  int nodes = 3;
  WorkloadKind workload = WorkloadKind::kLinearizable;
  std::vector<FaultKind> faults;              // empty: no nemesis
  std::chrono::milliseconds duration{20000};  // of the workload under faults
  int lease_ttl_ms = 3000;
  int heartbeat_ms = 50;
  int election_timeout_ms = 500;
  int fault_min_ms = 800;
  int fault_max_ms = 2500;
  std::chrono::milliseconds checker_budget{30000};
  size_t min_grants = 5;             // fencing: progress required
  std::string report_root = "/tmp";  // failure reports go to a new directory here
};

struct RoundResult {
  bool ok = true;                // no anomaly, the cluster recovered and converged
  bool inconclusive = false;     // the linearizability search ran out of budget (not an anomaly)
  bool harness_failure = false;  // the harness could not set the cluster up (not the product's)
  std::vector<std::string> anomalies;
  std::string report_dir;  // set when a report was kept
  uint64_t ops_ok = 0;
  uint64_t ops_error = 0;
  uint64_t ops_unknown = 0;
  uint64_t grants = 0;  // lock grants / election wins acknowledged
  std::map<std::string, uint64_t> faults;
  uint64_t requests_dropped = 0;  // peer requests the proxies dropped
  uint64_t requests_delayed = 0;
  double wall_seconds = 0;
  std::vector<std::string> fault_log;
  History history;  // the lin workload's history (empty for the others)
};

RoundResult run_round(const RoundConfig& config);

// One paragraph of statistics: seed, nodes, duration, operations, faults by kind, grants,
// anomalies (and the report path when there is one).
std::string describe_round(const RoundConfig& config, const RoundResult& result);

// RAFTLOCK_CHAOS_SEED if set, else `fallback`.
uint64_t seed_from_env(uint64_t fallback);

}  // namespace raftlock::chaos
