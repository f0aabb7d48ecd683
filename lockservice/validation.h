// Input limits of the lock service (names, TTLs, waits, sizes) shared by the state machine and
// HTTP.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/result.h"

namespace raftlock::lockservice {

using LeaseId = uint64_t;

inline constexpr size_t kMaxNameLength = 256;
inline constexpr int64_t kMinTtlMs = 1000;
inline constexpr int64_t kMaxTtlMs = 3'600'000;
inline constexpr int64_t kDefaultTtlMs = 10'000;
inline constexpr int64_t kMaxWaitMs = 300'000;
inline constexpr size_t kMaxOwnerLength = 256;
inline constexpr size_t kMaxValueLength = 4096;
inline constexpr int64_t kMaxLockDelayMs = 60'000;
inline constexpr LeaseId kMaxLeaseId = (LeaseId{1} << 53) - 1;  // ids are positive and < 2^53

// 1-256 characters of A-Z a-z 0-9 . _ - : @ (lock and election names).
bool valid_name(std::string_view name);
bool valid_ttl_ms(int64_t ttl_ms);                // 1000..3600000
bool valid_wait_ms(int64_t wait_ms);              // 0..300000
bool valid_owner(std::string_view owner);         // at most 256 bytes
bool valid_value(std::string_view value);         // at most 4096 bytes
bool valid_lock_delay_ms(int64_t lock_delay_ms);  // 0..60000
bool valid_lease_id(LeaseId lease_id);            // 1..2^53-1

// The same checks as Status values carrying one clear sentence (ErrorCode::kInvalidArgument).
Status check_name(std::string_view name);
Status check_ttl_ms(int64_t ttl_ms);
Status check_wait_ms(int64_t wait_ms);
Status check_owner(std::string_view owner);
Status check_value(std::string_view value);
Status check_lock_delay_ms(int64_t lock_delay_ms);
Status check_lease_id(LeaseId lease_id);

}  // namespace raftlock::lockservice
