// Log replication: consistency check, fast backtracking, batching, flow control, commit rules,
// Ready/advance bookkeeping.
#include <gtest/gtest.h>

#include <set>

#include "raft/core.h"
#include "raft_test_util.h"

namespace raftlock::raft::testing {
namespace {

Config no_prevote(NodeId id) {
  Config cfg = test_config(id);
  cfg.pre_vote = false;
  return cfg;
}

// A core restarted from a log with the given entry terms (index 1..n) at `term`.
std::unique_ptr<Core> core_with_log(std::vector<Term> terms, Term term, Configuration config,
                                    Config cfg) {
  InitialState init;
  init.bootstrap_config = std::move(config);
  init.hard_state.term = term;
  for (size_t i = 0; i < terms.size(); ++i) init.entries.push_back(entry(i + 1, terms[i]));
  return std::make_unique<Core>(cfg, init);
}

// Makes `leader` win an election against `follower` (2-voter cluster), returns the first append.
Message win_election(Core& leader, Core& follower) {
  leader.campaign();
  auto votes = of_type(drain(leader), MessageType::kVote);
  EXPECT_EQ(votes.size(), 1u);
  EXPECT_TRUE(follower.step(votes[0]).ok());
  auto resp = of_type(drain(follower), MessageType::kVoteResponse);
  EXPECT_EQ(resp.size(), 1u);
  EXPECT_FALSE(resp[0].reject);
  EXPECT_TRUE(leader.step(resp[0]).ok());
  EXPECT_EQ(leader.role(), Role::kLeader);
  auto appends = of_type(drain(leader), MessageType::kAppend);
  EXPECT_EQ(appends.size(), 1u);
  return appends.empty() ? Message{} : appends[0];
}

// Delivers messages back and forth between two cores until quiet; counts rejected appends.
size_t exchange(Core& a, Core& b, std::vector<Message> pending) {
  size_t rejects = 0;
  for (int round = 0; round < 100 && !pending.empty(); ++round) {
    std::vector<Message> next;
    for (const Message& m : pending) {
      Core& to = m.to == a.id() ? a : b;
      if (m.type == MessageType::kAppendResponse && m.reject) ++rejects;
      EXPECT_TRUE(to.step(m).ok());
      for (Message& out : drain(to)) next.push_back(std::move(out));
    }
    for (Message& out : drain(a)) next.push_back(std::move(out));
    for (Message& out : drain(b)) next.push_back(std::move(out));
    pending = std::move(next);
  }
  return rejects;
}

TEST(Replication, FastBacktrackingSkipsAWholeTermTheLeaderLacks) {
  // Follower: [1, 2,2,2,2,2]; leader: [1, 3,3]. The probe at index 3 is rejected with
  // (term 2, first index 2); the leader has no term 2, so it jumps straight to index 2.
  auto leader = core_with_log({1, 3, 3}, 3, voters({1, 2}), no_prevote(1));
  auto follower = core_with_log({1, 2, 2, 2, 2, 2}, 3, voters({1, 2}), no_prevote(2));
  Message first = win_election(*leader, *follower);
  EXPECT_EQ(first.index, 3u);
  ASSERT_TRUE(follower->step(first).ok());
  auto resp = drain(*follower);
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_TRUE(resp[0].reject);
  EXPECT_EQ(resp[0].reject_term, 2u);
  EXPECT_EQ(resp[0].reject_hint, 2u);
  ASSERT_TRUE(leader->step(resp[0]).ok());
  auto retry = of_type(drain(*leader), MessageType::kAppend);
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0].index, 1u);  // one round trip, not four
  EXPECT_EQ(exchange(*leader, *follower, retry), 0u);
  EXPECT_EQ(follower->last_index(), 4u);
  EXPECT_EQ(leader->status().progress.at(2).match, 4u);
  EXPECT_EQ(leader->commit_index(), 4u);
}

