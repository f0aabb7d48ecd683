// write_failure_report: the seed, the verdict and every field of every operation, as JSON.
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkers.h"

namespace raftlock::chaos {

namespace {

const char* kind_text(OpKind k) {
  switch (k) {
    case OpKind::kLeaseGrant:
      return "lease_grant";
    case OpKind::kLeaseKeepalive:
      return "lease_keepalive";
    case OpKind::kLeaseRevoke:
      return "lease_revoke";
    case OpKind::kAcquire:
      return "acquire";
    case OpKind::kRelease:
      return "release";
    case OpKind::kLockRead:
      return "lock_read";
  }
  return "unknown";
}

const char* status_text(OpStatus s) {
  switch (s) {
    case OpStatus::kOk:
      return "ok";
    case OpStatus::kError:
      return "error";
    case OpStatus::kUnknown:
      return "unknown";
  }
  return "unknown";
}

nlohmann::json holder_json(const std::optional<Holder>& h) {
  if (!h) return nullptr;
  return {{"lease_id", h->lease_id}, {"fencing_token", h->fencing_token}};
}

}  // namespace

bool write_failure_report(const std::string& path, uint64_t seed, const History& history,
                          const Verdict& verdict) {
  nlohmann::json ops = nlohmann::json::array();
  for (const auto& op : history.operations) {
    ops.push_back({
        {"id", op.id},
        {"client", op.client},
        {"node", op.node},
        {"kind", kind_text(op.kind)},
        {"invoke_ns", op.invoke_ns},
        {"complete_ns", op.complete_ns == kNeverCompleted ? nlohmann::json(nullptr)
                                                          : nlohmann::json(op.complete_ns)},
        {"status", status_text(op.status)},
        {"error_code", op.error_code},
        {"lock", op.lock},
        {"lease_id", op.lease_id},
        {"token", op.token},
        {"ttl_ms", op.ttl_ms},
        {"wait_ms", op.wait_ms},
        {"granted_token", op.granted_token},
        {"holder", holder_json(op.holder)},
        {"remaining_ms", op.remaining_ms},
        {"description", describe_operation(op)},
    });
  }
  nlohmann::json report = {
      {"seed", seed},
      {"verdict",
       {{"ok", verdict.ok},
        {"inconclusive", verdict.inconclusive},
        {"anomalies", verdict.anomalies},
        {"operation_ids", verdict.operation_ids}}},
      {"history", ops},
  };
  std::ofstream out(path, std::ios::trunc);
  if (!out) return false;
  out << report.dump(2) << "\n";
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace raftlock::chaos
