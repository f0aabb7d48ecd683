// Multi-step behaviours: FIFO handoff, lease end, lock-delay, regressions from etcd and Consul.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "machine_harness.h"

namespace raftlock::lockservice {
namespace {

using namespace testing_support;

template <typename E>
std::vector<E> events_of(const CommandResult& r) {
  std::vector<E> out;
  for (const auto& e : r.events) {
    if (auto* typed = std::get_if<E>(&e)) out.push_back(*typed);
  }
  return out;
}

void expect_ok(const CommandResult& r, Outcome outcome) {
  ASSERT_EQ(r.outcome, outcome) << r.message;
}

TEST(Scenario, FifoHandoffOnReleaseInOneEntry) {
  MachineHarness h;
  for (LeaseId id = 1; id <= 4; ++id) expect_ok(h.run(lease(id)), Outcome::kOk);
  expect_ok(h.run(acquire("a", 1)), Outcome::kGranted);
  FencingToken token = h.last_index();
  // Queue 3 before 2 before 4: the order of arrival, not of lease id, decides.
  expect_ok(h.run(acquire("a", 3, true)), Outcome::kQueued);
  expect_ok(h.run(acquire("a", 2, true)), Outcome::kQueued);
  expect_ok(h.run(acquire("a", 4, true)), Outcome::kQueued);
  EXPECT_EQ(h.machine.lock_waiters("a"), (std::vector<LeaseId>{3, 2, 4}));

  LeaseId holder = 1;
  for (LeaseId expected_next : {LeaseId{3}, LeaseId{2}, LeaseId{4}}) {
    raft::Index at = h.peek_index();
    CommandResult r = h.run(Release{"a", holder, token});
    expect_ok(r, Outcome::kOk);
    auto grants = events_of<LockGrantedEvent>(r);
    ASSERT_EQ(grants.size(), 1u);
    EXPECT_EQ(grants[0],
              (LockGrantedEvent{"a", expected_next, "owner-" + std::to_string(expected_next), at}));
    LockView v = h.machine.get_lock("a");
    ASSERT_TRUE(v.held);
    EXPECT_EQ(v.holder->lease_id, expected_next);
    EXPECT_EQ(v.fencing_token, std::optional<FencingToken>(at)) << "token = the release's index";
    EXPECT_GT(at, token);
    EXPECT_EQ(h.machine.get_lease(expected_next)->locks, std::vector<std::string>{"a"});
    EXPECT_TRUE(h.machine.get_lease(holder)->locks.empty());
    holder = expected_next;
    token = at;
  }
  expect_ok(h.run(Release{"a", holder, token}), Outcome::kOk);
  EXPECT_FALSE(h.machine.get_lock("a").held);
  EXPECT_EQ(h.machine.get_lock("a").waiters, 0u);
}

TEST(Scenario, RequeueKeepsItsPlace) {
  MachineHarness h;
  for (LeaseId id = 1; id <= 3; ++id) expect_ok(h.run(lease(id)), Outcome::kOk);
  expect_ok(h.run(acquire("a", 1)), Outcome::kGranted);
  expect_ok(h.run(acquire("a", 2, true)), Outcome::kQueued);
  expect_ok(h.run(acquire("a", 3, true)), Outcome::kQueued);
  expect_ok(h.run(acquire("a", 2, true)), Outcome::kQueued);  // a retried parked request
  EXPECT_EQ(h.machine.lock_waiters("a"), (std::vector<LeaseId>{2, 3}));
}

TEST(Scenario, CancelWaitAfterHandoffReportsTheGrant) {
  MachineHarness h;
  expect_ok(h.run(lease(1)), Outcome::kOk);
  expect_ok(h.run(lease(2)), Outcome::kOk);
  expect_ok(h.run(acquire("a", 1)), Outcome::kGranted);
  expect_ok(h.run(acquire("a", 2, true)), Outcome::kQueued);
  raft::Index handoff = h.peek_index();
  expect_ok(h.run(Release{"a", 1, 3}), Outcome::kOk);
  // The parked request's wait ran out just as the handoff committed: it learns it was granted.
  CommandResult r = h.run(CancelWait{"a", 2});
  expect_ok(r, Outcome::kGranted);
  EXPECT_EQ(r.lock->fencing_token, std::optional<FencingToken>(handoff));
  EXPECT_EQ(h.machine.get_lock("a").holder->lease_id, 2u);
}

TEST(Scenario, LeaseEndReleasesEverythingAndCancelsWaits) {
  for (bool expire : {false, true}) {
    SCOPED_TRACE(expire ? "expire" : "revoke");
    MachineHarness h;
    for (LeaseId id = 1; id <= 3; ++id) expect_ok(h.run(lease(id)), Outcome::kOk);
    expect_ok(h.run(acquire("a", 1)), Outcome::kGranted);
    expect_ok(h.run(acquire("b", 1)), Outcome::kGranted);
    expect_ok(h.run(acquire("b", 3, true)), Outcome::kQueued);
    expect_ok(h.run(acquire("c", 2)), Outcome::kGranted);
    expect_ok(h.run(acquire("c", 1, true)), Outcome::kQueued);
    expect_ok(h.run(campaign("e", 1, "one")), Outcome::kGranted);
    expect_ok(h.run(campaign("f", 2, "two")), Outcome::kGranted);
    expect_ok(h.run(campaign("f", 1, "one", true)), Outcome::kQueued);

    raft::Index at = h.peek_index();
    CommandResult r = expire ? h.run(ExpireLease{1, 0}) : h.run(RevokeLease{1});
    expect_ok(r, Outcome::kOk);
    EXPECT_EQ(r.released, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(r.resigned, std::vector<std::string>{"e"});
    auto ended = events_of<LeaseEndedEvent>(r);
    ASSERT_EQ(ended.size(), 1u);
    EXPECT_EQ(ended[0].lease_id, 1u);
    EXPECT_EQ(ended[0].expired, expire);
    EXPECT_EQ(ended[0].released_locks, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(ended[0].resigned_elections, std::vector<std::string>{"e"});
    EXPECT_EQ(ended[0].cancelled_lock_waits, std::vector<std::string>{"c"});
    EXPECT_EQ(ended[0].cancelled_campaigns, std::vector<std::string>{"f"});

    EXPECT_FALSE(h.machine.lease_exists(1));
    EXPECT_FALSE(h.machine.get_lock("a").held);
    EXPECT_EQ(h.machine.get_lock("a").revision, at);
    EXPECT_EQ(h.machine.get_lock("b").holder->lease_id, 3u) << "waiter granted in the same entry";
    EXPECT_EQ(h.machine.get_lock("b").fencing_token, std::optional<FencingToken>(at));
    EXPECT_EQ(h.machine.get_lock("c").holder->lease_id, 2u);
    EXPECT_TRUE(h.machine.lock_waiters("c").empty());
    EXPECT_EQ(h.machine.get_lock("c").revision, at);
    EXPECT_FALSE(h.machine.get_election("e").leader.has_value());
    EXPECT_EQ(h.machine.get_election("e").revision, at);
    EXPECT_TRUE(h.machine.election_candidates("f").empty());
    EXPECT_EQ(h.machine.get_election("f").leader->lease_id, 2u);
    EXPECT_TRUE(h.machine.locks_in_lock_delay().empty()) << "lock_delay_ms was 0";
    ASSERT_TRUE(h.machine.check_invariants().ok());
    // The lease is gone: a retried release, acquire or campaign with it fails cleanly.
    EXPECT_EQ(h.run(acquire("z", 1)).outcome, Outcome::kLeaseNotFound);
    EXPECT_EQ(h.run(RevokeLease{1}).outcome, Outcome::kLeaseNotFound);
  }
}

TEST(Scenario, LockDelayBlocksGrantsUntilEndLockDelay) {
  MachineHarness h;
  for (LeaseId id = 1; id <= 3; ++id) expect_ok(h.run(lease(id)), Outcome::kOk);
  expect_ok(h.run(acquire("a", 1, false, 5000)), Outcome::kGranted);
  expect_ok(h.run(acquire("a", 2, true)), Outcome::kQueued);

  raft::Index expired_at = h.peek_index();
  CommandResult r = h.run(ExpireLease{1, 0});
  expect_ok(r, Outcome::kOk);
  EXPECT_TRUE(events_of<LockGrantedEvent>(r).empty()) << "no grant during lock-delay";
  auto delays = events_of<LockDelayStartedEvent>(r);
  ASSERT_EQ(delays.size(), 1u);
  EXPECT_EQ(delays[0], (LockDelayStartedEvent{"a", 5000, expired_at}));
  EXPECT_EQ(h.machine.locks_in_lock_delay(), (std::vector<LockDelayView>{{"a", 5000, expired_at}}));
  LockView v = h.machine.get_lock("a");
  EXPECT_FALSE(v.held);
  EXPECT_TRUE(v.in_lock_delay);
  EXPECT_EQ(v.waiters, 1u);

  // Nobody gets it during the delay, not even a newcomer; newcomers queue behind.
  EXPECT_EQ(h.run(acquire("a", 3)).outcome, Outcome::kLockHeld);
  EXPECT_EQ(h.run(acquire("a", 3, true)).outcome, Outcome::kQueued);
  EXPECT_EQ(h.run(Release{"a", 1, 4}).outcome, Outcome::kNotHolder);
  EXPECT_FALSE(h.machine.get_lock("a").held);

  raft::Index ended_at = h.peek_index();
  r = h.run(EndLockDelay{"a", expired_at});
  expect_ok(r, Outcome::kOk);
  auto grants = events_of<LockGrantedEvent>(r);
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(grants[0].lease_id, 2u);
  EXPECT_EQ(grants[0].fencing_token, ended_at);
  EXPECT_EQ(h.machine.get_lock("a").holder->lease_id, 2u);
  EXPECT_EQ(h.machine.lock_waiters("a"), std::vector<LeaseId>{3});
  EXPECT_TRUE(h.machine.locks_in_lock_delay().empty());
}

TEST(Scenario, RevokeAndReleaseNeverStartLockDelay) {
  MachineHarness h;
  for (LeaseId id = 1; id <= 2; ++id) expect_ok(h.run(lease(id)), Outcome::kOk);
  expect_ok(h.run(acquire("a", 1, false, 5000)), Outcome::kGranted);
  expect_ok(h.run(acquire("a", 2, true)), Outcome::kQueued);
  CommandResult r = h.run(RevokeLease{1});
  EXPECT_TRUE(events_of<LockDelayStartedEvent>(r).empty());
  EXPECT_EQ(h.machine.get_lock("a").holder->lease_id, 2u);

  expect_ok(h.run(lease(3)), Outcome::kOk);
  expect_ok(h.run(acquire("b", 3, false, 5000)), Outcome::kGranted);
  expect_ok(h.run(Release{"b", 3, h.last_index()}), Outcome::kOk);
  EXPECT_FALSE(h.machine.get_lock("b").in_lock_delay);
  EXPECT_EQ(h.run(acquire("b", 2)).outcome, Outcome::kGranted);
}

// Consul issue 4508: a lock-delay of 0 must mean no delay at all, not a default delay.
TEST(Scenario, ZeroLockDelayMeansNoDelay_Consul4508) {
  MachineHarness h;
  for (LeaseId id = 1; id <= 3; ++id) expect_ok(h.run(lease(id)), Outcome::kOk);
  expect_ok(h.run(acquire("a", 1, false, 0)), Outcome::kGranted);
  expect_ok(h.run(acquire("a", 2, true, 0)), Outcome::kQueued);
  raft::Index expired_at = h.peek_index();
  CommandResult r = h.run(ExpireLease{1, 0});
  EXPECT_TRUE(events_of<LockDelayStartedEvent>(r).empty());
  auto grants = events_of<LockGrantedEvent>(r);
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(grants[0].lease_id, 2u);
  EXPECT_EQ(grants[0].fencing_token, expired_at) << "granted in the expiry entry itself";
  EXPECT_TRUE(h.machine.locks_in_lock_delay().empty());

  // With nobody waiting, the lock is free for the very next acquire.
  expect_ok(h.run(acquire("b", 2, false, 0)), Outcome::kGranted);
  expect_ok(h.run(ExpireLease{2, 0}), Outcome::kOk);
  EXPECT_FALSE(h.machine.get_lock("b").in_lock_delay);
  EXPECT_EQ(h.run(acquire("b", 3)).outcome, Outcome::kGranted);
}

// etcd issue 11456: a waiter whose lease expired while queued must never be granted the lock.
TEST(Scenario, GrantNeverGoesToAnEndedLease_Etcd11456) {
  {
    SCOPED_TRACE("next live waiter");
    MachineHarness h;
    for (LeaseId id = 1; id <= 3; ++id) expect_ok(h.run(lease(id)), Outcome::kOk);
    expect_ok(h.run(acquire("a", 1)), Outcome::kGranted);
    FencingToken token = h.last_index();
    expect_ok(h.run(acquire("a", 2, true)), Outcome::kQueued);
    expect_ok(h.run(acquire("a", 3, true)), Outcome::kQueued);
    CommandResult expiry = h.run(ExpireLease{2, 0});
    EXPECT_TRUE(events_of<LockGrantedEvent>(expiry).empty());
    EXPECT_EQ(h.machine.lock_waiters("a"), std::vector<LeaseId>{3});
    CommandResult r = h.run(Release{"a", 1, token});
    auto grants = events_of<LockGrantedEvent>(r);
    ASSERT_EQ(grants.size(), 1u);
    EXPECT_EQ(grants[0].lease_id, 3u);
    EXPECT_EQ(h.machine.get_lock("a").holder->lease_id, 3u);
  }
  {
    SCOPED_TRACE("no live waiter: free");
    MachineHarness h;
    for (LeaseId id = 1; id <= 2; ++id) expect_ok(h.run(lease(id)), Outcome::kOk);
    expect_ok(h.run(acquire("a", 1)), Outcome::kGranted);
    FencingToken token = h.last_index();
    expect_ok(h.run(acquire("a", 2, true)), Outcome::kQueued);
    expect_ok(h.run(ExpireLease{2, 0}), Outcome::kOk);
    CommandResult r = h.run(Release{"a", 1, token});
    EXPECT_TRUE(events_of<LockGrantedEvent>(r).empty());
    EXPECT_FALSE(h.machine.get_lock("a").held);
  }
  {
    SCOPED_TRACE("waiter revoked during lock-delay");
    MachineHarness h;
    for (LeaseId id = 1; id <= 2; ++id) expect_ok(h.run(lease(id)), Outcome::kOk);
    expect_ok(h.run(acquire("a", 1, false, 1000)), Outcome::kGranted);
    expect_ok(h.run(acquire("a", 2, true)), Outcome::kQueued);
    raft::Index delay_start = h.peek_index();
    expect_ok(h.run(ExpireLease{1, 0}), Outcome::kOk);
    expect_ok(h.run(RevokeLease{2}), Outcome::kOk);
    CommandResult r = h.run(EndLockDelay{"a", delay_start});
    EXPECT_TRUE(events_of<LockGrantedEvent>(r).empty());
    EXPECT_FALSE(h.machine.get_lock("a").held);
    EXPECT_EQ(h.machine.get_lock("a").waiters, 0u);
  }
  {
    SCOPED_TRACE("an ending lease that holds one lock and waits for another");
    MachineHarness h;
    for (LeaseId id = 1; id <= 3; ++id) expect_ok(h.run(lease(id)), Outcome::kOk);
    // Lease 1 holds "a" and waits for "b"; lease 2 holds "b" and waits for "a".
    expect_ok(h.run(acquire("a", 1)), Outcome::kGranted);
    expect_ok(h.run(acquire("b", 2)), Outcome::kGranted);
    expect_ok(h.run(acquire("a", 2, true)), Outcome::kQueued);
    expect_ok(h.run(acquire("b", 1, true)), Outcome::kQueued);
    expect_ok(h.run(acquire("b", 3, true)), Outcome::kQueued);
    // Lease 2 ends: it leaves "a"'s queue, and "b" passes to lease 1, the first live waiter.
    raft::Index at = h.peek_index();
    expect_ok(h.run(RevokeLease{2}), Outcome::kOk);
    EXPECT_EQ(h.machine.get_lock("a").holder->lease_id, 1u);
    EXPECT_EQ(h.machine.get_lock("a").waiters, 0u);
    EXPECT_EQ(h.machine.get_lock("b").holder->lease_id, 1u);
    EXPECT_EQ(h.machine.get_lock("b").fencing_token, std::optional<FencingToken>(at));
    EXPECT_EQ(h.machine.lock_waiters("b"), std::vector<LeaseId>{3});
    ASSERT_TRUE(h.machine.check_invariants().ok());
  }
}

TEST(Scenario, StaleEndLockDelayDoesNotShortenALaterDelay) {
  MachineHarness h;
  expect_ok(h.run(lease(1)), Outcome::kOk);
  expect_ok(h.run(acquire("a", 1, false, 1000)), Outcome::kGranted);
  raft::Index first_delay = h.peek_index();
  expect_ok(h.run(ExpireLease{1, 0}), Outcome::kOk);
  expect_ok(h.run(EndLockDelay{"a", first_delay}), Outcome::kOk);
  expect_ok(h.run(lease(2)), Outcome::kOk);
  expect_ok(h.run(acquire("a", 2, false, 1000)), Outcome::kGranted);
  raft::Index second_delay = h.peek_index();
  expect_ok(h.run(ExpireLease{2, 0}), Outcome::kOk);
  // A duplicate of the first delay's end arrives late.
  expect_ok(h.run(EndLockDelay{"a", first_delay}), Outcome::kOk);
  EXPECT_TRUE(h.machine.get_lock("a").in_lock_delay);
  expect_ok(h.run(EndLockDelay{"a", second_delay}), Outcome::kOk);
  EXPECT_FALSE(h.machine.get_lock("a").in_lock_delay);
}

TEST(Scenario, IdempotentRetries) {
  MachineHarness h;
  expect_ok(h.run(lease(1)), Outcome::kOk);
  expect_ok(h.run(acquire("a", 1)), Outcome::kGranted);
  FencingToken token = h.last_index();
  std::string state = h.machine.snapshot();
  for (int retry = 0; retry < 3; ++retry) {
    CommandResult r = h.run(acquire("a", 1));
    expect_ok(r, Outcome::kGranted);
    EXPECT_EQ(r.lock->fencing_token, std::optional<FencingToken>(token));
    CommandResult again = h.run(lease(1));
    expect_ok(again, Outcome::kOk);
    EXPECT_FALSE(again.lease_created);
  }
  EXPECT_EQ(h.machine.snapshot(), state);
}

TEST(Scenario, ElectionLifecycle) {
  MachineHarness h;
  for (LeaseId id = 1; id <= 3; ++id) expect_ok(h.run(lease(id)), Outcome::kOk);
  expect_ok(h.run(campaign("e", 1, "one")), Outcome::kGranted);
  FencingToken t1 = h.last_index();
  expect_ok(h.run(campaign("e", 2, "two", true)), Outcome::kQueued);
  expect_ok(h.run(campaign("e", 3, "three", true)), Outcome::kQueued);
  expect_ok(h.run(campaign("e", 3, "three-b", true)), Outcome::kQueued);  // keeps place, new value
  EXPECT_EQ(h.machine.election_candidates("e"), (std::vector<LeaseId>{2, 3}));

  raft::Index proclaimed = h.peek_index();
  expect_ok(h.run(Proclaim{"e", 1, t1, "uno"}), Outcome::kOk);
  EXPECT_EQ(h.machine.get_election("e").revision, proclaimed);

  // The leader's lease expires: the next candidate takes over in the same entry.
  raft::Index expired = h.peek_index();
  CommandResult r = h.run(ExpireLease{1, 0});
  auto changes = events_of<ElectionChangedEvent>(r);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0],
            (ElectionChangedEvent{"e", ElectionLeaderView{"two", 2, expired}, expired}));
  EXPECT_EQ(h.machine.get_election("e").leader, (ElectionLeaderView{"two", 2, expired}));
  EXPECT_EQ(h.run(Proclaim{"e", 1, t1, "late"}).outcome, Outcome::kNotLeader);

  raft::Index resigned = h.peek_index();
  expect_ok(h.run(Resign{"e", 2, expired}), Outcome::kOk);
  EXPECT_EQ(h.machine.get_election("e").leader, (ElectionLeaderView{"three-b", 3, resigned}));

  // No successor: leader null and a revision bump observers can see.
  raft::Index last = h.peek_index();
  r = h.run(ExpireLease{3, 0});
  changes = events_of<ElectionChangedEvent>(r);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0], (ElectionChangedEvent{"e", std::nullopt, last}));
  ElectionView v = h.machine.get_election("e");
  EXPECT_FALSE(v.leader.has_value());
  EXPECT_EQ(v.revision, last);
  EXPECT_GT(v.revision, resigned);

