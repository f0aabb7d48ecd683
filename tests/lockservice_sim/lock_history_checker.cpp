#include "tests/lockservice_sim/lock_history_checker.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <type_traits>

namespace raftlock::lockservice::sim_testing {

namespace {

std::string num(uint64_t value) {
  return std::to_string(value);
}

template <typename T>
bool contains(const std::deque<T>& queue, const T& value) {
  return std::find(queue.begin(), queue.end(), value) != queue.end();
}

template <typename T>
bool erase_value(std::deque<T>& queue, const T& value) {
  auto it = std::find(queue.begin(), queue.end(), value);
  if (it == queue.end()) return false;
  queue.erase(it);
  return true;
}

}  // namespace

std::string describe(const Command& command) {
  return std::visit(
      [](const auto& c) -> std::string {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, CreateLease>) {
          return "create_lease(" + num(c.lease_id) + ", ttl " + std::to_string(c.ttl_ms) + ")";
        } else if constexpr (std::is_same_v<T, RevokeLease>) {
          return "revoke_lease(" + num(c.lease_id) + ")";
        } else if constexpr (std::is_same_v<T, ExpireLease>) {
          return "expire_lease(" + num(c.lease_id) + ", created " + num(c.created_index) + ")";
        } else if constexpr (std::is_same_v<T, Acquire>) {
          return "acquire(" + c.name + ", lease " + num(c.lease_id) + (c.wait ? ", wait" : "") +
                 (c.create_lease_ttl_ms ? ", create" : "") + ")";
        } else if constexpr (std::is_same_v<T, CancelWait>) {
          return "cancel_wait(" + c.name + ", lease " + num(c.lease_id) + ")";
        } else if constexpr (std::is_same_v<T, Release>) {
          return "release(" + c.name + ", lease " + num(c.lease_id) + ", token " +
                 num(c.fencing_token) + ")";
        } else if constexpr (std::is_same_v<T, EndLockDelay>) {
          return "end_lock_delay(" + c.name + ", started " + num(c.started_index) + ")";
        } else if constexpr (std::is_same_v<T, Campaign>) {
          return "campaign(" + c.name + ", lease " + num(c.lease_id) + (c.wait ? ", wait" : "") +
                 ")";
        } else if constexpr (std::is_same_v<T, Proclaim>) {
          return "proclaim(" + c.name + ", lease " + num(c.lease_id) + ", token " +
                 num(c.fencing_token) + ")";
        } else if constexpr (std::is_same_v<T, Resign>) {
          return "resign(" + c.name + ", lease " + num(c.lease_id) + ", token " +
                 num(c.fencing_token) + ")";
        } else {
          return "cancel_campaign(" + c.name + ", lease " + num(c.lease_id) + ")";
        }
      },
      command);
}

std::string LockHistoryChecker::check(raft::Index index, const Command& command,
                                      const CommandResult& result) {
  const std::string where = "index " + num(index) + " " + describe(command) + " -> " +
                            outcome_name(result.outcome) + ": ";
  if (index <= last_index_) {
    return where + "applied after index " + num(last_index_) + " (history out of order)";
  }
  last_index_ = index;
  ++stats_.commands;
  static const bool trace = std::getenv("RAFTLOCK_LOCK_TRACE") != nullptr;
  if (trace) {
    std::fprintf(stderr, "history %s (%zu events)\n", where.c_str(), result.events.size());
    for (const Event& event : result.events) {
      if (const auto* g = std::get_if<LockGrantedEvent>(&event)) {
        std::fprintf(stderr, "    granted %s to %llu token %llu\n", g->name.c_str(),
                     static_cast<unsigned long long>(g->lease_id),
                     static_cast<unsigned long long>(g->fencing_token));
      } else if (const auto* e = std::get_if<LeaseEndedEvent>(&event)) {
        std::fprintf(stderr, "    lease %llu ended (%zu locks released)\n",
                     static_cast<unsigned long long>(e->lease_id), e->released_locks.size());
      }
    }
  }
  if (result.outcome == Outcome::kInvalid) {
    if (!result.events.empty()) return where + "an invalid command produced events";
    return "";
  }
  if (result.lease_created) {
    const LeaseId created = result.lease ? result.lease->lease_id : 0;
    if (created == 0) return where + "lease_created without the lease";
    if (alive(created)) return where + "lease " + num(created) + " created twice";
    leases_[created] = index;
  }
  std::string problem = apply_events(index, command, result);
  if (problem.empty()) problem = check_views(command, result);
  if (problem.empty()) problem = check_references();
  return problem.empty() ? "" : where + problem;
}

