// Raft vocabulary shared by the core, storage, transport and runtime: entries, messages, state.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace raftlock::raft {

using NodeId = uint64_t;  // 0 means "nobody"
using Term = uint64_t;
using Index = uint64_t;

inline constexpr NodeId kNoNode = 0;

enum class EntryType : uint8_t {
  kNormal = 0,      // an application command (data is opaque to Raft)
  kNoop = 1,        // appended by a new leader to commit entries of earlier terms (data empty)
  kConfChange = 2,  // a membership change (data is an encoded ConfChange)
};

struct Entry {
  Term term = 0;
  Index index = 0;
  EntryType type = EntryType::kNormal;
  std::string data;

  bool operator==(const Entry&) const = default;
};

// The state Raft must persist before answering any message (term, vote) plus the commit index.
struct HardState {
  Term term = 0;
  NodeId vote = kNoNode;
  Index commit = 0;

  bool operator==(const HardState&) const = default;
};

// One member of the cluster. `context` is opaque to the core (the runtime keeps the peer address).
struct Member {
  NodeId id = kNoNode;
  bool voter = true;
  std::string context;

  bool operator==(const Member&) const = default;
};

// The cluster membership: voters count towards quorums, learners (non-voters) only replicate.
struct Configuration {
  std::vector<Member> members;  // sorted by id, ids unique

  bool operator==(const Configuration&) const = default;
  const Member* find(NodeId id) const;
  bool contains(NodeId id) const { return find(id) != nullptr; }
  bool is_voter(NodeId id) const;
  std::vector<NodeId> voter_ids() const;
  std::vector<NodeId> ids() const;
  size_t quorum() const { return voter_ids().size() / 2 + 1; }
};

enum class ConfChangeType : uint8_t {
  kAddLearner = 0,  // add a non-voting member that replicates the log
  kPromote = 1,     // turn a learner into a voter
  kRemove = 2,      // remove a member (voter or learner)
};

// A single-server membership change (Raft thesis §4.1). Effective as soon as it is appended.
struct ConfChange {
  ConfChangeType type = ConfChangeType::kAddLearner;
  NodeId node_id = kNoNode;
  std::string context;  // for kAddLearner: the member's context (peer address)

  bool operator==(const ConfChange&) const = default;
};

struct SnapshotMeta {
  Index index = 0;  // last index covered by the snapshot
  Term term = 0;    // term of that entry
  Configuration config;

  bool operator==(const SnapshotMeta&) const = default;
};

struct Snapshot {
  SnapshotMeta meta;
  std::shared_ptr<const std::string> data;  // the state machine's serialised state (never null)
};

enum class MessageType : uint8_t {
  kPreVote = 0,  // "would you vote for me in term+1?" (term = proposed term, not adopted)
  kPreVoteResponse = 1,
  kVote = 2,            // index/log_term = candidate's last log index/term
  kVoteResponse = 3,    // reject = vote refused
  kAppend = 4,          // index/log_term = previous entry; entries; commit
  kAppendResponse = 5,  // success: index = last index matched; reject: see reject_* fields
  kHeartbeat = 6,       // commit = min(leader commit, follower match); context = read-index round
  kHeartbeatResponse = 7,   // context echoed
  kSnapshot = 8,            // snapshot set
  kTimeoutNow = 9,          // leadership transfer: start an election now, skipping pre-vote
  kReadIndex = 10,          // follower -> leader: please give me a read index for `context`
  kReadIndexResponse = 11,  // leader -> follower: index = read index for `context` (reject: none)
  // Proposal forwarding between node runtimes (never stepped into the core): a follower asks the
  // leader to append entries[i].data; context names the request; index = kForwardMayWait when
  // every command in it may wait for the leader's next append (Urgency::kMayWait).
  kForward = 12,
  // Leader -> follower: entries[i] = (index, term) where command i was appended, in order; reject:
  // the rest were refused, reject_hint = their ErrorCode. context echoed.
  kForwardResponse = 13,
  // Leader -> follower, 3-voter (or 2-voter) clusters only: the leader has durably stored its log
  // through `index`, whose entry has term `log_term` (its own term); commit = the leader's commit.
  // A follower whose log has that entry commits, by itself, whatever of it it has stored too: two
  // copies are a quorum. No response. See Core::Impl::announce_durable.
  kDurable = 14,
};

const char* message_type_name(MessageType type);

// Sent only by the leader of the message's term, naming it leader to whoever receives it.
inline bool names_the_leader(MessageType type) {
  return type == MessageType::kAppend || type == MessageType::kHeartbeat ||
         type == MessageType::kSnapshot || type == MessageType::kDurable;
}

// kForward's `index` when all its commands may wait (0 otherwise, and from older versions).
inline constexpr uint64_t kForwardMayWait = 1;

struct Message {
  MessageType type = MessageType::kAppend;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  Term term = 0;
  Term log_term = 0;
  Index index = 0;
  Index commit = 0;
  std::vector<Entry> entries;
  bool reject = false;
  // Fast backtracking (kAppendResponse with reject): the follower's term at the conflicting index
  // (0 when its log is too short) and the first index it holds for that term (or its last index +
  // 1).
  Term reject_term = 0;
  Index reject_hint = 0;
  std::optional<Snapshot> snapshot;
  std::string context;
};

enum class Role : uint8_t { kFollower = 0, kPreCandidate = 1, kCandidate = 2, kLeader = 3 };

const char* role_name(Role role);

struct SoftState {
  Role role = Role::kFollower;
  NodeId leader_id = kNoNode;
  Term term = 0;

  bool operator==(const SoftState&) const = default;
};

// A read request whose read index is now known: serve it once applied_index >= index.
struct ReadState {
  Index index = 0;
  std::string context;
};

// (index, term) names one entry uniquely (log matching).
struct EntryId {
  Index index = 0;
  Term term = 0;

  bool operator==(const EntryId&) const = default;
};

}  // namespace raftlock::raft
