// raft::Node proposals that may wait (Urgency::kMayWait): the leader holds them back until it
// appends another proposal, and writes them with it, or until may_wait_limit passes; a follower
// marks a forward whose commands all may wait, and the leader holds that forward the same way. A
// held proposal is never lost or applied twice: a leader that steps down hands its own on to the
// new leader and refuses the forwarded ones (not appended), and a stop fails them.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/runtime/runtime_harness.h"

namespace raftlock::raft::runtime_testing {
namespace {

using namespace std::chrono_literals;

ClusterConfig holding_config(std::chrono::microseconds limit) {
  ClusterConfig config;
  config.message_forwarding = true;
  config.may_wait_limit = limit;
  return config;
}

// Whether one persist call of `store` wrote both commands.
bool written_together(const FaultyStore& store, const std::string& a, const std::string& b) {
  for (const auto& batch : store.written_batches()) {
    const bool has_a = std::find(batch.begin(), batch.end(), a) != batch.end();
    const bool has_b = std::find(batch.begin(), batch.end(), b) != batch.end();
    if (has_a || has_b) return has_a && has_b;
  }
  return false;
}

bool ever_written(const FaultyStore& store, const std::string& command) {
  for (const auto& batch : store.written_batches()) {
    if (std::find(batch.begin(), batch.end(), command) != batch.end()) return true;
  }
  return false;
}

TEST(NodeMayWait, OnTheLeaderItWaitsForTheNextProposalAndSharesItsWrite) {
  InProcessCluster cluster(holding_config(60s));
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  Node& node = cluster.node(*leader);

  auto waiting = node.propose("queue-me", Urgency::kMayWait);
  EXPECT_EQ(waiting.wait_for(200ms), std::future_status::timeout);
  EXPECT_FALSE(ever_written(cluster.store(*leader), "queue-me"));
  EXPECT_EQ(node.status().pending_proposals, 1u);

  auto urgent = node.propose("release");
  const auto urgent_answer = await(urgent);
  const auto waiting_answer = await(waiting);
  const auto urgent_index = own_result_index(urgent_answer, *leader, "release");
  const auto waiting_index = own_result_index(waiting_answer, *leader, "queue-me");
  ASSERT_TRUE(urgent_index) << result_string(urgent_answer);
  ASSERT_TRUE(waiting_index) << result_string(waiting_answer);
  // The round's own proposal first, then what it held; one write for both, on every node.
  EXPECT_EQ(*waiting_index, *urgent_index + 1);
  for (NodeId id : cluster.ids()) {
    EXPECT_TRUE(
        InProcessCluster::wait_until([&] { return ever_written(cluster.store(id), "queue-me"); }));
    EXPECT_TRUE(written_together(cluster.store(id), "release", "queue-me")) << "node " << id;
  }
}

TEST(NodeMayWait, WithNothingElseToWriteItIsAppendedWhenTheLimitPasses) {
  InProcessCluster cluster(holding_config(150ms));
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());

  const auto started = std::chrono::steady_clock::now();
  auto waiting = cluster.node(*leader).propose("alone", Urgency::kMayWait);
  const auto answer = await(waiting);
  const auto waited = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(own_result_index(answer, *leader, "alone")) << result_string(answer);
  EXPECT_GE(waited, 150ms);  // held for its limit, never less
  // And a proposal that must not wait is appended in the round it arrives (no limit to wait for).
  auto urgent = cluster.node(*leader).propose("now");
  EXPECT_EQ(urgent.wait_for(100ms), std::future_status::ready);
}

TEST(NodeMayWait, AFollowersForwardIsMarkedAndHeldByTheLeader) {
  InProcessCluster cluster(holding_config(60s));
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const NodeId follower = cluster.others(*leader).front();
  std::mutex mu;
  std::vector<uint64_t> forward_flags;
  cluster.set_drop_filter([&](const Message& m) {
    if (m.type == MessageType::kForward) {
      std::lock_guard lock(mu);
      forward_flags.push_back(m.index);
    }
    return false;
  });

  auto waiting = cluster.node(follower).propose("queue-me", Urgency::kMayWait);
  EXPECT_EQ(waiting.wait_for(200ms), std::future_status::timeout);
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(forward_flags, std::vector<uint64_t>{kForwardMayWait});
  }
  EXPECT_FALSE(ever_written(cluster.store(*leader), "queue-me"));

