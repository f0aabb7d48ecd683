// MemoryLogStore — a LogStore kept in memory, for the simulator and unit tests.
// What was persisted survives a simulated crash (the object outlives the node); nothing else does.
#pragma once

#include "storage/log_store.h"

namespace raftlock::storage {

class MemoryLogStore final : public LogStore {
 public:
  explicit MemoryLogStore(raft::Configuration bootstrap_config = {});

  Result<PersistentState> load() override;
  Status persist(const std::optional<raft::HardState>& hard_state,
                 const std::vector<raft::Entry>& entries,
                 const std::optional<raft::Snapshot>& snapshot) override;
  Status compact(const raft::Snapshot& snapshot) override;

  // Inspection for tests.
  const PersistentState& state() const { return state_; }
  size_t persist_calls() const { return persist_calls_; }

 private:
  PersistentState state_;
  size_t persist_calls_ = 0;
};

}  // namespace raftlock::storage
