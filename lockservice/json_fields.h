// Typed, non-throwing field readers for decoded MessagePack objects (commands and snapshots).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace raftlock::lockservice::json_fields {

// Parses MessagePack bytes without throwing; a malformed buffer gives `code`.
Result<nlohmann::json> parse_msgpack(std::string_view bytes, ErrorCode code);

// Each reader fails with `code` and a message naming the field when it is missing or mistyped.
Result<uint64_t> read_u64(const nlohmann::json& object, std::string_view key, ErrorCode code);
Result<int64_t> read_i64(const nlohmann::json& object, std::string_view key, ErrorCode code);
Result<bool> read_bool(const nlohmann::json& object, std::string_view key, ErrorCode code);
Result<std::string> read_string(const nlohmann::json& object, std::string_view key, ErrorCode code);
// Absent or null gives std::nullopt.
Result<std::optional<int64_t>> read_optional_i64(const nlohmann::json& object, std::string_view key,
                                                 ErrorCode code);
// The member (any type) or an error when missing.
Result<const nlohmann::json*> read_member(const nlohmann::json& object, std::string_view key,
                                          ErrorCode code);

}  // namespace raftlock::lockservice::json_fields
