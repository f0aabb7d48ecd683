// HTTP contract tests for /v1/locks against a real 3-node raftlockd cluster: acquire (lease or
// ttl, idempotent, held, FIFO waiters, wait timeout, lock-delay), release, get, list, fencing
// tokens as log indexes, and stale reads.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/cluster.h"
#include "tests/integration/http_test_support.h"

namespace raftlock::testing {
namespace {

using namespace std::chrono_literals;

class HttpLocks : public SharedClusterTest {
 protected:
  uint64_t create_lease(int node, int64_t ttl_ms = 10000) {
    auto reply = post(node, "/v1/leases", {{"ttl_ms", ttl_ms}});
    EXPECT_EQ(reply.status, 201) << reply.raw;
    return reply.body.is_object() ? reply.body.value("lease_id", uint64_t{0}) : 0;
  }

  // Acquires `name` once (no wait) for `lease` and returns the fencing token (0 on failure).
  uint64_t acquire(int node, const std::string& name, uint64_t lease, const Json& extra = {}) {
    Json body = {{"lease_id", lease}};
    if (extra.is_object()) body.update(extra);
    auto reply = post(node, "/v1/locks/" + name + "/acquire", body);
    EXPECT_EQ(reply.status, 200) << reply.raw;
    return reply.body.is_object() ? reply.body.value("fencing_token", uint64_t{0}) : 0;
  }

