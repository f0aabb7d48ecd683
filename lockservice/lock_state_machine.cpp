#include "lockservice/lock_state_machine.h"

#include <algorithm>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "lockservice/json_fields.h"
#include "lockservice/snapshot_codec.h"
#include "lockservice/validation.h"

namespace raftlock::lockservice {

const char* outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kGranted:
      return "granted";
    case Outcome::kQueued:
      return "queued";
    case Outcome::kLockHeld:
      return "lock_held";
    case Outcome::kNotHolder:
      return "not_holder";
    case Outcome::kNotLeader:
      return "not_leader";
    case Outcome::kLeaseNotFound:
      return "lease_not_found";
    case Outcome::kLeaseExists:
      return "lease_exists";
    case Outcome::kInvalid:
      return "invalid";
  }
  return "unknown";
}

namespace {

using raft::Index;
using NameSet = std::set<std::string, std::less<>>;

struct LockHolder {
  LeaseId lease_id = 0;
  std::string owner;
  FencingToken fencing_token = 0;
  int64_t lock_delay_ms = 0;  // applied if this lease expires while holding
};

struct LockWaiter {
  LeaseId lease_id = 0;
  std::string owner;
  int64_t lock_delay_ms = 0;
};

struct LockDelay {
  int64_t delay_ms = 0;
  Index started_index = 0;
};

struct LockRecord {
  std::optional<LockHolder> holder;
  std::vector<LockWaiter> waiters;  // FIFO; only live leases, each at most once
  std::optional<LockDelay> delay;   // set only while free after a holder's lease expired
  Index revision = 0;
  // The (lease, token) of the last explicit release, so a retried release answers released.
  LeaseId last_release_lease = 0;
  FencingToken last_release_token = 0;
};

struct ElectionLeader {
  LeaseId lease_id = 0;
  std::string value;
  FencingToken fencing_token = 0;
};

struct Candidate {
  LeaseId lease_id = 0;
  std::string value;
};

struct ElectionRecord {
  std::optional<ElectionLeader> leader;
  std::vector<Candidate> candidates;  // FIFO; only live leases, each at most once
  Index revision = 0;
};

// Back-references are derived from locks and elections (never serialised).
struct LeaseRecord {
  int64_t ttl_ms = 0;
  Index created_index = 0;
  Index revision = 0;
  NameSet locks_held;
  NameSet locks_waiting;
  NameSet elections_led;
  NameSet campaigns;
};

}  // namespace

struct LockStateMachine::State {
  Index last_modified_index = 0;
  std::map<LeaseId, LeaseRecord> leases;
  std::map<std::string, LockRecord, std::less<>> locks;
  std::map<std::string, ElectionRecord, std::less<>> elections;
};

