// raft::Node's idle spin (NodeOptions::idle_spin, raftlockd's --loop-spin-us): the loop polls for
// a while before it sleeps, so the next event is handled without a sleep and wake-up. These tests
// check the behaviour through the node's own counters: events are caught while polling when the
// spin is on, never when it is off, every proposal is still committed and applied in order on
// every node, and a node with nothing to do still goes to sleep. How soon an event comes after
// the loop goes idle, and so how many are caught, depends on the scheduler: no test counts them.
#include <gtest/gtest.h>

#include <memory>
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

// A started 3-node cluster with a 20 ms tick and the given spin (0: the library default, none),
// and its leader.
class NodeIdleSpin : public ::testing::Test {
 protected:
  void start(std::chrono::microseconds idle_spin) {
    ClusterConfig config;
    config.tick = 20ms;
    config.idle_spin = idle_spin;
    cluster_ = std::make_unique<InProcessCluster>(config);
    cluster_->start_all();
    const auto leader = cluster_->wait_for_leader();
    ASSERT_TRUE(leader.has_value());
    leader_ = *leader;
  }
  InProcessCluster& cluster() { return *cluster_; }

  std::unique_ptr<InProcessCluster> cluster_;
  NodeId leader_ = kNoNode;
};

TEST_F(NodeIdleSpin, ALeaderThatSpinsCatchesEventsWithoutSleeping) {
  // Longer than a tick: an idle loop polls until its next timer is due (the spin never outlasts
  // it), so it is polling whenever it has nothing to do.
  ASSERT_NO_FATAL_FAILURE(start(std::chrono::microseconds(1000000)));

  const NodeStatus before = cluster().node(leader_).status();
  propose_in_sequence(cluster(), leader_);
  const NodeStatus after = cluster().node(leader_).status();
  // Events came while the leader's loop polled (the next proposal, the followers'
  // acknowledgements) and it took them without a sleep; with the spin off it never does
  // (WithoutASpinTheLoopNeverPollsAndEveryWaitSleeps). How many it catches is up to the
  // scheduler: 76-118 for the 40 proposals beside two busy loops, but 16 under ASan beside another
  // test. The rate is the benchmark's to show (docs/performance.md); this checks the mechanism.
  EXPECT_GT(after.loop_spin_catches, before.loop_spin_catches);
}

TEST_F(NodeIdleSpin, ALoopWhoseSpinIsShorterThanATickStillSleepsWhenIdle) {
  ASSERT_NO_FATAL_FAILURE(start(std::chrono::microseconds(5000)));
  propose_in_sequence(cluster(), leader_);

  // With nothing to do, each loop goes to sleep again: the spin ends before the next tick.
  for (NodeId id : cluster().ids()) {
    const uint64_t sleeps = cluster().node(id).status().loop_sleeps;
    EXPECT_TRUE(InProcessCluster::wait_until([&] {
      return cluster().node(id).status().loop_sleeps >= sleeps + 5;
    })) << "node "
        << id << " stopped sleeping";
  }
}

TEST_F(NodeIdleSpin, WithoutASpinTheLoopNeverPollsAndEveryWaitSleeps) {
  ASSERT_NO_FATAL_FAILURE(start(std::chrono::microseconds(0)));  // the library default

  const uint64_t sleeps = cluster().node(leader_).status().loop_sleeps;
  propose_in_sequence(cluster(), leader_);
  for (NodeId id : cluster().ids()) {
    EXPECT_EQ(cluster().node(id).status().loop_spin_catches, 0u) << "node " << id;
  }
  EXPECT_GT(cluster().node(leader_).status().loop_sleeps, sleeps);
}

}  // namespace
}  // namespace raftlock::raft::runtime_testing
