#include "lockservice/service/lock_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <list>

#include "common/thread_name.h"
#include "metrics/metrics.h"

namespace raftlock::lockservice {
namespace {

using namespace std::chrono_literals;

constexpr auto kRequestTimeout = 5s;  // a non-waiting write that is not committed by then fails
constexpr auto kRetryBackoff = 25ms;  // pause between retries while there is no leader
const char* const kShuttingDown = "The node is shutting down.";
const char* const kUnansweredInTime =
    "The request was not answered in time; it may or may not have taken effect (retrying with "
    "the same arguments is safe).";
constexpr auto kTimerInterval = 10ms;  // leader's lease/lock-delay timer resolution

// The watch of one lease's parked acquire of one lock.
std::string lock_waiter_key(const std::string& name, LeaseId lease_id) {
  return "l:" + name + "#" + std::to_string(lease_id);
}
std::string election_key(const std::string& name) {
  return "e:" + name;
}

bool retryable(ErrorCode code) {
  return code == ErrorCode::kDropped || code == ErrorCode::kNoLeader ||
         code == ErrorCode::kNotLeader || code == ErrorCode::kBusy;
}

bool contains(const std::vector<LeaseId>& ids, LeaseId id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

int64_t remaining_ms(Clock::time_point deadline, Clock::time_point now) {
  if (deadline <= now) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
}

// The revision of the lock or election a command's result shows: for a queued acquire or
// campaign, the object's revision at the queueing entry.
raft::Index revision_of(const CommandResult& result) {
  return result.lock ? result.lock->revision : result.election ? result.election->revision : 0;
}

}  // namespace

struct LockService::AsyncProposal {
  std::string command;
  raft::Urgency urgency = raft::Urgency::kNow;
  Clock::time_point deadline;
  std::function<void(Result<CommandResult>)> then;  // called once (LockService::settle)
  std::atomic<bool> settled{false};
  std::list<std::shared_ptr<AsyncProposal>>::iterator listed;  // in in_flight_ (async_mu_)
};

struct LockService::AsyncWaiter {
  bool is_lock = true;  // a lock's waiting acquire, or else an election's waiting campaign
  std::shared_ptr<Watch> watch;
  std::string name;
  LeaseId lease_id = 0;
  raft::Index queued_revision = 0;
  CommandCallback finish;
  TimerKey wait_timer{};  // its wait's end (cancelled when answered)
};

LockService::LockService(metrics::Metrics* metrics)
    : metrics_(metrics), lease_id_rng_(std::random_device{}()) {}

LockService::~LockService() {
  shutdown();
}

void LockService::attach(raft::Node& node) {
  node_ = &node;
  node.set_soft_state_listener([this](const raft::SoftState& state) { on_soft_state(state); });
  timer_ = std::thread([this] {
    set_thread_name("lease-timer");
    timer_loop();
  });
}

void LockService::shutdown() {
  std::vector<std::shared_ptr<AsyncWaiter>> waiting;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [key, watch] : watches_) {
      watch->cv.notify_all();
      for (auto& waiter : watch->async) waiting.push_back(std::move(waiter));
      watch->async.clear();
    }
  }
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
  for (const auto& waiter : waiting) {
    detach_watch(waiter->is_lock, waiter->name, waiter->lease_id, waiter->watch);
    waiter->finish(make_error(ErrorCode::kUnavailable, kShuttingDown));
  }
  // Retries and deadlines not run yet: their requests are answered by the node's stop (a
  // proposal in flight fails) or, when nothing is in flight, lose their connection.
  std::lock_guard lock(async_mu_);
  async_timers_.clear();
}

bool LockService::running() const {
  std::lock_guard lock(mu_);
  return !stopping_;
}

bool LockService::is_leader() const {
  std::lock_guard lock(mu_);
  return leader_;
}

// ---------------------------------------------------------------------------------------------
// State machine side (node loop thread).

std::any LockService::apply(raft::Index index, std::string_view command) {
  std::vector<std::shared_ptr<Watch>> wake;
  AsyncAnswers answered;
  std::any out;
  {
    std::lock_guard lock(mu_);
    out = machine_.apply(index, command);
    if (const auto* result = std::any_cast<CommandResult>(&out)) handle_events(*result);
    wake.swap(to_wake_);
    if (!wake.empty()) answered = take_async_answers_locked(wake);
  }
  // Woken after mu_ is released: a waiter woken while it is held would block on it at once, and
  // wait for a second wake-up (the state it checks was changed under mu_, so none is missed).
  for (const auto& watch : wake) watch->cv.notify_all();
  queue_async_answers(std::move(answered));
  return out;
}

std::string LockService::snapshot() const {
  std::lock_guard lock(mu_);
  return machine_.snapshot();
}

Status LockService::restore(std::string_view data) {
  Status restored = restore_state(data);
  if (!restored) return restored;
  // Thread-less waiters too: a snapshot may have granted or ended their waits.
  AsyncAnswers answered;
  {
    std::lock_guard lock(mu_);
    std::vector<std::shared_ptr<Watch>> waited_on;
    for (const auto& [key, watch] : watches_) {
      if (!watch->async.empty()) waited_on.push_back(watch);
    }
    answered = take_async_answers_locked(waited_on);
  }
  if (!answered.empty()) {
    queue_async_answers(std::move(answered));
    applied();
  }
  return restored;
}

