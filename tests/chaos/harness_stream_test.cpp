// The chaos peer proxy on message streams: a PeerProxy in front of a small fake node that accepts
// streams and records the frames it gets, with a sender that opens its stream through the proxy
// exactly as a node does (open_stream). The link rules apply per frame: a cut loses frames
// silently and keeps the stream, a delay delivers later and in order, a stop is prompt.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "peer_proxy.h"
#include "raft/transport/peer_stream.h"
#include "raft/transport/stream_server.h"
#include "tests/support/loopback_socket.h"

namespace raftlock::chaos {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace transport = raft::transport;

constexpr int kNode = 9;    // the node behind the proxy
constexpr int kSender = 7;  // the node that sends through it
const std::string kCluster = "chaos-cluster";

// A fake node's peer port: accepts message streams (or, without streams, answers them 404 like a
// node from before streams) and records every frame with its arrival time. Also serves
// POST /raft/v1/messages with 204, for the proxy's plain HTTP path.
class FakeNode {
 public:
  struct Frame {
    std::string body;
    Clock::time_point arrived;
  };

  explicit FakeNode(bool accepts_streams = true) {
    server_.Post("/raft/v1/messages", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      posts_.push_back(req.body);
      res.status = 204;
    });
    if (accepts_streams) {
      server_.set_takeover(std::string(transport::kStreamRequestPrefix),
                           [this](transport::BufferedSocketStream& stream) {
                             serve(stream);
                             return false;  // the server closes the connection
                           });
    }
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 2000 && !server_.is_running(); ++i) std::this_thread::sleep_for(1ms);
  }
  ~FakeNode() { stop(); }

  int port() const { return port_; }

  // Stops serving and closes every open stream (like a node that died).
  void stop() {
    if (!thread_.joinable()) return;
    std::atomic<bool> done{false};
    std::thread stopper([&] {
      while (!done.load()) {
        server_.stop();
        server_.shut_down_connections();
        std::this_thread::sleep_for(5ms);
      }
    });
    thread_.join();
    done = true;
    stopper.join();
  }

  // Waits until at least `count` frames arrived; returns every frame so far.
  std::vector<Frame> wait_for_frames(size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    changed_.wait_for(lock, timeout, [&] { return frames_.size() >= count; });
    return frames_;
  }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& frame : frames_) out.push_back(frame.body);
    return out;
  }
  // Waits until `count` streams have ended on this node's side.
  bool wait_for_ended_streams(int count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, timeout, [&] { return ended_ >= count; });
  }
  int opened() {
    std::lock_guard lock(mu_);
    return opened_;
  }
  std::string last_from() {
    std::lock_guard lock(mu_);
    return from_;
  }
  std::string last_cluster() {
    std::lock_guard lock(mu_);
    return cluster_;
  }
  std::vector<std::string> posts() {
    std::lock_guard lock(mu_);
    return posts_;
  }

 private:
  void serve(transport::BufferedSocketStream& stream) {
    auto request = transport::read_header_block(stream);
    if (!request) return;
    {
      std::lock_guard lock(mu_);
      ++opened_;
      from_ = transport::header_value(*request, "X-Raftlock-From");
      cluster_ = transport::header_value(*request, transport::kClusterHeader);
    }
    const std::string accept = transport::stream_accept_answer();
    if (stream.write(accept.data(), accept.size()) >= 0 && stream.flush()) {
      stream.set_read_timeout_ms(60000);
      std::string body;
      while (transport::read_frame(stream, PeerProxy::kMaxFrameBytes, body) ==
             transport::FrameRead::kFrame) {
        std::lock_guard lock(mu_);
        frames_.push_back({body, Clock::now()});
        changed_.notify_all();
      }
    }
    std::lock_guard lock(mu_);
    ++ended_;
    changed_.notify_all();
  }

  transport::StreamServer server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<Frame> frames_;
  std::vector<std::string> posts_;
  int opened_ = 0;
  int ended_ = 0;
  std::string from_;
  std::string cluster_;
};

// A PeerProxy for node kNode in front of `target_port`.
struct ProxyUnderTest {
  explicit ProxyUnderTest(int target_port) : rules(std::make_shared<NetworkRules>()) {
    proxy = std::make_unique<PeerProxy>(kNode, rules);
    port = proxy->bind_free_port();
    proxy->set_target(target_port);
    proxy->start();
  }
  std::shared_ptr<NetworkRules> rules;
  std::unique_ptr<PeerProxy> proxy;
  int port = 0;
};

