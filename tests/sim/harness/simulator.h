// Cluster — a deterministic, single-threaded simulation of a Raft cluster that checks safety.
//
// Every node is a raft::Core, a MemoryLogStore (survives crashes) and a TestStateMachine. Time is
// virtual (milliseconds); all randomness comes from one std::mt19937_64 seeded by the run's seed,
// so a seed reproduces a run exactly. The network delivers each message at its own time and can
// drop, duplicate, delay (and so reorder) messages, and block links one-way or both ways. Nodes
// can crash (also in the middle of handling a Ready) and restart from what was persisted, run
// slowly, and compact their logs into snapshots. After every simulated event the cluster checks
// Raft's safety properties and records the first violation.
#pragma once

#include <any>
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "raft/core.h"
#include "raft/state_machine.h"
#include "raft/types.h"
#include "storage/memory_log_store.h"

namespace raftlock::sim {

using raft::Index;
using raft::NodeId;
using raft::Term;

// Deterministic random numbers with our own mapping to ranges (independent of the std library's
// distributions, which differ between implementations).
class SimRandom {
 public:
  explicit SimRandom(uint64_t seed) : engine_(seed) {}
  uint64_t next() { return engine_(); }
  // Uniform in [0, bound); bound must be > 0. Rejection sampling, no modulo bias.
  uint64_t below(uint64_t bound);
  // Uniform in [low, high] (inclusive).
  uint64_t between(uint64_t low, uint64_t high) { return low + below(high - low + 1); }
  // True with probability per_million / 1,000,000.
  bool chance(uint32_t per_million) { return per_million > 0 && below(1000000) < per_million; }

 private:
  std::mt19937_64 engine_;
};

// 64-bit FNV-1a, used for content hashes and the trace hash.
uint64_t fnv1a(const void* data, size_t size, uint64_t hash = 14695981039346656037ull);
uint64_t hash_entry_content(raft::EntryType type, const std::string& data);

// A tiny replicated state machine: it remembers every applied command (with its index), the last
// applied index/term and the membership as of the last applied entry. Serialisable for snapshots.
class TestStateMachine {
 public:
  explicit TestStateMachine(raft::Configuration initial_config = {});

  // Applies the next committed entry. Error if entry.index != applied_index() + 1.
  Status apply(const raft::Entry& entry);
  std::string serialize() const;
  // Replaces the whole state; on error the state is unchanged.
  Status restore(const std::string& data);

  Index applied_index() const { return applied_index_; }
  Term applied_term() const { return applied_term_; }
  const raft::Configuration& config() const { return config_; }
  // Applied application commands, in log order, with the index each was applied at.
  const std::vector<std::pair<Index, std::string>>& commands() const { return commands_; }
  bool has_command(const std::string& command) const;
  // Opaque bytes of an application state machine carried inside this machine's snapshots (see
  // AppStateMachineHooks); serialised only when non-empty, so the format is otherwise unchanged.
  const std::string& app_state() const { return app_state_; }
  void set_app_state(std::string app_state) { app_state_ = std::move(app_state); }

 private:
  Index applied_index_ = 0;
  Term applied_term_ = 0;
  raft::Configuration config_;
  std::vector<std::pair<Index, std::string>> commands_;
  std::string app_state_;
};

// Applies a membership change to a configuration (what every node does when the change applies).
void apply_conf_change(raft::Configuration& config, const raft::ConfChange& change);

// Network misbehaviour. Probabilities are per million messages.
struct NetworkFaults {
  uint32_t drop_ppm = 0;
  uint32_t duplicate_ppm = 0;
  uint32_t long_delay_ppm = 0;  // chance a message is held back up to long_delay_max_ms
  uint64_t min_delay_ms = 1;    // normal delivery delay range
  uint64_t max_delay_ms = 5;
  uint64_t long_delay_max_ms = 300;
  // false: each one-way link delivers in send order (like a TCP stream; a delayed message holds
  // back the ones behind it). true: every message has its own delay, so messages reorder.
  bool reorder = false;

