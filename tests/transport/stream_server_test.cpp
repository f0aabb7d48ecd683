// transport::BufferedSocketStream / StreamServer / StreamClient: a header block goes out with its
// body (one segment), keep-alive requests are served, and shutting connections down ends idle ones
// at once while a busy one still delivers its answer.
#include "raft/transport/stream_server.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>

namespace raftlock::raft::transport {
namespace {

bool readable_now(int sock) {
  pollfd p{sock, POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

std::string read_available(int sock) {
  std::string out;
  char buffer[4096];
  while (readable_now(sock)) {
    ssize_t n = ::recv(sock, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

class SocketPair : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0); }
  void TearDown() override {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  int fds_[2] = {-1, -1};
};

TEST_F(SocketPair, AHeaderBlockIsHeldUntilItsBodyAndBothGoOutTogether) {
  BufferedSocketStream stream(fds_[0], 1000, 1000);
  const std::string headers = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  ASSERT_EQ(stream.write(headers.data(), headers.size()), static_cast<ssize_t>(headers.size()));
  EXPECT_FALSE(readable_now(fds_[1]));  // held back
  ASSERT_EQ(stream.write("hello", 5), 5);
  EXPECT_EQ(read_available(fds_[1]), headers + "hello");
}

TEST_F(SocketPair, OtherWritesGoAtOnceAndFlushOrReadSendWhatIsHeld) {
  BufferedSocketStream stream(fds_[0], 1000, 1000);
  ASSERT_EQ(stream.write("chunk", 5), 5);  // not a header block: sent at once
  EXPECT_EQ(read_available(fds_[1]), "chunk");
  const std::string headers = "HTTP/1.1 204 No Content\r\n\r\n";
  stream.write(headers.data(), headers.size());
  EXPECT_FALSE(readable_now(fds_[1]));
  ASSERT_TRUE(stream.flush());  // a response without a body
  EXPECT_EQ(read_available(fds_[1]), headers);

  const std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  stream.write(request.data(), request.size());
  ASSERT_EQ(::send(fds_[1], "ok", 2, 0), 2);
  char buffer[8];
  ASSERT_EQ(stream.read(buffer, sizeof(buffer)), 2);  // reading sends the held request first
  EXPECT_EQ(read_available(fds_[1]), request);
}

TEST_F(SocketPair, AFailedSendIsReported) {
  BufferedSocketStream stream(fds_[0], 200, 200);
  ::shutdown(fds_[1], SHUT_RDWR);
  ::close(fds_[1]);
  fds_[1] = ::dup(fds_[0]);  // keep TearDown's close valid
  const std::string headers = "HTTP/1.1 200 OK\r\n\r\n";
  stream.write(headers.data(), headers.size());
  EXPECT_FALSE(stream.flush());
}

class StreamServerTest : public ::testing::Test {
 protected:
  void start(StreamServerOptions options = {}) {
    server_ = std::make_unique<StreamServer>(options);
    server_->Get("/hello", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("world", "text/plain");
    });
    server_->Get("/slow", [this](const httplib::Request&, httplib::Response& res) {
      slow_started_.set_value();
      slow_release_.get_future().wait();
      res.set_content("late", "text/plain");
    });
    port_ = server_->bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void TearDown() override {
    if (server_) {
      server_->stop();
      server_->shut_down_connections();
    }
    if (thread_.joinable()) thread_.join();
  }
  std::unique_ptr<StreamServer> server_;
  int port_ = 0;
  std::thread thread_;
  std::promise<void> slow_started_;
  std::promise<void> slow_release_;
};

TEST_F(StreamServerTest, ServesKeepAliveRequestsThroughAStreamClient) {
  start();
  StreamClient client("127.0.0.1", port_);
  client.set_keep_alive(true);
  for (int i = 0; i < 3; ++i) {
    auto result = client.Get("/hello");
    ASSERT_TRUE(result) << httplib::to_string(result.error());
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(result->body, "world");
  }
  auto missing = client.Get("/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(StreamServerTest, ShuttingDownEndsIdleConnectionsAtOnceButABusyOneStillAnswers) {
  StreamServerOptions options;
  options.keep_alive_idle = std::chrono::seconds(60);  // idle connections would linger a minute
  start(options);
  StreamClient idle("127.0.0.1", port_);
  idle.set_keep_alive(true);
  ASSERT_TRUE(idle.Get("/hello"));  // now idle on a keep-alive connection

  StreamClient busy("127.0.0.1", port_);
  auto slow_answer = std::async(std::launch::async, [&] { return busy.Get("/slow"); });
  slow_started_.get_future().wait();

  server_->stop();
  server_->shut_down_connections();
  slow_release_.set_value();
  auto answer = slow_answer.get();
  ASSERT_TRUE(answer) << httplib::to_string(answer.error());
  EXPECT_EQ(answer->body, "late");
  // listen_after_bind returns only once every connection is closed, idle one included.
  const auto started = std::chrono::steady_clock::now();
  thread_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
}

}  // namespace
}  // namespace raftlock::raft::transport
