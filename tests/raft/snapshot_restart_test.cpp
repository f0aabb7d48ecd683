// Log compaction, snapshot send/install, restart from InitialState, and determinism.
#include <gtest/gtest.h>

#include <random>

#include "raft/core.h"
#include "raft_test_util.h"

namespace raftlock::raft::testing {
namespace {

std::shared_ptr<const std::string> data(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

// Delivers every message except snapshots until the leader has sent one; returns those.
std::vector<Message> run_until_snapshot_sent(Cluster& c, NodeId leader) {
  c.tick(leader);
  std::vector<Message> snaps;
  for (int i = 0; i < 10 && snaps.empty(); ++i) {
    auto others = c.take([](const Message& m) { return m.type != MessageType::kSnapshot; });
    for (const Message& m : others) EXPECT_TRUE(c.core(m.to).step(m).ok());
    snaps = c.take([](const Message& m) { return m.type == MessageType::kSnapshot; });
  }
  return snaps;
}

TEST(Snapshot, CompactRequiresAppliedIndexAndData) {
  Cluster c({1});
  c.elect(1);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.propose(1, "e").ok());
  ASSERT_EQ(c.core(1).applied_index(), 4u);
  Status above = c.core(1).compact(5, data("s"));
  ASSERT_FALSE(above.ok());
  EXPECT_EQ(above.error().code, ErrorCode::kInvalidArgument);
  Status null = c.core(1).compact(2, nullptr);
  ASSERT_FALSE(null.ok());
  EXPECT_EQ(null.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(c.core(1).snapshot_meta().has_value());
  ASSERT_TRUE(c.core(1).compact(3, data("s")).ok());
  auto meta = c.core(1).snapshot_meta();
  ASSERT_TRUE(meta.has_value());
  EXPECT_EQ(meta->index, 3u);
  EXPECT_EQ(meta->term, 1u);
  EXPECT_EQ(meta->config, voters({1}));
  EXPECT_EQ(c.core(1).status().first_index, 4u);
  Status again = c.core(1).compact(3, data("s"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kInvalidArgument);
  // The log keeps working after compaction.
  ASSERT_TRUE(c.propose(1, "after").ok());
  EXPECT_EQ(c.node(1).applied.back().data, "after");
}

TEST(Snapshot, SnapshotConfigIsTheConfigurationAtItsIndex) {
  Cluster c({1, 2});
  c.elect(1);
  c.tick_all();
  ASSERT_TRUE(c.core(1).propose_conf_change(ConfChange{ConfChangeType::kAddLearner, 3, "x"}).ok());
  c.deliver_all();
  c.tick_all();
  ASSERT_TRUE(c.core(1).compact(1, data("s1")).ok());
  EXPECT_EQ(c.core(1).snapshot_meta()->config, voters({1, 2}));  // before the change at index 2
  ASSERT_TRUE(c.core(1).compact(2, data("s2")).ok());
  EXPECT_TRUE(c.core(1).snapshot_meta()->config.contains(3));
  EXPECT_TRUE(c.core(1).config().contains(3));
}

TEST(Snapshot, LeaderSendsSnapshotToFollowerBehindCompactedLog) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  c.isolate(3);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.propose(1, "e" + std::to_string(i)).ok());
  c.tick_all();
  ASSERT_EQ(c.core(1).applied_index(), 6u);
  ASSERT_TRUE(c.core(1).compact(5, data("state@5")).ok());
  c.heal();
  auto snaps = run_until_snapshot_sent(c, 1);
  ASSERT_EQ(snaps.size(), 1u);
  EXPECT_EQ(snaps[0].to, 3u);
  EXPECT_EQ(c.core(1).status().progress.at(3).state, ProgressState::kSnapshot);
  ASSERT_TRUE(snaps[0].snapshot.has_value());
  EXPECT_EQ(snaps[0].snapshot->meta.index, 5u);
  EXPECT_EQ(*snaps[0].snapshot->data, "state@5");
  c.queue().push_back(snaps[0]);
  c.deliver_all();
  // Installed: Ready carried the snapshot, commit = applied = 5, then the rest replicated.
  bool saw_snapshot = false;
  for (const Ready& rd : c.node(3).readies) {
    if (rd.snapshot) {
      saw_snapshot = true;
      EXPECT_EQ(rd.snapshot->meta.index, 5u);
      EXPECT_EQ(*rd.snapshot->data, "state@5");
    }
  }
  EXPECT_TRUE(saw_snapshot);
  ASSERT_TRUE(c.node(3).storage.snapshot.has_value());
  EXPECT_EQ(c.core(3).snapshot_meta()->index, 5u);
  c.tick_all(2);
  EXPECT_EQ(c.core(3).last_index(), 6u);
  EXPECT_EQ(c.core(3).commit_index(), 6u);
  EXPECT_EQ(c.core(3).applied_index(), 6u);
  // The noop was applied before the partition; 2-5 came in the snapshot; then only entry 6.
  ASSERT_EQ(c.node(3).applied.size(), 2u);
  EXPECT_EQ(c.node(3).applied[0].index, 1u);
  EXPECT_EQ(c.node(3).applied[1].index, 6u);
  EXPECT_EQ(c.node(3).applied[1].data, "e4");
  EXPECT_EQ(c.core(1).status().progress.at(3).state, ProgressState::kReplicate);
}

TEST(Snapshot, FollowerWithCommittedPrefixJustAcks) {
  InitialState init;
  init.bootstrap_config = voters({1, 2});
  init.hard_state = HardState{2, 1, 3};
  init.entries = {entry(1, 1), entry(2, 1), entry(3, 2)};
  Core follower(test_config(2), init);
  drain(follower);
  Message s = msg(MessageType::kSnapshot, 1, 2, 2);
  s.snapshot = Snapshot{SnapshotMeta{2, 1, voters({1, 2})}, data("x")};
  ASSERT_TRUE(follower.step(s).ok());
  Ready rd = follower.ready();
  EXPECT_FALSE(rd.snapshot.has_value());
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].type, MessageType::kAppendResponse);
  EXPECT_EQ(rd.messages[0].index, 3u);  // our commit index
  EXPECT_EQ(follower.last_index(), 3u);
}