TEST(Replication, FastBacktrackingJumpsToLeadersLastEntryOfConflictingTerm) {
  // Follower: [1, 2,2,2,2,2,2]; leader: [1, 2,2, 5]. Rejected at index 4 with (term 2, hint 2);
  // the leader's last term-2 entry is 3, so it retries right after it: prev index 3.
  auto leader = core_with_log({1, 2, 2, 5}, 5, voters({1, 2}), no_prevote(1));
  auto follower = core_with_log({1, 2, 2, 2, 2, 2, 2}, 5, voters({1, 2}), no_prevote(2));
  Message first = win_election(*leader, *follower);
  ASSERT_TRUE(follower->step(first).ok());
  auto resp = drain(*follower);
  ASSERT_EQ(resp.size(), 1u);
  ASSERT_TRUE(resp[0].reject);
  ASSERT_TRUE(leader->step(resp[0]).ok());
  auto retry = of_type(drain(*leader), MessageType::kAppend);
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0].index, 3u);
  EXPECT_EQ(retry[0].log_term, 2u);
  exchange(*leader, *follower, retry);
  EXPECT_EQ(follower->last_index(), 5u);  // suffix 4..7 of term 2 replaced by [5, 6(noop)]
  EXPECT_EQ(leader->status().progress.at(2).match, 5u);
}

TEST(Replication, FastBacktrackingWhenFollowerLogIsShort) {
  auto leader = core_with_log({1, 1, 1, 1, 1, 1, 1, 1}, 1, voters({1, 2}), no_prevote(1));
  auto follower = core_with_log({1}, 1, voters({1, 2}), no_prevote(2));
  Message first = win_election(*leader, *follower);
  ASSERT_TRUE(follower->step(first).ok());
  auto resp = drain(*follower);
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_TRUE(resp[0].reject);
  EXPECT_EQ(resp[0].reject_term, 0u);
  EXPECT_EQ(resp[0].reject_hint, 2u);
  ASSERT_TRUE(leader->step(resp[0]).ok());
  auto retry = of_type(drain(*leader), MessageType::kAppend);
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0].index, 1u);
  EXPECT_EQ(retry[0].entries.size(), 8u);
}

TEST(Replication, StaleRejectIsIgnored) {
  auto leader = core_with_log({1, 1, 1}, 1, voters({1, 2}), no_prevote(1));
  auto follower = core_with_log({1, 1, 1}, 1, voters({1, 2}), no_prevote(2));
  Message first = win_election(*leader, *follower);
  exchange(*leader, *follower, {first});
  ASSERT_EQ(leader->status().progress.at(2).match, 4u);
  ASSERT_EQ(leader->status().progress.at(2).state, ProgressState::kReplicate);
  Message stale = msg(MessageType::kAppendResponse, 2, 1, 2);
  stale.reject = true;
  stale.index = 2;  // at or below match: must be old
  stale.reject_hint = 1;
  ASSERT_TRUE(leader->step(stale).ok());
  EXPECT_EQ(leader->status().progress.at(2).match, 4u);
  EXPECT_EQ(leader->status().progress.at(2).next, 5u);
  EXPECT_EQ(leader->status().progress.at(2).state, ProgressState::kReplicate);
  EXPECT_TRUE(drain(*leader).empty());
}

TEST(Replication, DuplicateAndReorderedSuccessNeverMovesMatchBackwards) {
  Cluster c({1, 2, 3});
  c.elect(1);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.propose(1, "x").ok());
  ASSERT_EQ(c.core(1).status().progress.at(2).match, 4u);
  Message old = msg(MessageType::kAppendResponse, 2, 1, 1);
  old.index = 2;
  ASSERT_TRUE(c.core(1).step(old).ok());
  ASSERT_TRUE(c.core(1).step(old).ok());
  EXPECT_EQ(c.core(1).status().progress.at(2).match, 4u);
  EXPECT_EQ(c.core(1).status().progress.at(2).next, 5u);
  EXPECT_EQ(c.core(1).commit_index(), 4u);
}

