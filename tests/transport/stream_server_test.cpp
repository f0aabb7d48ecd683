// transport::BufferedSocketStream / StreamServer / StreamClient: a header block goes out with its
// body (one segment), keep-alive requests are served, shutting connections down ends idle ones
// at once while a busy one still delivers its answer, and idle connections wait without a thread
// (more silent connections than threads do not stall a new one).
#include "raft/transport/stream_server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/loopback_client.h"
#include "tests/support/serve_on_loopback.h"

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
  void start(StreamServerOptions options = {}, size_t threads = 0) {
    server_ = std::make_unique<StreamServer>(options);
    if (threads > 0) server_->set_thread_count(threads);
    server_->Get("/hello", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("world", "text/plain");
    });
    server_->Get("/whoami", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.remote_addr + ":" + std::to_string(req.remote_port) + " " +
                          req.local_addr + ":" + std::to_string(req.local_port),
                      "text/plain");
    });
    server_->Get("/slow", [this](const httplib::Request&, httplib::Response& res) {
      slow_started_.set_value();
      slow_release_.get_future().wait();
      res.set_content("late", "text/plain");
    });
    port_ = raftlock::testing::serve_on_loopback(*server_, thread_);
    ASSERT_GT(port_, 0);
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

// A raw client socket connected to the test server.
int connect_to(int port) {
  return raftlock::testing::connect_loopback(port);
}

// "127.0.0.1:PORT" of a connected socket's own end ("" if it cannot be read).
std::string local_address(int sock) {
  sockaddr_in mine{};
  socklen_t len = sizeof(mine);
  if (::getsockname(sock, reinterpret_cast<sockaddr*>(&mine), &len) != 0) return "";
  return "127.0.0.1:" + std::to_string(ntohs(mine.sin_port));
}

using raftlock::testing::read_until;

TEST_F(StreamServerTest, PipelinedRequestsInOneSegmentAreAllAnsweredInOrder) {
  start();
  const int sock = connect_to(port_);
  ASSERT_GE(sock, 0);
  // Three requests in one send: the bytes after the first request must not be lost with it.
  const std::string requests =
      "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(sock, requests.data(), requests.size(), 0),
            static_cast<ssize_t>(requests.size()));
  const std::string answers = read_until(sock, "HTTP/1.1 ", 3);
  ::close(sock);
  const size_t first = answers.find("HTTP/1.1 200");
  const size_t second = answers.find("HTTP/1.1 404");
  const size_t third = answers.find("HTTP/1.1 200", first + 1);
  ASSERT_NE(first, std::string::npos) << answers;
  ASSERT_NE(second, std::string::npos) << answers;
  ASSERT_NE(third, std::string::npos) << answers;
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
}

TEST_F(StreamServerTest, EveryRequestOfAConnectionSeesItsAddresses) {
  start();
  const int sock = connect_to(port_);
  ASSERT_GE(sock, 0);
  const std::string expected = local_address(sock) + " 127.0.0.1:" + std::to_string(port_);
  const std::string request = "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < 2; ++i) {  // the second answer comes from the addresses looked up once
    ASSERT_EQ(::send(sock, request.data(), request.size(), 0),
              static_cast<ssize_t>(request.size()));
    const std::string answer = read_until(sock, expected, 1);
    EXPECT_NE(answer.find(expected), std::string::npos) << answer;
  }
  ::close(sock);
}

