// Commands of the replicated lock state machine and their log encoding (MessagePack).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/result.h"
#include "lockservice/validation.h"
#include "raft/types.h"

namespace raftlock::lockservice {

using FencingToken = raft::Index;  // the log index at which a grant took effect

// Creates a lease. The proposer picks the id (the client's, or one the leader chose).
// Same id and ttl again: idempotent; same id, other ttl: lease_exists.
struct CreateLease {
  LeaseId lease_id = 0;
  int64_t ttl_ms = 0;
  bool operator==(const CreateLease&) const = default;
};

// A client's DELETE of a lease: releases everything it holds (no lock-delay), cancels its waits.
struct RevokeLease {
  LeaseId lease_id = 0;
  bool operator==(const RevokeLease&) const = default;
};

// Proposed by the leader when a lease's TTL ran out: like RevokeLease, but each lock it held enters
// lock-delay for the holder's lock_delay_ms. `created_index`, when non-zero, must match the lease's
// creation index (so a stale expiry never ends a lease re-created under the same id).
struct ExpireLease {
  LeaseId lease_id = 0;
  raft::Index created_index = 0;
  bool operator==(const ExpireLease&) const = default;
};

// Test-and-set of a lock. With `create_lease_ttl_ms`, the lease `lease_id` is created in the same
// entry (the proposer picked the id). `wait`: queue FIFO when held instead of failing.
struct Acquire {
  std::string name;
  LeaseId lease_id = 0;
  std::string owner;
  int64_t lock_delay_ms = 0;
  bool wait = false;
  std::optional<int64_t> create_lease_ttl_ms;
  bool operator==(const Acquire&) const = default;
};

// A parked acquire ran out of wait_ms: leave the queue (answers "granted" if granted meanwhile).
struct CancelWait {
  std::string name;
  LeaseId lease_id = 0;
  bool operator==(const CancelWait&) const = default;
};

// Releases a lock held by (lease_id, fencing_token); the next waiter is granted in the same entry.
struct Release {
  std::string name;
  LeaseId lease_id = 0;
  FencingToken fencing_token = 0;
  bool operator==(const Release&) const = default;
};

// Proposed by the leader once a lock's lock-delay has passed: grants the next waiter, if any.
// `started_index`, when non-zero, must match the index at which the delay began (stale ends are
// no-ops).
struct EndLockDelay {
  std::string name;
  raft::Index started_index = 0;
  bool operator==(const EndLockDelay&) const = default;
};

// Election campaign: become leader if there is none, else queue FIFO (wait) or fail.
struct Campaign {
  std::string name;
  LeaseId lease_id = 0;
  std::string value;
  bool wait = false;
  std::optional<int64_t> create_lease_ttl_ms;
  bool operator==(const Campaign&) const = default;
};

// The leader (lease_id, fencing_token) publishes a new value.
struct Proclaim {
  std::string name;
  LeaseId lease_id = 0;
  FencingToken fencing_token = 0;
  std::string value;
  bool operator==(const Proclaim&) const = default;
};

// The leader (lease_id, fencing_token) steps down; the next candidate takes over in the same entry.
struct Resign {
  std::string name;
  LeaseId lease_id = 0;
  FencingToken fencing_token = 0;
  bool operator==(const Resign&) const = default;
};

// A parked campaign ran out of wait_ms: leave the candidate queue (answers "granted" if elected).
struct CancelCampaign {
  std::string name;
  LeaseId lease_id = 0;
  bool operator==(const CancelCampaign&) const = default;
};

using Command = std::variant<CreateLease, RevokeLease, ExpireLease, Acquire, CancelWait, Release,
                             EndLockDelay, Campaign, Proclaim, Resign, CancelCampaign>;

// Short snake_case name of the command kind ("acquire", "release", ...), for logs and metrics.
const char* command_name(const Command& command);

// Serialises a command for the Raft log (MessagePack). Deterministic: byte for byte what
// detail::encode_command_generic (nlohmann's to_msgpack of the command's object) writes.
std::string encode_command(const Command& command);

// Parses a log entry's bytes. Never throws: malformed bytes give ErrorCode::kInvalidArgument.
// Checks structure and types only; value ranges are checked when the command is applied.
// A command in the shape encode_command writes is read straight from its bytes; anything else
// (another key order is fine, but e.g. nested values, map16, duplicate keys, trailing bytes, a
// missing or mistyped field) goes through detail::decode_command_generic, so the two agree on
// every input: the same command, or the same error.
Result<Command> decode_command(std::string_view bytes);

namespace detail {
// The command as a nlohmann object with an "op" member, through to_msgpack: the encoding's
// definition, and the oracle encode_command's tests compare with.
std::string encode_command_generic(const Command& command);
// The general decoder (nlohmann's MessagePack parser and typed field readers): decode_command's
// fallback, and the oracle its tests compare with.
Result<Command> decode_command_generic(std::string_view bytes);
}  // namespace detail

}  // namespace raftlock::lockservice
