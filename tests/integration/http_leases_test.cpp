// HTTP contract tests for /v1/leases against a real 3-node raftlockd cluster: create (idempotent
// retry, conflicting ttl, default and bounds), keepalive, get, revoke, and TTL expiry.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "tests/integration/cluster.h"
#include "tests/integration/http_test_support.h"

namespace raftlock::testing {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kMaxLeaseId = (uint64_t{1} << 53) - 1;

// A fresh explicit lease id, so tests sharing one cluster never collide.
uint64_t random_lease_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  return 1 + rng() % (kMaxLeaseId - 1);
}

class HttpLeases : public SharedClusterTest {
 protected:
  HttpReply del(int node, const std::string& path) {
    return cluster_->request(node, "DELETE", path);
  }

  // Creates a lease through `node` and returns its id.
  uint64_t create_lease(int node, int64_t ttl_ms) {
    auto reply = post(node, "/v1/leases", {{"ttl_ms", ttl_ms}});
    EXPECT_EQ(reply.status, 201) << reply.raw;
    return reply.body.is_object() ? reply.body.value("lease_id", uint64_t{0}) : 0;
  }

  static std::string lease_path(uint64_t id) { return "/v1/leases/" + std::to_string(id); }
};

TEST_F(HttpLeases, CreateAnswers201WithLeaseIdAndTtlThroughLeaderAndFollower) {
  for (int node : {leader_, follower_}) {
    auto reply = post(node, "/v1/leases", {{"ttl_ms", 5000}});
    ASSERT_EQ(reply.status, 201) << "node " << node << ": " << reply.raw;
    ASSERT_TRUE(reply.body.is_object());
    EXPECT_EQ(reply.body.size(), 2u) << reply.raw;
    const uint64_t id = reply.body["lease_id"].get<uint64_t>();
    EXPECT_GE(id, 1u);
    EXPECT_LE(id, kMaxLeaseId);
    EXPECT_EQ(reply.body["ttl_ms"], 5000);
    EXPECT_NE(reply.headers["Content-Type"].find("application/json"), std::string::npos);
    // A linearizable read through another node sees it at once.
    auto seen = get(other_follower_, lease_path(id));
    ASSERT_EQ(seen.status, 200) << seen.raw;
    EXPECT_EQ(seen.body["lease_id"], id);
    EXPECT_EQ(seen.body["ttl_ms"], 5000);
  }
}

TEST_F(HttpLeases, CreateWithoutBodyOrTtlDefaultsToTenSeconds) {
  auto no_body = post(follower_, "/v1/leases");
  ASSERT_EQ(no_body.status, 201) << no_body.raw;
  EXPECT_EQ(no_body.body["ttl_ms"], 10000);
  auto empty_object = post(leader_, "/v1/leases", Json::object());
  ASSERT_EQ(empty_object.status, 201) << empty_object.raw;
  EXPECT_EQ(empty_object.body["ttl_ms"], 10000);
  EXPECT_NE(no_body.body["lease_id"], empty_object.body["lease_id"]);
  auto seen = get(leader_, lease_path(no_body.body["lease_id"].get<uint64_t>()));
  ASSERT_EQ(seen.status, 200) << seen.raw;
  EXPECT_EQ(seen.body["ttl_ms"], 10000);
}

