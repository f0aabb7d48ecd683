// chaos::History — what the chaos workloads record and the checkers read: client operations with
// their invoke/complete times and results (for the linearizability checker), fencing-register
// events, election observations and the acknowledged-write ledger for the durability check.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace raftlock::chaos {

// Times are nanoseconds on one monotonic clock of the harness process.
using Nanos = int64_t;
constexpr Nanos kNeverCompleted = std::numeric_limits<Nanos>::max();

enum class OpKind {
  kLeaseGrant,      // POST /v1/leases {lease_id, ttl_ms}           (client picks the id)
  kLeaseKeepalive,  // POST /v1/leases/{id}/keepalive
  kLeaseRevoke,     // DELETE /v1/leases/{id}
  kAcquire,         // POST /v1/locks/{name}/acquire {lease_id, wait_ms}
  kRelease,         // POST /v1/locks/{name}/release {lease_id, fencing_token}
  kLockRead,        // GET /v1/locks/{name}   (linearizable, the default consistency)
};

enum class OpStatus {
  kOk,       // 2xx: the operation took effect / the read answered
  kError,    // a definite error answer naming the state (409 lock_held / not_holder /
             // lease_exists, 404 lease_not_found): the operation was linearized and observed this
  kUnknown,  // no answer, timeout, 503, 500: it may or may not have taken effect, at any time
             // after its invocation (complete_ns is kNeverCompleted)
};

// The holder a lock read or a 409 reported.
struct Holder {
  uint64_t lease_id = 0;
  uint64_t fencing_token = 0;
  bool operator==(const Holder&) const = default;
};

struct Operation {
  uint64_t id = 0;  // unique in the history
  int client = 0;   // the client (process) that issued it; one operation at a time per client
  int node = 0;     // the node it was sent to
  OpKind kind = OpKind::kLockRead;
  Nanos invoke_ns = 0;
  Nanos complete_ns = kNeverCompleted;
  OpStatus status = OpStatus::kUnknown;
  std::string error_code;  // kError: "lock_held", "not_holder", "lease_not_found", "lease_exists"

  // Arguments.
  std::string lock;       // acquire, release, read
  uint64_t lease_id = 0;  // lease ops, acquire, release
  uint64_t token = 0;     // release: the fencing token presented
  int64_t ttl_ms = 0;     // lease grant
  int64_t wait_ms = 0;    // acquire

  // Results.
  uint64_t granted_token = 0;    // acquire kOk
  std::optional<Holder> holder;  // read kOk (nullopt = free); 409 lock_held / not_holder holder
  int64_t remaining_ms = 0;      // keepalive kOk
};

// A whole run's client history, in invocation order.
struct History {
  std::vector<Operation> operations;
};

// One attempt to write to the fencing-checking register guarded by the lock.
struct FencingWrite {
  int client = 0;
  uint64_t token = 0;
  bool accepted = false;  // the register accepts a token only if >= the largest it has seen
  Nanos at_ns = 0;
};

// A granted acquire as the fencing workload saw it (invoke and complete of the acquire request).
struct Grant {
  int client = 0;
  uint64_t token = 0;
  uint64_t lease_id = 0;
  Nanos invoke_ns = 0;
  Nanos complete_ns = 0;
};

struct FencingRecord {
  std::vector<Grant> grants;
  std::vector<FencingWrite> writes;  // in the order the register processed them
};

// One state of an election as seen by an observer (GET / observe answer).
struct ElectionObservation {
  int observer = 0;
  int node = 0;                  // the node that answered
  uint64_t revision = 0;         // the election's revision in that answer
  std::optional<Holder> leader;  // nullopt = no leader
  std::string value;             // the leader's value
  Nanos at_ns = 0;               // when the answer arrived
};

// A campaign that returned 200: this lease was told it is leader with this token.
struct ElectionWin {
  int candidate = 0;
  uint64_t lease_id = 0;
  uint64_t fencing_token = 0;
  Nanos invoke_ns = 0;
  Nanos complete_ns = 0;
};

struct ElectionRecord {
  std::vector<ElectionObservation> observations;  // in arrival order per observer
  std::vector<ElectionWin> wins;
};

// What the cluster acknowledged (2xx) and must therefore still show after every node crashed and
// restarted, unless a later acknowledged operation (or a lease end) changed it.
struct AckedWrite {
  enum class Kind { kLeaseGranted, kLeaseRevoked, kLockGranted, kLockReleased };
  Kind kind = Kind::kLockGranted;
  uint64_t lease_id = 0;
  std::string lock;
  uint64_t token = 0;
  Nanos complete_ns = 0;
};

// The state read back from a node after the crash and restart.
struct ObservedLock {
  std::string name;
  std::optional<Holder> holder;
  uint64_t revision = 0;
};
struct ObservedState {
  std::vector<ObservedLock> locks;
  std::vector<uint64_t> live_leases;  // lease ids that answered GET /v1/leases/{id} with 200
  uint64_t applied_index = 0;
};

// A checker's verdict: ok, or what is wrong (one line each) plus the operations involved.
struct Verdict {
  bool ok = true;
  bool inconclusive = false;  // the search ran out of its budget: neither proven nor refuted
  std::vector<std::string> anomalies;
  std::vector<uint64_t> operation_ids;  // the operations named by the anomalies (may be empty)
};

}  // namespace raftlock::chaos
