#include "raft/read_only.h"

#include <charconv>

namespace raftlock::raft {

namespace {
constexpr std::string_view kContextPrefix = "read-round:";
}  // namespace

std::string ReadOnlyQueue::context_for(uint64_t seq) {
  return std::string(kContextPrefix) + std::to_string(seq);
}

std::optional<uint64_t> ReadOnlyQueue::parse_context(const std::string& context) {
  if (context.size() <= kContextPrefix.size() ||
      context.compare(0, kContextPrefix.size(), kContextPrefix) != 0) {
    return std::nullopt;
  }
  uint64_t seq = 0;
  const char* begin = context.data() + kContextPrefix.size();
  const char* end = context.data() + context.size();
  auto [ptr, ec] = std::from_chars(begin, end, seq);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return seq;
}

void ReadOnlyQueue::add(ReadRequest request) {
  if (rounds_.empty() || rounds_.back().sent) {
    Round round;
    round.seq = next_seq_++;
    rounds_.push_back(std::move(round));
  }
  rounds_.back().requests.push_back(std::move(request));
}

bool ReadOnlyQueue::should_send_now() const {
  return !rounds_.empty() && !rounds_.front().sent;
}

std::optional<std::string> ReadOnlyQueue::heartbeat_context(Index read_index) {
  if (rounds_.empty()) return std::nullopt;
  Round& newest = rounds_.back();
  if (!newest.sent) {
    // Reads that joined this round all arrived before now, so the read index now (the commit
    // index, or the leader's announced durable index when that is higher) is at least what each
    // of them could have seen committed anywhere: a valid read index for all of them.
    newest.sent = true;
    newest.index = read_index;
  }
  return context_for(newest.seq);
}

void ReadOnlyQueue::record_ack(NodeId from, const std::string& context) {
  auto seq = parse_context(context);
  if (!seq || *seq >= next_seq_) return;  // not one of ours
  uint64_t& acked = acked_[from];
  if (*seq > acked) acked = *seq;
}

std::vector<ConfirmedRead> ReadOnlyQueue::release(const Configuration& config, NodeId self) {
  std::vector<ConfirmedRead> out;
  const std::vector<NodeId> voters = config.voter_ids();
  const size_t quorum = config.quorum();
  if (voters.empty()) return out;
  // An ack for round S confirms leadership after every round <= S was sent, so find the newest
  // sent round a quorum has acknowledged and release it together with all rounds before it.
  auto confirmed = [&](uint64_t seq) {
    size_t acks = 0;
    for (NodeId v : voters) {
      if (v == self) {
        ++acks;
        continue;
      }
      auto it = acked_.find(v);
      if (it != acked_.end() && it->second >= seq) ++acks;
    }
    return acks >= quorum;
  };
  size_t release_count = 0;
  for (size_t i = 0; i < rounds_.size(); ++i) {
    if (rounds_[i].sent && confirmed(rounds_[i].seq)) release_count = i + 1;
  }
  for (size_t i = 0; i < release_count; ++i) {
    for (ReadRequest& r : rounds_.front().requests) {
      out.push_back(ConfirmedRead{rounds_.front().index, std::move(r)});
    }
    rounds_.pop_front();
  }
  return out;
}

void ReadOnlyQueue::clear() {
  rounds_.clear();
  acked_.clear();
}

size_t ReadOnlyQueue::pending_reads() const {
  size_t n = 0;
  for (const Round& r : rounds_) n += r.requests.size();
  return n;
}

}  // namespace raftlock::raft
