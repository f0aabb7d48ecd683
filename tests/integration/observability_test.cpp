// Observability of live raftlockd processes: /metrics passes promtool, its series follow the
// cluster's state and the service's traffic, no user string becomes a label, the Grafana
// dashboard and the alert rules only use metrics a node exports, and a real Prometheus server
// scraping a 3-node cluster sees a leader change.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/integration/cluster.h"
#include "tests/metrics/prometheus_tools.h"

namespace raftlock::testing {
namespace {

namespace fs = std::filesystem;
namespace tools = prometheus_tools;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using tools::sample;

std::string peer_series(const std::string& name, int peer) {
  return name + "{peer=\"" + std::to_string(peer) + "\"}";
}

std::string acquire_series(const std::string& outcome) {
  return "raftlock_lock_acquisitions_total{outcome=\"" + outcome + "\"}";
}

// ---------------------------------------------------------------------------------------------
// One healthy 3-node cluster shared by the suite.

class ObservabilityCluster : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions options;
    options.snapshot_every = kSnapshotEvery;
    cluster_ = std::make_unique<Cluster>(3, options);
    cluster_->start_all();
    ASSERT_TRUE(cluster_->wait_for_leader().has_value()) << "no leader in the 3-node cluster";
  }
  static void TearDownTestSuite() { cluster_.reset(); }
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    auto leader = cluster_->wait_for_leader();
    ASSERT_TRUE(leader.has_value());
    leader_ = *leader;
    for (int id : cluster_->ids()) {
      if (id != leader_) followers_.push_back(id);
    }
  }
  static constexpr int kSnapshotEvery = 20;  // applied entries between local snapshots

  std::string metrics_of(int id) {
    auto reply = cluster_->request(id, "GET", "/metrics");
    EXPECT_EQ(reply.status, 200) << "node " << id << ": " << reply.raw;
    return reply.raw;
  }
  double value(int id, const std::string& series) {
    auto v = sample(metrics_of(id), series);
    EXPECT_TRUE(v.has_value()) << "node " << id << " has no sample " << series;
    return v.value_or(-1);
  }
  // Polls node `id`'s /metrics until `series` satisfies `done` (gauges refreshed periodically).
  bool wait_for_sample(int id, const std::string& series, const std::function<bool(double)>& done,
                       std::chrono::milliseconds timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      auto v = sample(metrics_of(id), series);
      if (v && done(*v)) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  uint64_t new_lease(int via, int ttl_ms = 60000) {
    auto reply = cluster_->request(via, "POST", "/v1/leases", {{"ttl_ms", ttl_ms}});
    EXPECT_EQ(reply.status, 201) << reply.raw;
    return reply.status == 201 ? reply.body["lease_id"].get<uint64_t>() : 0;
  }

  static inline std::unique_ptr<Cluster> cluster_;
  int leader_ = 0;
  std::vector<int> followers_;
};

TEST_F(ObservabilityCluster, PromtoolAcceptsTheLiveMetricsOfEveryNodeAndNoUserStringIsALabel) {
  auto promtool = tools::find_tool("promtool");
  if (!promtool) GTEST_SKIP() << "promtool is not installed (Debian package 'prometheus')";
  // Traffic through every kind of route, with user-chosen names that must not become labels.
  const std::string lock = "obs-user-lock-Zq9";
  const std::string election = "obs-user-election-Xy7";
  const uint64_t lease = new_lease(leader_);
  auto granted = cluster_->request(followers_[0], "POST", "/v1/locks/" + lock + "/acquire",
                                   {{"lease_id", lease}, {"owner", "obs-user-owner-Q1"}});
  ASSERT_EQ(granted.status, 200) << granted.raw;
  auto held = cluster_->request(followers_[1], "POST", "/v1/locks/" + lock + "/acquire",
                                {{"ttl_ms", 5000}, {"wait_ms", 50}});
  EXPECT_EQ(held.status, 409) << held.raw;
  auto campaign = cluster_->request(leader_, "POST", "/v1/elections/" + election + "/campaign",
                                    {{"ttl_ms", 5000}, {"value", "obs-user-value-W2"}});
  EXPECT_EQ(campaign.status, 200) << campaign.raw;
  EXPECT_EQ(cluster_->request(leader_, "GET", "/v1/leases/" + std::to_string(lease)).status, 200);
  EXPECT_EQ(cluster_->request(followers_[0], "GET", "/obs-user-path-R5").status, 404);
  EXPECT_EQ(cluster_->request(followers_[0], "DELETE", "/v1/status").status, 405);

  for (int id : cluster_->ids()) {
    const std::string text = metrics_of(id);
    ASSERT_FALSE(text.empty());
    auto checked = tools::run_tool({*promtool, "check", "metrics"}, text);
    EXPECT_EQ(checked.exit_code, 0) << "node " << id << ":\n" << checked.output;
    EXPECT_EQ(checked.output, "") << "promtool lint findings on node " << id << ":\n"
                                  << checked.output;
    for (const std::string& user :
         {lock, election, std::string("obs-user-owner-Q1"), std::string("obs-user-value-W2"),
          std::string("obs-user-path"), std::to_string(lease)}) {
      EXPECT_EQ(text.find(user), std::string::npos)
          << "node " << id << " exposes the user-supplied string '" << user << "'";
    }
  }
}

