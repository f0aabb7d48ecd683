// Linearizable reads through ReadIndex: never stale across partitions or leader changes.
#include <gtest/gtest.h>

#include <set>

#include "tests/sim/sim_test_support.h"

namespace raftlock::sim {
namespace {

using testing::all_except;
using testing::cluster_options;
using testing::leader_among;
using testing::wait_for_leader;

TEST(SimReadIndex, ReadsAtLeaderAndFollowerSeeEveryAcknowledgedWrite) {
  Cluster cluster(cluster_options(3, 81));
  const uint64_t timeout = 10 * cluster.election_timeout_ms();
  const Index write = cluster.agree("w1", 3, timeout);
  ASSERT_NE(write, 0u);
  const NodeId leader = *cluster.current_leader();
  NodeId follower = all_except(cluster, {leader}).front();
  for (NodeId at : {leader, follower}) {
    const uint64_t read = cluster.start_read(at);
    ASSERT_NE(read, 0u);
    ASSERT_TRUE(cluster.run_until([&] { return cluster.read(read).served; }, timeout));
    EXPECT_GE(cluster.read(read).read_index, write);
    EXPECT_TRUE(cluster.state_machine(at).has_command("w1"));
  }
  EXPECT_SAFE(cluster);
}

// The old leader, cut off in a minority, must not serve reads: the majority may have moved on.
TEST(SimReadIndex, DeposedLeaderInMinorityNeverServesStaleReads) {
  for (bool check_quorum : {false, true}) {
    SCOPED_TRACE(check_quorum ? "check-quorum on" : "check-quorum off");
    ClusterOptions options = cluster_options(5, 82);
    options.check_quorum = check_quorum;
    Cluster cluster(options);
    const uint64_t timeout = 10 * cluster.election_timeout_ms();
    ASSERT_NE(cluster.agree("w1", 5, timeout), 0u);
    const NodeId old_leader = *cluster.current_leader();
    const NodeId buddy = all_except(cluster, {old_leader}).front();
    const std::vector<NodeId> minority{old_leader, buddy};
    const std::vector<NodeId> majority = all_except(cluster, minority);
    cluster.partition({minority, majority});

    // A read that starts before anything changed still cannot be confirmed by a quorum.
    const uint64_t early_read = cluster.start_read(old_leader);
    ASSERT_NE(early_read, 0u);
    // The majority elects a leader and acknowledges a write.
    ASSERT_TRUE(wait_for_leader(cluster, majority));
    const Index write = cluster.agree("w2", 3, timeout);
    ASSERT_NE(write, 0u);
    // A read that starts after the write was acknowledged, at the old leader (if it still
    // believes it leads) and at its follower.
    std::vector<uint64_t> minority_reads{early_read};
    for (NodeId at : minority) {
      if (const uint64_t read = cluster.start_read(at)) minority_reads.push_back(read);
    }
    cluster.run_for(3 * cluster.election_timeout_ms());
    for (uint64_t read : minority_reads) {
      EXPECT_FALSE(cluster.read(read).served) << "read " << read << " served by a minority";
    }
    // The majority serves fresh reads.
    const NodeId new_leader = *leader_among(cluster, majority);
    for (NodeId at : majority) {
      const uint64_t read = cluster.start_read(at);
      ASSERT_NE(read, 0u);
      ASSERT_TRUE(cluster.run_until([&] { return cluster.read(read).served; }, timeout));
      EXPECT_GE(cluster.read(read).read_index, write);
      EXPECT_TRUE(cluster.state_machine(at).has_command("w2"));
    }
    EXPECT_NE(new_leader, old_leader);
    // After healing, reads at the old leader see w2 (the checker verifies any late answer).
    cluster.heal_network();
    ASSERT_TRUE(cluster.run_until(
        [&] { return cluster.current_leader() && cluster.applied_count(write) == 5; }, timeout));
    const uint64_t healed_read = cluster.start_read(old_leader);
    ASSERT_NE(healed_read, 0u);
    ASSERT_TRUE(cluster.run_until([&] { return cluster.read(healed_read).served; }, timeout));
    EXPECT_GE(cluster.read(healed_read).read_index, write);
    EXPECT_SAFE(cluster);
  }
}

TEST(SimReadIndex, ReadsUnderAnUnreliableNetworkAreNeverStale) {
  ClusterOptions options = cluster_options(5, 83);
  options.faults = NetworkFaults::unreliable();
  Cluster cluster(options);
  const uint64_t timeout = 10 * cluster.election_timeout_ms();
  SimRandom random(83);
  uint64_t served = 0;
  std::vector<uint64_t> reads;
  std::set<NodeId> disconnected;
  for (int i = 0; i < 40 && cluster.ok(); ++i) {
    ASSERT_NE(cluster.agree("r" + std::to_string(i), 1, timeout), 0u);
    const auto ids = cluster.node_ids();
    if (random.below(4) == 0 && disconnected.size() < 2) {
      const NodeId id = ids[random.below(ids.size())];
      disconnected.insert(id);
      cluster.disconnect(id);
    }
    if (random.below(3) == 0 && !disconnected.empty()) {
      cluster.reconnect(*disconnected.begin());
      disconnected.erase(disconnected.begin());
    }
    for (NodeId at : ids) {
      if (const uint64_t read = cluster.start_read(at)) reads.push_back(read);
    }
    cluster.run_for(random.below(300));
  }
  for (uint64_t read : reads) served += cluster.read(read).served ? 1 : 0;
  EXPECT_GT(served, 20u) << "reads should mostly be served";
  EXPECT_SAFE(cluster);
}

}  // namespace
}  // namespace raftlock::sim
