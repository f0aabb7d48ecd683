// raft::Node's idle spin (NodeOptions::idle_spin, raftlockd's --loop-spin-us): the loop polls for
// a while before it sleeps, so the next event is handled without a sleep and wake-up. These tests
// check the behaviour through the node's own counters: events are caught while polling when the
// spin is on, never when it is off, every proposal is still committed and applied in order on
// every node, and a node with nothing to do still goes to sleep. How soon an event comes after
// the loop goes idle depends on the scheduler, so no test counts on it coming within a short spin.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/runtime/runtime_harness.h"

namespace raftlock::raft::runtime_testing {
namespace {

constexpr int kProposals = 40;

// Proposes kProposals commands one after another on the leader (each waits for the previous
// one's answer) and checks that each was answered by its own entry, at an index above the
// previous one's, and that every node applied that command at that index.
void propose_in_sequence(InProcessCluster& cluster, NodeId leader) {
  std::vector<Index> indices;
  for (int i = 0; i < kProposals; ++i) {
    const std::string command = "seq-" + std::to_string(i);
    auto future = cluster.node(leader).propose(command);
    const Result<std::any> result = await(future);
    ASSERT_TRUE(result.ok()) << command << ": " << result.error().message;
    const auto index = own_result_index(result, leader, command);
    ASSERT_TRUE(index) << command << " answered with " << result_string(result);
    if (!indices.empty()) {
      EXPECT_GT(*index, indices.back()) << command;
    }
    indices.push_back(*index);
  }
  for (NodeId id : cluster.ids()) {
    ASSERT_TRUE(InProcessCluster::wait_until([&] {
      return cluster.machine(id).command_at(indices.back()).has_value();
    })) << "node "
        << id;
    for (int i = 0; i < kProposals; ++i) {
      EXPECT_EQ(cluster.machine(id).command_at(indices[i]), "seq-" + std::to_string(i))
          << "node " << id << " at index " << indices[i];
    }
  }
}

TEST(NodeIdleSpin, ALeaderThatSpinsUntilItsNextTimerCatchesTheNextEventWithoutSleeping) {
  ClusterConfig config;
  config.tick = 20ms;
  // Longer than a tick: an idle loop polls until its next timer is due (the spin never outlasts
  // it), so an event that comes while the loop waits is caught, however late the scheduler runs
  // the thread that sends it (a spin that ends sooner catches only what comes before its end: on
  // a loaded machine, under a sanitizer, that may be nothing).
  config.idle_spin = std::chrono::microseconds(1000000);
  InProcessCluster cluster(config);
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());

  const NodeStatus before = cluster.node(*leader).status();
  propose_in_sequence(cluster, *leader);
  const NodeStatus after = cluster.node(*leader).status();
  // Each sequential proposal gives the leader's loop at least one event while it waits: the next
  // proposal, right after the previous one's answer. (Only one that comes just as a tick falls
  // due, or while the loop is busy, is not caught by a poll.)
  EXPECT_GE(after.loop_spin_catches - before.loop_spin_catches,
            static_cast<uint64_t>(kProposals / 2));
}

TEST(NodeIdleSpin, ALoopWhoseSpinIsShorterThanATickStillSleepsWhenIdle) {
  ClusterConfig config;
  config.tick = 20ms;
  config.idle_spin = std::chrono::microseconds(5000);
  InProcessCluster cluster(config);
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  propose_in_sequence(cluster, *leader);

  // With nothing to do, each loop goes to sleep again: the spin ends before the next tick.
  for (NodeId id : cluster.ids()) {
    const uint64_t sleeps = cluster.node(id).status().loop_sleeps;
    EXPECT_TRUE(InProcessCluster::wait_until([&] {
      return cluster.node(id).status().loop_sleeps >= sleeps + 5;
    })) << "node "
        << id << " stopped sleeping";
  }
}

TEST(NodeIdleSpin, WithoutASpinTheLoopNeverPollsAndEveryWaitSleeps) {
  ClusterConfig config;
  config.tick = 20ms;
  InProcessCluster cluster(config);  // idle_spin 0, the library default
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());

  const uint64_t sleeps = cluster.node(*leader).status().loop_sleeps;
  propose_in_sequence(cluster, *leader);
  for (NodeId id : cluster.ids()) {
    EXPECT_EQ(cluster.node(id).status().loop_spin_catches, 0u) << "node " << id;
  }
  EXPECT_GT(cluster.node(*leader).status().loop_sleeps, sleeps);
}

}  // namespace
}  // namespace raftlock::raft::runtime_testing
