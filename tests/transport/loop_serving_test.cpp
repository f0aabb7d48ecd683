// StreamServer::enable_loop_serving: between requests a keep-alive connection waits in an epoll
// set that an event loop polls (here a test thread standing in for the Raft loop), and the loop
// serves the eligible requests itself, waiting for the rest of one written in pieces. Everything
// else (another path, a request that closes its connection, any request once the loop has
// detached) is served by the pool as before (and a connection whose last request was another's
// keeps its thread), answers keep their order, idle connections and
// unfinished requests in the loop's set are closed in time, and a shutdown closes them.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
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
using raftlock::testing::read_response;
using raftlock::testing::read_until;

std::string post(const std::string& path, const std::string& body,
                 const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + extra_headers + "\r\n" + body;
}

void send_text(int sock, const std::string& text) {
  ASSERT_EQ(::send(sock, text.data(), text.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(text.size()));
}

// The body of an HTTP response.
std::string body_of(const std::string& response) {
  const size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

class LoopServingTest : public ::testing::Test {
 protected:
  void start(StreamServerOptions options = {}) {
    server_ = std::make_unique<StreamServer>(options);
    server_->set_keep_alive_max_count(1000);  // (httplib's default closes after 5 requests)
    server_->set_exception_handler([](const httplib::Request&, httplib::Response& res,
                                      std::exception_ptr) { res.status = 500; });
    // Eligible: POST /loop/... . The handler answers with the body it got and records the
    // thread that served each request; /loop/later answers from another thread later.
    server_->set_direct_handler([this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mutex_);
        served_by_.push_back(std::this_thread::get_id());
      }
      if (req.path == "/loop/later") {
        if (auto later = StreamServer::defer_answer()) {
          std::thread([later, body = req.body] {
            std::this_thread::sleep_for(30ms);
            httplib::Response response;
            response.status = 200;
            response.set_content("later " + body, "text/plain");
            later->send(std::move(response));
          }).detach();
          return true;
        }
      }
      res.set_content(req.body.empty() ? req.path : req.body, "text/plain");
      return true;
    });
    server_->enable_loop_serving(
        [](std::string_view line) { return line.starts_with("POST /loop/"); });
    ASSERT_NE(server_->loop_source(), nullptr);
    port_ = raftlock::testing::serve_on_loopback(*server_, thread_);
    ASSERT_GT(port_, 0);
    start_loop();
  }
  // The stand-in for the Raft loop: polls the source's descriptor and serves it.
  void start_loop() {
    LoopSource* source = server_->loop_source();
    source->set_attached(true);
    loop_stop_ = false;
    loop_ = std::thread([this, source] {
      loop_id_ = std::this_thread::get_id();
      loop_started_ = true;
      while (!loop_stop_) {
        pollfd p{source->descriptor(), POLLIN, 0};
        if (::poll(&p, 1, 10) > 0) source->on_readable();
      }
      source->set_attached(false);
    });
    while (!loop_started_) std::this_thread::sleep_for(1ms);
  }
  void stop_loop() {
    loop_stop_ = true;
    if (loop_.joinable()) loop_.join();
  }
  void TearDown() override {
    stop_loop();
    if (server_) {
      server_->stop();
      server_->shut_down_connections();
    }
    if (thread_.joinable()) thread_.join();
    for (int sock : socks_) ::close(sock);
  }
  int connect() {
    const int sock = raftlock::testing::connect_loopback(port_);
    socks_.push_back(sock);
    return sock;
  }
  // A connection whose first lock request was answered and that now waits in the loop's set;
  // -1, with the failure recorded, when it does not wait there.
  int connect_waiting_in_loop() {
    const int sock = connect();
    EXPECT_EQ(exchange(sock, post("/loop/a", "one")), "one");
    if (!waits_in_loop_set(1)) {
      ADD_FAILURE() << "the connection does not wait in the loop's set";
      return -1;
    }
    return sock;
  }
  // Sends `request` and returns the answer's body.
  std::string exchange(int sock, const std::string& request) {
    send_text(sock, request);
    return body_of(read_response(sock));
  }
  std::thread::id last_served_by() {
    std::lock_guard lock(mutex_);
    return served_by_.empty() ? std::thread::id() : served_by_.back();
  }
  bool waits_in_loop_set(size_t count) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (server_->connection_stats().loop_parked == count) return true;
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }

  std::unique_ptr<StreamServer> server_;
  std::thread thread_;
  int port_ = 0;
  std::thread loop_;
  std::atomic<bool> loop_stop_{false};
  std::atomic<bool> loop_started_{false};
  std::thread::id loop_id_;
  std::mutex mutex_;
  std::vector<std::thread::id> served_by_;
  std::vector<int> socks_;
};