TEST(Snapshot, FollowerHoldingSnapshotEntryFastForwardsCommit) {
  InitialState init;
  init.bootstrap_config = voters({1, 2});
  init.hard_state = HardState{2, 1, 1};
  init.entries = {entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)};
  Core follower(test_config(2), init);
  drain(follower);
  Message s = msg(MessageType::kSnapshot, 1, 2, 2);
  s.snapshot = Snapshot{SnapshotMeta{3, 2, voters({1, 2})}, data("x")};
  ASSERT_TRUE(follower.step(s).ok());
  EXPECT_EQ(follower.commit_index(), 3u);
  EXPECT_EQ(follower.last_index(), 4u);  // entries after it kept
  Ready rd = follower.ready();
  EXPECT_FALSE(rd.snapshot.has_value());
  EXPECT_EQ(rd.committed_entries.size(), 2u);  // 2 and 3 applied normally
}

TEST(Snapshot, FollowerWithConflictingLogInstallsAndDropsEverything) {
  InitialState init;
  init.bootstrap_config = voters({1, 2});
  init.hard_state = HardState{1, 1, 1};
  init.entries = {entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1), entry(5, 1), entry(6, 1)};
  Core follower(test_config(2), init);
  drain(follower);
  Message s = msg(MessageType::kSnapshot, 1, 2, 3);
  s.snapshot = Snapshot{SnapshotMeta{4, 3, voters({1, 2}, {7})}, data("x")};
  ASSERT_TRUE(follower.step(s).ok());
  EXPECT_EQ(follower.last_index(), 4u);
  EXPECT_EQ(follower.commit_index(), 4u);
  EXPECT_EQ(follower.applied_index(), 4u);
  EXPECT_TRUE(follower.config().contains(7));  // configuration from the snapshot
  Ready rd = follower.ready();
  ASSERT_TRUE(rd.snapshot.has_value());
  EXPECT_TRUE(rd.entries.empty());
  EXPECT_TRUE(rd.committed_entries.empty());
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].index, 4u);
  EXPECT_FALSE(rd.messages[0].reject);
  follower.advance(rd);
  EXPECT_FALSE(follower.ready().snapshot.has_value());  // handed out once
}

TEST(Snapshot, ReportSnapshotFailureGoesBackToProbing) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  c.isolate(2);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.propose(1, "e").ok());
  c.tick_all();
  ASSERT_TRUE(c.core(1).compact(3, data("s")).ok());
  c.drop_all();
  c.heal();
  auto lost = run_until_snapshot_sent(c, 1);  // and lost
  ASSERT_EQ(lost.size(), 1u);
  ASSERT_EQ(c.core(1).status().progress.at(2).state, ProgressState::kSnapshot);
  c.core(1).report_snapshot(2, false);
  EXPECT_EQ(c.core(1).status().progress.at(2).state, ProgressState::kProbe);
  c.tick_all(3);  // probes again, gets rejected, resends the snapshot, catches up
  EXPECT_EQ(c.core(2).commit_index(), c.core(1).commit_index());
  EXPECT_EQ(c.core(1).status().progress.at(2).state, ProgressState::kReplicate);
}

TEST(Snapshot, UnreportedSnapshotIsRetriedAfterTimeout) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  c.isolate(2);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.propose(1, "e").ok());
  c.tick_all();
  ASSERT_TRUE(c.core(1).compact(3, data("s")).ok());
  c.drop_all();
  c.heal();
  auto lost = run_until_snapshot_sent(c, 1);
  ASSERT_EQ(lost.size(), 1u);
  ASSERT_EQ(c.core(1).status().progress.at(2).state, ProgressState::kSnapshot);
  for (int i = 0; i < 30; ++i) c.tick_all();
  EXPECT_EQ(c.core(1).status().progress.at(2).state, ProgressState::kSnapshot);  // still waiting
  for (int i = 0; i < 15; ++i) c.tick_all();
  EXPECT_EQ(c.core(2).commit_index(), c.core(1).commit_index());
}

