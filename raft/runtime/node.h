// raft::Node — the node runtime: one event-loop thread that drives raft::Core: applies what is
// committed and already stored, persists, sends. It is the only code that touches the core.
#pragma once

#include <poll.h>

#include <any>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "raft/core.h"
#include "raft/loop_inbox.h"
#include "raft/loop_source.h"
#include "raft/state_machine.h"
#include "storage/log_store.h"

namespace raftlock::raft {

// Observations the runtime reports (metrics hook); every method is called on the loop thread.
class NodeObserver {
 public:
  virtual ~NodeObserver() = default;
  virtual void on_soft_state(const SoftState& /*state*/) {}
  virtual void on_persist(std::chrono::nanoseconds /*duration*/, size_t /*entries*/) {}
  virtual void on_commit_latency(std::chrono::nanoseconds /*propose_to_apply*/) {}
  virtual void on_apply(std::chrono::nanoseconds /*duration*/, size_t /*entries*/) {}
  virtual void on_read_index_latency(std::chrono::nanoseconds /*duration*/) {}
  virtual void on_snapshot_taken(std::chrono::nanoseconds /*duration*/, size_t /*bytes*/) {}
  virtual void on_snapshot_installed(std::chrono::nanoseconds /*duration*/, size_t /*bytes*/) {}
  virtual void on_election_started() {}
  // Entries [first, last] are about to be persisted (appended to this node's log).
  virtual void on_appending(Index /*first*/, Index /*last*/) {}
  // Entries up to `commit_index` are committed and about to be applied.
  virtual void on_committed(Index /*commit_index*/) {}
};

struct NodeOptions {
  Config core;                                   // id, election/heartbeat ticks, seed
  std::chrono::milliseconds tick_interval{100};  // one core tick
  uint64_t snapshot_every = 10000;               // applied entries between local snapshots
  std::chrono::milliseconds read_timeout{3000};  // a read index that takes longer fails
  // The longest a kMayWait proposal waits on the leader for another proposal to share its write.
  std::chrono::microseconds may_wait_limit{2000};
  // After each round, the loop keeps polling its inbox and wake-up descriptor (a zero-timeout
  // ppoll between sched_yield calls) for up to this long before it sleeps in a blocking ppoll.
  // An event that comes in that window (the acknowledgement of an append, the next proposal) is
  // handled without a sleep and wake-up, which on a loaded or virtualised host costs tens of
  // microseconds each. The price is CPU: up to this much per round while there is nothing to do.
  // Zero (the default here; raftlockd's --loop-spin-us sets it) sleeps at once.
  std::chrono::microseconds idle_spin{0};
};

// How soon a proposal has to reach the leader's log.
enum class Urgency : uint8_t {
  kNow,  // appended in the leader's loop round it reaches
  // Appended with the next other proposal the leader appends (so both share one write), or after
  // NodeOptions::may_wait_limit without one. For a command nobody is waiting on in a hurry: an
  // acquire that will queue behind the lock's holder goes into the log with the release that
  // wakes the next waiter, instead of in a write of its own that the release would wait behind.
  kMayWait,
};

// Status of the node as last published by the loop (safe to read from any thread).
struct NodeStatus {
  CoreStatus core;
  bool stopped = false;          // the loop has stopped (shutdown or a storage failure)
  std::string stop_reason;       // why, when it stopped on its own
  Index last_heard_commit = 0;   // highest commit index this node has heard of
  size_t pending_proposals = 0;  // proposals waiting to be applied, or held (metrics)
  size_t pending_reads = 0;      // read barriers waiting for their index (metrics)
  // Fast failover: leaders this node found gone, and the campaigns that started (not the timeout).
  uint64_t leader_deaths_detected = 0;
  uint64_t fast_campaigns = 0;
  // The loop's waits for work (NodeOptions::idle_spin): ended by an event while still polling,
  // and gone to sleep in a blocking ppoll.
  uint64_t loop_spin_catches = 0;
  uint64_t loop_sleeps = 0;
};

// Where a proposal's outcome goes: a future's promise, or a callback run on the loop thread.
class ProposalSink {
 public:
  ProposalSink() : promise_(std::in_place) {}
  explicit ProposalSink(std::function<void(Result<std::any>)> callback)
      : callback_(std::move(callback)) {}
  std::future<Result<std::any>> get_future() { return promise_->get_future(); }
  void set_value(Result<std::any> value) {
    if (callback_) {
      callback_(std::move(value));
    } else {
      promise_->set_value(std::move(value));
    }
  }

