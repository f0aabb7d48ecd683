// The chaos harness itself: the peer proxies really carry every peer link, so cutting links
// changes what the cluster does (an isolated leader is replaced; healing reunites the cluster).
#include <gtest/gtest.h>

#include <set>

#include "chaos_cluster.h"

namespace raftlock::chaos {
namespace {

using namespace std::chrono_literals;

TEST(ChaosHarness, IsolatingTheLeaderThroughTheProxiesElectsAnotherAndHealingReunites) {
  ChaosCluster cluster(3, 50, 500);
  std::string error;
  ASSERT_TRUE(cluster.start(&error)) << error;
  auto leader = cluster.wait_for_leader(15s);
  ASSERT_TRUE(leader);
  std::set<int> others;
  std::vector<int> other_ids;
  for (int id : cluster.ids()) {
    if (id != *leader) {
      others.insert(id);
      other_ids.push_back(id);
    }
  }
  cluster.rules().split({*leader}, others);
  auto replacement = cluster.processes().wait_for_leader(10s, other_ids);
  ASSERT_TRUE(replacement) << "the majority did not elect a leader while the old one was cut off";
  EXPECT_NE(*replacement, *leader);
  EXPECT_GT(cluster.rules().dropped.load(), 0u);
  // The cut-off node cannot commit: a write through it does not succeed while it is isolated.
  auto through_isolated = testing::http_request(cluster.client_port(*leader), "POST", "/v1/leases",
                                                "{\"ttl_ms\": 5000}", 2s);
  EXPECT_NE(through_isolated.status, 201);

  ASSERT_TRUE(cluster.heal_all(&error)) << error;
  auto reunited = cluster.wait_for_leader(15s);
  ASSERT_TRUE(reunited);
  auto created = testing::http_request(cluster.client_port(*leader), "POST", "/v1/leases",
                                       "{\"ttl_ms\": 5000}", 5s);
  EXPECT_EQ(created.status, 201) << created.raw;
  std::string detail;
  EXPECT_TRUE(cluster.wait_converged(15s, {}, &detail)) << detail;
}

TEST(ChaosHarness, ADelayedLinkStillDeliversAndACutOneWayLinkFailsTheSender) {
  ChaosCluster cluster(3, 50, 500);
  std::string error;
  ASSERT_TRUE(cluster.start(&error)) << error;
  auto leader = cluster.wait_for_leader(15s);
  ASSERT_TRUE(leader);
  cluster.rules().slow_all({1, 2, 3}, 20, 60);
  auto created =
      testing::http_request(cluster.client_port(1), "POST", "/v1/leases", "{\"ttl_ms\": 5000}", 5s);
  EXPECT_EQ(created.status, 201) << created.raw;
  EXPECT_GT(cluster.rules().delayed.load(), 0u);
  cluster.rules().heal();
  // Cut only leader -> follower: the leader's heartbeats to it fail, the other direction passes.
  const int follower = *leader == 1 ? 2 : 1;
  const uint64_t dropped_before = cluster.rules().dropped.load();
  cluster.rules().cut(*leader, follower);
  const auto started = std::chrono::steady_clock::now();
  while (cluster.rules().dropped.load() == dropped_before &&
         std::chrono::steady_clock::now() - started < 5s) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GT(cluster.rules().dropped.load(), dropped_before);
  EXPECT_TRUE(cluster.rules().rule(*leader, follower).cut);
  EXPECT_FALSE(cluster.rules().rule(follower, *leader).cut);
}

}  // namespace
}  // namespace raftlock::chaos
