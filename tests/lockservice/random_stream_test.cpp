// Property test: seeded random command streams. After every entry: tokens strictly increase per
// lock/election, at most one holder whose lease is alive, every queued lease alive, grants only to
// live leases at the granting index; periodically a snapshot/restore twin must stay identical.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "machine_harness.h"

namespace raftlock::lockservice {
namespace {

using namespace testing_support;

const std::vector<std::string> kLocks = {"l1", "l2", "l3", "l4"};
const std::vector<std::string> kElections = {"e1", "e2", "e3"};
constexpr LeaseId kMaxLease = 8;

class CommandGenerator {
 public:
  CommandGenerator(uint32_t seed, const LockStateMachine& machine)
      : rng_(seed), machine_(machine) {}

  // Mostly well-formed commands over small name/lease pools (so they collide), some with stale
  // tokens, some out of range; returns encoded bytes, occasionally garbage.
  std::string next() {
    last_was_invalid_ = false;
    if (pick(50) == 0) {
      last_was_invalid_ = true;
      return garbage();
    }
    if (pick(60) == 0) {
      last_was_invalid_ = true;
      return encode_command(acquire("bad name", any_lease()));
    }
    return encode_command(next_command());
  }
  // Whether the last next() was deliberately invalid (garbage bytes or an invalid name).
  bool last_was_invalid() const { return last_was_invalid_; }

 private:
  uint32_t pick(uint32_t n) { return static_cast<uint32_t>(rng_() % n); }
  LeaseId any_lease() { return 1 + pick(kMaxLease); }
  const std::string& any_lock() { return kLocks[pick(kLocks.size())]; }
  const std::string& any_election() { return kElections[pick(kElections.size())]; }
  int64_t delay() { return pick(3) == 0 ? 0 : 100 * (1 + pick(5)); }
  std::optional<int64_t> maybe_ttl() {
    if (pick(6) != 0) return std::nullopt;
    return pick(2) == 0 ? 1000 : 2000;
  }

  FencingToken lock_token(const std::string& name) {
    LockView v = machine_.get_lock(name);
    if (v.fencing_token && pick(5) != 0) return *v.fencing_token;
    return pick(2) == 0 ? 0 : pick(static_cast<uint32_t>(machine_.last_modified_index() + 2));
  }
  LeaseId lock_holder_or_any(const std::string& name) {
    LockView v = machine_.get_lock(name);
    if (v.holder && pick(5) != 0) return v.holder->lease_id;
    return any_lease();
  }
  FencingToken election_token(const std::string& name) {
    ElectionView v = machine_.get_election(name);
    if (v.leader && pick(5) != 0) return v.leader->fencing_token;
    return pick(static_cast<uint32_t>(machine_.last_modified_index() + 2));
  }
  LeaseId election_leader_or_any(const std::string& name) {
    ElectionView v = machine_.get_election(name);
    if (v.leader && pick(5) != 0) return v.leader->lease_id;
    return any_lease();
  }

  Command next_command() {
    switch (pick(16)) {
      case 0:
      case 1:
        return CreateLease{any_lease(), pick(3) == 0 ? 2000 : 1000};
      case 2:
        return RevokeLease{any_lease()};
      case 3:
        return ExpireLease{any_lease(), 0};
      case 4:
      case 5:
      case 6: {
        Acquire a = acquire(any_lock(), any_lease(), pick(3) != 0, delay());
        a.create_lease_ttl_ms = maybe_ttl();
        return a;
      }
      case 7:
        return CancelWait{any_lock(), any_lease()};
      case 8:
      case 9: {
        const std::string& name = any_lock();
        return Release{name, lock_holder_or_any(name), lock_token(name)};
      }
      case 10: {
        auto delayed = machine_.locks_in_lock_delay();
        if (!delayed.empty() && pick(4) != 0) {
          const auto& d = delayed[pick(delayed.size())];
          return EndLockDelay{d.name, pick(4) == 0 ? raft::Index{0} : d.started_index};
        }
        return EndLockDelay{any_lock(),
                            pick(static_cast<uint32_t>(machine_.last_modified_index() + 1))};
      }
      case 11:
      case 12: {
        Campaign c =
            campaign(any_election(), any_lease(), "v" + std::to_string(pick(4)), pick(3) != 0);
        c.create_lease_ttl_ms = maybe_ttl();
        return c;
      }
      case 13: {
        const std::string& name = any_election();
        return Proclaim{name, election_leader_or_any(name), election_token(name),
                        "p" + std::to_string(pick(4))};
      }
      case 14: {
        const std::string& name = any_election();
        return Resign{name, election_leader_or_any(name), election_token(name)};
      }
      default:
        return CancelCampaign{any_election(), any_lease()};
    }
  }

