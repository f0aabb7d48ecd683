// ReadOnlyQueue — a leader's linearizable reads (Raft thesis §6.4) waiting for a heartbeat round
// acknowledged by a quorum of voters; reads that arrive while a round is out share the next one.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "raft/types.h"

namespace raftlock::raft {

struct ReadRequest {
  std::string context;    // the requester's context, echoed in the answer
  NodeId from = kNoNode;  // requester: the leader itself or a follower that forwarded it
};

struct ConfirmedRead {
  Index index = 0;
  ReadRequest request;
};

class ReadOnlyQueue {
 public:
  // Queues a read: it joins the newest round if that round's heartbeats are not out yet.
  void add(ReadRequest request);
  // True when a round waits to be sent and no earlier round is still waiting for acks.
  bool should_send_now() const;
  // For a heartbeat broadcast: sends the newest round if it is not out yet (its read index is
  // `read_index`, recorded now: at least the commit index), and returns the context of the
  // newest round, if any.
  std::optional<std::string> heartbeat_context(Index read_index);
  // A heartbeat response echoed `context`: `from` confirmed every round up to that one.
  void record_ack(NodeId from, const std::string& context);
  // Removes and returns the reads of every sent round acknowledged by a quorum of the voters of
  // `config` (the leader `self` always counts), in order.
  std::vector<ConfirmedRead> release(const Configuration& config, NodeId self);
  void clear();
  size_t pending_reads() const;

 private:
  struct Round {
    uint64_t seq = 0;
    bool sent = false;
    Index index = 0;  // the commit index when the round's heartbeats went out
    std::vector<ReadRequest> requests;
  };
  static std::string context_for(uint64_t seq);
  static std::optional<uint64_t> parse_context(const std::string& context);

  std::deque<Round> rounds_;
  std::map<NodeId, uint64_t> acked_;  // highest round each peer acknowledged
  uint64_t next_seq_ = 1;             // never reused, even across terms
};

}  // namespace raftlock::raft
