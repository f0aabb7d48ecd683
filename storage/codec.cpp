#include "storage/codec.h"

#include <exception>
#include <nlohmann/json.hpp>
#include <set>

namespace raftlock::storage {

using json = nlohmann::json;

std::string encode_configuration(const raft::Configuration& config) {
  json members = json::array();
  for (const auto& member : config.members) {
    // A binary value keeps the context byte for byte; JSON strings would demand UTF-8.
    json context = json::binary(std::vector<uint8_t>(member.context.begin(), member.context.end()));
    members.push_back(
        {{"id", member.id}, {"voter", member.voter}, {"context", std::move(context)}});
  }
  json document = {{"members", std::move(members)}};
  std::vector<uint8_t> bytes = json::to_msgpack(document);
  return std::string(bytes.begin(), bytes.end());
}

Result<raft::Configuration> decode_configuration(std::string_view bytes) {
  try {
    const json document = json::from_msgpack(bytes.begin(), bytes.end());
    if (!document.is_object() || !document.contains("members") || !document["members"].is_array()) {
      return make_error(ErrorCode::kCorrupt, "configuration has no \"members\" array");
    }
    raft::Configuration config;
    std::set<raft::NodeId> seen;
    for (const auto& item : document["members"]) {
      if (!item.is_object() || !item.contains("id") || !item["id"].is_number_unsigned() ||
          !item.contains("voter") || !item["voter"].is_boolean() || !item.contains("context") ||
          !item["context"].is_binary()) {
        return make_error(ErrorCode::kCorrupt, "configuration member is malformed");
      }
      raft::Member member;
      member.id = item["id"].get<raft::NodeId>();
      member.voter = item["voter"].get<bool>();
      const auto& context = item["context"].get_binary();
      member.context.assign(context.begin(), context.end());
      if (member.id == raft::kNoNode || !seen.insert(member.id).second) {
        return make_error(ErrorCode::kCorrupt, "configuration has a zero or repeated member id");
      }
      config.members.push_back(std::move(member));
    }
    return config;
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kCorrupt,
                      std::string("configuration is not valid MessagePack: ") + e.what());
  }
}

Status validate_configuration(const raft::Configuration& config) {
  std::set<raft::NodeId> seen;
  for (const auto& member : config.members) {
    if (member.id == raft::kNoNode) {
      return make_error(ErrorCode::kInvalidArgument, "configuration has a member with id 0");
    }
    if (!seen.insert(member.id).second) {
      return make_error(ErrorCode::kInvalidArgument,
                        "configuration lists node " + std::to_string(member.id) + " twice");
    }
  }
  return Ok{};
}

}  // namespace raftlock::storage
