// HTTP contract tests for refused requests against a real 3-node raftlockd cluster: every error
// has the contract's shape and status, and after each one (and after 600 silent connections) the
// node still serves and a lock taken before is still held with the same fencing token.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/cluster.h"
#include "tests/integration/http_test_support.h"
#include "tests/metrics/prometheus_tools.h"

namespace raftlock::testing {
namespace {

using namespace std::chrono_literals;

class HttpErrors : public SharedClusterTest {
 protected:
  static void SetUpTestSuite() {
    SharedClusterTest::SetUpTestSuite();
    if (::testing::Test::HasFatalFailure()) return;
    auto leader = cluster_->wait_for_leader();
    ASSERT_TRUE(leader.has_value()) << "no leader in the 3-node cluster";
    // A lock held through the whole suite: every refused request must leave it as it is.
    auto lease = cluster_->request(*leader, "POST", "/v1/leases", {{"ttl_ms", 3600000}});
    ASSERT_EQ(lease.status, 201) << lease.raw;
    lease_ = lease.body["lease_id"].get<uint64_t>();
    auto granted = cluster_->request(*leader, "POST", "/v1/locks/intact.l/acquire",
                                     {{"lease_id", lease_}, {"owner", "keeper"}});
    ASSERT_EQ(granted.status, 200) << granted.raw;
    token_ = granted.body["fencing_token"].get<uint64_t>();
  }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    ASSERT_NE(token_, 0u);
    SharedClusterTest::SetUp();
  }

  // After every test: each node still serves, and the lock is held with the same token.
  void TearDown() override {
    if (!cluster_ || token_ == 0) return;
    for (int node : cluster_->ids()) {
      EXPECT_EQ(cluster_->request(node, "GET", "/healthz").status, 200) << "node " << node;
      auto lock = cluster_->request(node, "GET", "/v1/locks/intact.l");
      ASSERT_EQ(lock.status, 200) << "node " << node << ": " << lock.raw;
      EXPECT_EQ(lock.body["held"], true) << "node " << node;
      EXPECT_EQ(lock.body["fencing_token"], token_) << "node " << node;
      EXPECT_EQ(lock.body["holder"]["lease_id"], lease_) << "node " << node;
    }
  }

  // Sends a raw body (not necessarily JSON) to both the leader and a follower.
  std::vector<HttpReply> send_both(const std::string& method, const std::string& path,
                                   const std::string& body = "") {
    return {http_request(cluster_->client_port(leader_), method, path, body),
            http_request(cluster_->client_port(follower_), method, path, body)};
  }

  // Paths that take a JSON body, with a valid lease/token where one is needed.
  std::vector<std::string> body_paths() const {
    return {"/v1/leases",
            "/v1/locks/intact.l/acquire",
            "/v1/locks/intact.l/release",
            "/v1/elections/errors.e/campaign",
            "/v1/elections/errors.e/proclaim",
            "/v1/elections/errors.e/resign"};
  }