TEST_F(LoopServingTest, AfterItsFirstRequestAConnectionsEligibleRequestsAreServedByTheLoop) {
  start();
  const int sock = connect();
  // The first request of a connection arrives on a thread (the accept hands it one).
  EXPECT_EQ(exchange(sock, post("/loop/a", "one")), "one");
  EXPECT_NE(last_served_by(), loop_id_);
  ASSERT_TRUE(waits_in_loop_set(1));
  for (int i = 0; i < 5; ++i) {
    const std::string body = "request " + std::to_string(i);
    EXPECT_EQ(exchange(sock, post("/loop/a", body)), body);
    EXPECT_EQ(last_served_by(), loop_id_) << i;
  }
  EXPECT_EQ(server_->connection_stats().loop_requests, 5u);
}

TEST_F(LoopServingTest, AfterAnotherRequestTheConnectionKeepsItsThreadUntilAnEligibleOne) {
  start();
  const int sock = connect_waiting_in_loop();
  ASSERT_GE(sock, 0);
  // Another request: the loop hands it to a thread, and the connection stays there (a client
  // reading, say, would otherwise pay the loop's hand-off on every request).
  EXPECT_EQ(exchange(sock, post("/other", "two")), "two");
  EXPECT_NE(last_served_by(), loop_id_);
  EXPECT_EQ(exchange(sock, post("/other", "three")), "three");
  EXPECT_NE(last_served_by(), loop_id_);
  EXPECT_EQ(server_->connection_stats().loop_parked, 0u);
  // An eligible request on that thread sends the connection back to the loop.
  EXPECT_EQ(exchange(sock, post("/loop/a", "four")), "four");
  EXPECT_NE(last_served_by(), loop_id_);
  ASSERT_TRUE(waits_in_loop_set(1));
  EXPECT_EQ(exchange(sock, post("/loop/a", "five")), "five");
  EXPECT_EQ(last_served_by(), loop_id_);
  EXPECT_EQ(server_->connection_stats().loop_requests, 1u);
}

TEST_F(LoopServingTest, ARequestWrittenInPiecesIsServedWholeByTheLoop) {
  start();
  const int sock = connect_waiting_in_loop();
  ASSERT_GE(sock, 0);
  // A client that writes the header, then the body (Python's http.client does), and one that
  // stops inside the request line: the loop waits for the rest without a thread.
  for (const std::string& request :
       {post("/loop/a", "the whole body"), post("/loop/a", "cut in the line")}) {
    const size_t cut = request.find("\r\n\r\n") == std::string::npos
                           ? 0
                           : (request.find("cut in") != std::string::npos ? 8 : request.size() - 5);
    send_text(sock, request.substr(0, cut));
    std::this_thread::sleep_for(50ms);  // the loop sees the first part alone
    ASSERT_TRUE(waits_in_loop_set(1));
    send_text(sock, request.substr(cut));
    EXPECT_EQ(body_of(read_response(sock)), request.substr(request.find("\r\n\r\n") + 4));
    EXPECT_EQ(last_served_by(), loop_id_);
  }
  EXPECT_EQ(server_->connection_stats().loop_requests, 2u);
}