TEST(Replication, AppendsAreBatchedByMaxMessageBytes) {
  Cluster c({1, 2}, [](Config& cfg) {
    cfg.max_message_bytes = 250;
    cfg.pre_vote = false;
  });
  c.elect(1);
  c.isolate(2);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.core(1).propose(std::string(100, 'a' + i)).ok());
  ASSERT_TRUE(c.core(1).propose(std::string(1000, 'z')).ok());  // bigger than the cap alone
  c.drop_all();
  c.heal();
  c.core(2).tick();                 // nothing; keep follower quiet
  c.core(1).report_unreachable(2);  // back to probing from match + 1
  c.tick(1);                        // heartbeat
  c.deliver_all();
  std::vector<size_t> sizes;
  for (const Message& m : c.trace()) {
    if (m.type == MessageType::kAppend && !m.entries.empty() && m.entries.front().index >= 2) {
      size_t bytes = 0;
      for (const Entry& e : m.entries) bytes += e.data.size();
      sizes.push_back(m.entries.size());
      EXPECT_TRUE(m.entries.size() == 1 || bytes <= 250) << bytes;
    }
  }
  // 5 entries of 100 bytes in batches of 2, then the big one alone.
  EXPECT_EQ(sizes, (std::vector<size_t>{2, 2, 1, 1}));
  EXPECT_EQ(c.core(2).last_index(), 7u);
  EXPECT_EQ(c.core(1).commit_index(), 7u);
}

TEST(Replication, ReplicateStateLimitsInflightAppends) {
  Cluster c({1, 2}, [](Config& cfg) {
    cfg.max_inflight = 2;
    cfg.pre_vote = false;
  });
  c.elect(1);
  ASSERT_EQ(c.core(1).status().progress.at(2).state, ProgressState::kReplicate);
  // Each proposal is collected (ready) on its own, so each would go out in its own append.
  std::vector<Message> appends;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(c.core(1).propose("p").ok());
    for (Message& m : c.take([](const Message& m) { return m.type == MessageType::kAppend; })) {
      appends.push_back(std::move(m));
    }
  }
  ASSERT_EQ(appends.size(), 2u);  // the window is full after two
  EXPECT_EQ(appends[0].entries.size(), 1u);
  EXPECT_EQ(appends[1].entries.size(), 1u);
  // An acknowledgement frees the window: the rest goes out in one message.
  ASSERT_TRUE(c.core(2).step(appends[0]).ok());
  auto resp = c.take([](const Message& m) { return m.type == MessageType::kAppendResponse; });
  ASSERT_EQ(resp.size(), 1u);
  ASSERT_TRUE(c.core(1).step(resp[0]).ok());
  auto more = c.take([](const Message& m) { return m.type == MessageType::kAppend; });
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0].entries.size(), 3u);
  EXPECT_EQ(more[0].index, 3u);
}

TEST(Replication, ProbeStateSendsOneAppendUntilAnswered) {
  Cluster c({1, 2}, [](Config& cfg) { cfg.pre_vote = false; });
  c.core(1).campaign();
  c.deliver_all();
  c.isolate(2);
  ASSERT_TRUE(c.core(1).propose("a").ok());
  c.drop_all();
  c.core(1).report_unreachable(2);
  ASSERT_EQ(c.core(1).status().progress.at(2).state, ProgressState::kProbe);
  ASSERT_TRUE(c.core(1).propose("b").ok());
  ASSERT_TRUE(c.core(1).propose("c").ok());
  auto appends = c.take([](const Message& m) { return m.type == MessageType::kAppend; });
  EXPECT_EQ(appends.size(), 1u);
  // A heartbeat response allows the next probe.
  c.heal();
  Message hbr = msg(MessageType::kHeartbeatResponse, 2, 1, 1);
  ASSERT_TRUE(c.core(1).step(hbr).ok());
  appends = c.take([](const Message& m) { return m.type == MessageType::kAppend; });
  EXPECT_EQ(appends.size(), 1u);
}