  static inline uint64_t lease_ = 0;
  static inline uint64_t token_ = 0;
};

TEST_F(HttpErrors, MalformedJsonIs400MalformedJson) {
  for (const std::string& path : body_paths()) {
    for (const std::string body : {"{", "{\"ttl_ms\": }", "not json", "{'ttl_ms': 1000}",
                                   "{\"lease_id\": 1,}", "\xff\xfe"}) {
      for (const auto& reply : send_both("POST", path, body)) {
        expect_error(reply, 400, "malformed_json", path + " " + body);
      }
    }
  }
}

TEST_F(HttpErrors, JsonThatIsNotAnObjectIs400InvalidArgument) {
  for (const std::string& path : body_paths()) {
    for (const std::string body : {"[1, 2]", "42", "\"text\"", "true", "null"}) {
      for (const auto& reply : send_both("POST", path, body)) {
        expect_error(reply, 400, "invalid_argument", path + " " + body);
      }
    }
  }
}

TEST_F(HttpErrors, WrongTypesAndOutOfRangeValuesAre400InvalidArgumentNamingTheField) {
  struct Case {
    std::string path;
    Json body;
    std::string field;
  };
  const Json lease = lease_;
  const std::vector<Case> cases = {
      {"/v1/leases", {{"ttl_ms", "2000"}}, "ttl_ms"},
      {"/v1/leases", {{"ttl_ms", 1500.5}}, "ttl_ms"},
      {"/v1/leases", {{"ttl_ms", 2000.0}}, "ttl_ms"},
      {"/v1/leases", {{"ttl_ms", true}}, "ttl_ms"},
      {"/v1/leases", {{"ttl_ms", Json::array({2000})}}, "ttl_ms"},
      {"/v1/leases", {{"ttl_ms", -2000}}, "ttl_ms"},
      {"/v1/leases", {{"lease_id", "12"}}, "lease_id"},
      {"/v1/leases", {{"lease_id", -12}}, "lease_id"},
      {"/v1/leases", {{"lease_id", 12.5}}, "lease_id"},
      {"/v1/locks/errors.l/acquire", {{"lease_id", "abc"}}, "lease_id"},
      {"/v1/locks/errors.l/acquire", {{"lease_id", lease}, {"wait_ms", -1}}, "wait_ms"},
      {"/v1/locks/errors.l/acquire", {{"lease_id", lease}, {"wait_ms", 300001}}, "wait_ms"},
      {"/v1/locks/errors.l/acquire", {{"lease_id", lease}, {"wait_ms", "10"}}, "wait_ms"},
      {"/v1/locks/errors.l/acquire", {{"lease_id", lease}, {"lock_delay_ms", -1}}, "lock_delay_ms"},
      {"/v1/locks/errors.l/acquire",
       {{"lease_id", lease}, {"lock_delay_ms", 60001}},
       "lock_delay_ms"},
      {"/v1/locks/errors.l/acquire", {{"lease_id", lease}, {"owner", 5}}, "owner"},
      {"/v1/locks/errors.l/acquire",
       {{"lease_id", lease}, {"owner", std::string(257, 'o')}},
       "owner"},
      {"/v1/locks/errors.l/acquire", {{"ttl_ms", 999}}, "ttl_ms"},
      {"/v1/locks/intact.l/release",
       {{"lease_id", lease}, {"fencing_token", "1"}},
       "fencing_token"},
      {"/v1/locks/intact.l/release", {{"lease_id", lease}, {"fencing_token", -1}}, "fencing_token"},
      {"/v1/locks/intact.l/release", {{"lease_id", 0}, {"fencing_token", 1}}, "lease_id"},
      {"/v1/elections/errors.e/campaign", {{"lease_id", lease}, {"value", 7}}, "value"},
      {"/v1/elections/errors.e/campaign",
       {{"lease_id", lease}, {"value", std::string(4097, 'v')}},
       "value"},
      {"/v1/elections/errors.e/campaign", {{"lease_id", lease}, {"wait_ms", 1.5}}, "wait_ms"},
      {"/v1/elections/errors.e/proclaim",
       {{"lease_id", lease}, {"fencing_token", 1}, {"value", Json::object()}},
       "value"},
      {"/v1/elections/errors.e/resign",
       {{"lease_id", lease}, {"fencing_token", 0.5}},
       "fencing_token"},
  };
  for (const Case& c : cases) {
    for (const auto& reply : send_both("POST", c.path, c.body.dump())) {
      expect_error(reply, 400, "invalid_argument", c.path + " " + c.body.dump().substr(0, 80));
      EXPECT_NE(reply.body["error"].value("message", "").find(c.field), std::string::npos)
          << "the message names '" << c.field << "': " << reply.raw;
    }
  }
  // The longest owner and value are accepted.
  auto owner = cluster_->request(follower_, "POST", "/v1/locks/errors.max/acquire",
                                 {{"ttl_ms", 2000}, {"owner", std::string(256, 'o')}});
  EXPECT_EQ(owner.status, 200) << owner.raw;
  auto value = cluster_->request(follower_, "POST", "/v1/elections/errors.max/campaign",
                                 {{"ttl_ms", 2000}, {"value", std::string(4096, 'v')}});
  EXPECT_EQ(value.status, 200) << value.raw;
}

TEST_F(HttpErrors, MissingRequiredFieldsAre400InvalidArgument) {
  const Json lease = lease_;
  const std::vector<std::pair<std::string, Json>> cases = {
      {"/v1/locks/errors.l/acquire", Json::object()},
      {"/v1/locks/errors.l/acquire", {{"owner", "me"}, {"wait_ms", 10}}},
      {"/v1/locks/errors.l/acquire", {{"lease_id", lease}, {"ttl_ms", 2000}}},
      {"/v1/locks/intact.l/release", Json::object()},
      {"/v1/locks/intact.l/release", {{"lease_id", lease}}},
      {"/v1/locks/intact.l/release", {{"fencing_token", token_}}},
      {"/v1/elections/errors.e/campaign", {{"value", "v"}}},
      {"/v1/elections/errors.e/campaign", {{"lease_id", lease}, {"ttl_ms", 2000}}},
      {"/v1/elections/errors.e/proclaim", {{"lease_id", lease}, {"fencing_token", 1}}},
      {"/v1/elections/errors.e/proclaim", {{"lease_id", lease}, {"value", "v"}}},
      {"/v1/elections/errors.e/resign", {{"lease_id", lease}}},
      {"/v1/elections/errors.e/resign", {{"fencing_token", 1}}},
  };
  for (const auto& [path, body] : cases) {
    for (const auto& reply : send_both("POST", path, body.dump())) {
      expect_error(reply, 400, "invalid_argument", path + " " + body.dump());
    }
  }
  // A missing body is {}: release without one is missing its fields.
  for (const auto& reply : send_both("POST", "/v1/locks/intact.l/release")) {
    expect_error(reply, 400, "invalid_argument", "release without a body");
  }
}

TEST_F(HttpErrors, AcquireOrCampaignWithAnUnknownLeaseIs404LeaseNotFound) {
  const Json unknown = 9007199254740000ULL;  // never created in this cluster
  for (const Json& body :
       {Json{{"lease_id", unknown}}, Json{{"lease_id", unknown}, {"wait_ms", 5000}}}) {
    for (const auto& reply :
         send_both("POST", "/v1/locks/errors.unknown-lease/acquire", body.dump())) {
      expect_error(reply, 404, "lease_not_found", "acquire " + body.dump());
    }
    for (const auto& reply :
         send_both("POST", "/v1/elections/errors.unknown-lease/campaign", body.dump())) {
      expect_error(reply, 404, "lease_not_found", "campaign " + body.dump());
    }
  }
  auto lock = cluster_->request(follower_, "GET", "/v1/locks/errors.unknown-lease");
  EXPECT_EQ(lock.body["held"], false);
  EXPECT_EQ(lock.body["waiters"], 0);
  EXPECT_EQ(cluster_->request(leader_, "GET", "/v1/elections/errors.unknown-lease").body["leader"],
            nullptr);
}

TEST_F(HttpErrors, BodyOver64KiBIs413PayloadTooLarge) {
  const std::string big = Json{{"ttl_ms", 2000}, {"pad", std::string(70 * 1024, 'x')}}.dump();
  for (const std::string path : {"/v1/leases", "/v1/locks/intact.l/release"}) {
    for (const auto& reply : send_both("POST", path, big)) {
      expect_error(reply, 413, "payload_too_large", path);
    }
  }
  // Just under the limit is served (the unknown field is ignored).
  const std::string fits = Json{{"ttl_ms", 2000}, {"pad", std::string(60 * 1024, 'x')}}.dump();
  for (const auto& reply : send_both("POST", "/v1/leases", fits)) {
    EXPECT_EQ(reply.status, 201) << reply.raw;
    EXPECT_EQ(reply.body["ttl_ms"], 2000);
  }
}

TEST_F(HttpErrors, UnknownPathIs404NotFound) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"GET", "/"},
      {"GET", "/v1"},
      {"GET", "/v1/nope"},
      {"GET", "/v2/status"},
      {"GET", "/v1/status/extra"},
      {"POST", "/v1/locks/intact.l/steal"},
      {"POST", "/v1/leases/5/renew"},
      {"GET", "/v1/elections/e/observe/more"},
      {"GET", "/v1/locks/a/b"},
  };
  for (const auto& [method, path] : cases) {
    for (const auto& reply : send_both(method, path)) {
      expect_error(reply, 404, "not_found", method + " " + path);
    }
  }
}