TEST_F(HttpLeases, CreateWithSameIdAndTtlIsIdempotentAndAnotherTtlIsLeaseExists) {
  const uint64_t id = random_lease_id();
  auto first = post(follower_, "/v1/leases", {{"lease_id", id}, {"ttl_ms", 3000}});
  ASSERT_EQ(first.status, 201) << first.raw;
  EXPECT_EQ(first.body, (Json{{"lease_id", id}, {"ttl_ms", 3000}}));
  // Retries with the same arguments, through either node: 200 and the same body.
  for (int node : {leader_, follower_}) {
    auto retry = post(node, "/v1/leases", {{"lease_id", id}, {"ttl_ms", 3000}});
    EXPECT_EQ(retry.status, 200) << retry.raw;
    EXPECT_EQ(retry.body, first.body);
  }
  auto conflict = post(leader_, "/v1/leases", {{"lease_id", id}, {"ttl_ms", 4000}});
  expect_error(conflict, 409, "lease_exists");
  auto conflict_via_follower = post(follower_, "/v1/leases", {{"lease_id", id}});  // default ttl
  expect_error(conflict_via_follower, 409, "lease_exists");
  // Nothing changed.
  auto seen = get(follower_, lease_path(id));
  ASSERT_EQ(seen.status, 200) << seen.raw;
  EXPECT_EQ(seen.body["ttl_ms"], 3000);
}

TEST_F(HttpLeases, CreateRefusesTtlAndLeaseIdOutOfRange) {
  for (const Json& ttl : {Json(999), Json(0), Json(-1), Json(3600001)}) {
    auto reply = post(follower_, "/v1/leases", {{"ttl_ms", ttl}});
    expect_error(reply, 400, "invalid_argument");
  }
  for (const Json& id : {Json(0), Json(-5), Json(kMaxLeaseId + 1)}) {
    auto reply = post(leader_, "/v1/leases", {{"lease_id", id}, {"ttl_ms", 2000}});
    expect_error(reply, 400, "invalid_argument");
  }
  // The bounds themselves are accepted.
  auto low = post(leader_, "/v1/leases", {{"ttl_ms", 1000}});
  EXPECT_EQ(low.status, 201) << low.raw;
  auto high = post(follower_, "/v1/leases", {{"ttl_ms", 3600000}});
  EXPECT_EQ(high.status, 201) << high.raw;
  auto max_id = post(follower_, "/v1/leases", {{"lease_id", kMaxLeaseId}, {"ttl_ms", 2000}});
  EXPECT_EQ(max_id.status, 201) << max_id.raw;
  EXPECT_EQ(max_id.body["lease_id"], kMaxLeaseId);
  EXPECT_EQ(del(leader_, lease_path(kMaxLeaseId)).status, 200);
}

TEST_F(HttpLeases, KeepaliveAnswersRemainingTimeThroughLeaderAndFollower) {
  const uint64_t id = create_lease(leader_, 5000);
  ASSERT_NE(id, 0u);
  for (int node : {follower_, leader_}) {
    auto reply = post(node, lease_path(id) + "/keepalive");
    ASSERT_EQ(reply.status, 200) << "node " << node << ": " << reply.raw;
    EXPECT_EQ(reply.body["lease_id"], id);
    EXPECT_EQ(reply.body["ttl_ms"], 5000);
    const int64_t remaining = reply.body["remaining_ms"].get<int64_t>();
    EXPECT_GT(remaining, 4000) << "a keepalive restores (nearly) the full ttl";
    EXPECT_LE(remaining, 5000);
    EXPECT_EQ(reply.body.size(), 3u) << reply.raw;
  }
}

TEST_F(HttpLeases, KeepaliveOfUnknownLeaseIsLeaseNotFound) {
  const uint64_t unknown = random_lease_id();
  expect_error(post(leader_, lease_path(unknown) + "/keepalive"), 404, "lease_not_found");
  expect_error(post(follower_, lease_path(unknown) + "/keepalive"), 404, "lease_not_found");
  expect_error(get(follower_, lease_path(unknown)), 404, "lease_not_found");
  expect_error(del(follower_, lease_path(unknown)), 404, "lease_not_found");
}

