// Elections: randomised timeouts, pre-vote, check-quorum, leader lease, the vote rules and terms.
#include <gtest/gtest.h>

#include "raft/core.h"
#include "raft_test_util.h"

namespace raftlock::raft::testing {
namespace {

TEST(Election, SingleVoterBecomesLeaderAndCommitsNoop) {
  Cluster c({1});
  c.elect(1);
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
  EXPECT_EQ(c.core(1).term(), 1u);
  ASSERT_EQ(c.node(1).applied.size(), 1u);
  EXPECT_EQ(c.node(1).applied[0].type, EntryType::kNoop);
  EXPECT_EQ(c.node(1).applied[0].term, 1u);
  EXPECT_EQ(c.core(1).commit_index(), 1u);
  EXPECT_EQ(c.node(1).storage.hard_state, (HardState{1, 1, 1}));
}

TEST(Election, TimeoutIsRandomisedWithinOneToTwoElectionTimeouts) {
  std::set<int> seen;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    Config cfg = test_config(1);
    cfg.random_seed = seed;
    InitialState init;
    init.bootstrap_config = voters({1, 2, 3});
    Core core(cfg, init);
    int ticks = 0;
    while (core.role() == Role::kFollower && ticks < 100) {
      core.tick();
      ++ticks;
    }
    EXPECT_EQ(core.role(), Role::kPreCandidate);
    EXPECT_GE(ticks, cfg.election_ticks);
    EXPECT_LT(ticks, 2 * cfg.election_ticks);
    seen.insert(ticks);
  }
  EXPECT_GT(seen.size(), 3u);  // actually randomised
}

TEST(Election, ThreeNodesElectALeaderThroughPreVote) {
  Cluster c({1, 2, 3});
  c.core(1).campaign();
  auto pre = c.take([](const Message& m) { return m.type == MessageType::kPreVote; });
  ASSERT_EQ(pre.size(), 2u);
  EXPECT_EQ(pre[0].term, 1u);       // asks for term 1 ...
  EXPECT_EQ(c.core(1).term(), 0u);  // ... without adopting it
  EXPECT_EQ(c.core(1).role(), Role::kPreCandidate);
  for (auto& m : pre) c.queue().push_back(m);
  c.deliver_all();
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
  EXPECT_EQ(c.core(1).term(), 1u);
  for (NodeId id : {2, 3}) {
    EXPECT_EQ(c.core(id).role(), Role::kFollower);
    EXPECT_EQ(c.core(id).leader_id(), 1u);
    EXPECT_EQ(c.core(id).term(), 1u);
  }
  // The noop is committed and applied everywhere after one heartbeat.
  c.tick_all();
  for (NodeId id : {1, 2, 3}) EXPECT_EQ(c.core(id).commit_index(), 1u);
}

TEST(Election, WithoutPreVoteCandidateBumpsTermAndVotesForItself) {
  Cluster c({1, 2, 3}, [](Config& cfg) { cfg.pre_vote = false; });
  c.core(1).campaign();
  EXPECT_EQ(c.core(1).role(), Role::kCandidate);
  EXPECT_EQ(c.core(1).term(), 1u);
  EXPECT_EQ(c.core(1).status().vote, 1u);
  auto votes = c.take([](const Message& m) { return m.type == MessageType::kVote; });
  ASSERT_EQ(votes.size(), 2u);
  EXPECT_EQ(c.node(1).storage.hard_state.vote, 1u);  // persisted before the requests go out
}

TEST(Election, PartitionedNodeDoesNotBumpTermWithPreVote) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 100; ++i) c.tick_all();
  EXPECT_EQ(c.core(3).term(), 1u);  // pre-votes never succeed, so the term stays
  EXPECT_NE(c.core(3).role(), Role::kLeader);
  c.heal();
  for (int i = 0; i < 5; ++i) c.tick_all();
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
  EXPECT_EQ(c.core(1).term(), 1u);
  EXPECT_EQ(c.core(3).leader_id(), 1u);
}