namespace {

using State = LockStateMachine::State;
using nlohmann::json;

// ---------------------------------------------------------------- views

LockView make_lock_view(std::string_view name, const LockRecord* lock) {
  LockView view;
  view.name = std::string(name);
  if (lock == nullptr) return view;
  if (lock->holder) {
    view.held = true;
    view.holder =
        LockHolderView{lock->holder->lease_id, lock->holder->owner, lock->holder->fencing_token};
    view.fencing_token = lock->holder->fencing_token;
  }
  view.waiters = lock->waiters.size();
  view.revision = lock->revision;
  view.in_lock_delay = lock->delay.has_value();
  return view;
}

std::optional<ElectionLeaderView> make_leader_view(const ElectionRecord& election) {
  if (!election.leader) return std::nullopt;
  return ElectionLeaderView{election.leader->value, election.leader->lease_id,
                            election.leader->fencing_token};
}

ElectionView make_election_view(std::string_view name, const ElectionRecord* election) {
  ElectionView view;
  view.name = std::string(name);
  if (election == nullptr) return view;
  view.leader = make_leader_view(*election);
  view.revision = election->revision;
  return view;
}

LeaseView make_lease_view(LeaseId lease_id, const LeaseRecord& lease) {
  LeaseView view;
  view.lease_id = lease_id;
  view.ttl_ms = lease.ttl_ms;
  view.created_index = lease.created_index;
  view.revision = lease.revision;
  view.locks.assign(lease.locks_held.begin(), lease.locks_held.end());
  view.elections.assign(lease.elections_led.begin(), lease.elections_led.end());
  return view;
}

template <typename Map, typename Key>
auto* find_in(Map& map, const Key& key) {
  auto it = map.find(key);
  return it == map.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------- invariants

Status broken(std::string message) {
  return make_error(ErrorCode::kCorrupt, std::move(message));
}

Status check_state(const State& s) {
  const Index last = s.last_modified_index;
  for (const auto& [id, lease] : s.leases) {
    std::string what = "lease " + std::to_string(id);
    if (!valid_lease_id(id)) return broken(what + ": invalid id");
    if (!valid_ttl_ms(lease.ttl_ms)) return broken(what + ": ttl_ms out of range");
    if (lease.created_index == 0 || lease.created_index > lease.revision || lease.revision > last) {
      return broken(what + ": created_index/revision out of order");
    }
    for (const auto& name : lease.locks_held) {
      const LockRecord* lock = find_in(s.locks, name);
      if (!lock || !lock->holder || lock->holder->lease_id != id) {
        return broken(what + " claims to hold lock " + name);
      }
    }
    for (const auto& name : lease.locks_waiting) {
      const LockRecord* lock = find_in(s.locks, name);
      if (!lock || std::none_of(lock->waiters.begin(), lock->waiters.end(),
                                [&](const LockWaiter& w) { return w.lease_id == id; })) {
        return broken(what + " claims to wait for lock " + name);
      }
    }
    for (const auto& name : lease.elections_led) {
      const ElectionRecord* election = find_in(s.elections, name);
      if (!election || !election->leader || election->leader->lease_id != id) {
        return broken(what + " claims to lead election " + name);
      }
    }
    for (const auto& name : lease.campaigns) {
      const ElectionRecord* election = find_in(s.elections, name);
      if (!election || std::none_of(election->candidates.begin(), election->candidates.end(),
                                    [&](const Candidate& c) { return c.lease_id == id; })) {
        return broken(what + " claims to campaign in election " + name);
      }
    }
  }
  for (const auto& [name, lock] : s.locks) {
    std::string what = "lock " + name;
    if (!valid_name(name)) return broken(what + ": invalid name");
    if (lock.revision == 0 || lock.revision > last) return broken(what + ": revision out of range");
    if (lock.holder) {
      const LeaseRecord* lease = find_in(s.leases, lock.holder->lease_id);
      if (!lease || !lease->locks_held.contains(name)) {
        return broken(what + ": holder lease is not alive or does not know it holds the lock");
      }
      if (lock.holder->fencing_token == 0 || lock.holder->fencing_token > lock.revision) {
        return broken(what + ": fencing token out of range");
      }
      if (!valid_owner(lock.holder->owner) || !valid_lock_delay_ms(lock.holder->lock_delay_ms)) {
        return broken(what + ": holder owner or lock_delay_ms invalid");
      }
      if (lock.delay) return broken(what + ": held and in lock-delay at once");
    }
    if (lock.delay) {
      if (lock.delay->delay_ms <= 0 || !valid_lock_delay_ms(lock.delay->delay_ms) ||
          lock.delay->started_index == 0 || lock.delay->started_index > lock.revision) {
        return broken(what + ": lock-delay out of range");
      }
    }
    if (!lock.holder && !lock.delay && !lock.waiters.empty()) {
      return broken(what + ": free and grantable but has waiters");
    }
    std::set<LeaseId> seen;
    for (const auto& waiter : lock.waiters) {
      if (!seen.insert(waiter.lease_id).second) return broken(what + ": lease queued twice");
      if (lock.holder && lock.holder->lease_id == waiter.lease_id) {
        return broken(what + ": holder is also queued");
      }
      const LeaseRecord* lease = find_in(s.leases, waiter.lease_id);
      if (!lease || !lease->locks_waiting.contains(name)) {
        return broken(what + ": queued lease is not alive or does not know it waits");
      }
      if (!valid_owner(waiter.owner) || !valid_lock_delay_ms(waiter.lock_delay_ms)) {
        return broken(what + ": waiter owner or lock_delay_ms invalid");
      }
    }
  }
  for (const auto& [name, election] : s.elections) {
    std::string what = "election " + name;
    if (!valid_name(name)) return broken(what + ": invalid name");
    if (election.revision == 0 || election.revision > last) {
      return broken(what + ": revision out of range");
    }
    if (election.leader) {
      const LeaseRecord* lease = find_in(s.leases, election.leader->lease_id);
      if (!lease || !lease->elections_led.contains(name)) {
        return broken(what + ": leader lease is not alive or does not know it leads");
      }
      if (election.leader->fencing_token == 0 ||
          election.leader->fencing_token > election.revision) {
        return broken(what + ": fencing token out of range");
      }
      if (!valid_value(election.leader->value)) return broken(what + ": value too long");
    } else if (!election.candidates.empty()) {
      return broken(what + ": no leader but candidates waiting");
    }
    std::set<LeaseId> seen;
    for (const auto& candidate : election.candidates) {
      if (!seen.insert(candidate.lease_id).second) return broken(what + ": lease queued twice");
      if (election.leader && election.leader->lease_id == candidate.lease_id) {
        return broken(what + ": leader is also a candidate");
      }
      const LeaseRecord* lease = find_in(s.leases, candidate.lease_id);
      if (!lease || !lease->campaigns.contains(name)) {
        return broken(what + ": candidate lease is not alive or does not know it campaigns");
      }
      if (!valid_value(candidate.value)) return broken(what + ": candidate value too long");
    }
  }
  return Ok{};
}

// ---------------------------------------------------------------- apply

// One apply of one command at one index: validates, mutates, records the result and events.
class Applier {
 public:
  Applier(State& state, Index index) : s_(state), index_(index) {}

  bool changed() const { return changed_; }
  CommandResult take_result() { return std::move(result_); }

  void operator()(const CreateLease& c) {
    if (!require(check_lease_id(c.lease_id)) || !require(check_ttl_ms(c.ttl_ms))) return;
    if (!ensure_lease(c.lease_id, c.ttl_ms)) return;
    result_.outcome = Outcome::kOk;
  }

  void operator()(const RevokeLease& c) {
    if (!require(check_lease_id(c.lease_id))) return;
    if (!require_lease(c.lease_id)) return;
    end_lease(c.lease_id, /*expired=*/false);
    result_.outcome = Outcome::kOk;
  }

  void operator()(const ExpireLease& c) {
    if (!require(check_lease_id(c.lease_id))) return;
    LeaseRecord* lease = require_lease(c.lease_id);
    if (!lease) return;
    if (c.created_index != 0 && c.created_index != lease->created_index) {
      fail(Outcome::kLeaseNotFound, "lease " + std::to_string(c.lease_id) +
                                        " was created at index " +
                                        std::to_string(lease->created_index) + ", not " +
                                        std::to_string(c.created_index) + " (stale expiry)");
      return;
    }
    end_lease(c.lease_id, /*expired=*/true);
    result_.outcome = Outcome::kOk;
  }

  void operator()(const Acquire& c) {
    if (!require(check_name(c.name)) || !require(check_lease_id(c.lease_id)) ||
        !require(check_owner(c.owner)) || !require(check_lock_delay_ms(c.lock_delay_ms))) {
      return;
    }
    if (c.create_lease_ttl_ms && !require(check_ttl_ms(*c.create_lease_ttl_ms))) return;
    if (c.create_lease_ttl_ms ? !ensure_lease(c.lease_id, *c.create_lease_ttl_ms)
                              : !require_lease(c.lease_id)) {
      return;
    }
    LockRecord* existing = find_in(s_.locks, c.name);
    if (existing == nullptr || (!existing->holder && !existing->delay)) {
      LockRecord& lock = s_.locks[c.name];
      grant_lock(c.name, lock, LockWaiter{c.lease_id, c.owner, c.lock_delay_ms});
      result_.outcome = Outcome::kGranted;
    } else if (existing->holder && existing->holder->lease_id == c.lease_id) {
      result_.outcome = Outcome::kGranted;  // idempotent: the same token
    } else if (c.wait) {
      auto queued = std::find_if(existing->waiters.begin(), existing->waiters.end(),
                                 [&](const LockWaiter& w) { return w.lease_id == c.lease_id; });
      if (queued == existing->waiters.end()) {
        existing->waiters.push_back(LockWaiter{c.lease_id, c.owner, c.lock_delay_ms});
        s_.leases.at(c.lease_id).locks_waiting.insert(c.name);
        existing->revision = index_;
        mark_changed();
      }
      result_.outcome = Outcome::kQueued;
    } else {
      fail(Outcome::kLockHeld, held_message(c.name, *existing));
    }
    result_.lock = make_lock_view(c.name, find_in(s_.locks, c.name));
    result_.lease = make_lease_view(c.lease_id, s_.leases.at(c.lease_id));
  }

  void operator()(const CancelWait& c) {
    if (!require(check_name(c.name)) || !require(check_lease_id(c.lease_id))) return;
    if (!require_lease(c.lease_id)) return;
    LockRecord* lock = find_in(s_.locks, c.name);
    if (lock && lock->holder && lock->holder->lease_id == c.lease_id) {
      result_.outcome = Outcome::kGranted;
    } else {
      if (lock) remove_lock_waiter(c.name, *lock, c.lease_id);
      fail(Outcome::kLockHeld,
           lock ? held_message(c.name, *lock) : "lock " + c.name + " is not held");
    }
    result_.lock = make_lock_view(c.name, lock);
  }

  void operator()(const Release& c) {
    if (!require(check_name(c.name)) || !require(check_lease_id(c.lease_id))) return;
    LockRecord* lock = find_in(s_.locks, c.name);
    if (lock && lock->holder && lock->holder->lease_id == c.lease_id &&
        lock->holder->fencing_token == c.fencing_token) {
      release_holder(c.name, *lock);
      lock->last_release_lease = c.lease_id;
      lock->last_release_token = c.fencing_token;
      grant_next_waiter(c.name, *lock);
      result_.outcome = Outcome::kOk;
    } else if (lock && lock->last_release_token == c.fencing_token &&
               lock->last_release_lease == c.lease_id) {
      // A retry of the release that already took effect: same answer, nothing changes.
      result_.outcome = Outcome::kOk;
      result_.message = "lock " + c.name + " was already released by this lease and token";
    } else {
      fail(Outcome::kNotHolder, "lease " + std::to_string(c.lease_id) + " with fencing token " +
                                    std::to_string(c.fencing_token) + " does not hold lock " +
                                    c.name);
    }
    result_.lock = make_lock_view(c.name, lock);
  }

  void operator()(const EndLockDelay& c) {
    if (!require(check_name(c.name))) return;
    LockRecord* lock = find_in(s_.locks, c.name);
    result_.outcome = Outcome::kOk;
    if (lock == nullptr || !lock->delay ||
        (c.started_index != 0 && c.started_index != lock->delay->started_index)) {
      result_.message = "lock " + c.name + " is not in that lock-delay";
    } else {
      lock->delay.reset();
      lock->revision = index_;
      mark_changed();
      grant_next_waiter(c.name, *lock);
    }
    result_.lock = make_lock_view(c.name, lock);
  }

  void operator()(const Campaign& c) {
    if (!require(check_name(c.name)) || !require(check_lease_id(c.lease_id)) ||
        !require(check_value(c.value))) {
      return;
    }
    if (c.create_lease_ttl_ms && !require(check_ttl_ms(*c.create_lease_ttl_ms))) return;
    if (c.create_lease_ttl_ms ? !ensure_lease(c.lease_id, *c.create_lease_ttl_ms)
                              : !require_lease(c.lease_id)) {
      return;
    }
    ElectionRecord* existing = find_in(s_.elections, c.name);
    if (existing == nullptr || !existing->leader) {
      ElectionRecord& election = s_.elections[c.name];
      make_leader(c.name, election, Candidate{c.lease_id, c.value});
      result_.outcome = Outcome::kGranted;
    } else if (existing->leader->lease_id == c.lease_id) {
      result_.outcome = Outcome::kGranted;  // idempotent: the current leadership, unchanged
    } else if (c.wait) {
      auto queued = std::find_if(existing->candidates.begin(), existing->candidates.end(),
                                 [&](const Candidate& w) { return w.lease_id == c.lease_id; });
      if (queued == existing->candidates.end()) {
        existing->candidates.push_back(Candidate{c.lease_id, c.value});
        s_.leases.at(c.lease_id).campaigns.insert(c.name);
        mark_changed();
      } else if (queued->value != c.value) {
        queued->value = c.value;  // keeps its place, campaigns with the latest value
        mark_changed();
      }
      result_.outcome = Outcome::kQueued;
    } else {
      fail(Outcome::kNotLeader, not_leader_message(c.name, existing));
    }
    result_.election = make_election_view(c.name, find_in(s_.elections, c.name));
    result_.lease = make_lease_view(c.lease_id, s_.leases.at(c.lease_id));
  }

  void operator()(const Proclaim& c) {
    if (!require(check_name(c.name)) || !require(check_lease_id(c.lease_id)) ||
        !require(check_value(c.value))) {
      return;
    }
    ElectionRecord* election = find_in(s_.elections, c.name);
    if (is_leader(election, c.lease_id, c.fencing_token)) {
      if (election->leader->value != c.value) {
        election->leader->value = c.value;
        election->revision = index_;
        mark_changed();
        emit_election_changed(c.name, *election);
      }
      result_.outcome = Outcome::kOk;
    } else {
      fail(Outcome::kNotLeader, not_leader_message(c.name, election));
    }
    result_.election = make_election_view(c.name, election);
  }

  void operator()(const Resign& c) {
    if (!require(check_name(c.name)) || !require(check_lease_id(c.lease_id))) return;
    ElectionRecord* election = find_in(s_.elections, c.name);
    if (is_leader(election, c.lease_id, c.fencing_token)) {
      remove_leader(c.name, *election);
      promote_next_candidate(c.name, *election);
      result_.outcome = Outcome::kOk;
    } else {
      fail(Outcome::kNotLeader, not_leader_message(c.name, election));
    }
    result_.election = make_election_view(c.name, election);
  }

  void operator()(const CancelCampaign& c) {
    if (!require(check_name(c.name)) || !require(check_lease_id(c.lease_id))) return;
    if (!require_lease(c.lease_id)) return;
    ElectionRecord* election = find_in(s_.elections, c.name);
    if (election && election->leader && election->leader->lease_id == c.lease_id) {
      result_.outcome = Outcome::kGranted;
    } else {
      if (election) remove_candidate(c.name, *election, c.lease_id);
      fail(Outcome::kNotLeader, not_leader_message(c.name, election));
    }
    result_.election = make_election_view(c.name, election);
  }

 private:
  void mark_changed() { changed_ = true; }

  void fail(Outcome outcome, std::string message) {
    result_.outcome = outcome;
    result_.message = std::move(message);
  }

  // Records an invalid-argument failure; returns whether the check passed.
  bool require(const Status& status) {
    if (status.ok()) return true;
    fail(Outcome::kInvalid, status.error().message);
    return false;
  }

  LeaseRecord* require_lease(LeaseId lease_id) {
    LeaseRecord* lease = find_in(s_.leases, lease_id);
    if (lease == nullptr) {
      fail(Outcome::kLeaseNotFound, "lease " + std::to_string(lease_id) + " does not exist");
    } else {
      result_.lease = make_lease_view(lease_id, *lease);
    }
    return lease;
  }

  // Creates the lease, or accepts an existing one with the same ttl. False (lease_exists) when it
  // exists with another ttl.
  bool ensure_lease(LeaseId lease_id, int64_t ttl_ms) {
    auto [it, inserted] = s_.leases.try_emplace(lease_id);
    LeaseRecord& lease = it->second;
    if (inserted) {
      lease.ttl_ms = ttl_ms;
      lease.created_index = index_;
      lease.revision = index_;
      result_.lease_created = true;
      mark_changed();
    }
    result_.lease = make_lease_view(lease_id, lease);
    if (lease.ttl_ms != ttl_ms) {
      fail(Outcome::kLeaseExists, "lease " + std::to_string(lease_id) + " exists with ttl_ms " +
                                      std::to_string(lease.ttl_ms));
      return false;
    }
    return true;
  }

  static std::string held_message(const std::string& name, const LockRecord& lock) {
    if (lock.holder) {
      return "lock " + name + " is held by lease " + std::to_string(lock.holder->lease_id);
    }
    if (lock.delay) return "lock " + name + " is in lock-delay";
    return "lock " + name + " is not held";
  }

  static std::string not_leader_message(const std::string& name, const ElectionRecord* election) {
    if (election && election->leader) {
      return "election " + name + " is led by lease " + std::to_string(election->leader->lease_id);
    }
    return "election " + name + " has no leader";
  }

  static bool is_leader(const ElectionRecord* election, LeaseId lease_id, FencingToken token) {
    return election && election->leader && election->leader->lease_id == lease_id &&
           election->leader->fencing_token == token;
  }

  void touch_lease(LeaseRecord& lease) { lease.revision = index_; }

  void grant_lock(const std::string& name, LockRecord& lock, const LockWaiter& to) {
    lock.holder = LockHolder{to.lease_id, to.owner, index_, to.lock_delay_ms};
    lock.revision = index_;
    LeaseRecord& lease = s_.leases.at(to.lease_id);
    lease.locks_held.insert(name);
    touch_lease(lease);
    mark_changed();
    result_.events.push_back(LockGrantedEvent{name, to.lease_id, to.owner, index_});
  }

  // Grants a free, grantable lock to the first waiter (always alive: ending leases leave queues).
  void grant_next_waiter(const std::string& name, LockRecord& lock) {
    if (lock.holder || lock.delay || lock.waiters.empty()) return;
    LockWaiter next = std::move(lock.waiters.front());
    lock.waiters.erase(lock.waiters.begin());
    s_.leases.at(next.lease_id).locks_waiting.erase(name);
    grant_lock(name, lock, next);
  }

  void release_holder(const std::string& name, LockRecord& lock) {
    LeaseRecord* lease = find_in(s_.leases, lock.holder->lease_id);
    if (lease) {
      lease->locks_held.erase(name);
      touch_lease(*lease);
    }
    lock.holder.reset();
    lock.revision = index_;
    mark_changed();
  }

  void remove_lock_waiter(const std::string& name, LockRecord& lock, LeaseId lease_id) {
    auto it = std::find_if(lock.waiters.begin(), lock.waiters.end(),
                           [&](const LockWaiter& w) { return w.lease_id == lease_id; });
    if (it == lock.waiters.end()) return;
    lock.waiters.erase(it);
    lock.revision = index_;
    if (LeaseRecord* lease = find_in(s_.leases, lease_id)) lease->locks_waiting.erase(name);
    mark_changed();
  }

  void emit_election_changed(const std::string& name, const ElectionRecord& election) {
    result_.events.push_back(ElectionChangedEvent{name, make_leader_view(election), index_});
  }

  void make_leader(const std::string& name, ElectionRecord& election, const Candidate& who) {
    election.leader = ElectionLeader{who.lease_id, who.value, index_};
    election.revision = index_;
    LeaseRecord& lease = s_.leases.at(who.lease_id);
    lease.elections_led.insert(name);
    touch_lease(lease);
    mark_changed();
    emit_election_changed(name, election);
  }

  void remove_leader(const std::string& name, ElectionRecord& election) {
    if (LeaseRecord* lease = find_in(s_.leases, election.leader->lease_id)) {
      lease->elections_led.erase(name);
      touch_lease(*lease);
    }
    election.leader.reset();
    election.revision = index_;
    mark_changed();
  }

  // After the leader left: the first candidate leads, or the election has no leader (an event
  // either way, so observers see "no leader" transitions too).
  void promote_next_candidate(const std::string& name, ElectionRecord& election) {
    if (election.candidates.empty()) {
      emit_election_changed(name, election);
      return;
    }
    Candidate next = std::move(election.candidates.front());
    election.candidates.erase(election.candidates.begin());
    s_.leases.at(next.lease_id).campaigns.erase(name);
    make_leader(name, election, next);
  }

  void remove_candidate(const std::string& name, ElectionRecord& election, LeaseId lease_id) {
    auto it = std::find_if(election.candidates.begin(), election.candidates.end(),
                           [&](const Candidate& c) { return c.lease_id == lease_id; });
    if (it == election.candidates.end()) return;
    election.candidates.erase(it);
    if (LeaseRecord* lease = find_in(s_.leases, lease_id)) lease->campaigns.erase(name);
    mark_changed();
  }

  // Revoke or expiry: the lease leaves every queue first (so no grant in this entry can go to it),
  // then each lock it held is released (or enters lock-delay on expiry) and each election it led
  // passes to the next candidate.
  void end_lease(LeaseId lease_id, bool expired) {
    LeaseRecord lease = std::move(s_.leases.at(lease_id));
    s_.leases.erase(lease_id);
    mark_changed();

    LeaseEndedEvent ended;
    ended.lease_id = lease_id;
    ended.expired = expired;
    ended.released_locks.assign(lease.locks_held.begin(), lease.locks_held.end());
    ended.resigned_elections.assign(lease.elections_led.begin(), lease.elections_led.end());
    ended.cancelled_lock_waits.assign(lease.locks_waiting.begin(), lease.locks_waiting.end());
    ended.cancelled_campaigns.assign(lease.campaigns.begin(), lease.campaigns.end());
    result_.released = ended.released_locks;
    result_.resigned = ended.resigned_elections;
    result_.lease = make_lease_view(lease_id, lease);
    result_.events.push_back(std::move(ended));

    for (const auto& name : lease.locks_waiting) {
      remove_lock_waiter(name, s_.locks.at(name), lease_id);
    }
    for (const auto& name : lease.campaigns) {
      remove_candidate(name, s_.elections.at(name), lease_id);
    }
    for (const auto& name : lease.locks_held) {
      LockRecord& lock = s_.locks.at(name);
      int64_t delay_ms = lock.holder->lock_delay_ms;
      release_holder(name, lock);
      if (expired && delay_ms > 0) {
        lock.delay = LockDelay{delay_ms, index_};
        result_.events.push_back(LockDelayStartedEvent{name, delay_ms, index_});
      } else {
        grant_next_waiter(name, lock);
      }
    }
    for (const auto& name : lease.elections_led) {
      ElectionRecord& election = s_.elections.at(name);
      remove_leader(name, election);
      promote_next_candidate(name, election);
    }
  }

  State& s_;
  Index index_;
  bool changed_ = false;
  CommandResult result_;
};

// ---------------------------------------------------------------- snapshot format 1 (MessagePack)

// Format 1 builds a DOM of the whole state, which at 100k locks costs several times the encoded
// size in transient heap. It is still read (data dirs and followers written by older versions) and
// can be written for tests (snapshot_v1_msgpack); snapshot() writes format 2.
constexpr int kSnapshotFormat = 1;
constexpr ErrorCode kCorrupt = ErrorCode::kCorrupt;

json encode_state(const State& s) {
  json leases = json::array();
  for (const auto& [id, lease] : s.leases) {
    leases.push_back({{"lease_id", id},
                      {"ttl_ms", lease.ttl_ms},
                      {"created_index", lease.created_index},
                      {"revision", lease.revision}});
  }
  json locks = json::array();
  for (const auto& [name, lock] : s.locks) {
    json waiters = json::array();
    for (const auto& w : lock.waiters) {
      waiters.push_back(
          {{"lease_id", w.lease_id}, {"owner", w.owner}, {"lock_delay_ms", w.lock_delay_ms}});
    }
    json holder = nullptr;
    if (lock.holder) {
      holder = {{"lease_id", lock.holder->lease_id},
                {"owner", lock.holder->owner},
                {"fencing_token", lock.holder->fencing_token},
                {"lock_delay_ms", lock.holder->lock_delay_ms}};
    }
    json delay = nullptr;
    if (lock.delay) {
      delay = {{"delay_ms", lock.delay->delay_ms}, {"started_index", lock.delay->started_index}};
    }
    locks.push_back({{"name", name},
                     {"revision", lock.revision},
                     {"holder", holder},
                     {"waiters", waiters},
                     {"delay", delay},
                     {"last_release_lease", lock.last_release_lease},
                     {"last_release_token", lock.last_release_token}});
  }
  json elections = json::array();
  for (const auto& [name, election] : s.elections) {
    json candidates = json::array();
    for (const auto& c : election.candidates) {
      candidates.push_back({{"lease_id", c.lease_id}, {"value", c.value}});
    }
    json leader = nullptr;
    if (election.leader) {
      leader = {{"lease_id", election.leader->lease_id},
                {"value", election.leader->value},
                {"fencing_token", election.leader->fencing_token}};
    }
    elections.push_back({{"name", name},
                         {"revision", election.revision},
                         {"leader", leader},
                         {"candidates", candidates}});
  }
  return {{"format", kSnapshotFormat},
          {"last_modified_index", s.last_modified_index},
          {"leases", leases},
          {"locks", locks},
          {"elections", elections}};
}

#define TRY_READ(out, expr)             \
  do {                                  \
    auto value_ = (expr);               \
    if (!value_) return value_.error(); \
    out = std::move(*value_);           \
  } while (false)

Result<const json*> read_array(const json& object, std::string_view key) {
  auto member = json_fields::read_member(object, key, kCorrupt);
  if (!member) return member.error();
  if (!(*member)->is_array()) {
    return make_error(kCorrupt, "field '" + std::string(key) + "' must be an array");
  }
  return *member;
}

// Null or an object.
Result<const json*> read_nullable_object(const json& object, std::string_view key) {
  auto member = json_fields::read_member(object, key, kCorrupt);
  if (!member) return member.error();
  if (!(*member)->is_null() && !(*member)->is_object()) {
    return make_error(kCorrupt, "field '" + std::string(key) + "' must be an object or null");
  }
  return *member;
}

Status decode_leases(const json& array, State& s) {
  for (const json& item : array) {
    if (!item.is_object()) return make_error(kCorrupt, "lease entry is not an object");
    LeaseId id = 0;
    LeaseRecord lease;
    TRY_READ(id, json_fields::read_u64(item, "lease_id", kCorrupt));
    TRY_READ(lease.ttl_ms, json_fields::read_i64(item, "ttl_ms", kCorrupt));
    TRY_READ(lease.created_index, json_fields::read_u64(item, "created_index", kCorrupt));
    TRY_READ(lease.revision, json_fields::read_u64(item, "revision", kCorrupt));
    if (!s.leases.empty() && s.leases.rbegin()->first >= id) {
      return make_error(kCorrupt, "lease ids are not strictly ascending");
    }
    s.leases.emplace(id, std::move(lease));
  }
  return Ok{};
}

LeaseRecord* lease_for_reference(State& s, LeaseId id) {
  return find_in(s.leases, id);
}

Status decode_locks(const json& array, State& s) {
  for (const json& item : array) {
    if (!item.is_object()) return make_error(kCorrupt, "lock entry is not an object");
    std::string name;
    LockRecord lock;
    TRY_READ(name, json_fields::read_string(item, "name", kCorrupt));
    TRY_READ(lock.revision, json_fields::read_u64(item, "revision", kCorrupt));
    TRY_READ(lock.last_release_lease, json_fields::read_u64(item, "last_release_lease", kCorrupt));
    TRY_READ(lock.last_release_token, json_fields::read_u64(item, "last_release_token", kCorrupt));
    const json* holder = nullptr;
    TRY_READ(holder, read_nullable_object(item, "holder"));
    if (!holder->is_null()) {
      LockHolder h;
      TRY_READ(h.lease_id, json_fields::read_u64(*holder, "lease_id", kCorrupt));
      TRY_READ(h.owner, json_fields::read_string(*holder, "owner", kCorrupt));
      TRY_READ(h.fencing_token, json_fields::read_u64(*holder, "fencing_token", kCorrupt));
      TRY_READ(h.lock_delay_ms, json_fields::read_i64(*holder, "lock_delay_ms", kCorrupt));
      LeaseRecord* lease = lease_for_reference(s, h.lease_id);
      if (!lease) return make_error(kCorrupt, "lock " + name + " is held by an unknown lease");
      lease->locks_held.insert(name);
      lock.holder = std::move(h);
    }
    const json* delay = nullptr;
    TRY_READ(delay, read_nullable_object(item, "delay"));
    if (!delay->is_null()) {
      LockDelay d;
      TRY_READ(d.delay_ms, json_fields::read_i64(*delay, "delay_ms", kCorrupt));
      TRY_READ(d.started_index, json_fields::read_u64(*delay, "started_index", kCorrupt));
      lock.delay = d;
    }
    const json* waiters = nullptr;
    TRY_READ(waiters, read_array(item, "waiters"));
    for (const json& w : *waiters) {
      if (!w.is_object()) return make_error(kCorrupt, "lock waiter is not an object");
      LockWaiter waiter;
      TRY_READ(waiter.lease_id, json_fields::read_u64(w, "lease_id", kCorrupt));
      TRY_READ(waiter.owner, json_fields::read_string(w, "owner", kCorrupt));
      TRY_READ(waiter.lock_delay_ms, json_fields::read_i64(w, "lock_delay_ms", kCorrupt));
      LeaseRecord* lease = lease_for_reference(s, waiter.lease_id);
      if (!lease) return make_error(kCorrupt, "lock " + name + " has an unknown lease queued");
      lease->locks_waiting.insert(name);
      lock.waiters.push_back(std::move(waiter));
    }
    if (!s.locks.empty() && s.locks.rbegin()->first >= name) {
      return make_error(kCorrupt, "lock names are not strictly ascending");
    }
    s.locks.emplace(std::move(name), std::move(lock));
  }
  return Ok{};
}

Status decode_elections(const json& array, State& s) {
  for (const json& item : array) {
    if (!item.is_object()) return make_error(kCorrupt, "election entry is not an object");
    std::string name;
    ElectionRecord election;
    TRY_READ(name, json_fields::read_string(item, "name", kCorrupt));
    TRY_READ(election.revision, json_fields::read_u64(item, "revision", kCorrupt));
    const json* leader = nullptr;
    TRY_READ(leader, read_nullable_object(item, "leader"));
    if (!leader->is_null()) {
      ElectionLeader l;
      TRY_READ(l.lease_id, json_fields::read_u64(*leader, "lease_id", kCorrupt));
      TRY_READ(l.value, json_fields::read_string(*leader, "value", kCorrupt));
      TRY_READ(l.fencing_token, json_fields::read_u64(*leader, "fencing_token", kCorrupt));
      LeaseRecord* lease = lease_for_reference(s, l.lease_id);
      if (!lease) return make_error(kCorrupt, "election " + name + " is led by an unknown lease");
      lease->elections_led.insert(name);
      election.leader = std::move(l);
    }
    const json* candidates = nullptr;
    TRY_READ(candidates, read_array(item, "candidates"));
    for (const json& c : *candidates) {
      if (!c.is_object()) return make_error(kCorrupt, "election candidate is not an object");
      Candidate candidate;
      TRY_READ(candidate.lease_id, json_fields::read_u64(c, "lease_id", kCorrupt));
      TRY_READ(candidate.value, json_fields::read_string(c, "value", kCorrupt));
      LeaseRecord* lease = lease_for_reference(s, candidate.lease_id);
      if (!lease) {
        return make_error(kCorrupt, "election " + name + " has an unknown lease campaigning");
      }
      lease->campaigns.insert(name);
      election.candidates.push_back(std::move(candidate));
    }
    if (!s.elections.empty() && s.elections.rbegin()->first >= name) {
      return make_error(kCorrupt, "election names are not strictly ascending");
    }
    s.elections.emplace(std::move(name), std::move(election));
  }
  return Ok{};
}

Result<State> decode_msgpack_state(std::string_view data) {
  auto parsed = json_fields::parse_msgpack(data, kCorrupt);
  if (!parsed) return parsed.error();
  const json& root = *parsed;
  if (!root.is_object()) return make_error(kCorrupt, "snapshot is not a MessagePack map");
  int64_t format = 0;
  TRY_READ(format, json_fields::read_i64(root, "format", kCorrupt));
  if (format != kSnapshotFormat) {
    return make_error(kCorrupt, "unsupported snapshot format " + std::to_string(format));
  }
  State s;
  TRY_READ(s.last_modified_index, json_fields::read_u64(root, "last_modified_index", kCorrupt));
  const json* array = nullptr;
  TRY_READ(array, read_array(root, "leases"));
  if (Status st = decode_leases(*array, s); !st) return st.error();
  TRY_READ(array, read_array(root, "locks"));
  if (Status st = decode_locks(*array, s); !st) return st.error();
  TRY_READ(array, read_array(root, "elections"));
  if (Status st = decode_elections(*array, s); !st) return st.error();
  if (Status st = check_state(s); !st) return st.error();
  return s;
}

#undef TRY_READ

// ---------------------------------------------------------------- snapshot format 2 (binary)

// "RLSB", version byte 2, then (u = unsigned varint, i = zigzag varint, s = u length + bytes,
// n = element count as u, f = flag byte):
//   u last_modified_index
//   n leases    { u lease_id, i ttl_ms, u created_index, u revision }        (ids ascending)
//   n locks     { s name, u revision, u last_release_lease, u last_release_token,
//                 f (1 holder, 2 delay), [u lease_id, s owner, u fencing_token, i lock_delay_ms],
//                 [i delay_ms, u started_index],
//                 n waiters { u lease_id, s owner, i lock_delay_ms } }
//   n elections { s name, u revision, f (1 leader), [u lease_id, s value, u fencing_token],
//                 n candidates { u lease_id, s value } }
// and nothing after. Written straight from the containers (no intermediate document); read into a
// fresh State that check_state() validates before it replaces anything.
constexpr uint8_t kHasHolder = 1;
constexpr uint8_t kHasDelay = 2;
constexpr uint8_t kHasLeader = 1;

void write_binary_state(const State& s, snapshot_codec::ByteWriter& w) {
  w.raw(snapshot_codec::kMagic);
  w.byte(snapshot_codec::kBinaryFormatVersion);
  w.u64(s.last_modified_index);
  w.u64(s.leases.size());
  for (const auto& [id, lease] : s.leases) {
    w.u64(id);
    w.i64(lease.ttl_ms);
    w.u64(lease.created_index);
    w.u64(lease.revision);
  }
  w.u64(s.locks.size());
  for (const auto& [name, lock] : s.locks) {
    w.str(name);
    w.u64(lock.revision);
    w.u64(lock.last_release_lease);
    w.u64(lock.last_release_token);
    w.byte(static_cast<uint8_t>((lock.holder ? kHasHolder : 0) | (lock.delay ? kHasDelay : 0)));
    if (lock.holder) {
      w.u64(lock.holder->lease_id);
      w.str(lock.holder->owner);
      w.u64(lock.holder->fencing_token);
      w.i64(lock.holder->lock_delay_ms);
    }
    if (lock.delay) {
      w.i64(lock.delay->delay_ms);
      w.u64(lock.delay->started_index);
    }
    w.u64(lock.waiters.size());
    for (const auto& waiter : lock.waiters) {
      w.u64(waiter.lease_id);
      w.str(waiter.owner);
      w.i64(waiter.lock_delay_ms);
    }
  }
  w.u64(s.elections.size());
  for (const auto& [name, election] : s.elections) {
    w.str(name);
    w.u64(election.revision);
    w.byte(election.leader ? kHasLeader : 0);
    if (election.leader) {
      w.u64(election.leader->lease_id);
      w.str(election.leader->value);
      w.u64(election.leader->fencing_token);
    }
    w.u64(election.candidates.size());
    for (const auto& candidate : election.candidates) {
      w.u64(candidate.lease_id);
      w.str(candidate.value);
    }
  }
}

std::string encode_binary_state(const State& s) {
  snapshot_codec::ByteWriter sizing(nullptr);
  write_binary_state(s, sizing);
  std::string out;
  out.reserve(sizing.size());  // one exact allocation: the snapshot is kept while it is current
  snapshot_codec::ByteWriter writer(&out);
  write_binary_state(s, writer);
  return out;
}

#define TRY_READ(out, expr)             \
  do {                                  \
    auto value_ = (expr);               \
    if (!value_) return value_.error(); \
    out = std::move(*value_);           \
  } while (false)

Status decode_binary_leases(snapshot_codec::ByteReader& r, State& s) {
  uint64_t count = 0;
  TRY_READ(count, r.count("lease count"));
  for (uint64_t i = 0; i < count; ++i) {
    LeaseId id = 0;
    LeaseRecord lease;
    TRY_READ(id, r.u64("lease id"));
    TRY_READ(lease.ttl_ms, r.i64("lease ttl_ms"));
    TRY_READ(lease.created_index, r.u64("lease created_index"));
    TRY_READ(lease.revision, r.u64("lease revision"));
    if (!s.leases.empty() && s.leases.rbegin()->first >= id) {
      return make_error(kCorrupt, "lease ids are not strictly ascending");
    }
    s.leases.emplace_hint(s.leases.end(), id, std::move(lease));
  }
  return Ok{};
}

Status decode_binary_locks(snapshot_codec::ByteReader& r, State& s) {
  uint64_t count = 0;
  TRY_READ(count, r.count("lock count"));
  for (uint64_t i = 0; i < count; ++i) {
    std::string name;
    LockRecord lock;
    uint8_t flags = 0;
    TRY_READ(name, r.str("lock name", kMaxNameLength));
    TRY_READ(lock.revision, r.u64("lock revision"));
    TRY_READ(lock.last_release_lease, r.u64("lock last_release_lease"));
    TRY_READ(lock.last_release_token, r.u64("lock last_release_token"));
    TRY_READ(flags, r.byte("lock flags"));
    if ((flags & ~(kHasHolder | kHasDelay)) != 0) {
      return make_error(kCorrupt, "lock " + name + " has unknown flags " + std::to_string(flags));
    }
    if (flags & kHasHolder) {
      LockHolder h;
      TRY_READ(h.lease_id, r.u64("lock holder lease_id"));
      TRY_READ(h.owner, r.str("lock holder owner", kMaxOwnerLength));
      TRY_READ(h.fencing_token, r.u64("lock holder fencing_token"));
      TRY_READ(h.lock_delay_ms, r.i64("lock holder lock_delay_ms"));
      LeaseRecord* lease = lease_for_reference(s, h.lease_id);
      if (!lease) return make_error(kCorrupt, "lock " + name + " is held by an unknown lease");
      lease->locks_held.insert(name);
      lock.holder = std::move(h);
    }
    if (flags & kHasDelay) {
      LockDelay d;
      TRY_READ(d.delay_ms, r.i64("lock delay_ms"));
      TRY_READ(d.started_index, r.u64("lock delay started_index"));
      lock.delay = d;
    }
    uint64_t waiters = 0;
    TRY_READ(waiters, r.count("lock waiter count"));
    // No reserve(count): a corrupt count must not allocate before its elements are read.
    for (uint64_t k = 0; k < waiters; ++k) {
      LockWaiter waiter;
      TRY_READ(waiter.lease_id, r.u64("lock waiter lease_id"));
      TRY_READ(waiter.owner, r.str("lock waiter owner", kMaxOwnerLength));
      TRY_READ(waiter.lock_delay_ms, r.i64("lock waiter lock_delay_ms"));
      LeaseRecord* lease = lease_for_reference(s, waiter.lease_id);
      if (!lease) return make_error(kCorrupt, "lock " + name + " has an unknown lease queued");
      lease->locks_waiting.insert(name);
      lock.waiters.push_back(std::move(waiter));
    }
    if (!s.locks.empty() && s.locks.rbegin()->first >= name) {
      return make_error(kCorrupt, "lock names are not strictly ascending");
    }
    s.locks.emplace_hint(s.locks.end(), std::move(name), std::move(lock));
  }
  return Ok{};
}

Status decode_binary_elections(snapshot_codec::ByteReader& r, State& s) {
  uint64_t count = 0;
  TRY_READ(count, r.count("election count"));
  for (uint64_t i = 0; i < count; ++i) {
    std::string name;
    ElectionRecord election;
    uint8_t flags = 0;
    TRY_READ(name, r.str("election name", kMaxNameLength));
    TRY_READ(election.revision, r.u64("election revision"));
    TRY_READ(flags, r.byte("election flags"));
    if ((flags & ~kHasLeader) != 0) {
      return make_error(kCorrupt,
                        "election " + name + " has unknown flags " + std::to_string(flags));
    }
    if (flags & kHasLeader) {
      ElectionLeader l;
      TRY_READ(l.lease_id, r.u64("election leader lease_id"));
      TRY_READ(l.value, r.str("election leader value", kMaxValueLength));
      TRY_READ(l.fencing_token, r.u64("election leader fencing_token"));
      LeaseRecord* lease = lease_for_reference(s, l.lease_id);
      if (!lease) return make_error(kCorrupt, "election " + name + " is led by an unknown lease");
      lease->elections_led.insert(name);
      election.leader = std::move(l);
    }
    uint64_t candidates = 0;
    TRY_READ(candidates, r.count("election candidate count"));
    for (uint64_t k = 0; k < candidates; ++k) {
      Candidate candidate;
      TRY_READ(candidate.lease_id, r.u64("election candidate lease_id"));
      TRY_READ(candidate.value, r.str("election candidate value", kMaxValueLength));
      LeaseRecord* lease = lease_for_reference(s, candidate.lease_id);
      if (!lease) {
        return make_error(kCorrupt, "election " + name + " has an unknown lease campaigning");
      }
      lease->campaigns.insert(name);
      election.candidates.push_back(std::move(candidate));
    }
    if (!s.elections.empty() && s.elections.rbegin()->first >= name) {
      return make_error(kCorrupt, "election names are not strictly ascending");
    }
    s.elections.emplace_hint(s.elections.end(), std::move(name), std::move(election));
  }
  return Ok{};
}

Result<State> decode_binary_state(std::string_view data) {
  snapshot_codec::ByteReader r(data);
  if (Status st = r.expect(snapshot_codec::kMagic, "snapshot magic"); !st) return st.error();
  uint8_t version = 0;
  TRY_READ(version, r.byte("snapshot format version"));
  if (version != snapshot_codec::kBinaryFormatVersion) {
    return make_error(kCorrupt, "unsupported binary snapshot format version " +
                                    std::to_string(version) + " (this build reads " +
                                    std::to_string(snapshot_codec::kBinaryFormatVersion) + ")");
  }
  State s;
  TRY_READ(s.last_modified_index, r.u64("last_modified_index"));
  if (Status st = decode_binary_leases(r, s); !st) return st.error();
  if (Status st = decode_binary_locks(r, s); !st) return st.error();
  if (Status st = decode_binary_elections(r, s); !st) return st.error();
  if (Status st = r.expect_end(); !st) return st.error();
  if (Status st = check_state(s); !st) return st.error();
  return s;
}

#undef TRY_READ

Result<State> decode_state(std::string_view data) {
  if (snapshot_codec::looks_binary(data)) return decode_binary_state(data);
  return decode_msgpack_state(data);
}

}  // namespace

// ---------------------------------------------------------------- LockStateMachine

LockStateMachine::LockStateMachine() : state_(std::make_unique<State>()) {}
LockStateMachine::~LockStateMachine() = default;
LockStateMachine::LockStateMachine(LockStateMachine&&) noexcept = default;
LockStateMachine& LockStateMachine::operator=(LockStateMachine&&) noexcept = default;

std::any LockStateMachine::apply(raft::Index index, std::string_view command) {
  auto decoded = decode_command(command);
  if (!decoded) {
    CommandResult result;
    result.outcome = Outcome::kInvalid;
    result.message = decoded.error().message;
    return result;
  }
  return apply_command(index, *decoded);
}

CommandResult LockStateMachine::apply_command(raft::Index index, const Command& command) {
  if (index <= state_->last_modified_index) {
    CommandResult result;
    result.outcome = Outcome::kInvalid;
    result.message = "log index " + std::to_string(index) +
                     " is not above the last applied change " +
                     std::to_string(state_->last_modified_index);
    return result;
  }
  // Every handler validates its arguments before its first mutation, so a rejected command leaves
  // the state untouched.
  Applier applier(*state_, index);
  std::visit(applier, command);
  if (applier.changed()) state_->last_modified_index = index;
  return applier.take_result();
}

std::string LockStateMachine::snapshot() const {
  return encode_binary_state(*state_);
}

std::string LockStateMachine::snapshot_v1_msgpack() const {
  std::vector<uint8_t> bytes = json::to_msgpack(encode_state(*state_));
  return std::string(bytes.begin(), bytes.end());
}

Status LockStateMachine::restore(std::string_view data) {
  try {
    auto decoded = decode_state(data);
    if (!decoded) {
      return make_error(ErrorCode::kCorrupt, "snapshot rejected: " + decoded.error().message);
    }
    *state_ = std::move(*decoded);
    return Ok{};
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kCorrupt, std::string("snapshot rejected: ") + e.what());
  }
}

