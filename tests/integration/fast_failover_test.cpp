// Fast failover with real raftlockd processes: a follower that stops hearing from its leader
// probes the leader's peer port; a refused connection (the process is gone) starts an election
// at once, while a paused (alive) leader is left to the election timeout.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/cluster.h"

namespace raftlock::testing {
namespace {

using namespace std::chrono_literals;

// The production timing: heartbeat 100 ms, election timeout 1000 ms (randomised to [1, 2) s).
ClusterOptions production_timing() {
  ClusterOptions options;
  options.heartbeat_ms = 100;
  options.election_timeout_ms = 1000;
  return options;
}

std::string read_log(const Cluster& cluster, int id) {
  std::ifstream in(cluster.log_path(id));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

uint64_t term_of(Cluster& cluster, int id) {
  Json s = cluster.status(id);
  return s.is_null() ? 0 : s["term"].get<uint64_t>();
}

std::vector<int> all_but(const Cluster& cluster, int excluded) {
  std::vector<int> rest;
  for (int id : cluster.ids()) {
    if (id != excluded) rest.push_back(id);
  }
  return rest;
}

// Acquires lock `name` through `node` with a fresh lease; true when acknowledged.
bool acquire(Cluster& cluster, int node, const std::string& name, uint64_t lease_id) {
  auto lease =
      cluster.request(node, "POST", "/v1/leases", {{"lease_id", lease_id}, {"ttl_ms", 3600000}});
  if (lease.status != 200 && lease.status != 201) return false;
  auto reply = cluster.request(node, "POST", "/v1/locks/" + name + "/acquire",
                               {{"lease_id", lease_id}, {"owner", "fast-failover"}});
  return reply.status == 200;
}

TEST(FastFailover, KilledLeaderIsReplacedByTheElectionItsDetectionStarted) {
  Cluster cluster(3, production_timing());
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const uint64_t old_term = term_of(cluster, *leader);
  ASSERT_GT(old_term, 0u);
  ASSERT_TRUE(acquire(cluster, *leader, "before", 501));

  cluster.kill(*leader);  // SIGKILL: the peer port now refuses connections
  const std::vector<int> survivors = all_but(cluster, *leader);
  const auto next = cluster.wait_for_leader(15s, survivors);
  ASSERT_TRUE(next.has_value());
  const uint64_t new_term = term_of(cluster, *next);
  EXPECT_GT(new_term, old_term);

  // At least one survivor saw the refusal and said so.
  const std::string detected =
      ": leader " + std::to_string(*leader) + " refuses connections (process gone); campaigning in";
  int detectors = 0;
  for (int id : survivors) {
    if (read_log(cluster, id).find(detected) != std::string::npos) ++detectors;
  }
  EXPECT_GE(detectors, 1) << "no survivor detected the dead leader";

  // The winner campaigned because of the detection (not because its election timeout ran out):
  // the pre-vote that won asked for new_term, so it was started at new_term - 1. That is
  // old_term unless both survivors campaigned at once and split a term's votes.
  const std::string fast_campaign =
      "node " + std::to_string(*next) + " term " + std::to_string(new_term - 1) +
      ": campaigning (pre-vote) because leader " + std::to_string(*leader) + " is gone";
  const std::string winner_log = read_log(cluster, *next);
  EXPECT_NE(winner_log.find(fast_campaign), std::string::npos)
      << "node " << *next << " won term " << new_term << " without a fast campaign";

  // The new leader serves writes.
  EXPECT_TRUE(acquire(cluster, *next, "after", 502));
  if (HasFailure()) cluster.dump_logs();
}

TEST(FastFailover, PausedLeaderIsProbedButLeftToTheElectionTimeout) {
  ClusterOptions options = production_timing();
  options.extra_args = {"--log-level", "debug"};  // the probe outcomes are debug lines
  Cluster cluster(3, options);
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const uint64_t old_term = term_of(cluster, *leader);

  cluster.pause(*leader);  // SIGSTOP: alive, silent, its port still accepts connections
  const std::vector<int> survivors = all_but(cluster, *leader);
  const auto next = cluster.wait_for_leader(15s, survivors);
  ASSERT_TRUE(next.has_value());
  EXPECT_GT(term_of(cluster, *next), old_term);

  const std::string probed_alive = "probed silent leader " + std::to_string(*leader) +
                                   ": its peer port accepts or does not answer";
  const std::string refused = "leader " + std::to_string(*leader) + " refuses connections";
  const std::string fast_campaign = "because leader " + std::to_string(*leader) + " is gone";
  int probers = 0;
  for (int id : survivors) {
    const std::string log = read_log(cluster, id);
    if (log.find(probed_alive) != std::string::npos) ++probers;
    EXPECT_EQ(log.find(refused), std::string::npos) << "node " << id;
    EXPECT_EQ(log.find(fast_campaign), std::string::npos) << "node " << id;
  }
  EXPECT_GE(probers, 1) << "no follower probed the silent leader";

  // Resumed, the old leader learns the new term and follows.
  cluster.resume(*leader);
  const auto agreed = cluster.wait_for_leader(15s);
  ASSERT_TRUE(agreed.has_value());
  EXPECT_EQ(*agreed, *next);
  if (HasFailure()) cluster.dump_logs();
}

}  // namespace
}  // namespace raftlock::testing
