// Seeded chaos runs of the lock service on the cluster simulator: every node runs a
// LockStateMachine, a workload proposes random lock-service commands at the leader, and every
// apply on every node is checked (state identical at equal indices, invariants, the history's
// lock-service guarantees).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "lockservice/lock_state_machine.h"
#include "tests/lockservice_sim/lock_history_checker.h"
#include "tests/sim/harness/simulator.h"

namespace raftlock::lockservice::sim_testing {

// Implemented by wrappers around a LockStateMachine (e.g. deliberately broken ones in tests) so the
// checks can still read the lock state.
class LockMachineHolder {
 public:
  virtual ~LockMachineHolder() = default;
  virtual const LockStateMachine& lock_machine() const = 0;
};

// The LockStateMachine behind `machine` (itself or a LockMachineHolder), or nullptr.
const LockStateMachine* as_lock_machine(const raft::StateMachine& machine);

struct LockRunOptions {
  uint64_t seed = 1;
  bool trace = false;
  // Makes node `id`'s state machine (default: a LockStateMachine). Tests plug in broken ones.
  std::function<std::unique_ptr<raft::StateMachine>(raft::NodeId id)> make_state_machine;
};

struct LockRunResult {
  uint64_t seed = 0;
  bool ok = false;
  std::string failure;
  size_t nodes = 0;
  uint64_t proposals_accepted = 0;
  uint64_t applies_checked = 0;   // (node, index) applies checked
  uint64_t restores_checked = 0;  // restarts and snapshot installs checked
  uint64_t crashes = 0;
  raft::Index final_index = 0;
  HistoryStats history;
};

LockRunResult run_lockservice_random(const LockRunOptions& options);

// Cross-node and per-node checks fed by the simulator's app hooks (exposed for tests).
class LockClusterChecker {
 public:
  std::string on_apply(raft::NodeId node, const raft::Entry& entry, const std::any& result,
                       const raft::StateMachine& machine);
  std::string on_restore(raft::NodeId node, raft::Index index, const raft::StateMachine& machine);
  const HistoryStats& history() const { return history_.stats(); }
  uint64_t applies_checked() const { return applies_checked_; }
  uint64_t restores_checked() const { return restores_checked_; }

 private:
  struct Canonical {
    uint64_t state_hash = 0;
    size_t state_size = 0;
    bool has_result = false;
    CommandResult result;
  };
  std::map<raft::Index, Canonical> canonical_;  // by index: state after applying it
  std::map<raft::NodeId, raft::Index> applied_;
  // Per node: hash and size of its state as of its last apply or restore.
  std::map<raft::NodeId, std::pair<uint64_t, size_t>> state_;
  LockHistoryChecker history_;
  uint64_t applies_checked_ = 0;
  uint64_t restores_checked_ = 0;
};

inline const std::vector<std::string>& lock_names() {
  static const std::vector<std::string> names{"a", "b", "c"};
  return names;
}
inline const std::vector<std::string>& election_names() {
  static const std::vector<std::string> names{"e1", "e2"};
  return names;
}

}  // namespace raftlock::lockservice::sim_testing