LockView LockStateMachine::get_lock(std::string_view name) const {
  return make_lock_view(name, find_in(state_->locks, name));
}

std::vector<LockView> LockStateMachine::list_locks(std::string_view prefix) const {
  std::vector<LockView> held;
  for (auto it = state_->locks.lower_bound(prefix);
       it != state_->locks.end() && it->first.starts_with(prefix); ++it) {
    if (it->second.holder) held.push_back(make_lock_view(it->first, &it->second));
  }
  return held;
}

LockStateMachine::Counts LockStateMachine::counts() const {
  Counts counts;
  for (const auto& [name, lock] : state_->locks) {
    if (lock.holder) ++counts.locks_held;
    counts.lock_waiters += lock.waiters.size();
  }
  counts.leases = state_->leases.size();
  return counts;
}

std::vector<LeaseId> LockStateMachine::lock_waiters(std::string_view name) const {
  std::vector<LeaseId> ids;
  if (const LockRecord* lock = find_in(state_->locks, name)) {
    for (const auto& w : lock->waiters) ids.push_back(w.lease_id);
  }
  return ids;
}

std::vector<LockDelayView> LockStateMachine::locks_in_lock_delay() const {
  std::vector<LockDelayView> delayed;
  for (const auto& [name, lock] : state_->locks) {
    if (lock.delay) delayed.push_back({name, lock.delay->delay_ms, lock.delay->started_index});
  }
  return delayed;
}