std::string LockHistoryChecker::apply_events(raft::Index index, const Command& command,
                                             const CommandResult& result) {
  const Outcome outcome = result.outcome;
  // Lease existence as the model knows it.
  auto lease_of = [](const Command& c) -> std::optional<LeaseId> {
    return std::visit(
        [](const auto& x) -> std::optional<LeaseId> {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, EndLockDelay>) {
            return std::nullopt;
          } else {
            return x.lease_id;
          }
        },
        c);
  };
  const std::optional<LeaseId> lease = lease_of(command);
  if (outcome == Outcome::kLeaseNotFound && lease && alive(*lease)) {
    const auto* expire = std::get_if<ExpireLease>(&command);
    const bool stale_expiry =
        expire && expire->created_index != 0 && expire->created_index != leases_.at(*lease);
    if (!stale_expiry) return "lease " + num(*lease) + " is alive but was reported not found";
  }
  const bool needs_lease =
      std::holds_alternative<Acquire>(command) || std::holds_alternative<Campaign>(command) ||
      std::holds_alternative<CancelWait>(command) ||
      std::holds_alternative<CancelCampaign>(command) ||
      std::holds_alternative<RevokeLease>(command) || std::holds_alternative<ExpireLease>(command);
  if (needs_lease && lease && !alive(*lease) &&
      (outcome == Outcome::kGranted || outcome == Outcome::kQueued ||
       (outcome == Outcome::kOk && !std::holds_alternative<CreateLease>(command)))) {
    return "lease " + num(*lease) + " is not alive, yet the command succeeded";
  }

  // Effects the command has before its events.
  if (const auto* release = std::get_if<Release>(&command)) {
    LockModel& lock = locks_[release->name];
    const bool holds = lock.holder && lock.holder->lease_id == release->lease_id &&
                       lock.holder->token == release->fencing_token;
    // A retry of the release that took effect last answers ok again and changes nothing.
    const bool retry = !holds && lock.last_release &&
                       lock.last_release->lease_id == release->lease_id &&
                       lock.last_release->token == release->fencing_token;
    if (outcome == Outcome::kOk && !holds && !retry) return "release accepted from a non-holder";
    if (outcome == Outcome::kOk && retry && !result.events.empty()) {
      return "a retried release changed the lock";
    }
    if (outcome == Outcome::kNotHolder && (holds || retry)) {
      return "the holder's release (or its retry) was refused";
    }
    if (outcome == Outcome::kOk && holds) {
      lock.holder.reset();
      lock.last_release = Holder{release->lease_id, release->fencing_token};
    }
  } else if (const auto* resign = std::get_if<Resign>(&command)) {
    ElectionModel& election = elections_[resign->name];
    const bool leads = election.leader && election.leader->lease_id == resign->lease_id &&
                       election.leader->token == resign->fencing_token;
    if (outcome == Outcome::kOk && !leads) return "resign accepted from a non-leader";
    if (outcome == Outcome::kNotLeader && leads) return "the leader's resign was refused";
    if (outcome == Outcome::kOk) election.leader.reset();
  } else if (const auto* proclaim = std::get_if<Proclaim>(&command)) {
    ElectionModel& election = elections_[proclaim->name];
    const bool leads = election.leader && election.leader->lease_id == proclaim->lease_id &&
                       election.leader->token == proclaim->fencing_token;
    if ((outcome == Outcome::kOk) != leads) return "proclaim answered against the leadership";
  } else if (const auto* cancel = std::get_if<CancelWait>(&command)) {
    LockModel& lock = locks_[cancel->name];
    const bool holds = lock.holder && lock.holder->lease_id == cancel->lease_id;
    if ((outcome == Outcome::kGranted) != holds) return "cancel_wait answered against the holder";
    if (outcome != Outcome::kGranted) erase_value(lock.queue, cancel->lease_id);
  } else if (const auto* cancel = std::get_if<CancelCampaign>(&command)) {
    ElectionModel& election = elections_[cancel->name];
    const bool leads = election.leader && election.leader->lease_id == cancel->lease_id;
    if ((outcome == Outcome::kGranted) != leads) {
      return "cancel_campaign answered against the leadership";
    }
    if (outcome != Outcome::kGranted) erase_value(election.candidates, cancel->lease_id);
  } else if (const auto* end = std::get_if<EndLockDelay>(&command)) {
    LockModel& lock = locks_[end->name];
    if (lock.delay_started &&
        (end->started_index == 0 || end->started_index == *lock.delay_started)) {
      lock.delay_started.reset();
    }
  } else if (const auto* acquire = std::get_if<Acquire>(&command)) {
    LockModel& lock = locks_[acquire->name];
    const bool free = !lock.holder && !lock.delay_started;
    const bool mine = lock.holder && lock.holder->lease_id == acquire->lease_id;
    if (outcome == Outcome::kGranted && !free && !mine) return "granted a held lock";
    if (outcome == Outcome::kLockHeld && (free || mine || acquire->wait)) {
      return "lock_held for a free lock, the holder, or a waiting acquire";
    }
    if (outcome == Outcome::kQueued && (free || mine || !acquire->wait)) {
      return "queued for a free lock, the holder, or a non-waiting acquire";
    }
  } else if (const auto* campaign = std::get_if<Campaign>(&command)) {
    ElectionModel& election = elections_[campaign->name];
    const bool mine = election.leader && election.leader->lease_id == campaign->lease_id;
    if (outcome == Outcome::kGranted && election.leader && !mine) return "elected over a leader";
    if (outcome == Outcome::kNotLeader && (!election.leader || mine || campaign->wait)) {
      return "not_leader for a leaderless election, the leader, or a waiting campaign";
    }
  }

  for (const Event& event : result.events) {
    std::string problem;
    if (const auto* ended = std::get_if<LeaseEndedEvent>(&event)) {
      if (!alive(ended->lease_id)) return "lease " + num(ended->lease_id) + " ended twice";
      leases_.erase(ended->lease_id);
      ++stats_.lease_ends;
      for (const auto& name : ended->released_locks) {
        LockModel& lock = locks_[name];
        if (!lock.holder || lock.holder->lease_id != ended->lease_id) {
          return "lease end released " + name + " it did not hold";
        }
        lock.holder.reset();
      }
      for (const auto& name : ended->cancelled_lock_waits) {
        if (!erase_value(locks_[name].queue, ended->lease_id)) {
          return "lease end cancelled a wait on " + name + " it was not in";
        }
      }
      for (const auto& name : ended->resigned_elections) {
        ElectionModel& election = elections_[name];
        if (!election.leader || election.leader->lease_id != ended->lease_id) {
          return "lease end resigned " + name + " it did not lead";
        }
        election.leader.reset();
      }
      for (const auto& name : ended->cancelled_campaigns) {
        if (!erase_value(elections_[name].candidates, ended->lease_id)) {
          return "lease end cancelled a campaign on " + name + " it was not in";
        }
      }
    } else if (const auto* granted = std::get_if<LockGrantedEvent>(&event)) {
      problem = grant_lock(index, command, *granted);
    } else if (const auto* delay = std::get_if<LockDelayStartedEvent>(&event)) {
      LockModel& lock = locks_[delay->name];
      if (lock.holder) return "lock-delay started on " + delay->name + " while it is held";
      if (delay->started_index != index) return "lock-delay started at another index";
      lock.delay_started = index;
      ++stats_.lock_delays;
    } else if (const auto* changed = std::get_if<ElectionChangedEvent>(&event)) {
      problem = lead_election(index, command, *changed);
    }
    if (!problem.empty()) return problem;
  }

  // Effects after the events: queueing.
  if (const auto* acquire = std::get_if<Acquire>(&command)) {
    LockModel& lock = locks_[acquire->name];
    if (outcome == Outcome::kQueued) {
      ++stats_.queued;
      if (!contains(lock.queue, acquire->lease_id)) lock.queue.push_back(acquire->lease_id);
    }
    if (outcome == Outcome::kGranted &&
        (!lock.holder || lock.holder->lease_id != acquire->lease_id)) {
      return "acquire answered granted but the lease does not hold the lock";
    }
  } else if (const auto* campaign = std::get_if<Campaign>(&command)) {
    ElectionModel& election = elections_[campaign->name];
    if (outcome == Outcome::kQueued) {
      ++stats_.queued;
      if (!contains(election.candidates, campaign->lease_id)) {
        election.candidates.push_back(campaign->lease_id);
      }
    }
    if (outcome == Outcome::kGranted &&
        (!election.leader || election.leader->lease_id != campaign->lease_id)) {
      return "campaign answered granted but the lease does not lead";
    }
  } else if (const auto* ended = std::get_if<RevokeLease>(&command)) {
    if (outcome == Outcome::kOk && alive(ended->lease_id)) return "revoke left the lease alive";
  } else if (const auto* ended = std::get_if<ExpireLease>(&command)) {
    if (outcome == Outcome::kOk && alive(ended->lease_id)) return "expiry left the lease alive";
  }
  return "";
}

