// Table-driven: every command against every relevant starting state, with the expected outcome,
// whether the state changes, and the resulting views.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "machine_harness.h"

namespace raftlock::lockservice {
namespace {

using namespace testing_support;

// `at` is the index the command under test was applied at.
using Check = std::function<void(const CommandResult&, const LockStateMachine&, raft::Index at)>;

struct Row {
  std::string name;
  std::vector<Command> setup;  // applied at indices 1..n, each must not be kInvalid
  Command command;
  Outcome outcome;
  bool changes_state;
  Check check = nullptr;
};

void run_table(const std::vector<Row>& rows) {
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    MachineHarness h;
    for (const auto& setup : row.setup) {
      CommandResult r = h.run(setup);
      ASSERT_NE(r.outcome, Outcome::kInvalid) << command_name(setup) << ": " << r.message;
    }
    std::string before = h.machine.snapshot();
    raft::Index at = h.peek_index();
    CommandResult result = h.run(row.command);
    EXPECT_EQ(result.outcome, row.outcome) << result.message;
    if (row.outcome != Outcome::kOk && row.outcome != Outcome::kGranted &&
        row.outcome != Outcome::kQueued) {
      EXPECT_FALSE(result.message.empty()) << "failures carry a sentence";
    }
    if (row.changes_state) {
      EXPECT_NE(h.machine.snapshot(), before);
      EXPECT_EQ(h.machine.last_modified_index(), at);
    } else {
      EXPECT_EQ(h.machine.snapshot(), before) << "state must be unchanged";
      EXPECT_TRUE(result.events.empty());
    }
    ASSERT_TRUE(h.machine.check_invariants().ok()) << h.machine.check_invariants().error().message;
    if (row.check) row.check(result, h.machine, at);
  }
}

TEST(OutcomeTable, Leases) {
  run_table({
      {"create new lease",
       {},
       lease(5, 2000),
       Outcome::kOk,
       true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index at) {
         EXPECT_TRUE(r.lease_created);
         ASSERT_TRUE(r.lease.has_value());
         EXPECT_EQ(r.lease->ttl_ms, 2000);
         EXPECT_EQ(r.lease->created_index, at);
         EXPECT_EQ(r.lease->revision, at);
         EXPECT_TRUE(m.lease_exists(5));
         EXPECT_EQ(m.all_lease_ids(), std::vector<LeaseId>{5});
       }},
      {"create same id same ttl is an idempotent retry",
       {lease(5, 2000)},
       lease(5, 2000),
       Outcome::kOk,
       false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         EXPECT_FALSE(r.lease_created);
         ASSERT_TRUE(r.lease.has_value());
         EXPECT_EQ(r.lease->created_index, 1u);
       }},
      {"create same id other ttl",
       {lease(5, 2000)},
       lease(5, 3000),
       Outcome::kLeaseExists,
       false,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index) {
         ASSERT_TRUE(r.lease.has_value());
         EXPECT_EQ(r.lease->ttl_ms, 2000);
         EXPECT_EQ(m.get_lease(5)->ttl_ms, 2000);
       }},
      {"ttl below range", {}, lease(5, 999), Outcome::kInvalid, false},
      {"ttl above range", {}, lease(5, 3'600'001), Outcome::kInvalid, false},
      {"lease id zero", {}, lease(0), Outcome::kInvalid, false},
      {"lease id 2^53", {}, lease(LeaseId{1} << 53), Outcome::kInvalid, false},
      {"revoke",
       {lease(5)},
       RevokeLease{5},
       Outcome::kOk,
       true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index) {
         EXPECT_FALSE(m.lease_exists(5));
         EXPECT_FALSE(m.get_lease(5).has_value());
         EXPECT_TRUE(r.released.empty());
         ASSERT_EQ(r.events.size(), 1u);
         auto* ended = std::get_if<LeaseEndedEvent>(&r.events[0]);
         ASSERT_NE(ended, nullptr);
         EXPECT_FALSE(ended->expired);
       }},
      {"revoke unknown", {lease(5)}, RevokeLease{6}, Outcome::kLeaseNotFound, false},
      {"expire",
       {lease(5)},
       ExpireLease{5, 0},
       Outcome::kOk,
       true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index) {
         EXPECT_FALSE(m.lease_exists(5));
         ASSERT_EQ(r.events.size(), 1u);
         EXPECT_TRUE(std::get<LeaseEndedEvent>(r.events[0]).expired);
       }},
      {"expire with matching created_index", {lease(5)}, ExpireLease{5, 1}, Outcome::kOk, true},
      {"stale expire of a re-created lease",
       {lease(5), RevokeLease{5}, lease(5)},
       ExpireLease{5, 1},
       Outcome::kLeaseNotFound,
       false,
       [](const CommandResult&, const LockStateMachine& m, raft::Index) {
         EXPECT_TRUE(m.lease_exists(5));
       }},
      {"expire unknown", {}, ExpireLease{5, 0}, Outcome::kLeaseNotFound, false},
  });
}

