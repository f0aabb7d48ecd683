// bench::HttpConnection (lockbench's raw-socket keep-alive HTTP/1.1 client): round trips against
// an httplib server, connection reuse, odd wire formats from a scripted raw-socket server
// (chunked, byte-by-byte, 1xx, read-to-EOF), idle-close retry, failover on transport errors, and
// parse_endpoints.
#include "bench/lockbench/http_connection.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace raftlock::bench {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kTimeout(2000);

// An httplib server on 127.0.0.1:<ephemeral> that records the client port of every request (one
// port per TCP connection).
class EchoServer {
 public:
  EchoServer() {
    server_.set_keep_alive_max_count(100000);
    server_.set_tcp_nodelay(true);
    server_.Post("/echo", [this](const httplib::Request& req, httplib::Response& res) {
      note(req);
      res.status = 201;
      res.set_content(req.get_header_value("Content-Type") + "|" + req.body, "application/json");
    });
    server_.Get("/thing", [this](const httplib::Request& req, httplib::Response& res) {
      note(req);
      res.set_content("got", "text/plain");
    });
    server_.Delete("/thing", [this](const httplib::Request& req, httplib::Response& res) {
      note(req);
      res.status = 404;
      res.set_content("deleted:" + std::to_string(req.body.size()), "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~EchoServer() {
    server_.stop();
    thread_.join();
  }
  Endpoint endpoint() const { return {"127.0.0.1", port_}; }
  size_t connections() {
    std::lock_guard<std::mutex> lock(mu_);
    return client_ports_.size();
  }
  size_t requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void note(const httplib::Request& req) {
    std::lock_guard<std::mutex> lock(mu_);
    client_ports_.insert(req.remote_port);
    ++requests_;
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::set<int> client_ports_;
  size_t requests_ = 0;
};

bool send_all(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Reads one request (head plus Content-Length body). Returns "" on EOF/error.
std::string read_request(int fd) {
  std::string got;
  char chunk[4096];
  for (;;) {
    size_t head_end = got.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      size_t length = 0;
      size_t at = got.find("Content-Length: ");
      if (at != std::string::npos && at < head_end) length = std::stoul(got.substr(at + 16));
      if (got.size() >= head_end + 4 + length) return got;
    }
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return "";
    got.append(chunk, static_cast<size_t>(n));
  }
}

// Waits until the peer closes the connection (recv returns 0 or fails).
void wait_for_peer_close(int fd) {
  char chunk[4096];
  while (::recv(fd, chunk, sizeof chunk, 0) > 0) {
  }
}

// A raw-socket server on 127.0.0.1:<ephemeral> that hands each accepted connection, one at a
// time, to a scripted handler (argument: connection fd, 0-based connection number). The
// connection is closed when the handler returns.
class ScriptedServer {
 public:
  using Handler = std::function<void(int fd, int connection)>;

  explicit ScriptedServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listen_fd_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    int active = active_fd_.load();
    if (active >= 0) ::shutdown(active, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  Endpoint endpoint() const { return {"127.0.0.1", port_}; }
  int accepted() const { return accepted_.load(); }

 private:
  void serve() {
    for (int n = 0; !stopping_; ++n) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      ++accepted_;
      active_fd_ = fd;
      if (stopping_) ::shutdown(fd, SHUT_RDWR);
      handler_(fd, n);
      active_fd_ = -1;
      ::close(fd);
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> active_fd_{-1};
  std::atomic<int> accepted_{0};
};

// A handler answering every request on the connection with `response`.
ScriptedServer::Handler answer_each_with(std::string response) {
  return [response](int fd, int) {
    while (!read_request(fd).empty()) {
      if (!send_all(fd, response)) return;
    }
  };
}

// --- round trips against httplib ---

TEST(HttpConnection, PostSendsJsonBodyAndReturnsStatusAndEchoedBody) {
  EchoServer server;
  HttpConnection conn({server.endpoint()}, 0, kTimeout);
  HttpAnswer a = conn.post("/echo", R"({"key":"a","n":1})");
  ASSERT_TRUE(a.transport_ok);
  EXPECT_EQ(a.status, 201);
  EXPECT_EQ(a.body, R"(application/json|{"key":"a","n":1})");
}

TEST(HttpConnection, GetAndDeleteReachTheirHandlers) {
  EchoServer server;
  HttpConnection conn({server.endpoint()}, 0, kTimeout);
  HttpAnswer got = conn.get("/thing");
  ASSERT_TRUE(got.transport_ok);
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, "got");
  HttpAnswer deleted = conn.del("/thing");
  ASSERT_TRUE(deleted.transport_ok);
  EXPECT_EQ(deleted.status, 404);
  EXPECT_EQ(deleted.body, "deleted:0");
  HttpAnswer missing = conn.get("/nowhere");
  ASSERT_TRUE(missing.transport_ok);
  EXPECT_EQ(missing.status, 404);
}

TEST(HttpConnection, ManyRequestsReuseOneConnection) {
  EchoServer server;
  HttpConnection conn({server.endpoint()}, 0, kTimeout);
  for (int i = 0; i < 200; ++i) {
    std::string body = "{\"i\":" + std::to_string(i) + "}";
    HttpAnswer a = i % 2 == 0 ? conn.post("/echo", body) : conn.get("/thing");
    ASSERT_TRUE(a.transport_ok) << i;
    EXPECT_EQ(a.body, i % 2 == 0 ? "application/json|" + body : "got") << i;
  }
  EXPECT_EQ(server.requests(), 200u);
  EXPECT_EQ(server.connections(), 1u);
}

TEST(HttpConnection, LargeBodiesGoBothWays) {
  EchoServer server;
  HttpConnection conn({server.endpoint()}, 0, kTimeout);
  std::string big(3 * 1024 * 1024 + 17, 'x');
  for (size_t i = 0; i < big.size(); i += 1000) big[i] = static_cast<char>('a' + i % 26);
  HttpAnswer a = conn.post("/echo", big);
  ASSERT_TRUE(a.transport_ok);
  EXPECT_EQ(a.body, "application/json|" + big);
  HttpAnswer small = conn.post("/echo", "{}");
  ASSERT_TRUE(small.transport_ok);
  EXPECT_EQ(small.body, "application/json|{}");
  EXPECT_EQ(server.connections(), 1u);
}

// --- wire format ---

TEST(HttpConnection, RequestsCarryHostAndLengthAndNoConnectionClose) {
  std::promise<std::vector<std::string>> seen;
  ScriptedServer server([&seen](int fd, int) {
    std::vector<std::string> requests;
    for (int i = 0; i < 3; ++i) {
      requests.push_back(read_request(fd));
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
    seen.set_value(requests);
    wait_for_peer_close(fd);
  });
  HttpConnection conn({server.endpoint()}, 0, kTimeout);
  ASSERT_TRUE(conn.post("/v1/x", "").transport_ok);
  ASSERT_TRUE(conn.post("/v1/y", "{\"a\":1}").transport_ok);
  ASSERT_TRUE(conn.del("/v1/z").transport_ok);
  auto requests = seen.get_future().get();
  const std::string host = "Host: 127.0.0.1:" + std::to_string(server.endpoint().port) + "\r\n";
  EXPECT_EQ(requests[0], "POST /v1/x HTTP/1.1\r\n" + host +
                             "Content-Type: application/json\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(requests[1],
            "POST /v1/y HTTP/1.1\r\n" + host +
                "Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
  EXPECT_EQ(requests[2], "DELETE /v1/z HTTP/1.1\r\n" + host + "\r\n");
}

TEST(HttpConnection, ChunkedResponseWithExtensionAndTrailerIsDecoded) {
  ScriptedServer server(
      answer_each_with("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n"
                       "5;name=value\r\nhello\r\n"
                       "7\r\n, world\r\n"
                       "A \r\n0123456789\r\n"
                       "0;last\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n"));
  HttpConnection conn({server.endpoint()}, 0, kTimeout);
  for (int i = 0; i < 3; ++i) {
    HttpAnswer a = conn.get("/c");
    ASSERT_TRUE(a.transport_ok);
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(a.body, "hello, world0123456789");
  }
  EXPECT_EQ(server.accepted(), 1);
}

TEST(HttpConnection, ResponsesDeliveredOneBytePerSendAreAssembled) {
  const std::vector<std::string> responses = {
      "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\ncontent-LENGTH: 11\r\n\r\n"
      "{\"ok\":true}",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: "
      "v\r\n\r\n"};
  ScriptedServer server([&responses](int fd, int) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (const std::string& response : responses) {
      if (read_request(fd).empty()) return;
      for (char c : response) {
        if (!send_all(fd, std::string(1, c))) return;
      }
    }
    wait_for_peer_close(fd);
  });
  HttpConnection conn({server.endpoint()}, 0, kTimeout);
  HttpAnswer a = conn.post("/one", "{}");
  ASSERT_TRUE(a.transport_ok);
  EXPECT_EQ(a.status, 201);
  EXPECT_EQ(a.body, "{\"ok\":true}");
  HttpAnswer b = conn.get("/two");
  ASSERT_TRUE(b.transport_ok);
  EXPECT_EQ(b.status, 200);
  EXPECT_EQ(b.body, "abcde");
  EXPECT_EQ(server.accepted(), 1);
}

TEST(HttpConnection, NoContentResponseHasNoBodyAndKeepsTheConnection) {
  ScriptedServer server([](int fd, int) {
    if (read_request(fd).empty()) return;
    send_all(fd, "HTTP/1.1 204 No Content\r\nServer: s\r\n\r\n");
    if (read_request(fd).empty()) return;
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext");
    wait_for_peer_close(fd);
  });
  HttpConnection conn({server.endpoint()}, 0, kTimeout);
  HttpAnswer a = conn.del("/x");
  ASSERT_TRUE(a.transport_ok);
  EXPECT_EQ(a.status, 204);
  EXPECT_EQ(a.body, "");
  HttpAnswer b = conn.get("/y");
  ASSERT_TRUE(b.transport_ok);
  EXPECT_EQ(b.body, "next");
  EXPECT_EQ(server.accepted(), 1);
}

TEST(HttpConnection, ContinueInterimResponseIsSkipped) {
  ScriptedServer server(answer_each_with(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok"));
  HttpConnection conn({server.endpoint()}, 0, kTimeout);
  for (int i = 0; i < 2; ++i) {
    HttpAnswer a = conn.post("/p", "{}");
    ASSERT_TRUE(a.transport_ok);
    EXPECT_EQ(a.status, 202);
    EXPECT_EQ(a.body, "ok");
  }
  EXPECT_EQ(server.accepted(), 1);
}

TEST(HttpConnection, BodyWithoutLengthRunsToEndOfConnection) {
  ScriptedServer server([](int fd, int) {
    if (read_request(fd).empty()) return;
    send_all(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of ");
    send_all(fd, "this");
  });
  HttpConnection conn({server.endpoint()}, 0, kTimeout);
  for (int i = 0; i < 2; ++i) {
    HttpAnswer a = conn.get("/eof");
    ASSERT_TRUE(a.transport_ok);
    EXPECT_EQ(a.body, "all of this");
  }
  EXPECT_EQ(server.accepted(), 2);
}

// --- connection management ---

TEST(HttpConnection, ConnectionCloseResponseReconnectsToTheSameEndpoint) {
  ScriptedServer first([](int fd, int) {
    if (read_request(fd).empty()) return;
    send_all(fd,
             "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 3\r\n\r\nbye");
    // The server keeps its side open: only the client closing lets the next connection in.
    wait_for_peer_close(fd);
  });
  EchoServer second;
  HttpConnection conn({first.endpoint(), second.endpoint()}, 0, kTimeout);
  for (int i = 0; i < 3; ++i) {
    HttpAnswer a = conn.get("/x");
    ASSERT_TRUE(a.transport_ok) << i;
    EXPECT_EQ(a.body, "bye");
    EXPECT_EQ(conn.endpoint_index(), 0u);
  }
  EXPECT_EQ(first.accepted(), 3);
  EXPECT_EQ(second.requests(), 0u);
}

TEST(HttpConnection, IdleCloseByServerIsRetriedOnANewConnection) {
  std::promise<void> first_closed;
  ScriptedServer server([&first_closed](int fd, int connection) {
    if (connection == 0) {
      if (read_request(fd).empty()) return;
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
      ::shutdown(fd, SHUT_RDWR);  // idle keep-alive connection closed by the server
      first_closed.set_value();
      return;
    }
    while (!read_request(fd).empty()) {
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlater");
    }
  });
  HttpConnection conn({server.endpoint()}, 0, kTimeout);
  HttpAnswer a = conn.get("/a");
  ASSERT_TRUE(a.transport_ok);
  EXPECT_EQ(a.body, "first");
  first_closed.get_future().wait();
  HttpAnswer b = conn.post("/b", "{}");
  ASSERT_TRUE(b.transport_ok);
  EXPECT_EQ(b.body, "later");
  EXPECT_EQ(conn.endpoint_index(), 0u);
  EXPECT_EQ(server.accepted(), 2);
}

TEST(HttpConnection, FreshConnectionClosedWithoutAnswerIsAFailureNotRetried) {
  ScriptedServer server([](int fd, int) { read_request(fd); });
  EchoServer other;
  HttpConnection conn({server.endpoint(), other.endpoint()}, 0, kTimeout);
  HttpAnswer a = conn.get("/thing");
  EXPECT_FALSE(a.transport_ok);
  EXPECT_EQ(server.accepted(), 1);
  EXPECT_EQ(conn.endpoint_index(), 1u);
  HttpAnswer b = conn.get("/thing");
  ASSERT_TRUE(b.transport_ok);
  EXPECT_EQ(b.body, "got");
}

TEST(HttpConnection, RefusedEndpointFailsAndTheNextCallUsesTheNextEndpoint) {
  // A bound socket that does not listen: connecting to it is refused.
  int closed_port_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(closed_port_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(closed_port_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  Endpoint refused{"127.0.0.1", ntohs(addr.sin_port)};

  EchoServer server;
  HttpConnection conn({refused, server.endpoint()}, 0, kTimeout);
  EXPECT_EQ(conn.endpoint_index(), 0u);
  HttpAnswer a = conn.get("/thing");
  EXPECT_FALSE(a.transport_ok);
  EXPECT_EQ(conn.endpoint_index(), 1u);
  HttpAnswer b = conn.get("/thing");
  ASSERT_TRUE(b.transport_ok);
  EXPECT_EQ(b.body, "got");
  EXPECT_EQ(conn.endpoint_index(), 1u);
  ::close(closed_port_fd);
}

TEST(HttpConnection, LocalhostNameResolves) {
  EchoServer server;
  HttpConnection conn({{"localhost", server.endpoint().port}}, 0, kTimeout);
  HttpAnswer a = conn.get("/thing");
  ASSERT_TRUE(a.transport_ok);
  EXPECT_EQ(a.body, "got");
}

TEST(HttpConnection, SilentServerFailsAfterTheReadTimeout) {
  ScriptedServer server([](int fd, int) {
    read_request(fd);
    wait_for_peer_close(fd);  // never answers
  });
  EchoServer other;
  const milliseconds timeout(200);
  HttpConnection conn({server.endpoint(), other.endpoint()}, 0, timeout);
  auto start = std::chrono::steady_clock::now();
  HttpAnswer a = conn.get("/thing");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(a.transport_ok);
  EXPECT_GE(took, timeout);
  EXPECT_EQ(conn.endpoint_index(), 1u);
}

TEST(HttpConnection, TrickledResponseStillObeysTheWholeResponseTimeout) {
  // Each byte arrives well within the timeout, but the whole response takes longer than it.
  ScriptedServer server([](int fd, int) {
    if (read_request(fd).empty()) return;
    std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    send_all(fd, head);
    for (int i = 0; i < 100; ++i) {
      pollfd p{fd, POLLIN, 0};
      // Stop once the client gives up (it closes the socket).
      if (::poll(&p, 1, 20) != 0) return;
      if (!send_all(fd, "x")) return;
    }
  });
  const milliseconds timeout(200);
  HttpConnection conn({server.endpoint()}, 0, timeout);
  auto start = std::chrono::steady_clock::now();
  HttpAnswer a = conn.get("/slow");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(a.transport_ok);
  EXPECT_GE(took, timeout);
}

TEST(HttpConnection, TruncatedBodyFailsAndIsNotRetried) {
  ScriptedServer server([](int fd, int connection) {
    if (read_request(fd).empty()) return;
    if (connection == 0) {
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      if (read_request(fd).empty()) return;
    }
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234");
  });
  HttpConnection conn({server.endpoint()}, 0, kTimeout);
  ASSERT_TRUE(conn.get("/a").transport_ok);
  HttpAnswer a = conn.get("/b");
  EXPECT_FALSE(a.transport_ok);
  EXPECT_EQ(server.accepted(), 1);  // bytes had arrived: no retry
}

// Each malformed or oversized response gives transport_ok=false on a kept-alive connection.
class MalformedResponse : public ::testing::TestWithParam<std::string> {};

TEST_P(MalformedResponse, FailsTheRequest) {
  const std::string bad = GetParam();
  ScriptedServer server([&bad](int fd, int) {
    if (read_request(fd).empty()) return;
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    if (read_request(fd).empty()) return;
    send_all(fd, bad);
    wait_for_peer_close(fd);
  });
  EchoServer other;
  HttpConnection conn({server.endpoint(), other.endpoint()}, 0, kTimeout);
  ASSERT_TRUE(conn.get("/fine").transport_ok);
  HttpAnswer a = conn.get("/thing");
  EXPECT_FALSE(a.transport_ok);
  EXPECT_EQ(conn.endpoint_index(), 1u);
  EXPECT_EQ(server.accepted(), 1);
}

INSTANTIATE_TEST_SUITE_P(
    HttpConnection, MalformedResponse,
    ::testing::Values("HTXP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                      "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
                      "HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n", "garbage\r\n\r\n",
                      "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
                      "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n",
                      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 junk\r\nab\r\n",
                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "fffffffffffffffffff\r\n",
                      "HTTP/1.1 200 OK\r\nContent-Length: 67108865\r\n\r\n",
                      "HTTP/1.1 200 OK\r\nX-Big: " + std::string(70 * 1024, 'a') + "\r\n\r\n"));

// --- parse_endpoints ---

TEST(ParseEndpoints, AcceptsHostPortLists) {
  auto one = parse_endpoints("127.0.0.1:28171");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].host, "127.0.0.1");
  EXPECT_EQ(one[0].port, 28171);
  auto three = parse_endpoints("127.0.0.1:1,localhost:65535,10.0.0.2:80");
  ASSERT_EQ(three.size(), 3u);
  EXPECT_EQ(three[1].host, "localhost");
  EXPECT_EQ(three[1].port, 65535);
  EXPECT_EQ(three[2].text(), "10.0.0.2:80");
}

TEST(ParseEndpoints, RejectsMalformedEntries) {
  EXPECT_TRUE(parse_endpoints("127.0.0.1").empty());
  EXPECT_TRUE(parse_endpoints(":80").empty());
  EXPECT_TRUE(parse_endpoints("h:").empty());
  EXPECT_TRUE(parse_endpoints("h:abc").empty());
  EXPECT_TRUE(parse_endpoints("h:0").empty());
  EXPECT_TRUE(parse_endpoints("h:65536").empty());
  EXPECT_TRUE(parse_endpoints("h:-1").empty());
  EXPECT_TRUE(parse_endpoints("a:1,b").empty());
  EXPECT_TRUE(parse_endpoints("").empty());
}

}  // namespace
}  // namespace raftlock::bench