TEST_F(HttpErrors, KnownPathWithWrongMethodIs405MethodNotAllowed) {
  struct Case {
    std::string method;
    std::string path;
    std::string allowed;
  };
  const std::vector<Case> cases = {
      {"DELETE", "/v1/locks/intact.l", "GET"},
      {"POST", "/v1/locks/intact.l", "GET"},
      {"GET", "/v1/locks/intact.l/acquire", "POST"},
      {"GET", "/v1/locks/intact.l/release", "POST"},
      {"PUT", "/v1/leases", "POST"},
      {"GET", "/v1/leases", "POST"},
      {"POST", "/v1/status", "GET"},
      {"POST", "/healthz", "GET"},
      {"DELETE", "/metrics", "GET"},
      {"PATCH", "/v1/elections/e", "GET"},
      {"GET", "/v1/elections/e/campaign", "POST"},
      {"GET", "/v1/leases/12/keepalive", "POST"},
      {"POST", "/v1/leases/12", "GET, DELETE"},
      {"DELETE", "/v1/locks", "GET"},
  };
  for (const Case& c : cases) {
    for (const auto& reply : send_both(c.method, c.path, c.method == "GET" ? "" : "{}")) {
      expect_error(reply, 405, "method_not_allowed", c.method + " " + c.path);
      ASSERT_NE(reply.headers.count("Allow"), 0u) << c.method << " " << c.path;
      EXPECT_EQ(reply.headers.at("Allow"), c.allowed) << c.method << " " << c.path;
    }
  }
}

