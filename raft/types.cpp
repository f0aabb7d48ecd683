#include "raft/types.h"

#include <algorithm>

namespace raftlock::raft {

const Member* Configuration::find(NodeId id) const {
  auto it =
      std::find_if(members.begin(), members.end(), [id](const Member& m) { return m.id == id; });
  return it == members.end() ? nullptr : &*it;
}

bool Configuration::is_voter(NodeId id) const {
  const Member* m = find(id);
  return m != nullptr && m->voter;
}

std::vector<NodeId> Configuration::voter_ids() const {
  std::vector<NodeId> out;
  for (const auto& m : members)
    if (m.voter) out.push_back(m.id);
  return out;
}

std::vector<NodeId> Configuration::ids() const {
  std::vector<NodeId> out;
  for (const auto& m : members) out.push_back(m.id);
  return out;
}

const char* message_type_name(MessageType type) {
  switch (type) {
    case MessageType::kPreVote:
      return "PreVote";
    case MessageType::kPreVoteResponse:
      return "PreVoteResponse";
    case MessageType::kVote:
      return "Vote";
    case MessageType::kVoteResponse:
      return "VoteResponse";
    case MessageType::kAppend:
      return "Append";
    case MessageType::kAppendResponse:
      return "AppendResponse";
    case MessageType::kHeartbeat:
      return "Heartbeat";
    case MessageType::kHeartbeatResponse:
      return "HeartbeatResponse";
    case MessageType::kSnapshot:
      return "Snapshot";
    case MessageType::kTimeoutNow:
      return "TimeoutNow";
    case MessageType::kReadIndex:
      return "ReadIndex";
    case MessageType::kReadIndexResponse:
      return "ReadIndexResponse";
    case MessageType::kForward:
      return "Forward";
    case MessageType::kForwardResponse:
      return "ForwardResponse";
    case MessageType::kDurable:
      return "Durable";
  }
  return "Unknown";
}

const char* role_name(Role role) {
  switch (role) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre-candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "unknown";
}

}  // namespace raftlock::raft
