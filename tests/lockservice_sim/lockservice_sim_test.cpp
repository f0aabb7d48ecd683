// The lock service on the cluster simulator under random faults. RAFTLOCK_SIM_SEEDS=N runs N
// seeds, RAFTLOCK_SIM_SEED=S reruns exactly seed S, RAFTLOCK_SIM_SEED_BASE=B shifts the range,
// RAFTLOCK_SIM_TRACE=1 prints every simulator event.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <optional>

#include "tests/lockservice_sim/lockservice_run.h"

namespace raftlock::lockservice::sim_testing {
namespace {

constexpr int kShards = 4;
constexpr uint64_t kDefaultSeeds = 400;

std::optional<uint64_t> env_number(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::strtoull(value, nullptr, 10);
}

class LockServiceSim : public ::testing::TestWithParam<int> {};

TEST_P(LockServiceSim, SeededChaosRunsKeepTheLockServiceGuarantees) {
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
  HistoryStats total;
  uint64_t applies = 0, restores = 0, accepted = 0, crashes = 0;
  int failures = 0;
  for (uint64_t seed : seeds) {
    LockRunOptions options;
    options.seed = seed;
    options.trace = trace;
    const LockRunResult result = run_lockservice_random(options);
    applies += result.applies_checked;
    restores += result.restores_checked;
    accepted += result.proposals_accepted;
    crashes += result.crashes;
    total.commands += result.history.commands;
    total.grants += result.history.grants;
    total.grants_to_waiters += result.history.grants_to_waiters;
    total.lease_ends += result.history.lease_ends;
    total.lock_delays += result.history.lock_delays;
    total.leaders += result.history.leaders;
    total.leaders_from_queue += result.history.leaders_from_queue;
    total.queued += result.history.queued;
    if (!result.ok) {
      ADD_FAILURE() << "seed " << seed << " (" << result.nodes << " nodes): " << result.failure
                    << "\n  reproduce: RAFTLOCK_SIM_SEED=" << seed
                    << " test_lockservice_sim --gtest_filter='Shards/LockServiceSim.*/0'"
                    << "\n  with a full event trace: add RAFTLOCK_SIM_TRACE=1";
      if (++failures >= 5) break;
    }
  }
  std::printf(
      "shard %d: %zu seeds, %llu proposals accepted, %llu commands in the history, %llu applies "
      "and %llu restores checked, %llu crashes; %llu grants (%llu to waiters), %llu queued, %llu "
      "lease ends, %llu lock-delays, %llu election leaders (%llu from the queue)\n",
      shard, seeds.size(), static_cast<unsigned long long>(accepted),
      static_cast<unsigned long long>(total.commands), static_cast<unsigned long long>(applies),
      static_cast<unsigned long long>(restores), static_cast<unsigned long long>(crashes),
      static_cast<unsigned long long>(total.grants),
      static_cast<unsigned long long>(total.grants_to_waiters),
      static_cast<unsigned long long>(total.queued),
      static_cast<unsigned long long>(total.lease_ends),
      static_cast<unsigned long long>(total.lock_delays),
      static_cast<unsigned long long>(total.leaders),
      static_cast<unsigned long long>(total.leaders_from_queue));
  if (seeds.size() >= 20 && failures == 0) {
    // The workload must have exercised what the checks are about, not idled.
    EXPECT_GE(total.commands, 10 * seeds.size());
    EXPECT_GT(total.grants_to_waiters, 0u);
    EXPECT_GT(total.lease_ends, 0u);
    EXPECT_GT(total.lock_delays, 0u);
    EXPECT_GT(total.leaders_from_queue, 0u);
    EXPECT_GT(restores, seeds.size());
  }
}

INSTANTIATE_TEST_SUITE_P(Shards, LockServiceSim, ::testing::Range(0, kShards));

TEST(LockServiceSimDeterminism, SameSeedReproducesTheSameRun) {
  for (uint64_t seed : {5ull, 77ull}) {
    LockRunOptions options;
    options.seed = seed;
    const LockRunResult first = run_lockservice_random(options);
    const LockRunResult second = run_lockservice_random(options);
    EXPECT_TRUE(first.ok) << first.failure;
    EXPECT_EQ(first.applies_checked, second.applies_checked);
    EXPECT_EQ(first.final_index, second.final_index);
    EXPECT_EQ(first.history.commands, second.history.commands);
    EXPECT_EQ(first.history.grants, second.history.grants);
  }
}

// A LockStateMachine on one node that silently ignores releases: its state drifts from the others.
class ForgetfulMachine final : public raft::StateMachine, public LockMachineHolder {
 public:
  std::any apply(raft::Index index, std::string_view command) override {
    auto decoded = decode_command(command);
    if (decoded.ok() && std::holds_alternative<Release>(*decoded)) {
      CommandResult result;
      result.outcome = Outcome::kOk;
      return result;
    }
    return inner_.apply(index, command);
  }
  std::string snapshot() const override { return inner_.snapshot(); }
  Status restore(std::string_view data) override { return inner_.restore(data); }
  const LockStateMachine& lock_machine() const override { return inner_; }

 private:
  LockStateMachine inner_;
};

TEST(LockServiceSimChecker, CatchesANodeWhoseStateMachineDiverges) {
  for (uint64_t seed : {1ull, 2ull, 3ull}) {
    LockRunOptions options;
    options.seed = seed;
    options.make_state_machine = [](raft::NodeId id) -> std::unique_ptr<raft::StateMachine> {
      if (id == 2) return std::make_unique<ForgetfulMachine>();
      return std::make_unique<LockStateMachine>();
    };
    const LockRunResult result = run_lockservice_random(options);
    EXPECT_FALSE(result.ok) << "seed " << seed << ": a node that ignores releases went unnoticed";
    // Caught either as a divergence between nodes or, when the broken node applied an entry
    // first, as a history that breaks the lock guarantees.
    EXPECT_TRUE(result.failure.find("differs") != std::string::npos ||
                result.failure.find("history") != std::string::npos)
        << result.failure;
  }
}

}  // namespace
}  // namespace raftlock::lockservice::sim_testing