Status LockService::restore_state(std::string_view data) {
  std::lock_guard lock(mu_);
  auto restored = machine_.restore(data);
  if (!restored) return restored;
  // Everything may have changed: wake every parked request, re-derive leader timers.
  for (auto& [key, watch] : watches_) watch->cv.notify_all();
  if (leader_) {
    const auto now = Clock::now();
    lease_deadlines_.clear();
    for (LeaseId id : machine_.all_lease_ids()) {
      if (auto lease = machine_.get_lease(id)) {
        lease_deadlines_[id] = now + std::chrono::milliseconds(lease->ttl_ms);
      }
    }
    next_lease_scan_ = Clock::time_point::min();
  }
  return Ok{};
}

void LockService::notify(const std::string& key) {
  auto it = watches_.find(key);
  if (it == watches_.end()) return;
  if (std::find(to_wake_.begin(), to_wake_.end(), it->second) == to_wake_.end()) {
    to_wake_.push_back(it->second);
  }
}

void LockService::notify_lock_waiters(const std::string& name) {
  auto parked = parked_lock_leases_.find(name);
  if (parked == parked_lock_leases_.end()) return;
  const LockView lock = machine_.get_lock(name);
  const std::vector<LeaseId> queue = machine_.lock_waiters(name);
  for (LeaseId lease_id : parked->second) {
    const bool holds = lock.holder && lock.holder->lease_id == lease_id;
    if (holds || !contains(queue, lease_id)) notify(lock_waiter_key(name, lease_id));
  }
}

void LockService::handle_events(const CommandResult& result) {
  const auto now = Clock::now();
  if (result.lock) notify_lock_waiters(result.lock->name);
  if (result.election) notify(election_key(result.election->name));
  if (leader_ && result.lease_created && result.lease) {
    const auto deadline = now + std::chrono::milliseconds(result.lease->ttl_ms);
    lease_deadlines_[result.lease->lease_id] = deadline;
    next_lease_scan_ = std::min(next_lease_scan_, deadline);
  }
  for (const Event& event : result.events) {
    if (const auto* granted = std::get_if<LockGrantedEvent>(&event)) {
      auto watch = watches_.find(lock_waiter_key(granted->name, granted->lease_id));
      if (watch != watches_.end()) {
        CommandResult grant;
        grant.outcome = Outcome::kGranted;
        grant.lock = machine_.get_lock(granted->name);
        grant.lease = machine_.get_lease(granted->lease_id);
        watch->second->granted[granted->lease_id] = std::move(grant);
      }
      // (Done above already when the granting command was on this lock: same state, same set.)
      if (!result.lock || result.lock->name != granted->name) notify_lock_waiters(granted->name);
      lock_delay_ends_.erase(granted->name);
    } else if (const auto* delay = std::get_if<LockDelayStartedEvent>(&event)) {
      if (leader_) {
        lock_delay_ends_[delay->name] = {now + std::chrono::milliseconds(delay->delay_ms),
                                         delay->started_index};
      }
    } else if (const auto* ended = std::get_if<LeaseEndedEvent>(&event)) {
      lease_deadlines_.erase(ended->lease_id);
      expiry_proposed_.erase(ended->lease_id);
      if (ended->expired && metrics_) metrics_->lease_expirations.Increment();
      for (const auto& name : ended->released_locks) notify_lock_waiters(name);
      for (const auto& name : ended->cancelled_lock_waits) notify_lock_waiters(name);
      for (const auto& name : ended->resigned_elections) notify(election_key(name));
      for (const auto& name : ended->cancelled_campaigns) notify(election_key(name));
    } else if (const auto* changed = std::get_if<ElectionChangedEvent>(&event)) {
      auto watch = watches_.find(election_key(changed->name));
      if (watch != watches_.end() && changed->leader) {
        CommandResult grant;
        grant.outcome = Outcome::kGranted;
        grant.election = machine_.get_election(changed->name);
        grant.lease = machine_.get_lease(changed->leader->lease_id);
        watch->second->granted[changed->leader->lease_id] = std::move(grant);
      }
      notify(election_key(changed->name));
      if (metrics_) metrics_->election_leader_changes.Increment();
    }
  }
}

void LockService::on_soft_state(const raft::SoftState& state) {
  std::lock_guard lock(mu_);
  const bool now_leader = state.role == raft::Role::kLeader;
  if (now_leader == leader_ && (!now_leader || state.term == leader_term_)) return;
  leader_ = now_leader;
  leader_term_ = now_leader ? state.term : 0;
  lease_deadlines_.clear();
  expiry_proposed_.clear();
  lock_delay_ends_.clear();
  delay_end_proposed_.clear();
  next_lease_scan_ = Clock::time_point::min();
  if (!now_leader) return;
  // A new leader gives every lease a fresh full TTL, and every lock-delay its full delay, from the
  // moment it takes over: it cannot know how long ago the old leader last heard from a client.
  const auto now = Clock::now();
  for (LeaseId id : machine_.all_lease_ids()) {
    if (auto lease = machine_.get_lease(id)) {
      lease_deadlines_[id] = now + std::chrono::milliseconds(lease->ttl_ms);
    }
  }
  for (const LockDelayView& delay : machine_.locks_in_lock_delay()) {
    lock_delay_ends_[delay.name] = {now + std::chrono::milliseconds(delay.delay_ms),
                                    delay.started_index};
  }
  spdlog::info("lock service: leader now, tracking {} leases and {} lock-delays",
               lease_deadlines_.size(), lock_delay_ends_.size());
}

