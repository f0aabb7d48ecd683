// Views, events and command results produced by the lock state machine for the service layer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "lockservice/commands.h"
#include "raft/types.h"

namespace raftlock::lockservice {

// The lease holding a lock.
struct LockHolderView {
  LeaseId lease_id = 0;
  std::string owner;
  FencingToken fencing_token = 0;
  bool operator==(const LockHolderView&) const = default;
};

// What GET /v1/locks/{name} shows. A never-used lock is free with revision 0.
struct LockView {
  std::string name;
  bool held = false;
  std::optional<LockHolderView> holder;
  std::optional<FencingToken> fencing_token;  // the holder's token, when held
  uint64_t waiters = 0;
  raft::Index revision = 0;
  bool in_lock_delay = false;  // free but not grantable until EndLockDelay
  bool operator==(const LockView&) const = default;
};

// A lock waiting for its lock-delay to end (the leader schedules EndLockDelay for it).
struct LockDelayView {
  std::string name;
  int64_t delay_ms = 0;
  raft::Index started_index = 0;
  bool operator==(const LockDelayView&) const = default;
};

// The current leader of an election.
struct ElectionLeaderView {
  std::string value;
  LeaseId lease_id = 0;
  FencingToken fencing_token = 0;
  bool operator==(const ElectionLeaderView&) const = default;
};

// What GET /v1/elections/{name} shows. The revision changes with every leader or value change.
struct ElectionView {
  std::string name;
  std::optional<ElectionLeaderView> leader;
  raft::Index revision = 0;
  bool operator==(const ElectionView&) const = default;
};

// A lease as the state machine knows it (remaining time is the leader's business, not ours).
struct LeaseView {
  LeaseId lease_id = 0;
  int64_t ttl_ms = 0;
  raft::Index created_index = 0;
  raft::Index revision = 0;            // last change to the lease or what it holds
  std::vector<std::string> locks;      // held, sorted
  std::vector<std::string> elections;  // led, sorted
  bool operator==(const LeaseView&) const = default;
};

// --- Events: what an apply changed that parked requests and observers may be waiting for. ---

// A lock was granted (to the acquirer, or to a queued waiter whose parked request must wake).
struct LockGrantedEvent {
  std::string name;
  LeaseId lease_id = 0;
  std::string owner;
  FencingToken fencing_token = 0;
  bool operator==(const LockGrantedEvent&) const = default;
};

// A lock's holder lease expired and the lock is blocked for `delay_ms` (schedule EndLockDelay).
struct LockDelayStartedEvent {
  std::string name;
  int64_t delay_ms = 0;
  raft::Index started_index = 0;
  bool operator==(const LockDelayStartedEvent&) const = default;
};

// A lease ended (revoked or expired): what it released and which of its waits were cancelled.
struct LeaseEndedEvent {
  LeaseId lease_id = 0;
  bool expired = false;
  std::vector<std::string> released_locks;
  std::vector<std::string> resigned_elections;
  std::vector<std::string> cancelled_lock_waits;
  std::vector<std::string> cancelled_campaigns;
  bool operator==(const LeaseEndedEvent&) const = default;
};

// An election's leader or value changed (observers wake); `leader` is the new state.
struct ElectionChangedEvent {
  std::string name;
  std::optional<ElectionLeaderView> leader;
  raft::Index revision = 0;
  bool operator==(const ElectionChangedEvent&) const = default;
};

using Event =
    std::variant<LockGrantedEvent, LockDelayStartedEvent, LeaseEndedEvent, ElectionChangedEvent>;

enum class Outcome : uint8_t {
  kOk,             // done (create/revoke/expire lease, release, proclaim, resign, ...)
  kGranted,        // the lock is held / the election is led by the requesting lease
  kQueued,         // not granted yet; the lease waits in the FIFO queue
  kLockHeld,       // held by another lease (or in lock-delay) and not waiting
  kNotHolder,      // release with a (lease, token) that is not the holder's
  kNotLeader,      // proclaim/resign by a non-leader, or campaign not elected
  kLeaseNotFound,  // the named lease does not exist
  kLeaseExists,    // create of an existing lease id with another ttl
  kInvalid,        // malformed command or out-of-range argument: nothing changed
};

const char* outcome_name(Outcome outcome);

// What apply() returns (inside std::any) for every command.
struct CommandResult {
  Outcome outcome = Outcome::kInvalid;
  std::string message;           // one sentence for every outcome other than ok/granted/queued
  std::optional<LockView> lock;  // lock commands: the lock after the command
  std::optional<ElectionView> election;  // election commands: the election after the command
  std::optional<LeaseView> lease;        // the lease after the command (revoke/expire: as it ended)
  bool lease_created = false;            // a new lease came into existence at this index
  std::vector<std::string> released;     // revoke/expire: lock names released, sorted
  std::vector<std::string> resigned;     // revoke/expire: election names the lease led, sorted
  std::vector<Event> events;             // in the order they happened
  bool operator==(const CommandResult&) const = default;
};

}  // namespace raftlock::lockservice
