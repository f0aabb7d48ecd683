#include "storage/memory_log_store.h"

#include <algorithm>

namespace raftlock::storage {

MemoryLogStore::MemoryLogStore(raft::Configuration bootstrap_config) {
  state_.bootstrap_config = std::move(bootstrap_config);
}

Result<PersistentState> MemoryLogStore::load() {
  return state_;
}

Status MemoryLogStore::persist(const std::optional<raft::HardState>& hard_state,
                               const std::vector<raft::Entry>& entries,
                               const std::optional<raft::Snapshot>& snapshot) {
  ++persist_calls_;
  if (snapshot) {
    state_.snapshot = snapshot;
    state_.entries.clear();
  }
  if (!entries.empty()) {
    const raft::Index first = entries.front().index;
    const raft::Index base = state_.snapshot ? state_.snapshot->meta.index : 0;
    if (first <= base) {
      return make_error(ErrorCode::kInvalidArgument, "append below the snapshot index");
    }
    const raft::Index expected_max = base + state_.entries.size() + 1;
    if (first > expected_max) {
      return make_error(ErrorCode::kInvalidArgument, "append leaves a gap in the log");
    }
    state_.entries.resize(first - base - 1);
    state_.entries.insert(state_.entries.end(), entries.begin(), entries.end());
  }
  if (hard_state) state_.hard_state = *hard_state;
  return Ok{};
}

Status MemoryLogStore::compact(const raft::Snapshot& snapshot) {
  const raft::Index base = state_.snapshot ? state_.snapshot->meta.index : 0;
  if (snapshot.meta.index <= base) return Ok{};
  auto& log = state_.entries;
  const auto drop = std::min<size_t>(log.size(), snapshot.meta.index - base);
  log.erase(log.begin(), log.begin() + static_cast<std::ptrdiff_t>(drop));
  state_.snapshot = snapshot;
  return Ok{};
}

}  // namespace raftlock::storage
