// LogStore — durable home of one node's Raft state: log entries, hard state, snapshot, identity.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "raft/types.h"

namespace raftlock::storage {

// Everything a node needs to restart, as last made durable.
struct PersistentState {
  raft::HardState hard_state;
  std::optional<raft::Snapshot> snapshot;  // latest snapshot (meta and data), if any
  std::vector<raft::Entry> entries;      // contiguous, starting right after the snapshot (or at 1)
  raft::Configuration bootstrap_config;  // founding members, recorded when the store was created
};

class LogStore {
 public:
  virtual ~LogStore() = default;

  virtual Result<PersistentState> load() = 0;

  // Durably stores one Ready's worth of state in one transaction, in this order: the snapshot
  // (which replaces the whole log: every entry is dropped), then the entries (first deleting
  // every stored entry with index >= entries.front().index), then the hard state. Returns only
  // after the data is on disk (fsync). Any argument may be empty.
  virtual Status persist(const std::optional<raft::HardState>& hard_state,
                         const std::vector<raft::Entry>& entries,
                         const std::optional<raft::Snapshot>& snapshot) = 0;

  // Records a snapshot the local state machine took and drops log entries <= snapshot.meta.index.
  // Entries after it are kept (no rewrite of the log).
  virtual Status compact(const raft::Snapshot& snapshot) = 0;
};

}  // namespace raftlock::storage