  static NetworkFaults reliable() { return {}; }
  // 10% loss, 2% duplication, 10% long delays, reordering (as in 6.824's unreliable network).
  static NetworkFaults unreliable();
};

// Deliberately broken runtime behaviour, used only to prove that the checker catches real bugs.
enum class InjectedBug : uint8_t {
  kNone = 0,
  kForgetVote = 1,    // persists hard states with the vote cleared (a runtime that drops the vote)
  kLocalReads = 2,    // serves reads from the local state machine without ReadIndex
  kCorruptEntry = 3,  // node 1's store persists a damaged copy of the entry at index 5
};

// An optional application state machine (e.g. the lock service) run beside every node's
// TestStateMachine: it applies each committed kNormal entry, its snapshot() travels inside the
// node's snapshots, and it is rebuilt on restart. Hooks return "" when fine, else a safety
// violation that fails the run.
struct AppStateMachineHooks {
  // A fresh state machine for node `id` (at every start and restart). Empty: no app machine.
  std::function<std::unique_ptr<raft::StateMachine>(NodeId id)> make;
  // After node `id` applied committed `entry` (every entry type; `result` is what the app
  // machine's apply returned, empty for no-op and membership entries).
  std::function<std::string(NodeId id, const raft::Entry& entry, const std::any& result,
                            const raft::StateMachine& app)>
      on_apply;
  // After node `id` (re)started or installed a snapshot: its app machine now stands at `index`
  // (0 for a fresh node without a snapshot).
  std::function<std::string(NodeId id, Index index, const raft::StateMachine& app)> on_restore;
};

struct ClusterOptions {
  size_t nodes = 3;
  uint64_t seed = 1;
  int election_ticks = 10;
  int heartbeat_ticks = 1;
  uint64_t tick_ms = 100;  // one tick = one heartbeat interval at heartbeat_ticks = 1
  bool pre_vote = true;
  bool check_quorum = true;
  size_t max_message_bytes = 1 << 20;
  size_t max_inflight = 256;
  // Compact the log when this many entries were applied since the last snapshot (0 = never).
  size_t snapshot_every = 0;
  // Chance, per Ready that persists something or sends messages, that the node crashes in the
  // middle of handling it (after persisting, after sending or after applying).
  uint32_t mid_ready_crash_ppm = 0;
  // Handle a leader's Ready the way the runtime does: when its term and vote are already
  // durable, send its messages first and persist its entries afterwards (thesis §10.2.1). A
  // mid-Ready crash "after sending" then happens before the leader's own write.
  bool leader_sends_first = false;
  NetworkFaults faults;
  // Print every event to stderr (debugging a seed).
  bool trace = false;
  // Print the first safety violation to stderr when it happens.
  bool report_violations = true;
  InjectedBug injected_bug = InjectedBug::kNone;
  AppStateMachineHooks app;
};

struct MessageStats {
  uint64_t sent = 0;
  uint64_t delivered = 0;
  uint64_t dropped = 0;
  uint64_t duplicated = 0;
  uint64_t estimated_bytes = 0;  // kMessageHeaderBytes per message + entry/snapshot/context bytes
  std::array<uint64_t, 16> sent_by_type{};
  uint64_t append_rejects = 0;  // kAppendResponse with reject = true

  uint64_t of(raft::MessageType type) const { return sent_by_type[static_cast<size_t>(type)]; }
};

// Fixed per-message overhead used by the byte estimate (type, ids, term, indices, framing).
inline constexpr uint64_t kMessageHeaderBytes = 48;
inline constexpr uint64_t kEntryHeaderBytes = 20;
uint64_t estimate_message_bytes(const raft::Message& message);

// One linearizable read started with Cluster::start_read.
struct ReadRecord {
  uint64_t id = 0;
  NodeId node = raft::kNoNode;
  uint64_t incarnation = 0;
  Index required_index = 0;  // highest commit index anywhere when the read started
  uint64_t started_ms = 0;
  bool served = false;
  Index read_index = 0;
  Index served_applied_index = 0;
  uint64_t served_ms = 0;
};

class Cluster {
 public:
  explicit Cluster(ClusterOptions options);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  const ClusterOptions& options() const { return options_; }
  SimRandom& random() { return random_; }
  uint64_t now_ms() const { return now_ms_; }
  uint64_t election_timeout_ms() const {
    return static_cast<uint64_t>(options_.election_ticks) * options_.tick_ms;
  }

  // ---- running ----
  // Processes events up to now + ms (stops early after a safety violation).
  void run_for(uint64_t ms);
  // Processes events until pred() holds (checked before each event) or max_ms passed.
  bool run_until(const std::function<bool()>& pred, uint64_t max_ms);

