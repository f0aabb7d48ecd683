// lockservice::LockService — runs the lock state machine on a Raft node: proposes commands,
// parks waiting requests until the log grants them, and (on the leader) tracks lease deadlines
// and proposes expiries and lock-delay ends from its own clock.
#pragma once

#include <any>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "lockservice/lock_state_machine.h"
#include "raft/runtime/node.h"

namespace raftlock::metrics {
class Metrics;
}

namespace raftlock::lockservice {

using Clock = std::chrono::steady_clock;

// What a lease looks like to a client: the state machine's view plus the leader's remaining time.
struct LeaseStatus {
  LeaseView lease;
  int64_t remaining_ms = 0;
};

struct AcquireRequest {
  std::string name;
  std::optional<LeaseId> lease_id;  // exactly one of lease_id / create_ttl_ms
  std::optional<int64_t> create_ttl_ms;
  int64_t wait_ms = 0;
  std::string owner;
  int64_t lock_delay_ms = 0;
};

struct CampaignRequest {
  std::string name;
  std::optional<LeaseId> lease_id;
  std::optional<int64_t> create_ttl_ms;
  int64_t wait_ms = 0;
  std::string value;
};

class LockService final : public raft::StateMachine {
 public:
  explicit LockService(metrics::Metrics* metrics = nullptr);
  ~LockService() override;

  // Wires the service to its node (listeners) and starts the timer thread (the leader's lease
  // and lock-delay timers, and the timers of requests answered later).
  void attach(raft::Node& node);
  // Stops the timer and wakes every parked request (they answer 503 unavailable). Idempotent.
  void shutdown();

  // raft::StateMachine, called on the node's loop thread.
  std::any apply(raft::Index index, std::string_view command) override;
  std::string snapshot() const override;
  // Answers the thread-less waiters the round's applies ended (after the node published it).
  void applied() override;
  Status restore(std::string_view data) override;

  bool is_leader() const;

  // --- Operations (blocking; called from HTTP threads). Domain outcomes come back inside
  // CommandResult (lock_held, not_holder, ...); Error is for infrastructure (no leader, stopping).
  Result<CommandResult> create_lease(std::optional<LeaseId> lease_id, int64_t ttl_ms);
  Result<CommandResult> revoke_lease(LeaseId lease_id);
  // Leader only (kNotLeader otherwise). kNotFound for an unknown or already-expired lease.
  Result<LeaseStatus> keepalive(LeaseId lease_id);
  Result<LeaseStatus> get_lease(LeaseId lease_id);

  Result<CommandResult> acquire(const AcquireRequest& request);
  Result<CommandResult> release(const std::string& name, LeaseId lease_id, FencingToken token);
  Result<LockView> get_lock(const std::string& name, bool linearizable);
  Result<std::vector<LockView>> list_locks(const std::string& prefix, bool linearizable);

  // Asynchronous forms for the client port: `done` runs once, on the Raft loop (it must not
  // block). A waiting acquire holds no thread while it waits: the apply that ends its wait
  // answers it.
  using CommandCallback = std::function<void(Result<CommandResult>)>;
  void acquire_async(const AcquireRequest& request, CommandCallback done);
  void release_async(const std::string& name, LeaseId lease_id, FencingToken token,
                     CommandCallback done);
  // A waiting campaign holds no thread either: it is answered by the apply that elects it.
  void campaign_async(const CampaignRequest& request, CommandCallback done);
  void proclaim_async(const std::string& name, LeaseId lease_id, FencingToken token,
                      const std::string& value, CommandCallback done);
  void resign_async(const std::string& name, LeaseId lease_id, FencingToken token,
                    CommandCallback done);

  Result<CommandResult> campaign(const CampaignRequest& request);
  Result<CommandResult> proclaim(const std::string& name, LeaseId lease_id, FencingToken token,
                                 const std::string& value);
  Result<CommandResult> resign(const std::string& name, LeaseId lease_id, FencingToken token);
  Result<ElectionView> get_election(const std::string& name, bool linearizable);
  // Waits until the election's revision is > after_revision, or until `deadline`.
  Result<ElectionView> observe(const std::string& name, raft::Index after_revision,
                               Clock::time_point deadline);
  // For server-sent events: true while the service runs.
  bool running() const;

