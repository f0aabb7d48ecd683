// Snapshot scenarios (6.824 3D): compaction, InstallSnapshot to lagging or crashed followers,
// unreliable networks, and whole-cluster crashes that restart from snapshots.
#include <gtest/gtest.h>

#include <string>

#include "tests/sim/sim_test_support.h"

namespace raftlock::sim {
namespace {

using testing::cluster_options;

constexpr size_t kSnapshotInterval = 9;

ClusterOptions snapshot_options(uint64_t seed) {
  ClusterOptions options = cluster_options(3, seed);
  options.snapshot_every = kSnapshotInterval;
  return options;
}

uint64_t ten_timeouts(const Cluster& cluster) {
  return 10 * cluster.election_timeout_ms();
}

NodeId next_node(const Cluster& cluster, NodeId id, size_t steps = 1) {
  const auto ids = cluster.node_ids();
  size_t pos = 0;
  while (ids[pos] != id) ++pos;
  return ids[(pos + steps) % ids.size()];
}

void expect_same_state_machines(const Cluster& cluster) {
  const auto ids = cluster.node_ids();
  for (NodeId id : ids) {
    const auto& a = cluster.state_machine(ids.front());
    const auto& b = cluster.state_machine(id);
    if (a.applied_index() == b.applied_index()) {
      EXPECT_EQ(a.commands(), b.commands()) << "nodes " << ids.front() << " and " << id;
    }
  }
}

TEST(SimSnapshot, SnapshotBasic) {
  Cluster cluster(snapshot_options(71));
  for (int i = 0; i < 40; ++i) {
    ASSERT_NE(cluster.agree("sb" + std::to_string(i), 3, ten_timeouts(cluster)), 0u) << i;
  }
  cluster.run_for(cluster.options().tick_ms * 3);
  for (NodeId id : cluster.node_ids()) {
    const auto& state = cluster.store(id).state();
    ASSERT_TRUE(state.snapshot.has_value()) << "node " << id << " never compacted";
    EXPECT_GE(state.snapshot->meta.index, 30u);
    EXPECT_LE(state.entries.size(), 2 * kSnapshotInterval) << "log not bounded on node " << id;
    EXPECT_EQ(cluster.core(id)->status().first_index, state.snapshot->meta.index + 1);
  }
  expect_same_state_machines(cluster);
  EXPECT_SAFE(cluster);
}

// 6.824's snapcommon: a victim misses many entries while the leader compacts past them.
void snapshot_install(uint64_t seed, bool disconnect, bool reliable, bool crash) {
  ClusterOptions options = snapshot_options(seed);
  if (!reliable) options.faults = NetworkFaults::unreliable();
  Cluster cluster(options);
  const uint64_t timeout = ten_timeouts(cluster);
  SimRandom random(seed);
  ASSERT_NE(cluster.agree("first", 3, timeout), 0u);
  NodeId leader = *cluster.current_leader();
  uint64_t next = 0;
  for (int iteration = 0; iteration < 20; ++iteration) {
    const NodeId victim = next_node(cluster, leader, 1 + iteration % 2);
    if (disconnect) cluster.disconnect(victim);
    if (crash) cluster.crash(victim);
    ASSERT_NE(cluster.agree("x" + std::to_string(next++), 2, timeout), 0u);
    const uint64_t count = kSnapshotInterval / 2 + random.below(kSnapshotInterval);
    if (auto current = cluster.current_leader()) {
      for (uint64_t i = 0; i < count; ++i)
        (void)cluster.propose(*current, "y" + std::to_string(next++));
    }
    ASSERT_NE(cluster.agree("z" + std::to_string(next++), 2, timeout), 0u);
    if (disconnect) cluster.reconnect(victim);
    if (crash) cluster.restart(victim);
    ASSERT_NE(cluster.agree("w" + std::to_string(next++), 3, timeout), 0u)
        << "iteration " << iteration;
    leader = *cluster.current_leader();
  }
  uint64_t installed = 0;
  for (NodeId id : cluster.node_ids()) installed += cluster.snapshots_installed(id);
  EXPECT_GT(cluster.stats().of(raft::MessageType::kSnapshot), 0u);
  EXPECT_GT(installed, 0u) << "no follower ever caught up through InstallSnapshot";
  std::printf("snapshot messages %llu, snapshots installed %llu\n",
              static_cast<unsigned long long>(cluster.stats().of(raft::MessageType::kSnapshot)),
              static_cast<unsigned long long>(installed));
  cluster.set_faults(NetworkFaults::reliable());
  ASSERT_TRUE(cluster.run_until(
      [&] {
        const Index applied = cluster.state_machine(leader).applied_index();
        return cluster.applied_count(applied) == 3;
      },
      timeout));
  expect_same_state_machines(cluster);
  EXPECT_SAFE(cluster);
}

TEST(SimSnapshot, InstallSnapshot) {
  snapshot_install(72, true, true, false);
}
TEST(SimSnapshot, InstallSnapshotUnreliable) {
  snapshot_install(73, true, false, false);
}
TEST(SimSnapshot, InstallSnapshotCrash) {
  snapshot_install(74, false, true, true);
}
TEST(SimSnapshot, InstallSnapshotUnreliableCrash) {
  snapshot_install(75, false, false, true);
}

TEST(SimSnapshot, AllNodesCrash) {
  Cluster cluster(snapshot_options(76));
  const uint64_t timeout = ten_timeouts(cluster);
  SimRandom random(76);
  ASSERT_NE(cluster.agree("first", 3, timeout), 0u);
  uint64_t next = 0;
  for (int iteration = 0; iteration < 5; ++iteration) {
    const uint64_t count = kSnapshotInterval / 2 + random.below(kSnapshotInterval);
    for (uint64_t i = 0; i < count; ++i) {
      ASSERT_NE(cluster.agree("c" + std::to_string(next++), 3, timeout), 0u);
    }
    const Index before = cluster.agree("before" + std::to_string(iteration), 3, timeout);
    ASSERT_NE(before, 0u);
    for (NodeId id : cluster.node_ids()) cluster.crash(id);
    for (NodeId id : cluster.node_ids()) {
      cluster.restart(id);
      // The state machine restarts from the persisted snapshot, then re-applies the log.
      const auto& state = cluster.store(id).state();
      if (state.snapshot) {
        EXPECT_GE(cluster.state_machine(id).applied_index(), state.snapshot->meta.index);
        EXPECT_TRUE(cluster.state_machine(id).has_command("first"));
      }
    }
    const Index after = cluster.agree("after" + std::to_string(iteration), 3, timeout);
    ASSERT_NE(after, 0u);
    EXPECT_GT(after, before);
  }
  for (NodeId id : cluster.node_ids()) {
    EXPECT_TRUE(cluster.store(id).state().snapshot.has_value());
    EXPECT_TRUE(cluster.state_machine(id).has_command("c0"));
  }
  expect_same_state_machines(cluster);
  EXPECT_SAFE(cluster);
}

TEST(SimSnapshot, SnapshotInitAfterRestart) {
  Cluster cluster(snapshot_options(77));
  const uint64_t timeout = ten_timeouts(cluster);
  for (size_t i = 0; i < kSnapshotInterval + 1; ++i) {
    ASSERT_NE(cluster.agree("i" + std::to_string(i), 3, timeout), 0u);
  }
  for (NodeId id : cluster.node_ids()) cluster.crash(id);
  for (NodeId id : cluster.node_ids()) cluster.restart(id);
  ASSERT_NE(cluster.agree("after-first-restart", 3, timeout), 0u);
  for (NodeId id : cluster.node_ids()) cluster.crash(id);
  for (NodeId id : cluster.node_ids()) cluster.restart(id);
  ASSERT_NE(cluster.agree("after-second-restart", 3, timeout), 0u);
  for (NodeId id : cluster.node_ids()) {
    EXPECT_TRUE(cluster.state_machine(id).has_command("i0"));
    EXPECT_TRUE(cluster.state_machine(id).has_command("after-first-restart"));
  }
  EXPECT_SAFE(cluster);
}

}  // namespace
}  // namespace raftlock::sim
