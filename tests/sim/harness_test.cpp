// Tests of the simulator itself: randomness, the test state machine, crash semantics, and that
// the safety checker really catches broken runtimes.
#include <gtest/gtest.h>

#include <set>

#include "tests/sim/sim_test_support.h"

namespace raftlock::sim {
namespace {

using testing::cluster_options;
using testing::wait_for_leader;

TEST(SimHarness, RandomIsDeterministicAndInRange) {
  SimRandom a(42), b(42), c(43);
  bool differs = false;
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t x = a.below(7);
    EXPECT_EQ(x, b.below(7));
    differs |= x != c.below(7);
    EXPECT_LT(x, 7u);
    seen.insert(x);
    const uint64_t y = a.between(3, 5);
    b.between(3, 5);
    EXPECT_GE(y, 3u);
    EXPECT_LE(y, 5u);
  }
  EXPECT_TRUE(differs);
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_FALSE(a.chance(0));
  EXPECT_TRUE(a.chance(1000000));
}

TEST(SimHarness, StateMachineSnapshotRoundTrip) {
  raft::Configuration config;
  config.members = {{1, true, ""}, {2, true, "x"}};
  TestStateMachine sm(config);
  ASSERT_TRUE(sm.apply(raft::Entry{1, 1, raft::EntryType::kNoop, ""}).ok());
  ASSERT_TRUE(sm.apply(raft::Entry{1, 2, raft::EntryType::kNormal, "hello world"}).ok());
  ASSERT_TRUE(sm.apply(raft::Entry{2, 3, raft::EntryType::kConfChange,
                                   raft::encode_conf_change(
                                       {raft::ConfChangeType::kAddLearner, 7, "addr"})})
                  .ok());
  ASSERT_TRUE(sm.apply(raft::Entry{2, 4, raft::EntryType::kNormal, std::string("a\0b", 3)}).ok());
  TestStateMachine copy;
  ASSERT_TRUE(copy.restore(sm.serialize()).ok());
  EXPECT_EQ(copy.applied_index(), 4u);
  EXPECT_EQ(copy.applied_term(), 2u);
  EXPECT_EQ(copy.commands(), sm.commands());
  ASSERT_NE(copy.config().find(7), nullptr);
  EXPECT_FALSE(copy.config().is_voter(7));
  EXPECT_EQ(copy.config().find(7)->context, "addr");
  EXPECT_EQ(copy.serialize(), sm.serialize());
}

TEST(SimHarness, StateMachineRejectsBadInputAndKeepsItsState) {
  TestStateMachine sm;
  ASSERT_TRUE(sm.apply(raft::Entry{1, 1, raft::EntryType::kNormal, "keep"}).ok());
  const std::string before = sm.serialize();
  // Out-of-order apply.
  auto gap = sm.apply(raft::Entry{1, 3, raft::EntryType::kNormal, "gap"});
  ASSERT_FALSE(gap.ok());
  EXPECT_EQ(gap.error().code, ErrorCode::kInvalidArgument);
  // Undecodable conf change.
  auto bad_change = sm.apply(raft::Entry{1, 2, raft::EntryType::kConfChange, "\xff\x01garbage"});
  ASSERT_FALSE(bad_change.ok());
  // Malformed snapshots: wrong magic, truncated, trailing bytes.
  for (const std::string& bad : {std::string("nonsense"), before.substr(0, before.size() - 2),
                                 before + "x", std::string()}) {
    auto restored = sm.restore(bad);
    ASSERT_FALSE(restored.ok()) << bad;
    EXPECT_EQ(restored.error().code, ErrorCode::kCorrupt);
  }
  EXPECT_EQ(sm.serialize(), before);
}

TEST(SimHarness, CrashKeepsExactlyWhatWasPersisted) {
  Cluster cluster(cluster_options(3, 101));
  const uint64_t timeout = 10 * cluster.election_timeout_ms();
  ASSERT_NE(cluster.agree("a", 3, timeout), 0u);
  const NodeId leader = *cluster.current_leader();
  const auto persisted = cluster.store(leader).state();
  cluster.crash(leader);
  EXPECT_EQ(cluster.core(leader), nullptr);
  // Proposals to a crashed node are refused; messages to it are dropped.
  EXPECT_FALSE(cluster.propose(leader, "lost").ok());
  cluster.restart(leader);
  ASSERT_NE(cluster.core(leader), nullptr);
  EXPECT_EQ(cluster.core(leader)->term(), persisted.hard_state.term);
  EXPECT_EQ(cluster.core(leader)->last_index(), persisted.entries.size());
  EXPECT_GE(cluster.core(leader)->commit_index(), persisted.hard_state.commit);
  // The restarted node re-applies its committed log to a fresh state machine.
  EXPECT_TRUE(cluster.state_machine(leader).has_command("a"));
  ASSERT_NE(cluster.agree("b", 3, timeout), 0u);
  EXPECT_SAFE(cluster);
}

TEST(SimHarness, MidReadyCrashesAreSurvived) {
  ClusterOptions options = cluster_options(3, 102);
  options.mid_ready_crash_ppm = 50000;  // one Ready in twenty
  Cluster cluster(options);
  const uint64_t timeout = 10 * cluster.election_timeout_ms();
  uint64_t crashes_seen = 0;
  for (int i = 0; i < 30; ++i) {
    // Nodes keep crashing mid-Ready; restart them until the command commits.
    Index index = 0;
    const uint64_t deadline = cluster.now_ms() + timeout;
    while (index == 0 && cluster.ok() && cluster.now_ms() < deadline) {
      for (NodeId id : cluster.node_ids()) {
        if (!cluster.is_up(id)) {
          ++crashes_seen;
          cluster.restart(id);
        }
      }
      index = cluster.agree("m" + std::to_string(i), 1, cluster.election_timeout_ms());
    }
    ASSERT_NE(index, 0u) << "command " << i;
  }
  EXPECT_GT(crashes_seen, 5u) << "mid-Ready crashes should have happened";
  cluster.set_mid_ready_crash_ppm(0);
  for (NodeId id : cluster.node_ids()) cluster.restart(id);
  ASSERT_NE(cluster.agree("end", 3, timeout), 0u);
  EXPECT_SAFE(cluster);
}

TEST(SimHarness, SlowNodeCatchesUp) {
  Cluster cluster(cluster_options(3, 103));
  const uint64_t timeout = 10 * cluster.election_timeout_ms();
  ASSERT_NE(cluster.agree("a", 3, timeout), 0u);
  const NodeId slow = testing::all_except(cluster, {*cluster.current_leader()}).front();
  cluster.set_slow(slow, 700);
  for (int i = 0; i < 10; ++i) ASSERT_NE(cluster.agree("s" + std::to_string(i), 2, timeout), 0u);
  cluster.set_slow(slow, 0);
  ASSERT_TRUE(
      cluster.run_until([&] { return cluster.state_machine(slow).has_command("s9"); }, timeout));
  EXPECT_SAFE(cluster);
}

TEST(SimHarness, OneWayPartitionBlocksOnlyOneDirection) {
  Cluster cluster(cluster_options(3, 104));
  cluster.block(1, 2);
  EXPECT_TRUE(cluster.link_blocked(1, 2));
  EXPECT_FALSE(cluster.link_blocked(2, 1));
  cluster.partition({{1}, {2, 3}});
  EXPECT_TRUE(cluster.link_blocked(1, 3));
  EXPECT_TRUE(cluster.link_blocked(3, 1));
  EXPECT_FALSE(cluster.link_blocked(2, 3));
  cluster.heal_network();
  EXPECT_FALSE(cluster.link_blocked(1, 2));
}

// The checker must catch real bugs: a runtime that forgets the vote it persisted...
TEST(SimHarness, CheckerCatchesARuntimeThatForgetsItsVote) {
  uint64_t caught = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const RandomRunResult result = run_random(seed, false, InjectedBug::kForgetVote);
    if (!result.ok) ++caught;
  }
  EXPECT_EQ(caught, 20u);
}

// ...and a runtime that serves reads locally instead of through ReadIndex.
TEST(SimHarness, CheckerCatchesStaleLocalReads) {
  uint64_t caught = 0;
  std::string example;
  for (uint64_t seed = 1; seed <= 200 && caught == 0; ++seed) {
    const RandomRunResult result = run_random(seed, false, InjectedBug::kLocalReads);
    if (!result.ok) {
      ++caught;
      example = result.failure;
    }
  }
  ASSERT_GT(caught, 0u) << "stale local reads went unnoticed";
  EXPECT_NE(example.find("stale read"), std::string::npos) << example;
}

// ...and a store that damages an entry (caught by log matching or state-machine safety).
TEST(SimHarness, CheckerCatchesADamagedLogEntry) {
  uint64_t caught = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const RandomRunResult result = run_random(seed, false, InjectedBug::kCorruptEntry);
    if (!result.ok) {
      ++caught;
      EXPECT_TRUE(result.failure.find("log matching") != std::string::npos ||
                  result.failure.find("state machine safety") != std::string::npos ||
                  result.failure.find("different") != std::string::npos)
          << result.failure;
    }
  }
  EXPECT_GE(caught, 15u);
}

}  // namespace
}  // namespace raftlock::sim