TEST(Replication, HeartbeatResponseFromLaggingFollowerTriggersAppend) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.isolate(3);
  ASSERT_TRUE(c.propose(1, "a").ok());
  c.heal();
  EXPECT_LT(c.core(3).last_index(), c.core(1).last_index());
  c.tick(1);  // heartbeat -> response -> append with the missing entry
  c.deliver_all();
  EXPECT_EQ(c.core(3).last_index(), c.core(1).last_index());
  c.tick_all();
  EXPECT_EQ(c.core(3).commit_index(), c.core(1).commit_index());
}

TEST(Replication, HeartbeatCommitIsCappedAtFollowerMatch) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.isolate(3);
  ASSERT_TRUE(c.propose(1, "a").ok());
  ASSERT_EQ(c.core(1).commit_index(), 2u);
  c.core(1).tick();
  auto hbs = c.take([](const Message& m) { return m.type == MessageType::kHeartbeat; });
  ASSERT_EQ(hbs.size(), 2u);
  for (const Message& hb : hbs) {
    EXPECT_EQ(hb.commit, hb.to == 2 ? 2u : 1u);
  }
}

TEST(Replication, NewLeaderAppendsNoopInItsTerm) {
  Cluster c({1, 2, 3});
  c.elect(1);
  ASSERT_TRUE(c.propose(1, "a").ok());
  c.isolate(1);
  for (int i = 0; i < 60 && c.core(2).role() != Role::kLeader && c.core(3).role() != Role::kLeader;
       ++i)
    c.tick_all();
  NodeId leader = c.core(2).role() == Role::kLeader ? 2 : 3;
  ASSERT_EQ(c.core(leader).role(), Role::kLeader);
  const auto& entries = c.node(leader).storage.entries;
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[2].type, EntryType::kNoop);
  EXPECT_EQ(entries[2].term, c.core(leader).term());
  EXPECT_TRUE(entries[2].data.empty());
}

TEST(Replication, Figure8LeaderOnlyCommitsEntriesOfItsTermByCounting) {
  // Node 1 holds entry 2 from term 1 that nobody else has; it wins term 2.
  Configuration conf = voters({1, 2, 3});
  auto leader = core_with_log({1, 1}, 1, conf, no_prevote(1));
  leader->campaign();
  drain(*leader);
  Message grant = msg(MessageType::kVoteResponse, 2, 1, 2);
  ASSERT_TRUE(leader->step(grant).ok());
  ASSERT_EQ(leader->role(), Role::kLeader);
  drain(*leader);
  // Follower 2 acknowledges entry 2 (term 1): a majority holds it, but it is not of term 2.
  Message ack2 = msg(MessageType::kAppendResponse, 2, 1, 2);
  ack2.index = 2;
  ASSERT_TRUE(leader->step(ack2).ok());
  EXPECT_EQ(leader->commit_index(), 0u);
  // Once the term-2 noop (index 3) is on a majority, everything up to it commits.
  Message ack3 = msg(MessageType::kAppendResponse, 2, 1, 2);
  ack3.index = 3;
  ASSERT_TRUE(leader->step(ack3).ok());
  EXPECT_EQ(leader->commit_index(), 3u);
}

TEST(Replication, LeaderCountsOnlyItsPersistedEntries) {
  Cluster c({1, 2, 3});
  c.elect(1);
  ASSERT_TRUE(c.core(1).propose("a").ok());
  // Deliver the appends and acks without letting the leader persist (no ready/advance on 1).
  Ready rd = c.core(1).ready();
  for (const Message& m : rd.messages) ASSERT_TRUE(c.core(m.to).step(m).ok());
  for (NodeId f : {2, 3}) {
    for (const Message& m : drain(c.core(f))) ASSERT_TRUE(c.core(1).step(m).ok());
  }
  // Two followers have it, so it commits even though the leader has not stored it yet...
  EXPECT_EQ(c.core(1).commit_index(), 2u);
  // ... but the leader does not hand it out for apply until it is persisted locally.
  Ready rd2 = c.core(1).ready();
  for (const Entry& e : rd2.committed_entries) EXPECT_LT(e.index, 2u);
  c.core(1).advance(rd);
  c.core(1).advance(rd2);
  Ready rd3 = c.core(1).ready();
  ASSERT_EQ(rd3.committed_entries.size(), 1u);
  EXPECT_EQ(rd3.committed_entries[0].data, "a");
}

