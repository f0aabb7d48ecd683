// Tests for PeerTransport: real transports exchanging messages over loopback sockets.
#include "raft/transport/peer_transport.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "raft/transport/codec.h"
#include "tests/support/eventually.h"
#include "tests/support/loopback_socket.h"

namespace raftlock::raft::transport {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// Polls `done` until it holds or `timeout` (default 5 s) passes; returns whether it held.
template <typename Pred>
bool eventually(Pred done, milliseconds timeout = milliseconds(5000)) {
  return testing::eventually(done, timeout);
}

// A peer that accepts connections (via the kernel backlog) but never reads or answers: paused or
// hung. An address where nothing listens: a dead peer.
using HungPeer = testing::LoopbackSocket;
std::string dead_address() {
  return testing::refusing_address();
}

// Everything one transport delivered, plus its callbacks.
struct Inbox {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<Message> messages;
  std::vector<int64_t> latencies_ns;  // receive time minus the send time carried in `context`
  std::vector<NodeId> unreachable;
  std::vector<std::pair<NodeId, bool>> snapshot_status;
  int handler_calls = 0;

  size_t count() {
    std::lock_guard lock(mutex);
    return messages.size();
  }
  bool wait_for_count(size_t n, milliseconds timeout = milliseconds(5000)) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return messages.size() >= n; });
  }
  size_t unreachable_count(NodeId id) {
    std::lock_guard lock(mutex);
    return std::count(unreachable.begin(), unreachable.end(), id);
  }
};

struct Node {
  std::shared_ptr<Inbox> inbox = std::make_shared<Inbox>();
  std::unique_ptr<PeerTransport> transport;

  std::string address() const { return "127.0.0.1:" + std::to_string(transport->listen_port()); }
};

PeerTransportOptions options_for(NodeId self, std::string cluster = "test-cluster") {
  PeerTransportOptions o;
  o.self = self;
  o.cluster_id = std::move(cluster);
  o.listen_addr = "127.0.0.1:0";
  o.backoff_min = milliseconds(50);
  o.backoff_max = milliseconds(400);
  return o;
}

Node make_node(PeerTransportOptions options) {
  Node node;
  auto inbox = node.inbox;
  node.transport = std::make_unique<PeerTransport>(
      std::move(options),
      [inbox](std::vector<Message> batch) {
        const int64_t received = now_ns();
        std::lock_guard lock(inbox->mutex);
        ++inbox->handler_calls;
        for (auto& m : batch) {
          if (m.context.size() == sizeof(int64_t)) {
            int64_t sent = 0;
            std::memcpy(&sent, m.context.data(), sizeof(sent));
            inbox->latencies_ns.push_back(received - sent);
          }
          inbox->messages.push_back(std::move(m));
        }
        inbox->changed.notify_all();
      },
      [inbox](NodeId id) {
        std::lock_guard lock(inbox->mutex);
        inbox->unreachable.push_back(id);
        inbox->changed.notify_all();
      },
      [inbox](NodeId id, bool ok) {
        std::lock_guard lock(inbox->mutex);
        inbox->snapshot_status.emplace_back(id, ok);
        inbox->changed.notify_all();
      });
  return node;
}

Node started_node(PeerTransportOptions options) {
  Node node = make_node(std::move(options));
  auto status = node.transport->start();
  EXPECT_TRUE(status.ok()) << status.error().message;
  return node;
}

Message append(NodeId from, NodeId to, Index index, std::string data = "cmd") {
  Message m;
  m.type = MessageType::kAppend;
  m.from = from;
  m.to = to;
  m.term = 3;
  m.index = index;
  m.log_term = 3;
  m.commit = index;
  m.entries = {Entry{3, index + 1, EntryType::kNormal, std::move(data)}};
  return m;
}

// A message whose context carries its send time, so the receiver can measure latency.
Message timed(NodeId from, NodeId to, Index index) {
  Message m = append(from, to, index);
  int64_t sent = now_ns();
  m.context.assign(reinterpret_cast<const char*>(&sent), sizeof(sent));
  return m;
}

// Raw POST to a transport's peer port, as a misbehaving node would send it.
int raw_post(const Node& node, const std::string& path, const std::string& body) {
  httplib::Client client("127.0.0.1", node.transport->listen_port());
  auto result = client.Post(path.c_str(), body, "application/msgpack");
  return result ? result->status : -1;
}