TEST_F(HttpErrors, BadNamesAre400InvalidArgument) {
  const std::string too_long(257, 'n');
  const std::vector<std::string> bad = {"",          too_long, "a%21",  "a%20b",
                                        "caf%C3%A9", "a*b",    "a%22b", "semi%3Bcolon"};
  for (const std::string& name : bad) {
    for (const auto& reply :
         send_both("POST", "/v1/locks/" + name + "/acquire", Json{{"ttl_ms", 2000}}.dump())) {
      expect_error(reply, 400, "invalid_argument", "acquire '" + name.substr(0, 20) + "'");
    }
    for (const auto& reply : send_both("POST", "/v1/locks/" + name + "/release",
                                       Json{{"lease_id", lease_}, {"fencing_token", 1}}.dump())) {
      expect_error(reply, 400, "invalid_argument", "release '" + name.substr(0, 20) + "'");
    }
    for (const auto& reply :
         send_both("POST", "/v1/elections/" + name + "/campaign", Json{{"ttl_ms", 2000}}.dump())) {
      expect_error(reply, 400, "invalid_argument", "campaign '" + name.substr(0, 20) + "'");
    }
    for (const std::string suffix : {"/proclaim", "/resign"}) {
      for (const auto& reply :
           send_both("POST", "/v1/elections/" + name + suffix,
                     Json{{"lease_id", lease_}, {"fencing_token", 1}, {"value", "v"}}.dump())) {
        expect_error(reply, 400, "invalid_argument", suffix + " '" + name.substr(0, 20) + "'");
      }
    }
    if (name.empty()) continue;  // GET /v1/locks/ and /v1/elections/ are checked below
    for (const auto& reply : send_both("GET", "/v1/locks/" + name)) {
      expect_error(reply, 400, "invalid_argument", "get lock '" + name.substr(0, 20) + "'");
    }
    for (const auto& reply : send_both("GET", "/v1/elections/" + name)) {
      expect_error(reply, 400, "invalid_argument", "get election '" + name.substr(0, 20) + "'");
    }
    for (const auto& reply : send_both("GET", "/v1/elections/" + name + "/observe?wait_ms=10")) {
      expect_error(reply, 400, "invalid_argument", "observe '" + name.substr(0, 20) + "'");
    }
  }
  for (const auto& reply : send_both("GET", "/v1/locks/")) {
    expect_error(reply, 400, "invalid_argument", "GET /v1/locks/");
  }
  // A '/' inside a name makes another path: there is no such path.
  for (const auto& reply : send_both("POST", "/v1/locks/a%2Fb/acquire", "{\"ttl_ms\": 2000}")) {
    expect_error(reply, 404, "not_found", "a/b");
  }
  // The longest name and every allowed character are fine.
  const std::string longest(256, 'n');
  auto ok =
      cluster_->request(follower_, "POST", "/v1/locks/" + longest + "/acquire", {{"ttl_ms", 2000}});
  EXPECT_EQ(ok.status, 200) << ok.raw;
  auto all_chars =
      cluster_->request(leader_, "POST", "/v1/locks/AZaz09._-:@/acquire", {{"ttl_ms", 2000}});
  EXPECT_EQ(all_chars.status, 200) << all_chars.raw;
  EXPECT_EQ(all_chars.body["name"], "AZaz09._-:@");
}