TEST_F(ObservabilityCluster, RaftAndPeerSeriesFollowTheClusterState) {
  // A write, so every node has replicated, persisted and applied something recently.
  new_lease(leader_);
  const Json leader_status = cluster_->status(leader_);
  const uint64_t commit = leader_status["commit_index"].get<uint64_t>();
  ASSERT_TRUE(cluster_->wait_for_applied(commit, 5s));

  for (int id : cluster_->ids()) {
    SCOPED_TRACE("node " + std::to_string(id));
    const std::string text = metrics_of(id);
    const Json status = cluster_->status(id);
    const bool is_leader = id == leader_;
    EXPECT_EQ(sample(text, "raftlock_raft_node_id"), id);
    EXPECT_EQ(sample(text, "raftlock_raft_is_leader"), is_leader ? 1 : 0);
    EXPECT_EQ(sample(text, "raftlock_raft_leader_id"), leader_);
    EXPECT_EQ(sample(text, "raftlock_raft_term"), status["term"].get<double>());
    EXPECT_GE(sample(text, "raftlock_raft_commit_index").value_or(0), static_cast<double>(commit));
    EXPECT_GE(sample(text, "raftlock_raft_applied_index").value_or(0), static_cast<double>(commit));
    EXPECT_GE(sample(text, "raftlock_raft_last_index").value_or(0), static_cast<double>(commit));
    EXPECT_EQ(sample(text, "raftlock_raft_stopped"), 0);
    EXPECT_GE(sample(text, "raftlock_raft_leader_changes_total").value_or(0), 1);
    EXPECT_GE(sample(text, "raftlock_raft_persist_duration_seconds_count").value_or(0), 1);
    EXPECT_GE(sample(text, "raftlock_raft_apply_duration_seconds_count").value_or(0), 1);
    EXPECT_GE(sample(text, "raftlock_raft_entries_applied_total").value_or(0), 1);
    if (is_leader) {
      EXPECT_GE(sample(text, "raftlock_raft_elections_won_total").value_or(0), 1);
      EXPECT_GE(sample(text, "raftlock_raft_elections_started_total").value_or(0), 1);
      EXPECT_GE(sample(text, "raftlock_raft_commit_latency_seconds_count").value_or(0), 2)
          << "the leader's no-op and the lease were committed";
    }
    // Peer traffic, labelled by node id, both ways, with every other member.
    for (int peer : cluster_->ids()) {
      if (peer == id) {
        EXPECT_FALSE(sample(text, peer_series("raftlock_transport_messages_sent_total", peer)))
            << "no series for the node itself";
        continue;
      }
      // Every pair has a series; the leader and each follower exchange messages both ways
      // (two followers need not talk to each other).
      const bool talks = is_leader || peer == leader_;
      for (const char* name :
           {"raftlock_transport_messages_sent_total", "raftlock_transport_sent_bytes_total",
            "raftlock_transport_messages_received_total",
            "raftlock_transport_received_bytes_total"}) {
        auto v = sample(text, peer_series(name, peer));
        ASSERT_TRUE(v.has_value()) << name << " for peer " << peer;
        if (talks) {
          EXPECT_GT(*v, 0) << name << " for peer " << peer;
        }
      }
      EXPECT_TRUE(sample(text, peer_series("raftlock_transport_send_failures_total", peer)));
      // Only the leader tracks its followers' progress.
      auto lag = sample(text, peer_series("raftlock_raft_follower_lag_entries", peer));
      EXPECT_EQ(lag.has_value(), is_leader) << "lag of " << peer;
      if (is_leader) {
        // Lag is measured from the leader's last index (same scrape, same status snapshot).
        auto match = sample(text, peer_series("raftlock_raft_follower_match_index", peer));
        ASSERT_TRUE(match.has_value()) << "match index of " << peer;
        EXPECT_EQ(*match + lag.value_or(-1), sample(text, "raftlock_raft_last_index").value_or(-2));
      }
    }
  }
}

