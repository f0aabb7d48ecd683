// Log agreement scenarios (6.824 2B): agreement, failures, rejoin, fast backup, message budgets.
#include <gtest/gtest.h>

#include <string>

#include "tests/sim/sim_test_support.h"

namespace raftlock::sim {
namespace {

using testing::all_except;
using testing::cluster_options;
using testing::wait_for_leader;

uint64_t ten_timeouts(const Cluster& cluster) {
  return 10 * cluster.election_timeout_ms();
}

NodeId next_node(const Cluster& cluster, NodeId id, size_t steps = 1) {
  const auto ids = cluster.node_ids();
  size_t pos = 0;
  while (ids[pos] != id) ++pos;
  return ids[(pos + steps) % ids.size()];
}

TEST(SimAgreement, BasicAgreement) {
  Cluster cluster(cluster_options(3, 41));
  ASSERT_TRUE(wait_for_leader(cluster));
  Index previous = 0;
  for (int i = 1; i <= 3; ++i) {
    // Nothing is applied at the next index before the command is proposed.
    const Index next = cluster.max_commit_index() + 1;
    EXPECT_EQ(cluster.applied_count(next), 0u);
    const Index index = cluster.agree("basic" + std::to_string(i), 3, ten_timeouts(cluster));
    ASSERT_NE(index, 0u) << "agreement " << i << " failed";
    if (previous != 0) {
      EXPECT_EQ(index, previous + 1) << "a stable leader appends consecutively";
    }
    previous = index;
    for (NodeId id : cluster.node_ids()) {
      EXPECT_TRUE(cluster.state_machine(id).has_command("basic" + std::to_string(i)));
    }
  }
  EXPECT_SAFE(cluster);
}

TEST(SimAgreement, AgreementDespiteAFailedFollower) {
  Cluster cluster(cluster_options(3, 42));
  ASSERT_NE(cluster.agree("101", 3, ten_timeouts(cluster)), 0u);
  const NodeId leader = *cluster.current_leader();
  const NodeId follower = next_node(cluster, leader);
  cluster.disconnect(follower);
  // The leader and the remaining follower keep agreeing.
  for (const char* command : {"102", "103", "104", "105"}) {
    ASSERT_NE(cluster.agree(command, 2, ten_timeouts(cluster)), 0u) << command;
  }
  EXPECT_FALSE(cluster.state_machine(follower).has_command("102"));
  cluster.reconnect(follower);
  // The follower catches up and takes part again.
  ASSERT_NE(cluster.agree("106", 3, ten_timeouts(cluster)), 0u);
  ASSERT_NE(cluster.agree("107", 3, ten_timeouts(cluster)), 0u);
  EXPECT_TRUE(cluster.state_machine(follower).has_command("104"));
  EXPECT_SAFE(cluster);
}

TEST(SimAgreement, NoAgreementWithoutAMajority) {
  Cluster cluster(cluster_options(5, 43));
  ASSERT_NE(cluster.agree("10", 5, ten_timeouts(cluster)), 0u);
  const NodeId leader = *cluster.current_leader();
  for (size_t k = 1; k <= 3; ++k) cluster.disconnect(next_node(cluster, leader, k));
  auto proposed = cluster.propose(leader, "20");
  ASSERT_TRUE(proposed.ok());
  cluster.run_for(2 * cluster.election_timeout_ms());
  EXPECT_FALSE(cluster.committed_at(proposed->index).has_value()) << "committed without a majority";
  EXPECT_EQ(cluster.applied_count(proposed->index), 0u);
  for (size_t k = 1; k <= 3; ++k) cluster.reconnect(next_node(cluster, leader, k));
  // The cluster recovers (the leader may change) and agrees again.
  ASSERT_NE(cluster.agree("30", 5, ten_timeouts(cluster)), 0u);
  ASSERT_NE(cluster.agree("1000", 5, ten_timeouts(cluster)), 0u);
  EXPECT_SAFE(cluster);
}

TEST(SimAgreement, ConcurrentProposals) {
  Cluster cluster(cluster_options(3, 44));
  ASSERT_NE(cluster.agree("warmup", 3, ten_timeouts(cluster)), 0u);
  const NodeId leader = *cluster.current_leader();
  const Term term = cluster.core(leader)->term();
  std::vector<raft::EntryId> ids;
  for (int i = 0; i < 5; ++i) {
    auto proposed = cluster.propose(leader, "concurrent" + std::to_string(i));
    ASSERT_TRUE(proposed.ok());
    EXPECT_EQ(proposed->term, term);
    ids.push_back(*proposed);
  }
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_EQ(ids[i].index, ids[i - 1].index + 1);
  ASSERT_TRUE(cluster.run_until([&] { return cluster.applied_count(ids.back().index) == 3; },
                                cluster.election_timeout_ms()));
  for (NodeId id : cluster.node_ids()) {
    for (int i = 0; i < 5; ++i) {
      EXPECT_TRUE(cluster.state_machine(id).has_command("concurrent" + std::to_string(i)));
    }
  }
  EXPECT_EQ(cluster.core(leader)->term(), term);
  EXPECT_SAFE(cluster);
}

TEST(SimAgreement, RejoinOfAPartitionedLeader) {
  Cluster cluster(cluster_options(3, 45));
  ASSERT_NE(cluster.agree("101", 3, ten_timeouts(cluster)), 0u);
  const NodeId leader1 = *cluster.current_leader();
  cluster.disconnect(leader1);
  // The old leader accepts proposals it can never commit.
  std::vector<raft::EntryId> orphaned;
  for (const char* command : {"102", "103", "104"}) {
    auto proposed = cluster.propose(leader1, command);
    ASSERT_TRUE(proposed.ok());
    orphaned.push_back(*proposed);
  }
  ASSERT_NE(cluster.agree("103", 2, ten_timeouts(cluster)), 0u);
  const NodeId leader2 = *cluster.current_leader();
  EXPECT_NE(leader2, leader1);
  cluster.disconnect(leader2);
  cluster.reconnect(leader1);
  ASSERT_NE(cluster.agree("104", 2, ten_timeouts(cluster)), 0u);
  cluster.reconnect(leader2);
  ASSERT_NE(cluster.agree("105", 3, ten_timeouts(cluster)), 0u);
  for (const auto& id : orphaned) {
    auto committed = cluster.committed_at(id.index);
    ASSERT_TRUE(committed.has_value());
    EXPECT_NE(committed->first, id.term) << "an entry of the deposed leader's term was committed";
  }
  for (NodeId id : cluster.node_ids()) {
    EXPECT_FALSE(cluster.state_machine(id).has_command("102"));
  }
  EXPECT_SAFE(cluster);
}

TEST(SimAgreement, BackupOverFiftyConflictingEntriesIsFast) {
  Cluster cluster(cluster_options(5, 46));
  const uint64_t timeout = ten_timeouts(cluster);
  ASSERT_NE(cluster.agree("start", 5, timeout), 0u);
  const NodeId leader1 = *cluster.current_leader();
  const NodeId follower1 = next_node(cluster, leader1);
  const std::vector<NodeId> group_a{leader1, follower1};
  const std::vector<NodeId> group_b = all_except(cluster, group_a);

  // Leader 1 and one follower get 50 entries that can never commit.
  cluster.partition({group_a, group_b});
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(cluster.propose(leader1, "a" + std::to_string(i)).ok());
  cluster.run_for(cluster.election_timeout_ms() / 2);

  // The other three commit 50 entries.
  for (int i = 0; i < 50; ++i) ASSERT_NE(cluster.agree("b" + std::to_string(i), 3, timeout), 0u);
  const NodeId leader2 = *testing::leader_among(cluster, group_b);
  NodeId other = raft::kNoNode;
  NodeId third = raft::kNoNode;
  for (NodeId id : group_b) {
    if (id == leader2) continue;
    (other == raft::kNoNode ? other : third) = id;
  }
  // Leader 2 and one follower get 50 more uncommittable entries.
  cluster.partition({group_a, {leader2, third}, {other}});
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(cluster.propose(leader2, "c" + std::to_string(i)).ok());
  cluster.run_for(cluster.election_timeout_ms() / 2);

  // The original pair comes back with `other`: it must overwrite 50 conflicting entries on each.
  cluster.partition({{leader1, follower1, other}, {leader2, third}});
  cluster.reset_stats();
  for (int i = 0; i < 50; ++i) ASSERT_NE(cluster.agree("d" + std::to_string(i), 3, timeout), 0u);
  const uint64_t rejects_first = cluster.stats().append_rejects;

  // Everyone: leader 2 and its follower overwrite their 50 conflicting entries too.
  cluster.heal_network();
  cluster.reset_stats();
  ASSERT_NE(cluster.agree("final", 5, timeout), 0u);
  const uint64_t rejects_second = cluster.stats().append_rejects;
  std::printf("append rejections while backing up over 50 conflicting entries: %llu, %llu\n",
              static_cast<unsigned long long>(rejects_first),
              static_cast<unsigned long long>(rejects_second));
  // Backtracking by term needs a few rejections per lagging follower, not one per entry.
  EXPECT_LE(rejects_first, 6u);
  EXPECT_LE(rejects_second, 6u);
  for (NodeId id : cluster.node_ids()) {
    EXPECT_TRUE(cluster.state_machine(id).has_command("d49"));
    EXPECT_FALSE(cluster.state_machine(id).has_command("a0"));
    EXPECT_FALSE(cluster.state_machine(id).has_command("c0"));
  }
  EXPECT_SAFE(cluster);
}

TEST(SimAgreement, MessageBudgets) {
  Cluster cluster(cluster_options(3, 47));
  const uint64_t followers = 2;
  ASSERT_TRUE(wait_for_leader(cluster));
  EXPECT_GE(cluster.stats().sent, 1u);
  EXPECT_LE(cluster.stats().sent, 30u) << "too many messages to elect a leader";
  cluster.run_for(cluster.election_timeout_ms());

  // Agreement: per command at most an append and a commit round to each follower.
  constexpr uint64_t kCommands = 10;
  cluster.reset_stats();
  const uint64_t started = cluster.now_ms();
  for (uint64_t i = 0; i < kCommands; ++i) {
    ASSERT_NE(cluster.agree("count" + std::to_string(i), 3, ten_timeouts(cluster)), 0u);
  }
  const MessageStats& stats = cluster.stats();
  const uint64_t heartbeat_messages =
      stats.of(raft::MessageType::kHeartbeat) + stats.of(raft::MessageType::kHeartbeatResponse);
  const uint64_t intervals = (cluster.now_ms() - started) / cluster.options().tick_ms + 1;
  std::printf("%llu agreements: %llu messages (%llu heartbeat messages)\n",
              static_cast<unsigned long long>(kCommands),
              static_cast<unsigned long long>(stats.sent),
              static_cast<unsigned long long>(heartbeat_messages));
  EXPECT_LE(stats.sent - heartbeat_messages, 4 * followers * kCommands);
  EXPECT_LE(heartbeat_messages, 2 * followers * intervals);

  // Idle: one heartbeat and one response per follower per heartbeat interval.
  cluster.reset_stats();
  cluster.run_for(10 * cluster.options().tick_ms);
  std::printf("idle for 10 heartbeat intervals: %llu messages\n",
              static_cast<unsigned long long>(cluster.stats().sent));
  EXPECT_LE(cluster.stats().sent, 2 * followers * 11);
  EXPECT_GE(cluster.stats().of(raft::MessageType::kHeartbeat), followers * 9);
  EXPECT_SAFE(cluster);
}

}  // namespace
}  // namespace raftlock::sim