TEST(Election, WithoutPreVotePartitionedNodeDisruptsOnRejoin) {
  // The contrast case, so the test above is known to exercise pre-vote.
  Cluster c({1, 2, 3}, [](Config& cfg) {
    cfg.pre_vote = false;
    cfg.check_quorum = false;
  });
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 100; ++i) c.tick_all();
  EXPECT_GT(c.core(3).term(), 1u);
}

TEST(Election, PreVoteRejectedByVoterThatHeardFromLeaderRecently) {
  // check_quorum off, so the rejection comes from the pre-vote rule itself.
  Cluster c({1, 2, 3}, [](Config& cfg) { cfg.check_quorum = false; });
  c.elect(1);
  Message pv = msg(MessageType::kPreVote, 3, 2, 2);
  pv.index = c.core(3).last_index();
  pv.log_term = 1;
  ASSERT_TRUE(c.core(2).step(pv).ok());
  auto out = c.take([](const Message& m) { return m.type == MessageType::kPreVoteResponse; });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].reject);
  EXPECT_EQ(c.core(2).term(), 1u);
  // After an election timeout without hearing from the leader it grants.
  c.tick(2, 10);
  ASSERT_TRUE(c.core(2).step(pv).ok());
  out = c.take([](const Message& m) { return m.type == MessageType::kPreVoteResponse; });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].reject);
  EXPECT_EQ(out[0].term, 2u);
  EXPECT_EQ(c.core(2).term(), 1u);  // a pre-vote never changes the voter's term
}

TEST(Election, PreVoteRejectedWhenCandidateLogIsBehind) {
  InitialState init;
  init.bootstrap_config = voters({1, 2, 3});
  init.hard_state.term = 2;
  init.entries = {entry(1, 1), entry(2, 2)};
  Core voter(test_config(2), init);
  Message pv = msg(MessageType::kPreVote, 3, 2, 3);
  pv.index = 5;
  pv.log_term = 1;  // longer, but older last term
  ASSERT_TRUE(voter.step(pv).ok());
  auto out = drain(voter);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].reject);
  EXPECT_EQ(out[0].term, 2u);
}

TEST(Election, CheckQuorumLeaderStepsDownWhenIsolated) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.isolate(1);
  // The followers answered right after the election, so the first check (tick 10) passes; the
  // second (tick 20) finds no one heard from.
  c.tick(1, 19);
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
  c.tick(1, 1);
  EXPECT_EQ(c.core(1).role(), Role::kFollower);
  EXPECT_EQ(c.core(1).leader_id(), kNoNode);
}

TEST(Election, LeaderWithActiveQuorumStaysLeader) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 50; ++i) c.tick_all();
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
}

TEST(Election, WithoutCheckQuorumIsolatedLeaderStays) {
  Cluster c({1, 2, 3}, [](Config& cfg) { cfg.check_quorum = false; });
  c.elect(1);
  c.isolate(1);
  c.tick(1, 50);
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
}

TEST(Election, FollowerInLeaseIgnoresHigherTermVoteRequest) {
  Cluster c({1, 2, 3}, [](Config& cfg) { cfg.pre_vote = false; });
  c.elect(1);
  Message v = msg(MessageType::kVote, 3, 2, 7);
  v.index = 100;
  v.log_term = 6;
  ASSERT_TRUE(c.core(2).step(v).ok());
  EXPECT_EQ(c.core(2).term(), 1u);
  EXPECT_TRUE(c.take([](const Message& m) { return m.to == 3; }).empty());
  // Out of lease, the same request is granted and the term adopted.
  c.tick(2, 10);
  ASSERT_TRUE(c.core(2).step(v).ok());
  EXPECT_EQ(c.core(2).term(), 7u);
  auto out = c.take([](const Message& m) { return m.type == MessageType::kVoteResponse; });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].reject);
}