TEST(PeerTransportTest, TwoTransportsExchangeBatchesInOrder) {
  Node a = started_node(options_for(1));
  Node b = started_node(options_for(2));
  ASSERT_TRUE(a.transport->set_peer(2, b.address()).ok());
  ASSERT_TRUE(b.transport->set_peer(1, a.address()).ok());

  constexpr int kMessages = 500;
  for (int i = 0; i < kMessages; i += 10) {
    std::vector<Message> burst;
    for (int k = i; k < i + 10; ++k) burst.push_back(append(1, 2, k, "data-" + std::to_string(k)));
    a.transport->send(std::move(burst));
  }
  b.transport->send({append(2, 1, 77, "reply")});

  ASSERT_TRUE(b.inbox->wait_for_count(kMessages));
  ASSERT_TRUE(a.inbox->wait_for_count(1));
  {
    std::lock_guard lock(b.inbox->mutex);
    ASSERT_EQ(b.inbox->messages.size(), static_cast<size_t>(kMessages));
    for (int k = 0; k < kMessages; ++k) {
      const Message& m = b.inbox->messages[k];
      EXPECT_EQ(m.index, static_cast<Index>(k));  // one connection per peer keeps order
      EXPECT_EQ(m.from, 1u);
      EXPECT_EQ(m.to, 2u);
      ASSERT_EQ(m.entries.size(), 1u);
      EXPECT_EQ(m.entries[0].data, "data-" + std::to_string(k));
    }
    // Messages were batched: fewer handler calls (one per POST) than messages.
    EXPECT_LT(b.inbox->handler_calls, kMessages);
  }
  EXPECT_EQ(a.inbox->messages[0].entries[0].data, "reply");

  // The sender counts a batch once its answer arrives, which can be just after delivery.
  ASSERT_TRUE(eventually([&] {
    return a.transport->stats().peer(2)->sent_messages == static_cast<uint64_t>(kMessages);
  }));
  auto sa = a.transport->stats();
  ASSERT_NE(sa.peer(2), nullptr);
  EXPECT_EQ(sa.peer(2)->sent_messages, static_cast<uint64_t>(kMessages));
  EXPECT_GT(sa.peer(2)->sent_bytes, 0u);
  EXPECT_LE(sa.peer(2)->sent_batches, static_cast<uint64_t>(kMessages));
  EXPECT_EQ(sa.peer(2)->send_failures, 0u);
  EXPECT_EQ(sa.peer(2)->received_messages, 1u);
  auto sb = b.transport->stats();
  EXPECT_EQ(sb.peer(1)->received_messages, static_cast<uint64_t>(kMessages));
  EXPECT_EQ(sb.peer(1)->received_bytes, sa.peer(2)->sent_bytes);
  for (uint64_t d : sb.dropped) EXPECT_EQ(d, 0u);
}

TEST(PeerTransportTest, ThreeTransportsAllReachEachOther) {
  std::vector<Node> nodes;
  for (NodeId id = 1; id <= 3; ++id) nodes.push_back(started_node(options_for(id)));
  for (NodeId i = 1; i <= 3; ++i) {
    for (NodeId j = 1; j <= 3; ++j) {
      if (i != j) {
        ASSERT_TRUE(nodes[i - 1].transport->set_peer(j, nodes[j - 1].address()).ok());
      }
    }
  }

  constexpr int kPerPair = 50;
  for (int k = 0; k < kPerPair; ++k) {
    for (NodeId i = 1; i <= 3; ++i) {
      std::vector<Message> batch;
      for (NodeId j = 1; j <= 3; ++j)
        if (i != j) batch.push_back(append(i, j, k));
      nodes[i - 1].transport->send(std::move(batch));
    }
  }
  for (auto& node : nodes) ASSERT_TRUE(node.inbox->wait_for_count(2 * kPerPair));
  for (NodeId j = 1; j <= 3; ++j) {
    std::lock_guard lock(nodes[j - 1].inbox->mutex);
    std::map<NodeId, int> from_counts;
    for (const auto& m : nodes[j - 1].inbox->messages) {
      EXPECT_EQ(m.to, j);
      ++from_counts[m.from];
    }
    EXPECT_EQ(from_counts.size(), 2u);
    for (auto [from, n] : from_counts) EXPECT_EQ(n, kPerPair) << "from " << from;
  }
}

