// StreamServer::defer_answer: a direct handler answers later, from another thread, while the
// connection's thread goes back to reading. The answer is written byte for byte as the direct
// path writes it; waiting requests hold no thread; a pipelined request waits for the answer owed
// before it; a connection owing an answer is not closed as idle; an answer given up (destroyed
// unsent) ends its connection, and one for a connection the client closed goes nowhere.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "raft/transport/stream_server.h"
#include "tests/support/loopback_client.h"
#include "tests/support/serve_on_loopback.h"

namespace raftlock::raft::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using raftlock::testing::read_until;

int connect_to(int port) {
  return raftlock::testing::connect_loopback(port);
}

void send_text(int sock, const std::string& text) {
  ASSERT_EQ(::send(sock, text.data(), text.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(text.size()));
}

std::string request(const std::string& path, const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n" + extra_headers +
         "\r\n{}";
}

class DeferredAnswerTest : public ::testing::Test {
 protected:
  void start(StreamServerOptions options = {}, size_t threads = 0) {
    server_ = std::make_unique<StreamServer>(options);
    if (threads > 0) server_->set_thread_count(threads);
    server_->set_exception_handler([](const httplib::Request&, httplib::Response& res,
                                      std::exception_ptr) { res.status = 500; });
    server_->set_direct_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.path == "/later") {
        if (auto later = StreamServer::defer_answer()) {
          std::lock_guard lock(mutex_);
          owed_.push_back(std::move(later));
          return true;
        }
        res.set_content("not deferred", "text/plain");
        return true;
      }
      res.set_content(req.path == "/now" ? "now" : "done", "text/plain");
      return true;
    });
    port_ = raftlock::testing::serve_on_loopback(*server_, thread_);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override {
    {
      std::lock_guard lock(mutex_);
      owed_.clear();
    }
    if (server_) {
      server_->stop();
      server_->shut_down_connections();
    }
    if (thread_.joinable()) thread_.join();
  }
  size_t owed() {
    std::lock_guard lock(mutex_);
    return owed_.size();
  }
  bool wait_for_owed(size_t count) {
    const auto deadline = Clock::now() + 5s;
    while (owed() < count && Clock::now() < deadline) std::this_thread::sleep_for(2ms);
    return owed() >= count;
  }
  std::shared_ptr<DeferredAnswer> take(size_t i) {
    std::lock_guard lock(mutex_);
    return owed_.at(i);
  }
  static httplib::Response done_response() {
    httplib::Response res;
    res.version = "HTTP/1.1";
    res.status = 200;
    res.set_content("done", "text/plain");
    return res;
  }

  std::unique_ptr<StreamServer> server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::shared_ptr<DeferredAnswer>> owed_;
};

TEST_F(DeferredAnswerTest, AnAnswerSentFromAnotherThreadIsWhatTheDirectPathWouldHaveWritten) {
  start();
  const int sock = connect_to(port_);
  ASSERT_GE(sock, 0);
  send_text(sock, request("/done"));  // answered at once by the direct path, body "done"
  const std::string direct = read_until(sock, "done", 1, 2s);
  ASSERT_NE(direct.find("done"), std::string::npos) << direct;

  send_text(sock, request("/later"));
  ASSERT_TRUE(wait_for_owed(1));
  EXPECT_EQ(read_until(sock, "HTTP/1.1", 1, 100ms), "") << "answered before the answer was sent";
  bool sent = false;
  std::thread([&] { sent = take(0)->send(done_response()); }).join();
  EXPECT_TRUE(sent);
  EXPECT_EQ(read_until(sock, "done", 1, 2s), direct);
  EXPECT_FALSE(take(0)->send(done_response())) << "a second answer to one request went out";
  ::close(sock);
}

TEST_F(DeferredAnswerTest, RequestsWaitingForTheirAnswersHoldNoThread) {
  constexpr int kWaiting = 12;
  start({}, 2);  // two threads for twelve waiting requests
  std::vector<int> socks;
  for (int i = 0; i < kWaiting; ++i) {
    socks.push_back(connect_to(port_));
    ASSERT_GE(socks.back(), 0);
    send_text(socks.back(), request("/later"));
  }
  ASSERT_TRUE(wait_for_owed(kWaiting))
      << "only " << owed() << " of " << kWaiting << " requests reached the handler";
  // A new connection is still served at once.
  const int fresh = connect_to(port_);
  ASSERT_GE(fresh, 0);
  send_text(fresh, request("/now"));
  EXPECT_NE(read_until(fresh, "now", 1, 2s).find("now"), std::string::npos);
  ::close(fresh);
  // Each waiting request gets its own answer, in any order of sending.
  for (int i = kWaiting - 1; i >= 0; --i)
    ASSERT_TRUE(take(static_cast<size_t>(i))->send(done_response()));
  for (int sock : socks) {
    const std::string answer = read_until(sock, "done", 1, 2s);
    EXPECT_NE(answer.find("HTTP/1.1 200 OK"), std::string::npos) << answer;
    EXPECT_NE(answer.find("done"), std::string::npos) << answer;
    ::close(sock);
  }
}

