// LockStateMachine — the replicated state of leases, locks, waiter queues and elections.
#pragma once

#include <any>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "lockservice/commands.h"
#include "lockservice/results.h"
#include "raft/state_machine.h"

namespace raftlock::lockservice {

// A pure function of the log: apply() never reads a clock or random numbers; time enters only as
// leader-proposed commands (ExpireLease, EndLockDelay). Containers are ordered, so snapshots and
// results are byte-for-byte deterministic. Not thread-safe: the runtime's apply loop owns it.
class LockStateMachine final : public raft::StateMachine {
 public:
  LockStateMachine();
  ~LockStateMachine() override;
  LockStateMachine(LockStateMachine&&) noexcept;
  LockStateMachine& operator=(LockStateMachine&&) noexcept;
  LockStateMachine(const LockStateMachine&) = delete;
  LockStateMachine& operator=(const LockStateMachine&) = delete;

  // Decodes and applies; returns std::any holding a CommandResult. Undecodable bytes, out-of-range
  // arguments and an index not above last_modified_index() give Outcome::kInvalid and change
  // nothing.
  std::any apply(raft::Index index, std::string_view command) override;
  // The typed form of apply().
  CommandResult apply_command(raft::Index index, const Command& command);

  // The binary format 2 (lockservice/snapshot_codec.h), written straight from the containers.
  std::string snapshot() const override;
  // The MessagePack format 1 that older versions wrote (restore() still reads it); for tests and
  // tools that need old-format bytes.
  std::string snapshot_v1_msgpack() const;
  // Reads format 2 or format 1 (told apart by the first byte). Validates the whole snapshot (types,
  // ranges, references) before replacing the state; on error the state is unchanged.
  Status restore(std::string_view data) override;

  // --- Queries (reads) ---
  LockView get_lock(std::string_view name) const;
  std::vector<LockView> list_locks(std::string_view prefix) const;  // held locks, sorted by name
  std::vector<LeaseId> lock_waiters(std::string_view name) const;   // FIFO order
  std::vector<LockDelayView> locks_in_lock_delay() const;           // sorted by name
  ElectionView get_election(std::string_view name) const;
  std::vector<LeaseId> election_candidates(std::string_view name) const;  // FIFO order
  std::optional<LeaseView> get_lease(LeaseId lease_id) const;
  bool lease_exists(LeaseId lease_id) const;
  std::vector<LeaseId> all_lease_ids() const;  // ascending
  // Sizes for the gauges, counted without copying anything.
  struct Counts {
    uint64_t locks_held = 0;
    uint64_t lock_waiters = 0;  // over all locks
    uint64_t leases = 0;
  };
  Counts counts() const;
  // The index of the last entry that changed the state (0 for a fresh machine).
  raft::Index last_modified_index() const;

  // Checks every internal invariant (one holder, live leases only in holders and queues, lease
  // back-references, token/revision ordering). Ok for any state reachable through apply/restore.
  Status check_invariants() const;

  struct State;  // defined in lock_state_machine.cpp

 private:
  std::unique_ptr<State> state_;
};

}  // namespace raftlock::lockservice