TEST(PeerTransportTest, TakenPortGivesAClearErrorBeforeStarting) {
  HungPeer occupant;  // listens on a port
  ASSERT_TRUE(occupant.ok());
  auto options = options_for(1);
  options.listen_addr = occupant.address();
  Node node = make_node(options);
  auto status = node.transport->start();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().message, "peer address " + occupant.address() + " is in use");
  EXPECT_EQ(node.transport->listen_port(), 0);
  // Nothing is running: sends are refused and counted rather than queued.
  node.transport->send({append(1, 2, 1)});
  EXPECT_EQ(node.transport->stats().dropped_for(DropReason::kNotRunning), 1u);
}

TEST(PeerTransportTest, BadAddressesAreRefused) {
  auto options = options_for(1);
  options.listen_addr = "no-port-here";
  Node node = make_node(options);
  auto status = node.transport->start();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(status.error().message.find("no-port-here"), std::string::npos);

  auto with_bad_peer = options_for(1);
  with_bad_peer.peers[2] = "127.0.0.1:99999";
  Node other = make_node(with_bad_peer);
  status = other.transport->start();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("node 2"), std::string::npos);

  Node good = started_node(options_for(1));
  auto set = good.transport->set_peer(2, "host-without-port");
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(good.transport->stats().peer(2), nullptr);
}

TEST(PeerTransportTest, StartTwiceIsAnError) {
  Node node = started_node(options_for(1));
  auto again = node.transport->start();
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("already started"), std::string::npos);
}

TEST(PeerTransportTest, UnknownSenderIsDroppedAndCounted) {
  Node a = started_node(options_for(1));
  Node b = started_node(options_for(2));  // b has no entry for node 1
  ASSERT_TRUE(a.transport->set_peer(2, b.address()).ok());
  a.transport->send({append(1, 2, 1)});
  ASSERT_TRUE(eventually(
      [&] { return b.transport->stats().dropped_for(DropReason::kUnknownSender) == 1; }));
  // The sender sees the refusal as a failed send.
  ASSERT_TRUE(eventually([&] { return a.inbox->unreachable_count(2) == 1; }));
  EXPECT_EQ(a.transport->stats().peer(2)->send_failures, 1u);
  EXPECT_EQ(b.inbox->count(), 0u);
}

TEST(PeerTransportTest, WrongClusterIsDroppedAndCounted) {
  Node a = started_node(options_for(1, "cluster-one"));
  Node b = started_node(options_for(2, "cluster-two"));
  ASSERT_TRUE(a.transport->set_peer(2, b.address()).ok());
  ASSERT_TRUE(b.transport->set_peer(1, a.address()).ok());
  a.transport->send({append(1, 2, 1), append(1, 2, 2)});
  ASSERT_TRUE(
      eventually([&] { return b.transport->stats().dropped_for(DropReason::kWrongCluster) == 2; }));
  ASSERT_TRUE(eventually([&] { return a.inbox->unreachable_count(2) == 1; }));
  EXPECT_EQ(b.inbox->count(), 0u);
  EXPECT_EQ(b.transport->stats().peer(1)->received_messages, 0u);
}

TEST(PeerTransportTest, WrongRecipientAndForgedSenderAreDroppedIndividually) {
  Node b = started_node(options_for(2));
  ASSERT_TRUE(b.transport->set_peer(1, dead_address()).ok());
  std::vector<Message> batch = {append(1, 2, 1), append(1, 3, 2), append(4, 2, 3)};
  EXPECT_EQ(raw_post(b, "/raft/v1/messages", encode_batch("test-cluster", 1, batch)), 204);
  ASSERT_TRUE(b.inbox->wait_for_count(1));
  auto stats = b.transport->stats();
  EXPECT_EQ(stats.dropped_for(DropReason::kWrongRecipient), 1u);
  EXPECT_EQ(stats.dropped_for(DropReason::kUnknownSender), 1u);
  std::lock_guard lock(b.inbox->mutex);
  ASSERT_EQ(b.inbox->messages.size(), 1u);
  EXPECT_EQ(b.inbox->messages[0].index, 1u);
}

