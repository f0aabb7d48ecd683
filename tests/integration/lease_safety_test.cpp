// Lease safety under faults with real processes: the mistakes other lock services made.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "tests/integration/cluster.h"

namespace raftlock::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::vector<int> others(Cluster& cluster, int id) {
  std::vector<int> out;
  for (int other : cluster.ids()) {
    if (other != id) out.push_back(other);
  }
  return out;
}

// etcd 15247/12528-style: a keepalive must not be answered by a leader that cannot confirm its
// leadership with a quorum.
TEST(LeaseSafety, KeepaliveIsNotAnsweredWithoutAQuorum) {
  Cluster cluster(3);
  cluster.start_all();
  auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  auto created =
      cluster.request(*leader, "POST", "/v1/leases", {{"lease_id", 11}, {"ttl_ms", 60000}});
  ASSERT_EQ(created.status, 201) << created.raw;
  auto ok = cluster.request(*leader, "POST", "/v1/leases/11/keepalive");
  ASSERT_EQ(ok.status, 200) << ok.raw;

  // Freeze both followers: the leader still believes it leads (check-quorum needs an election
  // timeout to notice), but no quorum can confirm it.
  for (int follower : others(cluster, *leader)) cluster.pause(follower);
  auto refused = cluster.request(*leader, "POST", "/v1/leases/11/keepalive", nullptr, 15s);
  EXPECT_NE(refused.status, 200) << "a keepalive was answered without a quorum: " << refused.raw;
  EXPECT_EQ(refused.status, 503) << refused.raw;
  for (int follower : others(cluster, *leader)) cluster.resume(follower);

  auto leader_again = cluster.wait_for_leader();
  ASSERT_TRUE(leader_again.has_value());
  auto renewed = cluster.request(*leader_again, "POST", "/v1/leases/11/keepalive");
  EXPECT_EQ(renewed.status, 200) << renewed.raw;
}

// A leader that was paused past a lease's TTL wakes up still believing it leads and decides the
// lease expired. Meanwhile a new leader kept renewing it. The old leader's expiry must never take
// effect: the lease and its lock survive.
TEST(LeaseSafety, ADeposedLeadersExpiryNeverRevokesALeaseTheNewLeaderRenewed) {
  Cluster cluster(3);
  cluster.start_all();
  auto old_leader = cluster.wait_for_leader();
  ASSERT_TRUE(old_leader.has_value());
  auto created =
      cluster.request(*old_leader, "POST", "/v1/leases", {{"lease_id", 22}, {"ttl_ms", 3000}});
  ASSERT_EQ(created.status, 201) << created.raw;
  auto granted =
      cluster.request(*old_leader, "POST", "/v1/locks/guarded/acquire", {{"lease_id", 22}});
  ASSERT_EQ(granted.status, 200) << granted.raw;
  const auto token = granted.body["fencing_token"].get<uint64_t>();

  const std::vector<int> rest = others(cluster, *old_leader);
  std::atomic<bool> stop{false};
  std::atomic<int> renewals{0};
  std::atomic<int> lost{0};
  // A client keeps the lease (ttl 3 s) alive every 200 ms through the nodes that stay up; a
  // request stuck on the paused leader gives up after 1 s, well within the TTL.
  std::thread client([&] {
    for (int i = 0; !stop; ++i) {
      auto reply = cluster.request(rest[i % 2], "POST", "/v1/leases/22/keepalive", nullptr, 1s);
      if (reply.status == 200) ++renewals;
      if (reply.status == 404) ++lost;
      std::this_thread::sleep_for(200ms);
    }
  });
  while (renewals == 0) std::this_thread::sleep_for(10ms);
  cluster.pause(*old_leader);
  auto new_leader = cluster.wait_for_leader(15s, rest);
  ASSERT_TRUE(new_leader.has_value());
  std::this_thread::sleep_for(4s);  // well past the TTL on the paused leader's clock
  cluster.resume(*old_leader);      // it wakes up believing it still leads and the lease is overdue
  std::this_thread::sleep_for(3s);
  stop = true;
  client.join();

  EXPECT_EQ(lost.load(), 0) << "the lease was reported lost while a client kept it alive";
  EXPECT_GT(renewals.load(), 5);
  auto leader_now = cluster.wait_for_leader();
  ASSERT_TRUE(leader_now.has_value());
  auto lease = cluster.request(*leader_now, "GET", "/v1/leases/22");
  EXPECT_EQ(lease.status, 200) << lease.raw;
  auto lock = cluster.request(*leader_now, "GET", "/v1/locks/guarded");
  ASSERT_EQ(lock.status, 200) << lock.raw;
  EXPECT_TRUE(lock.body["held"].get<bool>()) << lock.raw;
  EXPECT_EQ(lock.body["fencing_token"], token) << lock.raw;

  // Report whether the old leader really raced (it proposed an expiry after waking up).
  std::ifstream log(cluster.log_path(*old_leader));
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  std::cout << "old leader proposed an expiry after waking: "
            << (text.find("lease 22 expired") != std::string::npos ? "yes" : "no") << "\n";
}

// What a client can rely on across a leader change (documented in docs/api.md): the new leader
// gives every lease a fresh full TTL from the moment it takes over.
TEST(LeaseSafety, ANewLeaderGivesEveryLeaseAFreshFullTtl) {
  Cluster cluster(3);
  cluster.start_all();
  auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  auto created =
      cluster.request(*leader, "POST", "/v1/leases", {{"lease_id", 33}, {"ttl_ms", 4000}});
  ASSERT_EQ(created.status, 201) << created.raw;
  const auto created_at = Clock::now();
  std::this_thread::sleep_for(1500ms);  // the old leader's remaining time is now ~2.5 s
  cluster.kill(*leader);
  auto new_leader = cluster.wait_for_leader(15s, others(cluster, *leader));
  ASSERT_TRUE(new_leader.has_value());
  auto lease = cluster.request(*new_leader, "GET", "/v1/leases/33");
  ASSERT_EQ(lease.status, 200) << lease.raw;
  const auto remaining = lease.body["remaining_ms"].get<int64_t>();
  const auto since_created =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - created_at).count();
  // Without the fresh TTL it could have at most 4000 - since_created left.
  EXPECT_GT(remaining, 4000 - since_created) << "remaining " << remaining << " ms";
  EXPECT_LE(remaining, 4000);
}

}  // namespace
}  // namespace raftlock::testing
