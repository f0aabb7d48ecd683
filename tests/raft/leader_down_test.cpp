// Fast failover in the core: leader_down() (the runtime found the leader's process gone) and
// campaign_if_leaderless() (an election through the election timeout's pre-vote path, early).
#include <gtest/gtest.h>

#include "raft/core.h"
#include "raft_test_util.h"

namespace raftlock::raft::testing {
namespace {

// A 3-node cluster with 1 as leader, its noop committed everywhere and nothing in flight.
Cluster led_by_1() {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  c.deliver_all();
  return c;
}

// A vote request from `from` to `to` for `term`, with `from`'s log position.
Message vote_request(Cluster& c, MessageType type, NodeId from, NodeId to, Term term) {
  Message m = msg(type, from, to, term);
  m.index = c.core(from).last_index();
  m.log_term = c.core(from).status().term;  // every entry so far is of the current term
  return m;
}

// Delivers every queued message addressed to `to` (and nothing else), in order.
void deliver_to(Cluster& c, NodeId to) {
  for (auto& m : c.take([to](const Message& m) { return m.to == to; })) {
    ASSERT_TRUE(c.core(to).step(m).ok());
  }
}

// Delivers the messages queued now (not the ones they produce).
void deliver_round(Cluster& c) {
  for (auto& m : c.take([](const Message&) { return true; })) {
    if (m.to == 1) continue;  // the dead leader
    ASSERT_TRUE(c.core(m.to).step(m).ok());
  }
}

// Leader 1's process is gone and both followers noticed (leader_down); `term` is 1's term.
Cluster both_noticed_the_death_of_1(Term& term) {
  Cluster c = led_by_1();
  term = c.core(1).term();
  c.isolate(1);
  EXPECT_TRUE(c.core(2).leader_down(1));
  EXPECT_TRUE(c.core(3).leader_down(1));
  return c;
}

TEST(LeaderDown, FollowerForgetsItsLeaderAndThenGrantsAPreVoteItIgnoredBefore) {
  Cluster c = led_by_1();
  const Term term = c.core(2).term();
  ASSERT_EQ(c.core(2).leader_id(), 1u);
  const Message pre = vote_request(c, MessageType::kPreVote, 3, 2, term + 1);

  // Leader lease: a follower that heard from its leader ignores the pre-vote entirely.
  ASSERT_TRUE(c.core(2).step(pre).ok());
  EXPECT_TRUE(c.node(2).handle_ready().empty());

  EXPECT_TRUE(c.core(2).leader_down(1));
  EXPECT_EQ(c.core(2).leader_id(), kNoNode);
  EXPECT_EQ(c.core(2).role(), Role::kFollower);
  EXPECT_EQ(c.core(2).term(), term);  // soft state only: term and vote unchanged
  auto readies_before = c.node(2).readies.size();
  EXPECT_TRUE(c.node(2).handle_ready().empty());
  ASSERT_GT(c.node(2).readies.size(), readies_before);
  ASSERT_TRUE(c.node(2).readies.back().soft_state.has_value());  // the runtime sees the change
  EXPECT_EQ(c.node(2).readies.back().soft_state->leader_id, kNoNode);

  ASSERT_TRUE(c.core(2).step(pre).ok());
  auto out = c.node(2).handle_ready();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, MessageType::kPreVoteResponse);
  EXPECT_FALSE(out[0].reject);
  EXPECT_EQ(out[0].term, term + 1);
  EXPECT_EQ(c.core(2).term(), term);  // a pre-vote's term is never adopted
}

TEST(LeaderDown, FollowerThatForgotItsLeaderGrantsAVoteItIgnoredBefore) {
  Cluster c = led_by_1();
  const Term term = c.core(2).term();
  const Message vote = vote_request(c, MessageType::kVote, 3, 2, term + 1);

  ASSERT_TRUE(c.core(2).step(vote).ok());
  EXPECT_TRUE(c.node(2).handle_ready().empty());
  EXPECT_EQ(c.core(2).term(), term);  // ignored: not even the term moved
  EXPECT_EQ(c.core(2).leader_id(), 1u);

  ASSERT_TRUE(c.core(2).leader_down(1));
  ASSERT_TRUE(c.core(2).step(vote).ok());
  auto out = c.node(2).handle_ready();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, MessageType::kVoteResponse);
  EXPECT_FALSE(out[0].reject);
  EXPECT_EQ(c.core(2).term(), term + 1);
  EXPECT_EQ(c.node(2).storage.hard_state.vote, 3u);
}

