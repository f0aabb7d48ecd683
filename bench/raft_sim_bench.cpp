// raft_sim_bench — Raft costs measured in the deterministic simulator (virtual time, no I/O):
//   1. steady state: messages and bytes sent per committed entry;
//   2. failover: simulated time from a leader crash until a new leader is elected.
// Bytes are counted two ways: the peer transport's real MessagePack encoding of each message
// (raft::transport::encode_message, without HTTP framing or batch envelope) and the simulator's
// estimate (48-byte header + 20 bytes per entry + payloads). Links are FIFO (like one TCP stream
// per peer) with 1-5 ms delays; no loss. Failover uses the default core options unless stated.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "raft/transport/codec.h"
#include "tests/sim/harness/simulator.h"

namespace {

using raftlock::sim::Cluster;
using raftlock::sim::ClusterOptions;
using raftlock::sim::NodeId;

constexpr uint64_t kTickMs = 100;  // heartbeat interval; election timeout = 10 ticks = 1000 ms

struct SteadyResult {
  uint64_t entries = 0;
  uint64_t messages = 0;
  uint64_t codec_bytes = 0;
  uint64_t estimated_bytes = 0;
};

// Proposes `per_burst` commands of `payload` bytes every `interval_ms` for `duration_ms` at the
// leader of a healthy cluster (one Ready per command, or one Ready per burst when `batched`), and
// counts what was sent until every node applied them.
SteadyResult steady_state(size_t nodes, uint64_t interval_ms, uint64_t per_burst, bool batched,
                          size_t payload, uint64_t duration_ms) {
  ClusterOptions options;
  options.nodes = nodes;
  options.seed = 7;
  options.tick_ms = kTickMs;
  Cluster cluster(options);
  SteadyResult result;
  cluster.set_send_observer([&](const raftlock::raft::Message& message) {
    result.codec_bytes += raftlock::raft::transport::encode_message(message).size();
  });
  cluster.run_until([&] { return cluster.current_leader().has_value(); }, 20000);
  cluster.run_for(2000);
  const NodeId leader = *cluster.current_leader();
  const auto start_index = cluster.core(leader)->last_index();
  cluster.reset_stats();
  result.codec_bytes = 0;
  const std::string data(payload, 'x');
  const uint64_t end = cluster.now_ms() + duration_ms;
  const std::vector<std::string> burst(per_burst, data);
  while (cluster.now_ms() < end) {
    if (batched) {
      (void)cluster.propose_batch(leader, burst);
    } else {
      for (uint64_t i = 0; i < per_burst; ++i) (void)cluster.propose(leader, data);
    }
    cluster.run_for(interval_ms);
  }
  const auto last = cluster.core(leader)->last_index();
  cluster.run_until([&] { return cluster.applied_count(last) == nodes; }, 10000);
  result.entries = last - start_index;
  result.messages = cluster.stats().sent;
  result.estimated_bytes = cluster.stats().estimated_bytes;
  if (!cluster.ok()) std::printf("SAFETY VIOLATION: %s\n", cluster.violation().c_str());
  return result;
}

struct Percentiles {
  uint64_t median = 0, p90 = 0, p99 = 0, max = 0;
  size_t samples = 0, failures = 0;
};

// Crashes the leader of a healthy cluster at a random moment and measures the simulated time
// until a live node is leader of a later term, over `runs` seeds.
Percentiles failover(size_t nodes, bool pre_vote, bool check_quorum, uint64_t runs) {
  std::vector<uint64_t> times;
  Percentiles out;
  for (uint64_t seed = 1; seed <= runs; ++seed) {
    ClusterOptions options;
    options.nodes = nodes;
    options.seed = seed;
    options.tick_ms = kTickMs;
    options.pre_vote = pre_vote;
    options.check_quorum = check_quorum;
    Cluster cluster(options);
    if (!cluster.run_until([&] { return cluster.current_leader().has_value(); }, 20000)) {
      ++out.failures;
      continue;
    }
    cluster.run_for(500 + cluster.random().below(1500));
    const NodeId old_leader = *cluster.current_leader();
    const auto old_term = cluster.core(old_leader)->term();
    cluster.crash(old_leader);
    const uint64_t crashed_at = cluster.now_ms();
    const bool elected = cluster.run_until(
        [&] {
          for (NodeId id : cluster.leaders()) {
            if (cluster.core(id)->term() > old_term) return true;
          }
          return false;
        },
        60000);
    if (!elected || !cluster.ok()) {
      ++out.failures;
      continue;
    }
    times.push_back(cluster.now_ms() - crashed_at);
  }
  std::sort(times.begin(), times.end());
  out.samples = times.size();
  if (!times.empty()) {
    auto at = [&](double q) {
      return times[std::min(times.size() - 1, static_cast<size_t>(q * times.size()))];
    };
    out.median = at(0.5);
    out.p90 = at(0.9);
    out.p99 = at(0.99);
    out.max = times.back();
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t runs = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000;
  std::printf(
      "raft_sim_bench: deterministic simulation, heartbeat %llu ms (1 tick), election "
      "timeout 10 ticks = %llu ms (randomised to [1x, 2x)), network delay 1-5 ms\n\n",
      static_cast<unsigned long long>(kTickMs), static_cast<unsigned long long>(10 * kTickMs));

  std::printf("1. Steady state: cost per committed entry (64-byte commands, 20 s simulated)\n");
  std::printf("%-6s %-31s %9s %10s %12s %14s %14s\n", "nodes", "load", "entries", "msgs",
              "msgs/entry", "wire B/entry", "est. B/entry");
  struct Load {
    const char* name;
    uint64_t interval_ms;
    uint64_t per_burst;
    bool batched;
  };
  const Load loads[] = {{"1 cmd / 100 ms", 100, 1, false},
                        {"1 cmd / 10 ms", 10, 1, false},
                        {"10 cmds / 10 ms, 1 Ready each", 10, 10, false},
                        {"10 cmds / 10 ms, 1 Ready/burst", 10, 10, true}};
  for (size_t nodes : {3, 5, 7}) {
    for (const Load& load : loads) {
      const SteadyResult r =
          steady_state(nodes, load.interval_ms, load.per_burst, load.batched, 64, 20000);
      const double entries = static_cast<double>(std::max<uint64_t>(r.entries, 1));
      std::printf("%-6zu %-31s %9llu %10llu %12.2f %14.1f %14.1f\n", nodes, load.name,
                  static_cast<unsigned long long>(r.entries),
                  static_cast<unsigned long long>(r.messages), r.messages / entries,
                  r.codec_bytes / entries, r.estimated_bytes / entries);
    }
  }

  std::printf("\n2. Failover: time from leader crash to a new leader (%llu seeds each)\n",
              static_cast<unsigned long long>(runs));
  std::printf("%-6s %-22s %8s %8s %8s %8s %8s %8s %8s %8s\n", "nodes", "options", "median", "p90",
              "p99", "max", "median", "p99", "ok", "failed");
  std::printf("%-6s %-22s %8s %8s %8s %8s %8s %8s\n", "", "", "ms", "ms", "ms", "ms", "ticks",
              "ticks");
  struct Variant {
    const char* name;
    bool pre_vote;
    bool check_quorum;
  };
  const Variant variants[] = {{"pre-vote+check-quorum", true, true}, {"plain", false, false}};
  for (size_t nodes : {3, 5, 7}) {
    for (const Variant& v : variants) {
      const Percentiles p = failover(nodes, v.pre_vote, v.check_quorum, runs);
      std::printf("%-6zu %-22s %8llu %8llu %8llu %8llu %8.1f %8.1f %8zu %8zu\n", nodes, v.name,
                  static_cast<unsigned long long>(p.median), static_cast<unsigned long long>(p.p90),
                  static_cast<unsigned long long>(p.p99), static_cast<unsigned long long>(p.max),
                  static_cast<double>(p.median) / kTickMs, static_cast<double>(p.p99) / kTickMs,
                  p.samples, p.failures);
    }
  }
  return 0;
}
