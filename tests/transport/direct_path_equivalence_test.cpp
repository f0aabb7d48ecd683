// StreamServer's direct path checked against httplib as an oracle: two StreamServers with the same
// handlers, one with a direct handler; the same raw bytes go to both over TCP and the raw bytes
// that come back must be identical. direct_requests() shows which requests the direct path served.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "raft/transport/stream_server.h"
#include "tests/support/loopback_client.h"

namespace raftlock::raft::transport {
namespace {

using httplib::Request;
using httplib::Response;
using Clock = std::chrono::steady_clock;

constexpr size_t kPayloadMax = 64 * 1024;
constexpr size_t kKeepAliveMax = 6;
constexpr int kReadWaitMs = 3000;

// ---- The handler logic both servers run -------------------------------------------------------

// Answers from as much of the request as possible. Query parameters steer it: status=N,
// h=Name:Value (a response header, repeatable), type=... (Content-Type; without it httplib's
// default applies), empty=1 (no body), throw=1|int (throws), all=1 (echo every header).
void answer(const Request& req, Response& res) {
  for (size_t i = 0; i < req.get_param_value_count("h"); ++i) {
    const std::string spec = req.get_param_value("h", i);
    const size_t colon = spec.find(':');
    if (colon != std::string::npos) res.set_header(spec.substr(0, colon), spec.substr(colon + 1));
  }
  if (req.has_param("throw")) {
    if (req.has_param("partial")) res.body = "partial body";
    if (req.get_param_value("throw") == "int") throw 42;
    throw std::runtime_error("boom on " + req.path + (req.has_param("crlf") ? "\r\nsecond" : ""));
  }
  std::string out;
  out += "method=" + req.method + "\n";
  out += "path=" + req.path + "\n";
  out += "version=" + req.version + "\n";
  for (const auto& [key, value] : req.params) out += "param " + key + "=" + value + "\n";
  for (const char* name : {"Host", "Content-Type", "Content-Length", "X-Echo", "X-Pct",
                           "Connection", "Accept", "REMOTE_ADDR"}) {
    const size_t count = req.get_header_value_count(name);
    for (size_t i = 0; i < count; ++i) {
      out += std::string("header ") + name + ": " + req.get_header_value(name, i) + "\n";
    }
  }
  if (req.has_param("all")) {
    out += "target=" + req.target + "\n";
    out += "remote_addr=" + req.remote_addr + " local_addr=" + req.local_addr + "\n";
    out += std::string("ports known=") +
           (req.remote_port > 0 && req.local_port > 0 ? "yes" : "no") + "\n";
    for (const auto& [name, value] : req.headers) {
      if (name == "REMOTE_PORT" || name == "LOCAL_PORT") {  // differ per connection / server
        out += "all " + name + " (present)\n";
      } else {
        out += "all " + name + ": " + value + "\n";
      }
    }
  }
  out += "body(" + std::to_string(req.body.size()) + ")=" + req.body + "\n";
  if (req.has_param("status")) res.status = std::stoi(req.get_param_value("status"));
  if (req.get_param_value("empty") == "1") return;
  if (req.has_param("type")) {
    res.set_content(out, req.get_param_value("type").c_str());
  } else {
    res.body = out;
  }
}

// The httplib-way handler for methods with a body (as ApiServer::register_handlers does it): the
// body is read only when the request has a Content-Length or is chunked.
void read_then_answer(const Request& req, Response& res, const httplib::ContentReader& read) {
  const bool has_body =
      req.has_header("Content-Length") ||
      req.get_header_value("Transfer-Encoding").find("chunked") != std::string::npos;
  if (has_body) {
    std::string body;
    const bool ok = read([&body](const char* data, size_t length) {
      body.append(data, length);
      return true;
    });
    if (!ok) {
      res.status = res.status == 413 ? 413 : 400;
      res.set_content("{\"error\":\"body not read\",\"status\":" + std::to_string(res.status) + "}",
                      "application/json");
      return;
    }
    const_cast<Request&>(req).body = std::move(body);
  }
  answer(req, res);
}

struct ServerConfig {
  bool error_handler = true;
  bool exception_handler = true;
  httplib::Headers default_headers;
};

struct RunningServer {
  std::unique_ptr<StreamServer> server;
  std::thread thread;
  int port = 0;

