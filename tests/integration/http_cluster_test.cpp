// HTTP contract tests for the cluster and operations surface (/v1/status, /healthz, /readyz,
// /metrics, no_leader) and raftlockd's process behaviour (flags, environment, refusals, SIGTERM,
// and the no-flags single-node cluster), against real raftlockd processes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/cluster.h"
#include "tests/integration/http_test_support.h"
#include "tests/support/loopback_socket.h"

namespace raftlock::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// A temporary directory removed at the end of the test.
struct TempDir {
  TempDir() {
    char templ[] = "/tmp/raftlock-httptest-XXXXXX";
    path = ::mkdtemp(templ);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

// True if 127.0.0.1:port can be listened on right now (as raftlockd does: SO_REUSEADDR, so old
// connections in TIME_WAIT do not count).
bool port_free(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  const int yes = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool free =
      ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && ::listen(fd, 1) == 0;
  ::close(fd);
  return free;
}

// A long-running raftlockd started with exact args, environment and working directory (the
// Cluster harness always passes every flag; these tests need the defaults and the environment).
class Daemon {
 public:
  Daemon(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
         const std::string& cwd, const std::string& log_path)
      : log_path_(log_path) {
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      if (::chdir(cwd.c_str()) != 0) ::_exit(126);
      const int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(log_fd, 2);
      // Only what the test gives: no RAFTLOCK_* inherited from the test's environment.
      for (const char* name :
           {"RAFTLOCK_ID", "RAFTLOCK_DATA_DIR", "RAFTLOCK_CLIENT_ADDR", "RAFTLOCK_PEER_ADDR",
            "RAFTLOCK_INITIAL_CLUSTER", "RAFTLOCK_HEARTBEAT_MS", "RAFTLOCK_ELECTION_TIMEOUT_MS",
            "RAFTLOCK_LOG_LEVEL", "RAFTLOCK_SNAPSHOT_EVERY"}) {
        ::unsetenv(name);
      }
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      std::vector<std::string> argv_strings = {raftlockd_path()};
      argv_strings.insert(argv_strings.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : argv_strings) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(log_fd);
  }
  ~Daemon() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  // Waits until GET /healthz on `port` answers 200 (false if the process exited or time ran out).
  bool wait_serving(int port, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (http_request(port, "GET", "/healthz", "", 500ms).status == 200) return true;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  // SIGTERM and wait: the exit code, or -1000 if it did not exit within `timeout`.
  int terminate(std::chrono::milliseconds timeout = 10s) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      }
      std::this_thread::sleep_for(5ms);
    }
    return -1000;
  }

