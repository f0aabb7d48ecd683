// Report: the side-by-side table (scenario, metric, raftlock, etcd, ratio, target) of one run.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <vector>

namespace raftlock::bench {

// results: the documents run_scenario returned, both systems mixed. Prints the table to out and
// returns it as JSON ({"rows": [...], "targets": [...]}).
nlohmann::json build_report(const std::vector<nlohmann::json>& results, std::ostream& out);

}  // namespace raftlock::bench