TEST(Replication, SingleVoterCommitsOnlyAfterPersisting) {
  Cluster c({1});
  c.elect(1);
  ASSERT_TRUE(c.core(1).propose("a").ok());
  Ready rd = c.core(1).ready();
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_TRUE(rd.committed_entries.empty());
  EXPECT_EQ(c.core(1).commit_index(), 1u);
  c.core(1).advance(rd);
  EXPECT_EQ(c.core(1).commit_index(), 2u);
  Ready rd2 = c.core(1).ready();
  ASSERT_EQ(rd2.committed_entries.size(), 1u);
  ASSERT_TRUE(rd2.hard_state.has_value());
  EXPECT_EQ(rd2.hard_state->commit, 2u);
}

TEST(Replication, FollowerCommitIsLimitedToLastNewEntry) {
  InitialState init;
  init.bootstrap_config = voters({1, 2});
  init.hard_state.term = 1;
  init.entries = {entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)};  // 4 may be stale
  Core follower(test_config(2), init);
  Message a = msg(MessageType::kAppend, 1, 2, 2);
  a.index = 1;
  a.log_term = 1;
  a.commit = 10;
  a.entries = {entry(2, 1)};
  ASSERT_TRUE(follower.step(a).ok());
  EXPECT_EQ(follower.commit_index(), 2u);  // not 4: entries 3-4 were not checked
  auto out = drain(follower);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].index, 2u);
  EXPECT_EQ(follower.last_index(), 4u);  // matching suffix not truncated
}

TEST(Replication, FollowerTruncatesConflictingSuffix) {
  InitialState init;
  init.bootstrap_config = voters({1, 2});
  init.hard_state.term = 1;
  init.entries = {entry(1, 1), entry(2, 1, "old"), entry(3, 1, "old")};
  Core follower(test_config(2), init);
  Message a = msg(MessageType::kAppend, 1, 2, 2);
  a.index = 1;
  a.log_term = 1;
  a.entries = {entry(2, 2, "new")};
  ASSERT_TRUE(follower.step(a).ok());
  Ready rd = follower.ready();
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(rd.entries[0], entry(2, 2, "new"));
  EXPECT_EQ(follower.last_index(), 2u);
}

TEST(Replication, CommitIndexNeverGoesBackwards) {
  Cluster c({1, 2, 3});
  c.elect(1);
  ASSERT_TRUE(c.propose(1, "a").ok());
  c.tick_all();
  ASSERT_EQ(c.core(2).commit_index(), 2u);
  Message hb = msg(MessageType::kHeartbeat, 1, 2, 1);
  hb.commit = 1;
  ASSERT_TRUE(c.core(2).step(hb).ok());
  Message ap = msg(MessageType::kAppend, 1, 2, 1);
  ap.index = 1;
  ap.log_term = 1;
  ap.commit = 0;
  ASSERT_TRUE(c.core(2).step(ap).ok());
  EXPECT_EQ(c.core(2).commit_index(), 2u);
  // An append below the commit index is answered with the commit index.
  auto out = c.take([](const Message& m) { return m.type == MessageType::kAppendResponse; });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].index, 2u);
}