  // Polls GET /v1/locks/{name} on the leader until it shows `count` waiters.
  bool wait_for_waiters(const std::string& name, int count) {
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
      auto lock = get(leader_, "/v1/locks/" + name);
      if (lock.status == 200 && lock.body.value("waiters", -1) == count) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  // Polls GET /v1/locks/{name} on `node` until it reads free; the time that took, or -1.
  int64_t wait_until_free(int node, const std::string& name, Clock::time_point since,
                          std::chrono::milliseconds limit) {
    while (Clock::now() - since < limit) {
      auto lock = get(node, "/v1/locks/" + name);
      if (lock.status == 200 && lock.body["held"] == false) return ms_since(since);
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }
};

TEST_F(HttpLocks, AcquireGrantsThroughLeaderAndFollowerAndReadsBackEverywhere) {
  for (int node : {leader_, follower_}) {
    const std::string name = "grant.n" + std::to_string(node);
    const uint64_t lease = create_lease(other_follower_);
    auto reply =
        post(node, "/v1/locks/" + name + "/acquire", {{"lease_id", lease}, {"owner", "worker-7"}});
    ASSERT_EQ(reply.status, 200) << reply.raw;
    EXPECT_EQ(reply.body.size(), 4u) << reply.raw;
    EXPECT_EQ(reply.body["name"], name);
    EXPECT_EQ(reply.body["lease_id"], lease);
    EXPECT_EQ(reply.body["owner"], "worker-7");
    const uint64_t token = reply.body["fencing_token"].get<uint64_t>();
    EXPECT_GT(token, 0u);
    for (int reader : {leader_, follower_, other_follower_}) {
      auto lock = get(reader, "/v1/locks/" + name);
      ASSERT_EQ(lock.status, 200) << lock.raw;
      EXPECT_EQ(lock.body["name"], name);
      EXPECT_EQ(lock.body["held"], true);
      EXPECT_EQ(lock.body["holder"],
                (Json{{"owner", "worker-7"}, {"lease_id", lease}, {"fencing_token", token}}));
      EXPECT_EQ(lock.body["fencing_token"], token);
      EXPECT_EQ(lock.body["waiters"], 0);
      EXPECT_EQ(lock.body["revision"], token) << "the grant was the lock's last change";
    }
  }
}

TEST_F(HttpLocks, ReacquireBySameLeaseIsIdempotentWithTheSameToken) {
  const uint64_t lease = create_lease(leader_);
  auto first = post(follower_, "/v1/locks/idem.l/acquire", {{"lease_id", lease}, {"owner", "a"}});
  ASSERT_EQ(first.status, 200) << first.raw;
  for (int node : {leader_, follower_, other_follower_}) {
    auto again = post(node, "/v1/locks/idem.l/acquire", {{"lease_id", lease}, {"owner", "a"}});
    ASSERT_EQ(again.status, 200) << again.raw;
    EXPECT_EQ(again.body, first.body);
  }
  EXPECT_EQ(get(leader_, "/v1/locks/idem.l").body["revision"], first.body["fencing_token"])
      << "a repeated acquire changes nothing";
}

TEST_F(HttpLocks, AcquireWithTtlCreatesALeaseInTheSameOperation) {
  auto reply = post(follower_, "/v1/locks/ttl.l/acquire", {{"ttl_ms", 4000}, {"owner", "o"}});
  ASSERT_EQ(reply.status, 200) << reply.raw;
  const uint64_t lease = reply.body["lease_id"].get<uint64_t>();
  EXPECT_GT(lease, 0u);
  EXPECT_EQ(reply.body["name"], "ttl.l");
  EXPECT_EQ(reply.body["owner"], "o");
  auto lease_view = get(leader_, "/v1/leases/" + std::to_string(lease));
  ASSERT_EQ(lease_view.status, 200) << lease_view.raw;
  EXPECT_EQ(lease_view.body["ttl_ms"], 4000);
  EXPECT_EQ(lease_view.body["locks"], (Json{"ttl.l"}));
  // The created lease behaves like any other: revoking it frees the lock.
  ASSERT_EQ(cluster_->request(leader_, "DELETE", "/v1/leases/" + std::to_string(lease)).status,
            200);
  EXPECT_EQ(get(follower_, "/v1/locks/ttl.l").body["held"], false);
}

TEST_F(HttpLocks, HeldLockAnswersLockHeldWithTheHolder) {
  const uint64_t holder = create_lease(leader_);
  const uint64_t other = create_lease(follower_);
  const uint64_t token = acquire(leader_, "held.l", holder, {{"owner", "first"}});
  for (int node : {leader_, follower_}) {
    const auto started = Clock::now();
    auto reply = post(node, "/v1/locks/held.l/acquire", {{"lease_id", other}, {"owner", "second"}});
    expect_error(reply, 409, "lock_held");
    EXPECT_EQ(reply.body["holder"],
              (Json{{"owner", "first"}, {"lease_id", holder}, {"fencing_token", token}}));
    EXPECT_LT(ms_since(started), 2000) << "wait_ms defaults to 0: try once";
  }
  EXPECT_EQ(get(other_follower_, "/v1/locks/held.l").body["waiters"], 0);
}

TEST_F(HttpLocks, WaitersAreGrantedFirstComeFirstServed) {
  const std::string name = "fifo.l";
  const uint64_t holder = create_lease(leader_);
  uint64_t token = acquire(leader_, name, holder);
  const std::vector<int> via = {follower_, leader_, other_follower_};
  std::vector<uint64_t> leases;
  std::vector<std::future<HttpReply>> parked;
  for (size_t i = 0; i < via.size(); ++i) {
    leases.push_back(create_lease(leader_));
    const int node = via[i];
    const uint64_t lease = leases.back();
    parked.push_back(std::async(std::launch::async, [this, node, lease, i, name] {
      return post(node, "/v1/locks/" + name + "/acquire",
                  {{"lease_id", lease}, {"wait_ms", 30000}, {"owner", "w" + std::to_string(i)}},
                  60s);
    }));
    // The next client arrives only after this one is queued.
    ASSERT_TRUE(wait_for_waiters(name, static_cast<int>(i) + 1)) << "waiter " << i;
  }
  uint64_t releasing_lease = holder;
  for (size_t i = 0; i < via.size(); ++i) {
    auto released = post(via[(i + 1) % via.size()], "/v1/locks/" + name + "/release",
                         {{"lease_id", releasing_lease}, {"fencing_token", token}});
    ASSERT_EQ(released.status, 200) << released.raw;
    EXPECT_EQ(released.body, (Json{{"released", true}}));
    ASSERT_EQ(parked[i].wait_for(10s), std::future_status::ready) << "waiter " << i;
    auto granted = parked[i].get();
    ASSERT_EQ(granted.status, 200) << "waiter " << i << ": " << granted.raw;
    EXPECT_EQ(granted.body["lease_id"], leases[i]) << "waiter " << i << " was not next";
    EXPECT_EQ(granted.body["owner"], "w" + std::to_string(i));
    const uint64_t next_token = granted.body["fencing_token"].get<uint64_t>();
    EXPECT_GT(next_token, token);
    token = next_token;
    releasing_lease = leases[i];
    // The later waiters are still parked, in order.
    for (size_t j = i + 1; j < parked.size(); ++j) {
      EXPECT_NE(parked[j].wait_for(0ms), std::future_status::ready) << "waiter " << j;
    }
    auto lock = get(follower_, "/v1/locks/" + name);
    EXPECT_EQ(lock.body["holder"]["lease_id"], leases[i]);
    EXPECT_EQ(lock.body["waiters"], static_cast<int>(via.size() - i - 1));
  }
}

TEST_F(HttpLocks, WaitThatTimesOutAnswersLockHeldAndLeavesTheQueue) {
  const uint64_t holder = create_lease(leader_);
  const uint64_t token = acquire(leader_, "timeout.l", holder, {{"owner", "h"}});
  for (int node : {follower_, leader_}) {
    const uint64_t waiter = create_lease(node);
    const auto started = Clock::now();
    auto reply =
        post(node, "/v1/locks/timeout.l/acquire", {{"lease_id", waiter}, {"wait_ms", 500}});
    const int64_t took = ms_since(started);
    expect_error(reply, 409, "lock_held");
    EXPECT_EQ(reply.body["holder"],
              (Json{{"owner", "h"}, {"lease_id", holder}, {"fencing_token", token}}));
    EXPECT_GE(took, 500) << "answered before wait_ms";
    EXPECT_LT(took, 3000);
    auto lock = get(other_follower_, "/v1/locks/timeout.l");
    EXPECT_EQ(lock.body["waiters"], 0) << "the timed-out waiter is still queued";
    auto lease = get(leader_, "/v1/leases/" + std::to_string(waiter));
    EXPECT_EQ(lease.body["locks"], Json::array());
  }
  // Releasing now leaves the lock free: nobody stale is granted.
  ASSERT_EQ(
      post(leader_, "/v1/locks/timeout.l/release", {{"lease_id", holder}, {"fencing_token", token}})
          .status,
      200);
  auto lock = get(follower_, "/v1/locks/timeout.l");
  EXPECT_EQ(lock.body["held"], false);
  EXPECT_EQ(lock.body["holder"], nullptr);
}

TEST_F(HttpLocks, LockDelayAfterExpiryBlocksTheGrantForAboutTheDelay) {
  const uint64_t short_lived = create_lease(follower_, 1000);
  const auto created = Clock::now();
  acquire(follower_, "delay.l", short_lived, {{"lock_delay_ms", 1500}});
  const int64_t freed_after = wait_until_free(leader_, "delay.l", created, 6s);
  ASSERT_GE(freed_after, 0) << "the lease did not expire";
  const auto freed = Clock::now();
  const uint64_t next = create_lease(leader_);
  // In lock-delay: free but not grantable.
  auto refused = post(follower_, "/v1/locks/delay.l/acquire", {{"lease_id", next}});
  expect_error(refused, 409, "lock_held");
  EXPECT_EQ(refused.body["holder"], nullptr);
  auto granted =
      post(leader_, "/v1/locks/delay.l/acquire", {{"lease_id", next}, {"wait_ms", 10000}}, 20s);
  const int64_t waited = ms_since(freed);
  ASSERT_EQ(granted.status, 200) << granted.raw;
  EXPECT_EQ(granted.body["lease_id"], next);
  EXPECT_GE(waited, 1500 - 400) << "granted before the lock-delay ended";
  EXPECT_LE(waited, 1500 + 1500);
}

TEST_F(HttpLocks, ZeroLockDelayMeansTheLockIsGrantableAtOnceAfterExpiry) {
  const uint64_t short_lived = create_lease(leader_, 1000);
  const auto created = Clock::now();
  acquire(leader_, "nodelay.l", short_lived, {{"lock_delay_ms", 0}});
  ASSERT_GE(wait_until_free(follower_, "nodelay.l", created, 6s), 0) << "the lease did not expire";
  const uint64_t next = create_lease(leader_);
  auto granted = post(follower_, "/v1/locks/nodelay.l/acquire", {{"lease_id", next}});
  EXPECT_EQ(granted.status, 200) << granted.raw;
}

TEST_F(HttpLocks, ReleaseAndRevokeDoNotStartTheLockDelay) {
  const uint64_t first = create_lease(leader_);
  const uint64_t token = acquire(leader_, "nodelay-release.l", first, {{"lock_delay_ms", 60000}});
  ASSERT_EQ(post(follower_, "/v1/locks/nodelay-release.l/release",
                 {{"lease_id", first}, {"fencing_token", token}})
                .status,
            200);
  const uint64_t second = create_lease(leader_);
  acquire(follower_, "nodelay-release.l", second, {{"lock_delay_ms", 60000}});
  ASSERT_EQ(cluster_->request(follower_, "DELETE", "/v1/leases/" + std::to_string(second)).status,
            200);
  const uint64_t third = create_lease(leader_);
  auto granted = post(leader_, "/v1/locks/nodelay-release.l/acquire", {{"lease_id", third}});
  EXPECT_EQ(granted.status, 200) << granted.raw;
}

TEST_F(HttpLocks, ReleaseByTheHolderFreesAndAWrongTokenIsNotHolder) {
  const uint64_t holder = create_lease(leader_);
  const uint64_t other = create_lease(leader_);
  const uint64_t token = acquire(follower_, "release.l", holder, {{"owner", "me"}});
  const Json holder_json = {{"owner", "me"}, {"lease_id", holder}, {"fencing_token", token}};
  // Wrong token, wrong lease: 409 not_holder naming the real holder; nothing changes.
  auto wrong_token = post(leader_, "/v1/locks/release.l/release",
                          {{"lease_id", holder}, {"fencing_token", token + 1000}});
  expect_error(wrong_token, 409, "not_holder");
  EXPECT_EQ(wrong_token.body["holder"], holder_json);
  auto wrong_lease = post(follower_, "/v1/locks/release.l/release",
                          {{"lease_id", other}, {"fencing_token", token}});
  expect_error(wrong_lease, 409, "not_holder");
  EXPECT_EQ(wrong_lease.body["holder"], holder_json);
  EXPECT_EQ(get(other_follower_, "/v1/locks/release.l").body["holder"], holder_json);

  auto released = post(other_follower_, "/v1/locks/release.l/release",
                       {{"lease_id", holder}, {"fencing_token", token}});
  ASSERT_EQ(released.status, 200) << released.raw;
  EXPECT_EQ(released.body, (Json{{"released", true}}));
  auto lock = get(leader_, "/v1/locks/release.l");
  EXPECT_EQ(lock.body["held"], false);
  EXPECT_EQ(lock.body["holder"], nullptr);
  EXPECT_EQ(lock.body["fencing_token"], nullptr);
  EXPECT_GT(lock.body["revision"].get<uint64_t>(), token);
  // A retry of the same release is safe: it answers released again and changes nothing.
  auto again = post(leader_, "/v1/locks/release.l/release",
                    {{"lease_id", holder}, {"fencing_token", token}});
  EXPECT_EQ(again.status, 200) << again.raw;
  EXPECT_EQ(get(leader_, "/v1/locks/release.l").body["held"], false);
  // A release with a token that never held it is not_holder, with holder null (free).
  auto stale = post(leader_, "/v1/locks/release.l/release",
                    {{"lease_id", holder}, {"fencing_token", token - 1}});
  expect_error(stale, 409, "not_holder");
  ASSERT_TRUE(stale.body.contains("holder"));
  EXPECT_EQ(stale.body["holder"], nullptr);
  // The lease lives on and no longer lists the lock.
  EXPECT_EQ(get(follower_, "/v1/leases/" + std::to_string(holder)).body["locks"], Json::array());
}

TEST_F(HttpLocks, ALockNeverUsedReadsFreeWithRevisionZero) {
  const std::string name = "never.used-lock:x@y_z";
  const Json expected = {{"name", name},      {"held", false},
                         {"holder", nullptr}, {"fencing_token", nullptr},
                         {"waiters", 0},      {"revision", 0}};
  for (int node : {leader_, follower_}) {
    for (const std::string query : {"", "?consistency=stale", "?consistency=linearizable"}) {
      auto reply = get(node, "/v1/locks/" + name + query);
      ASSERT_EQ(reply.status, 200) << reply.raw;
      EXPECT_EQ(reply.body, expected) << "node " << node << query;
    }
  }
}

TEST_F(HttpLocks, ListShowsHeldLocksFilteredByPrefix) {
  const uint64_t lease = create_lease(leader_);
  const uint64_t a1 = acquire(leader_, "ls.a1", lease);
  const uint64_t a2 = acquire(follower_, "ls.a2", lease);
  const uint64_t b1 = acquire(other_follower_, "ls.b1", lease, {{"owner", "b"}});
  ASSERT_EQ(
      post(leader_, "/v1/locks/ls.a2/release", {{"lease_id", lease}, {"fencing_token", a2}}).status,
      200);
  for (int node : {leader_, follower_}) {
    auto only_a = get(node, "/v1/locks?prefix=ls.a");
    ASSERT_EQ(only_a.status, 200) << only_a.raw;
    ASSERT_EQ(only_a.body["locks"].size(), 1u) << only_a.raw;
    EXPECT_EQ(only_a.body["locks"][0]["name"], "ls.a1");
    EXPECT_EQ(only_a.body["locks"][0]["held"], true);
    EXPECT_EQ(only_a.body["locks"][0]["fencing_token"], a1);
    EXPECT_EQ(only_a.body["locks"][0]["holder"]["lease_id"], lease);
    EXPECT_EQ(only_a.body["locks"][0]["waiters"], 0);
    EXPECT_TRUE(only_a.body["locks"][0].contains("revision"));

    auto both = get(node, "/v1/locks?prefix=ls.");
    ASSERT_EQ(both.status, 200) << both.raw;
    ASSERT_EQ(both.body["locks"].size(), 2u) << both.raw;
    EXPECT_EQ(both.body["locks"][0]["name"], "ls.a1");
    EXPECT_EQ(both.body["locks"][1]["name"], "ls.b1");
    EXPECT_EQ(both.body["locks"][1]["holder"]["owner"], "b");
    EXPECT_EQ(both.body["locks"][1]["fencing_token"], b1);

    auto none = get(node, "/v1/locks?prefix=ls.zzz");
    ASSERT_EQ(none.status, 200) << none.raw;
    EXPECT_EQ(none.body, (Json{{"locks", Json::array()}}));

    auto all = get(node, "/v1/locks");
    ASSERT_EQ(all.status, 200) << all.raw;
    int ours = 0;
    for (const auto& lock : all.body["locks"]) {
      EXPECT_EQ(lock["held"], true) << "the list shows held locks only";
      if (lock["name"].get<std::string>().rfind("ls.", 0) == 0) ++ours;
    }
    EXPECT_EQ(ours, 2);
  }
}

TEST_F(HttpLocks, FencingTokensAreLogIndexesAndStrictlyIncrease) {
  const std::string name = "fence.l";
  uint64_t previous = 0;
  const std::vector<int> via = {leader_, follower_, other_follower_, follower_};
  for (size_t round = 0; round < via.size(); ++round) {
    const uint64_t lease = create_lease(via[round]);
    const uint64_t applied_before = cluster_->status(leader_)["applied_index"].get<uint64_t>();
    auto granted = post(via[round], "/v1/locks/" + name + "/acquire", {{"lease_id", lease}});
    ASSERT_EQ(granted.status, 200) << granted.raw;
    const uint64_t token = granted.body["fencing_token"].get<uint64_t>();
    const uint64_t applied_after = cluster_->status(via[round])["applied_index"].get<uint64_t>();
    EXPECT_GT(token, previous) << "round " << round;
    EXPECT_GT(token, applied_before) << "the grant's index is after everything applied before";
    EXPECT_LE(token, applied_after) << "the grant's index is applied on the answering node";
    previous = token;
    // Release and revoke alternately, so both ways of freeing it are crossed.
    if (round % 2 == 0) {
      ASSERT_EQ(post(via[round], "/v1/locks/" + name + "/release",
                     {{"lease_id", lease}, {"fencing_token", token}})
                    .status,
                200);
    } else {
      ASSERT_EQ(cluster_->request(leader_, "DELETE", "/v1/leases/" + std::to_string(lease)).status,
                200);
    }
  }
}

TEST_F(HttpLocks, StaleReadsAnswerFromLocalState) {
  const uint64_t lease = create_lease(leader_);
  const uint64_t token = acquire(leader_, "stale.l", lease);
  // A stale read on a follower may lag but catches up to the grant without a read barrier.
  const auto started = Clock::now();
  HttpReply stale;
  while (ms_since(started) < 5000) {
    stale = get(follower_, "/v1/locks/stale.l?consistency=stale");
    ASSERT_EQ(stale.status, 200) << stale.raw;
    if (stale.body["held"] == true) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(stale.body["fencing_token"], token);
  // The same for a stale list on the other follower.
  HttpReply listed;
  while (ms_since(started) < 5000) {
    listed = get(other_follower_, "/v1/locks?prefix=stale.&consistency=stale");
    ASSERT_EQ(listed.status, 200) << listed.raw;
    if (listed.body["locks"].size() == 1) break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(listed.body["locks"].size(), 1u) << listed.raw;
  EXPECT_EQ(listed.body["locks"][0]["fencing_token"], token);
  auto linearizable = get(other_follower_, "/v1/locks/stale.l?consistency=linearizable");
  ASSERT_EQ(linearizable.status, 200);
  EXPECT_EQ(linearizable.body["fencing_token"], token);
}

TEST_F(HttpLocks, ARefusedAcquireWithTtlSaysWhichLeaseItCreated) {
  const uint64_t holder = create_lease(leader_);
  ASSERT_GT(acquire(leader_, "ttl-refused", holder), 0u);
  auto refused = post(follower_, "/v1/locks/ttl-refused/acquire", {{"ttl_ms", 5000}});
  expect_error(refused, 409, "lock_held");
  ASSERT_TRUE(refused.body.contains("lease_id")) << refused.raw;
  const uint64_t created = refused.body["lease_id"].get<uint64_t>();
  // The lease exists and can be revoked by the client that now knows its id.
  auto revoked = cluster_->request(leader_, "DELETE", "/v1/leases/" + std::to_string(created));
  EXPECT_EQ(revoked.status, 200) << revoked.raw;
}

}  // namespace
}  // namespace raftlock::testing