std::string LockHistoryChecker::grant_lock(raft::Index index, const Command& command,
                                           const LockGrantedEvent& e) {
  LockModel& lock = locks_[e.name];
  const std::string what = "grant of " + e.name + " to lease " + num(e.lease_id) + ": ";
  if (lock.holder) {
    return what + "second holder (lease " + num(lock.holder->lease_id) + " holds it)";
  }
  if (!alive(e.lease_id)) return what + "the lease is not alive at this index";
  if (lock.delay_started) return what + "the lock is in lock-delay";
  if (e.fencing_token != index)
    return what + "fencing token " + num(e.fencing_token) + " is not the index";
  if (e.fencing_token <= lock.last_token) {
    return what + "fencing token " + num(e.fencing_token) + " not above the previous " +
           num(lock.last_token);
  }
  if (contains(lock.queue, e.lease_id)) {
    if (lock.queue.front() != e.lease_id) {
      return what + "FIFO broken: lease " + num(lock.queue.front()) + " queued first";
    }
    lock.queue.pop_front();
    ++stats_.grants_to_waiters;
  } else {
    const auto* acquire = std::get_if<Acquire>(&command);
    if (acquire == nullptr || acquire->lease_id != e.lease_id || acquire->name != e.name) {
      return what + "the lease neither waited nor asked";
    }
    if (!lock.queue.empty()) {
      return what + "jumped the queue (lease " + num(lock.queue.front()) + " was waiting)";
    }
  }
  lock.holder = Holder{e.lease_id, e.fencing_token};
  lock.last_token = e.fencing_token;
  ++stats_.grants;
  return "";
}

