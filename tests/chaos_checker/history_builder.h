// HistoryBuilder: writes hand-made client histories for the checker tests, one call per operation.
#pragma once

#include <deque>
#include <optional>
#include <string>

#include "history.h"

namespace raftlock::chaos::testing {

class HistoryBuilder {
 public:
  // Lease operations.
  Operation& grant(int client, uint64_t lease, Nanos invoke, Nanos complete, int64_t ttl = 10000) {
    Operation& op = add(OpKind::kLeaseGrant, client, invoke, complete);
    op.lease_id = lease;
    op.ttl_ms = ttl;
    return op;
  }
  Operation& keepalive(int client, uint64_t lease, Nanos invoke, Nanos complete) {
    Operation& op = add(OpKind::kLeaseKeepalive, client, invoke, complete);
    op.lease_id = lease;
    return op;
  }
  Operation& revoke(int client, uint64_t lease, Nanos invoke, Nanos complete) {
    Operation& op = add(OpKind::kLeaseRevoke, client, invoke, complete);
    op.lease_id = lease;
    return op;
  }

  // Lock operations; acquire/read are ok unless marked otherwise with the helpers below.
  Operation& acquire(int client, const std::string& lock, uint64_t lease, Nanos invoke,
                     Nanos complete, uint64_t token) {
    Operation& op = add(OpKind::kAcquire, client, invoke, complete);
    op.lock = lock;
    op.lease_id = lease;
    op.granted_token = token;
    return op;
  }
  Operation& release(int client, const std::string& lock, uint64_t lease, uint64_t token,
                     Nanos invoke, Nanos complete) {
    Operation& op = add(OpKind::kRelease, client, invoke, complete);
    op.lock = lock;
    op.lease_id = lease;
    op.token = token;
    return op;
  }
  Operation& read(int client, const std::string& lock, Nanos invoke, Nanos complete,
                  std::optional<Holder> holder) {
    Operation& op = add(OpKind::kLockRead, client, invoke, complete);
    op.lock = lock;
    op.holder = holder;
    return op;
  }

  // Turns `op` into a definite error answer (with the reported holder for 409s).
  static Operation& error(Operation& op, const std::string& code,
                          std::optional<Holder> holder = std::nullopt) {
    op.status = OpStatus::kError;
    op.error_code = code;
    op.holder = holder;
    op.granted_token = 0;
    return op;
  }
  // Turns `op` into an indeterminate one (no answer).
  static Operation& unknown(Operation& op) {
    op.status = OpStatus::kUnknown;
    op.complete_ns = kNeverCompleted;
    op.granted_token = 0;
    op.holder.reset();
    return op;
  }

  History history() const { return History{{ops_.begin(), ops_.end()}}; }

 private:
  Operation& add(OpKind kind, int client, Nanos invoke, Nanos complete) {
    Operation op;
    op.id = next_id_++;
    op.client = client;
    op.node = client % 3 + 1;
    op.kind = kind;
    op.invoke_ns = invoke;
    op.complete_ns = complete;
    op.status = OpStatus::kOk;
    ops_.push_back(op);  // a deque: references to earlier operations stay valid
    return ops_.back();
  }

  std::deque<Operation> ops_;
  uint64_t next_id_ = 1;
};

inline Holder H(uint64_t lease, uint64_t token) {
  return Holder{lease, token};
}

}  // namespace raftlock::chaos::testing
