// lockbench's report (bench/lockbench/report.cpp): the side-by-side table and the targets'
// verdicts, for scenarios run once and for scenarios compare.sh repeats in rounds.
#include "bench/lockbench/report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace raftlock::bench {
namespace {

using nlohmann::json;

json run(const std::string& system, const std::string& scenario,
         const std::vector<std::pair<std::string, double>>& metrics, json errors = json::object()) {
  json doc{{"system", system}, {"scenario", scenario}, {"errors", std::move(errors)}};
  doc["metrics"] = json::array();
  for (const auto& [name, value] : metrics) {
    doc["metrics"].push_back(
        {{"name", name}, {"value", value}, {"unit", "ms"}, {"better", "lower"}});
  }
  return doc;
}

// Round i of raftlock and round i of etcd (compare.sh alternates which goes first); tagged with the
// round number (as compare.sh does) or not (as results of older lockbench runs). NaN: that run is
// missing (its cluster did not start).
std::vector<json> rounds_of(const std::string& scenario, const std::string& metric,
                            const std::vector<double>& mine, const std::vector<double>& theirs,
                            bool tagged) {
  std::vector<json> results;
  for (size_t i = 0; i < std::max(mine.size(), theirs.size()); ++i) {
    for (const auto& [system, values] : {std::pair{"raftlock", &mine}, {"etcd", &theirs}}) {
      if (i >= values->size() || std::isnan((*values)[i])) continue;
      json r = run(system, scenario, {{metric, (*values)[i]}});
      if (tagged) r["round"] = static_cast<int>(i) + 1;
      results.push_back(std::move(r));
    }
  }
  return results;
}

const json& target(const json& report, const std::string& scenario, const std::string& metric) {
  for (const json& t : report["targets"]) {
    if (t["scenario"] == scenario && t["metric"] == metric) return t;
  }
  static const json none;
  return none;
}

const json& row(const json& report, const std::string& scenario, const std::string& metric) {
  for (const json& r : report["rows"]) {
    if (r["scenario"] == scenario && r["metric"] == metric) return r;
  }
  static const json none;
  return none;
}

TEST(BenchReport, AScenarioRunOnceIsShownAsMeasured) {
  std::ostringstream out;
  const json report = build_report({run("raftlock", "single", {{"acquire_p50_ms", 0.7}}),
                                    run("etcd", "single", {{"acquire_p50_ms", 2.0}})},
                                   out);
  const json& r = row(report, "single", "acquire_p50_ms");
  EXPECT_DOUBLE_EQ(r["raftlock"].get<double>(), 0.7);
  EXPECT_DOUBLE_EQ(r["etcd"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(r["ratio"].get<double>(), 0.35);
  EXPECT_FALSE(r.contains("raftlock_runs"));
  const json& t = target(report, "single", "acquire_p50_ms");
  EXPECT_EQ(t["verdict"], "met");
  EXPECT_FALSE(t.contains("rounds"));
  EXPECT_EQ(out.str().find("rounds:"), std::string::npos);
}

TEST(BenchReport, RoundsAreShownByEachSystemsMedianAndEveryRoundsRatioIsListed) {
  // Three rounds, untagged (paired in order); one raftlock round is slow (1.2 ms: 0.6x).
  std::ostringstream out;
  const json report = build_report(
      rounds_of("single", "acquire_p50_ms", {0.7, 1.2, 0.6}, {2.0, 2.0, 1.5}, false), out);
  const json& r = row(report, "single", "acquire_p50_ms");
  EXPECT_DOUBLE_EQ(r["raftlock"].get<double>(), 0.7);  // median of 0.6, 0.7, 1.2
  EXPECT_DOUBLE_EQ(r["etcd"].get<double>(), 2.0);      // median of 1.5, 2.0, 2.0
  EXPECT_EQ(r["raftlock_runs"], json::array({0.7, 1.2, 0.6}));
  EXPECT_EQ(r["etcd_runs"], json::array({2.0, 2.0, 1.5}));
  const json& t = target(report, "single", "acquire_p50_ms");
  EXPECT_EQ(t["verdict"], "met");
  EXPECT_DOUBLE_EQ(t["ratio"].get<double>(), 0.35);
  ASSERT_EQ(t["rounds"].size(), 3u);
  EXPECT_DOUBLE_EQ(t["rounds"][0].get<double>(), 0.35);
  EXPECT_DOUBLE_EQ(t["rounds"][1].get<double>(), 0.6);  // the slow round is not hidden
  EXPECT_DOUBLE_EQ(t["rounds"][2].get<double>(), 0.4);
  EXPECT_NE(out.str().find("(rounds: 0.35 0.60 0.40)"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("median"), std::string::npos);
}

TEST(BenchReport, RoundsArePairedByTheirNumberWhenOneSystemMissedARound) {
  // etcd's round 2 did not start: raftlock's round 3 must meet etcd's round 3, not nothing, and
  // raftlock's round 2 has no ratio.
  std::ostringstream out;
  const json report = build_report(
      rounds_of("single", "acquire_p50_ms", {0.7, 0.8, 0.6}, {2.0, std::nan(""), 1.5}, true), out);
  const json& t = target(report, "single", "acquire_p50_ms");
  ASSERT_EQ(t["rounds"].size(), 2u);
  EXPECT_DOUBLE_EQ(t["rounds"][0].get<double>(), 0.35);
  EXPECT_DOUBLE_EQ(t["rounds"][1].get<double>(), 0.4);
  EXPECT_DOUBLE_EQ(row(report, "single", "acquire_p50_ms")["etcd"].get<double>(), 1.75);
}

TEST(BenchReport, TheFloorOfEachContendedRoundIsSetAgainstBothSystems) {
  // Three contended rounds of both systems and floor_bench's run after each (round-tagged, as
  // compare.sh writes them). The floor changes the table and the verdict in nothing.
  std::vector<json> results =
      rounds_of("contended", "handoffs_per_s", {900, 600, 1000}, {150, 150, 160}, true);
  const std::vector<double> floors = {1500, 1000, 2000};
  for (size_t i = 0; i < floors.size(); ++i) {
    json f = run("floor", "contended", {{"handoffs_per_s", floors[i]}});
    f["round"] = static_cast<int>(i) + 1;
    results.push_back(std::move(f));
  }
  std::ostringstream out;
  const json report = build_report(results, out);
  const json& r = row(report, "contended", "handoffs_per_s");
  EXPECT_DOUBLE_EQ(r["raftlock"].get<double>(), 900);
  EXPECT_DOUBLE_EQ(r["etcd"].get<double>(), 150);
  EXPECT_DOUBLE_EQ(target(report, "contended", "handoffs_per_s")["ratio"].get<double>(), 6);
  ASSERT_TRUE(report.contains("floor")) << out.str();
  const json& f = report["floor"];
  EXPECT_DOUBLE_EQ(f["handoffs_per_s"].get<double>(), 1500);  // median of 1000, 1500, 2000
  EXPECT_DOUBLE_EQ(f["raftlock_share"].get<double>(), 0.6);   // 900 / 1500
  EXPECT_DOUBLE_EQ(f["etcd_share"].get<double>(), 0.1);       // 150 / 1500
  EXPECT_DOUBLE_EQ(f["floor_vs_etcd"].get<double>(), 10);
  // Round by round: raftlock 900/1500, 600/1000, 1000/2000; the floor 1500/150, 1000/150, 2000/160.
  EXPECT_EQ(f["raftlock_share_rounds"], json::array({0.6, 0.6, 0.5}));
  ASSERT_EQ(f["floor_vs_etcd_rounds"].size(), 3u);
  EXPECT_DOUBLE_EQ(f["floor_vs_etcd_rounds"][2].get<double>(), 12.5);
  EXPECT_NE(out.str().find("floor 1500 handoffs/s; etcd at 0.10 of it"), std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("raftlock at 0.60 of it (rounds: 0.60 0.60 0.50)"), std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("the floor is 10.0x etcd (rounds: 10.0 6.67 12.5)"), std::string::npos)
      << out.str();
}

TEST(BenchReport, WithoutAFloorRunThereIsNoFloor) {
  std::ostringstream out;
  const json report =
      build_report(rounds_of("contended", "handoffs_per_s", {900, 600}, {150, 150}, true), out);
  EXPECT_FALSE(report.contains("floor"));
  EXPECT_EQ(out.str().find("Floor"), std::string::npos);
}

TEST(BenchReport, AnEvenNumberOfRoundsTakesTheMeanOfTheMiddleTwo) {
  std::vector<json> results;
  for (double v : {1.0, 4.0, 2.0, 3.0}) {
    results.push_back(run("raftlock", "contended", {{"handoffs_per_s", v}}));
  }
  std::ostringstream out;
  const json report = build_report(results, out);
  EXPECT_DOUBLE_EQ(row(report, "contended", "handoffs_per_s")["raftlock"].get<double>(), 2.5);
}

TEST(BenchReport, AFailedMeasurementInOneRoundIsNotOutvoted) {
  // -1 marks a measurement that failed; two good rounds must not hide it behind a median.
  std::ostringstream out;
  const json report = build_report(
      rounds_of("failover", "time_to_acquire_ms", {200, -1, 210}, {1000, 1000, 1000}, true), out);
  EXPECT_DOUBLE_EQ(row(report, "failover", "time_to_acquire_ms")["raftlock"].get<double>(), -1);
  EXPECT_EQ(target(report, "failover", "time_to_acquire_ms")["verdict"], "NOT met");
}

TEST(BenchReport, ErrorsOfEveryRoundAreAddedUp) {
  std::vector<json> results = {
      run("raftlock", "multi", {{"cycles_per_s", 5000}}, json::object({{"acquire_failed", 2}})),
      run("raftlock", "multi", {{"cycles_per_s", 5100}}, json::object({{"acquire_failed", 0}})),
      run("raftlock", "multi", {{"cycles_per_s", 4900}}, json::object({{"acquire_failed", 3}}))};
  results[1]["failures"] = {{"acquire 503", {{"count", 4}, {"sample", "node shutting down"}}}};
  results[2]["failures"] = {{"acquire 503", {{"count", 1}, {"sample", "another sample"}}}};
  std::ostringstream out;
  const json report = build_report(results, out);
  const json& details = report["details"]["multi"]["raftlock"];
  EXPECT_EQ(details["errors"]["acquire_failed"], 5);
  EXPECT_EQ(details["failures"]["acquire 503"]["count"], 5);
  EXPECT_EQ(details["failures"]["acquire 503"]["sample"], "node shutting down");
  EXPECT_EQ(details["runs"], 3);
  EXPECT_NE(out.str().find("acquire_failed=5"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace raftlock::bench
