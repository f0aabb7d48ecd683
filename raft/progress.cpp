#include "raft/progress.h"

#include <algorithm>

namespace raftlock::raft {

void Inflights::free_up_to(Index index) {
  while (!last_indexes_.empty() && last_indexes_.front() <= index) last_indexes_.pop_front();
}

void PeerProgress::become_probe() {
  // Coming back from a snapshot, the follower has at least the snapshot: probe right after it.
  if (state == ProgressState::kSnapshot) {
    next = std::max(match + 1, pending_snapshot + 1);
  } else {
    next = match + 1;
  }
  state = ProgressState::kProbe;
  probe_sent = false;
  pending_snapshot = 0;
  inflights.reset();
}

void PeerProgress::become_replicate() {
  state = ProgressState::kReplicate;
  next = match + 1;
  probe_sent = false;
  pending_snapshot = 0;
  inflights.reset();
}

void PeerProgress::become_snapshot(Index snapshot_index) {
  state = ProgressState::kSnapshot;
  pending_snapshot = snapshot_index;
  snapshot_ticks = 0;
  probe_sent = false;
  inflights.reset();
}

bool PeerProgress::maybe_update(Index index) {
  bool updated = false;
  if (index > match) {
    match = index;
    updated = true;
    probe_sent = false;
  }
  next = std::max(next, index + 1);
  return updated;
}

bool PeerProgress::maybe_decrease_to(Index rejected, Index next_hint) {
  if (state == ProgressState::kReplicate) {
    // Everything up to match is known to be replicated: a rejection at or below it is stale.
    if (rejected <= match) return false;
    become_probe();
    next = std::max(match + 1, std::min(rejected, next_hint));
    return true;
  }
  // In Probe (and Snapshot) state only the answer to the append we last sent counts.
  if (next == 0 || next - 1 != rejected) return false;
  next = std::max(match + 1, std::min(rejected, next_hint));
  probe_sent = false;
  return true;
}

void PeerProgress::sent_append(bool had_entries, Index last_sent) {
  switch (state) {
    case ProgressState::kReplicate:
      if (had_entries) {
        // Pipelining: assume the append will succeed and move on.
        next = last_sent + 1;
        inflights.add(last_sent);
      }
      break;
    case ProgressState::kProbe:
      probe_sent = true;
      break;
    case ProgressState::kSnapshot:
      break;
  }
}

bool PeerProgress::is_paused() const {
  switch (state) {
    case ProgressState::kProbe:
      return probe_sent;
    case ProgressState::kReplicate:
      return inflights.full();
    case ProgressState::kSnapshot:
      return true;
  }
  return true;
}

}  // namespace raftlock::raft