TEST_F(LoopServingTest, ARequestWhoseRestNeverComesIsClosedAtTheReadTimeout) {
  StreamServerOptions options;
  options.read_timeout = 300ms;
  start(options);
  const int sock = connect_waiting_in_loop();
  ASSERT_GE(sock, 0);
  const std::string request = post("/loop/a", "never finished");
  send_text(sock, request.substr(0, request.size() - 3));
  bool closed = false;
  const auto began = std::chrono::steady_clock::now();
  const std::string got = read_until(sock, "never", 1, 5s, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(got, "");
  EXPECT_LT(std::chrono::steady_clock::now() - began, 4s);
  EXPECT_EQ(server_->connection_stats().open, 0u);
}

TEST_F(LoopServingTest, AnAnswerDeferredOnTheLoopGoesOutAndTheNextRequestIsTheLoopsAgain) {
  start();
  const int sock = connect_waiting_in_loop();
  ASSERT_GE(sock, 0);
  EXPECT_EQ(exchange(sock, post("/loop/later", "two")), "later two");
  EXPECT_EQ(last_served_by(), loop_id_);
  EXPECT_EQ(exchange(sock, post("/loop/a", "three")), "three");
  EXPECT_EQ(last_served_by(), loop_id_);
  EXPECT_EQ(server_->connection_stats().loop_requests, 2u);
}

TEST_F(LoopServingTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  const int sock = connect_waiting_in_loop();
  ASSERT_GE(sock, 0);
  // The first waits for its answer (deferred); the two behind it must not overtake it.
  send_text(sock, post("/loop/later", "A") + post("/loop/a", "B") + post("/other", "C"));
  const std::string got = read_until(sock, "HTTP/1.1 200", 3);
  const size_t a = got.find("later A");
  const size_t b = got.find("\r\n\r\nB");
  const size_t c = got.find("\r\n\r\nC");
  ASSERT_NE(a, std::string::npos) << got;
  ASSERT_NE(b, std::string::npos) << got;
  ASSERT_NE(c, std::string::npos) << got;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
}

TEST_F(LoopServingTest, ARequestThatClosesItsConnectionIsServedByAThread) {
  start();
  const int sock = connect_waiting_in_loop();
  ASSERT_GE(sock, 0);
  send_text(sock, post("/loop/a", "last", "Connection: close\r\n"));
  bool closed = false;
  const std::string got = read_until(sock, "never", 1, 5s, &closed);
  EXPECT_EQ(body_of(got), "last");
  EXPECT_TRUE(closed);
  EXPECT_NE(last_served_by(), loop_id_);
}

TEST_F(LoopServingTest, OnceTheLoopDetachesItsConnectionsAreServedByThreads) {
  start();
  const int sock = connect_waiting_in_loop();
  ASSERT_GE(sock, 0);
  stop_loop();
  EXPECT_EQ(server_->connection_stats().loop_parked, 0u);
  EXPECT_EQ(exchange(sock, post("/loop/a", "two")), "two");
  EXPECT_NE(last_served_by(), loop_id_);
  EXPECT_EQ(exchange(sock, post("/loop/a", "three")), "three");
  EXPECT_EQ(server_->connection_stats().loop_parked, 0u);
  EXPECT_EQ(server_->connection_stats().loop_requests, 0u);
}

TEST_F(LoopServingTest, AnIdleConnectionInTheLoopsSetIsClosedAtTheKeepAliveLimit) {
  StreamServerOptions options;
  options.keep_alive_idle = 300ms;
  start(options);
  const int sock = connect_waiting_in_loop();
  ASSERT_GE(sock, 0);
  bool closed = false;
  const auto began = std::chrono::steady_clock::now();
  read_until(sock, "never", 1, 5s, &closed);
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - began, 4s);
  EXPECT_EQ(server_->connection_stats().open, 0u);
  EXPECT_EQ(server_->connection_stats().loop_parked, 0u);
}

TEST_F(LoopServingTest, AShutdownClosesTheConnectionsInTheLoopsSet) {
  start();
  const int sock = connect_waiting_in_loop();
  ASSERT_GE(sock, 0);
  server_->shut_down_connections();
  bool closed = false;
  read_until(sock, "never", 1, 5s, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(server_->connection_stats().loop_parked, 0u);
}

TEST_F(LoopServingTest, WithoutAnAttachedLoopNothingWaitsInItsSet) {
  server_ = std::make_unique<StreamServer>();
  server_->set_exception_handler([](const httplib::Request&, httplib::Response& res,
                                    std::exception_ptr) { res.status = 500; });
  server_->set_direct_handler([](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.body, "text/plain");
    return true;
  });
  server_->enable_loop_serving([](std::string_view) { return true; });
  port_ = raftlock::testing::serve_on_loopback(*server_, thread_);
  ASSERT_GT(port_, 0);
  const int sock = connect();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(exchange(sock, post("/loop/a", "x")), "x");
  EXPECT_EQ(server_->connection_stats().loop_parked, 0u);
  EXPECT_EQ(server_->connection_stats().loop_requests, 0u);
}

}  // namespace
}  // namespace raftlock::raft::transport
