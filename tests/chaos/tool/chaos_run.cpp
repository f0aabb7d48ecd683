// chaos_run — runs chaos rounds (a workload under a seeded nemesis on real raftlockd processes)
// until --duration is used up; stops with a non-zero exit at the first anomaly, printing the seed
// that reproduces it and the directory where the report was kept.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>

#include "round.h"

using namespace raftlock::chaos;
using Clock = std::chrono::steady_clock;

namespace {

const char* kUsage =
    "usage: chaos_run [--duration 2h] [--seed S] [--nodes 3|5] [--rounds N]\n"
    "                 [--workload lin|fencing|elections|durability|mix]\n"
    "                 [--nemesis all|none|KIND[,KIND...]] [--round-seconds 30]\n"
    "                 [--report-dir /tmp]\n"
    "Nemesis kinds: kill, kill-leader, pause, pause-long, partition, isolate-leader, one-way,\n"
    "flapping, slow, restart-all. Round k runs with seed S+k; without --nodes or with\n"
    "--workload mix the round's cluster size and workload are derived from its seed, so\n"
    "`chaos_run --seed <failing seed> --rounds 1` with the same other flags re-runs a round.\n";

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (...) {
    return std::nullopt;
  }
  const std::string unit = text.substr(used);
  double ms = unit == "ms"                  ? value
              : unit == "s" || unit.empty() ? value * 1000
              : unit == "m"                 ? value * 60000
              : unit == "h"                 ? value * 3600000
                                            : -1;
  if (ms < 0 || value < 0) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

int usage_error(const std::string& message) {
  std::cerr << "chaos_run: " << message << "\n" << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::chrono::milliseconds duration = std::chrono::minutes(10);
  uint64_t seed = std::random_device{}() % 1000000000ULL;
  int nodes = 0;  // 0: from the seed
  int64_t rounds = -1;
  std::string workload = "mix";
  std::string nemesis = "all";
  int round_seconds = 30;
  std::string report_dir = "/tmp";
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (i + 1 >= argc) return usage_error("flag " + flag + " needs a value");
    const std::string value = argv[++i];
    try {
      if (flag == "--duration") {
        auto parsed = parse_duration(value);
        if (!parsed) return usage_error("--duration '" + value + "' is not like 90s, 30m or 2h");
        duration = *parsed;
      } else if (flag == "--seed") {
        seed = std::stoull(value);
      } else if (flag == "--nodes") {
        nodes = std::stoi(value);
        if (nodes != 3 && nodes != 5) return usage_error("--nodes must be 3 or 5");
      } else if (flag == "--rounds") {
        rounds = std::stoll(value);
      } else if (flag == "--workload") {
        if (value != "mix" && !parse_workload_name(value)) {
          return usage_error("unknown --workload '" + value + "'");
        }
        workload = value;
      } else if (flag == "--nemesis") {
        nemesis = value;
      } else if (flag == "--round-seconds") {
        round_seconds = std::stoi(value);
        if (round_seconds < 1) return usage_error("--round-seconds must be at least 1");
      } else if (flag == "--report-dir") {
        report_dir = value;
      } else {
        return usage_error("unknown flag " + flag);
      }
    } catch (...) {
      return usage_error("flag " + flag + " has a bad value '" + value + "'");
    }
  }
  std::vector<FaultKind> faults;
  if (nemesis == "all") {
    faults = all_fault_kinds();
  } else if (nemesis != "none") {
    std::stringstream list(nemesis);
    for (std::string name; std::getline(list, name, ',');) {
      auto kind = parse_fault_name(name);
      if (!kind) return usage_error("unknown nemesis kind '" + name + "'");
      faults.push_back(*kind);
    }
  }

  const auto deadline = Clock::now() + duration;
  const WorkloadKind workloads[] = {WorkloadKind::kLinearizable, WorkloadKind::kFencing,
                                    WorkloadKind::kElections, WorkloadKind::kDurability};
  uint64_t total_ops = 0, total_ok = 0, total_error = 0, total_unknown = 0, total_grants = 0;
  std::map<std::string, uint64_t> total_faults;
  int64_t done = 0;
  int exit_code = 0;
  int harness_failures = 0;
  for (uint64_t round_seed = seed; rounds < 0 ? Clock::now() < deadline : done < rounds;
       ++round_seed) {
    RoundConfig config;
    config.seed = round_seed;
    config.nodes = nodes != 0 ? nodes : ((round_seed / 4) % 2 == 0 ? 3 : 5);
    config.workload =
        workload == "mix" ? workloads[round_seed % 4] : *parse_workload_name(workload);
    config.faults = faults;
    config.duration = std::chrono::seconds(round_seconds);
    config.report_root = report_dir;
    std::cout << "round " << done + 1 << ": seed " << round_seed << ", "
              << workload_name(config.workload) << " on " << config.nodes << " nodes" << std::endl;
    RoundResult result = run_round(config);
    ++done;
    std::cout << describe_round(config, result) << std::flush;
    total_ok += result.ops_ok;
    total_error += result.ops_error;
    total_unknown += result.ops_unknown;
    total_grants += result.grants;
    for (const auto& [kind, n] : result.faults) total_faults[kind] += n;
    if (!result.ok && result.harness_failure) {
      // A port taken by another process, say: not the product's fault, keep going.
      std::cout << "harness failure in round " << done << " (seed " << round_seed
                << "), not counted as an anomaly; continuing\n";
      ++harness_failures;
      continue;
    }
    if (!result.ok) {
      std::cout << "ANOMALY in round " << done << " (seed " << round_seed << "); report kept in "
                << result.report_dir << "\nre-run it with: chaos_run --seed " << round_seed
                << " --rounds 1 --nodes " << config.nodes << " --workload "
                << workload_name(config.workload) << " --nemesis " << nemesis << " --round-seconds "
                << round_seconds << "\n";
      exit_code = 1;
      break;
    }
  }
  total_ops = total_ok + total_error + total_unknown;
  std::cout << "chaos_run: " << done << " rounds from seed " << seed << ", operations " << total_ops
            << " (ok " << total_ok << ", error " << total_error << ", unknown " << total_unknown
            << "), grants " << total_grants << ", faults:";
  for (const auto& [kind, n] : total_faults) std::cout << " " << kind << "=" << n;
  std::cout << ", anomalies " << exit_code << ", harness failures " << harness_failures << "\n";
  return exit_code;
}
