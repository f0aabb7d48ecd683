// Thousands of seeded chaos runs of the cluster simulator, sharded so ctest can run them in
// parallel. RAFTLOCK_SIM_SEEDS=N runs N seeds (soak), RAFTLOCK_SIM_SEED=S reruns exactly seed S,
// RAFTLOCK_SIM_SEED_BASE=B shifts the seed range, RAFTLOCK_SIM_TRACE=1 prints every event
// (add RAFTLOCK_SIM_TRACE_TICKS=1 for every tick too).
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "tests/sim/harness/simulator.h"
#include "tests/sim/sim_test_support.h"

namespace raftlock::sim {
namespace {

constexpr int kShards = 8;
constexpr uint64_t kDefaultSeeds = 2000;

std::optional<uint64_t> env_number(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::strtoull(value, nullptr, 10);
}

class RandomizedSim : public ::testing::TestWithParam<int> {};

TEST_P(RandomizedSim, SeededChaosRunsStaySafeAndLive) {
  const int shard = GetParam();
  std::vector<uint64_t> seeds;
  if (auto only = env_number("RAFTLOCK_SIM_SEED")) {
    if (shard == 0) seeds.push_back(*only);
  } else {
    const uint64_t total = env_number("RAFTLOCK_SIM_SEEDS").value_or(kDefaultSeeds);
    const uint64_t base = env_number("RAFTLOCK_SIM_SEED_BASE").value_or(1);
    for (uint64_t i = total * shard / kShards; i < total * (shard + 1) / kShards; ++i) {
      seeds.push_back(base + i);
    }
  }
  const bool trace = env_number("RAFTLOCK_SIM_TRACE").value_or(0) != 0;
  uint64_t committed = 0, accepted = 0, reads = 0, crashes = 0, events = 0, leaders = 0,
           installs = 0, spawned = 0;
  int failures = 0;
  for (uint64_t seed : seeds) {
    const RandomRunResult result = run_random(seed, trace);
    committed += result.entries_committed;
    accepted += result.proposals_accepted;
    reads += result.reads_served;
    crashes += result.crashes;
    events += result.events;
    leaders += result.leaders_elected;
    installs += result.snapshots_installed;
    spawned += result.nodes_spawned;
    if (!result.ok) {
      ADD_FAILURE() << "seed " << seed << " (" << result.nodes << " nodes): " << result.failure
                    << "\n  reproduce: RAFTLOCK_SIM_SEED=" << seed << " " << testing::self_path()
                    << " --gtest_filter='Shards/RandomizedSim.SeededChaosRunsStaySafeAndLive/0'"
                    << "\n  with a full event trace: add RAFTLOCK_SIM_TRACE=1";
      if (++failures >= 5) break;
    }
  }
  std::printf(
      "shard %d: %zu seeds, %llu events, %llu proposals accepted, %llu entries committed, "
      "%llu reads served, %llu crashes, %llu leaders, %llu snapshot installs, %llu "
      "learners spawned\n",
      shard, seeds.size(), static_cast<unsigned long long>(events),
      static_cast<unsigned long long>(accepted), static_cast<unsigned long long>(committed),
      static_cast<unsigned long long>(reads), static_cast<unsigned long long>(crashes),
      static_cast<unsigned long long>(leaders), static_cast<unsigned long long>(installs),
      static_cast<unsigned long long>(spawned));
  if (!seeds.empty() && failures == 0) {
    // The runs must have exercised the cluster, not idled.
    EXPECT_GE(committed, seeds.size());
    EXPECT_GE(accepted, seeds.size());
  }
}

INSTANTIATE_TEST_SUITE_P(Shards, RandomizedSim, ::testing::Range(0, kShards));

TEST(RandomizedSimDeterminism, SameSeedReproducesTheSameRun) {
  for (uint64_t seed : {3ull, 17ull, 123456789ull}) {
    const RandomRunResult first = run_random(seed);
    const RandomRunResult second = run_random(seed);
    EXPECT_EQ(first.trace_hash, second.trace_hash) << "seed " << seed;
    EXPECT_EQ(first.events, second.events) << "seed " << seed;
    EXPECT_EQ(first.entries_committed, second.entries_committed) << "seed " << seed;
    EXPECT_EQ(first.ok, second.ok) << "seed " << seed;
  }
  EXPECT_NE(run_random(3).trace_hash, run_random(4).trace_hash);
}

}  // namespace
}  // namespace raftlock::sim