  // ---- safety ----
  bool ok() const { return violation_.empty(); }
  const std::string& violation() const { return violation_; }
  uint64_t trace_hash() const { return trace_hash_; }
  uint64_t events_processed() const { return events_; }
  // One line per node: role, term, vote, log end, commit, applied, configuration.
  std::string describe() const;

  // ---- inspection ----
  std::vector<NodeId> node_ids() const;  // every node process ever started
  bool exists(NodeId id) const { return nodes_.count(id) != 0; }
  bool is_up(NodeId id) const;
  bool is_stopped(NodeId id) const;  // left the cluster for good
  raft::Core* core(NodeId id);       // nullptr while crashed / stopped
  const TestStateMachine& state_machine(NodeId id) const;
  // The node's application state machine (AppStateMachineHooks); nullptr without one or while
  // the node is down.
  const raft::StateMachine* app_state_machine(NodeId id) const;
  const storage::MemoryLogStore& store(NodeId id) const;
  // Live nodes that currently believe they are leader.
  std::vector<NodeId> leaders() const;
  // The live leader whose term is at least every live member's term, if any.
  std::optional<NodeId> current_leader() const;
  // Highest term any live node is in.
  Term max_term() const;
  // Live nodes that are members of `config`.
  std::vector<NodeId> live_members(const raft::Configuration& config) const;
  // Number of live nodes whose state machine has applied index (all agree on content: checked).
  size_t applied_count(Index index) const;
  // The entry committed at index as recorded by the checker (term and content hash), if known.
  std::optional<std::pair<Term, uint64_t>> committed_at(Index index) const;
  Index max_commit_index() const { return max_commit_seen_; }
  const MessageStats& stats() const { return stats_; }
  void reset_stats() { stats_ = MessageStats{}; }
  // Every (term -> leader) ever observed.
  const std::map<Term, NodeId>& leader_history() const { return leader_by_term_; }
  // Number of snapshots installed from a leader (Ready.snapshot) per node.
  uint64_t snapshots_installed(NodeId id) const;
  // Leaders that crashed after sending a Ready's messages and before persisting its entries
  // (ClusterOptions::leader_sends_first with mid-Ready crashes).
  uint64_t leader_crashes_before_persist() const { return leader_crashes_before_persist_; }
  // Optional observer of every sent message (for benchmarks).
  void set_send_observer(std::function<void(const raft::Message&)> observer) {
    send_observer_ = std::move(observer);
  }

  // ---- faults ----
  void set_faults(const NetworkFaults& faults) { options_.faults = faults; }
  void set_mid_ready_crash_ppm(uint32_t ppm) { options_.mid_ready_crash_ppm = ppm; }
  void crash(NodeId id);
  void restart(NodeId id);
  // Removes the node for good (e.g. after it left the configuration).
  void stop(NodeId id);
  void block(NodeId from, NodeId to);  // one-way
  void unblock(NodeId from, NodeId to);
  void disconnect(NodeId id);  // both ways, from everybody
  // Restores the links between `id` and every node that is not itself disconnected.
  void reconnect(NodeId id);
  // Nodes in different groups cannot talk (both ways); nodes not listed are cut from everybody.
  void partition(const std::vector<std::vector<NodeId>>& groups);
  void heal_network();  // unblock every link
  bool link_blocked(NodeId from, NodeId to) const;
  // A slow node handles its inbox only every period_ms (0 = normal).
  void set_slow(NodeId id, uint64_t period_ms);

  // ---- clients ----
  Result<raft::EntryId> propose(NodeId at, std::string command);
  // Proposes several commands before handling the Ready once (a runtime that batches client
  // requests). Returns how many were accepted.
  size_t propose_batch(NodeId at, const std::vector<std::string>& commands);
  Result<raft::EntryId> propose_conf_change(NodeId at, const raft::ConfChange& change);
  // Like 6.824's one(): retries at the current leader until `command` is applied on at least
  // `expected_nodes` nodes; returns its index, or 0 after timeout_ms.
  Index agree(const std::string& command, size_t expected_nodes, uint64_t timeout_ms);
  // Starts a ReadIndex read at `at`; returns its id (0 if the core refused).
  uint64_t start_read(NodeId at);
  const ReadRecord& read(uint64_t id) const { return reads_.at(id); }
  uint64_t reads_served() const { return reads_served_; }
  Status transfer_leadership(NodeId leader, NodeId target);
  // Starts a new, empty node process (not yet a member) that can then be added as a learner.
  NodeId spawn_node();
  // Makes `id` campaign now.
  void campaign(NodeId id);

