#include "raft/membership.h"

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "raft/core.h"

namespace raftlock::raft {

Status validate_conf_change(const Configuration& config, const ConfChange& change) {
  if (change.node_id == kNoNode) {
    return make_error(ErrorCode::kInvalidArgument, "conf change needs a non-zero node id");
  }
  const Member* member = config.find(change.node_id);
  switch (change.type) {
    case ConfChangeType::kAddLearner:
      if (member != nullptr) {
        return make_error(ErrorCode::kInvalidArgument,
                          "node " + std::to_string(change.node_id) + " is already a member");
      }
      return Ok{};
    case ConfChangeType::kPromote:
      if (member == nullptr || member->voter) {
        return make_error(ErrorCode::kInvalidArgument,
                          "node " + std::to_string(change.node_id) + " is not a learner");
      }
      return Ok{};
    case ConfChangeType::kRemove:
      if (member == nullptr) {
        return make_error(ErrorCode::kInvalidArgument,
                          "node " + std::to_string(change.node_id) + " is not a member");
      }
      if (member->voter && config.voter_ids().size() == 1) {
        return make_error(ErrorCode::kInvalidArgument, "cannot remove the last voter");
      }
      return Ok{};
  }
  return make_error(ErrorCode::kInvalidArgument, "unknown conf change type");
}

bool apply_conf_change(Configuration& config, const ConfChange& change) {
  auto& members = config.members;
  auto it = std::find_if(members.begin(), members.end(),
                         [&](const Member& m) { return m.id == change.node_id; });
  switch (change.type) {
    case ConfChangeType::kAddLearner: {
      if (it != members.end() || change.node_id == kNoNode) return false;
      Member m{change.node_id, false, change.context};
      auto pos = std::lower_bound(members.begin(), members.end(), m.id,
                                  [](const Member& a, NodeId id) { return a.id < id; });
      members.insert(pos, std::move(m));
      return true;
    }
    case ConfChangeType::kPromote:
      if (it == members.end() || it->voter) return false;
      it->voter = true;
      return true;
    case ConfChangeType::kRemove:
      if (it == members.end()) return false;
      members.erase(it);
      return true;
  }
  return false;
}

// ConfChange entry data: a MessagePack map {"type": uint, "node": uint, "context": string}.
std::string encode_conf_change(const ConfChange& change) {
  nlohmann::json j = {{"type", static_cast<uint64_t>(change.type)},
                      {"node", change.node_id},
                      {"context", change.context}};
  std::vector<uint8_t> bytes = nlohmann::json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

Result<ConfChange> decode_conf_change(const std::string& data) {
  // Parse without exceptions: malformed input yields a "discarded" value.
  nlohmann::json j =
      nlohmann::json::from_msgpack(data, /*strict=*/true, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return make_error(ErrorCode::kCorrupt, "conf change: not a MessagePack map");
  }
  auto type = j.find("type");
  auto node = j.find("node");
  auto context = j.find("context");
  if (type == j.end() || !type->is_number_unsigned() || node == j.end() ||
      !node->is_number_unsigned() || context == j.end() || !context->is_string()) {
    return make_error(ErrorCode::kCorrupt, "conf change: missing or mistyped field");
  }
  const uint64_t type_value = type->get<uint64_t>();
  if (type_value > static_cast<uint64_t>(ConfChangeType::kRemove)) {
    return make_error(ErrorCode::kCorrupt,
                      "conf change: unknown type " + std::to_string(type_value));
  }
  ConfChange change;
  change.type = static_cast<ConfChangeType>(type_value);
  change.node_id = node->get<uint64_t>();
  change.context = context->get<std::string>();
  if (change.node_id == kNoNode) return make_error(ErrorCode::kCorrupt, "conf change: node id 0");
  return change;
}

}  // namespace raftlock::raft