TEST(LeaderDown, NamingAnotherNodeDoesNothing) {
  Cluster c = led_by_1();
  const Term term = c.core(2).term();
  EXPECT_FALSE(c.core(2).leader_down(3));
  EXPECT_FALSE(c.core(2).leader_down(kNoNode));
  EXPECT_FALSE(c.core(2).leader_down(2));  // itself
  EXPECT_EQ(c.core(2).leader_id(), 1u);
  EXPECT_TRUE(c.node(2).handle_ready().empty());
  // The lease still holds: the pre-vote is ignored.
  ASSERT_TRUE(c.core(2).step(vote_request(c, MessageType::kPreVote, 3, 2, term + 1)).ok());
  EXPECT_TRUE(c.node(2).handle_ready().empty());
  EXPECT_FALSE(c.core(2).campaign_if_leaderless());
  EXPECT_EQ(c.core(2).role(), Role::kFollower);
}

TEST(LeaderDown, OnTheLeaderDoesNothing) {
  Cluster c = led_by_1();
  EXPECT_FALSE(c.core(1).leader_down(1));
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
  EXPECT_EQ(c.core(1).leader_id(), 1u);
  EXPECT_FALSE(c.core(1).campaign_if_leaderless());
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
}

TEST(LeaderDown, OnACandidateOrPreCandidateDoesNothing) {
  Cluster c({1, 2, 3});
  c.core(2).campaign();
  ASSERT_EQ(c.core(2).role(), Role::kPreCandidate);
  EXPECT_FALSE(c.core(2).leader_down(1));
  EXPECT_EQ(c.core(2).role(), Role::kPreCandidate);

  Cluster without_pre_vote({1, 2, 3}, [](Config& cfg) { cfg.pre_vote = false; });
  without_pre_vote.core(2).campaign();
  ASSERT_EQ(without_pre_vote.core(2).role(), Role::kCandidate);
  const Term term = without_pre_vote.core(2).term();
  EXPECT_FALSE(without_pre_vote.core(2).leader_down(1));
  EXPECT_EQ(without_pre_vote.core(2).role(), Role::kCandidate);
  EXPECT_EQ(without_pre_vote.core(2).term(), term);
}

TEST(LeaderDown, CampaignIfLeaderlessUsesThePreVotePath) {
  Cluster c = led_by_1();
  const Term term = c.core(2).term();
  EXPECT_FALSE(c.core(2).campaign_if_leaderless());  // it still has a leader
  EXPECT_TRUE(c.node(2).handle_ready().empty());

  ASSERT_TRUE(c.core(2).leader_down(1));
  c.node(2).handle_ready();
  EXPECT_TRUE(c.core(2).campaign_if_leaderless());
  EXPECT_EQ(c.core(2).role(), Role::kPreCandidate);
  EXPECT_EQ(c.core(2).term(), term);  // pre-vote: no term bump, no vote
  auto out = c.node(2).handle_ready();
  auto pre = of_type(out, MessageType::kPreVote);
  ASSERT_EQ(pre.size(), 2u);
  for (const Message& m : pre) EXPECT_EQ(m.term, term + 1);
  EXPECT_TRUE(of_type(out, MessageType::kVote).empty());
}

TEST(LeaderDown, CampaignIfLeaderlessWithoutPreVoteStartsARealElection) {
  Cluster c({1, 2, 3}, [](Config& cfg) { cfg.pre_vote = false; });
  c.elect(1);
  c.tick_all();
  const Term term = c.core(2).term();
  ASSERT_TRUE(c.core(2).leader_down(1));
  EXPECT_TRUE(c.core(2).campaign_if_leaderless());
  EXPECT_EQ(c.core(2).role(), Role::kCandidate);
  EXPECT_EQ(c.core(2).term(), term + 1);
}

TEST(LeaderDown, WhenBothFollowersDetectTheDeathOneWinsBeforeAnyTimeout) {
  Cluster c = led_by_1();
  const Term term = c.core(1).term();
  c.isolate(1);  // the leader's process is gone

  // Only 2 noticed: 3 still honours its lease and ignores 2's pre-vote, so no leader yet.
  ASSERT_TRUE(c.core(2).leader_down(1));
  ASSERT_TRUE(c.core(2).campaign_if_leaderless());
  c.deliver_all();
  EXPECT_EQ(c.core(2).role(), Role::kPreCandidate);
  EXPECT_EQ(c.core(3).leader_id(), 1u);

  // 3 notices too; 2 tries again and wins a higher term — without a single tick.
  ASSERT_TRUE(c.core(3).leader_down(1));
  ASSERT_TRUE(c.core(2).campaign_if_leaderless());
  c.deliver_all();
  EXPECT_EQ(c.core(2).role(), Role::kLeader);
  EXPECT_EQ(c.core(2).term(), term + 1);
  EXPECT_EQ(c.core(3).leader_id(), 2u);
  EXPECT_EQ(c.core(3).term(), term + 1);
}