TEST_F(StreamServerTest, AnIdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  StreamServerOptions options;
  options.keep_alive_idle = std::chrono::milliseconds(200);
  start(options);
  const int sock = connect_to(port_);
  ASSERT_GE(sock, 0);
  const std::string request = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(sock, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  const std::string answer = read_until(sock, "world", 1);
  EXPECT_NE(answer.find("world"), std::string::npos) << answer;
  // Then nothing is sent: the server closes the connection once it has been idle 200 ms (it
  // gave its thread back after the 100 ms linger: the watcher of parked connections closes it).
  const auto idle_since = std::chrono::steady_clock::now();
  pollfd p{sock, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  char byte;
  EXPECT_EQ(::recv(sock, &byte, 1, 0), 0);  // end of stream, not data
  EXPECT_GE(std::chrono::steady_clock::now() - idle_since, std::chrono::milliseconds(150));
  EXPECT_EQ(server_->connection_stats().parks, 1u);
  EXPECT_EQ(server_->connection_stats().parked, 0u);
  ::close(sock);
}

// Polls `done` every millisecond for up to 5 s.
template <typename Done>
bool eventually(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

const std::string kHello = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";

bool send_text(int sock, const std::string& text) {
  return ::send(sock, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

// A server with 4 threads and a 30 s keep-alive; `silent` connections are opened and send nothing.
class SilentConnections : public StreamServerTest {
 protected:
  void open_silent(StreamServerOptions options, int silent) {
    options.keep_alive_idle = std::chrono::seconds(30);
    start(options, 4);
    for (int i = 0; i < silent; ++i) {
      const int sock = connect_to(port_);
      ASSERT_GE(sock, 0);
      silent_.push_back(sock);
    }
  }
  void TearDown() override {
    StreamServerTest::TearDown();
    for (int sock : silent_) ::close(sock);
  }
  // Once every silent connection is parked, a new connection's request is answered; then each
  // silent one sends `rest` and is answered too.
  void expect_served_once_parked(const std::string& rest) {
    ASSERT_TRUE(eventually([&] { return server_->connection_stats().parked == silent_.size(); }))
        << server_->connection_stats().parked << " parked";
    const int sock = connect_to(port_);
    ASSERT_GE(sock, 0);
    ASSERT_TRUE(send_text(sock, kHello));
    const std::string answer = read_until(sock, "world", 1);  // (gives up after 5 s)
    EXPECT_NE(answer.find("HTTP/1.1 200"), std::string::npos) << answer;
    ::close(sock);
    for (int silent : silent_) ASSERT_TRUE(send_text(silent, rest));
    for (int silent : silent_) {
      const std::string late = read_until(silent, "world", 1);
      EXPECT_NE(late.find("HTTP/1.1 200"), std::string::npos) << late;
    }
  }
  std::vector<int> silent_;
};

TEST_F(SilentConnections, MoreThanThePoolHasThreadsDoNotStallANewRequest) {
  StreamServerOptions options;
  options.idle_thread_linger = std::chrono::milliseconds(50);
  open_silent(options, 12);  // three times the pool
  // Each gives its thread back after 50 ms of silence, well before its 30 s keep-alive ends; the
  // silent ones, parked before their first request, are served when they speak.
  expect_served_once_parked(kHello);
}

TEST_F(SilentConnections, RequestsWhoseHeaderTricklesInDoNotHoldThreadsEither) {
  // A slowloris client: each connection sends the start of a request, then nothing for now.
  StreamServerOptions options;
  options.idle_thread_linger = std::chrono::milliseconds(50);
  open_silent(options, 12);
  for (int sock : silent_) ASSERT_TRUE(send_text(sock, "GET /hello HTTP/1.1\r\nHo"));
  // Then the rest of each header.
  expect_served_once_parked("st: x\r\n\r\n");
}

TEST_F(StreamServerTest, AHeaderNotInWithinTheReadTimeoutIsClosed) {
  StreamServerOptions options;
  options.idle_thread_linger = std::chrono::milliseconds(20);
  options.read_timeout = std::chrono::milliseconds(300);
  options.keep_alive_idle = std::chrono::seconds(30);
  start(options);
  const int sock = connect_to(port_);
  ASSERT_GE(sock, 0);
  const auto began = std::chrono::steady_clock::now();
  ASSERT_TRUE(send_text(sock, "GET /hello HTTP/1.1\r\nHo"));
  ASSERT_TRUE(eventually([&] { return server_->connection_stats().parked == 1; }));
  ASSERT_TRUE(send_text(sock, "st"));  // more of it, still not the end: parked again
  pollfd p{sock, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  char byte;
  EXPECT_EQ(::recv(sock, &byte, 1, 0), 0);  // closed without an answer, as on a read timeout
  EXPECT_GE(std::chrono::steady_clock::now() - began, std::chrono::milliseconds(250));
  EXPECT_GE(server_->connection_stats().parks, 2u);
  EXPECT_EQ(server_->connection_stats().parked, 0u);
  ::close(sock);
}

TEST_F(SilentConnections, WithoutALingerEachHoldsAThreadForItsWholeKeepAlive) {
  // httplib's way (idle_thread_linger 0): the control for the test above.
  StreamServerOptions options;
  options.idle_thread_linger = std::chrono::milliseconds(0);
  open_silent(options, 4);  // as many as the pool has threads
  const int sock = connect_to(port_);
  ASSERT_GE(sock, 0);
  ASSERT_TRUE(send_text(sock, kHello));
  pollfd p{sock, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 500), 0) << "answered although every thread waits on a silent connection";
  EXPECT_EQ(server_->connection_stats().parks, 0u);
  // One silent connection closing frees a thread for it.
  ::close(silent_.back());
  silent_.pop_back();
  const std::string answer = read_until(sock, "world", 1);
  EXPECT_NE(answer.find("HTTP/1.1 200"), std::string::npos) << answer;
  ::close(sock);
}

TEST_F(StreamServerTest, AParkedConnectionServesItsNextRequestsOnTheSameConnection) {
  StreamServerOptions options;
  options.idle_thread_linger = std::chrono::milliseconds(20);
  start(options);
  const int sock = connect_to(port_);
  ASSERT_GE(sock, 0);
  const std::string me = local_address(sock) + " ";
  const std::string whoami = "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n";
  for (size_t round = 1; round <= 2; ++round) {  // (5 requests in all: httplib's default max)
    ASSERT_TRUE(send_text(sock, whoami));
    const std::string answer = read_until(sock, me, 1);
    EXPECT_NE(answer.find(me), std::string::npos) << answer;
    ASSERT_TRUE(eventually([&] { return server_->connection_stats().parks == round; }))
        << server_->connection_stats().parks;
    EXPECT_EQ(server_->connection_stats().parked, 1u);
  }
  // Three requests in one segment to a parked connection: all answered, in order.
  ASSERT_TRUE(send_text(sock, kHello + "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" + kHello));
  const std::string answers = read_until(sock, "HTTP/1.1 ", 3);
  const size_t first = answers.find("HTTP/1.1 200");
  const size_t second = answers.find("HTTP/1.1 404");
  const size_t third = answers.find("HTTP/1.1 200", first + 1);
  ASSERT_NE(third, std::string::npos) << answers;
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
  ::close(sock);
}

TEST_F(StreamServerTest, AParkedConnectionTheClientClosesIsClosedHereToo) {
  StreamServerOptions options;
  options.idle_thread_linger = std::chrono::milliseconds(20);
  options.keep_alive_idle = std::chrono::seconds(30);
  start(options);
  std::vector<int> socks;
  for (int i = 0; i < 5; ++i) {
    socks.push_back(connect_to(port_));
    ASSERT_GE(socks.back(), 0);
    ASSERT_TRUE(send_text(socks.back(), kHello));
    EXPECT_NE(read_until(socks.back(), "world", 1).find("world"), std::string::npos);
  }
  ASSERT_TRUE(eventually([&] { return server_->connection_stats().parked == 5; }));
  for (int sock : socks) ::close(sock);
  // Each end of stream wakes the watcher, a thread reads it and closes the server's side.
  EXPECT_TRUE(eventually([&] { return server_->connection_stats().parked == 0; }))
      << server_->connection_stats().parked;
  // The server still serves.
  const int sock = connect_to(port_);
  ASSERT_TRUE(send_text(sock, kHello));
  EXPECT_NE(read_until(sock, "world", 1).find("world"), std::string::npos);
  ::close(sock);
}

TEST_F(StreamServerTest, ShuttingDownClosesParkedConnectionsAtOnce) {
  StreamServerOptions options;
  options.idle_thread_linger = std::chrono::milliseconds(20);
  options.keep_alive_idle = std::chrono::seconds(60);
  start(options);
  const int sock = connect_to(port_);
  ASSERT_TRUE(send_text(sock, kHello));
  EXPECT_NE(read_until(sock, "world", 1).find("world"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return server_->connection_stats().parked == 1; }));
  server_->stop();
  server_->shut_down_connections();
  EXPECT_EQ(server_->connection_stats().parked, 0u);
  pollfd p{sock, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  char byte;
  EXPECT_EQ(::recv(sock, &byte, 1, 0), 0);  // end of stream
  thread_.join();
  ::close(sock);
}

}  // namespace
}  // namespace raftlock::raft::transport