  std::string log() const {
    std::ifstream in(log_path_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

// ---------------------------------------------------------------------------------------------
// A healthy 3-node cluster: status, probes, metrics.

class HttpCluster : public SharedClusterTest {};

TEST_F(HttpCluster, StatusReportsRoleTermIndexesAndMembers) {
  // A write first, so there is something to replicate and match.
  auto lease = cluster_->request(leader_, "POST", "/v1/leases", {{"ttl_ms", 60000}});
  ASSERT_EQ(lease.status, 201) << lease.raw;
  const uint64_t written = cluster_->status(leader_)["commit_index"].get<uint64_t>();
  ASSERT_TRUE(cluster_->wait_for_applied(written, 5s));

  std::set<uint64_t> terms;
  int leaders = 0;
  for (int node : cluster_->ids()) {
    auto reply = cluster_->request(node, "GET", "/v1/status");
    ASSERT_EQ(reply.status, 200) << reply.raw;
    const Json& s = reply.body;
    std::set<std::string> keys;
    for (const auto& [key, value] : s.items()) keys.insert(key);
    EXPECT_EQ(keys, (std::set<std::string>{"node_id", "role", "term", "leader_id", "commit_index",
                                           "applied_index", "members"}))
        << reply.raw;
    EXPECT_EQ(s["node_id"], node);
    EXPECT_EQ(s["leader_id"], leader_);
    terms.insert(s["term"].get<uint64_t>());
    EXPECT_GE(s["term"].get<uint64_t>(), 1u);
    EXPECT_GE(s["commit_index"].get<uint64_t>(), written);
    EXPECT_GE(s["applied_index"].get<uint64_t>(), written);
    EXPECT_LE(s["applied_index"].get<uint64_t>(), s["commit_index"].get<uint64_t>());
    const bool is_leader = node == leader_;
    EXPECT_EQ(s["role"], is_leader ? "leader" : "follower");
    if (is_leader) ++leaders;
    ASSERT_EQ(s["members"].size(), 3u) << reply.raw;
    std::set<int> ids;
    for (const Json& member : s["members"]) {
      const int id = member["id"].get<int>();
      ids.insert(id);
      EXPECT_EQ(member["peer_addr"], "127.0.0.1:" + std::to_string(cluster_->peer_port(id)));
      EXPECT_EQ(member["voter"], true);
      if (is_leader) {
        ASSERT_TRUE(member.contains("match_index")) << "the leader reports match_index: " << member;
        EXPECT_GE(member["match_index"].get<uint64_t>(), written) << member;
        EXPECT_EQ(member.size(), 4u) << member;
      } else {
        EXPECT_FALSE(member.contains("match_index")) << "only the leader reports it: " << member;
        EXPECT_EQ(member.size(), 3u) << member;
      }
    }
    EXPECT_EQ(ids, (std::set<int>{1, 2, 3}));
  }
  EXPECT_EQ(leaders, 1);
  EXPECT_EQ(terms.size(), 1u) << "all nodes agree on the term";
}

TEST_F(HttpCluster, HealthzAndReadyzAnswer200WhenALeaderIsKnown) {
  for (int node : cluster_->ids()) {
    auto health = cluster_->request(node, "GET", "/healthz");
    EXPECT_EQ(health.status, 200) << health.raw;
    auto ready = cluster_->request(node, "GET", "/readyz");
    EXPECT_EQ(ready.status, 200) << "node " << node << ": " << ready.raw;
  }
}

TEST_F(HttpCluster, MetricsArePrometheusTextWithRaftAndHttpSeries) {
  ASSERT_EQ(cluster_->request(leader_, "GET", "/v1/status").status, 200);
  auto reply = cluster_->request(leader_, "GET", "/metrics");
  ASSERT_EQ(reply.status, 200);
  EXPECT_NE(reply.headers["Content-Type"].find("text/plain"), std::string::npos);
  const std::string& text = reply.raw;
  EXPECT_NE(text.find("# TYPE raftlock_raft_term gauge"), std::string::npos);
  EXPECT_NE(text.find("# TYPE raftlock_http_requests_total counter"), std::string::npos);
  bool term_line = false;
  bool status_requests = false;
  const uint64_t term = cluster_->status(leader_)["term"].get<uint64_t>();
  for (const std::string& line : lines_of(text)) {
    if (line.rfind("raftlock_raft_term ", 0) == 0) {
      term_line = true;
      EXPECT_EQ(std::stod(line.substr(line.find(' ') + 1)), static_cast<double>(term)) << line;
    }
    if (line.rfind("raftlock_http_requests_total{", 0) == 0 &&
        line.find("route=\"/v1/status\"") != std::string::npos &&
        line.find("method=\"GET\"") != std::string::npos &&
        line.find("code=\"200\"") != std::string::npos) {
      status_requests = true;
      EXPECT_GE(std::stod(line.substr(line.rfind(' ') + 1)), 1.0) << line;
    }
  }
  EXPECT_TRUE(term_line) << "no raftlock_raft_term sample";
  EXPECT_TRUE(status_requests) << "GET /v1/status was not counted";
}

// ---------------------------------------------------------------------------------------------
// Losing quorum: the survivor reports not ready, refuses writes with no_leader and Retry-After,
// still answers stale reads; a returning peer restores service with the data intact.

TEST(HttpQuorumLoss, SurvivorIsNotReadyAndAnswersNoLeaderWithRetryAfter) {
  Cluster cluster(3);
  cluster.start_all();
  auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  auto granted =
      cluster.request(*leader, "POST", "/v1/locks/quorum.l/acquire", {{"ttl_ms", 60000}});
  ASSERT_EQ(granted.status, 200) << granted.raw;
  const uint64_t token = granted.body["fencing_token"].get<uint64_t>();
  const int survivor = *leader % 3 + 1;
  const int other = survivor % 3 + 1;
  ASSERT_TRUE(cluster.wait_for_applied(token, 5s, {survivor}));

  cluster.kill(*leader);
  cluster.kill(other);

  // Within an election timeout or two the survivor knows no leader: /readyz turns 503.
  const auto killed = Clock::now();
  HttpReply ready;
  while (ms_since(killed) < 10000) {
    ready = cluster.request(survivor, "GET", "/readyz", nullptr, 2s);
    if (ready.status == 503) break;
    std::this_thread::sleep_for(20ms);
  }
  expect_error(ready, 503, "no_leader");
  EXPECT_EQ(cluster.status(survivor)["leader_id"], nullptr);
  EXPECT_EQ(cluster.request(survivor, "GET", "/healthz").status, 200) << "the process serves";

  // A write and a linearizable read, side by side: 503 no_leader with Retry-After, within the
  // service's retry window (~5 s). A stale read answers from local state.
  const auto started = Clock::now();
  auto write = std::async(std::launch::async, [&] {
    return cluster.request(survivor, "POST", "/v1/leases", {{"ttl_ms", 5000}}, 15s);
  });
  auto read = std::async(std::launch::async, [&] {
    return cluster.request(survivor, "GET", "/v1/locks/quorum.l", nullptr, 15s);
  });
  for (auto* reply : {&write, &read}) {
    ASSERT_EQ(reply->wait_for(15s), std::future_status::ready);
    auto answer = reply->get();
    expect_error(answer, 503, "no_leader");
    EXPECT_EQ(answer.headers.count("Retry-After"), 1u) << answer.raw;
  }
  EXPECT_LT(ms_since(started), 8000);
  auto stale = cluster.request(survivor, "GET", "/v1/locks/quorum.l?consistency=stale");
  ASSERT_EQ(stale.status, 200) << stale.raw;
  EXPECT_EQ(stale.body["held"], true);
  EXPECT_EQ(stale.body["fencing_token"], token);

  // One peer back: a leader again, ready, and the lock still held with the same token.
  cluster.start(other);
  ASSERT_TRUE(cluster.wait_for_leader(15s, {survivor, other}).has_value());
  const auto back = Clock::now();
  while (ms_since(back) < 5000 &&
         cluster.request(survivor, "GET", "/readyz", nullptr, 2s).status != 200) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(cluster.request(survivor, "GET", "/readyz").status, 200);
  auto after = cluster.request(survivor, "GET", "/v1/locks/quorum.l");
  ASSERT_EQ(after.status, 200) << after.raw;
  EXPECT_EQ(after.body["fencing_token"], token);
  EXPECT_EQ(cluster.request(other, "POST", "/v1/leases", {{"ttl_ms", 5000}}).status, 201);
}

TEST(HttpQuorumLoss, AnIsolatedLeaderNeitherExtendsLeasesNorStaysReady) {
  Cluster cluster(3);
  cluster.start_all();
  auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  auto lease = cluster.request(*leader, "POST", "/v1/leases", {{"ttl_ms", 60000}});
  ASSERT_EQ(lease.status, 201) << lease.raw;
  const std::string keepalive =
      "/v1/leases/" + std::to_string(lease.body["lease_id"].get<uint64_t>()) + "/keepalive";
  ASSERT_EQ(cluster.request(*leader, "POST", keepalive).status, 200);

  for (int node : cluster.ids()) {
    if (node != *leader) cluster.kill(node);
  }
  // Still believing it leads (or just stepped down), it must not extend the lease: a keepalive
  // is answered only after a quorum confirmed the leadership.
  const auto started = Clock::now();
  auto refused = cluster.request(*leader, "POST", keepalive, nullptr, 15s);
  EXPECT_LT(ms_since(started), 8000);
  expect_error(refused, 503, "no_leader");
  EXPECT_EQ(refused.headers.count("Retry-After"), 1u);
  // Without a quorum it steps down: not ready.
  HttpReply ready;
  while (ms_since(started) < 10000) {
    ready = cluster.request(*leader, "GET", "/readyz", nullptr, 2s);
    if (ready.status == 503) break;
    std::this_thread::sleep_for(20ms);
  }
  expect_error(ready, 503, "no_leader");
  EXPECT_NE(cluster.status(*leader)["role"], "leader");
}

// ---------------------------------------------------------------------------------------------
// A leader change: what docs/api.md promises under "Leases across leader changes".

TEST(HttpLeaderChange, ALeaseOutlivesItsRemainingTimeAndTokensKeepIncreasing) {
  Cluster cluster(3);
  cluster.start_all();
  auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const int follower = *leader % 3 + 1;
  auto lease = cluster.request(follower, "POST", "/v1/leases", {{"ttl_ms", 2000}});
  ASSERT_EQ(lease.status, 201) << lease.raw;
  const uint64_t id = lease.body["lease_id"].get<uint64_t>();
  auto granted =
      cluster.request(follower, "POST", "/v1/locks/change.l/acquire", {{"lease_id", id}});
  ASSERT_EQ(granted.status, 200) << granted.raw;
  const uint64_t first_token = granted.body["fencing_token"].get<uint64_t>();
  ASSERT_TRUE(cluster.wait_for_applied(first_token, 5s));

  const auto sent = Clock::now();
  auto renewed =
      cluster.request(follower, "POST", "/v1/leases/" + std::to_string(id) + "/keepalive");
  ASSERT_EQ(renewed.status, 200) << renewed.raw;
  const int64_t remaining = renewed.body["remaining_ms"].get<int64_t>();
  cluster.kill(*leader);

  // Poll the follower's own state (stale reads answer during the election): the expiry arrives
  // through the new leader's log, never before remaining_ms after the keepalive was sent.
  int64_t released_after = -1;
  while (ms_since(sent) < 15000) {
    auto lock = cluster.request(follower, "GET", "/v1/locks/change.l?consistency=stale");
    if (lock.status == 200 && lock.body["held"] == false) {
      released_after = ms_since(sent);
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(released_after, 0) << "the lease never expired after the leader change";
  EXPECT_GE(released_after, remaining) << "expired sooner than the keepalive promised";
  // At most: an election (election timeout 500 ms, randomised to < 1 s, plus detection) plus a
  // fresh TTL from the new leader's takeover, plus scheduling margin.
  EXPECT_LE(released_after, 1000 + 1000 + 2000 + 1500);

  // The next grant, by the new leader, has a larger token.
  auto next = cluster.request(follower, "POST", "/v1/locks/change.l/acquire", {{"ttl_ms", 5000}});
  ASSERT_EQ(next.status, 200) << next.raw;
  EXPECT_GT(next.body["fencing_token"].get<uint64_t>(), first_token);
}

// ---------------------------------------------------------------------------------------------
// raftlockd as a process.

TEST(HttpProcess, HelpExitsZeroAndPrintsEveryFlag) {
  FILE* pipe = ::popen((raftlockd_path() + " --help 2>/dev/null").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  const int status = ::pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (const std::string flag :
       {"--id", "--data-dir", "--client-addr", "--peer-addr", "--initial-cluster", "--heartbeat-ms",
        "--election-timeout-ms", "--log-level", "RAFTLOCK_CLIENT_ADDR", "127.0.0.1:7070",
        "127.0.0.1:7080", "./raftlock-data"}) {
    EXPECT_NE(out.find(flag), std::string::npos) << "--help does not mention " << flag << ":\n"
                                                 << out;
  }
}

TEST(HttpProcess, ABadFlagExitsNonZeroWithOneLineNamingIt) {
  TempDir dir;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--bogus"}, "--bogus"},
      {{"--id", "0"}, "--id"},
      {{"--id", "abc"}, "--id"},
      {{"--heartbeat-ms", "fast"}, "--heartbeat-ms"},
      {{"--election-timeout-ms", "-5"}, "--election-timeout-ms"},
      {{"--client-addr", "nowhere"}, "--client-addr"},
      {{"--peer-addr", "127.0.0.1:99999"}, "--peer-addr"},
      {{"--initial-cluster", "1=127.0.0.1"}, "--initial-cluster"},
      {{"--log-level", "loud"}, "--log-level"},
      {{"--data-dir"}, "--data-dir"},
  };
  for (const auto& [args, named] : cases) {
    std::vector<std::string> full = args;
    if (named != "--data-dir") {
      full.push_back("--data-dir");
      full.push_back(dir.path + "/unused");
    }
    auto outcome = run_raftlockd(full, 5s);
    EXPECT_FALSE(outcome.timed_out) << named << " was accepted";
    EXPECT_NE(outcome.exit_code, 0) << named;
    const auto lines = lines_of(outcome.stderr_text);
    ASSERT_EQ(lines.size(), 1u) << "for " << named << ":\n" << outcome.stderr_text;
    EXPECT_NE(lines[0].find(named), std::string::npos) << lines[0];
  }
  // A bad value in the environment names the variable.
  auto from_env =
      run_raftlockd({"--data-dir", dir.path + "/unused"}, 5s, {{"RAFTLOCK_HEARTBEAT_MS", "soon"}});
  EXPECT_NE(from_env.exit_code, 0);
  EXPECT_NE(from_env.stderr_text.find("RAFTLOCK_HEARTBEAT_MS"), std::string::npos)
      << from_env.stderr_text;
  EXPECT_FALSE(fs::exists(dir.path + "/unused")) << "a refused start created its data dir";
}

// Starts raftlockd on the given ports and checks it refuses: non-zero exit, last stderr line
// "raftlockd: ..." naming the taken port.
void expect_refused_port(const std::string& data_dir, int client_port, int peer_port,
                         int taken_port, const std::string& what) {
  auto outcome = run_raftlockd(
      {"--data-dir", data_dir, "--client-addr", "127.0.0.1:" + std::to_string(client_port),
       "--peer-addr", "127.0.0.1:" + std::to_string(peer_port)},
      3s);
  EXPECT_FALSE(outcome.timed_out) << what << ": still running 3 s after starting on a taken port";
  EXPECT_NE(outcome.exit_code, 0) << what;
  const auto lines = lines_of(outcome.stderr_text);
  ASSERT_FALSE(lines.empty()) << what;
  EXPECT_EQ(lines.back().rfind("raftlockd: ", 0), 0u) << what << ": " << lines.back();
  EXPECT_NE(lines.back().find(std::to_string(taken_port)), std::string::npos)
      << what << ": " << outcome.stderr_text;
}

TEST(HttpProcess, ATakenPortExitsNonZeroNamingThePort) {
  TempDir dir;
  LoopbackSocket taken(4);  // makes that port "taken"
  ASSERT_TRUE(taken.ok());
  expect_refused_port(dir.path + "/c", taken.port(), free_port(), taken.port(),
                      "client port taken by another program");
  expect_refused_port(dir.path + "/p", free_port(), taken.port(), taken.port(),
                      "peer port taken by another program");
}

TEST(HttpProcess, APortTakenByAnotherRaftlockdExitsNonZeroNamingThePort) {
  Cluster running(1);
  running.start_all();
  ASSERT_TRUE(running.running(1));
  TempDir dir;
  expect_refused_port(dir.path + "/c", running.client_port(1), free_port(), running.client_port(1),
                      "client port of a running raftlockd");
  expect_refused_port(dir.path + "/p", free_port(), running.peer_port(1), running.peer_port(1),
                      "peer port of a running raftlockd");
  EXPECT_EQ(running.request(1, "GET", "/healthz").status, 200) << "the running node was disturbed";
}

TEST(HttpProcess, AnUnusableDataDirExitsNonZeroNamingThePath) {
  TempDir dir;
  const std::string file = dir.path + "/regular-file";
  std::ofstream(file) << "not a directory";
  for (const std::string& data_dir : {file + "/data", file}) {
    auto outcome = run_raftlockd(
        {"--data-dir", data_dir, "--client-addr", "127.0.0.1:" + std::to_string(free_port()),
         "--peer-addr", "127.0.0.1:" + std::to_string(free_port())},
        10s);
    EXPECT_FALSE(outcome.timed_out) << "started on " << data_dir;
    EXPECT_NE(outcome.exit_code, 0);
    const auto lines = lines_of(outcome.stderr_text);
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back().rfind("raftlockd: ", 0), 0u) << lines.back();
    EXPECT_NE(lines.back().find(data_dir), std::string::npos) << outcome.stderr_text;
  }
}

TEST(HttpProcess, SigtermShutsDownCleanlyAndAnswersAParkedAcquire) {
  Cluster cluster(1);
  cluster.start_all();
  ASSERT_TRUE(cluster.wait_for_leader().has_value());
  auto granted = cluster.request(1, "POST", "/v1/locks/term.l/acquire",
                                 {{"ttl_ms", 60000}, {"owner", "holder"}});
  ASSERT_EQ(granted.status, 200) << granted.raw;
  const uint64_t token = granted.body["fencing_token"].get<uint64_t>();
  auto parked = std::async(std::launch::async, [&] {
    return cluster.request(1, "POST", "/v1/locks/term.l/acquire",
                           {{"ttl_ms", 60000}, {"wait_ms", 60000}}, 30s);
  });
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline &&
         cluster.request(1, "GET", "/v1/locks/term.l").body.value("waiters", 0) < 1) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(cluster.request(1, "GET", "/v1/locks/term.l").body["waiters"], 1);

  const auto started = Clock::now();
  const int code = cluster.terminate(1, 10s);
  const int64_t took = ms_since(started);
  EXPECT_EQ(code, 0) << "SIGTERM exit code (-1000: did not stop in 10 s)";
  EXPECT_LT(took, 5000);
  ASSERT_EQ(parked.wait_for(5s), std::future_status::ready) << "the parked acquire hangs";
  auto answer = parked.get();
  expect_error(answer, 503, "unavailable");

  // The database was closed cleanly: a restart finds the lock with the same holder and token.
  cluster.start(1);
  ASSERT_TRUE(cluster.wait_for_leader().has_value());
  auto lock = cluster.request(1, "GET", "/v1/locks/term.l");
  ASSERT_EQ(lock.status, 200) << lock.raw;
  EXPECT_EQ(lock.body["holder"]["owner"], "holder");
  EXPECT_EQ(lock.body["fencing_token"], token);
}

TEST(HttpProcess, TheEnvironmentConfiguresAndAFlagWins) {
  TempDir dir;
  const int env_port = free_port();
  const int flag_port = free_port();
  Daemon daemon({"--client-addr", "127.0.0.1:" + std::to_string(flag_port)},
                {{"RAFTLOCK_CLIENT_ADDR", "127.0.0.1:" + std::to_string(env_port)},
                 {"RAFTLOCK_PEER_ADDR", "127.0.0.1:" + std::to_string(free_port())},
                 {"RAFTLOCK_DATA_DIR", dir.path + "/env-data"},
                 {"RAFTLOCK_ID", "7"}},
                dir.path, dir.path + "/log");
  ASSERT_TRUE(daemon.wait_serving(flag_port)) << daemon.log();
  EXPECT_EQ(http_request(env_port, "GET", "/healthz", "", 300ms).status, 0)
      << "the environment's port is used though the flag names another";
  auto status = http_request(flag_port, "GET", "/v1/status");
  ASSERT_EQ(status.status, 200);
  EXPECT_EQ(status.body["node_id"], 7) << "RAFTLOCK_ID was not read";
  EXPECT_TRUE(fs::is_directory(dir.path + "/env-data")) << "RAFTLOCK_DATA_DIR was not used";
  EXPECT_EQ(daemon.terminate(), 0);
}

TEST(HttpProcess, WithNoFlagsAtAllItIsAWorkingSingleNodeCluster) {
  if (!port_free(7070) || !port_free(7080)) {
    GTEST_SKIP() << "127.0.0.1:7070 or :7080 is in use on this machine; the no-flags default "
                    "ports cannot be tested here";
  }
  TempDir dir;
  Daemon daemon({}, {}, dir.path, dir.path + "/log");
  ASSERT_TRUE(daemon.wait_serving(7070)) << daemon.log();
  const auto started = Clock::now();
  while (ms_since(started) < 10000 && http_request(7070, "GET", "/readyz").status != 200) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(http_request(7070, "GET", "/readyz").status, 200) << daemon.log();
  auto status = http_request(7070, "GET", "/v1/status");
  EXPECT_EQ(status.body["node_id"], 1);
  EXPECT_EQ(status.body["role"], "leader");
  ASSERT_EQ(status.body["members"].size(), 1u);
  EXPECT_EQ(status.body["members"][0]["peer_addr"], "127.0.0.1:7080");
  auto granted = http_request(7070, "POST", "/v1/locks/default.l/acquire", "{\"ttl_ms\": 5000}");
  ASSERT_EQ(granted.status, 200) << granted.raw;
  auto lock = http_request(7070, "GET", "/v1/locks/default.l");
  EXPECT_EQ(lock.body["held"], true);
  EXPECT_TRUE(fs::is_directory(dir.path + "/raftlock-data")) << "the default data dir";
  EXPECT_EQ(daemon.terminate(), 0);
}

}  // namespace
}  // namespace raftlock::testing
