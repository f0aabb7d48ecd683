// chaos::Nemesis — injects faults into a ChaosCluster on a schedule drawn from a seed: process
// kills and pauses, network partitions of several shapes, slow links, restarts of every node.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "chaos_cluster.h"

namespace raftlock::chaos {

enum class FaultKind {
  kKill,               // SIGKILL a random node, restart it later
  kKillLeader,         // SIGKILL the leader, restart it later
  kPause,              // SIGSTOP a node (sometimes the leader) shorter than the lease TTL
  kPauseLong,          // SIGSTOP a node (sometimes the leader) for longer than the lease TTL
  kPartitionMajority,  // a random minority cut off from the majority, both ways
  kIsolateLeader,      // the leader cut off from everyone, both ways
  kOneWay,             // one node's outgoing (or incoming) links cut, the other way works
  kFlapping,           // a random split switched on and off every few hundred ms
  kSlowLinks,          // every link delayed by 20-200 ms
  kRestartAll,         // SIGKILL every node, restart them all
};

const std::vector<FaultKind>& all_fault_kinds();
std::string fault_name(FaultKind kind);
std::optional<FaultKind> parse_fault_name(const std::string& name);

struct NemesisOptions {
  uint64_t seed = 1;
  std::vector<FaultKind> kinds;  // drawn from at random; each appears once before any repeats
  int lease_ttl_ms = 3000;       // long pauses outlast this
  int fault_min_ms = 800;        // how long a fault lasts
  int fault_max_ms = 2500;
  int gap_min_ms = 500;  // healthy time between two faults
  int gap_max_ms = 1500;
};

class Nemesis {
 public:
  Nemesis(ChaosCluster& cluster, NemesisOptions options);
  ~Nemesis();
  void start();
  // Ends the current fault early and stops; the caller heals the rest (ChaosCluster::heal_all).
  void stop();
  std::map<std::string, uint64_t> counts() const;
  // Waits until every kind was injected once (or `timeout`); true if so.
  bool wait_first_cycle(std::chrono::milliseconds timeout);
  // One line per fault injected: when (ms since start) and what.
  std::vector<std::string> log() const;

 private:
  void run();
  void inject(FaultKind kind);
  // Sleeps up to `ms`; false if stop() was called meanwhile.
  bool sleep_ms(int ms);
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  int pick_node();
  int leader_or_random();
  void note(const std::string& what);

  ChaosCluster& cluster_;
  NemesisOptions options_;
  std::mt19937_64 rng_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  bool first_cycle_done_ = false;  // guarded by wake_mu_
  std::mutex wake_mu_;
  std::condition_variable wake_;
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> counts_;
  std::vector<std::string> log_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace raftlock::chaos