// ---------------------------------------------------------------------------------------------
// Leader timer: lease expiry and lock-delay ends enter the log as commands.

void LockService::timer_loop() {
  struct InFlight {
    std::future<Result<std::any>> future;
    LeaseId lease_id = 0;      // expiry of this lease, or
    std::string delayed_lock;  // end of this lock's delay
  };
  std::vector<InFlight> in_flight;
  auto next_gauges = Clock::now();
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // The next tick, or the next timer of a request answered later if that comes first (a wait
    // then ends on time, not up to a tick late). at() wakes this wait for an earlier timer (a
    // wake-up lost to a race costs at most the tick).
    auto wake = Clock::now() + kTimerInterval;
    {
      std::lock_guard timers(async_mu_);
      if (!async_timers_.empty()) wake = std::min(wake, async_timers_.begin()->first.first);
    }
    timer_cv_.wait_until(lock, wake);
    if (stopping_) break;
    lock.unlock();
    run_due_timers(Clock::now());  // retries and deadlines of requests answered later
    lock.lock();
    if (stopping_) break;
    const auto now = Clock::now();
    if (now >= next_gauges) {
      update_gauges();
      next_gauges = now + 1s;
    }
    // Collect finished proposals; a failed one is retried on a later tick (if still leader).
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      if (it->future.wait_for(0s) != std::future_status::ready) {
        ++it;
        continue;
      }
      auto result = it->future.get();
      if (!result) {
        if (it->lease_id != 0) {
          expiry_proposed_.erase(it->lease_id);
          next_lease_scan_ = Clock::time_point::min();  // retry it on the next tick
        }
        if (!it->delayed_lock.empty()) delay_end_proposed_.erase(it->delayed_lock);
      } else if (!it->delayed_lock.empty()) {
        delay_end_proposed_.erase(it->delayed_lock);
        lock_delay_ends_.erase(it->delayed_lock);
      }
      it = in_flight.erase(it);
    }
    if (!leader_ || node_ == nullptr) continue;
    std::vector<Command> commands;
    std::vector<InFlight> started;
    // Keepalives only move deadlines later, so the earliest deadline seen by the last scan stays
    // a lower bound until a lease is created (handle_events lowers the bound then).
    const bool scan_leases = now >= next_lease_scan_;
    if (scan_leases) next_lease_scan_ = Clock::time_point::max();
    for (const auto& [lease_id, deadline] : lease_deadlines_) {
      if (!scan_leases) break;
      if (expiry_proposed_.count(lease_id)) continue;
      if (deadline > now) {
        next_lease_scan_ = std::min(next_lease_scan_, deadline);
        continue;
      }
      auto lease = machine_.get_lease(lease_id);
      if (!lease) continue;
      expiry_proposed_.insert(lease_id);
      spdlog::info("lock service: lease {} expired (ttl {} ms); proposing expiry", lease_id,
                   lease->ttl_ms);
      commands.push_back(ExpireLease{lease_id, lease->created_index});
      started.push_back(InFlight{{}, lease_id, {}});
    }
    for (const auto& [name, end] : lock_delay_ends_) {
      if (end.first > now || delay_end_proposed_.count(name)) continue;
      delay_end_proposed_.insert(name);
      commands.push_back(EndLockDelay{name, end.second});
      started.push_back(InFlight{{}, 0, name});
    }
    if (commands.empty()) continue;
    // Decided from this leader's clock in this term: they must never take effect through another
    // leader (a deposed leader forwarding its expiry to the new one), so they are not forwarded.
    const raft::Term term = leader_term_;
    lock.unlock();
    for (size_t i = 0; i < commands.size(); ++i) {
      started[i].future = node_->propose_as_leader(encode_command(commands[i]), term);
      in_flight.push_back(std::move(started[i]));
    }
    lock.lock();
  }
}

void LockService::update_gauges() {
  if (!metrics_) return;
  // Counted in place: copying every held lock and lease id once a second (~20 MB at 100k) held
  // mu_, and so every apply, for milliseconds.
  const auto counts = machine_.counts();
  metrics_->locks_held.Set(static_cast<double>(counts.locks_held));
  metrics_->lock_waiters.Set(static_cast<double>(counts.lock_waiters));
  metrics_->leases_active.Set(static_cast<double>(counts.leases));
}

// ---------------------------------------------------------------------------------------------
// Client operations.

