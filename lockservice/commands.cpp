#include "lockservice/commands.h"

#include <nlohmann/json.hpp>

#include "lockservice/json_fields.h"

namespace raftlock::lockservice {

namespace {

using nlohmann::json;
using namespace json_fields;

constexpr ErrorCode kBad = ErrorCode::kInvalidArgument;

// The op tag written into each encoded command; the order matches Command's alternatives.
constexpr const char* kOpNames[] = {"create_lease", "revoke_lease", "expire_lease",   "acquire",
                                    "cancel_wait",  "release",      "end_lock_delay", "campaign",
                                    "proclaim",     "resign",       "cancel_campaign"};
static_assert(std::size(kOpNames) == std::variant_size_v<Command>);

json to_object(const CreateLease& c) {
  return {{"lease_id", c.lease_id}, {"ttl_ms", c.ttl_ms}};
}
json to_object(const RevokeLease& c) {
  return {{"lease_id", c.lease_id}};
}
json to_object(const ExpireLease& c) {
  return {{"lease_id", c.lease_id}, {"created_index", c.created_index}};
}
json to_object(const Acquire& c) {
  json o = {{"name", c.name},
            {"lease_id", c.lease_id},
            {"owner", c.owner},
            {"lock_delay_ms", c.lock_delay_ms},
            {"wait", c.wait}};
  if (c.create_lease_ttl_ms) o["create_lease_ttl_ms"] = *c.create_lease_ttl_ms;
  return o;
}
json to_object(const CancelWait& c) {
  return {{"name", c.name}, {"lease_id", c.lease_id}};
}
json to_object(const Release& c) {
  return {{"name", c.name}, {"lease_id", c.lease_id}, {"fencing_token", c.fencing_token}};
}
json to_object(const EndLockDelay& c) {
  return {{"name", c.name}, {"started_index", c.started_index}};
}
json to_object(const Campaign& c) {
  json o = {{"name", c.name}, {"lease_id", c.lease_id}, {"value", c.value}, {"wait", c.wait}};
  if (c.create_lease_ttl_ms) o["create_lease_ttl_ms"] = *c.create_lease_ttl_ms;
  return o;
}
json to_object(const Proclaim& c) {
  return {{"name", c.name},
          {"lease_id", c.lease_id},
          {"fencing_token", c.fencing_token},
          {"value", c.value}};
}
json to_object(const Resign& c) {
  return {{"name", c.name}, {"lease_id", c.lease_id}, {"fencing_token", c.fencing_token}};
}
json to_object(const CancelCampaign& c) {
  return {{"name", c.name}, {"lease_id", c.lease_id}};
}

// Reads `field` of `o` into `out`, returning early from the enclosing decoder on error.
#define READ_FIELD(out, reader, key)    \
  do {                                  \
    auto field_ = reader(o, key, kBad); \
    if (!field_) return field_.error(); \
    out = std::move(*field_);           \
  } while (false)

Result<Command> decode_object(std::string_view op, const json& o) {
  if (op == "create_lease") {
    CreateLease c;
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.ttl_ms, read_i64, "ttl_ms");
    return Command{c};
  }
  if (op == "revoke_lease") {
    RevokeLease c;
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    return Command{c};
  }
  if (op == "expire_lease") {
    ExpireLease c;
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.created_index, read_u64, "created_index");
    return Command{c};
  }
  if (op == "acquire") {
    Acquire c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.owner, read_string, "owner");
    READ_FIELD(c.lock_delay_ms, read_i64, "lock_delay_ms");
    READ_FIELD(c.wait, read_bool, "wait");
    READ_FIELD(c.create_lease_ttl_ms, read_optional_i64, "create_lease_ttl_ms");
    return Command{std::move(c)};
  }
  if (op == "cancel_wait") {
    CancelWait c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    return Command{std::move(c)};
  }
  if (op == "release") {
    Release c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.fencing_token, read_u64, "fencing_token");
    return Command{std::move(c)};
  }
  if (op == "end_lock_delay") {
    EndLockDelay c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.started_index, read_u64, "started_index");
    return Command{std::move(c)};
  }
  if (op == "campaign") {
    Campaign c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.value, read_string, "value");
    READ_FIELD(c.wait, read_bool, "wait");
    READ_FIELD(c.create_lease_ttl_ms, read_optional_i64, "create_lease_ttl_ms");
    return Command{std::move(c)};
  }
  if (op == "proclaim") {
    Proclaim c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.fencing_token, read_u64, "fencing_token");
    READ_FIELD(c.value, read_string, "value");
    return Command{std::move(c)};
  }
  if (op == "resign") {
    Resign c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.fencing_token, read_u64, "fencing_token");
    return Command{std::move(c)};
  }
  if (op == "cancel_campaign") {
    CancelCampaign c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    return Command{std::move(c)};
  }
  return make_error(kBad, "unknown command op '" + std::string(op) + "'");
}

#undef READ_FIELD

}  // namespace

const char* command_name(const Command& command) {
  return kOpNames[command.index()];
}

std::string encode_command(const Command& command) {
  json object = std::visit([](const auto& c) { return to_object(c); }, command);
  object["op"] = command_name(command);
  std::vector<uint8_t> bytes = json::to_msgpack(object);
  return std::string(bytes.begin(), bytes.end());
}

Result<Command> decode_command(std::string_view bytes) {
  try {
    auto parsed = parse_msgpack(bytes, kBad);
    if (!parsed) return make_error(kBad, "command " + parsed.error().message);
    if (!parsed->is_object()) return make_error(kBad, "command is not a MessagePack map");
    auto op = read_string(*parsed, "op", kBad);
    if (!op) return make_error(kBad, "command " + op.error().message);
    auto command = decode_object(*op, *parsed);
    if (!command) return make_error(kBad, *op + " command: " + command.error().message);
    return command;
  } catch (const std::exception& e) {
    return make_error(kBad, std::string("command could not be decoded: ") + e.what());
  }
}

}  // namespace raftlock::lockservice