TEST_F(HttpLeases, GetLeaseListsItsLocksAndElections) {
  const uint64_t id = create_lease(follower_, 8000);
  ASSERT_NE(id, 0u);
  ASSERT_EQ(post(leader_, "/v1/locks/lease-get.b/acquire", {{"lease_id", id}}).status, 200);
  ASSERT_EQ(post(follower_, "/v1/locks/lease-get.a/acquire", {{"lease_id", id}}).status, 200);
  ASSERT_EQ(post(other_follower_, "/v1/elections/lease-get.e/campaign",
                 {{"lease_id", id}, {"value", "v"}})
                .status,
            200);
  for (int node : {leader_, follower_}) {
    auto reply = get(node, lease_path(id));
    ASSERT_EQ(reply.status, 200) << reply.raw;
    EXPECT_EQ(reply.body["lease_id"], id);
    EXPECT_EQ(reply.body["ttl_ms"], 8000);
    const int64_t remaining = reply.body["remaining_ms"].get<int64_t>();
    EXPECT_GT(remaining, 0);
    EXPECT_LE(remaining, 8000);
    EXPECT_EQ(reply.body["locks"], (Json{"lease-get.a", "lease-get.b"}));
    EXPECT_EQ(reply.body["elections"], (Json{"lease-get.e"}));
  }
  auto bare = create_lease(leader_, 2000);
  auto reply = get(follower_, lease_path(bare));
  ASSERT_EQ(reply.status, 200) << reply.raw;
  EXPECT_EQ(reply.body["locks"], Json::array());
  EXPECT_EQ(reply.body["elections"], Json::array());
}

TEST_F(HttpLeases, DeleteReleasesEverythingAndGrantsTheWaitersBehindIt) {
  const uint64_t holder = create_lease(leader_, 10000);
  const uint64_t waiter = create_lease(follower_, 10000);
  ASSERT_NE(holder, 0u);
  ASSERT_NE(waiter, 0u);
  auto granted = post(leader_, "/v1/locks/revoke.l/acquire", {{"lease_id", holder}});
  ASSERT_EQ(granted.status, 200) << granted.raw;
  const uint64_t holder_token = granted.body["fencing_token"].get<uint64_t>();
  ASSERT_EQ(post(leader_, "/v1/elections/revoke.e/campaign", {{"lease_id", holder}}).status, 200);

  // The waiter parks through a follower.
  auto parked = std::async(std::launch::async, [&] {
    return post(follower_, "/v1/locks/revoke.l/acquire",
                {{"lease_id", waiter}, {"wait_ms", 20000}, {"owner", "second"}}, 30s);
  });
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline &&
         get(leader_, "/v1/locks/revoke.l").body.value("waiters", 0) < 1) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(get(leader_, "/v1/locks/revoke.l").body["waiters"], 1);

  auto revoked = del(other_follower_, lease_path(holder));
  ASSERT_EQ(revoked.status, 200) << revoked.raw;
  EXPECT_EQ(revoked.body["revoked"], true);
  Json released = revoked.body["released"];
  ASSERT_TRUE(released.is_array());
  std::sort(released.begin(), released.end());
  EXPECT_EQ(released, (Json{"revoke.e", "revoke.l"}));

  ASSERT_EQ(parked.wait_for(10s), std::future_status::ready) << "the waiter was not granted";
  auto waiter_reply = parked.get();
  ASSERT_EQ(waiter_reply.status, 200) << waiter_reply.raw;
  EXPECT_EQ(waiter_reply.body["lease_id"], waiter);
  EXPECT_EQ(waiter_reply.body["owner"], "second");
  EXPECT_GT(waiter_reply.body["fencing_token"].get<uint64_t>(), holder_token);

  auto lock = get(follower_, "/v1/locks/revoke.l");
  EXPECT_EQ(lock.body["holder"]["lease_id"], waiter);
  EXPECT_EQ(lock.body["waiters"], 0);
  EXPECT_EQ(get(leader_, "/v1/elections/revoke.e").body["leader"], nullptr);
  expect_error(get(leader_, lease_path(holder)), 404, "lease_not_found");
  // Revoking again: the lease is gone.
  expect_error(del(leader_, lease_path(holder)), 404, "lease_not_found");
}

