// lockbench: the load generator of the raftlock-vs-etcd benchmark (issue 7).
//   lockbench run --system raftlock|etcd --endpoints H:P,H:P,H:P --scenario NAME [options]
//   lockbench report --results FILE [--json OUT]
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "bench/lockbench/backend.h"
#include "bench/lockbench/report.h"
#include "bench/lockbench/scenarios.h"

namespace {

using nlohmann::json;
using namespace raftlock::bench;

const char* kUsage = R"(usage:
  lockbench run --system raftlock|etcd --endpoints H:P,H:P,H:P --scenario NAME
                [--duration S] [--clients N] [--pids P1,P2,P3] [--leases N] [--lease-ttl-s S]
                [--lease-hold-s S] [--lease-grant-budget-s S] [--memory-locks N] [--results FILE]
                [--round N]
      scenarios: single multi contended leases failover reads memory
      Prints the result as one JSON line and appends it to --results FILE when given.
      --round N tags it as round N of a repeated scenario (the report pairs the systems' rounds).
  lockbench report --results FILE [--json OUT]
      Prints the raftlock/etcd table of every result in FILE; writes it as JSON to OUT.
)";

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "lockbench: %s\n%s", msg.c_str(), kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage_error("missing command");
  std::string command = argv[1];
  std::map<std::string, std::string> flags;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) return usage_error("bad argument: " + a);
    flags[a.substr(2)] = argv[++i];
  }
  auto flag = [&](const std::string& k, const std::string& d = "") {
    auto it = flags.find(k);
    return it == flags.end() ? d : it->second;
  };
  try {
    if (command == "report") {
      std::ifstream in(flag("results"));
      if (!in) return usage_error("cannot read --results " + flag("results"));
      std::vector<json> results;
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty()) continue;
        json j = json::parse(line, nullptr, false);
        if (!j.is_discarded()) results.push_back(j);
      }
      json doc = build_report(results, std::cout);
      if (!flag("json").empty()) {
        doc["results"] = results;
        std::ofstream(flag("json")) << doc.dump(2) << "\n";
      }
      return 0;
    }
    if (command != "run") return usage_error("unknown command " + command);
    auto endpoints = parse_endpoints(flag("endpoints"));
    if (endpoints.empty()) return usage_error("--endpoints must be H:P,H:P,...");
    std::unique_ptr<Backend> backend;
    if (flag("system") == "raftlock")
      backend = make_raftlock_backend(endpoints);
    else if (flag("system") == "etcd")
      backend = make_etcd_backend(endpoints);
    else
      return usage_error("--system must be raftlock or etcd");
    ScenarioOptions o;
    o.duration_s = std::stod(flag("duration", "10"));
    o.clients = std::stoi(flag("clients", "0"));
    o.leases = std::stoi(flag("leases", "50000"));
    o.lease_ttl_s = std::stoi(flag("lease-ttl-s", "60"));
    o.lease_hold_s = std::stod(flag("lease-hold-s", "60"));
    o.lease_grant_budget_s = std::stod(flag("lease-grant-budget-s", "60"));
    o.memory_locks = std::stoi(flag("memory-locks", "100000"));
    {
      std::stringstream pids(flag("pids"));
      std::string pid;
      while (std::getline(pids, pid, ',')) o.pids.push_back(static_cast<pid_t>(std::stol(pid)));
    }
    std::string scenario = flag("scenario");
    bool known = false;
    for (auto& n : scenario_names()) known |= n == scenario;
    if (!known) return usage_error("unknown --scenario " + scenario);
    json result = run_scenario(scenario, *backend, o);
    if (!flag("round").empty()) result["round"] = std::stoi(flag("round"));
    std::cout << result.dump() << std::endl;
    if (!flag("results").empty())
      std::ofstream(flag("results"), std::ios::app) << result.dump() << "\n";
    return result.contains("error") ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lockbench: %s\n", e.what());
    return 1;
  }
}