// Captures the default logger's output for the scope of a test.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  int lines_containing(const std::string& needle) {
    spdlog::default_logger()->flush();
    std::istringstream in(stream_.str());
    int n = 0;
    for (std::string line; std::getline(in, line);)
      if (line.find(needle) != std::string::npos) ++n;
    return n;
  }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST(PeerTransportTest, MalformedBodiesAreRejectedCountedAndLoggedRateLimited) {
  CapturedLog log;
  Node b = started_node(options_for(2));
  ASSERT_TRUE(b.transport->set_peer(1, dead_address()).ok());
  httplib::Client client("127.0.0.1", b.transport->listen_port());
  std::mt19937 rng(7);
  constexpr int kFlood = 200;
  for (int i = 0; i < kFlood; ++i) {
    std::string garbage(1 + rng() % 64, '\0');
    for (char& c : garbage) c = static_cast<char>(rng());
    auto result = client.Post(i % 2 ? "/raft/v1/messages" : "/raft/v1/snapshot", garbage,
                              "application/msgpack");
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, 400);
  }
  EXPECT_EQ(b.transport->stats().dropped_for(DropReason::kMalformed),
            static_cast<uint64_t>(kFlood));
  EXPECT_EQ(b.inbox->count(), 0u);
  // A flood is not one line per message: the flood takes well under the 1 s rate window,
  // so at most the first line plus one summary line.
  const int lines = log.lines_containing("(malformed)");
  EXPECT_GE(lines, 1);
  EXPECT_LE(lines, 2);
  // The server is still healthy after the flood.
  EXPECT_EQ(raw_post(b, "/raft/v1/messages", encode_batch("test-cluster", 1, {append(1, 2, 5)})),
            204);
  EXPECT_TRUE(b.inbox->wait_for_count(1));
}

std::shared_ptr<const std::string> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto s = std::make_shared<std::string>(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s->data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

Message snapshot_message(NodeId from, NodeId to, std::shared_ptr<const std::string> data) {
  Message m;
  m.type = MessageType::kSnapshot;
  m.from = from;
  m.to = to;
  m.term = 9;
  Snapshot snapshot;
  snapshot.meta.index = 12345;
  snapshot.meta.term = 8;
  snapshot.meta.config.members = {Member{1, true, "a:1"}, Member{2, true, "b:2"},
                                  Member{3, false, "c:3"}};
  snapshot.data = std::move(data);
  m.snapshot = snapshot;
  return m;
}

TEST(PeerTransportTest, MultiMegabyteSnapshotIsStreamedInChunksAndReassembledExactly) {
  auto options_a = options_for(1);
  options_a.snapshot_chunk_bytes = 1u << 20;
  auto options_b = options_for(2);
  // The receiver refuses any body over 2 MiB, so the 5 MiB snapshot can only arrive in chunks.
  options_b.max_request_bytes = 2u << 20;
  Node a = started_node(options_a);
  Node b = started_node(options_b);
  ASSERT_TRUE(a.transport->set_peer(2, b.address()).ok());
  ASSERT_TRUE(b.transport->set_peer(1, a.address()).ok());

  const size_t kSize = 5 * (1u << 20) + 12345;
  auto data = random_bytes(kSize, 99);
  a.transport->send({snapshot_message(1, 2, data)});
  // Ordinary messages are not held up behind the snapshot.
  a.transport->send({append(1, 2, 1)});

  ASSERT_TRUE(b.inbox->wait_for_count(2, milliseconds(15000)));
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(a.inbox->mutex);
    return !a.inbox->snapshot_status.empty();
  }));
  {
    std::lock_guard lock(a.inbox->mutex);
    ASSERT_EQ(a.inbox->snapshot_status.size(), 1u);
    EXPECT_EQ(a.inbox->snapshot_status[0], std::make_pair(NodeId{2}, true));
  }
  std::lock_guard lock(b.inbox->mutex);
  const Message* snap = nullptr;
  for (const auto& m : b.inbox->messages)
    if (m.type == MessageType::kSnapshot) snap = &m;
  ASSERT_NE(snap, nullptr);
  ASSERT_TRUE(snap->snapshot.has_value());
  EXPECT_EQ(snap->from, 1u);
  EXPECT_EQ(snap->to, 2u);
  EXPECT_EQ(snap->term, 9u);
  EXPECT_EQ(snap->snapshot->meta.index, 12345u);
  EXPECT_EQ(snap->snapshot->meta.term, 8u);
  EXPECT_EQ(snap->snapshot->meta.config.members.size(), 3u);
  EXPECT_EQ(snap->snapshot->meta.config.members[2], (Member{3, false, "c:3"}));
  ASSERT_EQ(snap->snapshot->data->size(), kSize);
  EXPECT_TRUE(*snap->snapshot->data == *data);
  EXPECT_EQ(a.transport->stats().peer(2)->snapshots_sent, 1u);
  EXPECT_GT(a.transport->stats().peer(2)->sent_bytes, kSize);
}