TEST(OutcomeTable, Acquire) {
  run_table({
      {"free lock is granted at this index",
       {lease(1)},
       acquire("a", 1),
       Outcome::kGranted,
       true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index at) {
         LockView v = m.get_lock("a");
         EXPECT_TRUE(v.held);
         ASSERT_TRUE(v.holder.has_value());
         EXPECT_EQ(v.holder->lease_id, 1u);
         EXPECT_EQ(v.holder->owner, "owner-1");
         EXPECT_EQ(v.holder->fencing_token, at);
         EXPECT_EQ(v.fencing_token, std::optional<FencingToken>(at));
         EXPECT_EQ(v.revision, at);
         EXPECT_EQ(r.lock, v);
         ASSERT_EQ(r.events.size(), 1u);
         EXPECT_EQ(std::get<LockGrantedEvent>(r.events[0]),
                   (LockGrantedEvent{"a", 1, "owner-1", at}));
         EXPECT_EQ(m.get_lease(1)->locks, std::vector<std::string>{"a"});
         EXPECT_EQ(m.get_lease(1)->revision, at);
       }},
      {"unknown lease", {}, acquire("a", 7), Outcome::kLeaseNotFound, false},
      {"held by another lease, try once",
       {lease(1), lease(2), acquire("a", 1)},
       acquire("a", 2),
       Outcome::kLockHeld,
       false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         ASSERT_TRUE(r.lock && r.lock->holder);
         EXPECT_EQ(r.lock->holder->lease_id, 1u);
         EXPECT_EQ(r.lock->holder->fencing_token, 3u);
       }},
      {"held by another lease, wait",
       {lease(1), lease(2), acquire("a", 1)},
       acquire("a", 2, /*wait=*/true),
       Outcome::kQueued,
       true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index at) {
         EXPECT_EQ(r.lock->waiters, 1u);
         EXPECT_EQ(r.lock->revision, at);
         EXPECT_EQ(m.lock_waiters("a"), std::vector<LeaseId>{2});
         EXPECT_EQ(m.get_lock("a").holder->lease_id, 1u);
       }},
      {"already queued lease queues again without change",
       {lease(1), lease(2), acquire("a", 1), acquire("a", 2, true)},
       acquire("a", 2, true),
       Outcome::kQueued,
       false},
      {"same lease re-acquires: same token",
       {lease(1), acquire("a", 1)},
       acquire("a", 1),
       Outcome::kGranted,
       false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         EXPECT_EQ(r.lock->fencing_token, std::optional<FencingToken>(2));
       }},
      {"create lease in the same operation",
       {},
       Acquire{"a", 9, "me", 0, false, 5000},
       Outcome::kGranted,
       true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index at) {
         EXPECT_TRUE(r.lease_created);
         ASSERT_TRUE(r.lease.has_value());
         EXPECT_EQ(r.lease->lease_id, 9u);
         EXPECT_EQ(r.lease->ttl_ms, 5000);
         EXPECT_EQ(r.lease->locks, std::vector<std::string>{"a"});
         EXPECT_EQ(m.get_lock("a").fencing_token, std::optional<FencingToken>(at));
       }},
      {"create-lease retry of the same proposal",
       {Acquire{"a", 9, "me", 0, false, 5000}},
       Acquire{"a", 9, "me", 0, false, 5000},
       Outcome::kGranted,
       false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         EXPECT_FALSE(r.lease_created);
         EXPECT_EQ(r.lock->fencing_token, std::optional<FencingToken>(1));
       }},
      {"create lease with an existing id of another ttl",
       {lease(9, 2000)},
       Acquire{"a", 9, "me", 0, false, 5000},
       Outcome::kLeaseExists,
       false,
       [](const CommandResult&, const LockStateMachine& m, raft::Index) {
         EXPECT_FALSE(m.get_lock("a").held);
       }},
      {"create lease and queue behind the holder",
       {lease(1), acquire("a", 1)},
       Acquire{"a", 9, "me", 0, true, 5000},
       Outcome::kQueued,
       true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index) {
         EXPECT_TRUE(r.lease_created);
         EXPECT_EQ(m.lock_waiters("a"), std::vector<LeaseId>{9});
       }},
      {"create lease with a ttl out of range",
       {},
       Acquire{"a", 9, "me", 0, false, 10},
       Outcome::kInvalid,
       false},
      {"invalid name", {lease(1)}, acquire("no spaces", 1), Outcome::kInvalid, false},
      {"owner too long",
       {lease(1)},
       acquire("a", 1, false, 0, std::string(257, 'o')),
       Outcome::kInvalid,
       false},
      {"lock_delay_ms too long",
       {lease(1)},
       acquire("a", 1, false, 60'001),
       Outcome::kInvalid,
       false},
      {"negative lock_delay_ms", {lease(1)}, acquire("a", 1, false, -1), Outcome::kInvalid, false},
      {"lease id zero", {}, acquire("a", 0), Outcome::kInvalid, false},
      {"in lock-delay, try once",
       {lease(1), lease(2), acquire("a", 1, false, 5000), ExpireLease{1, 0}},
       acquire("a", 2),
       Outcome::kLockHeld,
       false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         EXPECT_FALSE(r.lock->held);
         EXPECT_FALSE(r.lock->holder.has_value());
         EXPECT_TRUE(r.lock->in_lock_delay);
       }},
      {"in lock-delay, wait",
       {lease(1), lease(2), acquire("a", 1, false, 5000), ExpireLease{1, 0}},
       acquire("a", 2, true),
       Outcome::kQueued,
       true,
       [](const CommandResult&, const LockStateMachine& m, raft::Index) {
         EXPECT_FALSE(m.get_lock("a").held);
         EXPECT_EQ(m.lock_waiters("a"), std::vector<LeaseId>{2});
       }},
  });
}

