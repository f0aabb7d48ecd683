// raft::Node snapshot policy: local snapshots compact the log, a restarted node restores from its
// snapshot and re-applies the suffix, a lagging follower installs the leader's snapshot.
#include <gtest/gtest.h>

#include "tests/runtime/runtime_harness.h"

namespace raftlock::raft::runtime_testing {
namespace {

constexpr uint64_t kSnapshotEvery = 5;

TEST(NodeSnapshot, SnapshotsEveryNAppliedEntriesAndCompactsTheLog) {
  ClusterConfig config;
  config.nodes = 1;
  config.snapshot_every = kSnapshotEvery;
  InProcessCluster cluster(config);
  cluster.start_all();
  ASSERT_TRUE(cluster.wait_for_leader().has_value());
  for (int i = 0; i < 12; ++i) {
    auto proposal = cluster.node(1).propose("s" + std::to_string(i));
    ASSERT_TRUE(await(proposal).ok());
  }
  ASSERT_TRUE(InProcessCluster::wait_until([&] {
    const auto state = cluster.store(1).state();
    return state.snapshot && state.snapshot->meta.index >= 2 * kSnapshotEvery;
  })) << "no snapshot covering 2*N applied entries";
  const auto state = cluster.store(1).state();
  const Index snapshot_index = state.snapshot->meta.index;
  // Compacted: the log starts right after the snapshot.
  if (!state.entries.empty()) {
    EXPECT_EQ(state.entries.front().index, snapshot_index + 1);
  }
  EXPECT_TRUE(InProcessCluster::wait_until(
      [&] { return cluster.node(1).status().core.first_index >= snapshot_index + 1; }));
  // The snapshot holds the state machine's state at that index.
  RecordingStateMachine from_snapshot(1);
  ASSERT_TRUE(from_snapshot.restore(*state.snapshot->data).ok());
  for (const auto& [index, command] : from_snapshot.applied()) {
    EXPECT_LE(index, snapshot_index);
    EXPECT_EQ(cluster.machine(1).command_at(index), command);
  }
  EXPECT_GE(from_snapshot.applied().size(), 2 * kSnapshotEvery - 2);
}

TEST(NodeSnapshot, RestartedNodeRestoresItsSnapshotAndReappliesTheSuffix) {
  ClusterConfig config;
  config.nodes = 1;
  config.snapshot_every = kSnapshotEvery;
  InProcessCluster cluster(config);
  cluster.start_all();
  ASSERT_TRUE(cluster.wait_for_leader().has_value());
  for (int i = 0; i < 13; ++i) {
    auto proposal = cluster.node(1).propose("r" + std::to_string(i));
    ASSERT_TRUE(await(proposal).ok());
  }
  const auto before = cluster.machine(1).applied();
  cluster.stop(1);
  const auto stored = cluster.store(1).state();
  ASSERT_TRUE(stored.snapshot.has_value());
  ASSERT_FALSE(stored.entries.empty()) << "want a suffix after the snapshot to re-apply";
  ASSERT_LT(stored.snapshot->meta.index, before.back().first);

  cluster.start(1);  // new Node, fresh state machine, same store
  EXPECT_EQ(cluster.machine(1).restores(), 1u);
  ASSERT_TRUE(InProcessCluster::wait_until(
      [&] { return cluster.machine(1).last_command_index() >= before.back().first; }));
  EXPECT_EQ(cluster.machine(1).applied(), before);
  // And it keeps working.
  auto proposal = cluster.node(1).propose("after-restart");
  ASSERT_TRUE(await(proposal).ok());
}

TEST(NodeSnapshot, LaggingFollowerInstallsTheLeadersSnapshot) {
  ClusterConfig config;
  config.snapshot_every = kSnapshotEvery;
  InProcessCluster cluster(config);
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const NodeId lagging = cluster.others(*leader).front();
  cluster.isolate(lagging);
  for (int i = 0; i < 4 * static_cast<int>(kSnapshotEvery); ++i) {
    auto proposal = cluster.node(*leader).propose("l" + std::to_string(i));
    ASSERT_TRUE(await(proposal).ok());
  }
  ASSERT_TRUE(InProcessCluster::wait_until([&] {
    const auto state = cluster.store(*leader).state();
    return state.snapshot && state.snapshot->meta.index > kSnapshotEvery + 2;
  }));
  EXPECT_EQ(cluster.machine(lagging).restores(), 0u);
  const Index lagging_applied = cluster.machine(lagging).last_command_index();

  cluster.heal();
  const Index leader_last = cluster.machine(*leader).last_command_index();
  ASSERT_TRUE(InProcessCluster::wait_until(
      [&] { return cluster.machine(lagging).last_command_index() >= leader_last; }));
  EXPECT_GE(cluster.machine(lagging).restores(), 1u) << "caught up without the leader's snapshot";
  const auto state = cluster.store(lagging).state();
  ASSERT_TRUE(state.snapshot.has_value());
  EXPECT_GT(state.snapshot->meta.index, lagging_applied);
  // Same state as the leader, entry for entry.
  const auto leader_applied = cluster.machine(*leader).applied();
  auto follower_applied = cluster.machine(lagging).applied();
  follower_applied.resize(std::min(follower_applied.size(), leader_applied.size()));
  EXPECT_EQ(follower_applied, leader_applied);
}

}  // namespace
}  // namespace raftlock::raft::runtime_testing
