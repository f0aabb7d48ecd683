// Checkers for the lock service run on the cluster simulator: LockHistoryChecker follows the
// committed command/result history and checks the lock-service guarantees (one holder, fencing
// order, FIFO grants, grants only to live leases); check_machine_state checks one node's state.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lockservice/commands.h"
#include "lockservice/lock_state_machine.h"
#include "lockservice/results.h"

namespace raftlock::lockservice::sim_testing {

// What a history exercised (so a test can require a workload that was not idle).
struct HistoryStats {
  uint64_t commands = 0;
  uint64_t grants = 0;             // lock grants
  uint64_t grants_to_waiters = 0;  // lock grants to the front of a queue
  uint64_t lease_ends = 0;         // revoked or expired leases
  uint64_t lock_delays = 0;        // lock-delays started
  uint64_t leaders = 0;            // election leaderships begun
  uint64_t leaders_from_queue = 0;
  uint64_t queued = 0;  // acquire/campaign answered kQueued
};

// Follows the applied history, entry by entry in index order, with a model built only from the
// commands, their results and events. check() returns "" or a description of the first broken
// guarantee:
//  - at most one holder per lock (a grant only when the model's lock is free) and per election;
//  - fencing tokens equal the grant's index and strictly increase per lock / election;
//  - grants only to leases alive at that index (created and not ended before);
//  - FIFO: a grant goes to the first waiter in enqueue order, never past a waiter;
//  - no grant during lock-delay; ended leases release everything and leave every queue;
//  - each result's view of the lock/election agrees with the model.
class LockHistoryChecker {
 public:
  std::string check(raft::Index index, const Command& command, const CommandResult& result);
  const HistoryStats& stats() const { return stats_; }

 private:
  struct Holder {
    LeaseId lease_id = 0;
    FencingToken token = 0;
  };
  struct LockModel {
    std::optional<Holder> holder;
    std::deque<LeaseId> queue;  // enqueue order
    FencingToken last_token = 0;
    std::optional<raft::Index> delay_started;
    std::optional<Holder> last_release;  // the last release that took effect (retries answer ok)
  };
  struct ElectionModel {
    std::optional<Holder> leader;
    std::deque<LeaseId> candidates;
    FencingToken last_token = 0;
  };

  std::string apply_events(raft::Index index, const Command& command, const CommandResult& result);
  std::string grant_lock(raft::Index index, const Command& command, const LockGrantedEvent& e);
  std::string lead_election(raft::Index index, const Command& command,
                            const ElectionChangedEvent& e);
  std::string check_views(const Command& command, const CommandResult& result);
  std::string check_references() const;
  bool alive(LeaseId lease_id) const { return leases_.count(lease_id) != 0; }

  raft::Index last_index_ = 0;
  std::map<LeaseId, raft::Index> leases_;  // alive lease -> created index
  std::map<std::string, LockModel> locks_;
  std::map<std::string, ElectionModel> elections_;
  HistoryStats stats_;
};

// One node's state: check_invariants(), every held lock's holder lease exists and lists the lock,
// no lock is listed by two leases, every election leader's lease exists. "" when fine.
std::string check_machine_state(const LockStateMachine& machine,
                                const std::vector<std::string>& lock_names,
                                const std::vector<std::string>& election_names);

// "acquire(a, lease 3, wait)" and the like, for failure messages.
std::string describe(const Command& command);

}  // namespace raftlock::lockservice::sim_testing