Result<CommandResult> LockService::propose(const Command& command, Clock::time_point deadline,
                                           raft::Urgency urgency) {
  if (node_ == nullptr) return make_error(ErrorCode::kUnavailable, "The service is not attached.");
  const std::string encoded = encode_command(command);
  while (true) {
    if (!running()) return make_error(ErrorCode::kUnavailable, kShuttingDown);
    auto future = node_->propose(encoded, urgency);
    if (future.wait_until(deadline) != std::future_status::ready) {
      return make_error(ErrorCode::kTimeout, kUnansweredInTime);
    }
    auto result = future.get();
    if (result) {
      const auto* command_result = std::any_cast<CommandResult>(&result.value());
      if (command_result == nullptr) {
        return make_error(ErrorCode::kInternal, "The state machine gave no result.");
      }
      return *command_result;
    }
    if (!retryable(result.error().code) || Clock::now() + kRetryBackoff >= deadline) {
      return result.error();
    }
    std::this_thread::sleep_for(kRetryBackoff);
  }
}

Status LockService::read_barrier(bool linearizable) {
  if (!linearizable) return Ok{};
  if (node_ == nullptr) return make_error(ErrorCode::kUnavailable, "The service is not attached.");
  const auto deadline = Clock::now() + kRequestTimeout;
  while (true) {
    auto status = node_->read_barrier().get();
    if (status || !retryable(status.error().code) || Clock::now() + kRetryBackoff >= deadline) {
      return status;
    }
    std::this_thread::sleep_for(kRetryBackoff);
  }
}

LeaseId LockService::pick_lease_id() {
  std::lock_guard lock(mu_);
  while (true) {
    const LeaseId id = (lease_id_rng_() & kMaxLeaseId);
    if (id != 0 && !machine_.lease_exists(id)) return id;
  }
}

Result<CommandResult> LockService::create_lease(std::optional<LeaseId> lease_id, int64_t ttl_ms) {
  const LeaseId id = lease_id ? *lease_id : pick_lease_id();
  return propose(CreateLease{id, ttl_ms}, Clock::now() + kRequestTimeout);
}

Result<CommandResult> LockService::revoke_lease(LeaseId lease_id) {
  return propose(RevokeLease{lease_id}, Clock::now() + kRequestTimeout);
}

// Called after a read barrier, with mu_ held: the lease as this confirmed leader will answer for
// it. A lease past its deadline, or whose expiry this leader proposed, is neither alive nor gone
// until that expiry is applied (a deposed leader's expiry never is): wait for the log to say.
Result<std::optional<LeaseView>> LockService::settled_lease(LeaseId lease_id,
                                                            std::unique_lock<std::mutex>& lock) {
  const auto limit = Clock::now() + kRequestTimeout;
  while (true) {
    if (!leader_) return make_error(ErrorCode::kNotLeader, "This node is not the leader.");
    auto lease = machine_.get_lease(lease_id);
    if (!lease) return std::optional<LeaseView>{};
    const auto now = Clock::now();
    auto deadline = lease_deadlines_.find(lease_id);
    const bool expiring = expiry_proposed_.count(lease_id) > 0 ||
                          deadline == lease_deadlines_.end() || deadline->second <= now;
    if (!expiring) return std::optional<LeaseView>{std::move(*lease)};
    if (now >= limit) {
      return make_error(ErrorCode::kTimeout,
                        "Lease " + std::to_string(lease_id) + " is expiring; retry shortly.");
    }
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    lock.lock();
  }
}

Result<LeaseStatus> LockService::keepalive(LeaseId lease_id) {
  if (!is_leader()) return make_error(ErrorCode::kNotLeader, "This node is not the leader.");
  // Only a leader that a quorum still follows may extend a lease, or say it is gone (a deposed
  // leader's view of it is stale either way).
  auto confirmed = read_barrier(true);
  if (!confirmed) return confirmed.error();
  std::unique_lock lock(mu_);
  auto lease = settled_lease(lease_id, lock);
  if (!lease) return lease.error();
  if (!*lease) {
    return make_error(ErrorCode::kNotFound, "Lease " + std::to_string(lease_id) + " not found.");
  }
  const auto now = Clock::now();
  auto& deadline = lease_deadlines_[lease_id];
  deadline = std::max(deadline, now + std::chrono::milliseconds((*lease)->ttl_ms));
  return LeaseStatus{**lease, remaining_ms(deadline, now)};
}

Result<LeaseStatus> LockService::get_lease(LeaseId lease_id) {
  if (!is_leader()) return make_error(ErrorCode::kNotLeader, "This node is not the leader.");
  auto confirmed = read_barrier(true);
  if (!confirmed) return confirmed.error();
  std::unique_lock lock(mu_);
  auto lease = settled_lease(lease_id, lock);
  if (!lease) return lease.error();
  if (!*lease) {
    return make_error(ErrorCode::kNotFound, "Lease " + std::to_string(lease_id) + " not found.");
  }
  return LeaseStatus{**lease, remaining_ms(lease_deadlines_[lease_id], Clock::now())};
}

Acquire LockService::acquire_command(const AcquireRequest& request) {
  Acquire command;
  command.name = request.name;
  command.lease_id = request.lease_id ? *request.lease_id : pick_lease_id();
  command.owner = request.owner;
  command.lock_delay_ms = request.lock_delay_ms;
  command.wait = request.wait_ms > 0;
  command.create_lease_ttl_ms = request.create_ttl_ms;
  return command;
}

