// raft::Node lifecycle: stop() semantics, storage failures that stop the node, and the soft-state
// and configuration listeners.
#include <gtest/gtest.h>

#include "tests/runtime/runtime_harness.h"

namespace raftlock::raft::runtime_testing {
namespace {

TEST(NodeStop, FailsPendingRequestsWithUnavailableIsIdempotentAndRefusesLaterOnes) {
  ClusterConfig config;
  config.check_quorum = false;  // the isolated leader keeps leading: its requests stay pending
  InProcessCluster cluster(config);
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  cluster.isolate(*leader);
  Node& node = cluster.node(*leader);
  auto proposal = node.propose("never-committed");
  auto read = node.read_barrier();
  EXPECT_EQ(proposal.wait_for(50ms), std::future_status::timeout);
  EXPECT_EQ(read.wait_for(0ms), std::future_status::timeout);

  node.stop();
  ASSERT_EQ(proposal.wait_for(0ms), std::future_status::ready) << "stop() returned first";
  ASSERT_EQ(read.wait_for(0ms), std::future_status::ready);
  const Result<std::any> proposed = proposal.get();
  ASSERT_FALSE(proposed.ok());
  EXPECT_EQ(proposed.error().code, ErrorCode::kUnavailable);
  const Status read_status = read.get();
  ASSERT_FALSE(read_status.ok());
  EXPECT_EQ(read_status.error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(node.status().stopped);
  EXPECT_TRUE(node.status().stop_reason.empty()) << "a requested stop is not a failure";

  node.stop();  // idempotent
  auto late = node.propose("late");
  ASSERT_EQ(late.wait_for(0ms), std::future_status::ready) << "propose after stop must not wait";
  const Result<std::any> late_result = late.get();
  ASSERT_FALSE(late_result.ok());
  EXPECT_EQ(late_result.error().code, ErrorCode::kUnavailable);
  auto late_read = node.read_barrier();
  ASSERT_EQ(late_read.wait_for(0ms), std::future_status::ready);
  EXPECT_EQ(late_read.get().error().code, ErrorCode::kUnavailable);
  auto late_append = node.append("late");
  ASSERT_EQ(late_append.wait_for(0ms), std::future_status::ready);
  EXPECT_EQ(late_append.get().error().code, ErrorCode::kUnavailable);
}

TEST(NodeStorageFailure, PersistFailureStopsTheNodeAndFailsPendingProposals) {
  InProcessCluster cluster({});
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  auto ok = cluster.node(*leader).propose("before");
  ASSERT_TRUE(await(ok).ok());

  cluster.store(*leader).set_fail_persist(true);
  auto failed = cluster.node(*leader).propose("unpersisted");
  const Result<std::any> answer = await(failed);
  ASSERT_FALSE(answer.ok()) << "answered " << result_string(answer);
  EXPECT_EQ(answer.error().code, ErrorCode::kUnavailable);
  ASSERT_TRUE(InProcessCluster::wait_until([&] { return cluster.node(*leader).status().stopped; }));
  const NodeStatus status = cluster.node(*leader).status();
  EXPECT_NE(status.stop_reason.find("storage"), std::string::npos) << status.stop_reason;
  EXPECT_NE(status.stop_reason.find("injected persist failure"), std::string::npos)
      << status.stop_reason;
  // It did not go on without its storage: nothing more was written, nothing unpersisted applied.
  EXPECT_EQ(cluster.store(*leader).calls_after_failure(), 0u);
  EXPECT_FALSE(cluster.machine(*leader).has_command("unpersisted"));
  auto after = cluster.node(*leader).propose("after");
  ASSERT_EQ(after.wait_for(1s), std::future_status::ready);
  EXPECT_EQ(after.get().error().code, ErrorCode::kUnavailable);

  // The rest of the cluster carries on without it.
  const auto next = cluster.wait_for_leader(cluster.others(*leader));
  ASSERT_TRUE(next.has_value());
  auto proposal = cluster.node(*next).propose("carry-on");
  EXPECT_TRUE(await(proposal).ok());
}

TEST(NodeStorageFailure, CompactionFailureStopsTheNodeBeforeItSendsOrWritesAgain) {
  ClusterConfig config;
  config.snapshot_every = 4;
  InProcessCluster cluster(config);
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  // Count what the leader sends once its store has refused the compaction.
  std::atomic<size_t> sent_after_failure{0};
  FaultyStore& store = cluster.store(*leader);
  const NodeId leader_id = *leader;
  // Once the store failed, nothing reaches the leader either, so nothing but its own clock could
  // make it act again.
  cluster.set_drop_filter([&sent_after_failure, &store, leader_id](const Message& m) {
    if (!store.failed()) return false;
    if (m.from == leader_id) ++sent_after_failure;
    return m.to == leader_id;
  });
  store.set_fail_compact(true);
  for (int i = 0; i < 6; ++i) (void)cluster.node(*leader).propose("c" + std::to_string(i));
  ASSERT_TRUE(InProcessCluster::wait_until([&] { return cluster.node(*leader).status().stopped; }));
  EXPECT_NE(cluster.node(*leader).status().stop_reason.find("compact"), std::string::npos)
      << cluster.node(*leader).status().stop_reason;
  // Heartbeats go out every tick (10 ms): a node whose loop ticked on after the failure would send
  // some while the others elect a new leader. (Before the fix, the loop ran one more round after a
  // failed compaction; this saw it whenever that round was woken by the clock, not by a message.)
  const auto next = cluster.wait_for_leader(cluster.others(*leader));
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(sent_after_failure.load(), 0u);
  EXPECT_EQ(store.calls_after_failure(), 0u);
}

TEST(NodeListeners, SoftStateAndConfigListenersAreCalled) {
  InProcessCluster cluster({});
  std::mutex mu;
  std::map<NodeId, std::vector<SoftState>> soft_states;
  std::map<NodeId, std::vector<Configuration>> configs;
  cluster.soft_state_listener = [&](NodeId id, const SoftState& s) {
    std::lock_guard lock(mu);
    soft_states[id].push_back(s);
  };
  cluster.config_listener = [&](NodeId id, const Configuration& c) {
    std::lock_guard lock(mu);
    configs[id].push_back(c);
  };
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const Term term = cluster.node(*leader).status().core.term;
  {
    std::lock_guard lock(mu);
    for (NodeId id : cluster.ids()) {
      ASSERT_FALSE(soft_states[id].empty()) << "node " << id;
      const SoftState& last = soft_states[id].back();
      EXPECT_EQ(last.leader_id, *leader) << "node " << id;
      EXPECT_EQ(last.term, term) << "node " << id;
      EXPECT_EQ(last.role, id == *leader ? Role::kLeader : Role::kFollower) << "node " << id;
      // At start every node reports the founding configuration.
      ASSERT_FALSE(configs[id].empty()) << "node " << id;
      EXPECT_EQ(configs[id].front().voter_ids(), cluster.ids());
    }
  }

  auto added =
      cluster.node(*leader).change_membership(ConfChange{ConfChangeType::kAddLearner, 4, "x"});
  ASSERT_TRUE(await(added).ok());
  ASSERT_TRUE(InProcessCluster::wait_until([&] {
    std::lock_guard lock(mu);
    for (NodeId id : cluster.ids()) {
      if (configs[id].empty() || !configs[id].back().contains(4)) return false;
    }
    return true;
  })) << "not every node's config listener saw the learner";
  std::lock_guard lock(mu);
  for (NodeId id : cluster.ids()) {
    EXPECT_FALSE(configs[id].back().is_voter(4));
    EXPECT_EQ(configs[id].back().voter_ids(), cluster.ids());
  }
}

}  // namespace
}  // namespace raftlock::raft::runtime_testing
