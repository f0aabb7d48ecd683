// http::ProposalForwarder — the follower side of proposal forwarding: commands proposed on a
// follower go to the leader's peer port in batches (everything queued while earlier batches were
// in flight goes in one request), so N concurrent proposals cost about one HTTP exchange and one
// loop round on the leader instead of N. Also the leader side: the route that appends a batch.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/result.h"
#include "http/client_pool.h"
#include "raft/types.h"

namespace httplib {
class Server;
}

namespace raftlock::raft {
class Node;
}

namespace raftlock::http {

// Where a follower sends one command / a batch of commands for the leader to append.
inline constexpr const char* kAppendPath = "/raft/v1/append";
inline constexpr const char* kAppendBatchPath = "/raft/v1/append-batch";

// Request body: for each command, its length (4 bytes, little-endian) and its bytes.
std::string encode_command_batch(const std::vector<std::string>& commands);
// Refuses an empty batch, a truncated length or a command running past the end of the body.
Result<std::vector<std::string>> decode_command_batch(std::string_view body);

// Answer body (JSON): {"results":[{"index":I,"term":T} | {"code":C,"message":M}, ...]}, one per
// command in order.
std::string encode_batch_answer(const std::vector<Result<raft::EntryId>>& results);
// Refuses anything but exactly `expected` well-formed results.
Result<std::vector<Result<raft::EntryId>>> decode_batch_answer(std::string_view body,
                                                               size_t expected);

// Leader side: installs kAppendPath (one command, answered {"index","term"}) and
// kAppendBatchPath on the peer server. A request from another cluster gets 403, a malformed batch
// 400, a command this node cannot append (not the leader) 409; else 200 with where each command
// was appended.
void install_append_routes(httplib::Server& server, raft::Node& node, std::string cluster_id);

struct ProposalForwarderOptions {
  std::string cluster_id;    // sent as X-Raftlock-Cluster: the leader refuses other clusters
  std::string self_id;       // sent as X-Raftlock-From
  size_t max_in_flight = 4;  // batches in flight at once (one sender thread each)
  size_t max_batch_commands = 1024;
  size_t max_batch_bytes = 4u << 20;  // a single larger command still goes (alone)
  ClientPoolOptions pool;
};

class ProposalForwarder {
 public:
  // Where the leader gets the answer: where its entry was appended, or why not. kNoLeader: the
  // leader did not append it (never sent, or refused): a retry is safe. kTimeout: sent but the
  // answer is missing or unreadable: the outcome is unknown. kUnavailable: stopping.
  using Done = std::function<void(Result<raft::EntryId>)>;
  // The peer address ("host:port") of a node, if known.
  using AddressLookup = std::function<std::optional<std::string>(raft::NodeId)>;

  ProposalForwarder(ProposalForwarderOptions options, AddressLookup address_of);
  ~ProposalForwarder();
  ProposalForwarder(const ProposalForwarder&) = delete;
  ProposalForwarder& operator=(const ProposalForwarder&) = delete;

  // Queues `command` for `leader`; never blocks on the network. `done` is called exactly once,
  // from a sender thread (or from this call when stopped).
  void forward(raft::NodeId leader, std::string command, Done done);
  // Fails what is queued with kUnavailable and joins the sender threads. Idempotent.
  void stop();

  uint64_t batches_sent() const { return batches_sent_.load(); }
  uint64_t commands_sent() const { return commands_sent_.load(); }

 private:
  struct Item {
    raft::NodeId leader;
    std::string command;
    Done done;
  };
  void run_sender();
  void send_batch(raft::NodeId leader, std::vector<Item> batch);

  ProposalForwarderOptions options_;
  AddressLookup address_of_;
  ClientPool clients_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  std::vector<std::thread> senders_;
  std::atomic<uint64_t> batches_sent_{0};
  std::atomic<uint64_t> commands_sent_{0};
};

}  // namespace raftlock::http
