// Persistence and unreliable-network scenarios (6.824 2C): persist 1-3, Figure 8, churn.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "tests/sim/sim_test_support.h"

namespace raftlock::sim {
namespace {

using testing::cluster_options;
using testing::wait_for_leader;

uint64_t ten_timeouts(const Cluster& cluster) {
  return 10 * cluster.election_timeout_ms();
}

NodeId next_node(const Cluster& cluster, NodeId id, size_t steps = 1) {
  const auto ids = cluster.node_ids();
  size_t pos = 0;
  while (ids[pos] != id) ++pos;
  return ids[(pos + steps) % ids.size()];
}

void crash_all(Cluster& cluster) {
  for (NodeId id : cluster.node_ids()) cluster.crash(id);
}
void restart_all(Cluster& cluster) {
  for (NodeId id : cluster.node_ids()) cluster.restart(id);
}

TEST(SimPersistence, Persist1) {
  Cluster cluster(cluster_options(3, 51));
  const uint64_t timeout = ten_timeouts(cluster);
  ASSERT_NE(cluster.agree("11", 3, timeout), 0u);
  crash_all(cluster);
  restart_all(cluster);
  ASSERT_NE(cluster.agree("12", 3, timeout), 0u);

  const NodeId leader1 = *cluster.current_leader();
  cluster.crash(leader1);
  cluster.restart(leader1);
  ASSERT_NE(cluster.agree("13", 3, timeout), 0u);

  const NodeId leader2 = *cluster.current_leader();
  cluster.crash(leader2);
  ASSERT_NE(cluster.agree("14", 2, timeout), 0u);
  cluster.restart(leader2);
  ASSERT_TRUE(
      cluster.run_until([&] { return cluster.state_machine(leader2).has_command("14"); }, timeout))
      << "restarted node did not catch up";

  const NodeId leader3 = *cluster.current_leader();
  const NodeId follower = next_node(cluster, leader3);
  cluster.crash(follower);
  ASSERT_NE(cluster.agree("15", 2, timeout), 0u);
  cluster.restart(follower);
  ASSERT_NE(cluster.agree("16", 3, timeout), 0u);
  for (NodeId id : cluster.node_ids()) {
    for (const char* command : {"11", "12", "13", "14", "15", "16"}) {
      EXPECT_TRUE(cluster.state_machine(id).has_command(command)) << id << " lacks " << command;
    }
  }
  EXPECT_SAFE(cluster);
}

TEST(SimPersistence, Persist2) {
  Cluster cluster(cluster_options(5, 52));
  const uint64_t timeout = ten_timeouts(cluster);
  int index = 1;
  for (int iteration = 0; iteration < 5; ++iteration) {
    ASSERT_NE(cluster.agree("p" + std::to_string(10 + index++), 5, timeout), 0u);
    const NodeId leader1 = *cluster.current_leader();
    cluster.crash(next_node(cluster, leader1, 1));
    cluster.crash(next_node(cluster, leader1, 2));
    ASSERT_NE(cluster.agree("p" + std::to_string(10 + index++), 3, timeout), 0u);
    cluster.crash(leader1);
    cluster.crash(next_node(cluster, leader1, 3));
    cluster.crash(next_node(cluster, leader1, 4));
    cluster.restart(next_node(cluster, leader1, 1));
    cluster.restart(next_node(cluster, leader1, 2));
    cluster.run_for(cluster.election_timeout_ms());
    cluster.restart(next_node(cluster, leader1, 3));
    ASSERT_NE(cluster.agree("p" + std::to_string(10 + index++), 3, timeout), 0u)
        << "iteration " << iteration;
    cluster.restart(leader1);
    cluster.restart(next_node(cluster, leader1, 4));
  }
  ASSERT_NE(cluster.agree("p1000", 5, timeout), 0u);
  EXPECT_SAFE(cluster);
}

TEST(SimPersistence, Persist3) {
  Cluster cluster(cluster_options(3, 53));
  const uint64_t timeout = ten_timeouts(cluster);
  ASSERT_NE(cluster.agree("101", 3, timeout), 0u);
  const NodeId leader = *cluster.current_leader();
  cluster.disconnect(next_node(cluster, leader, 2));
  ASSERT_NE(cluster.agree("102", 2, timeout), 0u);
  cluster.crash(leader);
  cluster.crash(next_node(cluster, leader, 1));
  cluster.reconnect(next_node(cluster, leader, 2));
  cluster.restart(leader);
  ASSERT_NE(cluster.agree("103", 2, timeout), 0u);
  cluster.restart(next_node(cluster, leader, 1));
  ASSERT_NE(cluster.agree("104", 3, timeout), 0u);
  for (NodeId id : cluster.node_ids()) EXPECT_TRUE(cluster.state_machine(id).has_command("102"));
  EXPECT_SAFE(cluster);
}

// Figure 8 of the Raft paper: leaders crash right after appending, so entries of old terms get
// replicated by later leaders; only entries of a leader's own term may be committed by counting.
TEST(SimPersistence, Figure8) {
  Cluster cluster(cluster_options(5, 54));
  const uint64_t timeout = ten_timeouts(cluster);
  ASSERT_NE(cluster.agree("f8-start", 1, timeout), 0u);
  SimRandom random(5454);
  size_t up = 5;
  for (int iteration = 0; iteration < 1000 && cluster.ok(); ++iteration) {
    std::optional<NodeId> leader;
    for (NodeId id : cluster.node_ids()) {
      if (cluster.is_up(id) && cluster.propose(id, "f8-" + std::to_string(iteration)).ok()) {
        leader = id;
      }
    }
    if (random.below(1000) < 100) {
      cluster.run_for(random.below(cluster.election_timeout_ms() / 2));
    } else {
      cluster.run_for(random.below(13));
    }
    if (leader && cluster.is_up(*leader)) {
      cluster.crash(*leader);
      --up;
    }
    if (up < 3) {
      const auto ids = cluster.node_ids();
      const NodeId id = ids[random.below(ids.size())];
      if (!cluster.is_up(id)) {
        cluster.restart(id);
        ++up;
      }
    }
  }
  restart_all(cluster);
  ASSERT_NE(cluster.agree("f8-final", 5, timeout), 0u);
  EXPECT_GE(cluster.leader_history().size(), 10u) << "the test should churn through many terms";
  EXPECT_SAFE(cluster);
}

TEST(SimPersistence, UnreliableAgreement) {
  ClusterOptions options = cluster_options(5, 55);
  options.faults = NetworkFaults::unreliable();
  Cluster cluster(options);
  const uint64_t timeout = ten_timeouts(cluster);
  for (int iteration = 1; iteration < 50; ++iteration) {
    if (auto leader = cluster.current_leader()) {
      for (int j = 0; j < 4; ++j) {
        (void)cluster.propose(*leader, "u" + std::to_string(100 * iteration + j));
      }
    }
    ASSERT_NE(cluster.agree("u" + std::to_string(iteration), 1, timeout), 0u)
        << "iteration " << iteration;
  }
  EXPECT_GT(cluster.stats().dropped, 0u);
  EXPECT_GT(cluster.stats().duplicated, 0u);
  cluster.set_faults(NetworkFaults::reliable());
  ASSERT_NE(cluster.agree("u-final", 5, timeout), 0u);
  EXPECT_SAFE(cluster);
}

TEST(SimPersistence, Figure8Unreliable) {
  ClusterOptions options = cluster_options(5, 56);
  options.faults = NetworkFaults::unreliable();
  Cluster cluster(options);
  const uint64_t timeout = ten_timeouts(cluster);
  ASSERT_NE(cluster.agree("f8u-start", 1, timeout), 0u);
  SimRandom random(5656);
  std::set<NodeId> connected;
  for (NodeId id : cluster.node_ids()) connected.insert(id);
  for (int iteration = 0; iteration < 300 && cluster.ok(); ++iteration) {
    if (iteration == 200) {
      NetworkFaults faults = NetworkFaults::unreliable();
      faults.long_delay_ppm = 660000;  // long reordering: two thirds of messages held back
      faults.long_delay_max_ms = 2000;
      cluster.set_faults(faults);
    }
    std::optional<NodeId> leader;
    for (NodeId id : connected) {
      if (cluster.propose(id, "f8u-" + std::to_string(iteration)).ok()) leader = id;
    }
    if (random.below(1000) < 100) {
      cluster.run_for(random.below(cluster.election_timeout_ms() / 2));
    } else {
      cluster.run_for(random.below(13));
    }
    if (leader && random.below(1000) < 500) {
      cluster.disconnect(*leader);
      connected.erase(*leader);
    }
    if (connected.size() < 3) {
      const auto ids = cluster.node_ids();
      const NodeId id = ids[random.below(ids.size())];
      if (!connected.count(id)) {
        cluster.reconnect(id);
        connected.insert(id);
      }
    }
  }
  cluster.heal_network();
  cluster.set_faults(NetworkFaults::reliable());
  ASSERT_NE(cluster.agree("f8u-final", 5, timeout), 0u);
  EXPECT_SAFE(cluster);
}

// Clients keep proposing at random nodes while nodes disconnect, crash and restart. Afterwards
// every proposal that committed is in every state machine, and nothing else is.
void churn(uint64_t seed, bool unreliable) {
  ClusterOptions options = cluster_options(5, seed);
  if (unreliable) options.faults = NetworkFaults::unreliable();
  Cluster cluster(options);
  SimRandom random(seed * 7 + 1);
  std::vector<std::pair<raft::EntryId, std::string>> accepted;
  std::set<std::string> proposed;
  uint64_t next = 0;
  const auto ids = cluster.node_ids();
  for (int iteration = 0; iteration < 20 && cluster.ok(); ++iteration) {
    if (random.below(1000) < 200) cluster.disconnect(ids[random.below(ids.size())]);
    if (random.below(1000) < 500) {
      const NodeId id = ids[random.below(ids.size())];
      cluster.restart(id);
      cluster.reconnect(id);
    }
    if (random.below(1000) < 200) cluster.crash(ids[random.below(ids.size())]);
    const uint64_t until = cluster.now_ms() + cluster.election_timeout_ms() * 7 / 10;
    while (cluster.now_ms() < until && cluster.ok()) {
      cluster.run_for(random.between(2, 25));
      const NodeId at = ids[random.below(ids.size())];
      const std::string command = "churn" + std::to_string(next++);
      proposed.insert(command);
      auto result = cluster.propose(at, command);
      if (result.ok()) accepted.emplace_back(*result, command);
    }
  }
  cluster.set_faults(NetworkFaults::reliable());
  cluster.heal_network();
  restart_all(cluster);
  cluster.run_for(cluster.election_timeout_ms());
  ASSERT_NE(cluster.agree("churn-final", 5, ten_timeouts(cluster)), 0u);
  ASSERT_SAFE(cluster);

  size_t committed = 0;
  for (const auto& [entry, command] : accepted) {
    auto at = cluster.committed_at(entry.index);
    if (!at || at->first != entry.term ||
        at->second != hash_entry_content(raft::EntryType::kNormal, command)) {
      continue;
    }
    ++committed;
    for (NodeId id : ids) {
      EXPECT_TRUE(cluster.state_machine(id).has_command(command)) << id << " lacks " << command;
    }
  }
  EXPECT_GT(committed, 10u) << "the churn test should commit client commands";
  for (NodeId id : ids) {
    for (const auto& [index, command] : cluster.state_machine(id).commands()) {
      EXPECT_TRUE(command == "churn-final" || proposed.count(command)) << "invented " << command;
    }
  }
  std::printf("churn: %zu proposals accepted, %zu committed\n", accepted.size(), committed);
  EXPECT_SAFE(cluster);
}

TEST(SimPersistence, ReliableChurn) {
  churn(57, false);
}
TEST(SimPersistence, UnreliableChurn) {
  churn(58, true);
}

// The leader sends each Ready's appends before its own write (as the runtime does) and nodes
// crash in the middle of Readies — a leader often after sending and before persisting. Followers
// then hold entries the leader never stored; safety must hold and commands must still commit.
TEST(SimPersistence, LeaderSendingBeforeItsOwnWriteSurvivesMidReadyCrashes) {
  ClusterOptions options = cluster_options(3, 59);
  options.leader_sends_first = true;
  options.mid_ready_crash_ppm = 100000;  // 10% of Readies crash their node part-way
  Cluster cluster(options);
  size_t committed = 0;
  for (int round = 0; round < 60 && cluster.ok(); ++round) {
    for (NodeId id : cluster.node_ids()) {
      if (!cluster.is_up(id)) cluster.restart(id);
    }
    if (cluster.agree("c" + std::to_string(round), 2, 10 * cluster.election_timeout_ms()) != 0) {
      ++committed;
    }
  }
  EXPECT_GT(committed, 20u) << "commands should keep committing between crashes";
  EXPECT_GT(cluster.leader_crashes_before_persist(), 0u) << "the scenario should be exercised";
  std::printf(
      "leader sends first: %zu of 60 commands committed, %llu leader crashes before its write\n",
      committed, static_cast<unsigned long long>(cluster.leader_crashes_before_persist()));
  EXPECT_SAFE(cluster);
}

}  // namespace
}  // namespace raftlock::sim