 private:
  std::function<void(Result<std::any>)> callback_;
  std::optional<std::promise<Result<std::any>>> promise_;  // without a callback
};
using ProposalPromise = std::shared_ptr<ProposalSink>;

class Node {
 public:
  using Sender = std::function<void(std::vector<Message>)>;
  // Sends `command` to `leader` to be appended there; must not block the caller and must call
  // `done` exactly once (from any thread) with where the leader appended it, or an error.
  using Forwarder = std::function<void(NodeId leader, std::string command,
                                       std::function<void(Result<EntryId>)> done)>;
  // Called on the loop thread after each committed membership change is applied.
  using ConfigListener = std::function<void(const Configuration&)>;
  // Called on the loop thread whenever role, leader or term changes.
  using SoftStateListener = std::function<void(const SoftState&)>;
  // Blocking check run on the node's probe thread (never on the loop): does `leader`'s peer port
  // refuse connections, i.e. is its process gone? Must return within about one tick; a timeout
  // or an accepted connection is "false" (no news).
  using LeaderProber = std::function<bool(NodeId leader)>;

  Node(NodeOptions options, storage::LogStore& store, StateMachine& state_machine, Sender sender);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Loads persisted state, restores the state machine from the snapshot and starts the loop.
  Status start();
  // Stops the loop; pending proposals and reads fail with kUnavailable. Idempotent.
  void stop();

  void set_observer(NodeObserver* observer) { observer_ = observer; }
  // Without a forwarder, propose() on a follower fails with kNotLeader.
  void set_forwarder(Forwarder forwarder) { forwarder_ = std::move(forwarder); }
  void set_config_listener(ConfigListener listener) { config_listener_ = std::move(listener); }
  void set_soft_state_listener(SoftStateListener listener) {
    soft_state_listener_ = std::move(listener);
  }
  // Before start(). Proposals on a follower go to a leader for which `can_forward_to` is true as
  // kForward messages through the sender (everything proposed in one loop round in one message;
  // the leader answers with a kForwardResponse), with no thread or HTTP exchange on either side.
  // Other leaders (an older version) get them through the Forwarder. Called on the loop thread.
  using ForwardCapability = std::function<bool(NodeId leader)>;
  void set_message_forwarding(ForwardCapability can_forward_to) {
    can_forward_to_ = std::move(can_forward_to);
  }
  // Before start(): the loop also reads `inbox`'s connections (it must outlive the loop).
  void set_inbox(LoopInbox* inbox) { inbox_ = inbox; }
  // Before start(): the loop also polls `source`'s descriptor and serves it (it must outlive the
  // loop). The loop attaches it when it starts and detaches it when it ends.
  void add_loop_source(LoopSource* source) { loop_sources_.push_back(source); }
  // Before start(). Fast failover: a follower that has not heard from its leader for two
  // heartbeat intervals probes it; a refused connection means the leader's process is gone and
  // the follower campaigns at once (see report_leader_down) instead of waiting for the election
  // timeout. Without a prober only the election timeout ends a leader's term.
  void set_leader_prober(LeaderProber prober) { leader_prober_ = std::move(prober); }
  // Thread-safe: `leader`'s process is gone (its peer port refuses connections). A follower of
  // it that has not heard from it for two heartbeat intervals forgets it and campaigns (pre-vote)
  // after a random delay of up to 1.5 ticks; while no leader emerges and `leader` still refuses
  // connections, it tries again (every 0.5-1.5 ticks, at most 5 campaigns in all) before leaving
  // it to the election timeout.
  void report_leader_down(NodeId leader);

  // Thread-safe. Completes with the state machine's result once the command is applied on THIS
  // node at the (index, term) it was appended at. On a follower the command is forwarded to the
  // leader (see set_forwarder). Fails with kNoLeader / kNotLeader (not appended anywhere),
  // kDropped (another entry was committed at its index: it never will be, a retry is safe),
  // kTimeout (the outcome is unknown: it may have been applied), kUnavailable (stopping). A
  // leadership change alone fails nothing: the entry may still commit under the new leader.
  // With kMayWait the leader may hold the command back for up to may_wait_limit (see Urgency).
  std::future<Result<std::any>> propose(std::string command, Urgency urgency = Urgency::kNow);
  // Thread-safe: propose() with the outcome given to `done` instead of a future. `done` runs
  // exactly once, on the loop thread (or on the caller's when the node is stopping); it must not
  // block.
  using ProposalCallback = std::function<void(Result<std::any>)>;
  void propose_async(std::string command, Urgency urgency, ProposalCallback done);
  // Thread-safe. Like propose(), but only as the leader of `term`: never forwarded, and fails with
  // kNotLeader if this node is not (or no longer) the leader of that term. For commands a leader
  // decides from its own volatile state (lease expiry): forwarded by a deposed leader, they would
  // take effect through the new leader, which decided otherwise.
  std::future<Result<std::any>> propose_as_leader(std::string command, Term term);
  // Thread-safe, leader side of forwarding: appends `command` and answers where it was appended
  // without waiting for the commit. kNotLeader / kNoLeader on a follower.
  std::future<Result<EntryId>> append(std::string command);
  // Thread-safe: append() for a batch of commands in one loop round (one persist for all), in
  // order. Each command gets its own answer; after the first refusal the rest are refused too.
  std::future<std::vector<Result<EntryId>>> append_batch(std::vector<std::string> commands);
  // Thread-safe. Completes once this node has applied up to a linearizable read point (leader
  // read-index, asked of the leader by a follower). Errors: kNoLeader, kTimeout, kUnavailable.
  std::future<Status> read_barrier();
  std::future<Result<EntryId>> change_membership(ConfChange change);
  std::future<Status> transfer_leadership(NodeId target);
  // Thread-safe: messages received from peers.
  void receive(std::vector<Message> messages);
  // Thread-safe: transport feedback.
  void report_unreachable(NodeId peer);
  void report_snapshot(NodeId peer, bool success);

