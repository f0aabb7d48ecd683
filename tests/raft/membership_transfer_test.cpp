// Leadership transfer and single-server membership changes (learners, promote, remove).
#include <gtest/gtest.h>

#include "raft/core.h"
#include "raft_test_util.h"

namespace raftlock::raft::testing {
namespace {

ConfChange add_learner(NodeId id) {
  return ConfChange{ConfChangeType::kAddLearner, id, "addr-" + std::to_string(id)};
}
ConfChange promote(NodeId id) {
  return ConfChange{ConfChangeType::kPromote, id, ""};
}
ConfChange remove(NodeId id) {
  return ConfChange{ConfChangeType::kRemove, id, ""};
}

// ---------------------------------------------------------------- transfer

TEST(Transfer, UpToDateTargetGetsTimeoutNowAndWins) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  const size_t trace_before = c.trace().size();
  ASSERT_TRUE(c.core(1).transfer_leadership(2).ok());
  EXPECT_EQ(c.core(1).status().transferee, 2u);
  auto busy = c.core(1).propose("x");
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().code, ErrorCode::kBusy);
  auto tn = c.take([](const Message& m) { return m.type == MessageType::kTimeoutNow; });
  ASSERT_EQ(tn.size(), 1u);
  EXPECT_EQ(tn[0].to, 2u);
  c.queue().push_back(tn[0]);
  c.deliver_all();
  EXPECT_EQ(c.core(2).role(), Role::kLeader);  // won although 3 was in lease with leader 1
  EXPECT_EQ(c.core(2).term(), 2u);
  EXPECT_EQ(c.core(1).role(), Role::kFollower);
  EXPECT_EQ(c.core(1).leader_id(), 2u);
  // The vote requests skipped pre-vote and were marked as a transfer.
  bool saw_vote = false;
  for (size_t i = trace_before; i < c.trace().size(); ++i) {
    const Message& m = c.trace()[i];
    EXPECT_NE(m.type, MessageType::kPreVote);
    if (m.type == MessageType::kVote) {
      saw_vote = true;
      EXPECT_EQ(m.context, "transfer");
    }
  }
  EXPECT_TRUE(saw_vote);
}

TEST(Transfer, LaggingTargetIsCaughtUpFirst) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.isolate(2);
  ASSERT_TRUE(c.propose(1, "a").ok());
  ASSERT_TRUE(c.propose(1, "b").ok());
  c.heal();
  c.core(1).report_unreachable(2);
  ASSERT_TRUE(c.core(1).transfer_leadership(2).ok());
  auto tn = c.take([](const Message& m) { return m.type == MessageType::kTimeoutNow; });
  EXPECT_TRUE(tn.empty());  // not yet: 2 is behind
  c.deliver_all();
  EXPECT_EQ(c.core(2).role(), Role::kLeader);
  EXPECT_EQ(c.core(2).last_index(), 4u);  // 3 old entries + its noop
}

TEST(Transfer, AbortedAfterAnElectionTimeout) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.isolate(2);
  ASSERT_TRUE(c.propose(1, "a").ok());
  ASSERT_TRUE(c.core(1).transfer_leadership(2).ok());
  for (int i = 0; i < 9; ++i) c.tick(1);
  EXPECT_EQ(c.core(1).status().transferee, 2u);
  c.tick(1);
  EXPECT_EQ(c.core(1).status().transferee, kNoNode);
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
  EXPECT_TRUE(c.core(1).propose("again").ok());
}

TEST(Transfer, Validation) {
  Cluster c(voters({1, 2, 3}, {4}));
  Status none = c.core(1).transfer_leadership(2);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ErrorCode::kNoLeader);
  c.elect(1);
  Status follower = c.core(2).transfer_leadership(3);
  ASSERT_FALSE(follower.ok());
  EXPECT_EQ(follower.error().code, ErrorCode::kNotLeader);
  for (NodeId bad : {NodeId{1}, NodeId{4}, NodeId{9}}) {
    Status st = c.core(1).transfer_leadership(bad);
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  }
  ASSERT_TRUE(c.core(1).transfer_leadership(2).ok());
  ASSERT_TRUE(c.core(1).transfer_leadership(2).ok());  // idempotent
  auto busy = c.core(1).propose_conf_change(add_learner(5));
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().code, ErrorCode::kBusy);
}

TEST(Transfer, TimeoutNowIgnoredByLearnerAndLeader) {
  Cluster c(voters({1, 2}, {3}));
  c.elect(1);
  ASSERT_TRUE(c.core(3).step(msg(MessageType::kTimeoutNow, 1, 3, 1)).ok());
  EXPECT_EQ(c.core(3).role(), Role::kFollower);
  ASSERT_TRUE(c.core(1).step(msg(MessageType::kTimeoutNow, 2, 1, 1)).ok());
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
  EXPECT_EQ(c.core(1).term(), 1u);
}

