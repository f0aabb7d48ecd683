// raft::Node — the node runtime: one event-loop thread that drives raft::Core, persists, sends
// and applies, in that order. It is the only code that touches the core.
#pragma once

#include <any>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "raft/core.h"
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
};

// Status of the node as last published by the loop (safe to read from any thread).
struct NodeStatus {
  CoreStatus core;
  bool stopped = false;          // the loop has stopped (shutdown or a storage failure)
  std::string stop_reason;       // why, when it stopped on its own
  Index last_heard_commit = 0;   // highest commit index this node has heard of
  size_t pending_proposals = 0;  // proposals waiting to be applied (metrics)
  size_t pending_reads = 0;      // read barriers waiting for their index (metrics)
};

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

  // Thread-safe. Completes with the state machine's result once the command is applied on THIS
  // node at the (index, term) it was appended at. On a follower the command is forwarded to the
  // leader (see set_forwarder). Fails with kNoLeader / kNotLeader (not appended anywhere),
  // kDropped (another entry was committed at its index: it never will be, a retry is safe),
  // kTimeout (the outcome is unknown: it may have been applied), kUnavailable (stopping). A
  // leadership change alone fails nothing: the entry may still commit under the new leader.
  std::future<Result<std::any>> propose(std::string command);
  // Thread-safe. Like propose(), but only as the leader of `term`: never forwarded, and fails with
  // kNotLeader if this node is not (or no longer) the leader of that term. For commands a leader
  // decides from its own volatile state (lease expiry): forwarded by a deposed leader, they would
  // take effect through the new leader, which decided otherwise.
  std::future<Result<std::any>> propose_as_leader(std::string command, Term term);
  // Thread-safe, leader side of forwarding: appends `command` and answers where it was appended
  // without waiting for the commit. kNotLeader / kNoLeader on a follower.
  std::future<Result<EntryId>> append(std::string command);
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
    std::shared_ptr<std::promise<Result<std::any>>> promise;
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

  void track_proposal(EntryId id, std::shared_ptr<std::promise<Result<std::any>>> promise,
                      std::chrono::steady_clock::time_point proposed_at);
  void run_loop();
  void post(Task task);
  void handle_ready();
  void apply_entries(const std::vector<Entry>& entries);
  void serve_reads();
  void expire_reads(std::chrono::steady_clock::time_point now);
  void fail_all_pending(ErrorCode code, const std::string& why);
  void fail_pending_reads(ErrorCode code, const std::string& why);
  void maybe_snapshot();
  void publish_status();
  void fail_stop(const std::string& why);

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
  uint64_t next_read_id_ = 1;
  Index last_snapshot_index_ = 0;
  Configuration last_config_;
  Forwarder forwarder_;
  // Results of recently applied entries, so a forwarded proposal whose entry was applied before
  // the leader's answer arrived still gets its result.
  struct AppliedResult {
    EntryId id;
    std::any result;
  };
  std::deque<AppliedResult> recent_results_;
  // Answers to proposals applied in the current Ready; given out only after the published status
  // covers them (a client that got its answer never reads an older applied_index).
  struct Completion {
    std::shared_ptr<std::promise<Result<std::any>>> promise;
    Result<std::any> value;
  };
  std::vector<Completion> completions_;
  static constexpr size_t kRecentResults = 4096;
  SoftState soft_state_;
  HardState durable_hard_state_;  // the hard state last made durable
  Index last_heard_commit_ = 0;

  // Cross-thread state.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  bool loop_done_ = false;
  NodeStatus status_;
  std::thread loop_;
};

}  // namespace raftlock::raft