void LockService::count_acquire(const Result<CommandResult>& result, int64_t wait_ms,
                                Clock::time_point started) {
  if (!metrics_) return;
  const char* outcome = !result                                                ? "failed"
                        : result->outcome == Outcome::kGranted                 ? "granted"
                        : wait_ms > 0 && result->outcome == Outcome::kLockHeld ? "timed_out"
                                                                               : "rejected";
  metrics_->lock_acquisitions.Add({{"outcome", outcome}}).Increment();
  metrics_->lock_wait_duration.Observe(metrics::Metrics::seconds(Clock::now() - started));
}

Result<CommandResult> LockService::acquire(const AcquireRequest& request) {
  const auto started = Clock::now();
  const auto wait_deadline = started + std::chrono::milliseconds(request.wait_ms);
  const Acquire command = acquire_command(request);
  auto result = propose_and_wait(true, command, request.name, command.lease_id, command.wait,
                                 wait_deadline, std::max(wait_deadline, started + kRequestTimeout));
  count_acquire(result, request.wait_ms, started);
  return result;
}

std::shared_ptr<LockService::Watch> LockService::attach_watch(bool is_lock, const std::string& name,
                                                              LeaseId lease_id) {
  const std::string key = is_lock ? lock_waiter_key(name, lease_id) : election_key(name);
  std::lock_guard lock(mu_);
  auto& watch = watches_[key];
  if (!watch) watch = std::make_shared<Watch>();
  if (is_lock) parked_lock_leases_[name].insert(lease_id);
  ++watch->waiters;
  watch->granted.erase(lease_id);  // only grants from now on answer this request
  return watch;  // the map entry may be erased by another waiter; the caller keeps ours alive
}

bool LockService::held_by_another(bool is_lock, const std::string& name, LeaseId lease_id) {
  std::lock_guard lock(mu_);
  if (is_lock) {
    const LockView view = machine_.get_lock(name);
    return view.holder ? view.holder->lease_id != lease_id : view.in_lock_delay;
  }
  const ElectionView view = machine_.get_election(name);
  return view.leader && view.leader->lease_id != lease_id;
}

void LockService::detach_watch(bool is_lock, const std::string& name, LeaseId lease_id,
                               const std::shared_ptr<Watch>& watch) {
  const std::string key = is_lock ? lock_waiter_key(name, lease_id) : election_key(name);
  std::lock_guard lock(mu_);
  watch->granted.erase(lease_id);
  if (--watch->waiters > 0) return;
  auto it = watches_.find(key);
  if (it != watches_.end() && it->second == watch) watches_.erase(it);
  if (is_lock) {
    auto parked = parked_lock_leases_.find(name);
    if (parked != parked_lock_leases_.end()) {
      parked->second.erase(lease_id);
      if (parked->second.empty()) parked_lock_leases_.erase(parked);
    }
  }
}

Result<CommandResult> LockService::propose_and_wait(bool is_lock, const Command& command,
                                                    const std::string& name, LeaseId lease_id,
                                                    bool wait, Clock::time_point wait_deadline,
                                                    Clock::time_point propose_deadline) {
  if (!wait) return propose(command, propose_deadline);
  auto watch = attach_watch(is_lock, name, lease_id);
  // Queueing behind a holder: the entry can share the write of the release that ends the hold
  // (a write of its own, just before that release, would make the handoff wait for it).
  const auto urgency =
      held_by_another(is_lock, name, lease_id) ? raft::Urgency::kMayWait : raft::Urgency::kNow;
  auto result = propose(command, propose_deadline, urgency);
  if (result && result->outcome == Outcome::kQueued) {
    // Grants recorded since attach_watch may be replays of entries older than this request (a
    // restarted node re-applies its log): only a token above the object's revision at the
    // queueing entry is a grant for this request.
    result = park(is_lock, name, lease_id, watch, revision_of(*result), wait_deadline);
  }
  detach_watch(is_lock, name, lease_id, watch);
  return result;
}

std::optional<CommandResult> LockService::grant_recorded_for(const Watch& watch, LeaseId lease_id,
                                                             raft::Index queued_revision) {
  auto granted = watch.granted.find(lease_id);
  if (granted == watch.granted.end()) return std::nullopt;
  const CommandResult& grant = granted->second;
  const FencingToken token = grant.lock && grant.lock->holder ? grant.lock->holder->fencing_token
                             : grant.election && grant.election->leader
                                 ? grant.election->leader->fencing_token
                                 : 0;
  if (token <= queued_revision) return std::nullopt;
  return grant;
}