  std::string garbage() {
    std::string bytes(pick(20), '\0');
    for (char& c : bytes) c = static_cast<char>(pick(256));
    return bytes;
  }

  std::mt19937 rng_;
  const LockStateMachine& machine_;
  bool last_was_invalid_ = false;
};

struct PropertyChecker {
  std::map<std::string, FencingToken> last_lock_token;
  std::map<std::string, FencingToken> last_election_token;
  std::map<std::string, raft::Index> last_lock_revision;
  std::map<std::string, raft::Index> last_election_revision;
  uint64_t grants = 0, delays = 0, election_changes = 0;

  void check(const LockStateMachine& m, raft::Index at, const CommandResult& r) {
    ASSERT_TRUE(m.check_invariants().ok()) << m.check_invariants().error().message;
    std::map<LeaseId, std::set<std::string>> held_by, led_by;
    for (const auto& name : kLocks) {
      LockView v = m.get_lock(name);
      ASSERT_EQ(v.held, v.holder.has_value());
      ASSERT_GE(v.revision, last_lock_revision[name]) << "revision went backwards";
      last_lock_revision[name] = v.revision;
      if (v.holder) {
        ASSERT_TRUE(m.lease_exists(v.holder->lease_id)) << "holder's lease is gone at " << at;
        ASSERT_EQ(v.fencing_token, v.holder->fencing_token);
        ASSERT_GE(v.holder->fencing_token, last_lock_token[name]);
        ASSERT_LE(v.holder->fencing_token, at);
        held_by[v.holder->lease_id].insert(name);
        ASSERT_FALSE(v.in_lock_delay);
      }
      std::set<LeaseId> queued;
      for (LeaseId waiter : m.lock_waiters(name)) {
        ASSERT_TRUE(m.lease_exists(waiter)) << "queued lease is gone at " << at;
        ASSERT_TRUE(queued.insert(waiter).second) << "queued twice";
        ASSERT_FALSE(v.holder && v.holder->lease_id == waiter);
      }
      ASSERT_EQ(v.waiters, queued.size());
      if (!v.held && !v.in_lock_delay) {
        ASSERT_EQ(v.waiters, 0u) << "free lock with waiters";
      }
    }
    for (const auto& name : kElections) {
      ElectionView v = m.get_election(name);
      ASSERT_GE(v.revision, last_election_revision[name]);
      last_election_revision[name] = v.revision;
      if (v.leader) {
        ASSERT_TRUE(m.lease_exists(v.leader->lease_id));
        ASSERT_GE(v.leader->fencing_token, last_election_token[name]);
        led_by[v.leader->lease_id].insert(name);
      }
      for (LeaseId candidate : m.election_candidates(name)) {
        ASSERT_TRUE(m.lease_exists(candidate));
      }
    }
    for (LeaseId id : m.all_lease_ids()) {
      auto lease = m.get_lease(id);
      ASSERT_TRUE(lease.has_value());
      std::vector<std::string> expected_locks(held_by[id].begin(), held_by[id].end());
      std::vector<std::string> expected_elections(led_by[id].begin(), led_by[id].end());
      ASSERT_EQ(lease->locks, expected_locks);
      ASSERT_EQ(lease->elections, expected_elections);
    }
    for (const auto& event : r.events) {
      if (auto* g = std::get_if<LockGrantedEvent>(&event)) {
        ASSERT_EQ(g->fencing_token, at) << "a grant's token is its entry's index";
        ASSERT_GT(g->fencing_token, last_lock_token[g->name]) << "token did not increase";
        last_lock_token[g->name] = g->fencing_token;
        ASSERT_TRUE(m.lease_exists(g->lease_id)) << "granted to a lease that ended";
        ++grants;
      } else if (std::get_if<LockDelayStartedEvent>(&event)) {
        ++delays;
      } else if (auto* e = std::get_if<ElectionChangedEvent>(&event)) {
        ASSERT_EQ(e->revision, at);
        if (e->leader) {
          ASSERT_GE(e->leader->fencing_token, last_election_token[e->name]);
          ASSERT_TRUE(m.lease_exists(e->leader->lease_id));
          last_election_token[e->name] = e->leader->fencing_token;
        }
        ++election_changes;
      }
    }
    // A lock held now with a token above the last recorded grant would mean a grant with no event.
    for (const auto& name : kLocks) {
      LockView v = m.get_lock(name);
      if (v.holder) {
        ASSERT_EQ(v.holder->fencing_token, last_lock_token[name]);
      }
    }
  }
};

TEST(RandomStream, InvariantsHoldAtEveryIndexAndRestoredTwinsAgree) {
  constexpr int kSeeds = 6;
  constexpr int kCommandsPerSeed = 2500;
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    MachineHarness h;
    CommandGenerator generator(seed, h.machine);
    PropertyChecker checker;
    std::optional<MachineHarness> twin;  // restored from a snapshot, fed the same entries
    std::map<Outcome, int> outcomes;
    for (int i = 0; i < kCommandsPerSeed; ++i) {
      if (i % 500 == 250) {
        twin.emplace();
        ASSERT_TRUE(twin->machine.restore(h.machine.snapshot()).ok());
        twin->next_index = h.next_index;
      }
      std::string bytes = generator.next();
      raft::Index at = h.peek_index();
      std::string before;
      if (generator.last_was_invalid()) before = h.machine.snapshot();
      CommandResult r = std::any_cast<CommandResult>(h.machine.apply(h.next_index++, bytes));
      ++outcomes[r.outcome];
      if (generator.last_was_invalid()) {
        ASSERT_EQ(r.outcome, Outcome::kInvalid);
        ASSERT_EQ(h.machine.snapshot(), before) << "an invalid command changed the state";
      }
      ASSERT_NO_FATAL_FAILURE(checker.check(h.machine, at, r));
      if (twin) {
        CommandResult twin_result =
            std::any_cast<CommandResult>(twin->machine.apply(twin->next_index++, bytes));
        ASSERT_EQ(r, twin_result) << "diverged at index " << at;
        if (i % 50 == 0) {
          ASSERT_EQ(h.machine.snapshot(), twin->machine.snapshot());
        }
      }
    }
    // The stream exercised the interesting paths, not just failures.
    for (Outcome o : {Outcome::kOk, Outcome::kGranted, Outcome::kQueued, Outcome::kLockHeld,
                      Outcome::kNotHolder, Outcome::kNotLeader, Outcome::kLeaseNotFound,
                      Outcome::kLeaseExists, Outcome::kInvalid}) {
      EXPECT_GT(outcomes[o], 0) << outcome_name(o);
    }
    EXPECT_GT(checker.grants, 100u);
    EXPECT_GT(checker.delays, 5u);
    EXPECT_GT(checker.election_changes, 50u);
  }
}

}  // namespace
}  // namespace raftlock::lockservice