TEST_F(ObservabilityCluster, LockAcquisitionsAreCountedByOutcomeWithRequestsByRoute) {
  const int via = followers_[0];
  const std::string before = metrics_of(via);
  const std::string route =
      R"(raftlock_http_requests_total{code="%",method="POST",route="/v1/locks/{name}/acquire"})";
  auto requests = [&](const std::string& text, const std::string& code) {
    std::string series = route;
    series.replace(series.find('%'), 1, code);
    return sample(text, series).value_or(0);
  };
  const std::string lock = "obs-outcomes";
  auto granted =
      cluster_->request(via, "POST", "/v1/locks/" + lock + "/acquire", {{"ttl_ms", 60000}});
  ASSERT_EQ(granted.status, 200) << granted.raw;
  auto timed_out = cluster_->request(via, "POST", "/v1/locks/" + lock + "/acquire",
                                     {{"ttl_ms", 60000}, {"wait_ms", 100}});
  ASSERT_EQ(timed_out.status, 409) << timed_out.raw;
  auto rejected =
      cluster_->request(via, "POST", "/v1/locks/" + lock + "/acquire", {{"ttl_ms", 60000}});
  ASSERT_EQ(rejected.status, 409) << rejected.raw;
  auto invalid = cluster_->request(via, "POST", "/v1/locks/" + lock + "/acquire", {{"wait_ms", 1}});
  ASSERT_EQ(invalid.status, 400) << invalid.raw;  // refused by validation: no acquisition counted

  const std::string after = metrics_of(via);
  for (const auto& [outcome, delta] : std::map<std::string, double>{
           {"granted", 1}, {"timed_out", 1}, {"rejected", 1}, {"failed", 0}}) {
    EXPECT_EQ(sample(after, acquire_series(outcome)).value_or(-1) -
                  sample(before, acquire_series(outcome)).value_or(0),
              delta)
        << outcome;
  }
  EXPECT_EQ(sample(after, "raftlock_lock_wait_duration_seconds_count").value_or(0) -
                sample(before, "raftlock_lock_wait_duration_seconds_count").value_or(0),
            3);
  // The timed-out acquire waited at least its 100 ms.
  EXPECT_GE(sample(after, "raftlock_lock_wait_duration_seconds_sum").value_or(0) -
                sample(before, "raftlock_lock_wait_duration_seconds_sum").value_or(0),
            0.1);
  EXPECT_EQ(requests(after, "200") - requests(before, "200"), 1);
  EXPECT_EQ(requests(after, "409") - requests(before, "409"), 2);
  EXPECT_EQ(requests(after, "400") - requests(before, "400"), 1);
  const std::string latency =
      R"(raftlock_http_request_duration_seconds_count{route="/v1/locks/{name}/acquire"})";
  EXPECT_EQ(sample(after, latency).value_or(0) - sample(before, latency).value_or(0), 4);
}

TEST_F(ObservabilityCluster, LockRequestsOnAKeepAliveConnectionAreServedByTheRaftLoop) {
  // Once a connection has made a lock request, its next acquires and releases are read and
  // answered by the node's Raft loop (no thread between the client and the loop); a follower's
  // go on to the leader from there. The first (after the lease's creation) is a thread's.
  for (const int via : {followers_[0], leader_}) {
    httplib::Client client("127.0.0.1", cluster_->client_port(via));
    client.set_keep_alive(true);
    client.set_tcp_nodelay(true);
    auto post = [&](const std::string& path, const Json& body) {
      auto result = client.Post(path, body.dump(), "application/json");
      EXPECT_TRUE(result) << path;
      return result ? std::make_pair(result->status, Json::parse(result->body, nullptr, false))
                    : std::make_pair(0, Json());
    };
    const auto [created, lease] = post("/v1/leases", {{"ttl_ms", 60000}});
    ASSERT_EQ(created, 201) << lease.dump();
    const double before = value(via, "raftlock_http_loop_requests_total");
    const std::string lock = "/v1/locks/obs-loop-" + std::to_string(via);
    for (int i = 0; i < 5; ++i) {
      const auto [acquired, holder] = post(lock + "/acquire", {{"lease_id", lease["lease_id"]}});
      ASSERT_EQ(acquired, 200) << holder.dump();
      const auto [released, answer] =
          post(lock + "/release",
               {{"lease_id", lease["lease_id"]}, {"fencing_token", holder["fencing_token"]}});
      ASSERT_EQ(released, 200) << answer.dump();
    }
    EXPECT_EQ(value(via, "raftlock_http_loop_requests_total") - before, 9) << "node " << via;
  }
}