ElectionView LockStateMachine::get_election(std::string_view name) const {
  return make_election_view(name, find_in(state_->elections, name));
}

std::vector<LeaseId> LockStateMachine::election_candidates(std::string_view name) const {
  std::vector<LeaseId> ids;
  if (const ElectionRecord* election = find_in(state_->elections, name)) {
    for (const auto& c : election->candidates) ids.push_back(c.lease_id);
  }
  return ids;
}

std::optional<LeaseView> LockStateMachine::get_lease(LeaseId lease_id) const {
  const LeaseRecord* lease = find_in(state_->leases, lease_id);
  if (lease == nullptr) return std::nullopt;
  return make_lease_view(lease_id, *lease);
}

bool LockStateMachine::lease_exists(LeaseId lease_id) const {
  return state_->leases.contains(lease_id);
}

std::vector<LeaseId> LockStateMachine::all_lease_ids() const {
  std::vector<LeaseId> ids;
  ids.reserve(state_->leases.size());
  for (const auto& [id, lease] : state_->leases) ids.push_back(id);
  return ids;
}

raft::Index LockStateMachine::last_modified_index() const {
  return state_->last_modified_index;
}

Status LockStateMachine::check_invariants() const {
  return check_state(*state_);
}

}  // namespace raftlock::lockservice
