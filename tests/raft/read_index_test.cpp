// Linearizable reads (Raft thesis §6.4): commit-in-term gate, heartbeat quorum, batching,
// follower forwarding.
#include <gtest/gtest.h>

#include "raft/core.h"
#include "raft_test_util.h"

namespace raftlock::raft::testing {
namespace {

std::vector<Message> heartbeats(Cluster& c) {
  return c.take([](const Message& m) { return m.type == MessageType::kHeartbeat; });
}

TEST(ReadIndex, SingleVoterAnswersImmediately) {
  Cluster c({1});
  c.elect(1);
  ASSERT_TRUE(c.core(1).read_index("r1").ok());
  c.collect();
  ASSERT_EQ(c.node(1).read_states.size(), 1u);
  EXPECT_EQ(c.node(1).read_states[0].context, "r1");
  EXPECT_EQ(c.node(1).read_states[0].index, 1u);
}

TEST(ReadIndex, LeaderWaitsForQuorumOfHeartbeatAcks) {
  Cluster c({1, 2, 3, 4, 5});
  c.elect(1);
  c.tick_all();
  ASSERT_TRUE(c.propose(1, "a").ok());
  ASSERT_EQ(c.core(1).commit_index(), 2u);
  ASSERT_TRUE(c.core(1).read_index("r").ok());
  auto hbs = heartbeats(c);
  ASSERT_EQ(hbs.size(), 4u);
  const std::string round = hbs[0].context;
  EXPECT_FALSE(round.empty());
  for (const Message& hb : hbs) EXPECT_EQ(hb.context, round);
  // Deliver to two followers only: self + 2 = 3 of 5, a quorum; one ack is not enough.
  ASSERT_TRUE(c.core(2).step(hbs[0]).ok());
  ASSERT_TRUE(c.core(3).step(hbs[1]).ok());
  auto acks = c.take([](const Message& m) { return m.type == MessageType::kHeartbeatResponse; });
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[0].context, round);
  ASSERT_TRUE(c.core(1).step(acks[0]).ok());
  c.collect();
  EXPECT_TRUE(c.node(1).read_states.empty());
  ASSERT_TRUE(c.core(1).step(acks[1]).ok());
  c.collect();
  ASSERT_EQ(c.node(1).read_states.size(), 1u);
  EXPECT_EQ(c.node(1).read_states[0].index, 2u);
  EXPECT_EQ(c.node(1).read_states[0].context, "r");
}

TEST(ReadIndex, WaitsUntilLeaderCommittedAnEntryOfItsTerm) {
  Cluster c({1, 2, 3});
  c.core(1).campaign();
  // Win the election but hold back the appends carrying the noop.
  for (int i = 0; i < 10 && c.core(1).role() != Role::kLeader; ++i) {
    auto votes = c.take([](const Message& m) {
      return m.type != MessageType::kAppend && m.type != MessageType::kHeartbeat;
    });
    for (const Message& m : votes) ASSERT_TRUE(c.core(m.to).step(m).ok());
  }
  ASSERT_EQ(c.core(1).role(), Role::kLeader);
  auto held = c.take([](const Message& m) { return m.type == MessageType::kAppend; });
  ASSERT_EQ(c.core(1).commit_index(), 0u);
  ASSERT_TRUE(c.core(1).read_index("early").ok());
  EXPECT_TRUE(heartbeats(c).empty());  // no round before the noop commits
  c.collect();
  EXPECT_TRUE(c.node(1).read_states.empty());
  for (const Message& m : held) c.queue().push_back(m);
  c.deliver_all();
  EXPECT_EQ(c.core(1).commit_index(), 1u);
  c.tick_all();  // heartbeat round now carries the read
  ASSERT_EQ(c.node(1).read_states.size(), 1u);
  EXPECT_EQ(c.node(1).read_states[0].context, "early");
  EXPECT_EQ(c.node(1).read_states[0].index, 1u);
}

TEST(ReadIndex, ReadsArrivingDuringARoundShareTheNextOne) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  ASSERT_TRUE(c.core(1).read_index("a").ok());
  auto round1 = heartbeats(c);
  ASSERT_EQ(round1.size(), 2u);
  ASSERT_TRUE(c.core(1).read_index("b").ok());
  ASSERT_TRUE(c.core(1).read_index("c").ok());
  EXPECT_TRUE(heartbeats(c).empty());   // b and c wait for the next round
  ASSERT_TRUE(c.propose(1, "w").ok());  // commit moves on before round 2 goes out
  c.drop_all();
  c.core(1).tick();  // round 2 goes out with the heartbeat
  auto round2 = heartbeats(c);
  ASSERT_EQ(round2.size(), 2u);
  EXPECT_NE(round2[0].context, round1[0].context);
  // An ack of round 2 alone confirms round 1 too.
  ASSERT_TRUE(c.core(2).step(round2[0]).ok());
  c.deliver_all();
  ASSERT_EQ(c.node(1).read_states.size(), 3u);
  EXPECT_EQ(c.node(1).read_states[0].context, "a");
  EXPECT_EQ(c.node(1).read_states[0].index, 1u);
  EXPECT_EQ(c.node(1).read_states[1].context, "b");
  EXPECT_EQ(c.node(1).read_states[1].index, 2u);
  EXPECT_EQ(c.node(1).read_states[2].context, "c");
  EXPECT_EQ(c.node(1).read_states[2].index, 2u);
}