TEST_F(ObservabilityCluster, LocksHeldWaitersLeasesAndExpirationsAreExported) {
  const std::string lock = "obs-gauges";
  const uint64_t holder = new_lease(leader_);
  auto granted =
      cluster_->request(leader_, "POST", "/v1/locks/" + lock + "/acquire", {{"lease_id", holder}});
  ASSERT_EQ(granted.status, 200) << granted.raw;
  const uint64_t token = granted.body["fencing_token"].get<uint64_t>();
  // A waiter queued behind the holder.
  auto waiter = std::async(std::launch::async, [&] {
    return cluster_->request(followers_[0], "POST", "/v1/locks/" + lock + "/acquire",
                             {{"ttl_ms", 60000}, {"wait_ms", 10000}}, 15s);
  });
  for (int id : cluster_->ids()) {
    EXPECT_TRUE(wait_for_sample(id, "raftlock_lock_waiters", [](double v) { return v >= 1; }))
        << "node " << id << " never reported the queued waiter";
    EXPECT_TRUE(wait_for_sample(id, "raftlock_locks_held", [](double v) { return v >= 1; }))
        << "node " << id;
    EXPECT_TRUE(wait_for_sample(id, "raftlock_leases_active", [](double v) { return v >= 2; }))
        << "node " << id;
  }
  auto released = cluster_->request(leader_, "POST", "/v1/locks/" + lock + "/release",
                                    {{"lease_id", holder}, {"fencing_token", token}});
  ASSERT_EQ(released.status, 200) << released.raw;
  EXPECT_EQ(waiter.get().status, 200) << "the waiter is granted once the holder releases";
  EXPECT_TRUE(wait_for_sample(leader_, "raftlock_lock_waiters", [](double v) { return v == 0; }));

  // A lease nobody keeps alive expires; every node applies (and counts) the expiry.
  std::map<int, double> expirations;
  for (int id : cluster_->ids()) expirations[id] = value(id, "raftlock_lease_expirations_total");
  new_lease(leader_, 1000);
  for (int id : cluster_->ids()) {
    EXPECT_TRUE(wait_for_sample(
        id, "raftlock_lease_expirations_total", [&](double v) { return v >= expirations[id] + 1; },
        8s))
        << "node " << id << " never counted the expiry";
  }

  // A named election getting a leader counts as an election leader change, everywhere.
  std::map<int, double> changes;
  for (int id : cluster_->ids()) {
    changes[id] = value(id, "raftlock_election_leader_changes_total");
  }
  auto campaign = cluster_->request(leader_, "POST", "/v1/elections/obs-gauges/campaign",
                                    {{"ttl_ms", 60000}, {"value", "a"}});
  ASSERT_EQ(campaign.status, 200) << campaign.raw;
  for (int id : cluster_->ids()) {
    EXPECT_TRUE(wait_for_sample(id, "raftlock_election_leader_changes_total",
                                [&](double v) { return v >= changes[id] + 1; }))
        << "node " << id;
  }
}

TEST_F(ObservabilityCluster, LocalSnapshotsAreCountedWithTheirDurationAndSize) {
  std::map<int, double> taken;
  for (int id : cluster_->ids()) taken[id] = value(id, "raftlock_raft_snapshots_taken_total");
  for (int i = 0; i < kSnapshotEvery + 5; ++i) new_lease(leader_);
  const uint64_t commit = cluster_->status(leader_)["commit_index"].get<uint64_t>();
  ASSERT_TRUE(cluster_->wait_for_applied(commit, 5s));
  for (int id : cluster_->ids()) {
    SCOPED_TRACE("node " + std::to_string(id));
    EXPECT_TRUE(wait_for_sample(id, "raftlock_raft_snapshots_taken_total",
                                [&](double v) { return v >= taken[id] + 1; }));
    const std::string text = metrics_of(id);
    EXPECT_GE(sample(text, "raftlock_raft_snapshot_duration_seconds_count").value_or(0),
              sample(text, "raftlock_raft_snapshots_taken_total").value_or(-1));
    EXPECT_GT(sample(text, "raftlock_raft_snapshot_bytes").value_or(0), 0);
  }
}