TEST_F(HttpErrors, BadLeaseIdInPathIs400InvalidArgument) {
  for (const std::string id :
       {"0", "abc", "9007199254740992", "-1", "1.5", "12a", "99999999999999999999", "%20"}) {
    const std::string path = "/v1/leases/" + id;
    for (const auto& reply : send_both("GET", path)) {
      expect_error(reply, 400, "invalid_argument", "GET " + path);
    }
    for (const auto& reply : send_both("DELETE", path)) {
      expect_error(reply, 400, "invalid_argument", "DELETE " + path);
    }
    for (const auto& reply : send_both("POST", path + "/keepalive")) {
      expect_error(reply, 400, "invalid_argument", "keepalive " + path);
    }
  }
  for (const auto& reply : send_both("POST", "/v1/leases//keepalive")) {
    expect_error(reply, 400, "invalid_argument", "keepalive of an empty id");
  }
  // The largest id is valid (and unknown here).
  for (const auto& reply : send_both("GET", "/v1/leases/9007199254740991")) {
    expect_error(reply, 404, "lease_not_found", "the largest id");
  }
}

TEST_F(HttpErrors, BadQueryParametersAre400InvalidArgument) {
  const std::vector<std::string> paths = {
      "/v1/locks/intact.l?consistency=eventual",
      "/v1/locks/intact.l?consistency=",
      "/v1/locks?consistency=STALE",
      "/v1/locks?prefix=" + std::string(257, 'p'),
      "/v1/elections/errors.e?consistency=strong",
      "/v1/elections/errors.e/observe?after_revision=-1",
      "/v1/elections/errors.e/observe?after_revision=abc",
      "/v1/elections/errors.e/observe?wait_ms=300001",
      "/v1/elections/errors.e/observe?wait_ms=1.5",
  };
  for (const std::string& path : paths) {
    for (const auto& reply : send_both("GET", path)) {
      expect_error(reply, 400, "invalid_argument", path.substr(0, 60));
    }
  }
}

