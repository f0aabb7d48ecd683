// Leader election scenarios (6.824 2A) plus pre-vote, check-quorum and leadership transfer.
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/sim/sim_test_support.h"

namespace raftlock::sim {
namespace {

using testing::all_except;
using testing::cluster_options;
using testing::leader_among;
using testing::wait_for_leader;

NodeId some_follower(Cluster& cluster, NodeId leader) {
  for (NodeId id : cluster.node_ids()) {
    if (id != leader && cluster.is_up(id)) return id;
  }
  return raft::kNoNode;
}

TEST(SimElection, InitialElection) {
  Cluster cluster(cluster_options(3, 11));
  const auto leader = wait_for_leader(cluster);
  ASSERT_TRUE(leader.has_value()) << "no leader within 10 election timeouts";
  const Term term = cluster.core(*leader)->term();
  EXPECT_GE(term, 1u);
  // Every node learns who leads.
  EXPECT_TRUE(cluster.run_until(
      [&] {
        for (NodeId id : cluster.node_ids()) {
          if (cluster.core(id)->leader_id() != *leader) return false;
        }
        return true;
      },
      cluster.election_timeout_ms()));
  // A healthy cluster has no further elections.
  cluster.run_for(4 * cluster.election_timeout_ms());
  EXPECT_EQ(cluster.core(*leader)->term(), term);
  EXPECT_EQ(cluster.leaders(), std::vector<NodeId>{*leader});
  EXPECT_EQ(cluster.max_term(), term);
  EXPECT_SAFE(cluster);
}

TEST(SimElection, ReElection) {
  Cluster cluster(cluster_options(3, 12));
  const uint64_t timeout = cluster.election_timeout_ms();
  const auto leader1 = wait_for_leader(cluster);
  ASSERT_TRUE(leader1);

  // The leader disconnects: the other two elect a new one.
  cluster.disconnect(*leader1);
  const auto leader2 = wait_for_leader(cluster, all_except(cluster, {*leader1}));
  ASSERT_TRUE(leader2);
  EXPECT_NE(*leader2, *leader1);

  // The old leader rejoins: it must not disturb the new leader, and there is one leader.
  cluster.reconnect(*leader1);
  cluster.run_for(2 * timeout);
  const auto leader3 = wait_for_leader(cluster);
  ASSERT_TRUE(leader3);
  EXPECT_EQ(cluster.leaders(), std::vector<NodeId>{*leader3});

  // No quorum: no leader.
  const NodeId other = some_follower(cluster, *leader3);
  cluster.disconnect(*leader3);
  cluster.disconnect(other);
  cluster.run_for(3 * timeout);
  EXPECT_TRUE(cluster.leaders().empty()) << "a leader without a quorum";

  // A quorum comes back: a leader is elected.
  cluster.reconnect(other);
  ASSERT_TRUE(wait_for_leader(cluster, all_except(cluster, {*leader3})));
  // Everyone back: still one leader.
  cluster.reconnect(*leader3);
  cluster.run_for(2 * timeout);
  ASSERT_TRUE(wait_for_leader(cluster));
  EXPECT_EQ(cluster.leaders().size(), 1u);
  EXPECT_SAFE(cluster);
}

TEST(SimElection, ManyElectionsSevenNodes) {
  Cluster cluster(cluster_options(7, 13));
  ASSERT_TRUE(wait_for_leader(cluster));
  SimRandom random(1313);
  for (int iteration = 0; iteration < 12; ++iteration) {
    std::vector<NodeId> ids = cluster.node_ids();
    std::vector<NodeId> cut;
    while (cut.size() < 3) {
      const NodeId id = ids[random.below(ids.size())];
      if (std::find(cut.begin(), cut.end(), id) == cut.end()) cut.push_back(id);
    }
    for (NodeId id : cut) cluster.disconnect(id);
    // Four connected nodes are a quorum of seven: they must have (or elect) a leader.
    ASSERT_TRUE(wait_for_leader(cluster, all_except(cluster, cut))) << "iteration " << iteration;
    for (NodeId id : cut) cluster.reconnect(id);
  }
  ASSERT_TRUE(wait_for_leader(cluster));
  EXPECT_GE(cluster.leader_history().size(), 2u) << "the test should have forced re-elections";
  EXPECT_SAFE(cluster);
}

TEST(SimElection, PreVoteKeepsARejoiningPartitionedNodeFromBumpingTheTerm) {
  for (bool pre_vote : {true, false}) {
    SCOPED_TRACE(pre_vote ? "pre-vote on" : "pre-vote off (control)");
    ClusterOptions options = cluster_options(3, 21);
    options.pre_vote = pre_vote;
    Cluster cluster(options);
    const auto leader = wait_for_leader(cluster);
    ASSERT_TRUE(leader);
    ASSERT_NE(cluster.agree("before", 3, 10 * cluster.election_timeout_ms()), 0u);
    const Term term = cluster.core(*leader)->term();
    const NodeId isolated = some_follower(cluster, *leader);
    cluster.disconnect(isolated);
    bool became_candidate = false;
    cluster.run_until(
        [&] {
          became_candidate |= cluster.core(isolated)->role() == raft::Role::kCandidate;
          return false;
        },
        10 * cluster.election_timeout_ms());
    const Term isolated_term = cluster.core(isolated)->term();
    cluster.reconnect(isolated);
    cluster.run_for(3 * cluster.election_timeout_ms());
    if (pre_vote) {
      EXPECT_EQ(isolated_term, term) << "the isolated node bumped its term";
      EXPECT_FALSE(became_candidate);
      EXPECT_EQ(cluster.core(*leader)->term(), term) << "the rejoining node disrupted the leader";
      EXPECT_EQ(cluster.leaders(), std::vector<NodeId>{*leader});
    } else {
      // Without pre-vote the same partition makes the node campaign and inflate its term.
      EXPECT_GT(isolated_term, term);
      EXPECT_TRUE(became_candidate);
    }
    EXPECT_SAFE(cluster);
  }
}

TEST(SimElection, CheckQuorumDeposesAnIsolatedLeader) {
  for (bool check_quorum : {true, false}) {
    SCOPED_TRACE(check_quorum ? "check-quorum on" : "check-quorum off (control)");
    ClusterOptions options = cluster_options(3, 22);
    options.check_quorum = check_quorum;
    Cluster cluster(options);
    const uint64_t timeout = cluster.election_timeout_ms();
    const auto leader = wait_for_leader(cluster);
    ASSERT_TRUE(leader);
    cluster.disconnect(*leader);
    const uint64_t isolated_at = cluster.now_ms();
    const bool stepped_down = cluster.run_until(
        [&] { return cluster.core(*leader)->role() != raft::Role::kLeader; }, 5 * timeout);
    if (check_quorum) {
      ASSERT_TRUE(stepped_down) << "isolated leader kept leading";
      // It notices within two election timeouts (one full check-quorum period after isolation).
      EXPECT_LE(cluster.now_ms() - isolated_at, 2 * timeout + options.tick_ms);
      EXPECT_TRUE(wait_for_leader(cluster, all_except(cluster, {*leader})));
    } else {
      EXPECT_FALSE(stepped_down) << "without check-quorum nothing tells it to step down";
    }
    EXPECT_SAFE(cluster);
  }
}

TEST(SimElection, LeadershipTransfer) {
  Cluster cluster(cluster_options(3, 31));
  const uint64_t timeout = cluster.election_timeout_ms();
  ASSERT_NE(cluster.agree("t0", 3, 10 * timeout), 0u);
  const NodeId leader = *cluster.current_leader();
  const Term term = cluster.core(leader)->term();
  const NodeId target = some_follower(cluster, leader);

  ASSERT_TRUE(cluster.transfer_leadership(leader, target).ok());
  const uint64_t started = cluster.now_ms();
  ASSERT_TRUE(cluster.run_until([&] { return cluster.current_leader() == target; }, timeout));
  // TimeoutNow skips the election timeout: far quicker than any timeout-driven election.
  EXPECT_LT(cluster.now_ms() - started, cluster.options().tick_ms);
  EXPECT_EQ(cluster.core(target)->term(), term + 1);
  ASSERT_NE(cluster.agree("t1", 3, 10 * timeout), 0u);

  // Transfer to a lagging follower: the leader catches it up first and refuses proposals meanwhile.
  const NodeId lagging = some_follower(cluster, target);
  cluster.disconnect(lagging);
  for (int i = 0; i < 5; ++i) {
    ASSERT_NE(cluster.agree("lag" + std::to_string(i), 2, 10 * timeout), 0u);
  }
  cluster.reconnect(lagging);
  ASSERT_TRUE(cluster.transfer_leadership(target, lagging).ok());
  EXPECT_EQ(cluster.core(target)->status().transferee, lagging);
  auto refused = cluster.propose(target, "during-transfer");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kBusy);
  ASSERT_TRUE(cluster.run_until([&] { return cluster.current_leader() == lagging; }, timeout));
  EXPECT_TRUE(cluster.state_machine(lagging).has_command("lag4"));
  ASSERT_NE(cluster.agree("t2", 3, 10 * timeout), 0u);
  EXPECT_SAFE(cluster);
}

}  // namespace
}  // namespace raftlock::sim