  // A linearizable read barrier (leader read-index), or nothing for stale reads.
  Status read_barrier(bool linearizable);

 private:
  // Proposes an idempotent command, retrying through leader changes until `deadline`.
  Result<CommandResult> propose(const Command& command, Clock::time_point deadline,
                                raft::Urgency urgency = raft::Urgency::kNow);
  // Whether another lease holds lock (or leads election) `name` in this node's applied state: a
  // waiting acquire (campaign) of `lease_id` will then most likely queue, and its entry may wait
  // for the leader's next write (raft::Urgency::kMayWait) rather than take one of its own.
  bool held_by_another(bool is_lock, const std::string& name, LeaseId lease_id);
  // Marks every request parked on `key` ("l:<lock>#<lease>" or "e:<election>") to be woken when
  // apply() releases mu_ (see to_wake_).
  void notify(const std::string& key);
  // Has the requests parked on lock `name` woken (see notify) whose wait is over: their lease now
  // holds it or is no longer queued. The others stay asleep (16 waiters on one lock would otherwise
  // all wake, and go back to sleep, on every change of that lock).
  void notify_lock_waiters(const std::string& name);
  LeaseId pick_lease_id();
  Result<std::optional<LeaseView>> settled_lease(LeaseId lease_id,
                                                 std::unique_lock<std::mutex>& lock);
  struct Watch;
  struct AsyncWaiter;
  // A waiting acquire/campaign registers its watch BEFORE proposing, so a grant applied at any
  // moment after that is recorded for it (see Watch::granted) and detaches it when answered.
  std::shared_ptr<Watch> attach_watch(bool is_lock, const std::string& name, LeaseId lease_id);
  void detach_watch(bool is_lock, const std::string& name, LeaseId lease_id,
                    const std::shared_ptr<Watch>& watch);
  // Parks an acquire/campaign that was queued until granted, lease gone, or the wait ends.
  Result<CommandResult> park(bool is_lock, const std::string& name, LeaseId lease_id,
                             const std::shared_ptr<Watch>& watch, raft::Index queued_revision,
                             Clock::time_point wait_deadline);
  // Proposes a waiting acquire/campaign and parks it if it was queued.
  Result<CommandResult> propose_and_wait(bool is_lock, const Command& command,
                                         const std::string& name, LeaseId lease_id, bool wait,
                                         Clock::time_point wait_deadline,
                                         Clock::time_point propose_deadline);
  Status restore_state(std::string_view data);
  void on_soft_state(const raft::SoftState& state);
  void handle_events(const CommandResult& result);
  void timer_loop();
  void update_gauges();