std::optional<CommandResult> LockService::parked_answer(bool is_lock, const std::string& name,
                                                        LeaseId lease_id, Watch& watch,
                                                        raft::Index queued_revision) {
  if (auto grant = grant_recorded_for(watch, lease_id, queued_revision)) {
    return grant;  // granted at an apply, whatever happened to the lease since
  }
  CommandResult now_state;
  bool holds = false;
  bool queued = false;
  if (is_lock) {
    now_state.lock = machine_.get_lock(name);
    holds = now_state.lock->holder && now_state.lock->holder->lease_id == lease_id;
    queued = contains(machine_.lock_waiters(name), lease_id);
  } else {
    now_state.election = machine_.get_election(name);
    holds = now_state.election->leader && now_state.election->leader->lease_id == lease_id;
    queued = contains(machine_.election_candidates(name), lease_id);
  }
  now_state.lease = machine_.get_lease(lease_id);
  if (holds) {
    now_state.outcome = Outcome::kGranted;
    return now_state;
  }
  if (!queued) {
    // No longer waiting and not granted: the lease ended (or was revoked) while queued.
    now_state.outcome = now_state.lease ? (is_lock ? Outcome::kLockHeld : Outcome::kNotLeader)
                                        : Outcome::kLeaseNotFound;
    now_state.message = now_state.lease
                            ? "The wait ended without a grant."
                            : "Lease " + std::to_string(lease_id) + " ended while waiting.";
    return now_state;
  }
  return std::nullopt;
}

Result<CommandResult> LockService::park(bool is_lock, const std::string& name, LeaseId lease_id,
                                        const std::shared_ptr<Watch>& keep,
                                        raft::Index queued_revision,
                                        Clock::time_point wait_deadline) {
  // The grant recorded for this request, if any (see propose_and_wait).
  auto recorded_grant = [&]() -> std::optional<CommandResult> {
    return grant_recorded_for(*keep, lease_id, queued_revision);
  };
  {
    std::unique_lock lock(mu_);
    std::optional<CommandResult> answer;
    while (!answer) {
      if (stopping_) break;
      answer = parked_answer(is_lock, name, lease_id, *keep, queued_revision);
      if (answer) break;
      if (Clock::now() >= wait_deadline) break;
      keep->cv.wait_until(lock, wait_deadline);
    }
    if (answer) return *answer;
    if (stopping_) return make_error(ErrorCode::kUnavailable, kShuttingDown);
  }
  // The wait is over: leave the queue through the log. If the grant won the race, the log says so.
  auto cancelled = is_lock
                       ? propose(CancelWait{name, lease_id}, Clock::now() + kRequestTimeout)
                       : propose(CancelCampaign{name, lease_id}, Clock::now() + kRequestTimeout);
  // A grant applied before the cancel is the answer, even if the lease has ended since.
  std::lock_guard lock(mu_);
  if (auto grant = recorded_grant()) return *grant;
  return cancelled;
}

namespace {
Result<CommandResult> command_result_of(Result<std::any> result) {
  if (!result) return result.error();
  auto* command_result = std::any_cast<CommandResult>(&result.value());
  if (command_result == nullptr) {
    return make_error(ErrorCode::kInternal, "The state machine gave no result.");
  }
  return std::move(*command_result);
}
}  // namespace

// --- Requests answered later (the *_async forms) ----------------------------------------------
// The same steps as the blocking forms, with no thread waiting: a proposal's outcome arrives as
// a callback on the Raft loop, a retry or a deadline is a timer run by the timer thread, and a
// queued acquire is a record on its watch, answered by the apply that ends its wait.

LockService::TimerKey LockService::at(Clock::time_point when, std::function<void()> task) {
  TimerKey key;
  bool earliest = false;
  {
    std::lock_guard lock(async_mu_);
    key = TimerKey{when, next_timer_++};
    earliest = async_timers_.emplace(key, std::move(task)).first == async_timers_.begin();
  }
  // The timer thread sleeps until the earliest timer (or its next tick): wake it to sleep less.
  if (earliest) timer_cv_.notify_all();
  return key;
}

void LockService::cancel(const TimerKey& key) {
  std::lock_guard lock(async_mu_);
  async_timers_.erase(key);
}

void LockService::run_due_timers(Clock::time_point now) {
  std::vector<std::function<void()>> due;
  std::vector<std::shared_ptr<AsyncProposal>> overdue;
  {
    std::lock_guard lock(async_mu_);
    while (!async_timers_.empty() && async_timers_.begin()->first.first <= now) {
      due.push_back(std::move(async_timers_.begin()->second));
      async_timers_.erase(async_timers_.begin());
    }
    // In flight past their deadline (few are in flight: each leaves at its answer).
    for (const auto& proposal : in_flight_) {
      if (proposal->deadline <= now) overdue.push_back(proposal);
    }
  }
  for (auto& task : due) task();
  for (const auto& proposal : overdue) {
    settle(proposal, make_error(ErrorCode::kTimeout, kUnansweredInTime));
  }
}

void LockService::settle(const std::shared_ptr<AsyncProposal>& proposal,
                         Result<CommandResult> result) {
  if (proposal->settled.exchange(true)) return;
  {
    std::lock_guard lock(async_mu_);
    in_flight_.erase(proposal->listed);
  }
  auto callback = std::move(proposal->then);
  proposal->then = nullptr;
  callback(std::move(result));
}

void LockService::propose_async(const std::shared_ptr<AsyncProposal>& proposal) {
  {
    std::lock_guard lock(async_mu_);
    proposal->listed = in_flight_.insert(in_flight_.end(), proposal);
  }
  attempt(proposal);
}