TEST(PeerTransportTest, SnapshotChunksOutOfOrderOrCorruptAreRejected) {
  Node b = started_node(options_for(2));
  ASSERT_TRUE(b.transport->set_peer(1, dead_address()).ok());
  const std::string data = "0123456789abcdef";
  SnapshotChunk chunk;
  chunk.cluster_id = "test-cluster";
  chunk.from = 1;
  chunk.to = 2;
  chunk.transfer_id = 77;
  chunk.total = data.size();
  chunk.total_crc = crc32(data);
  Message header = snapshot_message(1, 2, std::make_shared<const std::string>());

  // A middle chunk with no transfer in progress.
  chunk.offset = 8;
  chunk.chunk_crc = crc32(data.substr(8));
  EXPECT_EQ(raw_post(b, "/raft/v1/snapshot", encode_snapshot_chunk(chunk, data.substr(8))), 409);

  // A first chunk whose bytes do not match its checksum.
  chunk.offset = 0;
  chunk.header = header;
  chunk.chunk_crc = crc32("not these bytes");
  EXPECT_EQ(raw_post(b, "/raft/v1/snapshot", encode_snapshot_chunk(chunk, data.substr(0, 8))), 400);

  // A correct transfer whose chunks each pass but whose whole does not match total_crc.
  chunk.total_crc = crc32("something else entirely");
  chunk.chunk_crc = crc32(data.substr(0, 8));
  EXPECT_EQ(raw_post(b, "/raft/v1/snapshot", encode_snapshot_chunk(chunk, data.substr(0, 8))), 204);
  chunk.header.reset();
  chunk.offset = 8;
  chunk.chunk_crc = crc32(data.substr(8));
  EXPECT_EQ(raw_post(b, "/raft/v1/snapshot", encode_snapshot_chunk(chunk, data.substr(8))), 400);

  EXPECT_EQ(b.transport->stats().dropped_for(DropReason::kSnapshotRejected), 3u);
  EXPECT_EQ(b.inbox->count(), 0u);

  // And the same chunks with the right checksums deliver the snapshot.
  chunk.total_crc = crc32(data);
  chunk.header = header;
  chunk.offset = 0;
  chunk.chunk_crc = crc32(data.substr(0, 8));
  EXPECT_EQ(raw_post(b, "/raft/v1/snapshot", encode_snapshot_chunk(chunk, data.substr(0, 8))), 204);
  chunk.header.reset();
  chunk.offset = 8;
  chunk.chunk_crc = crc32(data.substr(8));
  EXPECT_EQ(raw_post(b, "/raft/v1/snapshot", encode_snapshot_chunk(chunk, data.substr(8))), 204);
  ASSERT_TRUE(b.inbox->wait_for_count(1));
  std::lock_guard lock(b.inbox->mutex);
  EXPECT_EQ(*b.inbox->messages[0].snapshot->data, data);
}

TEST(PeerTransportTest, SnapshotToADeadPeerReportsFailure) {
  Node a = started_node(options_for(1));
  ASSERT_TRUE(a.transport->set_peer(2, dead_address()).ok());
  a.transport->send({snapshot_message(1, 2, random_bytes(1000, 1))});
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(a.inbox->mutex);
    return !a.inbox->snapshot_status.empty();
  }));
  std::lock_guard lock(a.inbox->mutex);
  EXPECT_EQ(a.inbox->snapshot_status[0], std::make_pair(NodeId{2}, false));
}