TEST(Election, LeaderIgnoresHigherTermVoteWithCheckQuorumButNotWithout) {
  {
    Cluster c({1, 2, 3}, [](Config& cfg) { cfg.pre_vote = false; });
    c.elect(1);
    Message v = msg(MessageType::kVote, 3, 1, 5);
    v.index = 100;
    v.log_term = 4;
    ASSERT_TRUE(c.core(1).step(v).ok());
    EXPECT_EQ(c.core(1).role(), Role::kLeader);
    EXPECT_EQ(c.core(1).term(), 1u);
  }
  {
    Cluster c({1, 2, 3}, [](Config& cfg) {
      cfg.pre_vote = false;
      cfg.check_quorum = false;
    });
    c.elect(1);
    Message v = msg(MessageType::kVote, 3, 1, 5);
    v.index = 100;
    v.log_term = 4;
    ASSERT_TRUE(c.core(1).step(v).ok());
    EXPECT_EQ(c.core(1).role(), Role::kFollower);
    EXPECT_EQ(c.core(1).term(), 5u);
  }
}

TEST(Election, VoteRequiresUpToDateLog) {
  InitialState init;
  init.bootstrap_config = voters({1, 2, 3});
  init.hard_state.term = 2;
  init.entries = {entry(1, 1), entry(2, 2), entry(3, 2)};
  struct Case {
    Index index;
    Term log_term;
    bool granted;
  } cases[] = {
      {3, 2, true},   // same last entry
      {4, 2, true},   // same term, longer
      {2, 2, false},  // same term, shorter
      {9, 1, false},  // older last term
      {1, 3, true},   // newer last term, however short
  };
  for (const Case& tc : cases) {
    Core voter(test_config(2), init);
    Message v = msg(MessageType::kVote, 3, 2, 3);
    v.index = tc.index;
    v.log_term = tc.log_term;
    ASSERT_TRUE(voter.step(v).ok());
    auto out = of_type(drain(voter), MessageType::kVoteResponse);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].reject, !tc.granted) << tc.index << "/" << tc.log_term;
    EXPECT_EQ(voter.term(), 3u);
    EXPECT_EQ(voter.status().vote, tc.granted ? 3u : kNoNode);
  }
}

TEST(Election, OneVotePerTerm) {
  InitialState init;
  init.bootstrap_config = voters({1, 2, 3});
  Core voter(test_config(1), init);
  Message v2 = msg(MessageType::kVote, 2, 1, 1);
  Message v3 = msg(MessageType::kVote, 3, 1, 1);
  ASSERT_TRUE(voter.step(v2).ok());
  ASSERT_TRUE(voter.step(v3).ok());
  ASSERT_TRUE(voter.step(v2).ok());  // a repeated request from the same candidate is granted again
  auto out = of_type(drain(voter), MessageType::kVoteResponse);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_FALSE(out[0].reject);
  EXPECT_TRUE(out[1].reject);
  EXPECT_FALSE(out[2].reject);
}

TEST(Election, VoteIsPersistedAcrossRestart) {
  Cluster c({1, 2, 3}, [](Config& cfg) {
    cfg.pre_vote = false;
    cfg.check_quorum = false;
  });
  Message v2 = msg(MessageType::kVote, 2, 1, 1);
  ASSERT_TRUE(c.core(1).step(v2).ok());
  c.drop_all();
  c.restart(1);
  Message v3 = msg(MessageType::kVote, 3, 1, 1);
  ASSERT_TRUE(c.core(1).step(v3).ok());
  auto out = c.take([](const Message& m) { return m.type == MessageType::kVoteResponse; });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].reject);
  EXPECT_EQ(c.core(1).status().vote, 2u);
}

TEST(Election, CandidateLosesWhenQuorumRejects) {
  Cluster c({1, 2, 3}, [](Config& cfg) { cfg.pre_vote = false; });
  c.core(1).campaign();
  c.drop_all();
  for (NodeId from : {2, 3}) {
    Message r = msg(MessageType::kVoteResponse, from, 1, 1);
    r.reject = true;
    ASSERT_TRUE(c.core(1).step(r).ok());
  }
  EXPECT_EQ(c.core(1).role(), Role::kFollower);
  EXPECT_EQ(c.core(1).term(), 1u);
}

TEST(Election, CandidateStepsDownOnAppendFromLeaderOfSameTerm) {
  Cluster c({1, 2, 3}, [](Config& cfg) { cfg.pre_vote = false; });
  c.core(1).campaign();
  c.drop_all();
  Message a = msg(MessageType::kAppend, 2, 1, 1);
  ASSERT_TRUE(c.core(1).step(a).ok());
  EXPECT_EQ(c.core(1).role(), Role::kFollower);
  EXPECT_EQ(c.core(1).leader_id(), 2u);
}