TEST(Replication, FollowerNeverAppliesWhatItHasNotStored) {
  InitialState init;
  init.bootstrap_config = voters({1, 2});
  Core follower(test_config(2), init);
  Message a = msg(MessageType::kAppend, 1, 2, 1);
  a.commit = 2;
  a.entries = {entry(1, 1, "x"), entry(2, 1, "y")};
  ASSERT_TRUE(follower.step(a).ok());
  Ready rd = follower.ready();
  EXPECT_EQ(rd.entries.size(), 2u);
  EXPECT_TRUE(rd.committed_entries.empty());
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->commit, 2u);
  follower.advance(rd);
  Ready rd2 = follower.ready();
  ASSERT_EQ(rd2.committed_entries.size(), 2u);
  follower.advance(rd2);
  EXPECT_EQ(follower.applied_index(), 2u);
  EXPECT_FALSE(follower.has_ready());
}

TEST(Replication, EntriesAreNeverHandedOutTwice) {
  Cluster c({1});
  c.elect(1);
  ASSERT_TRUE(c.core(1).propose("a").ok());
  Ready rd = c.core(1).ready();
  c.core(1).advance(rd);
  Ready first = c.core(1).ready();
  Ready second = c.core(1).ready();  // before advance
  EXPECT_EQ(first.committed_entries.size(), 1u);
  EXPECT_TRUE(second.committed_entries.empty());
  c.core(1).advance(first);
  c.core(1).advance(second);
  EXPECT_FALSE(c.core(1).has_ready());
}

TEST(Replication, TruncationBeforeAdvanceDoesNotMarkReplacedEntriesPersisted) {
  InitialState init;
  init.bootstrap_config = voters({1, 2});
  Core follower(test_config(2), init);
  Message a = msg(MessageType::kAppend, 1, 2, 1);
  a.entries = {entry(1, 1, "x"), entry(2, 1, "y")};
  ASSERT_TRUE(follower.step(a).ok());
  Ready rd = follower.ready();
  // Before advance, a new leader overwrites entry 2.
  Message b = msg(MessageType::kAppend, 3, 2, 2);
  b.index = 1;
  b.log_term = 1;
  b.entries = {entry(2, 2, "z")};
  ASSERT_TRUE(follower.step(b).ok());
  follower.advance(rd);
  Ready rd2 = follower.ready();
  ASSERT_EQ(rd2.entries.size(), 1u);
  EXPECT_EQ(rd2.entries[0], entry(2, 2, "z"));
}

TEST(Replication, ProposalsOnFollowerAreRejected) {
  Cluster c({1, 2, 3});
  auto none = c.core(2).propose("a");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ErrorCode::kNoLeader);
  c.elect(1);
  auto r = c.core(2).propose("a");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotLeader);
  auto ok = c.core(1).propose("a");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->index, 2u);
  EXPECT_EQ(ok->term, 1u);
}

TEST(Replication, ReportUnreachablePutsReplicatingPeerBackIntoProbe) {
  Cluster c({1, 2, 3});
  c.elect(1);
  ASSERT_EQ(c.core(1).status().progress.at(2).state, ProgressState::kReplicate);
  c.core(1).report_unreachable(2);
  EXPECT_EQ(c.core(1).status().progress.at(2).state, ProgressState::kProbe);
  c.core(2).report_unreachable(1);  // not a leader: no effect, no crash
  c.tick_all();
  EXPECT_EQ(c.core(1).status().progress.at(2).state, ProgressState::kReplicate);
}

TEST(Replication, LostAppendsRecoverThroughHeartbeats) {
  Cluster c({1, 2, 3});
  c.elect(1);
  // All appends of these proposals are lost.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.core(1).propose("p" + std::to_string(i)).ok());
  c.take([](const Message& m) { return m.type == MessageType::kAppend; });
  c.tick_all(3);
  for (NodeId id : {1, 2, 3}) {
    EXPECT_EQ(c.core(id).commit_index(), 6u) << id;
    EXPECT_EQ(c.node(id).applied.size(), 6u) << id;
  }
}