  // A proposal that must not wait, from the same follower: its forward is not marked, and the
  // leader appends it at once, with the held one behind it.
  auto urgent = cluster.node(follower).propose("release");
  const auto urgent_answer = await(urgent);
  const auto waiting_answer = await(waiting);
  const auto urgent_index = own_result_index(urgent_answer, follower, "release");
  const auto waiting_index = own_result_index(waiting_answer, follower, "queue-me");
  ASSERT_TRUE(urgent_index) << result_string(urgent_answer);
  ASSERT_TRUE(waiting_index) << result_string(waiting_answer);
  EXPECT_EQ(*waiting_index, *urgent_index + 1);
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(forward_flags.size(), 2u);
    EXPECT_EQ(forward_flags[1], 0u);
  }
  EXPECT_TRUE(written_together(cluster.store(*leader), "release", "queue-me"));
}

TEST(NodeMayWait, ALeaderThatStepsDownPassesItsOwnOnAndRefusesTheForwardedOnes) {
  InProcessCluster cluster(holding_config(60s));
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const NodeId follower = cluster.others(*leader).front();
  const NodeId successor = cluster.others(*leader).back();

  auto own = cluster.node(*leader).propose("leaders-own", Urgency::kMayWait);
  auto forwarded = cluster.node(follower).propose("forwarded", Urgency::kMayWait);
  ASSERT_TRUE(
      InProcessCluster::wait_until([&] { return cluster.routed(MessageType::kForward) >= 1; }));
  EXPECT_EQ(own.wait_for(100ms), std::future_status::timeout);
  EXPECT_EQ(forwarded.wait_for(0ms), std::future_status::timeout);

  auto transfer = cluster.node(*leader).transfer_leadership(successor);
  ASSERT_TRUE(await(transfer).ok());
  ASSERT_TRUE(InProcessCluster::wait_until(
      [&] { return cluster.stable_leader(cluster.ids()) == successor; }));

  // The old leader's own proposal was handed on as a new proposal made at that moment: forwarded
  // to the new leader and applied once, or, if the old leader did not know the new one yet,
  // refused as not appended (safe to retry) and applied nowhere.
  const auto own_answer = await(own);
  if (own_answer.ok()) {
    const auto own_index = own_result_index(own_answer, *leader, "leaders-own");
    ASSERT_TRUE(own_index) << result_string(own_answer);
    EXPECT_TRUE(InProcessCluster::wait_until(
        [&] { return cluster.machine(successor).command_at(*own_index) == "leaders-own"; }));
  } else {
    EXPECT_TRUE(own_answer.error().code == ErrorCode::kNotLeader ||
                own_answer.error().code == ErrorCode::kNoLeader)
        << error_code_name(own_answer.error().code);
    for (NodeId id : cluster.ids()) EXPECT_FALSE(cluster.machine(id).has_command("leaders-own"));
  }
  // The forwarded one was refused, not appended: nothing applies it. Its follower reports what
  // it knows: kNotLeader if the refusal came first, or an unknown outcome (kTimeout) if it saw the
  // leader change first, as for any forward unanswered at a leader change. Never a success.
  const auto forwarded_answer = await(forwarded);
  ASSERT_FALSE(forwarded_answer.ok()) << result_string(forwarded_answer);
  EXPECT_TRUE(forwarded_answer.error().code == ErrorCode::kNotLeader ||
              forwarded_answer.error().code == ErrorCode::kTimeout)
      << error_code_name(forwarded_answer.error().code);
  auto later = cluster.node(successor).propose("after");
  ASSERT_TRUE(await(later).ok());
  for (NodeId id : cluster.ids()) {
    EXPECT_TRUE(
        InProcessCluster::wait_until([&] { return cluster.machine(id).has_command("after"); }));
    EXPECT_FALSE(cluster.machine(id).has_command("forwarded")) << "node " << id;
  }
}

TEST(NodeMayWait, AStopFailsWhatTheLeaderHolds) {
  InProcessCluster cluster(holding_config(60s));
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  auto waiting = cluster.node(*leader).propose("held", Urgency::kMayWait);
  EXPECT_EQ(waiting.wait_for(100ms), std::future_status::timeout);
  cluster.stop(*leader);
  const auto answer = await(waiting, 2s);
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.error().code, ErrorCode::kUnavailable);
  EXPECT_FALSE(ever_written(cluster.store(*leader), "held"));
}

}  // namespace
}  // namespace raftlock::raft::runtime_testing
