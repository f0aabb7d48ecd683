// The seven benchmark scenarios of issue 7; each runs against one Backend and returns its metrics.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/lockbench/backend.h"

namespace raftlock::bench {

struct ScenarioOptions {
  double duration_s = 10;    // measured load time (scenarios 1, 2, 3, 6; 5's window after the kill)
  int clients = 0;           // 0 = the scenario's default (1, 64, 16, 64, 64, 16, 64)
  std::vector<pid_t> pids;   // node processes, in endpoint order (scenarios 5 and 7)
  int leases = 50000;        // scenario 4
  int lease_ttl_s = 60;      // scenario 4: keepalive every ttl/3
  double lease_hold_s = 60;  // scenario 4: keepalive time after the last grant
  double lease_grant_budget_s = 60;  // scenario 4: granting stops after this long
  int memory_locks = 100000;         // scenario 7
};

// Names: single, multi, contended, leases, failover, reads, memory.
const std::vector<std::string>& scenario_names();

// {"scenario", "system", "endpoints_policy", "params", "metrics":
// [{"name","value","unit","better"}],
//  "errors": {...}}. An unknown scenario name yields a json with "error".
nlohmann::json run_scenario(const std::string& scenario, Backend& backend,
                            const ScenarioOptions& options);

}  // namespace raftlock::bench