std::string LockHistoryChecker::lead_election(raft::Index index, const Command& command,
                                              const ElectionChangedEvent& e) {
  ElectionModel& election = elections_[e.name];
  const std::string what = "election " + e.name + " change: ";
  if (!e.leader) {
    if (election.leader)
      return what + "reports no leader while lease " + num(election.leader->lease_id) + " leads";
    if (!election.candidates.empty()) return what + "no leader while candidates wait";
    return "";
  }
  const ElectionLeaderView& leader = *e.leader;
  if (election.leader && election.leader->lease_id == leader.lease_id &&
      election.leader->token == leader.fencing_token) {
    if (!std::holds_alternative<Proclaim>(command))
      return what + "value changed without a proclaim";
    return "";
  }
  if (election.leader) {
    return what + "second leader (lease " + num(election.leader->lease_id) + " leads)";
  }
  if (!alive(leader.lease_id))
    return what + "leader lease " + num(leader.lease_id) + " is not alive";
  if (leader.fencing_token != index || leader.fencing_token <= election.last_token) {
    return what + "fencing token " + num(leader.fencing_token) + " not the index or not increasing";
  }
  if (contains(election.candidates, leader.lease_id)) {
    if (election.candidates.front() != leader.lease_id) {
      return what + "FIFO broken: lease " + num(election.candidates.front()) + " queued first";
    }
    election.candidates.pop_front();
    ++stats_.leaders_from_queue;
  } else {
    const auto* campaign = std::get_if<Campaign>(&command);
    if (campaign == nullptr || campaign->lease_id != leader.lease_id || campaign->name != e.name) {
      return what + "lease " + num(leader.lease_id) + " neither waited nor campaigned";
    }
    if (!election.candidates.empty()) return what + "jumped the candidate queue";
  }
  election.leader = Holder{leader.lease_id, leader.fencing_token};
  election.last_token = leader.fencing_token;
  ++stats_.leaders;
  return "";
}