TEST(Election, CandidateFollowsSnapshotSenderAndRejectsReads) {
  Cluster c({1, 2, 3}, [](Config& cfg) { cfg.pre_vote = false; });
  c.core(1).campaign();
  c.drop_all();
  Message ri = msg(MessageType::kReadIndex, 3, 1, 1);
  ri.context = "q";
  ASSERT_TRUE(c.core(1).step(ri).ok());
  auto out = c.take([](const Message& m) { return m.type == MessageType::kReadIndexResponse; });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].reject);
  EXPECT_EQ(c.core(1).read_index("x").error().code, ErrorCode::kNoLeader);
  Message s = msg(MessageType::kSnapshot, 2, 1, 1);
  s.snapshot =
      Snapshot{SnapshotMeta{3, 1, voters({1, 2, 3})}, std::make_shared<const std::string>("d")};
  ASSERT_TRUE(c.core(1).step(s).ok());
  EXPECT_EQ(c.core(1).role(), Role::kFollower);
  EXPECT_EQ(c.core(1).leader_id(), 2u);
  EXPECT_EQ(c.core(1).commit_index(), 3u);
}

TEST(Election, HigherTermMessageMakesLeaderFollow) {
  Cluster c({1, 2, 3});
  c.elect(1);
  Message hb = msg(MessageType::kHeartbeat, 2, 1, 5);
  ASSERT_TRUE(c.core(1).step(hb).ok());
  EXPECT_EQ(c.core(1).role(), Role::kFollower);
  EXPECT_EQ(c.core(1).term(), 5u);
  EXPECT_EQ(c.core(1).leader_id(), 2u);
}

TEST(Election, LowerTermAppendGetsOurTermSoStaleLeaderStepsDown) {
  Cluster c({1, 2, 3});
  c.elect(1);
  // Node 2 is at a later term (as if another leader had been elected).
  Message hb = msg(MessageType::kHeartbeat, 3, 2, 4);
  ASSERT_TRUE(c.core(2).step(hb).ok());
  c.drop_all();
  ASSERT_EQ(c.core(2).term(), 4u);
  // The stale leader's append is answered with term 4 ...
  Message stale = msg(MessageType::kAppend, 1, 2, 1);
  stale.index = 1;
  stale.log_term = 1;
  ASSERT_TRUE(c.core(2).step(stale).ok());
  auto out = c.take([](const Message& m) { return m.to == 1; });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, MessageType::kAppendResponse);
  EXPECT_EQ(out[0].term, 4u);
  EXPECT_EQ(c.core(2).leader_id(), 3u);  // ... and does not change the follower's mind
  // ... which makes the stale leader step down.
  ASSERT_TRUE(c.core(1).step(out[0]).ok());
  EXPECT_EQ(c.core(1).role(), Role::kFollower);
  EXPECT_EQ(c.core(1).term(), 4u);
}

TEST(Election, LowerTermMessagesIgnoredWithoutPreVoteOrCheckQuorum) {
  InitialState init;
  init.bootstrap_config = voters({1, 2, 3});
  init.hard_state.term = 5;
  Config cfg = test_config(2);
  cfg.pre_vote = false;
  cfg.check_quorum = false;
  Core follower(cfg, init);
  Message stale = msg(MessageType::kAppend, 1, 2, 3);
  ASSERT_TRUE(follower.step(stale).ok());
  Message vote = msg(MessageType::kVote, 3, 2, 4);
  ASSERT_TRUE(follower.step(vote).ok());
  EXPECT_TRUE(drain(follower).empty());
  EXPECT_EQ(follower.term(), 5u);
  EXPECT_EQ(follower.leader_id(), kNoNode);
}

