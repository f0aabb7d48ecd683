// The history checker accepts what the real LockStateMachine produces and rejects histories that
// break the lock-service guarantees (so a broken state machine cannot pass the simulation).
#include <gtest/gtest.h>

#include "tests/lockservice_sim/lock_history_checker.h"

namespace raftlock::lockservice::sim_testing {
namespace {

// Feeds commands through a real LockStateMachine and the checker at indices 1, 2, 3, ...
class Recorder {
 public:
  CommandResult run(const Command& command) {
    const raft::Index index = next_++;
    CommandResult result = machine_.apply_command(index, command);
    problem_ = checker_.check(index, command, result);
    EXPECT_EQ(problem_, "") << describe(command);
    EXPECT_EQ(check_machine_state(machine_, {"a", "b"}, {"e"}), "");
    return result;
  }
  const HistoryStats& stats() const { return checker_.stats(); }

 private:
  LockStateMachine machine_;
  LockHistoryChecker checker_;
  raft::Index next_ = 1;
  std::string problem_;
};

Acquire acquire(std::string name, LeaseId lease, bool wait = false, int64_t delay_ms = 0) {
  Acquire a;
  a.name = std::move(name);
  a.lease_id = lease;
  a.owner = "o" + std::to_string(lease);
  a.wait = wait;
  a.lock_delay_ms = delay_ms;
  return a;
}

Campaign campaign(std::string name, LeaseId lease, bool wait) {
  Campaign c;
  c.name = std::move(name);
  c.lease_id = lease;
  c.value = "v" + std::to_string(lease);
  c.wait = wait;
  return c;
}

TEST(LockHistoryChecker, AcceptsTheRealStateMachinesHistory) {
  Recorder r;
  for (LeaseId id = 1; id <= 4; ++id) r.run(CreateLease{id, 10000});
  const CommandResult first = r.run(acquire("a", 1, false, 1000));
  ASSERT_EQ(first.outcome, Outcome::kGranted);
  EXPECT_EQ(r.run(acquire("a", 2, true)).outcome, Outcome::kQueued);
  EXPECT_EQ(r.run(acquire("a", 3, true)).outcome, Outcome::kQueued);
  EXPECT_EQ(r.run(acquire("a", 4, false)).outcome, Outcome::kLockHeld);
  EXPECT_EQ(r.run(Release{"a", 1, first.lock->fencing_token.value() + 1}).outcome,
            Outcome::kNotHolder);
  EXPECT_EQ(r.run(Release{"a", 1, *first.lock->fencing_token}).outcome, Outcome::kOk);  // -> 2
  // A retried release (same lease and token) answers ok again and changes nothing.
  EXPECT_EQ(r.run(Release{"a", 1, *first.lock->fencing_token}).outcome, Outcome::kOk);
  EXPECT_EQ(r.run(CancelWait{"a", 3}).outcome, Outcome::kLockHeld);  // 3 leaves the queue
  EXPECT_EQ(r.run(acquire("a", 4, true)).outcome, Outcome::kQueued);
  EXPECT_EQ(r.run(RevokeLease{2}).outcome, Outcome::kOk);  // -> 4
  EXPECT_EQ(r.run(acquire("b", 1, false, 500)).outcome, Outcome::kGranted);
  EXPECT_EQ(r.run(acquire("b", 3, true)).outcome, Outcome::kQueued);
  EXPECT_EQ(r.run(ExpireLease{1, 0}).outcome, Outcome::kOk);  // b enters lock-delay
  EXPECT_EQ(r.run(acquire("b", 4, false)).outcome, Outcome::kLockHeld);
  EXPECT_EQ(r.run(EndLockDelay{"b", 0}).outcome, Outcome::kOk);  // -> 3
  EXPECT_EQ(r.run(campaign("e", 3, false)).outcome, Outcome::kGranted);
  EXPECT_EQ(r.run(campaign("e", 4, true)).outcome, Outcome::kQueued);
  EXPECT_EQ(r.run(RevokeLease{3}).outcome, Outcome::kOk);  // b released, e passes to 4
  EXPECT_EQ(r.stats().grants_to_waiters, 3u);
  EXPECT_EQ(r.stats().lock_delays, 1u);
  EXPECT_EQ(r.stats().leaders_from_queue, 1u);
}

// Hand-made results: what a broken state machine could answer.
CommandResult created(LeaseId id) {
  CommandResult r;
  r.outcome = Outcome::kOk;
  r.lease_created = true;
  r.lease = LeaseView{id, 10000, 0, 0, {}, {}};
  return r;
}
CommandResult granted(const std::string& name, LeaseId lease, FencingToken token,
                      Outcome outcome = Outcome::kGranted) {
  CommandResult r;
  r.outcome = outcome;
  r.events.push_back(LockGrantedEvent{name, lease, "o" + std::to_string(lease), token});
  return r;
}
CommandResult plain(Outcome outcome) {
  CommandResult r;
  r.outcome = outcome;
  return r;
}
CommandResult lease_ended(LeaseId lease, std::vector<std::string> released, bool expired = false) {
  CommandResult r;
  r.outcome = Outcome::kOk;
  LeaseEndedEvent e;
  e.lease_id = lease;
  e.expired = expired;
  e.released_locks = std::move(released);
  r.events.push_back(e);
  return r;
}

// Runs a history and returns the first violation ("" if none).
std::string first_violation(const std::vector<std::pair<Command, CommandResult>>& history) {
  LockHistoryChecker checker;
  raft::Index index = 1;
  for (const auto& [command, result] : history) {
    std::string problem = checker.check(index, command, result);
    if (!problem.empty()) return problem;
    ++index;
  }
  return "";
}

TEST(LockHistoryChecker, RejectsASecondHolder) {
  const std::string problem = first_violation({
      {CreateLease{1, 10000}, created(1)},
      {CreateLease{2, 10000}, created(2)},
      {acquire("a", 1), granted("a", 1, 3)},
      {acquire("a", 2), granted("a", 2, 4)},
  });
  EXPECT_NE(problem.find("held lock"), std::string::npos) << problem;
  // Even when the broken machine claims the second acquire only queued, a grant event to it is
  // a second holder.
  const std::string queued_grant = first_violation({
      {CreateLease{1, 10000}, created(1)},
      {CreateLease{2, 10000}, created(2)},
      {acquire("a", 1), granted("a", 1, 3)},
      {acquire("a", 2, true), granted("a", 2, 4, Outcome::kQueued)},
  });
  EXPECT_NE(queued_grant.find("second holder"), std::string::npos) << queued_grant;
}

TEST(LockHistoryChecker, RejectsAReleaseFromANonHolder) {
  const std::string problem = first_violation({
      {CreateLease{1, 10000}, created(1)},
      {CreateLease{2, 10000}, created(2)},
      {acquire("a", 1), granted("a", 1, 3)},
      {Release{"a", 2, 3}, plain(Outcome::kOk)},
  });
  EXPECT_NE(problem.find("non-holder"), std::string::npos) << problem;
  // A release that took effect, then the lock moved on: an old (lease, token) that is not the
  // last release must be refused.
  const std::string stale = first_violation({
      {CreateLease{1, 10000}, created(1)},
      {CreateLease{2, 10000}, created(2)},
      {acquire("a", 1), granted("a", 1, 3)},
      {Release{"a", 1, 3}, plain(Outcome::kOk)},
      {acquire("a", 2), granted("a", 2, 5)},
      {Release{"a", 2, 5}, plain(Outcome::kOk)},
      {Release{"a", 1, 3}, plain(Outcome::kOk)},
  });
  EXPECT_NE(stale.find("non-holder"), std::string::npos) << stale;
}

TEST(LockHistoryChecker, RejectsAFencingTokenThatIsNotTheGrantIndex) {
  const std::string problem = first_violation({
      {CreateLease{1, 10000}, created(1)},
      {CreateLease{2, 10000}, created(2)},
      {acquire("a", 1), granted("a", 1, 3)},
      {Release{"a", 1, 3}, plain(Outcome::kOk)},
      {acquire("a", 2), granted("a", 2, 3)},  // reuses the old token
  });
  EXPECT_NE(problem.find("fencing token 3"), std::string::npos) << problem;
}

TEST(LockHistoryChecker, RejectsAGrantToALeaseThatEnded) {
  const std::string problem = first_violation({
      {CreateLease{1, 10000}, created(1)},
      {CreateLease{2, 10000}, created(2)},
      {acquire("a", 1), granted("a", 1, 3)},
      {RevokeLease{2}, lease_ended(2, {})},
      {Release{"a", 1, 3}, granted("a", 2, 5, Outcome::kOk)},  // "next waiter" is a dead lease
  });
  EXPECT_NE(problem.find("not alive"), std::string::npos) << problem;
}

TEST(LockHistoryChecker, RejectsAGrantOutOfFifoOrder) {
  CommandResult queued = plain(Outcome::kQueued);
  const std::string problem = first_violation({
      {CreateLease{1, 10000}, created(1)},
      {CreateLease{2, 10000}, created(2)},
      {CreateLease{3, 10000}, created(3)},
      {acquire("a", 1), granted("a", 1, 4)},
      {acquire("a", 2, true), queued},
      {acquire("a", 3, true), queued},
      {Release{"a", 1, 4}, granted("a", 3, 7, Outcome::kOk)},  // 2 was first
  });
  EXPECT_NE(problem.find("FIFO"), std::string::npos) << problem;
}

TEST(LockHistoryChecker, RejectsANewcomerJumpingTheQueue) {
  const std::string problem = first_violation({
      {CreateLease{1, 10000}, created(1)},
      {CreateLease{2, 10000}, created(2)},
      {CreateLease{3, 10000}, created(3)},
      {acquire("a", 1), granted("a", 1, 4)},
      {acquire("a", 2, true), plain(Outcome::kQueued)},
      {Release{"a", 1, 4}, plain(Outcome::kOk)},  // forgot to grant the waiter
      {acquire("a", 3), granted("a", 3, 7)},
  });
  EXPECT_NE(problem.find("jumped the queue"), std::string::npos) << problem;
}

TEST(LockHistoryChecker, RejectsALockStillHeldByAnEndedLease) {
  const std::string problem = first_violation({
      {CreateLease{1, 10000}, created(1)},
      {acquire("a", 1), granted("a", 1, 2)},
      {RevokeLease{1}, lease_ended(1, {})},  // did not release "a"
  });
  EXPECT_NE(problem.find("still held by ended lease 1"), std::string::npos) << problem;
}

TEST(LockHistoryChecker, RejectsAGrantDuringLockDelay) {
  CommandResult expired = lease_ended(1, {"a"}, true);
  expired.events.push_back(LockDelayStartedEvent{"a", 1000, 4});
  CommandResult end_delay_wrong = granted("a", 2, 5, Outcome::kOk);
  const std::string problem = first_violation({
      {CreateLease{1, 10000}, created(1)},
      {CreateLease{2, 10000}, created(2)},
      {acquire("a", 1, false, 1000), granted("a", 1, 3)},
      {ExpireLease{1, 0}, expired},
      {EndLockDelay{"a", 99}, end_delay_wrong},  // a stale end must not lift the delay
  });
  EXPECT_NE(problem.find("lock-delay"), std::string::npos) << problem;
}

TEST(LockHistoryChecker, RejectsAResultViewThatDisagreesWithTheHistory) {
  CommandResult wrong_view = granted("a", 1, 2);
  LockView view;
  view.name = "a";
  view.held = true;
  view.holder = LockHolderView{1, "o1", 2};
  view.fencing_token = 2;
  view.waiters = 1;  // nobody waits
  wrong_view.lock = view;
  const std::string problem = first_violation({
      {CreateLease{1, 10000}, created(1)},
      {acquire("a", 1), wrong_view},
  });
  EXPECT_NE(problem.find("waiters"), std::string::npos) << problem;
}

TEST(LockHistoryChecker, RejectsTwoElectionLeaders) {
  CommandResult first;
  first.outcome = Outcome::kGranted;
  first.events.push_back(ElectionChangedEvent{"e", ElectionLeaderView{"v1", 1, 3}, 3});
  CommandResult second;
  second.outcome = Outcome::kGranted;
  second.events.push_back(ElectionChangedEvent{"e", ElectionLeaderView{"v2", 2, 4}, 4});
  const std::string problem = first_violation({
      {CreateLease{1, 10000}, created(1)},
      {CreateLease{2, 10000}, created(2)},
      {campaign("e", 1, false), first},
      {campaign("e", 2, false), second},
  });
  EXPECT_FALSE(problem.empty());
}

TEST(LockHistoryChecker, RejectsAnOutOfOrderHistory) {
  LockHistoryChecker checker;
  EXPECT_EQ(checker.check(5, CreateLease{1, 10000}, created(1)), "");
  EXPECT_NE(checker.check(5, CreateLease{2, 10000}, created(2)), "");
}

}  // namespace
}  // namespace raftlock::lockservice::sim_testing