TEST(Replication, ProposalsBetweenTwoReadiesShareOneAppendPerFollower) {
  Cluster c({1, 2, 3});
  c.elect(1);
  const Index before = c.core(1).last_index();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(c.core(1).propose("p" + std::to_string(i)).ok());
  Ready rd = c.core(1).ready();
  ASSERT_EQ(rd.entries.size(), 10u);
  auto appends = of_type(rd.messages, MessageType::kAppend);
  ASSERT_EQ(appends.size(), 2u);  // one per follower, not one per proposal
  std::set<NodeId> to;
  for (const Message& m : appends) {
    to.insert(m.to);
    EXPECT_EQ(m.index, before);
    ASSERT_EQ(m.entries.size(), 10u);
    EXPECT_EQ(m.entries.front().data, "p0");
    EXPECT_EQ(m.entries.back().data, "p9");
  }
  EXPECT_EQ(to, (std::set<NodeId>{2, 3}));
  c.core(1).advance(rd);
}

TEST(Replication, CommitAdvanceReachesEachFollowerInOneAppend) {
  Cluster c({1, 2, 3});
  c.elect(1);
  ASSERT_TRUE(c.core(1).propose("a").ok());
  const Index index = c.core(1).last_index();
  Ready rd = c.core(1).ready();
  for (const Message& m : rd.messages) ASSERT_TRUE(c.core(m.to).step(m).ok());
  // Both acknowledgements arrive before the leader's next ready() (and before its own write
  // ends, so it has announced no durable index: the followers learn the commit from it).
  for (NodeId f : {2, 3}) {
    for (const Message& m : drain(c.core(f))) ASSERT_TRUE(c.core(1).step(m).ok());
  }
  EXPECT_EQ(c.core(1).commit_index(), index);
  c.core(1).advance(rd);  // the leader's own copy is durable
  Ready next = c.core(1).ready();
  EXPECT_TRUE(of_type(next.messages, MessageType::kDurable).empty());
  auto appends = of_type(next.messages, MessageType::kAppend);
  ASSERT_EQ(appends.size(), 2u);  // one per follower, however many acks advanced the commit
  for (const Message& m : appends) {
    EXPECT_EQ(m.commit, index);
    EXPECT_TRUE(m.entries.empty());
  }
  c.core(1).advance(next);
  // Nothing new to say: no further appends until something changes.
  EXPECT_TRUE(of_type(drain(c.core(1)), MessageType::kAppend).empty());
}

TEST(Replication, LeaderSendsBeforeItsOwnPersistButNeverCountsItselfUntilDurable) {
  Cluster c({1, 2, 3});
  c.elect(1);
  const Index committed = c.core(1).commit_index();
  ASSERT_TRUE(c.core(1).propose("a").ok());
  const Index index = c.core(1).last_index();
  // The runtime sends this Ready's appends first and persists its entries afterwards.
  Ready rd = c.core(1).ready();
  ASSERT_EQ(rd.entries.size(), 1u);
  auto appends = of_type(rd.messages, MessageType::kAppend);
  ASSERT_EQ(appends.size(), 2u);
  ASSERT_EQ(appends[0].entries.size(), 1u);  // the entry goes out before the leader stored it
  // One follower stores and acknowledges it while the leader's write is still in progress.
  for (const Message& m : appends) {
    if (m.to == 2) {
      ASSERT_TRUE(c.core(2).step(m).ok());
    }
  }
  for (const Message& m : drain(c.core(2))) ASSERT_TRUE(c.core(1).step(m).ok());
  EXPECT_EQ(c.core(1).status().progress.at(2).match, index);
  // One follower is not a quorum of three, and the leader's own copy does not count yet.
  EXPECT_EQ(c.core(1).commit_index(), committed);
  EXPECT_EQ(c.core(1).status().progress.at(1).match, committed);
  // Its write becomes durable: now it counts, and the entry commits and is handed out.
  c.core(1).advance(rd);
  EXPECT_EQ(c.core(1).commit_index(), index);
  Ready applied = c.core(1).ready();
  ASSERT_EQ(applied.committed_entries.size(), 1u);
  EXPECT_EQ(applied.committed_entries[0].data, "a");
  c.core(1).advance(applied);
}

}  // namespace
}  // namespace raftlock::raft::testing