// ---------------------------------------------------------------- membership

TEST(Membership, LearnerReplicatesButDoesNotCountInQuorum) {
  Cluster c(voters({1, 2}, {3}));
  c.elect(1);
  c.tick_all();
  ASSERT_EQ(c.core(3).commit_index(), 1u);  // the learner replicates
  c.isolate(2);
  ASSERT_TRUE(c.propose(1, "a").ok());
  EXPECT_EQ(c.core(3).last_index(), 2u);
  EXPECT_EQ(c.core(1).commit_index(), 1u);  // leader + learner is not a quorum of {1,2}
  c.heal();
  c.tick_all(2);
  EXPECT_EQ(c.core(1).commit_index(), 2u);
}

TEST(Membership, LearnerVoteDoesNotCount) {
  Cluster c(voters({1, 2, 3}, {4}), [](Config& cfg) { cfg.pre_vote = false; });
  c.core(1).campaign();
  c.drop_all();
  Message grant = msg(MessageType::kVoteResponse, 4, 1, 1);
  ASSERT_TRUE(c.core(1).step(grant).ok());
  EXPECT_EQ(c.core(1).role(), Role::kCandidate);  // 1 + learner is not 2 of 3 voters
  Message grant2 = msg(MessageType::kVoteResponse, 2, 1, 1);
  ASSERT_TRUE(c.core(1).step(grant2).ok());
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
}

TEST(Membership, AddLearnerThenPromote) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  // A joining node starts from the cluster's founding configuration (it is not in it).
  c.add_node(4, voters({1, 2, 3}));
  auto r = c.core(1).propose_conf_change(add_learner(4));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(c.core(1).config().is_voter(4));
  EXPECT_TRUE(c.core(1).config().contains(4));  // effective on append, before commit
  c.deliver_all();
  c.tick_all(2);
  EXPECT_EQ(c.core(4).last_index(), c.core(1).last_index());
  EXPECT_TRUE(c.core(4).config().contains(4));
  EXPECT_EQ(c.core(4).config().members[3].context, "addr-4");
  ASSERT_TRUE(c.core(1).propose_conf_change(promote(4)).ok());
  c.deliver_all();
  c.tick_all();
  for (NodeId id : {1, 2, 3, 4}) EXPECT_TRUE(c.core(id).config().is_voter(4)) << id;
  EXPECT_EQ(c.core(1).config().quorum(), 3u);
  // With 4 voters, the leader plus one follower no longer commits.
  c.isolate(3);
  c.isolate(4);
  ASSERT_TRUE(c.propose(1, "x").ok());
  const Index before = c.core(1).commit_index();
  EXPECT_LT(before, c.core(1).last_index());
  c.heal();
  c.tick_all(2);
  EXPECT_EQ(c.core(1).commit_index(), c.core(1).last_index());
}

TEST(Membership, OneUncommittedChangeAtATime) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.isolate(2);
  c.isolate(3);
  ASSERT_TRUE(c.core(1).propose_conf_change(add_learner(4)).ok());
  auto second = c.core(1).propose_conf_change(add_learner(5));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, ErrorCode::kBusy);
  c.heal();
  c.tick_all(2);
  EXPECT_TRUE(c.core(1).propose_conf_change(add_learner(5)).ok());
}

TEST(Membership, ChangeRefusedUntilLeaderCommittedInItsTerm) {
  Cluster c({1, 2, 3});
  c.core(1).campaign();
  for (int i = 0; i < 10 && c.core(1).role() != Role::kLeader; ++i) {
    auto votes = c.take([](const Message& m) { return m.type != MessageType::kAppend; });
    for (const Message& m : votes) ASSERT_TRUE(c.core(m.to).step(m).ok());
  }
  ASSERT_EQ(c.core(1).role(), Role::kLeader);
  c.drop_all();
  auto r = c.core(1).propose_conf_change(add_learner(4));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kBusy);
}

TEST(Membership, InvalidChangesAreRejected) {
  Cluster c(voters({1, 2}, {3}));
  c.elect(1);
  c.tick_all();
  struct Case {
    ConfChange change;
  } cases[] = {{add_learner(2)}, {add_learner(0)}, {promote(2)}, {promote(9)}, {remove(9)}};
  for (const Case& tc : cases) {
    auto r = c.core(1).propose_conf_change(tc.change);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
  auto follower = c.core(2).propose_conf_change(add_learner(5));
  ASSERT_FALSE(follower.ok());
  EXPECT_EQ(follower.error().code, ErrorCode::kNotLeader);
  // The last voter cannot be removed.
  Cluster single({1});
  single.elect(1);
  auto last = single.core(1).propose_conf_change(remove(1));
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.error().code, ErrorCode::kInvalidArgument);
}