  metrics::Metrics* metrics_;
  raft::Node* node_ = nullptr;
  LockStateMachine machine_;
  mutable std::mutex mu_;  // guards machine_, watches_, leader state
  // Parked requests wait on the watch of the object they wait for; apply() notifies it.
  struct Watch {
    std::condition_variable cv;
    int waiters = 0;
    // Grants applied while a request waited, by lease: the answer it must give even if the
    // lease ended right after (a parked request can wake only after both were applied).
    std::map<LeaseId, CommandResult> granted;
    // Waiting acquires and campaigns with no thread (acquire_async, campaign_async): answered by
    // the apply that ends the wait.
    std::vector<std::shared_ptr<AsyncWaiter>> async;
  };
  static std::optional<CommandResult> grant_recorded_for(const Watch& watch, LeaseId lease_id,
                                                         raft::Index queued_revision);
  // Under mu_: the answer of a request parked on `watch`, if its wait is over (granted, or no
  // longer queued); nullopt while it still waits.
  std::optional<CommandResult> parked_answer(bool is_lock, const std::string& name,
                                             LeaseId lease_id, Watch& watch,
                                             raft::Index queued_revision);
  // Thread-less waiters whose wait is over, with their answers.
  using AsyncAnswers = std::vector<std::pair<std::shared_ptr<AsyncWaiter>, CommandResult>>;
  // Under mu_: takes the thread-less waiters of `watches` whose wait is over out of them.
  AsyncAnswers take_async_answers_locked(const std::vector<std::shared_ptr<Watch>>& watches);
  // Loop thread, mu_ not held: their timers cancelled and watches detached, the answers wait
  // for applied().
  void queue_async_answers(AsyncAnswers answered);
  Acquire acquire_command(const AcquireRequest& request);
  Campaign campaign_command(const CampaignRequest& request);
  void count_acquire(const Result<CommandResult>& result, int64_t wait_ms,
                     Clock::time_point started);
  // Requests answered later (see lock_service.cpp).
  struct AsyncProposal;
  // Proposes with the blocking propose()'s rules: retryable errors are retried after a pause
  // until the deadline, which answers kTimeout.
  void propose_async(const std::shared_ptr<AsyncProposal>& proposal);
  // Proposes `command` (no wait) and answers `done` with its result.
  void command_async(const Command& command, CommandCallback done);
  // An acquire (is_lock) or campaign: proposed, and if `wait` and queued, recorded on its watch
  // (an AsyncWaiter) until an apply ends its wait, or until wait_deadline (it then leaves the
  // queue through the log).
  void wait_async(bool is_lock, const Command& command, const std::string& name, LeaseId lease_id,
                  bool wait, Clock::time_point wait_deadline, CommandCallback finish);
  void attempt(const std::shared_ptr<AsyncProposal>& proposal);
  // A thread-less waiter's wait ended unanswered: it leaves the queue through the log.
  void end_async_wait(const std::shared_ptr<AsyncWaiter>& waiter);
  // Answers `proposal` once (later calls do nothing), taking it out of in_flight_.
  void settle(const std::shared_ptr<AsyncProposal>& proposal, Result<CommandResult> result);
  // Timers for requests answered later (retries, wait ends), run by the timer thread, which also
  // fails proposals in flight past their deadline.
  using TimerKey = std::pair<Clock::time_point, uint64_t>;
  TimerKey at(Clock::time_point when, std::function<void()> task);
  void cancel(const TimerKey& key);
  void run_due_timers(Clock::time_point now);
  std::map<std::string, std::shared_ptr<Watch>> watches_;
  // The watches one apply() has to wake (each once), woken after it releases mu_.
  std::vector<std::shared_ptr<Watch>> to_wake_;
  // Leases with a request parked on each lock (their watch key is "l:<lock>#<lease>").
  std::map<std::string, std::set<LeaseId>> parked_lock_leases_;
  bool stopping_ = false;

  // Leader-only volatile state (guarded by mu_).
  bool leader_ = false;
  raft::Term leader_term_ = 0;  // the term this node leads (while leader_)
  std::map<LeaseId, Clock::time_point> lease_deadlines_;
  // No lease deadline is earlier than this (a lower bound): the timer scans lease_deadlines_ only
  // once it has passed, not every tick (50,000 leases would otherwise be walked 100 times a second
  // while holding mu_).
  Clock::time_point next_lease_scan_ = Clock::time_point::min();
  std::set<LeaseId> expiry_proposed_;
  std::map<std::string, std::pair<Clock::time_point, raft::Index>> lock_delay_ends_;
  std::set<std::string> delay_end_proposed_;

  // Answers decided by this round's applies, given out by applied() (loop thread only).
  AsyncAnswers after_apply_;
  std::mutex async_mu_;  // guards async_timers_, next_timer_, in_flight_
  std::map<TimerKey, std::function<void()>> async_timers_;
  uint64_t next_timer_ = 0;
  std::list<std::shared_ptr<AsyncProposal>> in_flight_;

  std::mt19937_64 lease_id_rng_;
  std::thread timer_;
  std::condition_variable timer_cv_;
};

}  // namespace raftlock::lockservice
