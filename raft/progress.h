// PeerProgress — what a leader knows about one follower's log, and how it paces appends to it
// (Probe / Replicate / Snapshot, with a bounded window of in-flight appends; etcd's tracker).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

#include "raft/core.h"
#include "raft/types.h"

namespace raftlock::raft {

// Append messages sent but not yet acknowledged, each remembered by the last index it carried.
class Inflights {
 public:
  explicit Inflights(size_t capacity = 1) : capacity_(capacity == 0 ? 1 : capacity) {}
  void add(Index last_index) { last_indexes_.push_back(last_index); }
  // Frees every message whose last index is <= index (the follower acknowledged them).
  void free_up_to(Index index);
  void free_first() {
    if (!last_indexes_.empty()) last_indexes_.pop_front();
  }
  bool full() const { return last_indexes_.size() >= capacity_; }
  size_t count() const { return last_indexes_.size(); }
  void reset() { last_indexes_.clear(); }

 private:
  size_t capacity_;
  std::deque<Index> last_indexes_;
};

struct PeerProgress {
  explicit PeerProgress(size_t max_inflight = 1) : inflights(max_inflight) {}

  Index match = 0;  // highest index known to be replicated on the peer
  Index next = 1;   // next index to send
  ProgressState state = ProgressState::kProbe;
  // Probe: one append was sent and we wait for its answer (or a heartbeat response) before
  // sending another.
  bool probe_sent = false;
  // Heard from since the last check-quorum round.
  bool recent_active = false;
  // Snapshot: the index of the snapshot being sent.
  Index pending_snapshot = 0;
  // Snapshot: leader ticks since the snapshot was sent.
  int64_t snapshot_ticks = 0;
  // The highest commit index sent to the peer (in an append or heartbeat).
  Index commit_sent = 0;
  // The highest durable index of the leader's own log it was told (kDurable).
  Index durable_sent = 0;
  Inflights inflights;

  void become_probe();
  void become_replicate();
  void become_snapshot(Index snapshot_index);
  // A success response for `index`. Never moves match backwards. True if match advanced.
  bool maybe_update(Index index);
  // A rejection of the append whose previous index was `rejected`; next_hint is where the leader
  // thinks the logs may match again (fast backtracking). False for stale rejections.
  bool maybe_decrease_to(Index rejected, Index next_hint);
  // Bookkeeping after sending an append whose entries end at last_sent (empty: none).
  void sent_append(bool had_entries, Index last_sent);
  // No more appends may be sent right now.
  bool is_paused() const;
};

}  // namespace raftlock::raft
