// raft::Node read barriers: served only once the node applied the read index; never served by a
// leader cut off in a minority.
#include <gtest/gtest.h>

#include "tests/runtime/runtime_harness.h"

namespace raftlock::raft::runtime_testing {
namespace {

TEST(NodeReadBarrier, LeaderReadCompletesAtItsCommitIndex) {
  InProcessCluster cluster({});
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  auto write = cluster.node(*leader).propose("w");
  ASSERT_TRUE(await(write).ok());
  auto read = cluster.node(*leader).read_barrier();
  const Status status = await(read);
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_TRUE(cluster.machine(*leader).has_command("w"));
}

TEST(NodeReadBarrier, FollowerReadWaitsUntilItAppliedTheReadIndex) {
  InProcessCluster cluster({});
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const NodeId follower = cluster.others(*leader).front();

  // The follower stops receiving log entries (heartbeats and read-index answers still flow), so
  // the leader commits entries the follower has not applied.
  cluster.set_drop_filter([follower](const Message& m) {
    return m.to == follower && (m.type == MessageType::kAppend || m.type == MessageType::kSnapshot);
  });
  Index required = 0;  // where the last write was applied on the leader
  for (int i = 0; i < 5; ++i) {
    auto write = cluster.node(*leader).propose("w" + std::to_string(i));
    const Result<std::any> written = await(write);
    ASSERT_TRUE(written.ok());
    const std::string text = result_string(written);
    required = std::stoull(text.substr(text.rfind('@') + 1));
  }
  ASSERT_FALSE(cluster.machine(follower).has_command("w4"));

  auto read = cluster.node(follower).read_barrier();
  // Not served while the follower lags (a read served now would miss w0..w4).
  EXPECT_EQ(read.wait_for(300ms), std::future_status::timeout);
  EXPECT_FALSE(cluster.machine(follower).has_command("w4"));

  cluster.heal();
  const Status status = await(read);
  // Checked right as the barrier completes: everything up to the read index is applied.
  EXPECT_GE(cluster.machine(follower).last_command_index(), required);
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_TRUE(cluster.machine(follower).has_command("w4"));
}

TEST(NodeReadBarrier, PartitionedMinorityLeaderFailsTheReadInsteadOfServingIt) {
  ClusterConfig config;
  config.check_quorum = false;  // the cut-off leader keeps believing it leads
  config.read_timeout = 400ms;
  InProcessCluster cluster(config);
  cluster.start_all();
  const auto old_leader = cluster.wait_for_leader();
  ASSERT_TRUE(old_leader.has_value());
  cluster.isolate(*old_leader);
  const auto new_leader = cluster.wait_for_leader(cluster.others(*old_leader));
  ASSERT_TRUE(new_leader.has_value());
  auto write = cluster.node(*new_leader).propose("newer");
  ASSERT_TRUE(await(write).ok());
  ASSERT_EQ(cluster.node(*old_leader).status().core.role, Role::kLeader);

  auto read = cluster.node(*old_leader).read_barrier();
  const Status status = await(read);
  ASSERT_FALSE(status.ok()) << "a minority leader served a read that misses a committed write";
  EXPECT_TRUE(status.error().code == ErrorCode::kTimeout ||
              status.error().code == ErrorCode::kNoLeader)
      << error_code_name(status.error().code) << ": " << status.error().message;
  EXPECT_FALSE(cluster.machine(*old_leader).has_command("newer"));
}

}  // namespace
}  // namespace raftlock::raft::runtime_testing