TEST(OutcomeTable, ReleaseCancelWaitEndLockDelay) {
  const std::vector<Command> held = {lease(1), lease(2), acquire("a", 1)};  // token 3
  auto plus = [&](std::vector<Command> more) {
    std::vector<Command> all = held;
    all.insert(all.end(), more.begin(), more.end());
    return all;
  };
  run_table({
      {"holder releases", held, Release{"a", 1, 3}, Outcome::kOk, true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index at) {
         EXPECT_FALSE(m.get_lock("a").held);
         EXPECT_EQ(m.get_lock("a").revision, at);
         EXPECT_EQ(r.lock, m.get_lock("a"));
         EXPECT_TRUE(m.get_lease(1)->locks.empty());
         EXPECT_TRUE(m.list_locks("").empty());
       }},
      {"wrong token", held, Release{"a", 1, 2}, Outcome::kNotHolder, false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         ASSERT_TRUE(r.lock && r.lock->holder);
         EXPECT_EQ(r.lock->holder->lease_id, 1u);
       }},
      {"wrong lease", held, Release{"a", 2, 3}, Outcome::kNotHolder, false},
      {"free lock", held, Release{"b", 1, 3}, Outcome::kNotHolder, false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         ASSERT_TRUE(r.lock.has_value());
         EXPECT_FALSE(r.lock->holder.has_value());
         EXPECT_EQ(r.lock->revision, 0u);
       }},
      // A retried release (same lease and token) answers released again and changes nothing.
      {"released twice", plus({Release{"a", 1, 3}}), Release{"a", 1, 3}, Outcome::kOk, false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         ASSERT_TRUE(r.lock.has_value());
         EXPECT_FALSE(r.lock->holder.has_value());
       }},
      {"released twice by another token", plus({Release{"a", 1, 3}}), Release{"a", 1, 2},
       Outcome::kNotHolder, false},
      {"old release retried after a new grant", plus({Release{"a", 1, 3}, acquire("a", 2, false)}),
       Release{"a", 1, 3}, Outcome::kOk, false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         ASSERT_TRUE(r.lock.has_value());
         ASSERT_TRUE(r.lock->holder.has_value());
         EXPECT_EQ(r.lock->holder->lease_id, 2u);  // the new holder keeps it
       }},
      {"invalid name", held, Release{"", 1, 3}, Outcome::kInvalid, false},
      {"cancel a queued wait", plus({acquire("a", 2, true)}), CancelWait{"a", 2},
       Outcome::kLockHeld, true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index at) {
         EXPECT_TRUE(m.lock_waiters("a").empty());
         EXPECT_EQ(r.lock->waiters, 0u);
         EXPECT_EQ(r.lock->revision, at);
         EXPECT_EQ(r.lock->holder->lease_id, 1u);
       }},
      {"cancel after being granted meanwhile", held, CancelWait{"a", 1}, Outcome::kGranted, false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         EXPECT_EQ(r.lock->fencing_token, std::optional<FencingToken>(3));
       }},
      {"cancel when not queued", held, CancelWait{"a", 2}, Outcome::kLockHeld, false},
      {"cancel on a never-used lock", held, CancelWait{"zzz", 2}, Outcome::kLockHeld, false},
      {"cancel with an unknown lease", held, CancelWait{"a", 77}, Outcome::kLeaseNotFound, false},
      {"end lock-delay of a lock not in delay", held, EndLockDelay{"a", 0}, Outcome::kOk, false},
      {"end lock-delay of a never-used lock", held, EndLockDelay{"zzz", 0}, Outcome::kOk, false},
      {"end lock-delay, nobody waiting",
       {lease(1), acquire("a", 1, false, 500), ExpireLease{1, 0}},
       EndLockDelay{"a", 3},
       Outcome::kOk,
       true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index at) {
         EXPECT_FALSE(r.lock->in_lock_delay);
         EXPECT_EQ(r.lock->revision, at);
         EXPECT_TRUE(m.locks_in_lock_delay().empty());
       }},
      {"end lock-delay with a stale start index",
       {lease(1), acquire("a", 1, false, 500), ExpireLease{1, 0}},
       EndLockDelay{"a", 2},
       Outcome::kOk,
       false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         EXPECT_TRUE(r.lock->in_lock_delay);
       }},
  });
}

