#include "round.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "checkers.h"
#include "workloads.h"

namespace raftlock::chaos {
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string workload_name(WorkloadKind kind) {
  switch (kind) {
    case WorkloadKind::kLinearizable:
      return "lin";
    case WorkloadKind::kFencing:
      return "fencing";
    case WorkloadKind::kElections:
      return "elections";
    case WorkloadKind::kDurability:
      return "durability";
  }
  return "?";
}

std::optional<WorkloadKind> parse_workload_name(const std::string& name) {
  for (auto kind : {WorkloadKind::kLinearizable, WorkloadKind::kFencing, WorkloadKind::kElections,
                    WorkloadKind::kDurability}) {
    if (workload_name(kind) == name) return kind;
  }
  return std::nullopt;
}

uint64_t seed_from_env(uint64_t fallback) {
  if (const char* text = std::getenv("RAFTLOCK_CHAOS_SEED"); text && *text) {
    return std::strtoull(text, nullptr, 10);
  }
  return fallback;
}

namespace {

Json holder_json(const std::optional<Holder>& holder) {
  if (!holder) return nullptr;
  return {{"lease_id", holder->lease_id}, {"fencing_token", holder->fencing_token}};
}

Json state_json(const ObservedState& state) {
  Json locks = Json::array();
  for (const auto& lock : state.locks) {
    locks.push_back(
        {{"name", lock.name}, {"holder", holder_json(lock.holder)}, {"revision", lock.revision}});
  }
  return {
      {"locks", locks}, {"live_leases", state.live_leases}, {"applied_index", state.applied_index}};
}

// What the non-linearizability workloads recorded, for the report.
struct Recorded {
  History history;
  FencingRecord fencing;
  ElectionRecord elections;
  DurabilityLedger ledger;
  std::optional<ObservedState> before, after;
};

Json recorded_json(WorkloadKind kind, const Recorded& r) {
  Json out = Json::object();
  if (kind == WorkloadKind::kFencing) {
    Json grants = Json::array(), writes = Json::array();
    for (const auto& g : r.fencing.grants) {
      grants.push_back({{"client", g.client},
                        {"token", g.token},
                        {"lease_id", g.lease_id},
                        {"invoke_ns", g.invoke_ns},
                        {"complete_ns", g.complete_ns}});
    }
    for (const auto& w : r.fencing.writes) {
      writes.push_back(
          {{"client", w.client}, {"token", w.token}, {"accepted", w.accepted}, {"at_ns", w.at_ns}});
    }
    out = {{"grants", grants}, {"writes", writes}};
  } else if (kind == WorkloadKind::kElections) {
    Json observations = Json::array(), wins = Json::array();
    for (const auto& o : r.elections.observations) {
      observations.push_back({{"observer", o.observer},
                              {"node", o.node},
                              {"revision", o.revision},
                              {"leader", holder_json(o.leader)},
                              {"value", o.value},
                              {"at_ns", o.at_ns}});
    }
    for (const auto& w : r.elections.wins) {
      wins.push_back({{"candidate", w.candidate},
                      {"lease_id", w.lease_id},
                      {"fencing_token", w.fencing_token},
                      {"invoke_ns", w.invoke_ns},
                      {"complete_ns", w.complete_ns}});
    }
    out = {{"observations", observations}, {"wins", wins}};
  } else if (kind == WorkloadKind::kDurability) {
    Json acked = Json::array();
    for (const auto& a : r.ledger.acked) {
      acked.push_back({{"kind", static_cast<int>(a.kind)},
                       {"lease_id", a.lease_id},
                       {"lock", a.lock},
                       {"token", a.token},
                       {"complete_ns", a.complete_ns}});
    }
    out = {{"acked", acked},
           {"before", r.before ? state_json(*r.before) : Json(nullptr)},
           {"after", r.after ? state_json(*r.after) : Json(nullptr)}};
  }
  return out;
}

void keep_report(const RoundConfig& config, RoundResult& result, ChaosCluster& cluster,
                 const Recorded& recorded, const Verdict& verdict) {
  std::string templ = config.report_root + "/raftlock-chaos-" + workload_name(config.workload) +
                      "-seed" + std::to_string(config.seed) + "-XXXXXX";
  std::vector<char> buffer(templ.begin(), templ.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {
    std::cerr << "chaos: could not create a report directory under " << config.report_root << "\n";
    return;
  }
  result.report_dir = buffer.data();
  write_failure_report(result.report_dir + "/report.json", config.seed, recorded.history, verdict);
  std::ofstream(result.report_dir + "/record.json")
      << recorded_json(config.workload, recorded).dump(1);
  std::ofstream faults(result.report_dir + "/faults.txt");
  for (const auto& line : result.fault_log) faults << line << "\n";
  std::ofstream(result.report_dir + "/summary.txt") << describe_round(config, result);
  cluster.save_logs(result.report_dir);
}

void add_verdict(RoundResult& result, const Verdict& verdict, const std::string& checker) {
  if (verdict.ok) return;
  if (verdict.inconclusive && verdict.anomalies.empty()) {
    result.inconclusive = true;
    return;
  }
  result.ok = false;
  for (const auto& anomaly : verdict.anomalies)
    result.anomalies.push_back(checker + ": " + anomaly);
  if (verdict.anomalies.empty()) result.anomalies.push_back(checker + ": failed without details");
}

}  // namespace

RoundResult run_round(const RoundConfig& config) {
  const auto started = Clock::now();
  RoundResult result;
  Recorded recorded;
  Verdict verdict;  // the verdict the report is written with
  ChaosCluster cluster(config.nodes, config.heartbeat_ms, config.election_timeout_ms);
  auto fail = [&](const std::string& why) {
    result.ok = false;
    result.anomalies.push_back(why);
    verdict.ok = false;
    verdict.anomalies.push_back(why);
  };
  std::string error;
  if (!cluster.start(&error)) {
    fail("harness: " + error);
    result.harness_failure = true;
  } else if (!cluster.wait_for_leader(20s)) {
    fail("no leader within 20 s of starting the cluster");
  }
  if (result.ok) {
    const bool durable = config.workload == WorkloadKind::kDurability;
    OpCounts counts;
    std::atomic<bool> stop{false};
    WorkloadEnv env;
    env.cluster = &cluster;
    env.seed = config.seed;
    env.lease_ttl_ms = durable ? 600000 : config.lease_ttl_ms;
    env.stop = &stop;
    env.counts = &counts;
    const int n = config.nodes;
    std::thread workload([&] {
      switch (config.workload) {
        case WorkloadKind::kLinearizable:
          recorded.history = run_linearizable(env, 2 * 3, 3);
          break;
        case WorkloadKind::kFencing:
          recorded.fencing = run_fencing(env, n + 1);
          break;
        case WorkloadKind::kElections:
          recorded.elections = run_elections(env, "primary", 3, 2);
          break;
        case WorkloadKind::kDurability:
          recorded.ledger = run_durability_writes(env, n + 1, 6);
          break;
      }
    });
    NemesisOptions nemesis_options;
    nemesis_options.seed = config.seed;
    nemesis_options.kinds = config.faults;
    nemesis_options.lease_ttl_ms = config.lease_ttl_ms;
    nemesis_options.fault_min_ms = config.fault_min_ms;
    nemesis_options.fault_max_ms = config.fault_max_ms;
    Nemesis nemesis(cluster, nemesis_options);
    nemesis.start();
    std::this_thread::sleep_for(config.duration);
    // Every nemesis kind asked for is injected at least once, even in a short round.
    if (!config.faults.empty()) nemesis.wait_first_cycle(60s);
    nemesis.stop();
    stop = true;
    workload.join();
    result.faults = nemesis.counts();
    result.fault_log = nemesis.log();
    result.requests_dropped = cluster.rules().dropped.load();
    result.requests_delayed = cluster.rules().delayed.load();
    result.ops_ok = counts.ok.load();
    result.ops_error = counts.error.load();
    result.ops_unknown = counts.unknown.load();

    // Heal, and check the cluster recovers and converges.
    std::optional<int> leader;
    if (!cluster.heal_all(&error)) {
      fail(error);
    } else if (!(leader = cluster.wait_for_leader(30s))) {
      fail("no leader within 30 s after every fault was healed");
    } else {
      std::vector<std::string> extra;
      if (config.workload == WorkloadKind::kElections) {
        extra.push_back("/v1/elections/primary?consistency=stale");
      }
      std::string detail;
      if (!cluster.wait_converged(30s, extra, &detail)) {
        fail("the nodes did not converge within 30 s after healing: " + detail);
      } else if (config.workload == WorkloadKind::kElections) {
        observe_leader_gone(cluster, *leader, "primary", recorded.elections, 30s);
      }
    }

    if (result.ok && durable) {
      // Read until two reads a second apart agree: a request still in flight when the workload
      // stopped (parked in a node that was paused) may land late, before the crash.
      for (int attempt = 0; attempt < 5; ++attempt) {
        recorded.before = read_observed_state(cluster, *leader, recorded.ledger.locks,
                                              recorded.ledger.leases, 30s);
        std::this_thread::sleep_for(1s);
        auto again = read_observed_state(cluster, *leader, recorded.ledger.locks,
                                         recorded.ledger.leases, 30s);
        if (recorded.before && again && state_json(*recorded.before) == state_json(*again)) break;
      }
      if (!recorded.before) {
        fail("could not read the state before the crash of every node");
      } else {
        for (int id : cluster.ids()) cluster.kill(id);
        result.faults["restart-all (durability)"]++;
        result.fault_log.push_back("durability: SIGKILL every node, restart them all");
        if (!cluster.heal_all(&error)) {
          fail(error);
        } else if (!(leader = cluster.wait_for_leader(30s))) {
          fail("no leader within 30 s after every node was restarted");
        } else {
          recorded.after = read_observed_state(cluster, *leader, recorded.ledger.locks,
                                               recorded.ledger.leases, 30s);
          if (!recorded.after) fail("could not read the state after restarting every node");
        }
      }
    }

    if (result.ok) {
      switch (config.workload) {
        case WorkloadKind::kLinearizable: {
          for (const auto& op : recorded.history.operations) {
            if (op.kind == OpKind::kAcquire && op.status == OpStatus::kOk) ++result.grants;
          }
          verdict = check_linearizable(recorded.history, config.checker_budget);
          add_verdict(result, verdict, "linearizability");
          break;
        }
        case WorkloadKind::kFencing:
          result.grants = recorded.fencing.grants.size();
          verdict = check_fencing(recorded.fencing, config.min_grants);
          add_verdict(result, verdict, "fencing");
          break;
        case WorkloadKind::kElections:
          result.grants = recorded.elections.wins.size();
          verdict = check_elections(recorded.elections, /*require_no_leader_transition=*/true);
          add_verdict(result, verdict, "elections");
          break;
        case WorkloadKind::kDurability:
          for (const auto& write : recorded.ledger.acked) {
            if (write.kind == AckedWrite::Kind::kLockGranted) ++result.grants;
          }
          verdict = check_durability(recorded.ledger.acked, *recorded.before, *recorded.after);
          add_verdict(result, verdict, "durability");
          break;
      }
    }
  }
  result.wall_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  result.history = recorded.history;
  if (!result.ok) {
    keep_report(config, result, cluster, recorded, verdict);
    std::cerr << "chaos: ANOMALY (seed " << config.seed << "), report kept in " << result.report_dir
              << "\n";
    for (const auto& anomaly : result.anomalies) std::cerr << "  " << anomaly << "\n";
    cluster.processes().dump_logs(30);
  }
  return result;
}

std::string describe_round(const RoundConfig& config, const RoundResult& result) {
  std::ostringstream out;
  out << "chaos round: workload=" << workload_name(config.workload) << " seed=" << config.seed
      << " nodes=" << config.nodes << " duration=" << config.duration.count()
      << "ms wall=" << static_cast<int>(result.wall_seconds * 10) / 10.0 << "s\n";
  out << "  operations: " << result.ops_ok + result.ops_error + result.ops_unknown << " (ok "
      << result.ops_ok << ", error " << result.ops_error << ", unknown " << result.ops_unknown
      << "), grants " << result.grants << "\n";
  out << "  faults:";
  uint64_t total = 0;
  for (const auto& [kind, n] : result.faults) {
    out << " " << kind << "=" << n;
    total += n;
  }
  out << " (total " << total << "); peer requests dropped " << result.requests_dropped
      << ", delayed " << result.requests_delayed << "\n";
  out << "  anomalies: " << result.anomalies.size()
      << (result.inconclusive ? " (linearizability check inconclusive: budget ran out)" : "")
      << "\n";
  for (const auto& anomaly : result.anomalies) out << "    " << anomaly << "\n";
  if (!result.report_dir.empty()) out << "  report: " << result.report_dir << "\n";
  return out.str();
}

}  // namespace raftlock::chaos