  void start(const ServerConfig& config, bool direct) {
    StreamServerOptions options;
    options.read_timeout = std::chrono::milliseconds(kReadWaitMs);
    options.keep_alive_idle = std::chrono::milliseconds(kReadWaitMs);
    server = std::make_unique<StreamServer>(options);
    server->Get(".*", answer);
    server->Options(".*", answer);
    const httplib::Server::HandlerWithContentReader with_body = read_then_answer;
    server->Post(".*", with_body);
    server->Put(".*", with_body);
    server->Patch(".*", with_body);
    server->Delete(".*", with_body);
    if (config.error_handler) {
      server->set_error_handler([](const Request& req, Response& res) {
        if (!res.body.empty() || res.status < 400)
          return httplib::Server::HandlerResponse::Unhandled;
        res.set_content("{\"error\":" + std::to_string(res.status) + ",\"method\":\"" + req.method +
                            "\",\"path\":\"" + req.path + "\"}",
                        "application/json");
        return httplib::Server::HandlerResponse::Handled;
      });
    }
    if (config.exception_handler) {
      server->set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        res.status = 500;
        res.set_content("exception: " + what, "text/plain");
      });
    }
    if (!config.default_headers.empty()) server->set_default_headers(config.default_headers);
    server->set_payload_max_length(kPayloadMax);
    server->set_keep_alive_max_count(kKeepAliveMax);
    server->set_keep_alive_timeout(7);
    if (direct) {
      server->set_direct_handler([](const Request& req, Response& res) {
        if (req.get_header_value("X-Decline") == "1") return false;
        answer(req, res);
        return true;
      });
    }
    port = server->bind_to_any_port("127.0.0.1");
    ASSERT_GT(port, 0);
    thread = std::thread([this] { server->listen_after_bind(); });
    while (!server->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  void stop() {
    if (server) {
      server->stop();
      server->shut_down_connections();
    }
    if (thread.joinable()) thread.join();
  }
};

// ---- A raw TCP client --------------------------------------------------------------------------

// One send, then wait until this many complete responses (counted from the connection's start)
// have arrived; 0 means "do not wait" (the next step follows after a short pause that splits the
// sends).
struct Step {
  std::string bytes;
  size_t responses = 0;
};

enum class End {
  kHalfClose,     // the client shuts its side down, then reads until the server closes
  kServerCloses,  // the server must close by itself
};

struct Transcript {
  std::string bytes;
  bool closed = false;     // EOF (or reset) seen
  bool timed_out = false;  // a wait ran out
};

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// How many complete responses `bytes` starts with: each is a header block and as many body bytes
// as its (first) Content-Length says.
size_t complete_responses(std::string_view bytes) {
  size_t count = 0;
  size_t at = 0;
  while (true) {
    const size_t end = bytes.find("\r\n\r\n", at);
    if (end == std::string_view::npos) return count;
    const std::string head = lower(bytes.substr(at, end + 2 - at));
    size_t length = 0;
    const size_t field = head.find("\r\ncontent-length:");
    if (field != std::string::npos) {
      length = std::strtoull(head.c_str() + field + 17, nullptr, 10);
    }
    if (bytes.size() < end + 4 + length) return count;
    at = end + 4 + length;
    ++count;
  }
}

void receive_some(int sock, Transcript& t, Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  pollfd p{sock, POLLIN, 0};
  if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
    t.timed_out = true;
    return;
  }
  char buffer[16384];
  const ssize_t n = ::recv(sock, buffer, sizeof(buffer), 0);
  if (n <= 0) {
    t.closed = true;
    return;
  }
  t.bytes.append(buffer, static_cast<size_t>(n));
}

Transcript converse(int port, const std::vector<Step>& steps, End end) {
  Transcript t;
  const int sock = raftlock::testing::connect_loopback(port);
  if (sock < 0) {
    ADD_FAILURE() << "connect to port " << port << " failed";
    return t;
  }
  const int yes = 1;
  ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& step = steps[i];
    size_t sent = 0;
    while (sent < step.bytes.size()) {
      const ssize_t n =
          ::send(sock, step.bytes.data() + sent, step.bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;  // the server closed: what it answered is still compared
      sent += static_cast<size_t>(n);
    }
    if (step.responses == 0) {
      if (i + 1 < steps.size()) std::this_thread::sleep_for(std::chrono::milliseconds(30));
      continue;
    }
    const auto deadline = Clock::now() + std::chrono::milliseconds(kReadWaitMs);
    while (complete_responses(t.bytes) < step.responses && !t.closed && !t.timed_out) {
      receive_some(sock, t, deadline);
    }
  }
  if (end == End::kHalfClose) ::shutdown(sock, SHUT_WR);
  const auto deadline = Clock::now() + std::chrono::milliseconds(kReadWaitMs);
  while (!t.closed && !t.timed_out) receive_some(sock, t, deadline);
  ::close(sock);
  return t;
}

// The bytes with CR, LF and other non-printables spelled out (for failure messages).
std::string visible(std::string_view bytes) {
  std::string out;
  for (char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n\n";
    } else if (u < 0x20 || u >= 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", u);
      out += hex;
    } else {
      out += c;
    }
  }
  return out;
}

// ---- Request builders
// ----------------------------------------------------------------------------

std::string get(const std::string& target, const std::string& headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + headers + "\r\n";
}