std::string LockHistoryChecker::check_views(const Command& command, const CommandResult& result) {
  if (result.lock) {
    const LockView& view = *result.lock;
    const LockModel& lock = locks_[view.name];
    const std::string what = "result's view of lock " + view.name + ": ";
    if (view.held != lock.holder.has_value()) return what + "held disagrees with the history";
    if (view.held && (!view.holder || view.holder->lease_id != lock.holder->lease_id ||
                      view.holder->fencing_token != lock.holder->token)) {
      return what + "holder disagrees with the history";
    }
    if (view.waiters != lock.queue.size()) {
      return what + num(view.waiters) + " waiters, the history has " + num(lock.queue.size());
    }
    if (view.in_lock_delay != lock.delay_started.has_value()) {
      return what + "lock-delay disagrees with the history";
    }
  }
  if (result.election) {
    const ElectionView& view = *result.election;
    const ElectionModel& election = elections_[view.name];
    if (view.leader.has_value() != election.leader.has_value() ||
        (view.leader && (view.leader->lease_id != election.leader->lease_id ||
                         view.leader->fencing_token != election.leader->token))) {
      return "result's view of election " + view.name + " disagrees with the history";
    }
  }
  (void)command;
  return "";
}

std::string LockHistoryChecker::check_references() const {
  for (const auto& [name, lock] : locks_) {
    if (lock.holder && !alive(lock.holder->lease_id)) {
      return "lock " + name + " is still held by ended lease " + num(lock.holder->lease_id);
    }
    for (LeaseId waiter : lock.queue) {
      if (!alive(waiter)) return "ended lease " + num(waiter) + " still waits for " + name;
    }
    if (lock.holder && lock.delay_started) return "lock " + name + " held during lock-delay";
  }
  for (const auto& [name, election] : elections_) {
    if (election.leader && !alive(election.leader->lease_id)) {
      return "election " + name + " is still led by ended lease " + num(election.leader->lease_id);
    }
    for (LeaseId candidate : election.candidates) {
      if (!alive(candidate))
        return "ended lease " + num(candidate) + " still campaigns for " + name;
    }
  }
  return "";
}

std::string check_machine_state(const LockStateMachine& machine,
                                const std::vector<std::string>& lock_names,
                                const std::vector<std::string>& election_names) {
  Status invariants = machine.check_invariants();
  if (!invariants.ok()) return "check_invariants: " + invariants.error().message;
  std::map<std::string, LeaseId> held_by;
  for (LeaseId id : machine.all_lease_ids()) {
    const auto lease = machine.get_lease(id);
    if (!lease) return "listed lease " + num(id) + " cannot be read";
    for (const auto& name : lease->locks) {
      auto [it, inserted] = held_by.emplace(name, id);
      if (!inserted)
        return "lock " + name + " held by leases " + num(it->second) + " and " + num(id);
    }
  }
  for (const auto& name : lock_names) {
    const LockView view = machine.get_lock(name);
    auto listed = held_by.find(name);
    if (view.held != (listed != held_by.end())) {
      return "lock " + name + " held=" + (view.held ? "true" : "false") +
             " but its lease list says otherwise";
    }
    if (view.held) {
      if (!view.holder || !machine.lease_exists(view.holder->lease_id)) {
        return "lock " + name + " held by a lease that does not exist";
      }
      if (view.holder->lease_id != listed->second) return "lock " + name + " holder mismatch";
      if (view.in_lock_delay) return "lock " + name + " held during lock-delay";
    }
    for (LeaseId waiter : machine.lock_waiters(name)) {
      if (!machine.lease_exists(waiter)) return "lock " + name + " queues a missing lease";
    }
  }
  for (const auto& name : election_names) {
    const ElectionView view = machine.get_election(name);
    if (view.leader && !machine.lease_exists(view.leader->lease_id)) {
      return "election " + name + " led by a lease that does not exist";
    }
  }
  return "";
}

}  // namespace raftlock::lockservice::sim_testing