TEST(PeerTransportTest, DeadPeerBacksOffWithoutBlockingSendOrOtherPeers) {
  auto options = options_for(1);
  options.backoff_min = milliseconds(50);
  options.backoff_max = milliseconds(200);
  Node a = started_node(options);
  Node b = started_node(options_for(2));
  ASSERT_TRUE(a.transport->set_peer(2, b.address()).ok());
  ASSERT_TRUE(a.transport->set_peer(3, dead_address()).ok());
  ASSERT_TRUE(b.transport->set_peer(1, a.address()).ok());

  constexpr int kRounds = 150;  // one round every 4 ms: ~600 ms of traffic
  int64_t slowest_send_ns = 0;
  for (int k = 0; k < kRounds; ++k) {
    const int64_t before = now_ns();
    a.transport->send({timed(1, 2, k), append(1, 3, k)});
    slowest_send_ns = std::max(slowest_send_ns, now_ns() - before);
    std::this_thread::sleep_for(milliseconds(4));
  }
  // Every message to the live peer arrives; none was lost to the dead one's trouble.
  ASSERT_TRUE(b.inbox->wait_for_count(kRounds));
  EXPECT_LT(slowest_send_ns, 20'000'000) << "send() blocked";

  ASSERT_TRUE(eventually([&] {
    return a.transport->stats().peer(2)->sent_messages == static_cast<uint64_t>(kRounds);
  }));
  auto stats = a.transport->stats();
  const PeerStats* dead = stats.peer(3);
  ASSERT_NE(dead, nullptr);
  // Backoff: connection attempts are far fewer than sends (50, 100, 200, 200... ms apart), but
  // the peer keeps being retried.
  RecordProperty("dead_peer_attempts", std::to_string(dead->send_failures));
  RecordProperty("slowest_send_us", std::to_string(slowest_send_ns / 1000));
  EXPECT_GE(dead->send_failures, 2u);
  EXPECT_LE(dead->send_failures, 15u);
  EXPECT_EQ(dead->sent_messages, 0u);
  EXPECT_GE(a.inbox->unreachable_count(3), 2u);
  EXPECT_EQ(a.inbox->unreachable_count(2), 0u);
  EXPECT_GE(stats.dropped_for(DropReason::kPeerUnreachable), static_cast<uint64_t>(kRounds) / 2);
  EXPECT_EQ(stats.peer(2)->send_failures, 0u);
  EXPECT_EQ(stats.peer(2)->sent_messages, static_cast<uint64_t>(kRounds));
}

TEST(PeerTransportTest, HungPeerDoesNotDelayOtherPeersAndStopIsPrompt) {
  HungPeer hung;
  ASSERT_TRUE(hung.ok());
  auto options = options_for(1);
  options.request_timeout = milliseconds(2000);
  options.max_queue_bytes = 64u << 10;
  Node a = started_node(options);
  Node b = started_node(options_for(2));
  ASSERT_TRUE(a.transport->set_peer(2, b.address()).ok());
  ASSERT_TRUE(a.transport->set_peer(3, hung.address()).ok());
  ASSERT_TRUE(b.transport->set_peer(1, a.address()).ok());

  constexpr int kRounds = 100;
  int64_t slowest_send_ns = 0;
  const std::string big(4096, 'x');
  for (int k = 0; k < kRounds; ++k) {
    std::vector<Message> batch = {timed(1, 2, k)};
    for (int extra = 0; extra < 5; ++extra) batch.push_back(append(1, 3, k, big));
    const int64_t before = now_ns();
    a.transport->send(std::move(batch));
    slowest_send_ns = std::max(slowest_send_ns, now_ns() - before);
    std::this_thread::sleep_for(milliseconds(3));
  }
  ASSERT_TRUE(b.inbox->wait_for_count(kRounds));
  EXPECT_LT(slowest_send_ns, 20'000'000) << "send() blocked";
  {
    std::lock_guard lock(b.inbox->mutex);
    ASSERT_EQ(b.inbox->latencies_ns.size(), static_cast<size_t>(kRounds));
    const int64_t worst =
        *std::max_element(b.inbox->latencies_ns.begin(), b.inbox->latencies_ns.end());
    // The hung peer's request waits for its 2 s timeout; the healthy peer never does.
    EXPECT_LT(worst, 250'000'000) << "worst latency " << worst / 1000 << " us";
    RecordProperty("worst_latency_us", std::to_string(worst / 1000));
    RecordProperty("slowest_send_us", std::to_string(slowest_send_ns / 1000));
  }
  // The hung peer's queue stayed bounded: the oldest messages were dropped and counted.
  auto stats = a.transport->stats();
  EXPECT_LE(stats.peer(3)->queued_bytes, options.max_queue_bytes);
  EXPECT_GT(stats.dropped_for(DropReason::kQueueFull), 0u);
  EXPECT_EQ(stats.peer(3)->sent_messages, 0u);

  // A request to the hung peer is in flight right now; stop() must not wait for its timeout.
  const auto before_stop = Clock::now();
  a.transport->stop();
  const auto stop_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - before_stop).count();
  EXPECT_LT(stop_ms, 1000) << "stop() took " << stop_ms << " ms";
  RecordProperty("stop_ms", std::to_string(stop_ms));
  // After stop, sends are refused at once.
  a.transport->send({append(1, 2, 999)});
  EXPECT_EQ(a.transport->stats().dropped_for(DropReason::kNotRunning), 1u);
}