// A sender's side of a stream, opened the way PeerTransport opens one (connect, then the request).
struct OpenedStream {
  int fd = -1;     // the accepted stream (the caller owns it), or -1
  int status = 0;  // the answer's HTTP status when it was refused, else 0
  std::string error;
};

OpenedStream open_stream(const std::string& host, int port, raft::NodeId from,
                         const std::string& cluster_id, std::chrono::milliseconds connect_timeout,
                         std::chrono::milliseconds io_timeout) {
  OpenedStream out;
  transport::Connected connected = transport::connect_with_timeout(host, port, connect_timeout);
  if (connected.fd < 0) {
    out.error = connected.error;
    return out;
  }
  UniqueFd sock(connected.fd);
  const int status =
      transport::request_stream(sock.get(), host, from, cluster_id, {}, io_timeout, out.error);
  if (status != 200) {
    out.status = status;
    return out;
  }
  out.fd = sock.release();
  return out;
}

OpenedStream open_through(int proxy_port, int from = kSender) {
  return open_stream("127.0.0.1", proxy_port, static_cast<raft::NodeId>(from), kCluster, 1000ms,
                     3000ms);
}

bool send_bytes(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool send_frame(int fd, std::string_view body) {
  std::string frame;
  transport::append_frame(frame, body);
  return send_bytes(fd, frame);
}

// True when the other side closed `fd` (end of stream or an error) within `timeout`.
bool closed_by_peer(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 0))) <= 0) return false;
    char byte;
    const ssize_t n = ::recv(fd, &byte, 1, MSG_DONTWAIT);
    if (n <= 0) return true;  // the proxy never writes after accepting: any byte is unexpected
    if (Clock::now() >= deadline) return false;
  }
}

// True when nothing (no byte, no end of stream) is waiting on `fd` right now.
bool quiet(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

// Waits until `counter` reaches `value`; false at the timeout.
bool wait_count(const std::atomic<uint64_t>& counter, uint64_t value,
                std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (counter.load() < value) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// A fake node behind a proxy, and a sender's stream to it through the proxy (most tests start so).
class ProxiedStream : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(proxy.port, 0);
    ASSERT_GE(sender.get(), 0) << open_error;
  }
  int open_sender() {
    OpenedStream opened = open_through(proxy.port);
    open_error = opened.error;
    return opened.fd;
  }

  // Constructed in this order: the node, the proxy in front of it, then the sender's stream.
  FakeNode node;
  ProxyUnderTest proxy{node.port()};
  std::string open_error;
  UniqueFd sender{open_sender()};
};

