// raft::Core — the pure, deterministic Raft state machine: no threads, sockets, clocks or disk.
//
// The caller (a runtime or the simulator) feeds it inputs — tick(), step(), propose(),
// read_index(), transfer_leadership(), propose_conf_change() — and collects the resulting work
// with ready(). One Ready must be handled in this order:
//   1. persist ready.snapshot (if any), then ready.entries (an append that first truncates any
//      stored entries at or after entries.front().index), then ready.hard_state — durably;
//   2. send ready.messages;
//   3. install ready.snapshot into the state machine (if any), then apply
//      ready.committed_entries in order;
//   4. call advance(ready).
// read_states are safe to serve once the state machine has applied up to their index.
// Modeled on etcd's raft (RawNode/Ready) and the Raft thesis; our own code.
#pragma once

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/result.h"
#include "raft/types.h"

namespace raftlock::raft {

struct Config {
  NodeId id = kNoNode;
  int election_ticks =
      10;  // base election timeout; randomised in [election_ticks, 2*election_ticks)
  int heartbeat_ticks = 1;  // leader heartbeat interval
  bool pre_vote = true;     // thesis §9.6
  bool check_quorum =
      true;  // a leader that has not heard from a quorum for an election timeout steps down
  size_t max_message_bytes = 1 << 20;  // cap on entry bytes per append message
  size_t max_inflight = 256;           // append messages in flight per follower when replicating
  uint64_t random_seed = 1;            // seeds the election-timeout randomisation
};

// What the core restarts from: everything the storage layer persisted.
struct InitialState {
  HardState hard_state;
  std::optional<Snapshot> snapshot;  // latest snapshot; the state machine starts from it
  std::vector<Entry> entries;        // contiguous, starting right after the snapshot (or at 1)
  Configuration bootstrap_config;    // founding members; used when neither log nor snapshot has one
};

enum class ProgressState : uint8_t { kProbe = 0, kReplicate = 1, kSnapshot = 2 };

struct Progress {
  Index match = 0;
  Index next = 1;
  ProgressState state = ProgressState::kProbe;
  bool recent_active = false;
};

struct CoreStatus {
  NodeId id = kNoNode;
  Role role = Role::kFollower;
  Term term = 0;
  NodeId leader_id = kNoNode;
  NodeId vote = kNoNode;
  Index commit_index = 0;
  Index applied_index = 0;
  Index last_index = 0;
  Index first_index = 1;  // first entry still in the log (snapshot.index + 1)
  Configuration config;
  std::map<NodeId, Progress> progress;  // leader only
  NodeId transferee = kNoNode;          // leader only: leadership transfer target in progress
};

struct Ready {
  std::optional<SoftState> soft_state;   // set when role, leader or term changed
  std::optional<HardState> hard_state;   // set when it must be persisted
  std::optional<Snapshot> snapshot;      // a snapshot received from the leader: persist and install
  std::vector<Entry> entries;            // to persist (append with suffix truncation)
  std::vector<Message> messages;         // to send after persisting
  std::vector<Entry> committed_entries;  // to apply in order
  std::vector<ReadState> read_states;    // reads whose index is known

  bool empty() const {
    return !soft_state && !hard_state && !snapshot && entries.empty() && messages.empty() &&
           committed_entries.empty() && read_states.empty();
  }
};

class Core {
 public:
  Core(Config config, InitialState initial);
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // One logical clock tick (the runtime ticks every heartbeat interval / heartbeat_ticks).
  void tick();
  // Feeds a message from a peer. Messages for other nodes, or malformed ones, are rejected.
  Status step(const Message& message);
  // Leader only: appends an application command. Returns where it will live if it commits.
  // Errors: kNotLeader (with no leader known: kNoLeader), kBusy during leadership transfer.
  Result<EntryId> propose(std::string data);
  // Leader only, one at a time: kBusy while an earlier change is not yet committed.
  Result<EntryId> propose_conf_change(const ConfChange& change);
  // Requests a linearizable read point; the answer arrives as a ReadState with this context.
  // On a follower it is forwarded to the leader. Errors: kNoLeader.
  Status read_index(std::string context);
  // Leader only: hand leadership to `target` (catch it up, then TimeoutNow).
  Status transfer_leadership(NodeId target);
  // Starts an election now (skipping the timeout). Used by tests and single-node bootstrap.
  void campaign();
  // Fast failover: the runtime learned that the PROCESS of `leader` is gone (its peer port
  // refuses connections). A follower whose leader is `leader` forgets it (leader_id() becomes
  // kNoNode), so the leader lease (check-quorum) no longer makes it ignore vote requests and its
  // own campaign can win. Anything else (another leader named, not a follower) is ignored.
  // Returns whether the leader was forgotten. Only liveness depends on this, never safety.
  bool leader_down(NodeId leader);
  // Fast failover, after leader_down(): campaigns now through the election timeout's path (a
  // pre-vote when Config::pre_vote) if this node knows no leader, is not the leader and has not
  // voted for another candidate in its term (an election it joined is under way). A candidate
  // whose own election can still be won without the dead leader's vote lets it finish (its
  // votes may be in flight); a lost one (a split vote) starts over. Returns whether it
  // campaigned.
  bool campaign_if_leaderless();
  // The runtime could not reach `peer` / finished sending it a snapshot.
  void report_unreachable(NodeId peer);
  void report_snapshot(NodeId peer, bool success);

  bool has_ready() const;
  Ready ready();
  void advance(const Ready& ready);

  // The state machine took a snapshot at `index` (<= applied index): drop the log up to it and
  // keep the snapshot to send to followers that are behind.
  Status compact(Index index, std::shared_ptr<const std::string> data);
  // The latest snapshot the core holds (from compact() or one installed from the leader).
  std::optional<SnapshotMeta> snapshot_meta() const;

  CoreStatus status() const;
  // Convenience accessors.
  Role role() const;
  Term term() const;
  NodeId leader_id() const;
  NodeId id() const;
  Index commit_index() const;
  Index applied_index() const;
  Index last_index() const;
  const Configuration& config() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// ConfChange <-> entry data (used by the core, the runtime and the tests).
std::string encode_conf_change(const ConfChange& change);
Result<ConfChange> decode_conf_change(const std::string& data);

}  // namespace raftlock::raft
