// A waiting acquire parked on a follower survives a leader change: it is still granted when the
// holder releases under the new leader, or times out correctly and leaves the queue.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "tests/integration/cluster.h"

namespace raftlock::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Roles {
  int leader = 0;
  int parked_on = 0;  // a follower that stays up
  int other = 0;      // the remaining node
};

Roles pick_roles(Cluster& cluster) {
  auto leader = cluster.wait_for_leader();
  EXPECT_TRUE(leader.has_value());
  Roles roles;
  roles.leader = leader.value_or(1);
  roles.parked_on = roles.leader % 3 + 1;
  roles.other = roles.parked_on % 3 + 1;
  return roles;
}

bool wait_for_waiters(Cluster& cluster, int node, const std::string& name, int count) {
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {
    auto view = cluster.request(node, "GET", "/v1/locks/" + name + "?consistency=stale");
    if (view.status == 200 && view.body.value("waiters", -1) == count) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST(ParkedWait, IsGrantedAfterTheLeaderChanges) {
  Cluster cluster(3);
  cluster.start_all();
  const Roles roles = pick_roles(cluster);
  auto holder = cluster.request(roles.leader, "POST", "/v1/locks/handoff/acquire",
                                {{"ttl_ms", 60000}, {"owner", "holder"}});
  ASSERT_EQ(holder.status, 200) << holder.raw;
  const auto holder_lease = holder.body["lease_id"].get<uint64_t>();
  const auto holder_token = holder.body["fencing_token"].get<uint64_t>();

  auto parked = std::async(std::launch::async, [&] {
    return cluster.request(roles.parked_on, "POST", "/v1/locks/handoff/acquire",
                           {{"ttl_ms", 60000}, {"owner", "waiter"}, {"wait_ms", 30000}}, 40s);
  });
  ASSERT_TRUE(wait_for_waiters(cluster, roles.parked_on, "handoff", 1));

  cluster.kill(roles.leader);
  auto new_leader = cluster.wait_for_leader(15s, {roles.parked_on, roles.other});
  ASSERT_TRUE(new_leader.has_value());
  ASSERT_NE(*new_leader, roles.leader);
  ASSERT_EQ(parked.wait_for(0s), std::future_status::timeout) << "answered before the release";

  auto released = cluster.request(roles.other, "POST", "/v1/locks/handoff/release",
                                  {{"lease_id", holder_lease}, {"fencing_token", holder_token}});
  ASSERT_EQ(released.status, 200) << released.raw;
  ASSERT_EQ(parked.wait_for(10s), std::future_status::ready) << "the parked waiter never woke";
  auto granted = parked.get();
  ASSERT_EQ(granted.status, 200) << granted.raw;
  EXPECT_EQ(granted.body["owner"], "waiter");
  EXPECT_GT(granted.body["fencing_token"].get<uint64_t>(), holder_token);
}

TEST(ParkedWait, TimesOutAfterTheLeaderChangesAndLeavesTheQueue) {
  Cluster cluster(3);
  cluster.start_all();
  const Roles roles = pick_roles(cluster);
  auto holder = cluster.request(roles.leader, "POST", "/v1/locks/stuck/acquire",
                                {{"ttl_ms", 60000}, {"owner", "holder"}});
  ASSERT_EQ(holder.status, 200) << holder.raw;

  const auto started = Clock::now();
  auto parked = std::async(std::launch::async, [&] {
    return cluster.request(roles.parked_on, "POST", "/v1/locks/stuck/acquire",
                           {{"ttl_ms", 60000}, {"owner", "waiter"}, {"wait_ms", 4000}}, 40s);
  });
  ASSERT_TRUE(wait_for_waiters(cluster, roles.parked_on, "stuck", 1));
  cluster.kill(roles.leader);
  ASSERT_TRUE(cluster.wait_for_leader(15s, {roles.parked_on, roles.other}).has_value());

  auto answer = parked.get();
  const auto waited = Clock::now() - started;
  EXPECT_EQ(answer.status, 409) << answer.raw;
  EXPECT_EQ(answer.body["error"]["code"], "lock_held") << answer.raw;
  EXPECT_GE(waited, 4000ms) << "answered before its wait ended";
  // It left the queue through the log, as every node now sees.
  EXPECT_TRUE(wait_for_waiters(cluster, roles.parked_on, "stuck", 0));
  EXPECT_TRUE(wait_for_waiters(cluster, roles.other, "stuck", 0));
}

}  // namespace
}  // namespace raftlock::testing