// Every metric name a PromQL expression (or rule) refers to is in a live node's exposition:
// a sample of that exact name, and for a _bucket/_sum/_count name the family is a histogram.
void expect_exported(const std::string& name, const std::set<std::string>& samples,
                     const std::map<std::string, std::string>& types, const std::string& where) {
  EXPECT_TRUE(samples.count(name))
      << where << " uses " << name << ", which a live node does not export";
  for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string family = name.substr(0, name.size() - suffix.size());
      auto type = types.find(family);
      EXPECT_TRUE(type != types.end() && (type->second == "histogram" || type->second == "summary"))
          << where << " uses " << name << " but " << family << " is not a histogram";
      return;
    }
  }
  EXPECT_TRUE(types.count(name)) << name << " has no # TYPE line";
}

// The `expr:` values of packaging/prometheus/alerts.yml (one-line or `|` blocks).
std::vector<std::string> alert_expressions() {
  std::stringstream lines(
      tools::read_text(tools::source_root() / "packaging" / "prometheus" / "alerts.yml"));
  std::vector<std::string> out;
  std::optional<size_t> block_indent;  // inside an `expr: |` block indented deeper than this
  for (std::string line; std::getline(lines, line);) {
    const size_t indent = line.find_first_not_of(' ');
    if (block_indent) {
      if (indent != std::string::npos && indent > *block_indent) {
        out.back() += " " + line.substr(indent);
        continue;
      }
      block_indent.reset();
    }
    if (indent == std::string::npos || line.compare(indent, 6, "expr: ") != 0) continue;
    const std::string value = line.substr(indent + 6);
    out.push_back(value == "|" ? "" : value);
    if (value == "|") block_indent = indent;
  }
  return out;
}

