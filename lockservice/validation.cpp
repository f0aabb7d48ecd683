#include "lockservice/validation.h"

#include <string>

namespace raftlock::lockservice {

namespace {

bool name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == ':' || c == '@';
}

Status invalid(std::string message) {
  return make_error(ErrorCode::kInvalidArgument, std::move(message));
}

}  // namespace

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (char c : name) {
    if (!name_char(c)) return false;
  }
  return true;
}

bool valid_ttl_ms(int64_t ttl_ms) {
  return ttl_ms >= kMinTtlMs && ttl_ms <= kMaxTtlMs;
}
bool valid_wait_ms(int64_t wait_ms) {
  return wait_ms >= 0 && wait_ms <= kMaxWaitMs;
}
bool valid_owner(std::string_view owner) {
  return owner.size() <= kMaxOwnerLength;
}
bool valid_value(std::string_view value) {
  return value.size() <= kMaxValueLength;
}
bool valid_lock_delay_ms(int64_t lock_delay_ms) {
  return lock_delay_ms >= 0 && lock_delay_ms <= kMaxLockDelayMs;
}
bool valid_lease_id(LeaseId lease_id) {
  return lease_id >= 1 && lease_id <= kMaxLeaseId;
}

Status check_name(std::string_view name) {
  if (valid_name(name)) return Ok{};
  return invalid("name must be 1-256 characters of A-Z a-z 0-9 . _ - : @");
}
Status check_ttl_ms(int64_t ttl_ms) {
  if (valid_ttl_ms(ttl_ms)) return Ok{};
  return invalid("ttl_ms must be between 1000 and 3600000");
}
Status check_wait_ms(int64_t wait_ms) {
  if (valid_wait_ms(wait_ms)) return Ok{};
  return invalid("wait_ms must be between 0 and 300000");
}
Status check_owner(std::string_view owner) {
  if (valid_owner(owner)) return Ok{};
  return invalid("owner must be at most 256 bytes");
}
Status check_value(std::string_view value) {
  if (valid_value(value)) return Ok{};
  return invalid("value must be at most 4096 bytes");
}
Status check_lock_delay_ms(int64_t lock_delay_ms) {
  if (valid_lock_delay_ms(lock_delay_ms)) return Ok{};
  return invalid("lock_delay_ms must be between 0 and 60000");
}
Status check_lease_id(LeaseId lease_id) {
  if (valid_lease_id(lease_id)) return Ok{};
  return invalid("lease_id must be a positive integer below 2^53");
}

}  // namespace raftlock::lockservice