TEST(Restart, ReappliesCommittedEntriesAfterTheSnapshot) {
  InitialState init;
  init.bootstrap_config = voters({1, 2, 3});
  init.hard_state = HardState{3, 2, 6};
  init.snapshot = Snapshot{SnapshotMeta{3, 2, voters({1, 2, 3})}, data("state@3")};
  init.entries = {entry(4, 2, "d"), entry(5, 3, "e"), entry(6, 3, "f"), entry(7, 3, "g")};
  Core core(test_config(1), init);
  EXPECT_EQ(core.term(), 3u);
  EXPECT_EQ(core.status().vote, 2u);
  EXPECT_EQ(core.commit_index(), 6u);
  EXPECT_EQ(core.applied_index(), 3u);
  EXPECT_EQ(core.last_index(), 7u);
  EXPECT_EQ(core.status().first_index, 4u);
  EXPECT_EQ(core.snapshot_meta()->index, 3u);
  Ready rd = core.ready();
  EXPECT_FALSE(rd.hard_state.has_value());  // nothing new to persist
  EXPECT_TRUE(rd.entries.empty());
  EXPECT_FALSE(rd.snapshot.has_value());
  ASSERT_EQ(rd.committed_entries.size(), 3u);
  EXPECT_EQ(rd.committed_entries[0].data, "d");
  EXPECT_EQ(rd.committed_entries[2].data, "f");
  core.advance(rd);
  EXPECT_EQ(core.applied_index(), 6u);
  EXPECT_FALSE(core.has_ready());
}

TEST(Restart, WithoutSnapshotStartsApplyingFromOne) {
  InitialState init;
  init.bootstrap_config = voters({1});
  init.hard_state = HardState{1, 1, 2};
  init.entries = {entry(1, 1), entry(2, 1, "x")};
  Core core(test_config(1), init);
  std::vector<Entry> applied;
  drain(core, &applied);
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[1].data, "x");
}

TEST(Restart, ClusterNodeRestartsAndCatchesUp) {
  Cluster c({1, 2, 3});
  c.elect(1);
  ASSERT_TRUE(c.propose(1, "a").ok());
  c.tick_all();
  c.restart(2);
  EXPECT_EQ(c.core(2).term(), 1u);
  EXPECT_EQ(c.core(2).last_index(), 2u);
  ASSERT_TRUE(c.propose(1, "b").ok());
  c.tick_all(2);
  ASSERT_EQ(c.node(2).applied.size(), 3u);  // re-applied from scratch: noop, a, b
  EXPECT_EQ(c.node(2).applied[2].data, "b");
}

TEST(Restart, MalformedInitialEntriesAreCutAtTheFirstGap) {
  InitialState init;
  init.bootstrap_config = voters({1});
  init.hard_state = HardState{2, 1, 5};
  init.entries = {entry(1, 1), entry(2, 2), entry(4, 2), entry(5, 2)};
  Core core(test_config(1), init);
  EXPECT_EQ(core.last_index(), 2u);
  EXPECT_EQ(core.commit_index(), 2u);
}

// Runs a 3-node cluster with a seeded message-dropping schedule; returns every delivered message
// plus final logs as a string.
std::string run_scenario(uint64_t seed) {
  Cluster c({1, 2, 3}, [seed](Config& cfg) { cfg.random_seed = seed * 31 + cfg.id; });
  std::mt19937_64 rng(seed);
  std::string out;
  for (int step = 0; step < 300; ++step) {
    for (auto& [id, n] : c.nodes()) n.core->tick();
    auto msgs = c.take([](const Message&) { return true; });
    for (const Message& m : msgs) {
      if (rng() % 5 == 0) continue;  // drop 20%
      c.queue().push_back(m);
    }
    c.deliver_all();
    for (auto& [id, n] : c.nodes()) {
      if (n.core->role() == Role::kLeader && rng() % 3 == 0) {
        (void)n.core->propose("v" + std::to_string(step));
      }
    }
  }
  for (const Message& m : c.trace()) {
    out += std::to_string(static_cast<int>(m.type)) + ":" + std::to_string(m.from) + ">" +
           std::to_string(m.to) + "@" + std::to_string(m.term) + "/" + std::to_string(m.index) +
           "," + std::to_string(m.entries.size()) + ";";
  }
  for (auto& [id, n] : c.nodes()) out += "|" + std::to_string(n.core->commit_index());
  return out;
}

TEST(Determinism, SameSeedSameOutputs) {
  const std::string a = run_scenario(42);
  const std::string b = run_scenario(42);
  EXPECT_EQ(a, b);
  EXPECT_GT(a.size(), 1000u);
  EXPECT_NE(a, run_scenario(43));
}

}  // namespace
}  // namespace raftlock::raft::testing