TEST(ReadIndex, QueuedRoundGoesOutWhenPreviousRoundCompletes) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  ASSERT_TRUE(c.core(1).read_index("a").ok());
  auto round1 = heartbeats(c);
  ASSERT_TRUE(c.core(1).read_index("b").ok());
  ASSERT_TRUE(c.core(2).step(round1[0]).ok());
  auto ack = c.take([](const Message& m) { return m.type == MessageType::kHeartbeatResponse; });
  ASSERT_EQ(ack.size(), 1u);
  ASSERT_TRUE(c.core(1).step(ack[0]).ok());
  auto round2 = heartbeats(c);
  ASSERT_EQ(round2.size(), 2u);  // sent right away, no need to wait for a tick
  c.collect();
  ASSERT_EQ(c.node(1).read_states.size(), 1u);
  for (const Message& m : round2) c.queue().push_back(m);
  c.deliver_all();
  ASSERT_EQ(c.node(1).read_states.size(), 2u);
  EXPECT_EQ(c.node(1).read_states[1].context, "b");
}

TEST(ReadIndex, FollowerForwardsToLeaderAndGetsReadState) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  ASSERT_TRUE(c.propose(1, "a").ok());
  ASSERT_TRUE(c.core(2).read_index("f").ok());
  auto fwd = c.take([](const Message& m) { return m.type == MessageType::kReadIndex; });
  ASSERT_EQ(fwd.size(), 1u);
  EXPECT_EQ(fwd[0].to, 1u);
  EXPECT_EQ(fwd[0].context, "f");
  c.queue().push_back(fwd[0]);
  c.deliver_all();
  ASSERT_EQ(c.node(2).read_states.size(), 1u);
  EXPECT_EQ(c.node(2).read_states[0].context, "f");
  EXPECT_EQ(c.node(2).read_states[0].index, 2u);
  EXPECT_TRUE(c.node(1).read_states.empty());
}

TEST(ReadIndex, NoLeaderKnownIsAnError) {
  Cluster c({1, 2, 3});
  Status st = c.core(2).read_index("x");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kNoLeader);
}

TEST(ReadIndex, NonLeaderRejectsForwardedRead) {
  Cluster c({1, 2, 3});
  c.elect(1);
  Message ri = msg(MessageType::kReadIndex, 3, 2, 1);
  ri.context = "x";
  ASSERT_TRUE(c.core(2).step(ri).ok());
  auto out = c.take([](const Message& m) { return m.type == MessageType::kReadIndexResponse; });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].reject);
  EXPECT_EQ(out[0].context, "x");
  // A rejected answer produces no read state.
  ASSERT_TRUE(c.core(3).step(out[0]).ok());
  c.collect();
  EXPECT_TRUE(c.node(3).read_states.empty());
}

TEST(ReadIndex, PendingReadsAreDroppedWhenLeaderStepsDown) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  ASSERT_TRUE(c.core(1).read_index("lost").ok());
  c.drop_all();
  Message hb = msg(MessageType::kHeartbeat, 2, 1, 5);
  ASSERT_TRUE(c.core(1).step(hb).ok());
  ASSERT_EQ(c.core(1).role(), Role::kFollower);
  // A late ack from the old term must not produce a read state.
  Message ack = msg(MessageType::kHeartbeatResponse, 2, 1, 1);
  ack.context = "read-round:1";
  ASSERT_TRUE(c.core(1).step(ack).ok());
  c.collect();
  EXPECT_TRUE(c.node(1).read_states.empty());
}

TEST(ReadIndex, UnknownHeartbeatContextsAreIgnored) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  ASSERT_TRUE(c.core(1).read_index("r").ok());
  c.drop_all();
  for (const char* ctx : {"bogus", "read-round:", "read-round:99", "read-round:1x"}) {
    for (NodeId from : {2, 3}) {
      Message ack = msg(MessageType::kHeartbeatResponse, from, 1, 1);
      ack.context = ctx;
      ASSERT_TRUE(c.core(1).step(ack).ok());
    }
  }
  c.collect();
  EXPECT_TRUE(c.node(1).read_states.empty());
}

}  // namespace
}  // namespace raftlock::raft::testing