TEST_F(HttpLeases, DeleteCancelsTheLeasesQueuedWaits) {
  const uint64_t holder = create_lease(leader_, 10000);
  const uint64_t waiter = create_lease(leader_, 10000);
  ASSERT_EQ(post(leader_, "/v1/locks/revoke-wait.l/acquire", {{"lease_id", holder}}).status, 200);
  auto parked = std::async(std::launch::async, [&] {
    return post(follower_, "/v1/locks/revoke-wait.l/acquire",
                {{"lease_id", waiter}, {"wait_ms", 20000}}, 30s);
  });
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline &&
         get(leader_, "/v1/locks/revoke-wait.l").body.value("waiters", 0) < 1) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(get(leader_, "/v1/locks/revoke-wait.l").body["waiters"], 1);
  auto revoked = del(follower_, lease_path(waiter));
  ASSERT_EQ(revoked.status, 200) << revoked.raw;
  EXPECT_EQ(revoked.body["released"], Json::array());
  ASSERT_EQ(parked.wait_for(10s), std::future_status::ready) << "the parked wait did not end";
  expect_error(parked.get(), 404, "lease_not_found");
  auto lock = get(leader_, "/v1/locks/revoke-wait.l");
  EXPECT_EQ(lock.body["waiters"], 0);
  EXPECT_EQ(lock.body["holder"]["lease_id"], holder);
}

TEST_F(HttpLeases, LeaseWithoutKeepaliveExpiresAfterItsTtlAndReleasesItsLock) {
  const auto sent = Clock::now();
  const uint64_t id = create_lease(follower_, 1000);
  ASSERT_NE(id, 0u);
  auto granted = post(leader_, "/v1/locks/expiry.l/acquire", {{"lease_id", id}});
  ASSERT_EQ(granted.status, 200) << granted.raw;
  int64_t released_after = -1;
  while (ms_since(sent) < 6000) {
    auto lock = get(follower_, "/v1/locks/expiry.l");
    ASSERT_EQ(lock.status, 200) << lock.raw;
    if (lock.body["held"] == false) {
      released_after = ms_since(sent);
      EXPECT_EQ(lock.body["holder"], nullptr);
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_GE(released_after, 0) << "the lease did not expire within 6 s";
  EXPECT_GE(released_after, 1000) << "released before its ttl";
  EXPECT_LE(released_after, 1000 + 1500) << "expiry took far longer than the ttl";
  expect_error(get(leader_, lease_path(id)), 404, "lease_not_found");
  expect_error(post(follower_, lease_path(id) + "/keepalive"), 404, "lease_not_found");
}

TEST_F(HttpLeases, KeepalivesEvery300MsKeepATtl1000LeaseAliveForMoreThan3Seconds) {
  const auto started = Clock::now();
  const uint64_t id = create_lease(leader_, 1000);
  ASSERT_NE(id, 0u);
  auto granted = post(follower_, "/v1/locks/keepalive.l/acquire", {{"lease_id", id}});
  ASSERT_EQ(granted.status, 200) << granted.raw;
  const uint64_t token = granted.body["fencing_token"].get<uint64_t>();
  int round = 0;
  while (ms_since(started) < 3300) {
    const int node = (round++ % 2 == 0) ? follower_ : leader_;
    auto reply = post(node, lease_path(id) + "/keepalive");
    ASSERT_EQ(reply.status, 200) << "keepalive " << round << " after " << ms_since(started)
                                 << " ms: " << reply.raw;
    EXPECT_GT(reply.body["remaining_ms"].get<int64_t>(), 0);
    std::this_thread::sleep_for(300ms);
  }
  auto lock = get(other_follower_, "/v1/locks/keepalive.l");
  ASSERT_EQ(lock.status, 200);
  EXPECT_EQ(lock.body["held"], true);
  EXPECT_EQ(lock.body["fencing_token"], token);
  EXPECT_EQ(lock.body["holder"]["lease_id"], id);
  EXPECT_EQ(del(leader_, lease_path(id)).status, 200);
}

}  // namespace
}  // namespace raftlock::testing