  NodeStatus status() const;
  NodeId id() const { return options_.core.id; }

 private:
  struct PendingProposal {
    Term term = 0;
    ProposalPromise promise;
    std::chrono::steady_clock::time_point proposed_at;
  };
  struct PendingRead {
    std::promise<Status> promise;
    std::chrono::steady_clock::time_point started_at;
    std::chrono::steady_clock::time_point deadline;
    Index read_index = 0;  // 0 until the read state arrived
    bool index_known = false;
  };
  // A unit of loop work; `alive` is false when the loop is gone and the task must only fail.
  using Task = std::function<void(bool alive)>;

  // propose() and propose_async(): hands the proposal to the loop.
  void submit(ProposalPromise promise, std::string command, Urgency urgency);
  // Appends `command` if this node leads, else forwards it to the leader (loop thread).
  void propose_now(std::string command, ProposalPromise promise,
                   std::chrono::steady_clock::time_point proposed_at, Urgency urgency);
  // kMayWait on the leader (loop thread): local proposals and forwarded requests are held in
  // held_proposals_ / held_forwards_ (start_holding starts the clock of the oldest), and all are
  // appended once a round appended something else (`appended`: the round grew the log), the
  // oldest waited may_wait_limit, or this node no longer leads.
  void start_holding(std::chrono::steady_clock::time_point now);
  void release_held(std::chrono::steady_clock::time_point now, bool appended);
  // Message forwarding (loop thread): follower side, then leader side.
  void queue_forward(NodeId leader, std::string command, ProposalPromise promise,
                     std::chrono::steady_clock::time_point proposed_at, Urgency urgency);
  void flush_forwards();
  void on_forward_response(const Message& response);
  struct PendingForward;
  // Fails the forwards `which` selects with kTimeout (`why`): their outcome is unknown.
  void fail_forwards_if(const std::function<bool(const PendingForward&)>& which,
                        const std::string& why);
  void answer_forward(const Message& request);
  void track_proposal(EntryId id, ProposalPromise promise,
                      std::chrono::steady_clock::time_point proposed_at);
  void run_loop();
  // Writes the deferred commit-only hard state, if any (at a tick when the last one is a tick
  // old, and at a clean stop).
  void write_deferred_commit(std::chrono::steady_clock::time_point now);
  void post(Task task);
  // Steps messages from peers into the core (loop thread).
  void step_messages(const std::vector<Message>& messages);
  // Waits (loop thread, mu_ not held) until `deadline`, a post() or stop() (the wake descriptor),
  // or an inbox descriptor becomes readable; reads those into `inbound`. A zero wait only reads.
  void wait_for_events(std::chrono::steady_clock::time_point deadline, bool zero_wait,
                       std::vector<Message>& inbound);
  void wake_loop();  // any thread
  void handle_ready();
  // Applies committed entries and answers the proposals they settle.
  void apply_committed(const std::vector<Entry>& entries);
  void apply_entries(const std::vector<Entry>& entries);
  void serve_reads();
  void expire_reads(std::chrono::steady_clock::time_point now);
  void fail_all_pending(ErrorCode code, const std::string& why);
  void fail_pending_reads(ErrorCode code, const std::string& why);
  void maybe_snapshot();
  void publish_status();
  void fail_stop(const std::string& why);
  // Fast failover (loop thread unless noted).
  void watch_leader_silence();
  void on_leader_refused(NodeId leader);
  void run_fast_failover(std::chrono::steady_clock::time_point now);
  std::chrono::steady_clock::time_point next_wakeup(
      std::chrono::steady_clock::time_point next_tick) const;
  std::chrono::milliseconds failover_delay(double min_ticks, double max_ticks);
  void request_probe(NodeId leader);  // any thread
  void run_prober();                  // the probe thread

  NodeOptions options_;
  storage::LogStore& store_;
  StateMachine& state_machine_;
  Sender sender_;
  NodeObserver* observer_ = nullptr;
  ConfigListener config_listener_;
  SoftStateListener soft_state_listener_;

