// bench/compare.sh --plan: the order in which the comparison runs the two systems. The system
// that goes first alternates from one round to the next, across scenarios too, so neither
// system always runs right after a scenario change (the disk stays slower for a minute or two
// after a sustained fsync load). Each contended round also measures the machine's floor for a
// handoff (bench/floor_bench), after both systems.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace {

struct Plan {
  int exit_code = -1;
  std::vector<std::tuple<std::string, int, std::string>> runs;  // scenario, round, system
};

Plan plan(const std::string& args) {
  const std::string command = "bash " RAFTLOCK_COMPARE_SH " --plan " + args + " 2>/dev/null";
  Plan result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::string text;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) text.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::istringstream lines(text);
  std::string scenario, system;
  int round = 0;
  while (lines >> scenario >> round >> system) result.runs.emplace_back(scenario, round, system);
  return result;
}

// The runs of the two systems, without the floor's.
Plan systems_only(Plan p) {
  std::erase_if(p.runs, [](const auto& run) { return std::get<2>(run) == "floor"; });
  return p;
}

// The first system of each (scenario, round), in order.
std::vector<std::string> firsts(const Plan& p) {
  std::vector<std::string> out;
  std::string last_key;
  for (const auto& [scenario, round, system] : p.runs) {
    const std::string key = scenario + "-" + std::to_string(round);
    if (key != last_key) out.push_back(system);
    last_key = key;
  }
  return out;
}

TEST(ComparePlan, EveryRoundRunsBothSystemsAndTheFirstAlternates) {
  const Plan all = plan("");
  ASSERT_EQ(all.exit_code, 0);
  const Plan p = systems_only(all);
  // Four steady-load scenarios in 3 rounds, three run once: 15 rounds of 2 runs.
  ASSERT_EQ(p.runs.size(), 30u);
  std::map<std::string, int> rounds;
  for (size_t i = 0; i < p.runs.size(); i += 2) {
    const auto& [s1, r1, a] = p.runs[i];
    const auto& [s2, r2, b] = p.runs[i + 1];
    EXPECT_EQ(s1, s2);
    EXPECT_EQ(r1, r2);
    EXPECT_NE(a, b) << s1 << " round " << r1;
    rounds[s1] = std::max(rounds[s1], r1);
  }
  const std::map<std::string, int> expected{{"single", 3}, {"multi", 3},    {"contended", 3},
                                            {"leases", 1}, {"failover", 1}, {"reads", 3},
                                            {"memory", 1}};
  EXPECT_EQ(rounds, expected);
  const std::vector<std::string> first = firsts(p);
  ASSERT_EQ(first.size(), 15u);
  EXPECT_EQ(first.front(), "raftlock");
  for (size_t i = 1; i < first.size(); ++i) EXPECT_NE(first[i], first[i - 1]) << "round " << i;
}

TEST(ComparePlan, AlternationCarriesAcrossScenariosRunOnce) {
  const Plan p = plan("--quick --scenarios single,multi,contended");
  ASSERT_EQ(p.exit_code, 0);
  const std::vector<std::string> first = firsts(p);
  EXPECT_EQ(first, (std::vector<std::string>{"raftlock", "etcd", "raftlock"}));
  EXPECT_EQ(p.runs.size(), 7u);  // two per scenario, and the contended round's floor
}

TEST(ComparePlan, EachContendedRoundMeasuresTheFloorAfterBothSystems) {
  const Plan p = plan("--scenarios single,contended --repeat 2");
  ASSERT_EQ(p.exit_code, 0);
  using Run = std::tuple<std::string, int, std::string>;
  EXPECT_EQ(p.runs, (std::vector<Run>{{"single", 1, "raftlock"},
                                      {"single", 1, "etcd"},
                                      {"single", 2, "etcd"},
                                      {"single", 2, "raftlock"},
                                      {"contended", 1, "raftlock"},
                                      {"contended", 1, "etcd"},
                                      {"contended", 1, "floor"},
                                      {"contended", 2, "etcd"},
                                      {"contended", 2, "raftlock"},
                                      {"contended", 2, "floor"}}));
  // Left out of --systems, it does not run.
  const Plan without = plan("--scenarios contended --repeat 2 --systems raftlock,etcd");
  ASSERT_EQ(without.exit_code, 0);
  EXPECT_EQ(without.runs.size(), 4u);
  EXPECT_EQ(systems_only(without).runs, without.runs);
}

TEST(ComparePlan, OneSystemAloneKeepsItsRounds) {
  const Plan p = plan("--systems raftlock --scenarios single,leases --repeat 2");
  ASSERT_EQ(p.exit_code, 0);
  using Run = std::tuple<std::string, int, std::string>;
  EXPECT_EQ(p.runs,
            (std::vector<Run>{
                {"single", 1, "raftlock"}, {"single", 2, "raftlock"}, {"leases", 1, "raftlock"}}));
}

TEST(ComparePlan, RefusesZeroRounds) {
  const Plan p = plan("--repeat 0");
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_TRUE(p.runs.empty());
}

}  // namespace