 private:
  struct Node;
  struct Event;
  struct EventQueue;
  struct CommittedRecord {
    bool known = false;
    Term term = 0;
    bool has_content = false;
    uint64_t content_hash = 0;
    Term commit_term = 0;  // lowest term in which a node was seen to hold it committed
  };
  struct LogRecord {
    uint64_t content_hash = 0;
    Term prev_term = 0;
  };
  enum class CrashPoint { kNone, kAfterPersist, kAfterSend, kAfterApply };

  Node& node(NodeId id);
  const Node& node(NodeId id) const;
  void start_core(Node& n);
  void schedule(uint64_t at, Event event);
  void process_one_event();
  void handle_ready(Node& n);
  void send(Node& n, raft::Message message);
  void apply_committed(Node& n, const raft::Entry& entry);
  void report_snapshot_to_sender(const raft::Message& snapshot_message, bool delivered);
  void serve_reads(Node& n);
  void complete_read(Node& n, ReadRecord& record, Index read_index);
  void maybe_compact(Node& n);
  void restore_app(Node& n, const TestStateMachine& restored, Index index);
  void after_event();
  void check_node(Node& n);
  void check_leader_completeness(Node& leader, Index first, Index last_checked);
  void record_committed(Index index, Term term, std::optional<uint64_t> content, Term seen_in_term,
                        const char* source, NodeId by);
  void register_persisted_entries(Node& n, const std::vector<raft::Entry>& entries);
  void check_snapshot_data(const std::string& data, const char* what, NodeId by);
  void fail(const std::string& message);
  void trace(const std::string& line);
  void mix_trace(uint64_t value);

  ClusterOptions options_;
  uint64_t leader_crashes_before_persist_ = 0;
  SimRandom random_;
  uint64_t now_ms_ = 0;
  uint64_t next_event_seq_ = 0;
  std::unique_ptr<EventQueue> queue_;  // events ordered by (time, seq)
  std::map<NodeId, std::unique_ptr<Node>> nodes_;
  NodeId next_node_id_ = 1;
  raft::Configuration founding_config_;
  std::set<std::pair<NodeId, NodeId>> blocked_links_;
  std::set<NodeId> disconnected_;  // cut from everybody by disconnect()
  std::map<std::pair<NodeId, NodeId>, uint64_t> link_last_delivery_;  // FIFO links
  std::vector<NodeId> pending_stops_;

  // checker state
  std::string violation_;
  uint64_t trace_hash_ = 14695981039346656037ull;
  uint64_t events_ = 0;
  std::map<Term, NodeId> leader_by_term_;
  std::map<std::pair<NodeId, Term>, NodeId> vote_granted_;  // (voter, term) -> candidate
  std::vector<CommittedRecord> committed_;                  // by index (0 unused)
  Index max_commit_seen_ = 0;
  std::map<std::pair<Index, Term>, LogRecord> log_records_;

  MessageStats stats_;
  std::function<void(const raft::Message&)> send_observer_;

  std::map<uint64_t, ReadRecord> reads_;
  uint64_t next_read_id_ = 1;
  uint64_t reads_served_ = 0;
};

// ---- randomized runs ----

struct RandomRunResult {
  uint64_t seed = 0;
  bool ok = false;
  std::string failure;  // first safety or liveness violation
  uint64_t trace_hash = 0;
  uint64_t events = 0;
  uint64_t proposals_accepted = 0;
  uint64_t entries_committed = 0;
  uint64_t reads_served = 0;
  uint64_t crashes = 0;
  uint64_t leaders_elected = 0;      // distinct terms that had a leader
  uint64_t snapshots_installed = 0;  // InstallSnapshot completions on followers
  uint64_t nodes_spawned = 0;        // learners added during the run
  size_t nodes = 0;
};

// One seeded chaos run: random cluster size and options, a fault phase mixing every fault the
// simulator has with client proposals, reads, transfers and membership changes, then a healed
// phase that requires a leader within 10 election timeouts and that new proposals commit and
// apply on every live member. Reproducible from the seed alone.
RandomRunResult run_random(uint64_t seed, bool trace = false,
                           InjectedBug injected_bug = InjectedBug::kNone);

}  // namespace raftlock::sim
