// Membership changes (learner add, promote, remove), also under an unreliable network and crashes.
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/sim/sim_test_support.h"

namespace raftlock::sim {
namespace {

using testing::all_except;
using testing::cluster_options;

using raft::ConfChange;
using raft::ConfChangeType;

// Proposes `change` at the current leader until the leader's applied configuration satisfies
// `done` (retrying through leader changes and lost proposals).
bool change_configuration(Cluster& cluster, const ConfChange& change,
                          const std::function<bool(const raft::Configuration&)>& done,
                          uint64_t timeout_ms) {
  const uint64_t deadline = cluster.now_ms() + timeout_ms;
  while (cluster.now_ms() < deadline && cluster.ok()) {
    if (auto leader = cluster.current_leader()) {
      if (done(cluster.state_machine(*leader).config())) return true;
      if (!done(cluster.core(*leader)->config())) {
        (void)cluster.propose_conf_change(*leader, change);
      }
    }
    cluster.run_for(100);
  }
  return false;
}

TEST(SimMembership, AddLearnerPromoteAndRemove) {
  ClusterOptions options = cluster_options(3, 91);
  options.snapshot_every = 7;  // the learner catches up through a snapshot
  Cluster cluster(options);
  const uint64_t timeout = 10 * cluster.election_timeout_ms();
  for (int i = 0; i < 20; ++i) ASSERT_NE(cluster.agree("m" + std::to_string(i), 3, timeout), 0u);

  const NodeId learner = cluster.spawn_node();
  ASSERT_TRUE(change_configuration(
      cluster, ConfChange{ConfChangeType::kAddLearner, learner, ""},
      [&](const raft::Configuration& c) { return c.contains(learner); }, timeout));
  const Index caught_up = cluster.agree("after-add", 4, timeout);
  ASSERT_NE(caught_up, 0u) << "the learner did not catch up";
  EXPECT_TRUE(cluster.state_machine(learner).has_command("m0"));
  EXPECT_FALSE(cluster.core(learner)->config().is_voter(learner));

  // A learner does not count towards the quorum.
  const NodeId leader = *cluster.current_leader();
  const auto others = all_except(cluster, {leader, learner});
  for (NodeId id : others) cluster.disconnect(id);
  auto proposed = cluster.propose(leader, "no-quorum");
  ASSERT_TRUE(proposed.ok());
  cluster.run_for(2 * cluster.election_timeout_ms());
  EXPECT_FALSE(cluster.committed_at(proposed->index).has_value());
  for (NodeId id : others) cluster.reconnect(id);
  ASSERT_NE(cluster.agree("quorum-back", 4, timeout), 0u);
  for (const auto& [term, id] : cluster.leader_history()) EXPECT_NE(id, learner);

  // Promote: four voters, quorum of three.
  ASSERT_TRUE(change_configuration(
      cluster, ConfChange{ConfChangeType::kPromote, learner, ""},
      [&](const raft::Configuration& c) { return c.is_voter(learner); }, timeout));
  ASSERT_NE(cluster.agree("after-promote", 4, timeout), 0u);
  EXPECT_EQ(cluster.core(*cluster.current_leader())->config().voter_ids().size(), 4u);

  // Remove the current leader: it steps down and leaves; the other three carry on.
  const NodeId removed = *cluster.current_leader();
  ASSERT_TRUE(change_configuration(
      cluster, ConfChange{ConfChangeType::kRemove, removed, ""},
      [&](const raft::Configuration& c) { return !c.contains(removed); }, timeout));
  ASSERT_TRUE(cluster.run_until([&] { return cluster.is_stopped(removed); }, timeout));
  ASSERT_NE(cluster.agree("after-remove", 3, timeout), 0u);
  const auto final_config = cluster.core(*cluster.current_leader())->config();
  EXPECT_EQ(final_config.voter_ids().size(), 3u);
  EXPECT_FALSE(final_config.contains(removed));
  EXPECT_TRUE(final_config.is_voter(learner));
  EXPECT_SAFE(cluster);
}

TEST(SimMembership, ChangesUnderAnUnreliableNetworkAndCrashes) {
  ClusterOptions options = cluster_options(3, 92);
  options.snapshot_every = 6;
  options.faults = NetworkFaults::unreliable();
  Cluster cluster(options);
  const uint64_t timeout = 20 * cluster.election_timeout_ms();
  for (int i = 0; i < 10; ++i) ASSERT_NE(cluster.agree("u" + std::to_string(i), 1, timeout), 0u);

  const NodeId learner = cluster.spawn_node();
  ASSERT_TRUE(change_configuration(
      cluster, ConfChange{ConfChangeType::kAddLearner, learner, ""},
      [&](const raft::Configuration& c) { return c.contains(learner); }, timeout));
  // The learner crashes while catching up and comes back.
  cluster.run_for(150);
  cluster.crash(learner);
  for (int i = 10; i < 20; ++i) ASSERT_NE(cluster.agree("u" + std::to_string(i), 1, timeout), 0u);
  cluster.restart(learner);
  ASSERT_TRUE(cluster.run_until([&] { return cluster.state_machine(learner).has_command("u19"); },
                                timeout));

  ASSERT_TRUE(change_configuration(
      cluster, ConfChange{ConfChangeType::kPromote, learner, ""},
      [&](const raft::Configuration& c) { return c.is_voter(learner); }, timeout));
  // A voter that is not the leader crashes, then is removed while down.
  const NodeId leader = *cluster.current_leader();
  NodeId victim = raft::kNoNode;
  for (NodeId id : cluster.node_ids()) {
    if (id != leader && id != learner) victim = id;
  }
  cluster.crash(victim);
  ASSERT_TRUE(change_configuration(
      cluster, ConfChange{ConfChangeType::kRemove, victim, ""},
      [&](const raft::Configuration& c) { return !c.contains(victim); }, timeout));
  cluster.set_faults(NetworkFaults::reliable());
  ASSERT_NE(cluster.agree("final", 3, timeout), 0u);
  const auto config = cluster.core(*cluster.current_leader())->config();
  EXPECT_EQ(config.voter_ids().size(), 3u);
  EXPECT_TRUE(config.is_voter(learner));
  EXPECT_FALSE(config.contains(victim));
  for (NodeId id : cluster.live_members(config)) {
    EXPECT_TRUE(cluster.state_machine(id).has_command("final"));
    EXPECT_TRUE(cluster.state_machine(id).has_command("u0"));
  }
  EXPECT_SAFE(cluster);
}

}  // namespace
}  // namespace raftlock::sim