std::string with_body(const std::string& method, const std::string& target, const std::string& body,
                      const std::string& headers = "") {
  return method + " " + target + " HTTP/1.1\r\nHost: test\r\n" + headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// ---- Fixtures
// --------------------------------------------------------------------------------------

struct Case {
  std::string name;
  std::vector<Step> steps;
  std::optional<size_t> direct;  // how many the direct path must serve; nullopt: not checked
  End end = End::kHalfClose;
};

class DirectPathBase : public ::testing::Test {
 protected:
  void start(const ServerConfig& config) {
    oracle_.start(config, false);
    direct_.start(config, true);
  }
  void TearDown() override {
    oracle_.stop();
    direct_.stop();
  }

  // Runs the conversation against both servers and expects identical transcripts; returns how many
  // requests the direct path served.
  size_t expect_same(const std::vector<Step>& steps, End end = End::kHalfClose) {
    Transcript expected = converse(oracle_.port, steps, end);
    const size_t before = direct_.server->direct_requests();
    Transcript got = converse(direct_.port, steps, end);
    const size_t served = direct_.server->direct_requests() - before;
    EXPECT_FALSE(expected.timed_out) << "httplib did not finish: " << visible(expected.bytes);
    EXPECT_FALSE(got.timed_out) << "the direct server did not finish: " << visible(got.bytes);
    EXPECT_FALSE(expected.bytes.empty());
    // httplib picks a random multipart boundary for a multi-range answer.
    static const std::regex boundary("cpp-httplib-multipart-data-[A-Za-z0-9]+");
    expected.bytes = std::regex_replace(expected.bytes, boundary, "cpp-httplib-multipart-data-B");
    got.bytes = std::regex_replace(got.bytes, boundary, "cpp-httplib-multipart-data-B");
    EXPECT_EQ(got.bytes, expected.bytes) << "direct path wrote:\n"
                                         << visible(got.bytes) << "\nhttplib wrote:\n"
                                         << visible(expected.bytes);
    EXPECT_EQ(got.closed, expected.closed);
    if (end == End::kServerCloses) {
      EXPECT_TRUE(expected.closed);
      EXPECT_TRUE(got.closed);
    }
    EXPECT_EQ(oracle_.server->direct_requests(), 0u);
    return served;
  }

  void run_cases(const std::vector<Case>& cases) {
    for (const Case& c : cases) {
      SCOPED_TRACE(c.name);
      const size_t served = expect_same(c.steps, c.end);
      if (c.direct) {
        EXPECT_EQ(served, *c.direct) << "requests served by the direct path";
      }
    }
  }

  RunningServer oracle_;
  RunningServer direct_;
};

class DirectPath : public DirectPathBase {
 protected:
  void SetUp() override { start(ServerConfig{}); }
};

// One request, one response, then the client half-closes.
Case one(std::string name, std::string request, std::optional<size_t> direct) {
  return Case{std::move(name), {Step{std::move(request), 1}}, direct, End::kHalfClose};
}

// One request sent, then the client half-closes at once (for requests whose number of answers
// is httplib's business).
Case raw(std::string name, std::string bytes, std::optional<size_t> direct) {
  return Case{std::move(name), {Step{std::move(bytes), 0}}, direct, End::kHalfClose};
}

// ---- 1. Plain requests
// ---------------------------------------------------------------------------

TEST_F(DirectPath, PlainRequestsOfEveryMethodAnswerAsHttplibDoes) {
  const std::string json = "{\"ttl_ms\":5000,\"name\":\"a b\"}";
  run_cases({
      one("GET /", get("/"), 1),
      one("GET path", get("/v1/locks/alpha"), 1),
      one("GET Content-Length 0", get("/x", "Content-Length: 0\r\n"), 1),
      one("POST json", with_body("POST", "/v1/leases", json, "Content-Type: application/json\r\n"),
          1),
      one("POST Content-Length 0", with_body("POST", "/p", ""), 1),
      one("PUT", with_body("PUT", "/put/x", "put-body"), 1),
      one("PATCH", with_body("PATCH", "/patch", "patch-body", "Content-Type: text/x\r\n"), 1),
      one("DELETE with body", with_body("DELETE", "/v1/leases/7", "{}"), 1),
      one("DELETE without Content-Length", get("/d").replace(0, 3, "DELETE"), 1),
      one("OPTIONS", "OPTIONS /opt HTTP/1.1\r\nHost: test\r\n\r\n", 1),
      one("binary body", with_body("POST", "/bin", std::string("a\0b\r\n\xff\x80z", 8)), 1),
      one("body that looks like a request", with_body("POST", "/x", get("/inner")), 1),
  });
}

TEST_F(DirectPath, QueryStringsAndEscapedPathsAreDecodedAsHttplibDoes) {
  run_cases({
      one("plain query", get("/q?a=1&b=two"), 1),
      one("escapes and plus", get("/q?x=a%20b+c&y=%2B%26%3D&z=caf%C3%A9"), 1),
      one("repeated keys", get("/q?a=2&a=1&b=0&a=3"), 1),
      one("identical pairs", get("/q?a=1&a=1&a=2"), 1),
      one("empty values", get("/q?a=&b&c="), 1),
      one("a=b=c", get("/q?a=b=c"), 1),
      one("trailing ampersand", get("/q?x=1&"), 1),
      one("empty pairs", get("/q?&&x=1&&"), 1),
      one("no key", get("/q?=v&k=w"), 1),
      one("bad escapes", get("/q?%zz=%4&p=%&u=%u00e9%u12"), 1),
      one("escaped key", get("/q?a%20b=c%3Dd"), 1),
      one("path escapes", get("/p%20q/%2Fr+s%41"), 1),
      one("path bad escapes", get("/p%zz%4/%"), 1),
      one("path unicode escape", get("/%u00e9t%C3%A9"), 1),
      one("path NUL", get("/a%00b"), 1),
      one("path raw high bytes", get("/caf\xc3\xa9"), 1),
      one("path and query", get("/p+a%2Bth?q=1+1"), 1),
      one("status from query with all", get("/all?all=1&k=v"), 1),
  });
}

TEST_F(DirectPath, RequestHeadersReachTheHandlerAsHttplibGivesThem) {
  run_cases({
      one("content type and echo", get("/h", "Content-Type: application/json\r\nX-Echo: one\r\n"),
          1),
      one("repeated header", get("/h", "X-Echo: first\r\nX-Echo: second\r\n"), 1),
      one("escapes in a value", get("/h", "X-Pct: a%20b%2Fc%zz%4%u00e9+plus%0D%0A\r\n"), 1),
      one("spaces and tabs around a value", get("/h", "X-Echo: \t  spaced out \t \r\n"), 1),
      one("no space after colon", get("/h", "X-Echo:tight\r\n"), 1),
      one("lower-case names", get("/h", "x-echo: lower\r\ncontent-type: text/lower\r\n"), 1),
      one("high bytes in a value", get("/h", "X-Echo: caf\xc3\xa9\r\n"), 1),
      one("colon in a value", get("/h", "X-Echo: a: b:c\r\n"), 1),
      one("client sends REMOTE_ADDR", get("/h?all=1", "REMOTE_ADDR: 10.0.0.1\r\n"), 1),
      one("all headers", get("/h?all=1", "Accept: */*\r\nX-Other: o\r\nUser-Agent: t/1\r\n"), 1),
      one("no Host", "GET /nohost HTTP/1.1\r\n\r\n", 1),
      one("a 3000-byte value", get("/h", "X-Echo: " + std::string(3000, 'e') + "\r\n"), 1),
      one("a 3000-byte target", get("/" + std::string(2000, 't') + "?k=" + std::string(1000, 'v')),
          1),
      one("200 headers",
          get("/h?all=1",
              [] {
                std::string lines;
                for (int i = 0; i < 200; ++i) lines += "X-H" + std::to_string(i % 7) + ": v\r\n";
                return lines;
              }()),
          1),
  });
}

TEST_F(DirectPath, ResponseHeadersContentTypesAndEmptyBodiesAreWrittenAsHttplibWritesThem) {
  run_cases({
      one("type", get("/r?type=application/json"), 1),
      one("type with params", get("/r?type=text/plain;%20charset=utf-8"), 1),
      one("empty", get("/r?empty=1"), 1),
      one("empty with type", get("/r?empty=1&type=application/json"), 1),
      one("headers", get("/r?h=X-A:1&h=x-a:2&h=B:3&h=a:0"), 1),
      one("own Content-Type", get("/r?h=Content-Type:text/html"), 1),
      one("own Content-Type and type", get("/r?h=Content-Type:text/html&type=text/css"), 1),
      one("empty own Content-Type", get("/r?empty=1&h=Content-Type:text/html"), 1),
      one("CRLF refused", get("/r?h=X-Inject:a%0D%0AX-Evil:%201&h=X%0AY:z"), 1),
      one("own Keep-Alive", get("/r?h=Keep-Alive:mine"), 1),
      one("own Connection close", get("/r?h=Connection:close"), 1),
      one("empty header name", get("/r?h=:nameless"), 1),
      one("NUL in a header value", get("/r?h=X-Nul:a%00b"), 1),
      one("long header value", get("/r?h=X-Long:" + std::string(3000, 'v')), 1),
      raw("own Content-Length with body", get("/r?h=Content-Length:3"), 1),
      raw("own Content-Length without body", get("/r?h=Content-Length:3&empty=1"), 1),
      one("own Content-Length 0 empty", get("/r?h=Content-Length:0&empty=1"), 1),
      one("post with type", with_body("POST", "/r?type=application/json&status=201", "{}"), 1),
  });
}

// ---- 2. Every status code
// ------------------------------------------------------------------------

TEST_F(DirectPath, EveryStatusCodeIsWrittenAsHttplibWritesIt) {
  std::vector<std::string> requests;
  for (int status = 100; status <= 599; ++status) {
    requests.push_back(get("/s?status=" + std::to_string(status)));
    requests.push_back(get("/s?empty=1&status=" + std::to_string(status)));
  }
  for (int status : {0, 1, 99, 600, 999, -1, -5, 1000}) {
    requests.push_back(get("/odd?status=" + std::to_string(status)));
    requests.push_back(get("/odd?empty=1&status=" + std::to_string(status)));
  }
  constexpr size_t kBatch = kKeepAliveMax - 1;  // pipelined on one connection, none the last
  for (size_t at = 0; at < requests.size(); at += kBatch) {
    const size_t n = std::min(kBatch, requests.size() - at);
    std::string batch;
    for (size_t i = 0; i < n; ++i) batch += requests[at + i];
    SCOPED_TRACE(requests[at]);
    EXPECT_EQ(expect_same({Step{batch, n}}), n);
    if (HasFailure()) break;  // one report is enough
  }
}

// ---- 3. Exceptions and errors
// --------------------------------------------------------------------

TEST_F(DirectPath, ExceptionsAndErrorStatusesGoThroughTheSameHandlers) {
  run_cases({
      one("throw", get("/t?throw=1"), 1),
      one("throw int", get("/t?throw=int"), 1),
      one("throw after setting a header and body", get("/t?throw=1&partial=1&h=X-Set:before"), 1),
      one("throw with CRLF in what", get("/t?throw=1&crlf=1"), 1),
      one("bad status parameter", get("/t?status=abc"), 1),
      one("post throw", with_body("POST", "/t?throw=1", "body"), 1),
      one("404 empty", get("/missing?status=404&empty=1"), 1),
      one("500 empty", get("/t?status=500&empty=1"), 1),
      one("400 empty with header", get("/t?status=400&empty=1&h=X-Why:bad"), 1),
      one("404 with body", get("/t?status=404"), 1),
      one("399 empty", get("/t?status=399&empty=1"), 1),
      one("error with own Content-Type", get("/t?status=409&empty=1&type=text/html"), 1),
  });
}

// ---- 4. Keep-alive
// ---------------------------------------------------------------------------------

TEST_F(DirectPath, KeepAliveConnectionsServeRequestsInTurnAndPipelined) {
  run_cases({
      Case{"three in turn",
           {Step{get("/1"), 1}, Step{with_body("POST", "/2", "two"), 2}, Step{get("/3?x=3"), 3}},
           3},
      Case{"three pipelined",
           {Step{get("/1") + with_body("PUT", "/2", "two") + get("/3?empty=1"), 3}},
           3},
      Case{"past the keep-alive maximum",
           {Step{get("/1") + get("/2") + get("/3") + get("/4") + get("/5") + get("/6") + get("/7") +
                     get("/8"),
                 kKeepAliveMax}},
           kKeepAliveMax,
           End::kServerCloses},
      Case{"maximum reached in turn",
           {Step{get("/1"), 1}, Step{get("/2"), 2}, Step{get("/3"), 3}, Step{get("/4"), 4},
            Step{get("/5"), 5}, Step{get("/6"), 6}},
           kKeepAliveMax,
           End::kServerCloses},
      Case{
          "Connection close", {Step{get("/c", "Connection: close\r\n"), 1}}, 1, End::kServerCloses},
      Case{"plain and not plain pipelined",
           {Step{get("/1") + get("/2", "Range: bytes=0-3\r\n") + with_body("POST", "/3", "three") +
                     get("/4", "X-Decline: 1\r\n") +
                     "PUT /5 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n" +
                     get("/6?empty=1"),
                 kKeepAliveMax}},
           3,
           End::kServerCloses},
      Case{"Connection close then another",
           {Step{get("/c", "Connection: close\r\n") + get("/never"), 1}},
           1,
           End::kServerCloses},
      Case{"Connection close on a POST",
           {Step{with_body("POST", "/c", "x", "Connection: close\r\n"), 1}},
           1,
           End::kServerCloses},
      Case{"Connection Close is not close",
           {Step{get("/c", "Connection: Close\r\n"), 1}, Step{get("/after"), 2}},
           2},
      Case{"Connection keep-alive",
           {Step{get("/c", "Connection: keep-alive\r\n") + get("/k"), 2}},
           2},
      Case{"repeated Connection, first wins",
           {Step{get("/c", "Connection: keep-alive\r\nConnection: close\r\n") + get("/k"), 2}},
           2},
  });
}

TEST_F(DirectPath, Http10RequestsAnswerAsHttplibDoes) {
  // Whether the direct path serves HTTP/1.0 is its own business; the bytes and closing must match.
  run_cases({
      Case{"1.0 closes",
           {Step{"GET /old HTTP/1.0\r\nHost: test\r\n\r\n", 1}},
           std::nullopt,
           End::kServerCloses},
      Case{"1.0 keep-alive",
           {Step{"GET /old HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1},
            Step{"GET /again HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 2}},
           std::nullopt},
      Case{"1.0 lower-case keep-alive closes",
           {Step{"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1}},
           std::nullopt,
           End::kServerCloses},
      Case{"1.0 POST",
           {Step{"POST /old HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi", 1}},
           std::nullopt,
           End::kServerCloses},
  });
}

// ---- 5. Requests that stay with httplib ---------------------------------------------------------

TEST_F(DirectPath, RequestsThatAreNotPlainAreServedByHttplibUnchanged) {
  const std::string big(10 * 1024, 'b');
  const std::string too_big(kPayloadMax + 100, 't');
  run_cases({
      raw("chunked POST",
          "POST /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\n "
          "wo\r\n0\r\n\r\n",
          0),
      raw("Expect 100-continue", with_body("POST", "/e", "later", "Expect: 100-continue\r\n"), 0),
      one("Range", get("/r", "Range: bytes=0-3\r\n"), 0),
      one("two ranges", get("/r", "Range: bytes=0-1,4-5\r\n"), 0),
      one("bad Range", get("/r", "Range: bytes=abc\r\n"), 0),
      one("Accept-Encoding gzip",
          get("/g?pad=" + std::string(600, 'z'), "Accept-Encoding: gzip, deflate\r\n"), 0),
      // A POST with Accept-Encoding is answered uncompressed by the direct path
      // (deferred_answer_test), unless the header refuses that: then httplib answers.
      one("POST refusing identity",
          with_body("POST", "/ae", std::string(600, 'p'),
                    "Accept-Encoding: gzip, identity;q=0\r\n"),
          0),
      one("POST refusing all but gzip",
          with_body("POST", "/ae", std::string(600, 'p'),
                    "Accept-Encoding: gzip;q=1, *;q=0.000\r\n"),
          0),
      one("POST with an Accept-Encoding parameter that is not a weight",
          with_body("POST", "/ae", "x", "Accept-Encoding: identity;level=1\r\n"), 0),
      raw("HEAD", "HEAD /h HTTP/1.1\r\nHost: test\r\n\r\n", 0),
      raw("GET with a body", with_body("GET", "/gb", "hello"), 0),
      raw("OPTIONS with a body", with_body("OPTIONS", "/ob", "hello"), 0),
      one("empty header value", get("/ev", "X-Echo:\r\nX-Other:   \r\n"), 0),
      one("header line without colon", get("/nc", "NoColonHere\r\n"), 0),
      one("name with a space before the colon", get("/sp", "X-Echo : spaced\r\n"), 0),
      one("folded header line", get("/fold", "X-Echo: a\r\n  folded\r\n"), 0),
      one("control character in a value", get("/cc", "X-Echo: a\x01z\r\n"), 0),
      raw("bare LF everywhere", "GET /lf HTTP/1.1\nHost: test\n\n", 0),
      one("one bare-LF header line", "GET /lf HTTP/1.1\r\nX-Echo: lf\nHost: test\r\n\r\n", 0),
      raw("two spaces in the request line", "GET  /two HTTP/1.1\r\nHost: test\r\n\r\n", 0),
      raw("trailing space in the request line", "GET /ts HTTP/1.1 \r\nHost: test\r\n\r\n", 0),
      raw("lower-case method", "get /lower HTTP/1.1\r\nHost: test\r\n\r\n", 0),
      raw("HTTP/2.0", "GET /h2 HTTP/2.0\r\nHost: test\r\n\r\n", 0),
      raw("no version", "GET /nov\r\nHost: test\r\n\r\n", 0),
      raw("unknown method", "FOO /foo HTTP/1.1\r\nHost: test\r\n\r\n", 0),
      raw("CONNECT", "CONNECT test:80 HTTP/1.1\r\nHost: test\r\n\r\n", 0),
      raw("TRACE", "TRACE /t HTTP/1.1\r\nHost: test\r\n\r\n", 0),
      raw("fragment", get("/f#frag?x=1"), 0),
      raw("two question marks", get("/a?b?c"), 0),
      raw("empty query segment", get("/a??b=1"), 0),
      raw("absolute form", get("http://test/abs?x=1"), 0),
      raw("asterisk", "OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n", 0),
      // httplib answers the empty line (400); the GET after it is plain.
      raw("empty line first", "\r\n" + get("/after-empty"), 1),
      raw("10 KiB body", with_body("POST", "/big", big), 0),
      raw("over the payload limit", with_body("POST", "/huge", too_big), 0),
      one("declined", get("/d", "X-Decline: 1\r\n"), 0),
      one("declined POST", with_body("POST", "/d", "body", "X-Decline: 1\r\n"), 0),
      raw("URI over 8 KiB", get("/" + std::string(9000, 'u')), 0),
      raw("POST without Content-Length", "POST /nolen HTTP/1.1\r\nHost: test\r\n\r\n", 0),
  });
}

TEST_F(DirectPath, RequestsAroundTheBufferSizeAnswerAlike) {
  // A request of exactly 4096 bytes fits the direct path's buffer; one more byte does not.
  const auto padded_get = [](size_t total) {
    const std::string prefix = "GET /pad HTTP/1.1\r\nHost: test\r\nX-Pad: ";
    const std::string suffix = "\r\n\r\n";
    return prefix + std::string(total - prefix.size() - suffix.size(), 'p') + suffix;
  };
  const auto padded_post = [](size_t total) {
    const std::string head_without_length = "POST /pad HTTP/1.1\r\nHost: test\r\nContent-Length: ";
    // The length has four digits for every total used here.
    const size_t body = total - head_without_length.size() - 4 - 4;
    return head_without_length + std::to_string(body) + "\r\n\r\n" + std::string(body, 'q');
  };
  ASSERT_EQ(padded_get(4096).size(), 4096u);
  ASSERT_EQ(padded_post(4096).size(), 4096u);
  run_cases({
      one("GET 4095", padded_get(4095), 1),
      one("GET 4096", padded_get(4096), 1),
      one("GET 4097", padded_get(4097), 0),
      one("POST 4096", padded_post(4096), 1),
      one("POST 4097", padded_post(4097), 0),
      Case{"pipelined past the buffer",
           {Step{padded_get(3000) + padded_get(3000) + get("/small"), 3}},
           3},
  });
}

// What httplib does to a request body when its handler reads it (decompression by
// Content-Encoding, multipart parsing by Content-Type) must not differ either.
TEST_F(DirectPath, RequestBodyEncodingsAndContentTypesAnswerAsHttplibDoes) {
  run_cases({
      one("Content-Encoding gzip with a plain body",
          with_body("POST", "/ce", "not gzip", "Content-Encoding: gzip\r\n"), std::nullopt),
      one("Content-Encoding br", with_body("POST", "/ce", "x", "Content-Encoding: br\r\n"),
          std::nullopt),
      one("Content-Encoding deflate",
          with_body("POST", "/ce", "x", "Content-Encoding: deflate\r\n"), std::nullopt),
      one("Content-Encoding containing br",
          with_body("POST", "/ce", "x", "Content-Encoding: cobra\r\n"), std::nullopt),
      one("Content-Encoding unknown", with_body("POST", "/ce", "x", "Content-Encoding: zstd\r\n"),
          std::nullopt),
      one("Content-Encoding identity",
          with_body("POST", "/ce", "x", "Content-Encoding: identity\r\n"), std::nullopt),
      one("multipart without boundary",
          with_body("POST", "/mp", "x", "Content-Type: multipart/form-data\r\n"), std::nullopt),
      one("multipart with boundary",
          with_body("POST", "/mp",
                    "--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--xyz--\r\n",
                    "Content-Type: multipart/form-data; boundary=xyz\r\n"),
          std::nullopt),
      one("form urlencoded",
          with_body("POST", "/form", "a=1&b=2",
                    "Content-Type: application/x-www-form-urlencoded\r\n"),
          1),
  });
}

// httplib routes by regex: the ".*" pattern does not match a path with a line break in it
// (std::regex's '.' excludes CR and LF), so httplib answers 404 without calling a handler.
TEST_F(DirectPath, PathsWithLineBreaksAreRoutedAsHttplibRoutesThem) {
  run_cases({
      one("LF in the path", get("/a%0Ab"), std::nullopt),
      one("CR in the path", get("/a%0Db"), std::nullopt),
      one("LF in a POST path", with_body("POST", "/a%0Ab", "x"), std::nullopt),
  });
}

// ---- 6. A body that arrives later --------------------------------------------------------------

TEST_F(DirectPath, ARequestSplitAcrossSendsIsAnsweredAlike) {
  const std::string post = with_body("POST", "/split?x=1", "the body", "X-Echo: s\r\n");
  const size_t head_end = post.find("\r\n\r\n") + 4;
  run_cases({
      Case{"head, then body",
           {Step{post.substr(0, head_end), 0}, Step{post.substr(head_end), 1}},
           1},
      Case{"head and half the body, then the rest",
           {Step{post.substr(0, head_end + 3), 0}, Step{post.substr(head_end + 3), 1}},
           1},
      Case{"inside the request line",
           {Step{post.substr(0, 7), 0}, Step{post.substr(7), 1}},
           std::nullopt},
      Case{"between the two CRLFs",
           {Step{post.substr(0, head_end - 2), 0}, Step{post.substr(head_end - 2), 1}},
           std::nullopt},
      Case{"byte by byte in four sends",
           {Step{post.substr(0, 20), 0}, Step{post.substr(20, 20), 0},
            Step{post.substr(40, head_end - 40), 0}, Step{post.substr(head_end), 1}},
           std::nullopt},
      raw("body cut short by EOF", post.substr(0, post.size() - 3), std::nullopt),
      raw("head cut short by EOF", post.substr(0, head_end - 2), std::nullopt),
  });
}

// A request behind another in the connection's buffer whose body is read later: the direct path
// moves the buffered bytes to read the rest, and must still see the request's own path and query.
TEST_F(DirectPath, ARequestBehindAnotherWhoseBodyComesLaterKeepsItsPathAndQuery) {
  const std::string post = with_body("POST", "/split?x=1", "the body", "X-Echo: s\r\n");
  const size_t head_end = post.find("\r\n\r\n") + 4;
  run_cases({
      Case{"first request whole, second split",
           {Step{get("/first") + post.substr(0, head_end), 1}, Step{post.substr(head_end), 2}},
           2},
      Case{"first request whole, second split inside its body",
           {Step{with_body("PUT", "/one?a=1", "1") + post.substr(0, head_end + 2), 1},
            Step{post.substr(head_end + 2), 2}},
           2},
      // One send, no pause: six pipelined POSTs of ~800 bytes; the 4096-byte buffer fills in the
      // middle of one of them, so the direct path has to read the rest of it.
      Case{"pipelined POSTs straddling the buffer",
           {Step{[] {
                   std::string all;
                   for (int i = 0; i < 6; ++i) {
                     all += with_body("POST", "/p" + std::to_string(i) + "?i=" + std::to_string(i),
                                      std::string(740, static_cast<char>('a' + i)));
                   }
                   return all;
                 }(),
                 kKeepAliveMax}},
           kKeepAliveMax,
           End::kServerCloses},
      // One send, no pause: a small GET, then a POST that fits the buffer on its own but not
      // behind the GET.
      Case{"pipelined POST that fits the buffer only on its own",
           {Step{get("/small") + with_body("POST", "/large?k=v", std::string(4000, 'L')), 2}},
           2},
  });
}

// ---- 7. Malformed Content-Length
// -------------------------------------------------------------------

TEST_F(DirectPath, MalformedContentLengthsAnswerAsHttplibDoes) {
  const auto post = [](const std::string& length_lines, const std::string& body) {
    return "POST /cl HTTP/1.1\r\nHost: test\r\n" + length_lines + "\r\n" + body;
  };
  run_cases({
      raw("abc", post("Content-Length: abc\r\n", "hello"), std::nullopt),
      raw("-1", post("Content-Length: -1\r\n", "hello"), std::nullopt),
      raw("two different", post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
          std::nullopt),
      raw("two equal", post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), std::nullopt),
      raw("list", post("Content-Length: 5, 5\r\n", "hello"), std::nullopt),
      raw("plus sign", post("Content-Length: +5\r\n", "hello"), std::nullopt),
      raw("hex", post("Content-Length: 0x5\r\n", "hello"), std::nullopt),
      raw("spaces inside", post("Content-Length: 5 5\r\n", "hello"), std::nullopt),
      raw("leading zeros", post("Content-Length: 00005\r\n", "hello"), std::nullopt),
      raw("padded with spaces", post("Content-Length:   5  \r\n", "hello"), std::nullopt),
      raw("huge", post("Content-Length: 99999999999999999999999\r\n", "hello"), std::nullopt),
      raw("over the limit by one", post("Content-Length: 65537\r\n", "hello"), std::nullopt),
      raw("shorter than the body", post("Content-Length: 2\r\n", "hello"), std::nullopt),
      raw("on a DELETE", "DELETE /cl HTTP/1.1\r\nContent-Length: x\r\n\r\n", std::nullopt),
      raw("on a GET", "GET /cl HTTP/1.1\r\nContent-Length: abc\r\n\r\n", std::nullopt),
  });
}

// ---- Other server configurations ---------------------------------------------------------------

// Without an error handler the direct path still serves (and writes what httplib writes).
class DirectPathWithoutAnErrorHandler : public DirectPathBase {
 protected:
  void SetUp() override {
    ServerConfig config;
    config.error_handler = false;
    start(config);
  }
};

TEST_F(DirectPathWithoutAnErrorHandler, ErrorsAndExceptionsAnswerAsHttplibDoes) {
  run_cases({
      one("404 empty", get("/m?status=404&empty=1"), 1),
      one("503 with body", get("/m?status=503"), 1),
      one("throw", get("/t?throw=1"), 1),
      one("throw int", get("/t?throw=int"), 1),
      one("throw after setting a body", get("/t?throw=1&partial=1&h=X-Set:before"), 1),
  });
}

// Without an exception handler httplib writes a thrown exception into a header of its own
// making: the direct path is off and httplib answers everything.
class DirectPathWithoutHandlers : public DirectPathBase {
 protected:
  void SetUp() override {
    ServerConfig config;
    config.error_handler = false;
    config.exception_handler = false;
    start(config);
  }
};

TEST_F(DirectPathWithoutHandlers, TheDirectPathIsOffAndHttplibAnswersAlike) {
  run_cases({
      one("plain", get("/m"), 0),
      one("404 empty", get("/m?status=404&empty=1"), 0),
      one("503 with body", get("/m?status=503"), 0),
      one("throw", get("/t?throw=1"), 0),
      one("throw int", get("/t?throw=int"), 0),
      one("throw with CRLF in what", get("/t?throw=1&crlf=1"), 0),
      one("throw after setting a body", get("/t?throw=1&partial=1&h=X-Set:before"), 0),
  });
}

// Default headers (like routing hooks, a logger or mounted directories) turn the direct path off.
class DirectPathWithDefaultHeaders : public DirectPathBase {
 protected:
  void SetUp() override {
    ServerConfig config;
    config.default_headers = {{"X-Default", "d"}, {"Content-Type", "text/default"}};
    start(config);
  }
};

TEST_F(DirectPathWithDefaultHeaders, TheDirectPathIsOffAndHttplibWritesTheDefaultHeaders) {
  run_cases({
      one("plain", get("/dh"), 0),
      one("own header of the same name", get("/dh?h=X-Default:mine"), 0),
      one("type", get("/dh?type=application/json"), 0),
  });
}

}  // namespace
}  // namespace raftlock::raft::transport