TEST(Membership, ConfigurationRevertsWhenEntryIsTruncated) {
  InitialState init;
  init.bootstrap_config = voters({1, 2, 3});
  init.hard_state.term = 1;
  init.entries = {entry(1, 1)};
  Core follower(test_config(2), init);
  Message a = msg(MessageType::kAppend, 1, 2, 1);
  a.index = 1;
  a.log_term = 1;
  a.entries = {Entry{1, 2, EntryType::kConfChange, encode_conf_change(add_learner(4))}};
  ASSERT_TRUE(follower.step(a).ok());
  EXPECT_TRUE(follower.config().contains(4));  // effective on append, uncommitted
  drain(follower);
  // A new leader overwrites index 2.
  Message b = msg(MessageType::kAppend, 3, 2, 2);
  b.index = 1;
  b.log_term = 1;
  b.entries = {Entry{2, 2, EntryType::kNoop, ""}};
  ASSERT_TRUE(follower.step(b).ok());
  EXPECT_FALSE(follower.config().contains(4));
  EXPECT_EQ(follower.config(), voters({1, 2, 3}));
}

TEST(Membership, RemovedFollowerStopsCampaigning) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  ASSERT_TRUE(c.core(1).propose_conf_change(remove(3)).ok());
  c.deliver_all();
  c.tick_all();
  EXPECT_FALSE(c.core(1).config().contains(3));
  EXPECT_FALSE(c.core(1).status().progress.count(3));
  // The leader stops replicating to 3 once the removal is in its log, so 3 never learns of it;
  // its pre-votes cannot disturb the remaining pair.
  for (int i = 0; i < 100; ++i) c.tick_all();
  EXPECT_EQ(c.core(1).role(), Role::kLeader);
  EXPECT_EQ(c.core(1).term(), 1u);
  // Responses from the removed node are refused (not a member any more).
  Message late = msg(MessageType::kAppendResponse, 3, 1, 1);
  late.index = 1;
  Status st = c.core(1).step(late);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
}

TEST(Membership, FollowerThatAppendedItsRemovalNeverCampaigns) {
  InitialState init;
  init.bootstrap_config = voters({1, 2, 3});
  Core follower(test_config(3), init);
  Message a = msg(MessageType::kAppend, 1, 3, 1);
  a.entries = {Entry{1, 1, EntryType::kConfChange, encode_conf_change(remove(3))}};
  ASSERT_TRUE(follower.step(a).ok());
  EXPECT_FALSE(follower.config().contains(3));
  drain(follower);
  for (int i = 0; i < 100; ++i) follower.tick();
  EXPECT_EQ(follower.role(), Role::kFollower);
  EXPECT_TRUE(drain(follower).empty());
}

TEST(Membership, LeaderRemovingItselfStepsDownOnceCommitted) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  c.isolate(2);
  c.isolate(3);
  ASSERT_TRUE(c.core(1).propose_conf_change(remove(1)).ok());
  EXPECT_FALSE(c.core(1).config().contains(1));
  EXPECT_EQ(c.core(1).role(), Role::kLeader);  // keeps leading until the removal commits
  c.heal();
  c.deliver_all();
  c.tick(1);
  c.deliver_all();
  EXPECT_EQ(c.core(1).role(), Role::kFollower);
  // The other two elect a leader among themselves.
  for (int i = 0; i < 60 && c.core(2).role() != Role::kLeader && c.core(3).role() != Role::kLeader;
       ++i)
    c.tick_all();
  EXPECT_TRUE(c.core(2).role() == Role::kLeader || c.core(3).role() == Role::kLeader);
  EXPECT_NE(c.core(1).role(), Role::kLeader);
}

TEST(Membership, RemovingAVoterShrinksQuorumAndCommitsPendingEntries) {
  Cluster c({1, 2, 3, 4});
  c.elect(1);
  c.tick_all();
  c.isolate(3);
  c.isolate(4);
  ASSERT_TRUE(c.propose(1, "stuck").ok());
  const Index stuck = c.core(1).last_index();
  EXPECT_LT(c.core(1).commit_index(), stuck);
  c.heal();
  c.isolate(4);
  c.tick_all(2);
  ASSERT_GE(c.core(1).commit_index(), stuck);
  c.heal();
  ASSERT_TRUE(c.core(1).propose_conf_change(remove(4)).ok());
  c.deliver_all();
  c.isolate(3);
  ASSERT_TRUE(c.propose(1, "two-of-three").ok());
  c.tick_all(2);
  EXPECT_EQ(c.core(1).commit_index(), c.core(1).last_index());
}

}  // namespace
}  // namespace raftlock::raft::testing