TEST_F(ProxiedStream, FramesPassThroughInOrderByteExactWithTheSendersIdentity) {
  std::mt19937 rng(7);
  std::vector<std::string> sent;
  sent.push_back(std::string("\0\1\2\r\n\r\n", 7));  // ends like a header block
  sent.push_back("");                                // an empty frame
  std::string large(1 << 20, '\0');
  for (char& c : large) c = static_cast<char>(rng());
  sent.push_back(large);
  for (int i = 0; i < 50; ++i) sent.push_back("message " + std::to_string(i));
  for (const auto& body : sent) ASSERT_TRUE(send_frame(sender.get(), body));

  auto frames = node.wait_for_frames(sent.size(), 5s);
  ASSERT_EQ(frames.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(frames[i].body, sent[i]) << "frame " << i;
  EXPECT_EQ(node.last_from(), std::to_string(kSender));
  EXPECT_EQ(node.last_cluster(), kCluster);
  EXPECT_EQ(node.opened(), 1);
  EXPECT_EQ(proxy.rules->passed.load(), sent.size());
  EXPECT_EQ(proxy.rules->dropped.load(), 0u);
  EXPECT_EQ(proxy.rules->delayed.load(), 0u);
}

TEST_F(ProxiedStream, ACutLinkDropsFramesSilentlyAndTheStreamCarriesOnAfterHealing) {
  ASSERT_TRUE(send_frame(sender.get(), "before"));
  ASSERT_EQ(node.wait_for_frames(1, 5s).size(), 1u);

  proxy.rules->cut(kSender, kNode);
  ASSERT_TRUE(send_frame(sender.get(), "lost 1"));
  ASSERT_TRUE(send_frame(sender.get(), "lost 2"));
  ASSERT_TRUE(wait_count(proxy.rules->dropped, 2, 5s));
  EXPECT_TRUE(quiet(sender.get())) << "the sender was told (or its stream closed)";

  // The other direction is not this link: a cut of node -> sender does not touch this stream.
  proxy.rules->heal();
  proxy.rules->cut(kNode, kSender);
  ASSERT_TRUE(send_frame(sender.get(), "after"));
  // One stream, in order: had the cut frames been delivered, they would come before this one.
  auto frames = node.wait_for_frames(2, 5s);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(node.bodies(), (std::vector<std::string>{"before", "after"}));
  EXPECT_EQ(node.opened(), 1);
  EXPECT_EQ(proxy.rules->dropped.load(), 2u);
  EXPECT_EQ(proxy.rules->passed.load(), 2u);
}

TEST_F(ProxiedStream, ADelayedLinkDeliversLaterAndInOrder) {
  // Random delays in a wide range: without the ordering, frames would overtake each other.
  proxy.rules->set(kSender, kNode, LinkRule{false, 100, 250});
  std::vector<std::string> sent;
  std::vector<Clock::time_point> sent_at;
  for (int i = 0; i < 20; ++i) {
    sent.push_back("delayed " + std::to_string(i));
    sent_at.push_back(Clock::now());
    ASSERT_TRUE(send_frame(sender.get(), sent.back()));
  }
  auto frames = node.wait_for_frames(sent.size(), 5s);
  ASSERT_EQ(frames.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(frames[i].body, sent[i]) << "frame " << i;
    EXPECT_GE(frames[i].arrived - sent_at[i], 100ms) << "frame " << i << " was not delayed";
  }
  EXPECT_EQ(proxy.rules->delayed.load(), sent.size());
  EXPECT_EQ(proxy.rules->dropped.load(), 0u);
}

TEST_F(ProxiedStream, AFrameInFlightWhenTheLinkIsCutIsLost) {
  proxy.rules->set(kSender, kNode, LinkRule{false, 300, 300});
  ASSERT_TRUE(send_frame(sender.get(), "in flight"));
  ASSERT_TRUE(wait_count(proxy.rules->delayed, 1, 5s));
  proxy.rules->cut(kSender, kNode);
  ASSERT_TRUE(wait_count(proxy.rules->dropped, 1, 5s));  // at its delivery time
  proxy.rules->heal();
  ASSERT_TRUE(send_frame(sender.get(), "after heal"));
  ASSERT_EQ(node.wait_for_frames(1, 5s).size(), 1u);
  EXPECT_EQ(node.bodies(), (std::vector<std::string>{"after heal"}));
}

TEST(PeerProxyStream, ATargetWithoutStreamsMakesTheProxyAnswer404SoTheSenderFallsBack) {
  FakeNode old_node(/*accepts_streams=*/false);
  ProxyUnderTest proxy(old_node.port());
  auto opened = open_through(proxy.port);
  EXPECT_LT(opened.fd, 0);
  EXPECT_EQ(opened.status, 404) << opened.error;
  // The per-batch POSTs still go through the proxy's HTTP path, rules applied per request.
  httplib::Client client("127.0.0.1", proxy.port);
  httplib::Headers from{{"X-Raftlock-From", std::to_string(kSender)}};
  auto passed = client.Post("/raft/v1/messages", from, "batch 1", "application/octet-stream");
  ASSERT_TRUE(passed);
  EXPECT_EQ(passed->status, 204);
  proxy.rules->cut(kSender, kNode);
  auto cut = client.Post("/raft/v1/messages", from, "batch 2", "application/octet-stream");
  ASSERT_TRUE(cut);
  EXPECT_EQ(cut->status, 503);
  EXPECT_EQ(old_node.posts(), (std::vector<std::string>{"batch 1"}));
}

TEST(PeerProxyStream, AnUnreachableTargetIsAnswered503) {
  testing::LoopbackSocket closed;
  ASSERT_TRUE(closed.ok());
  const int refusing_port = closed.port();
  closed.close();
  ProxyUnderTest proxy(refusing_port);
  auto opened = open_through(proxy.port);
  EXPECT_LT(opened.fd, 0);
  EXPECT_EQ(opened.status, 503) << opened.error;
}

TEST(PeerProxyStream, AStreamRequestWithoutAValidSenderIsRefused400) {
  FakeNode node;
  ProxyUnderTest proxy(node.port());
  for (const char* from_header : {"", "X-Raftlock-From: seven\r\n"}) {
    auto connected = transport::connect_with_timeout("127.0.0.1", proxy.port, 1000ms);
    ASSERT_GE(connected.fd, 0) << connected.error;
    UniqueFd sock(connected.fd);
    const std::string request = std::string(transport::kStreamRequestPrefix) +
                                "HTTP/1.1\r\nHost: x\r\n" + from_header +
                                "X-Raftlock-Cluster: c\r\nContent-Length: 0\r\n\r\n";
    ASSERT_TRUE(send_bytes(sock.get(), request));
    transport::BufferedSocketStream stream(sock.get(), 3000, 3000);
    auto answer = transport::read_header_block(stream);
    ASSERT_TRUE(answer) << "no answer for '" << from_header << "'";
    EXPECT_EQ(transport::answer_status(*answer), 400) << *answer;
  }
  EXPECT_EQ(node.opened(), 0);
}

TEST_F(ProxiedStream, AnOversizedFrameClosesTheStreamOnBothSides) {
  ASSERT_TRUE(send_frame(sender.get(), "fine"));
  ASSERT_EQ(node.wait_for_frames(1, 5s).size(), 1u);
  const uint32_t size = PeerProxy::kMaxFrameBytes + 1;
  const char prefix[4] = {static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                          static_cast<char>(size >> 8), static_cast<char>(size)};
  ASSERT_TRUE(send_bytes(sender.get(), std::string_view(prefix, 4)));
  EXPECT_TRUE(closed_by_peer(sender.get(), 3s));
  EXPECT_TRUE(node.wait_for_ended_streams(1, 3s));
  EXPECT_EQ(node.bodies(), (std::vector<std::string>{"fine"}));
}

TEST_F(ProxiedStream, WhenTheTargetClosesTheSendersStreamCloses) {
  ASSERT_TRUE(send_frame(sender.get(), "one"));
  ASSERT_EQ(node.wait_for_frames(1, 5s).size(), 1u);
  node.stop();  // the node dies; nothing is being sent meanwhile
  EXPECT_TRUE(closed_by_peer(sender.get(), 3s));
}

TEST_F(ProxiedStream, StopIsPromptWithADelayedFramePending) {
  proxy.rules->set(kSender, kNode, LinkRule{false, 5000, 5000});
  ASSERT_TRUE(send_frame(sender.get(), "waits five seconds"));
  ASSERT_TRUE(wait_count(proxy.rules->delayed, 1, 5s));
  const auto started = Clock::now();
  proxy.proxy->stop();
  EXPECT_LT(Clock::now() - started, 500ms);
  EXPECT_TRUE(closed_by_peer(sender.get(), 1s));
  EXPECT_TRUE(node.wait_for_ended_streams(1, 1s));
  EXPECT_TRUE(node.bodies().empty());
}

TEST(PeerProxyStream, StopIsPromptWhileTheTargetNeverAnswersTheStreamRequest) {
  // A paused node: the kernel accepts the connection, nobody answers.
  testing::LoopbackSocket paused;
  ASSERT_TRUE(paused.ok());
  ProxyUnderTest proxy(paused.port());
  OpenedStream opened;
  std::thread sender(
      [&] { opened = open_stream("127.0.0.1", proxy.port, kSender, kCluster, 1000ms, 10000ms); });
  // The proxy's connection to the target is waiting in the listen queue.
  pollfd pending{paused.fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&pending, 1, 5000), 1);
  const auto started = Clock::now();
  proxy.proxy->stop();
  EXPECT_LT(Clock::now() - started, 500ms);
  sender.join();  // the sender is answered (refused) or cut off, not left waiting
  EXPECT_LT(Clock::now() - started, 1s);
  EXPECT_LT(opened.fd, 0);
  if (opened.fd >= 0) ::close(opened.fd);
}

}  // namespace
}  // namespace raftlock::chaos
