// Test harness: a LockStateMachine fed through its byte interface with consecutive log indices.
#pragma once

#include <gtest/gtest.h>

#include <any>
#include <ostream>
#include <string>
#include <vector>

#include "lockservice/commands.h"
#include "lockservice/lock_state_machine.h"
#include "lockservice/results.h"

namespace raftlock::lockservice {

inline void PrintTo(Outcome outcome, std::ostream* os) {
  *os << outcome_name(outcome);
}

namespace testing_support {

inline constexpr int64_t kTtl = 10'000;

// Applies commands at indices 1, 2, 3, ... through encode_command + apply (the log path).
class MachineHarness {
 public:
  CommandResult run(const Command& command) {
    std::any result = machine.apply(next_index++, encode_command(command));
    return std::any_cast<CommandResult>(result);
  }
  // The index the next run() will use.
  raft::Index peek_index() const { return next_index; }
  raft::Index last_index() const { return next_index - 1; }

  LockStateMachine machine;
  raft::Index next_index = 1;
};

inline Acquire acquire(std::string name, LeaseId lease, bool wait = false,
                       int64_t lock_delay_ms = 0, std::string owner = "") {
  Acquire a;
  a.name = std::move(name);
  a.lease_id = lease;
  a.wait = wait;
  a.lock_delay_ms = lock_delay_ms;
  a.owner = owner.empty() ? "owner-" + std::to_string(lease) : std::move(owner);
  return a;
}

inline Campaign campaign(std::string name, LeaseId lease, std::string value, bool wait = false) {
  Campaign c;
  c.name = std::move(name);
  c.lease_id = lease;
  c.value = std::move(value);
  c.wait = wait;
  return c;
}

inline CreateLease lease(LeaseId id, int64_t ttl_ms = kTtl) {
  return CreateLease{id, ttl_ms};
}

// Leases 1-5; "a" held with waiters, "b" in lock-delay with a waiter, "c" free after release,
// elections "e" (with candidates) and "f" (no leader after resign).
inline void build_rich_state(MachineHarness& h) {
  for (LeaseId id = 1; id <= 5; ++id)
    ASSERT_EQ(h.run(lease(id, 1000 * id + 1000)).outcome, Outcome::kOk);
  ASSERT_EQ(h.run(acquire("a", 1)).outcome, Outcome::kGranted);
  ASSERT_EQ(h.run(acquire("a", 2, true)).outcome, Outcome::kQueued);
  ASSERT_EQ(h.run(acquire("a", 3, true, 700)).outcome, Outcome::kQueued);
  ASSERT_EQ(h.run(acquire("b", 4, false, 3000)).outcome, Outcome::kGranted);
  ASSERT_EQ(h.run(acquire("b", 5, true)).outcome, Outcome::kQueued);
  ASSERT_EQ(h.run(ExpireLease{4, 0}).outcome, Outcome::kOk);  // "b" enters lock-delay
  ASSERT_EQ(h.run(acquire("c", 5)).outcome, Outcome::kGranted);
  ASSERT_EQ(h.run(Release{"c", 5, h.last_index()}).outcome, Outcome::kOk);
  ASSERT_EQ(h.run(campaign("e", 2, "two")).outcome, Outcome::kGranted);
  ASSERT_EQ(h.run(campaign("e", 3, "three", true)).outcome, Outcome::kQueued);
  ASSERT_EQ(h.run(campaign("e", 1, "one", true)).outcome, Outcome::kQueued);
  ASSERT_EQ(h.run(campaign("f", 5, "five")).outcome, Outcome::kGranted);
  ASSERT_EQ(h.run(Resign{"f", 5, h.last_index()}).outcome, Outcome::kOk);
  ASSERT_EQ(h.run(CreateLease{6, 2000}).outcome, Outcome::kOk);
}

// Two machines answer every query alike: snapshot, leases (all ids, plus ids 0-8 that may not
// exist), and each lock and election named in `names`.
inline void expect_same_answers(const LockStateMachine& x, const LockStateMachine& y,
                                const std::vector<std::string>& names) {
  EXPECT_EQ(x.snapshot(), y.snapshot());
  EXPECT_EQ(x.last_modified_index(), y.last_modified_index());
  EXPECT_EQ(x.all_lease_ids(), y.all_lease_ids());
  for (LeaseId id : x.all_lease_ids()) EXPECT_EQ(x.get_lease(id), y.get_lease(id));
  for (LeaseId id = 0; id <= 8; ++id) {
    EXPECT_EQ(x.get_lease(id), y.get_lease(id));
    EXPECT_EQ(x.lease_exists(id), y.lease_exists(id));
  }
  for (const auto& name : names) {
    EXPECT_EQ(x.get_lock(name), y.get_lock(name));
    EXPECT_EQ(x.lock_waiters(name), y.lock_waiters(name));
    EXPECT_EQ(x.get_election(name), y.get_election(name));
    EXPECT_EQ(x.election_candidates(name), y.election_candidates(name));
  }
  EXPECT_EQ(x.list_locks(""), y.list_locks(""));
  EXPECT_EQ(x.locks_in_lock_delay(), y.locks_in_lock_delay());
}

}  // namespace testing_support
}  // namespace raftlock::lockservice
