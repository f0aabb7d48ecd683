// The chaos suite in CI: seeded rounds of every workload on 3- and 5-node clusters of real
// raftlockd processes, every nemesis kind at least once across the tests. RAFTLOCK_CHAOS_SEED
// overrides every test's seed (the fault schedule is a function of the seed).
#include <gtest/gtest.h>

#include <iostream>

#include "checkers.h"
#include "round.h"

namespace raftlock::chaos {
namespace {

using namespace std::chrono_literals;
using F = FaultKind;

RoundResult run_case(RoundConfig config) {
  config.seed = seed_from_env(config.seed);
  std::cout << "chaos: " << workload_name(config.workload) << " on " << config.nodes
            << " nodes, seed " << config.seed << " (RAFTLOCK_CHAOS_SEED=" << config.seed
            << " re-runs it)" << std::endl;
  RoundResult result = run_round(config);
  std::cout << describe_round(config, result) << std::flush;
  EXPECT_TRUE(result.ok) << "anomaly with seed " << config.seed << "; report kept in "
                         << result.report_dir;
  for (FaultKind kind : config.faults) {
    EXPECT_GE(result.faults[fault_name(kind)], 1u) << fault_name(kind) << " was never injected";
  }
  EXPECT_GT(result.ops_ok, 50u) << "the workload made almost no progress";
  return result;
}

RoundConfig make(WorkloadKind workload, int nodes, uint64_t seed, std::vector<FaultKind> faults,
                 std::chrono::milliseconds duration) {
  RoundConfig config;
  config.workload = workload;
  config.nodes = nodes;
  config.seed = seed;
  config.faults = std::move(faults);
  config.duration = duration;
  return config;
}

TEST(ChaosLinearizable, ThreeNodesKillsPausesPartitionsSlowLinks) {
  auto result = run_case(
      make(WorkloadKind::kLinearizable, 3, 11,
           {F::kKill, F::kPause, F::kPartitionMajority, F::kIsolateLeader, F::kSlowLinks}, 28s));
  EXPECT_GT(result.grants, 0u);
}

TEST(ChaosLinearizable, FiveNodesLeaderKillsOneWayFlappingLongPauses) {
  auto result = run_case(make(WorkloadKind::kLinearizable, 5, 12,
                              {F::kKillLeader, F::kOneWay, F::kFlapping, F::kPauseLong}, 28s));
  EXPECT_GT(result.grants, 0u);
}

// The recorded history is what the checker judges: accepted as recorded, refused once a single
// read is made to report a token the lock never had.
TEST(ChaosLinearizable, TheCheckerRefusesTheRecordedHistoryWithOneReadFalsified) {
  RoundResult result = run_case(make(WorkloadKind::kLinearizable, 3, 13, {}, 8s));
  ASSERT_TRUE(result.ok);
  History falsified = result.history;
  Operation* read = nullptr;
  for (auto& op : falsified.operations) {
    if (op.kind == OpKind::kLockRead && op.status == OpStatus::kOk && op.holder) read = &op;
  }
  ASSERT_NE(read, nullptr) << "no read saw a holder";
  read->holder->fencing_token += 1000000;
  const Verdict verdict = check_linearizable(falsified, std::chrono::seconds(30));
  EXPECT_FALSE(verdict.ok);
  EXPECT_FALSE(verdict.anomalies.empty());
}

TEST(ChaosFencing, ThreeNodesLongPausesLeaderKillsIsolationOneWay) {
  run_case(make(WorkloadKind::kFencing, 3, 21,
                {F::kPauseLong, F::kKillLeader, F::kIsolateLeader, F::kOneWay}, 25s));
}

TEST(ChaosFencing, FiveNodesPartitionsFlappingPausesRestartAll) {
  run_case(make(WorkloadKind::kFencing, 5, 22,
                {F::kPartitionMajority, F::kFlapping, F::kPause, F::kRestartAll}, 25s));
}

TEST(ChaosElections, ThreeNodesLeaderKillsLongPausesPartitionsRestartAll) {
  run_case(make(WorkloadKind::kElections, 3, 31,
                {F::kKillLeader, F::kPauseLong, F::kPartitionMajority, F::kRestartAll}, 25s));
}

TEST(ChaosElections, FiveNodesIsolationSlowLinksKillsOneWay) {
  run_case(make(WorkloadKind::kElections, 5, 32,
                {F::kIsolateLeader, F::kSlowLinks, F::kKill, F::kOneWay}, 25s));
}

TEST(ChaosDurability, ThreeNodesKillsPartitionsRestartAllSlowLinks) {
  run_case(make(WorkloadKind::kDurability, 3, 41,
                {F::kKill, F::kPartitionMajority, F::kRestartAll, F::kSlowLinks}, 18s));
}

TEST(ChaosDurability, FiveNodesPausesLeaderKillsFlapping) {
  run_case(make(WorkloadKind::kDurability, 5, 42, {F::kPause, F::kKillLeader, F::kFlapping}, 18s));
}

}  // namespace
}  // namespace raftlock::chaos