  // A never-used election reads as no leader at revision 0.
  EXPECT_EQ(h.machine.get_election("never"), (ElectionView{"never", std::nullopt, 0}));
}

TEST(Scenario, QueriesOnNeverUsedObjects) {
  MachineHarness h;
  EXPECT_EQ(h.machine.get_lock("x"),
            (LockView{"x", false, std::nullopt, std::nullopt, 0, 0, false}));
  EXPECT_TRUE(h.machine.list_locks("").empty());
  EXPECT_FALSE(h.machine.get_lease(1).has_value());
  EXPECT_TRUE(h.machine.all_lease_ids().empty());
  EXPECT_EQ(h.machine.last_modified_index(), 0u);
}

TEST(Scenario, ListLocksByPrefixReturnsHeldLocksSorted) {
  MachineHarness h;
  expect_ok(h.run(lease(1)), Outcome::kOk);
  for (const char* name : {"db:b", "db:a", "dc", "d", "db:c", "web"}) {
    expect_ok(h.run(acquire(name, 1)), Outcome::kGranted);
  }
  expect_ok(h.run(Release{"db:c", 1, *h.machine.get_lock("db:c").fencing_token}), Outcome::kOk);
  std::vector<std::string> names;
  for (const auto& v : h.machine.list_locks("db:")) names.push_back(v.name);
  EXPECT_EQ(names, (std::vector<std::string>{"db:a", "db:b"}));
  names.clear();
  for (const auto& v : h.machine.list_locks("d")) names.push_back(v.name);
  EXPECT_EQ(names, (std::vector<std::string>{"d", "db:a", "db:b", "dc"}));
  EXPECT_EQ(h.machine.list_locks("").size(), 5u);
  EXPECT_TRUE(h.machine.list_locks("zzz").empty());
  for (const auto& v : h.machine.list_locks("")) {
    EXPECT_TRUE(v.held);
    EXPECT_EQ(v, h.machine.get_lock(v.name));
  }
}

TEST(Scenario, GarbageCommandBytesChangeNothing) {
  MachineHarness h;
  expect_ok(h.run(lease(1)), Outcome::kOk);
  expect_ok(h.run(acquire("a", 1)), Outcome::kGranted);
  std::string before = h.machine.snapshot();
  std::string valid = encode_command(Release{"a", 1, 2});
  const std::vector<std::string> garbage = {"",
                                            "\x00",
                                            "\xff\xff\xff",
                                            "{\"op\":\"release\"}",
                                            valid.substr(0, valid.size() - 1),
                                            valid + "\x01",
                                            std::string(1000, '\x92')};
  for (const auto& bytes : garbage) {
    std::any any = h.machine.apply(h.next_index++, bytes);
    const CommandResult* r = std::any_cast<CommandResult>(&any);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->outcome, Outcome::kInvalid);
    EXPECT_FALSE(r->message.empty());
    EXPECT_TRUE(r->events.empty());
    EXPECT_EQ(h.machine.snapshot(), before);
  }
  // The machine still works afterwards.
  expect_ok(h.run(Release{"a", 1, 2}), Outcome::kOk);
}

}  // namespace
}  // namespace raftlock::lockservice