  // Loop-thread state.
  std::unique_ptr<Core> core_;
  std::map<Index, PendingProposal> proposals_;
  std::map<std::string, PendingRead> reads_;
  // Proposals forwarded as messages, by forward id (ids of one kForward are consecutive).
  struct PendingForward {
    NodeId leader = kNoNode;
    uint64_t first_id = 0;  // the first id of its kForward (the request's name)
    size_t slot = 0;        // its place among that kForward's entries
    ProposalPromise promise;
    std::chrono::steady_clock::time_point proposed_at;
  };
  ForwardCapability can_forward_to_;
  std::map<uint64_t, PendingForward> forwards_;
  uint64_t next_forward_id_ = 1;
  struct OutgoingForward {
    uint64_t first_id = 0;
    Message request;
    bool may_wait = true;  // every command in it is kMayWait
  };
  std::map<NodeId, OutgoingForward> outgoing_forwards_;  // this round's kForward per leader
  // kForwardResponses not sent yet: they go in the same send as the round's appends (one frame,
  // one wake-up of the follower instead of two).
  std::vector<Message> outgoing_responses_;
  // kMayWait proposals the leader holds back (local ones, and forwarded requests whose commands
  // all may wait), and when the oldest of them must be appended at the latest.
  struct HeldProposal {
    std::string command;
    ProposalPromise promise;
    std::chrono::steady_clock::time_point proposed_at;
  };
  std::vector<HeldProposal> held_proposals_;
  std::vector<Message> held_forwards_;
  std::optional<std::chrono::steady_clock::time_point> held_until_;
  uint64_t next_read_id_ = 1;
  Index last_snapshot_index_ = 0;
  Configuration last_config_;
  Forwarder forwarder_;
  // Results of recently applied entries, so a forwarded proposal whose entry was applied before
  // the leader's answer arrived still gets its result.
  // What an applied entry gave, for a forwarded proposal whose answer arrives after the entry was
  // applied. An entry that had a local proposal waiting gave its result to it (moved, not copied:
  // results can be large) and keeps none here; no second proposal can claim the same entry.
  struct AppliedResult {
    EntryId id;
    std::any result;
    bool answered_locally = false;
  };
  std::deque<AppliedResult> recent_results_;
  // Answers to proposals applied in the current Ready; given out only after the published status
  // covers them (a client that got its answer never reads an older applied_index): apply_committed
  // raises the published applied and commit index first, since the core counts them at advance().
  struct Completion {
    ProposalPromise promise;
    Result<std::any> value;
  };
  std::vector<Completion> completions_;
  static constexpr size_t kRecentResults = 4096;
  SoftState soft_state_;
  HardState durable_hard_state_;  // the hard state last made durable
  // The newest commit-only hard state, not yet written (it goes with the next persist).
  std::optional<HardState> deferred_hard_state_;
  std::chrono::steady_clock::time_point last_commit_write_;  // when a commit index was written
  Index last_heard_commit_ = 0;

  // Fast failover (loop thread).
  static constexpr int kMaxFastCampaigns = 5;
  LeaderProber leader_prober_;
  NodeId watched_leader_ = kNoNode;  // the leader whose silence is being counted
  int leader_silent_ticks_ = 0;      // ticks since the last message from watched_leader_
  NodeId dead_leader_ = kNoNode;     // a leader found dead; kNoNode: no fast failover under way
  int fast_campaigns_ = 0;           // in the current fast failover
  uint64_t leader_deaths_detected_ = 0;
  uint64_t fast_campaigns_total_ = 0;
  uint64_t loop_spin_catches_ = 0;  // loop thread (see NodeStatus)
  uint64_t loop_sleeps_ = 0;        // loop thread
  std::optional<std::chrono::steady_clock::time_point> fast_campaign_at_;
  std::optional<std::chrono::steady_clock::time_point> reprobe_at_;
  std::mt19937_64 failover_rng_;
  // The probe thread and its one-slot request (guarded by probe_mu_).
  std::mutex probe_mu_;
  std::condition_variable probe_cv_;
  NodeId probe_request_ = kNoNode;
  bool probe_stop_ = false;
  std::thread prober_;

  LoopInbox* inbox_ = nullptr;
  std::vector<LoopSource*> loop_sources_;
  std::vector<int> inbox_fds_;    // loop thread
  std::vector<pollfd> poll_fds_;  // loop thread
  int wake_fd_ = -1;              // an eventfd: written to wake the loop from its poll

  // Cross-thread state.
  mutable std::mutex mu_;
  std::deque<Task> tasks_;
  bool sleeping_ = false;  // the loop is (about to be) in its poll: post() must write wake_fd_
  bool stopping_ = false;
  bool loop_done_ = false;
  NodeStatus status_;
  std::thread loop_;
};

}  // namespace raftlock::raft