TEST(Election, LowerTermPreVoteRejectedWithOurTerm) {
  InitialState init;
  init.bootstrap_config = voters({1, 2, 3});
  init.hard_state.term = 5;
  Core voter(test_config(2), init);
  Message pv = msg(MessageType::kPreVote, 3, 2, 3);
  ASSERT_TRUE(voter.step(pv).ok());
  auto out = drain(voter);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, MessageType::kPreVoteResponse);
  EXPECT_TRUE(out[0].reject);
  EXPECT_EQ(out[0].term, 5u);
  // A pre-candidate that gets it adopts the term and gives up.
  InitialState init3;
  init3.bootstrap_config = voters({1, 2, 3});
  init3.hard_state.term = 2;
  Core pre(test_config(3), init3);
  pre.campaign();
  drain(pre);
  out[0].to = 3;
  ASSERT_TRUE(pre.step(out[0]).ok());
  EXPECT_EQ(pre.role(), Role::kFollower);
  EXPECT_EQ(pre.term(), 5u);
}

TEST(Election, HardStateEmittedWhenTermOrVoteChange) {
  InitialState init;
  init.bootstrap_config = voters({1, 2, 3});
  Config cfg = test_config(1);
  cfg.pre_vote = false;
  Core core(cfg, init);
  EXPECT_FALSE(core.has_ready());
  core.campaign();
  Ready rd = core.ready();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(*rd.hard_state, (HardState{1, 1, 0}));
  ASSERT_TRUE(rd.soft_state.has_value());
  EXPECT_EQ(rd.soft_state->role, Role::kCandidate);
  core.advance(rd);
  EXPECT_FALSE(core.has_ready());
  Ready again = core.ready();
  EXPECT_FALSE(again.hard_state.has_value());
  EXPECT_FALSE(again.soft_state.has_value());
}

TEST(Election, NodeOutsideConfigurationOrLearnerNeverCampaigns) {
  for (NodeId id : {NodeId{4}, NodeId{9}}) {
    InitialState init;
    init.bootstrap_config = voters({1, 2, 3}, {4});
    Core core(test_config(id), init);
    for (int i = 0; i < 100; ++i) core.tick();
    core.campaign();
    EXPECT_EQ(core.role(), Role::kFollower);
    EXPECT_TRUE(drain(core).empty());
  }
}

TEST(Names, EveryMessageTypeAndRoleHasAName) {
  std::set<std::string> names;
  for (int t = 0; t <= static_cast<int>(MessageType::kForwardResponse); ++t) {
    names.insert(message_type_name(static_cast<MessageType>(t)));
  }
  EXPECT_EQ(names.size(), 14u);
  EXPECT_FALSE(names.count("Unknown"));
  EXPECT_STREQ(message_type_name(static_cast<MessageType>(77)), "Unknown");
  EXPECT_STREQ(role_name(Role::kFollower), "follower");
  EXPECT_STREQ(role_name(Role::kPreCandidate), "pre-candidate");
  EXPECT_STREQ(role_name(Role::kCandidate), "candidate");
  EXPECT_STREQ(role_name(Role::kLeader), "leader");
  EXPECT_STREQ(role_name(static_cast<Role>(9)), "unknown");
}

TEST(Election, CampaignOnLeaderIsIgnored) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.core(1).campaign();
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
  EXPECT_EQ(c.core(1).term(), 1u);
}

TEST(Election, RepeatedElectionsAfterLeaderFailure) {
  Cluster c({1, 2, 3, 4, 5});
  c.elect(1);
  ASSERT_TRUE(c.propose(1, "a").ok());
  c.isolate(1);
  for (int i = 0; i < 60; ++i) c.tick_all();
  NodeId leader = kNoNode;
  for (NodeId id : {2, 3, 4, 5}) {
    if (c.core(id).role() == Role::kLeader) leader = id;
  }
  ASSERT_NE(leader, kNoNode);
  EXPECT_EQ(c.core(leader).term(), 2u);
  ASSERT_TRUE(c.propose(leader, "b").ok());
  c.tick_all(2);
  for (NodeId id : {2, 3, 4, 5}) {
    ASSERT_FALSE(c.node(id).applied.empty());
    EXPECT_EQ(c.node(id).applied.back().data, "b");
  }
}

}  // namespace
}  // namespace raftlock::raft::testing
