// Checks the monitoring files shipped in packaging/: the Prometheus scrape config and alert rules
// (with promtool, Debian's prometheus package) and the Grafana dashboard's structure and queries.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "tests/metrics/prometheus_tools.h"

namespace raftlock::metrics {
namespace {

namespace fs = std::filesystem;
namespace tools = raftlock::testing::prometheus_tools;
using Json = nlohmann::json;

fs::path prometheus_dir() {
  return tools::source_root() / "packaging" / "prometheus";
}
fs::path dashboard_path() {
  return tools::source_root() / "packaging" / "grafana" / "raftlock.json";
}

std::optional<std::string> promtool() {
  return tools::find_tool("promtool");
}

#define REQUIRE_PROMTOOL(var)                                                         \
  auto var = promtool();                                                              \
  if (!var)                                                                           \
  GTEST_SKIP() << "promtool is not installed (Debian package 'prometheus'); install " \
                  "it with packaging/install-deps.sh"

TEST(PrometheusPackaging, PromtoolAcceptsTheScrapeConfigAndItsRuleFile) {
  REQUIRE_PROMTOOL(tool);
  auto checked =
      tools::run_tool({*tool, "check", "config", (prometheus_dir() / "prometheus.yml").string()});
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_NE(checked.output.find("SUCCESS: 1 rule files found"), std::string::npos)
      << checked.output;
}

TEST(PrometheusPackaging, TheScrapeConfigTargetsTheDevClusterClientPorts) {
  const std::string config = tools::read_text(prometheus_dir() / "prometheus.yml");
  for (const char* target : {"127.0.0.1:7071", "127.0.0.1:7072", "127.0.0.1:7073"}) {
    EXPECT_NE(config.find(target), std::string::npos) << target;
  }
  EXPECT_NE(config.find("metrics_path: /metrics"), std::string::npos);
}

TEST(PrometheusPackaging, PromtoolAcceptsTheAlertRules) {
  REQUIRE_PROMTOOL(tool);
  auto checked =
      tools::run_tool({*tool, "check", "rules", (prometheus_dir() / "alerts.yml").string()});
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  const std::string rules = tools::read_text(prometheus_dir() / "alerts.yml");
  for (const char* alert : {"RaftlockNoLeader", "RaftlockFrequentLeaderChanges",
                            "RaftlockCommitLatencyHigh", "RaftlockFollowerBehind"}) {
    EXPECT_NE(rules.find(std::string("alert: ") + alert), std::string::npos) << alert;
  }
}

TEST(PrometheusPackaging, TheAlertsFireOnTheirScenariosAndStayQuietOnAHealthyCluster) {
  REQUIRE_PROMTOOL(tool);
  // promtool resolves the test file's rule_files relative to the working directory.
  const fs::path previous = fs::current_path();
  fs::current_path(prometheus_dir());
  auto tested = tools::run_tool({*tool, "test", "rules", "alerts_test.yml"});
  fs::current_path(previous);
  EXPECT_EQ(tested.exit_code, 0) << tested.output;
  EXPECT_NE(tested.output.find("SUCCESS"), std::string::npos) << tested.output;
}

Json load_dashboard() {
  std::ifstream in(dashboard_path());
  return Json::parse(in, nullptr, false);
}

// Every PromQL expression of the dashboard's panels and template variables.
std::vector<std::string> dashboard_queries(const Json& dashboard) {
  std::vector<std::string> out;
  for (const Json& panel : dashboard["panels"]) {
    if (!panel.contains("targets")) continue;
    for (const Json& target : panel["targets"]) out.push_back(target["expr"].get<std::string>());
  }
  return out;
}

TEST(GrafanaDashboard, IsAnImportableDashboardWithUniquePanels) {
  const Json dashboard = load_dashboard();
  ASSERT_FALSE(dashboard.is_discarded()) << "packaging/grafana/raftlock.json is not valid JSON";
  EXPECT_EQ(dashboard["title"], "raftlock");
  EXPECT_EQ(dashboard["uid"], "raftlock");
  EXPECT_TRUE(dashboard["id"].is_null()) << "an exported dashboard carries no database id";
  ASSERT_TRUE(dashboard.contains("__inputs"));
  EXPECT_EQ(dashboard["__inputs"][0]["pluginId"], "prometheus");
  std::set<int> ids;
  for (const Json& panel : dashboard["panels"]) {
    EXPECT_TRUE(ids.insert(panel["id"].get<int>()).second) << "duplicate panel id " << panel["id"];
    EXPECT_TRUE(panel.contains("gridPos")) << panel["title"];
    if (panel["type"] == "row") continue;
    EXPECT_EQ(panel["datasource"]["uid"], "${DS_PROMETHEUS}") << panel["title"];
    ASSERT_TRUE(panel.contains("targets")) << panel["title"];
    EXPECT_FALSE(panel["targets"].empty()) << panel["title"];
  }
}

TEST(GrafanaDashboard, QueriesWhatTheIssueAsksFor) {
  const Json dashboard = load_dashboard();
  ASSERT_FALSE(dashboard.is_discarded());
  std::set<std::string> queried;
  for (const std::string& expr : dashboard_queries(dashboard)) {
    for (const std::string& name : tools::promql_metric_names(expr)) queried.insert(name);
  }
  for (const char* name :
       {"raftlock_raft_is_leader", "raftlock_raft_term", "raftlock_raft_elections_started_total",
        "raftlock_raft_leader_changes_total", "raftlock_raft_commit_latency_seconds_bucket",
        "raftlock_http_requests_total", "raftlock_http_request_duration_seconds_bucket",
        "raftlock_locks_held", "raftlock_lock_waiters", "raftlock_lease_expirations_total",
        "raftlock_raft_persist_duration_seconds_bucket"}) {
    EXPECT_TRUE(queried.count(name)) << "the dashboard does not query " << name;
  }
  // p50 and p99 of commit latency.
  const std::string all = dashboard.dump();
  EXPECT_NE(all.find("histogram_quantile(0.5, sum by (le, instance) "
                     "(rate(raftlock_raft_commit_latency_seconds_bucket"),
            std::string::npos);
  EXPECT_NE(all.find("histogram_quantile(0.99, sum by (le, instance) "
                     "(rate(raftlock_raft_commit_latency_seconds_bucket"),
            std::string::npos);
}

TEST(GrafanaDashboard, EveryQueryIsValidPromQL) {
  REQUIRE_PROMTOOL(tool);
  const Json dashboard = load_dashboard();
  ASSERT_FALSE(dashboard.is_discarded());
  // promtool parses the expressions of a rule file: wrap each query in a recording rule, with
  // Grafana's template variable replaced by what it expands to.
  std::string rules = "groups:\n  - name: dashboard\n    rules:\n";
  int n = 0;
  for (std::string expr : dashboard_queries(dashboard)) {
    for (size_t at = expr.find("$job"); at != std::string::npos; at = expr.find("$job", at)) {
      expr.replace(at, 4, ".*");
    }
    rules += "      - record: dashboard:query" + std::to_string(n++) +
             "\n        expr: " + Json(expr).dump() + "\n";
  }
  ASSERT_GT(n, 20);
  char path[] = "/tmp/raftlock-dashboard-rules-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << rules;
  auto checked = tools::run_tool({*tool, "check", "rules", path});
  ::unlink(path);
  EXPECT_EQ(checked.exit_code, 0) << checked.output << "\n" << rules;
}

TEST(PromqlMetricNames, ExtractsMetricsNotFunctionsLabelsOrDurations) {
  using Names = std::set<std::string>;
  EXPECT_EQ(tools::promql_metric_names(
                "histogram_quantile(0.99, sum by (le, route) "
                "(rate(raftlock_http_request_duration_seconds_bucket{job=~\"$job\"}[1m])))"),
            Names{"raftlock_http_request_duration_seconds_bucket"});
  EXPECT_EQ(tools::promql_metric_names("max(raftlock_locks_held) - min without (instance) "
                                       "(raftlock_lock_waiters{code=~\"[45]..\"} offset 5m)"),
            (Names{"raftlock_locks_held", "raftlock_lock_waiters"}));
  EXPECT_EQ(tools::promql_metric_names("raftlock_a / on (instance) group_left (peer) raftlock_b"),
            (Names{"raftlock_a", "raftlock_b"}));
}

}  // namespace
}  // namespace raftlock::metrics
