// bench/floor_bench: the machine's floor for a contended handoff. It runs its chain, writes one
// result line lockbench report reads, cleans up after itself, and refuses bad arguments.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>

#include "bench/lockbench/report.h"
#include "tests/support/loopback_socket.h"

namespace {

using nlohmann::json;

struct Outcome {
  int exit_code = -1;
  std::string output;
};

Outcome floor_bench(const std::string& args) {
  const std::string command = FLOOR_BENCH_PATH " " + args + " 2>&1";
  Outcome result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

class FloorBench : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("floor_bench_test." + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // Three consecutive free ports, from 32000-32767: below the kernel's ephemeral range (32768+),
  // so no test's outgoing connection takes one between this check and floor_bench's bind, and
  // above the integration clusters' ports (20000-31999) and the benchmark's (27000-27400).
  static int free_base() {
    for (int i = 0; i < 255; ++i) {
      const int base = 32000 + ((::getpid() + i) % 255) * 3;
      const raftlock::testing::LoopbackSocket a(1, base), b(1, base + 1), c(1, base + 2);
      if (a.ok() && b.ok() && c.ok()) return base;
    }
    return 0;
  }
  static std::string ports() { return std::to_string(free_base()); }
  std::filesystem::path dir_;
};

TEST_F(FloorBench, ItsResultLineIsOneLockbenchReportReads) {
  const std::string results = (dir_ / "results.jsonl").string();
  const Outcome run = floor_bench("--duration 0.3 --no-disk --port-base " + ports() + " --dir " +
                                  dir_.string() + " --results " + results + " --round 2");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("floor without the disk: "), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("mean write"), std::string::npos) << "no writes, no write line";
  std::ifstream in(results);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const json doc = json::parse(line);
  EXPECT_EQ(doc["system"], "floor");
  EXPECT_EQ(doc["scenario"], "contended");
  EXPECT_EQ(doc["round"], 2);
  ASSERT_EQ(doc["metrics"].size(), 1u);
  EXPECT_EQ(doc["metrics"][0]["name"], "handoffs_per_s");
  const double rate = doc["metrics"][0]["value"].get<double>();
  EXPECT_GT(rate, 0);
  EXPECT_FALSE(std::getline(in, line)) << "one line per run";

  json raftlock{{"system", "raftlock"}, {"scenario", "contended"}, {"round", 2}};
  raftlock["metrics"] = json::array(
      {{{"name", "handoffs_per_s"}, {"value", rate / 2}, {"unit", "1/s"}, {"better", "higher"}}});
  std::ostringstream out;
  const json report = raftlock::bench::build_report({raftlock, doc}, out);
  ASSERT_TRUE(report.contains("floor")) << out.str();
  EXPECT_DOUBLE_EQ(report["floor"]["raftlock_share"].get<double>(), 0.5);
}

TEST_F(FloorBench, WithTheDiskItWritesAndLeavesNoFileBehind) {
  const Outcome run =
      floor_bench("--duration 0.3 --port-base " + ports() + " --dir " + dir_.string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.output.rfind("floor: ", 0), 0u) << run.output;
  EXPECT_NE(run.output.find(" handoffs/s ("), std::string::npos) << run.output;
  EXPECT_TRUE(std::filesystem::is_empty(dir_)) << "its log files are removed";
  // Each node's own mean write, and the handoff beyond it. Every handoff waits for the leader's
  // write, so a handoff takes at least the leader's mean write.
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(run.output, m,
                        std::regex("floor: mean write per node ([0-9.]+)/([0-9.]+)/([0-9.]+) "
                                   "ms \\(leader first\\); ([0-9.]+) ms per handoff, "
                                   "(-?[0-9.]+) beyond the mean write\n")))
      << run.output;
  const double leader = std::stod(m[1]), follower1 = std::stod(m[2]), follower2 = std::stod(m[3]);
  const double per_handoff = std::stod(m[4]), beyond = std::stod(m[5]);
  EXPECT_GT(leader, 0);
  EXPECT_GT(follower1, 0);
  EXPECT_GT(follower2, 0);
  EXPECT_GE(per_handoff, leader);
  EXPECT_NEAR(beyond, per_handoff - (leader + follower1 + follower2) / 3, 0.002);
}

TEST_F(FloorBench, APortInUseFailsTheRunWithNoResult) {
  // Someone listens on the second follower's port (base + 2): that node cannot start, and the run
  // must not report a figure measured without it. The other two ports are free.
  const int base = free_base();
  ASSERT_GT(base, 0) << "no three free ports in 32000-32767";
  raftlock::testing::LoopbackSocket taken(16, base + 2);
  ASSERT_TRUE(taken.ok());
  ASSERT_EQ(taken.port(), base + 2);
  const std::string results = (dir_ / "results.jsonl").string();
  const Outcome run = floor_bench("--duration 0.3 --port-base " + std::to_string(base) + " --dir " +
                                  dir_.string() + " --results " + results);
  taken.close();
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("cannot listen on " + taken.address()), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("no result"), std::string::npos) << run.output;
  EXPECT_FALSE(std::filesystem::exists(results)) << "nothing written for a failed run";
}

TEST_F(FloorBench, RefusesWhatItDoesNotKnow) {
  for (const char* args : {"--bogus", "--duration 0", "--duration", "--round 0 --results x"}) {
    const Outcome run = floor_bench(args);
    EXPECT_EQ(run.exit_code, 2) << args;
    EXPECT_NE(run.output.find("usage: floor_bench"), std::string::npos) << args;
  }
}

}  // namespace