TEST(LeaderDown, CampaignIfLeaderlessStaysOutOfAnElectionItVotedIn) {
  Term term = 0;
  Cluster c = both_noticed_the_death_of_1(term);
  ASSERT_TRUE(c.core(3).campaign_if_leaderless());
  // Route by hand until 2 has voted for 3, and lose 2's vote on the way back.
  deliver_to(c, 2);  // 3's pre-vote reaches 2
  deliver_to(c, 3);  // 2's pre-vote grant reaches 3
  ASSERT_EQ(c.core(3).role(), Role::kCandidate);
  deliver_to(c, 2);                             // 3's vote request reaches 2
  c.take([](const Message&) { return true; });  // 2's vote is lost on the way
  ASSERT_EQ(c.core(2).term(), term + 1);
  ASSERT_EQ(c.core(2).status().vote, 3u);
  EXPECT_FALSE(c.core(2).campaign_if_leaderless());
  EXPECT_EQ(c.core(2).role(), Role::kFollower);
}

TEST(LeaderDown, CampaignIfLeaderlessLetsACandidatesOpenElectionFinish) {
  Term term = 0;
  Cluster c = both_noticed_the_death_of_1(term);
  ASSERT_TRUE(c.core(2).campaign_if_leaderless());
  deliver_to(c, 3);  // 2's pre-vote reaches 3
  deliver_to(c, 2);  // 3's grant reaches 2: a real election for term + 1
  ASSERT_EQ(c.core(2).role(), Role::kCandidate);
  ASSERT_EQ(c.core(2).term(), term + 1);

  // 3's vote is still on its way (a slow disk: 3 makes it durable first). A retry now would
  // abandon this election for the next term; it is left to finish instead.
  deliver_to(c, 3);
  EXPECT_FALSE(c.core(2).campaign_if_leaderless());
  EXPECT_EQ(c.core(2).role(), Role::kCandidate);
  EXPECT_EQ(c.core(2).term(), term + 1);
  c.deliver_all();
  EXPECT_EQ(c.core(2).role(), Role::kLeader);
  EXPECT_EQ(c.core(2).term(), term + 1);
  EXPECT_EQ(c.core(3).leader_id(), 2u);
}

TEST(LeaderDown, CampaignIfLeaderlessStartsOverAfterASplitVote) {
  Term term = 0;
  Cluster c = both_noticed_the_death_of_1(term);
  // Both campaign at once: each grants the other's pre-vote, each becomes a candidate for
  // term + 1 having voted for itself, and each refuses the other's vote.
  ASSERT_TRUE(c.core(2).campaign_if_leaderless());
  ASSERT_TRUE(c.core(3).campaign_if_leaderless());
  deliver_round(c);  // the pre-votes cross
  deliver_round(c);  // the grants cross
  ASSERT_EQ(c.core(2).role(), Role::kCandidate);
  ASSERT_EQ(c.core(3).role(), Role::kCandidate);
  deliver_round(c);  // the vote requests cross
  deliver_round(c);  // the refusals cross
  ASSERT_EQ(c.core(2).role(), Role::kCandidate);
  ASSERT_EQ(c.core(2).term(), term + 1);
  ASSERT_EQ(c.core(2).status().vote, 2u);
  ASSERT_EQ(c.core(3).status().vote, 3u);
  c.take([](const Message&) { return true; });

  // Neither can win term + 1 without the dead leader: a retry starts over, and wins.
  EXPECT_TRUE(c.core(2).campaign_if_leaderless());
  c.deliver_all();
  EXPECT_EQ(c.core(2).role(), Role::kLeader);
  EXPECT_EQ(c.core(2).term(), term + 2);
  EXPECT_EQ(c.core(3).leader_id(), 2u);
}

TEST(LeaderDown, ALeaderThatWasAliveAfterAllIsFollowedAgain) {
  Cluster c = led_by_1();
  ASSERT_TRUE(c.core(2).leader_down(1));
  ASSERT_EQ(c.core(2).leader_id(), kNoNode);
  c.tick(1);  // the leader heartbeats
  c.deliver_all();
  EXPECT_EQ(c.core(2).leader_id(), 1u);
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
  EXPECT_FALSE(c.core(2).campaign_if_leaderless());
}

}  // namespace
}  // namespace raftlock::raft::testing
