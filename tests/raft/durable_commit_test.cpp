// A follower of a 3-voter cluster commits by itself once it holds an entry durably and the leader
// has announced (kDurable) that it holds it durably too: two copies are a quorum.
#include <gtest/gtest.h>

#include "raft/core.h"
#include "raft_test_util.h"

namespace raftlock::raft::testing {
namespace {

// The leader proposes "a" and sends its appends; nothing is delivered yet.
struct Proposed {
  Index index = 0;
  Ready leader_ready;                   // persisted by the caller's choice (advance)
  std::map<NodeId, Message> append_to;  // the append for each follower
};

Proposed propose_without_delivering(Cluster& c, NodeId leader) {
  Proposed p;
  EXPECT_TRUE(c.core(leader).propose("a").ok());
  p.index = c.core(leader).last_index();
  p.leader_ready = c.core(leader).ready();
  for (const Message& m : of_type(p.leader_ready.messages, MessageType::kAppend)) {
    p.append_to[m.to] = m;
  }
  return p;
}

// The leader's own write completes; returns the announcements it then sends.
std::vector<Message> leader_write_completes(Cluster& c, NodeId leader, const Proposed& p) {
  c.core(leader).advance(p.leader_ready);
  return of_type(drain(c.core(leader)), MessageType::kDurable);
}

// Node 1 leads three voters and proposed "a"; its own write completed and it announced it.
struct Announced {
  Index committed = 0;  // the commit index before the proposal
  Proposed p;
  std::vector<Message> durable;  // its announcements, one per follower
};

Announced propose_and_announce(Cluster& c) {
  c.elect(1);
  Announced a;
  a.committed = c.core(1).commit_index();
  a.p = propose_without_delivering(c, 1);
  a.durable = leader_write_completes(c, 1, a.p);
  EXPECT_EQ(a.durable.size(), 2u);
  return a;
}

// Steps the announcement addressed to `follower` (its write is left to the caller).
void step_announcement(Cluster& c, const std::vector<Message>& durable, NodeId follower) {
  for (const Message& m : durable) {
    if (m.to == follower) {
      EXPECT_TRUE(c.core(follower).step(m).ok());
    }
  }
}

// The follower steps the message and writes what it must; its own messages are returned.
std::vector<Message> follower_handles(Cluster& c, NodeId follower, const Message& m,
                                      std::vector<Entry>* applied) {
  EXPECT_TRUE(c.core(follower).step(m).ok());
  return drain(c.core(follower), applied);
}

TEST(DurableCommit, AFollowerCommitsWithTheLeadersAnnouncementBeforeTheLeaderKnows) {
  Cluster c({1, 2, 3});
  c.elect(1);
  const Index committed = c.core(1).commit_index();
  Proposed p = propose_without_delivering(c, 1);
  ASSERT_EQ(p.append_to.size(), 2u);
  // Follower 2 stores the entry durably; its acknowledgement is held back.
  std::vector<Entry> applied;
  auto acks = follower_handles(c, 2, p.append_to.at(2), &applied);
  ASSERT_EQ(of_type(acks, MessageType::kAppendResponse).size(), 1u);
  EXPECT_EQ(c.core(2).commit_index(), committed);
  // The leader's own write completes: it announces its durable index to both followers.
  c.core(1).advance(p.leader_ready);
  Ready next = c.core(1).ready();
  auto durable = of_type(next.messages, MessageType::kDurable);
  ASSERT_EQ(durable.size(), 2u);
  for (const Message& m : durable) {
    EXPECT_EQ(m.index, p.index);
    EXPECT_EQ(m.log_term, c.core(1).term());
  }
  c.core(1).advance(next);
  EXPECT_EQ(c.core(1).commit_index(), committed);  // no follower has answered the leader
  // Follower 2 commits and applies on the announcement alone.
  for (const Message& m : durable) {
    if (m.to != 2) continue;
    auto out = follower_handles(c, 2, m, &applied);
    EXPECT_TRUE(out.empty()) << "a kDurable is not answered";
  }
  EXPECT_EQ(c.core(2).commit_index(), p.index);
  ASSERT_FALSE(applied.empty());
  EXPECT_EQ(applied.back().index, p.index);
  EXPECT_EQ(applied.back().data, "a");
  // The leader commits when the acknowledgement arrives, and sends follower 2 no append for the
  // commit index it already has.
  for (const Message& m : acks) ASSERT_TRUE(c.core(1).step(m).ok());
  EXPECT_EQ(c.core(1).commit_index(), p.index);
  Ready after = c.core(1).ready();
  for (const Message& m : of_type(after.messages, MessageType::kAppend)) {
    EXPECT_NE(m.to, 2u) << "an append only for a commit index the follower committed itself";
  }
  c.core(1).advance(after);
}

TEST(DurableCommit, AnAnnouncementAheadOfTheFollowersOwnWriteWaitsForIt) {
  Cluster c({1, 2, 3});
  const auto [committed, p, durable] = propose_and_announce(c);
  // Follower 3 receives the append and the announcement, but its write has not completed.
  ASSERT_TRUE(c.core(3).step(p.append_to.at(3)).ok());
  step_announcement(c, durable, 3);
  EXPECT_EQ(c.core(3).commit_index(), committed) << "only one durable copy so far";
  Ready rd = c.core(3).ready();
  ASSERT_EQ(rd.entries.size(), 1u);
  for (const Entry& e : rd.committed_entries) EXPECT_LT(e.index, p.index);
  c.core(3).advance(rd);  // now its copy is durable too
  EXPECT_EQ(c.core(3).commit_index(), p.index);
  std::vector<Entry> applied;
  drain(c.core(3), &applied);
  ASSERT_FALSE(applied.empty());
  EXPECT_EQ(applied.back().index, p.index);
}

TEST(DurableCommit, AFollowerWhoseLogDiffersThereIgnoresTheAnnouncement) {
  Cluster c({1, 2, 3});
  const auto [committed, p, durable] = propose_and_announce(c);
  // The append to follower 2 was lost: it does not hold the entry the announcement names.
  step_announcement(c, durable, 2);
  drain(c.core(2));
  EXPECT_EQ(c.core(2).commit_index(), committed);
  // An announcement naming another term at an index it holds is refused outright.
  Message forged = durable.front();
  forged.to = 2;
  forged.log_term = forged.term + 1;
  EXPECT_FALSE(c.core(2).step(forged).ok());
  // The entry arrives later: the announcement, which came before it, proved nothing then and is
  // not remembered.
  std::vector<Entry> applied;
  follower_handles(c, 2, p.append_to.at(2), &applied);
  EXPECT_EQ(c.core(2).commit_index(), committed)
      << "the announcement came before the entry: it proved nothing then";
}

TEST(DurableCommit, AReadIndexCoversWhatAFollowerMayHaveCommittedItself) {
  Cluster c({1, 2, 3});
  const auto [committed, p, durable] = propose_and_announce(c);
  // Follower 2 commits and applies the entry (a client on it may now have seen its effect)...
  follower_handles(c, 2, p.append_to.at(2), nullptr);
  step_announcement(c, durable, 2);
  ASSERT_EQ(c.core(2).commit_index(), p.index);
  ASSERT_LT(c.core(1).commit_index(), p.index);
  // ... so a read started at the leader afterwards must not be served below it, although the
  // leader's own commit index has not reached it yet.
  c.queue().clear();
  ASSERT_TRUE(c.core(1).read_index("r").ok());
  c.deliver_all();
  ASSERT_EQ(c.node(1).read_states.size(), 1u);
  EXPECT_GE(c.node(1).read_states[0].index, p.index);
}

TEST(DurableCommit, FiveVotersNeedThreeCopies) {
  Cluster c({1, 2, 3, 4, 5});
  c.elect(1);
  const Index committed = c.core(1).commit_index();
  Proposed p = propose_without_delivering(c, 1);
  ASSERT_EQ(p.append_to.size(), 4u);
  c.core(1).advance(p.leader_ready);
  EXPECT_TRUE(of_type(drain(c.core(1)), MessageType::kDurable).empty());
  // Even a forged announcement does not let a follower of five commit with two copies.
  follower_handles(c, 2, p.append_to.at(2), nullptr);
  Message m = msg(MessageType::kDurable, 1, 2, c.core(1).term());
  m.index = p.index;
  m.log_term = c.core(1).term();
  ASSERT_TRUE(c.core(2).step(m).ok());
  drain(c.core(2));
  EXPECT_EQ(c.core(2).commit_index(), committed);
}

TEST(DurableCommit, AFollowerThatAcknowledgedFirstLearnsTheCommitTheUsualWay) {
  Cluster c({1, 2, 3});
  c.elect(1);
  Proposed p = propose_without_delivering(c, 1);
  // Both followers store and acknowledge before the leader's write completes: they commit it.
  for (NodeId f : {2, 3}) {
    for (const Message& m : follower_handles(c, f, p.append_to.at(f), nullptr)) {
      ASSERT_TRUE(c.core(1).step(m).ok());
    }
  }
  ASSERT_EQ(c.core(1).commit_index(), p.index);
  c.core(1).advance(p.leader_ready);
  auto out = drain(c.core(1));
  EXPECT_TRUE(of_type(out, MessageType::kDurable).empty()) << "nothing to announce";
  auto appends = of_type(out, MessageType::kAppend);
  ASSERT_EQ(appends.size(), 2u);
  for (const Message& m : appends) EXPECT_EQ(m.commit, p.index);
}

TEST(DurableCommit, AnEntryOfAnEarlierTermIsNotCommittedByCopies) {
  // Figure 8: two durable copies commit an entry of the leader's term (and so everything before
  // it), never an earlier term's entry by itself. Node 3 is driven by hand.
  Cluster c({1, 2, 3});
  Core& follower = c.core(3);
  Message old = msg(MessageType::kAppend, 1, 3, 1);
  old.entries = {entry(1, 1, "old")};
  ASSERT_TRUE(follower.step(old).ok());
  drain(follower);  // entry 1 (term 1) is durable on node 3, not committed
  // Node 2 leads term 2: its no-op at index 2 reaches node 3, whose write is not done yet.
  Message noop = msg(MessageType::kAppend, 2, 3, 2);
  noop.index = 1;
  noop.log_term = 1;
  noop.entries = {Entry{2, 2, EntryType::kNoop, ""}};
  ASSERT_TRUE(follower.step(noop).ok());
  Message durable = msg(MessageType::kDurable, 2, 3, 2);
  durable.index = 2;
  durable.log_term = 2;
  ASSERT_TRUE(follower.step(durable).ok());
  EXPECT_EQ(follower.commit_index(), 0u) << "entry 1 is of term 1: two copies do not commit it";
  Ready rd = follower.ready();
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_TRUE(rd.committed_entries.empty());
  follower.advance(rd);  // the no-op is durable here too: it commits, and entry 1 with it
  EXPECT_EQ(follower.commit_index(), 2u);
  std::vector<Entry> applied;
  drain(follower, &applied);
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[0].data, "old");
}

}  // namespace
}  // namespace raftlock::raft::testing