TEST(OutcomeTable, Elections) {
  const std::vector<Command> led = {lease(1), lease(2), campaign("e", 1, "one")};  // token 3
  auto plus = [&](std::vector<Command> more) {
    std::vector<Command> all = led;
    all.insert(all.end(), more.begin(), more.end());
    return all;
  };
  run_table({
      {"campaign with no leader",
       {lease(1)},
       campaign("e", 1, "one"),
       Outcome::kGranted,
       true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index at) {
         ElectionView v = m.get_election("e");
         ASSERT_TRUE(v.leader.has_value());
         EXPECT_EQ(*v.leader, (ElectionLeaderView{"one", 1, at}));
         EXPECT_EQ(v.revision, at);
         EXPECT_EQ(r.election, v);
         EXPECT_EQ(m.get_lease(1)->elections, std::vector<std::string>{"e"});
         ASSERT_EQ(r.events.size(), 1u);
         EXPECT_EQ(std::get<ElectionChangedEvent>(r.events[0]).revision, at);
       }},
      {"campaign again by the leader keeps the value", led, campaign("e", 1, "other"),
       Outcome::kGranted, false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         EXPECT_EQ(r.election->leader->value, "one");
         EXPECT_EQ(r.election->leader->fencing_token, 3u);
       }},
      {"campaign against a leader, try once", led, campaign("e", 2, "two"), Outcome::kNotLeader,
       false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         EXPECT_EQ(r.election->leader->lease_id, 1u);
       }},
      {"campaign against a leader, wait", led, campaign("e", 2, "two", true), Outcome::kQueued,
       true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index) {
         EXPECT_EQ(m.election_candidates("e"), std::vector<LeaseId>{2});
         EXPECT_EQ(r.election->revision, 3u) << "queueing does not change the election view";
       }},
      {"campaign with unknown lease", led, campaign("e", 9, "x"), Outcome::kLeaseNotFound, false},
      {"campaign creating its lease",
       {},
       Campaign{"e", 4, "v", false, 2000},
       Outcome::kGranted,
       true,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         EXPECT_TRUE(r.lease_created);
         EXPECT_EQ(r.lease->elections, std::vector<std::string>{"e"});
       }},
      {"campaign value too long",
       {lease(1)},
       campaign("e", 1, std::string(4097, 'v')),
       Outcome::kInvalid,
       false},
      {"campaign invalid name", {lease(1)}, campaign("e/x", 1, "v"), Outcome::kInvalid, false},
      {"proclaim by the leader", led, Proclaim{"e", 1, 3, "uno"}, Outcome::kOk, true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index at) {
         EXPECT_EQ(m.get_election("e").leader->value, "uno");
         EXPECT_EQ(m.get_election("e").leader->fencing_token, 3u);
         EXPECT_EQ(m.get_election("e").revision, at);
         ASSERT_EQ(r.events.size(), 1u);
       }},
      {"proclaim the same value again", led, Proclaim{"e", 1, 3, "one"}, Outcome::kOk, false},
      {"proclaim with the wrong token", led, Proclaim{"e", 1, 4, "uno"}, Outcome::kNotLeader,
       false},
      {"proclaim by another lease", led, Proclaim{"e", 2, 3, "uno"}, Outcome::kNotLeader, false},
      {"proclaim on an election with no leader", led, Proclaim{"f", 1, 3, "uno"},
       Outcome::kNotLeader, false,
       [](const CommandResult& r, const LockStateMachine&, raft::Index) {
         EXPECT_FALSE(r.election->leader.has_value());
       }},
      {"resign with no candidate", led, Resign{"e", 1, 3}, Outcome::kOk, true,
       [](const CommandResult& r, const LockStateMachine& m, raft::Index at) {
         EXPECT_FALSE(m.get_election("e").leader.has_value());
         EXPECT_EQ(m.get_election("e").revision, at);
         EXPECT_TRUE(m.get_lease(1)->elections.empty());
         ASSERT_EQ(r.events.size(), 1u);
         EXPECT_EQ(std::get<ElectionChangedEvent>(r.events[0]),
                   (ElectionChangedEvent{"e", std::nullopt, at}));
       }},
      {"resign hands over to the next candidate", plus({campaign("e", 2, "two", true)}),
       Resign{"e", 1, 3}, Outcome::kOk, true,
       [](const CommandResult&, const LockStateMachine& m, raft::Index at) {
         EXPECT_EQ(m.get_election("e").leader, (ElectionLeaderView{"two", 2, at}));
         EXPECT_TRUE(m.election_candidates("e").empty());
       }},
      {"resign by a non-leader", led, Resign{"e", 2, 3}, Outcome::kNotLeader, false},
      {"cancel a queued campaign", plus({campaign("e", 2, "two", true)}), CancelCampaign{"e", 2},
       Outcome::kNotLeader, true,
       [](const CommandResult&, const LockStateMachine& m, raft::Index) {
         EXPECT_TRUE(m.election_candidates("e").empty());
         EXPECT_TRUE(m.get_lease(2).has_value());
       }},
      {"cancel a campaign that already won", led, CancelCampaign{"e", 1}, Outcome::kGranted, false},
      {"cancel a campaign never made", led, CancelCampaign{"e", 2}, Outcome::kNotLeader, false},
      {"cancel a campaign of an unknown lease", led, CancelCampaign{"e", 9},
       Outcome::kLeaseNotFound, false},
  });
}

TEST(OutcomeTable, IndexMustIncrease) {
  MachineHarness h;
  ASSERT_EQ(h.run(lease(1)).outcome, Outcome::kOk);
  std::string before = h.machine.snapshot();
  for (raft::Index stale : {raft::Index{0}, raft::Index{1}}) {
    CommandResult r = h.machine.apply_command(stale, acquire("a", 1));
    EXPECT_EQ(r.outcome, Outcome::kInvalid);
    EXPECT_EQ(h.machine.snapshot(), before);
  }
  EXPECT_EQ(h.machine.apply_command(2, acquire("a", 1)).outcome, Outcome::kGranted);
}

}  // namespace
}  // namespace raftlock::lockservice