TEST_F(DeferredAnswerTest, APostFromAClientThatAcceptsCompressionIsAnsweredLaterUncompressed) {
  // Go's and Python's HTTP clients send Accept-Encoding by default: their waiting requests must
  // not fall back to httplib (which would hold a thread for the wait, and compress the answer).
  start({}, 2);
  std::vector<int> socks;
  for (const char* accepts : {"gzip", "gzip, deflate", "gzip, deflate, br, zstd", "identity",
                              "br;q=1.0, gzip;q=0.8, identity;q=0.1"}) {
    socks.push_back(connect_to(port_));
    ASSERT_GE(socks.back(), 0);
    send_text(socks.back(), request("/later", std::string("Accept-Encoding: ") + accepts + "\r\n"));
  }
  ASSERT_TRUE(wait_for_owed(socks.size())) << "only " << owed() << " were deferred";
  for (size_t i = 0; i < socks.size(); ++i) ASSERT_TRUE(take(i)->send(done_response()));
  for (int sock : socks) {
    const std::string answer = read_until(sock, "done", 1, 2s);
    EXPECT_NE(answer.find("HTTP/1.1 200 OK"), std::string::npos) << answer;
    EXPECT_NE(answer.find("\r\n\r\ndone"), std::string::npos) << answer;
    EXPECT_EQ(answer.find("Content-Encoding"), std::string::npos) << answer;
    ::close(sock);
  }
  // Answered at once, uncompressed too.
  const int sock = connect_to(port_);
  ASSERT_GE(sock, 0);
  send_text(sock, request("/now", "Accept-Encoding: gzip\r\n"));
  const std::string now = read_until(sock, "now", 1, 2s);
  EXPECT_NE(now.find("\r\n\r\nnow"), std::string::npos) << now;
  EXPECT_EQ(now.find("Content-Encoding"), std::string::npos) << now;
  ::close(sock);
}

TEST_F(DeferredAnswerTest, APipelinedRequestIsAnsweredAfterTheAnswerOwedBeforeIt) {
  start();
  const int sock = connect_to(port_);
  ASSERT_GE(sock, 0);
  send_text(sock, request("/later") + request("/now"));  // both in one segment
  ASSERT_TRUE(wait_for_owed(1));
  EXPECT_EQ(read_until(sock, "HTTP/1.1", 1, 300ms), "")
      << "the second request was answered before the first";
  ASSERT_TRUE(take(0)->send(done_response()));
  const std::string answers = read_until(sock, "HTTP/1.1", 2, 2s);
  const size_t first = answers.find("done");
  const size_t second = answers.find("now");
  ASSERT_NE(first, std::string::npos) << answers;
  ASSERT_NE(second, std::string::npos) << answers;
  EXPECT_LT(first, second) << answers;
  ::close(sock);
}

TEST_F(DeferredAnswerTest, AConnectionOwingAnAnswerIsNotClosedAsIdle) {
  StreamServerOptions options;
  options.keep_alive_idle = 200ms;
  options.idle_thread_linger = 50ms;
  start(options);
  const int sock = connect_to(port_);
  ASSERT_GE(sock, 0);
  send_text(sock, request("/later"));
  ASSERT_TRUE(wait_for_owed(1));
  bool closed = false;
  EXPECT_EQ(read_until(sock, "HTTP/1.1", 1, 800ms, &closed), "");  // four idle timeouts
  ASSERT_FALSE(closed) << "a connection owing an answer was closed as idle";
  ASSERT_TRUE(take(0)->send(done_response()));
  EXPECT_NE(read_until(sock, "done", 1, 2s).find("done"), std::string::npos);
  // Answered, it is idle again, and closed after the idle timeout.
  read_until(sock, "never", 1, 2s, &closed);
  EXPECT_TRUE(closed) << "the answered connection was never closed as idle";
  ::close(sock);
}

TEST_F(DeferredAnswerTest, AnAnswerGivenUpUnsentEndsTheConnection) {
  start();
  const int sock = connect_to(port_);
  ASSERT_GE(sock, 0);
  send_text(sock, request("/later"));
  ASSERT_TRUE(wait_for_owed(1));
  {
    std::lock_guard lock(mutex_);
    owed_.clear();  // the last reference: destroyed unsent
  }
  bool closed = false;
  EXPECT_EQ(read_until(sock, "HTTP/1.1", 1, 2s, &closed), "");
  EXPECT_TRUE(closed) << "the client was left waiting for an answer nobody will send";
  ::close(sock);
}

TEST_F(DeferredAnswerTest, AnAnswerForAConnectionTheClientClosedGoesNowhere) {
  start();
  const int sock = connect_to(port_);
  ASSERT_GE(sock, 0);
  send_text(sock, request("/later"));
  ASSERT_TRUE(wait_for_owed(1));
  ::close(sock);
  const auto deadline = Clock::now() + 5s;
  while (server_->connection_stats().open > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_EQ(server_->connection_stats().open, 0u) << "the server kept the closed connection";
  // A new connection may have the old descriptor number: it must not get the old answer.
  const int next = connect_to(port_);
  ASSERT_GE(next, 0);
  send_text(next, request("/now"));
  ASSERT_NE(read_until(next, "now", 1, 2s).find("now"), std::string::npos);
  EXPECT_FALSE(take(0)->send(done_response()));
  EXPECT_EQ(read_until(next, "done", 1, 300ms).find("done"), std::string::npos);
  ::close(next);
}

TEST_F(DeferredAnswerTest, ARequestThatClosesItsConnectionIsNotDeferred) {
  start();
  const int sock = connect_to(port_);
  ASSERT_GE(sock, 0);
  send_text(sock, request("/later", "Connection: close\r\n"));
  bool closed = false;
  const std::string answer = read_until(sock, "not deferred", 1, 2s, &closed);
  EXPECT_NE(answer.find("not deferred"), std::string::npos) << answer;
  EXPECT_EQ(owed(), 0u);
  ::close(sock);
}

}  // namespace
}  // namespace raftlock::raft::transport
