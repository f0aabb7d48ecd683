// Node::propose_as_leader: commands a leader decides from its own clock (lease expiry) are
// appended only by the leader of the term that decided them, never forwarded.
#include <gtest/gtest.h>

#include "tests/runtime/runtime_harness.h"

namespace raftlock::raft::runtime_testing {
namespace {

TEST(NodeProposeAsLeader, TheLeaderOfThatTermAppliesIt) {
  InProcessCluster cluster({});
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const Term term = cluster.node(*leader).status().core.term;
  auto future = cluster.node(*leader).propose_as_leader("expire-1", term);
  const Result<std::any> answer = await(future);
  ASSERT_TRUE(answer.ok()) << answer.error().message;
  EXPECT_EQ(result_string(answer).rfind("n" + std::to_string(*leader) + ":expire-1@", 0), 0u);
}

TEST(NodeProposeAsLeader, AFollowerRefusesItAndDoesNotForwardIt) {
  InProcessCluster cluster({});
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const NodeId follower = cluster.others(*leader).front();
  const Term term = cluster.node(*leader).status().core.term;
  auto future = cluster.node(follower).propose_as_leader("expire-2", term);
  const Result<std::any> answer = await(future);
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.error().code, ErrorCode::kNotLeader);
  EXPECT_EQ(cluster.forwards(), 0u);  // a plain propose() from the follower would be forwarded
}

TEST(NodeProposeAsLeader, TheLeaderRefusesACommandDecidedInAnotherTerm) {
  InProcessCluster cluster({});
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const Term term = cluster.node(*leader).status().core.term;
  auto future = cluster.node(*leader).propose_as_leader("expire-3", term - 1);
  const Result<std::any> answer = await(future);
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.error().code, ErrorCode::kNotLeader);
}

}  // namespace
}  // namespace raftlock::raft::runtime_testing