// Opens a TCP connection to a transport's peer port, as a peer that then pauses would.
int connect_to(const Node& node) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(node.transport->listen_port()));
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

TEST(PeerTransportTest, StopIsPromptWithPeersPausedWhileConnectedToTheServer) {
  auto options = options_for(2);
  options.request_timeout = milliseconds(5000);  // the server must not wait this long on stop
  Node b = started_node(options);
  ASSERT_TRUE(b.transport->set_peer(1, dead_address()).ok());
  // One peer paused mid-request (headers and half the body sent), one idle after a request.
  int mid_request = connect_to(b);
  const std::string partial =
      "POST /raft/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nhalf";
  ASSERT_EQ(write(mid_request, partial.data(), partial.size()),
            static_cast<ssize_t>(partial.size()));
  int idle = connect_to(b);
  const std::string request = encode_batch("test-cluster", 1, {append(1, 2, 1)});
  const std::string head = "POST /raft/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                           std::to_string(request.size()) + "\r\n\r\n";
  ASSERT_EQ(write(idle, head.data(), head.size()), static_cast<ssize_t>(head.size()));
  ASSERT_EQ(write(idle, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  ASSERT_TRUE(b.inbox->wait_for_count(1));

  const auto before_stop = Clock::now();
  b.transport->stop();
  const auto stop_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - before_stop).count();
  EXPECT_LT(stop_ms, 1500) << "stop() took " << stop_ms << " ms";
  close(mid_request);
  close(idle);
}

TEST(PeerTransportTest, HungPeerIsReportedUnreachableAfterTheRequestTimeout) {
  HungPeer hung;
  ASSERT_TRUE(hung.ok());
  auto options = options_for(1);
  options.request_timeout = milliseconds(300);
  Node a = started_node(options);
  ASSERT_TRUE(a.transport->set_peer(3, hung.address()).ok());
  a.transport->send({append(1, 3, 1)});
  ASSERT_TRUE(eventually([&] { return a.inbox->unreachable_count(3) >= 1; }, milliseconds(3000)));
  EXPECT_GE(a.transport->stats().peer(3)->send_failures, 1u);
}

TEST(PeerTransportTest, PeersCanBeAddedChangedAndRemovedAtRuntime) {
  Node a = started_node(options_for(1));
  Node b = started_node(options_for(2));
  Node c = started_node(options_for(2));  // a second incarnation of node 2, at another address
  ASSERT_TRUE(b.transport->set_peer(1, a.address()).ok());
  ASSERT_TRUE(c.transport->set_peer(1, a.address()).ok());

  a.transport->send({append(1, 2, 1)});
  EXPECT_EQ(a.transport->stats().dropped_for(DropReason::kUnknownPeer), 1u);

  ASSERT_TRUE(a.transport->set_peer(2, b.address()).ok());
  a.transport->send({append(1, 2, 2)});
  ASSERT_TRUE(b.inbox->wait_for_count(1));

  ASSERT_TRUE(a.transport->set_peer(2, c.address()).ok());
  a.transport->send({append(1, 2, 3)});
  ASSERT_TRUE(c.inbox->wait_for_count(1));
  EXPECT_EQ(b.inbox->count(), 1u);
  EXPECT_EQ(a.transport->stats().peer(2)->address, c.address());

  a.transport->remove_peer(2);
  a.transport->send({append(1, 2, 4)});
  EXPECT_EQ(a.transport->stats().dropped_for(DropReason::kUnknownPeer), 2u);
  EXPECT_EQ(a.transport->stats().peer(2), nullptr);
  // Node 2 is no longer a known sender for a.
  EXPECT_EQ(raw_post(a, "/raft/v1/messages", encode_batch("test-cluster", 2, {append(2, 1, 1)})),
            403);
}

TEST(PeerTransportTest, StopIsIdempotentAndDestructionWithoutStartIsSafe) {
  { Node never_started = make_node(options_for(1)); }
  Node a = started_node(options_for(1));
  a.transport->stop();
  a.transport->stop();
  EXPECT_FALSE(a.transport->start().ok());
}

}  // namespace
}  // namespace raftlock::raft::transport