void LockService::attempt(const std::shared_ptr<AsyncProposal>& proposal) {
  if (proposal->settled) return;
  if (!running()) return settle(proposal, make_error(ErrorCode::kUnavailable, kShuttingDown));
  node_->propose_async(
      proposal->command, proposal->urgency, [this, proposal](Result<std::any> proposed) {
        auto result = command_result_of(std::move(proposed));
        if (!result && retryable(result.error().code) &&
            Clock::now() + kRetryBackoff < proposal->deadline) {
          at(Clock::now() + kRetryBackoff, [this, proposal] { attempt(proposal); });
          return;
        }
        settle(proposal, std::move(result));
      });
}

void LockService::command_async(const Command& command, CommandCallback done) {
  if (node_ == nullptr) {
    return done(make_error(ErrorCode::kUnavailable, "The service is not attached."));
  }
  auto proposal = std::make_shared<AsyncProposal>();
  proposal->command = encode_command(command);
  proposal->deadline = Clock::now() + kRequestTimeout;
  proposal->then = std::move(done);
  propose_async(proposal);
}

void LockService::release_async(const std::string& name, LeaseId lease_id, FencingToken token,
                                CommandCallback done) {
  command_async(Release{name, lease_id, token}, std::move(done));
}

void LockService::proclaim_async(const std::string& name, LeaseId lease_id, FencingToken token,
                                 const std::string& value, CommandCallback done) {
  command_async(Proclaim{name, lease_id, token, value}, std::move(done));
}

void LockService::resign_async(const std::string& name, LeaseId lease_id, FencingToken token,
                               CommandCallback done) {
  command_async(Resign{name, lease_id, token}, std::move(done));
}

void LockService::acquire_async(const AcquireRequest& request, CommandCallback done) {
  if (node_ == nullptr) {
    return done(make_error(ErrorCode::kUnavailable, "The service is not attached."));
  }
  const auto started = Clock::now();
  const Acquire command = acquire_command(request);
  wait_async(true, command, request.name, command.lease_id, command.wait,
             started + std::chrono::milliseconds(request.wait_ms),
             [this, started, wait_ms = request.wait_ms,
              done = std::move(done)](Result<CommandResult> result) {
               count_acquire(result, wait_ms, started);
               done(std::move(result));
             });
}

void LockService::campaign_async(const CampaignRequest& request, CommandCallback done) {
  if (node_ == nullptr) {
    return done(make_error(ErrorCode::kUnavailable, "The service is not attached."));
  }
  const Campaign command = campaign_command(request);
  wait_async(false, command, request.name, command.lease_id, command.wait,
             Clock::now() + std::chrono::milliseconds(request.wait_ms), std::move(done));
}

void LockService::wait_async(bool is_lock, const Command& command, const std::string& name,
                             LeaseId lease_id, bool wait, Clock::time_point wait_deadline,
                             CommandCallback finish) {
  auto proposal = std::make_shared<AsyncProposal>();
  proposal->command = encode_command(command);
  proposal->deadline = std::max(wait_deadline, Clock::now() + kRequestTimeout);
  if (!wait) {
    proposal->then = std::move(finish);
    return propose_async(proposal);
  }
  auto waiter = std::make_shared<AsyncWaiter>();
  waiter->is_lock = is_lock;
  waiter->name = name;
  waiter->lease_id = lease_id;
  waiter->watch = attach_watch(is_lock, name, lease_id);
  waiter->finish = std::move(finish);
  proposal->urgency =
      held_by_another(is_lock, name, lease_id) ? raft::Urgency::kMayWait : raft::Urgency::kNow;
  proposal->then = [this, waiter, wait_deadline](Result<CommandResult> result) {
    if (!result || result->outcome != Outcome::kQueued) {
      detach_watch(waiter->is_lock, waiter->name, waiter->lease_id, waiter->watch);
      return waiter->finish(std::move(result));
    }
    // As in propose_and_wait: only a grant after the queueing entry answers this request.
    waiter->queued_revision = revision_of(*result);
    std::optional<Result<CommandResult>> answer;
    {
      std::lock_guard lock(mu_);
      if (stopping_) {
        answer = make_error(ErrorCode::kUnavailable, kShuttingDown);
      } else if (auto now = parked_answer(waiter->is_lock, waiter->name, waiter->lease_id,
                                          *waiter->watch, waiter->queued_revision)) {
        answer = std::move(*now);
      } else {
        waiter->wait_timer = at(wait_deadline, [this, waiter] { end_async_wait(waiter); });
        waiter->watch->async.push_back(waiter);
      }
    }
    if (answer) {
      detach_watch(waiter->is_lock, waiter->name, waiter->lease_id, waiter->watch);
      return waiter->finish(std::move(*answer));
    }
  };
  propose_async(proposal);
}