TEST_F(ObservabilityCluster, TheDashboardAndAlertRulesOnlyUseMetricsALiveNodeExports) {
  // Traffic so the per-route HTTP families have series.
  new_lease(leader_);
  const std::string text = metrics_of(leader_);
  const auto samples = tools::sample_names(text);
  const auto types = tools::family_types(text);

  std::ifstream in(tools::source_root() / "packaging" / "grafana" / "raftlock.json");
  const Json dashboard = Json::parse(in, nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded());
  std::set<std::string> used;
  for (const Json& panel : dashboard["panels"]) {
    if (!panel.contains("targets")) continue;
    for (const Json& target : panel["targets"]) {
      for (const auto& name : tools::promql_metric_names(target["expr"].get<std::string>())) {
        used.insert(name);
      }
    }
  }
  for (const Json& variable : dashboard["templating"]["list"]) {
    const std::string definition = variable.value("definition", "");
    // label_values(metric, label)
    const size_t open = definition.find('(');
    const size_t comma = definition.find(',');
    if (definition.rfind("label_values(", 0) == 0 && comma != std::string::npos) {
      used.insert(definition.substr(open + 1, comma - open - 1));
    }
  }
  ASSERT_GE(used.size(), 20u) << "suspiciously few metric names found in the dashboard";
  for (const auto& name : used) expect_exported(name, samples, types, "the dashboard");

  std::set<std::string> rule_metrics;
  for (const std::string& expr : alert_expressions()) {
    for (const auto& name : tools::promql_metric_names(expr)) {
      if (name != "up") rule_metrics.insert(name);  // `up` is Prometheus's own series
    }
  }
  ASSERT_GE(rule_metrics.size(), 5u);
  for (const auto& name : rule_metrics) expect_exported(name, samples, types, "alerts.yml");
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus server scraping a live cluster.

// Debian's prometheus binary with a generated config and a temporary storage dir.
class PrometheusServer {
 public:
  PrometheusServer(const std::string& binary, const std::vector<std::string>& targets) {
    char templ[] = "/tmp/raftlock-prom-XXXXXX";
    dir_ = ::mkdtemp(templ);
    port_ = free_port();
    std::ofstream config(dir_ + "/prometheus.yml");
    config << "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n"
           << "scrape_configs:\n  - job_name: raftlock\n    static_configs:\n      - targets:\n";
    for (const auto& target : targets) config << "          - " << target << "\n";
    config.close();
    const std::vector<std::string> args = {
        binary, "--config.file=" + dir_ + "/prometheus.yml",
        "--storage.tsdb.path=" + dir_ + "/data",
        "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"};
    const int log_fd = ::open((dir_ + "/prometheus.log").c_str(), O_WRONLY | O_CREAT, 0644);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(log_fd);
  }
  ~PrometheusServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      const auto deadline = Clock::now() + 5s;
      int status = 0;
      while (::waitpid(pid_, &status, WNOHANG) != pid_) {
        if (Clock::now() >= deadline) {
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, &status, 0);
          break;
        }
        std::this_thread::sleep_for(10ms);
      }
    }
    if (::testing::Test::HasFailure()) {
      std::cerr << "---- prometheus log ----\n" << tools::read_text(dir_ + "/prometheus.log");
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  bool wait_ready(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (http_request(port_, "GET", "/-/ready", "", 500ms).status == 200) return true;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  // Instant query through Prometheus's HTTP API: instance -> value of each series.
  std::map<std::string, double> query(const std::string& promql) {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(5s);
    auto result = client.Get("/api/v1/query", httplib::Params{{"query", promql}}, {});
    std::map<std::string, double> out;
    if (!result || result->status != 200) return out;
    const Json body = Json::parse(result->body, nullptr, false);
    if (body.is_discarded() || body.value("status", "") != "success") return out;
    for (const Json& series : body["data"]["result"]) {
      out[series["metric"].value("instance", "")] =
          std::stod(series["value"][1].get<std::string>());
    }
    last_answer_ = promql + " -> " + body["data"].dump();
    return out;
  }
  const std::string& last_answer() const { return last_answer_; }

 private:
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  std::string last_answer_;
};

TEST(PrometheusScrape, ARealPrometheusSeesTheLeaderChangeAfterTheLeaderIsKilled) {
  auto binary = tools::find_tool("prometheus");
  if (!binary) {
    GTEST_SKIP() << "the prometheus server binary is not installed (Debian package "
                    "'prometheus', installed by packaging/install-deps.sh)";
  }
  Cluster cluster(3);
  cluster.start_all();
  auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  auto instance = [&](int id) { return "127.0.0.1:" + std::to_string(cluster.client_port(id)); };
  std::vector<std::string> targets;
  for (int id : cluster.ids()) targets.push_back(instance(id));
  PrometheusServer prometheus(*binary, targets);
  ASSERT_TRUE(prometheus.wait_ready(30s)) << "prometheus did not become ready";

  // Prometheus sees all three nodes up and exactly one leader: ours.
  auto poll = [&](const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  };
  std::map<std::string, double> leaders;
  ASSERT_TRUE(poll(
      [&] {
        auto up = prometheus.query("up{job=\"raftlock\"} == 1");
        leaders = prometheus.query("raftlock_raft_is_leader == 1");
        return up.size() == 3 && leaders.size() == 1;
      },
      20s))
      << prometheus.last_answer();
  EXPECT_EQ(leaders.begin()->first, instance(*leader));

  std::vector<int> survivors;
  for (int id : cluster.ids()) {
    if (id != *leader) survivors.push_back(id);
  }
  auto changes_before = prometheus.query("raftlock_raft_leader_changes_total");
  for (int id : survivors) ASSERT_TRUE(changes_before.count(instance(id))) << instance(id);

  cluster.kill(*leader);
  auto new_leader = cluster.wait_for_leader(15s, survivors);
  ASSERT_TRUE(new_leader.has_value()) << "the survivors elected no leader";
  ASSERT_NE(*new_leader, *leader);

  // Through Prometheus: the old leader is down, exactly one node is leader and it is the new one,
  // the survivors counted a leader change and name the new leader.
  std::string why;
  const bool seen = poll(
      [&] {
        auto down = prometheus.query("up{instance=\"" + instance(*leader) + "\"} == 0");
        if (down.size() != 1) {
          why = "old leader not down: " + prometheus.last_answer();
          return false;
        }
        auto is_leader = prometheus.query("raftlock_raft_is_leader == 1");
        if (is_leader.size() != 1 || !is_leader.count(instance(*new_leader))) {
          why = "leader series: " + prometheus.last_answer();
          return false;
        }
        auto changes = prometheus.query("raftlock_raft_leader_changes_total");
        auto leader_ids = prometheus.query("raftlock_raft_leader_id");
        for (int id : survivors) {
          if (changes[instance(id)] <= changes_before[instance(id)]) {
            why = "no leader change counted on " + instance(id);
            return false;
          }
          if (leader_ids[instance(id)] != *new_leader) {
            why = "leader id on " + instance(id) + ": " + prometheus.last_answer();
            return false;
          }
        }
        return true;
      },
      20s);
  EXPECT_TRUE(seen) << why;
}

}  // namespace
}  // namespace raftlock::testing