TEST_F(HttpErrors, UnknownFieldsAndParametersAreIgnored) {
  auto lease = cluster_->request(follower_, "POST", "/v1/leases",
                                 {{"ttl_ms", 2000}, {"colour", "blue"}, {"nested", {{"a", 1}}}});
  ASSERT_EQ(lease.status, 201) << lease.raw;
  const uint64_t id = lease.body["lease_id"].get<uint64_t>();
  auto granted = cluster_->request(
      leader_, "POST", "/v1/locks/errors.unknown/acquire",
      {{"lease_id", id}, {"priority", 9}, {"owner", "o"}, {"ttl", "ignored too"}});
  ASSERT_EQ(granted.status, 200) << granted.raw;
  EXPECT_EQ(granted.body["owner"], "o");
  auto read = cluster_->request(follower_, "GET", "/v1/locks/errors.unknown?pretty=1&x=y");
  ASSERT_EQ(read.status, 200) << read.raw;
  EXPECT_EQ(read.body["holder"]["lease_id"], id);
  // A null field counts as absent.
  auto defaulted = cluster_->request(leader_, "POST", "/v1/leases", {{"ttl_ms", nullptr}});
  ASSERT_EQ(defaulted.status, 201) << defaulted.raw;
  EXPECT_EQ(defaulted.body["ttl_ms"], 10000);
}

TEST_F(HttpErrors, AFormEncodedContentTypeStillReadsTheBodyAsJson) {
  // What `curl -d '{...}'` sends: the body is JSON whatever the Content-Type says.
  for (int node : {leader_, follower_}) {
    httplib::Client client("127.0.0.1", cluster_->client_port(node));
    auto result =
        client.Post("/v1/leases", "{\"ttl_ms\": 4000}", "application/x-www-form-urlencoded");
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, 201) << result->body;
    const Json body = Json::parse(result->body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << result->body;
    EXPECT_EQ(body["ttl_ms"], 4000);
    auto keepalive =
        client.Post("/v1/leases/" + std::to_string(body["lease_id"].get<uint64_t>()) + "/keepalive",
                    "{}", "application/x-www-form-urlencoded");
    ASSERT_TRUE(keepalive);
    EXPECT_EQ(keepalive->status, 200) << keepalive->body;
  }
}

TEST_F(HttpErrors, SilentConnectionsBeyondThePoolsThreadsStallNoRequest) {
  // The client port serves requests on 512 threads. 600 connections that never send a byte (a
  // client pool opened and forgotten, or someone trying to exhaust the threads) used to hold one
  // thread each for their 60 s keep-alive: every new request waited a minute. Idle connections
  // now give their thread back after 100 ms.
  constexpr int kSilent = 600;
  std::vector<int> silent;
  for (int i = 0; i < kSilent; ++i) {
    const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(sock, 0) << "socket " << i;
    silent.push_back(sock);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(cluster_->client_port(follower_)));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << "connection " << i;
  }
  std::this_thread::sleep_for(300ms);  // every silent connection reached a thread or its queue
  // Within http_request's 10 s limit, far below the 60 s the silent connections would hold.
  auto status = http_request(cluster_->client_port(follower_), "GET", "/v1/status");
  EXPECT_EQ(status.status, 200) << status.raw;
  auto lease =
      http_request(cluster_->client_port(follower_), "POST", "/v1/leases", "{\"ttl_ms\": 5000}");
  EXPECT_EQ(lease.status, 201) << lease.raw;
  // The node's metrics show them parked (waiting without a thread).
  std::optional<double> parked;
  for (int i = 0; i < 500 && parked.value_or(0) < kSilent; ++i) {
    if (i > 0) std::this_thread::sleep_for(10ms);
    parked = prometheus_tools::sample(
        http_request(cluster_->client_port(follower_), "GET", "/metrics").raw,
        "raftlock_http_connections_parked");
  }
  EXPECT_GE(parked.value_or(-1), kSilent);
  // A silent connection that speaks at last is served too.
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(silent.front(), request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  pollfd p{silent.front(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  char answer[16] = {};
  ASSERT_GT(::recv(silent.front(), answer, sizeof(answer) - 1, 0), 0);
  EXPECT_EQ(std::string(answer).rfind("HTTP/1.1 200", 0), 0u) << answer;
  for (int sock : silent) ::close(sock);
}

}  // namespace
}  // namespace raftlock::testing