void LockService::end_async_wait(const std::shared_ptr<AsyncWaiter>& waiter) {
  {
    std::lock_guard lock(mu_);
    auto& waiting = waiter->watch->async;
    const auto it = std::find(waiting.begin(), waiting.end(), waiter);
    if (it == waiting.end()) return;  // answered meanwhile
    waiting.erase(it);
  }
  // The wait is over: leave the queue through the log. If the grant won the race, the log says so.
  auto cancel = std::make_shared<AsyncProposal>();
  cancel->command = waiter->is_lock
                        ? encode_command(CancelWait{waiter->name, waiter->lease_id})
                        : encode_command(CancelCampaign{waiter->name, waiter->lease_id});
  cancel->deadline = Clock::now() + kRequestTimeout;
  cancel->then = [this, waiter](Result<CommandResult> cancelled) {
    std::optional<CommandResult> grant;
    {
      std::lock_guard lock(mu_);
      grant = grant_recorded_for(*waiter->watch, waiter->lease_id, waiter->queued_revision);
    }
    detach_watch(waiter->is_lock, waiter->name, waiter->lease_id, waiter->watch);
    waiter->finish(grant ? Result<CommandResult>(std::move(*grant)) : std::move(cancelled));
  };
  propose_async(cancel);
}

LockService::AsyncAnswers LockService::take_async_answers_locked(
    const std::vector<std::shared_ptr<Watch>>& watches) {
  AsyncAnswers answered;
  for (const auto& watch : watches) {
    auto& waiting = watch->async;
    for (size_t i = 0; i < waiting.size();) {
      auto answer = parked_answer(waiting[i]->is_lock, waiting[i]->name, waiting[i]->lease_id,
                                  *watch, waiting[i]->queued_revision);
      if (!answer) {
        ++i;
        continue;
      }
      answered.emplace_back(std::move(waiting[i]), std::move(*answer));
      waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  return answered;
}

void LockService::queue_async_answers(AsyncAnswers answered) {
  for (auto& [waiter, answer] : answered) {
    cancel(waiter->wait_timer);
    detach_watch(waiter->is_lock, waiter->name, waiter->lease_id, waiter->watch);
    // Given out once the node has published the round that decided it (see applied()).
    after_apply_.emplace_back(std::move(waiter), std::move(answer));
  }
}

void LockService::applied() {
  AsyncAnswers answers;
  answers.swap(after_apply_);
  for (auto& [waiter, answer] : answers) waiter->finish(std::move(answer));
}

Result<CommandResult> LockService::release(const std::string& name, LeaseId lease_id,
                                           FencingToken token) {
  return propose(Release{name, lease_id, token}, Clock::now() + kRequestTimeout);
}

Result<LockView> LockService::get_lock(const std::string& name, bool linearizable) {
  auto barrier = read_barrier(linearizable);
  if (!barrier) return barrier.error();
  std::lock_guard lock(mu_);
  return machine_.get_lock(name);
}

Result<std::vector<LockView>> LockService::list_locks(const std::string& prefix,
                                                      bool linearizable) {
  auto barrier = read_barrier(linearizable);
  if (!barrier) return barrier.error();
  std::lock_guard lock(mu_);
  return machine_.list_locks(prefix);
}

Campaign LockService::campaign_command(const CampaignRequest& request) {
  Campaign command;
  command.name = request.name;
  command.lease_id = request.lease_id ? *request.lease_id : pick_lease_id();
  command.value = request.value;
  command.wait = request.wait_ms > 0;
  command.create_lease_ttl_ms = request.create_ttl_ms;
  return command;
}

Result<CommandResult> LockService::campaign(const CampaignRequest& request) {
  const auto started = Clock::now();
  const auto wait_deadline = started + std::chrono::milliseconds(request.wait_ms);
  const Campaign command = campaign_command(request);
  return propose_and_wait(false, command, request.name, command.lease_id, command.wait,
                          wait_deadline, std::max(wait_deadline, started + kRequestTimeout));
}

Result<CommandResult> LockService::proclaim(const std::string& name, LeaseId lease_id,
                                            FencingToken token, const std::string& value) {
  return propose(Proclaim{name, lease_id, token, value}, Clock::now() + kRequestTimeout);
}

Result<CommandResult> LockService::resign(const std::string& name, LeaseId lease_id,
                                          FencingToken token) {
  return propose(Resign{name, lease_id, token}, Clock::now() + kRequestTimeout);
}

Result<ElectionView> LockService::get_election(const std::string& name, bool linearizable) {
  auto barrier = read_barrier(linearizable);
  if (!barrier) return barrier.error();
  std::lock_guard lock(mu_);
  return machine_.get_election(name);
}

Result<ElectionView> LockService::observe(const std::string& name, raft::Index after_revision,
                                          Clock::time_point deadline) {
  const std::string key = election_key(name);
  std::unique_lock lock(mu_);
  auto& watch = watches_[key];
  if (!watch) watch = std::make_shared<Watch>();
  auto keep = watch;
  ++keep->waiters;
  ElectionView view = machine_.get_election(name);
  while (view.revision <= after_revision && !stopping_ && Clock::now() < deadline) {
    keep->cv.wait_until(lock, deadline);
    view = machine_.get_election(name);
  }
  if (--keep->waiters == 0) watches_.erase(key);
  if (stopping_ && view.revision <= after_revision) {
    return make_error(ErrorCode::kUnavailable, kShuttingDown);
  }
  return view;
}

}  // namespace raftlock::lockservice
