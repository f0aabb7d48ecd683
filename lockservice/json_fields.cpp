#include "lockservice/json_fields.h"

#include <limits>

namespace raftlock::lockservice::json_fields {

using nlohmann::json;

Result<json> parse_msgpack(std::string_view bytes, ErrorCode code) {
  try {
    json parsed = json::from_msgpack(bytes.begin(), bytes.end(), /*strict=*/true,
                                     /*allow_exceptions=*/false);
    if (parsed.is_discarded()) return make_error(code, "bytes are not valid MessagePack");
    return parsed;
  } catch (const std::exception& e) {
    return make_error(code, std::string("bytes are not valid MessagePack: ") + e.what());
  }
}

Result<const json*> read_member(const json& object, std::string_view key, ErrorCode code) {
  if (!object.is_object()) return make_error(code, "expected an object");
  auto it = object.find(key);
  if (it == object.end()) return make_error(code, "missing field '" + std::string(key) + "'");
  return &*it;
}

Result<uint64_t> read_u64(const json& object, std::string_view key, ErrorCode code) {
  auto member = read_member(object, key, code);
  if (!member) return member.error();
  const json& value = **member;
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    return static_cast<uint64_t>(value.get<int64_t>());
  }
  return make_error(code, "field '" + std::string(key) + "' must be a non-negative integer");
}

Result<int64_t> read_i64(const json& object, std::string_view key, ErrorCode code) {
  auto member = read_member(object, key, code);
  if (!member) return member.error();
  const json& value = **member;
  if (value.is_number_unsigned()) {
    uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return make_error(code, "field '" + std::string(key) + "' is out of range");
    }
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return make_error(code, "field '" + std::string(key) + "' must be an integer");
}

Result<bool> read_bool(const json& object, std::string_view key, ErrorCode code) {
  auto member = read_member(object, key, code);
  if (!member) return member.error();
  if (!(*member)->is_boolean()) {
    return make_error(code, "field '" + std::string(key) + "' must be a boolean");
  }
  return (*member)->get<bool>();
}

Result<std::string> read_string(const json& object, std::string_view key, ErrorCode code) {
  auto member = read_member(object, key, code);
  if (!member) return member.error();
  if (!(*member)->is_string()) {
    return make_error(code, "field '" + std::string(key) + "' must be a string");
  }
  return (*member)->get<std::string>();
}

Result<std::optional<int64_t>> read_optional_i64(const json& object, std::string_view key,
                                                 ErrorCode code) {
  if (!object.is_object()) return make_error(code, "expected an object");
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::optional<int64_t>{};
  auto value = read_i64(object, key, code);
  if (!value) return value.error();
  return std::optional<int64_t>{*value};
}

}  // namespace raftlock::lockservice::json_fields
