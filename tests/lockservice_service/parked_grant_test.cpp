// LockService on a single in-process node: what a parked acquire answers when its grant and the
// end of its lease are applied before its thread wakes (the chaos suite found it answering
// lease_not_found for a grant that had been made and seen by others).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "lockservice/commands.h"
#include "tests/lockservice_service/single_node_service.h"

namespace raftlock::lockservice {
namespace {

using namespace std::chrono_literals;

TEST_F(SingleNodeService, AParkedAcquireGrantedJustBeforeItsLeaseEndsAnswersTheGrant) {
  for (int round = 0; round < 100; ++round) {
    const LeaseId holder = 100 + round * 2, waiter = 101 + round * 2;
    const std::string name = "lock-" + std::to_string(round);
    ASSERT_TRUE(service_.create_lease(holder, 60000).ok());
    ASSERT_TRUE(service_.create_lease(waiter, 60000).ok());
    AcquireRequest first;
    first.name = name;
    first.lease_id = holder;
    auto held = service_.acquire(first);
    ASSERT_TRUE(held.ok());
    ASSERT_EQ(held->outcome, Outcome::kGranted);
    const FencingToken held_token = held->lock->holder->fencing_token;

    AcquireRequest second;
    second.name = name;
    second.lease_id = waiter;
    second.wait_ms = 10000;
    auto parked = std::async(std::launch::async, [&] { return service_.acquire(second); });
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (service_.get_lock(name, false)->waiters == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_EQ(service_.get_lock(name, false)->waiters, 1u);

    // The release hands the lock to the waiter; the revoke right behind it ends the waiter's
    // lease, usually in the same apply batch, before the parked thread runs.
    auto release = node_->propose(encode_command(Release{name, holder, held_token}));
    auto revoke = node_->propose(encode_command(RevokeLease{waiter}));
    ASSERT_TRUE(release.get().ok());
    ASSERT_TRUE(revoke.get().ok());

    ASSERT_EQ(parked.wait_for(5s), std::future_status::ready);
    auto answer = parked.get();
    ASSERT_TRUE(answer.ok()) << answer.error().message;
    EXPECT_EQ(answer->outcome, Outcome::kGranted) << "round " << round << ": " << answer->message;
    ASSERT_TRUE(answer->lock.has_value());
    ASSERT_TRUE(answer->lock->holder.has_value());
    EXPECT_EQ(answer->lock->holder->lease_id, waiter);
    EXPECT_GT(answer->lock->holder->fencing_token, held_token);
    // And the lock is free now: the grant was real and the revoke released it.
    EXPECT_FALSE(service_.get_lock(name, true)->held);
  }
}

// With a limit far beyond the test, an entry that may wait stays out of the log until another
// proposal comes: what the service marks as such is visible.
class SingleNodeServiceHoldingForever : public SingleNodeService {
 protected:
  std::chrono::microseconds may_wait_limit() const override { return 600s; }
};

TEST_F(SingleNodeServiceHoldingForever, AnAcquireThatWillQueueWaitsToShareTheReleasesWrite) {
  ASSERT_TRUE(service_.create_lease(1, 60000).ok());
  ASSERT_TRUE(service_.create_lease(2, 60000).ok());
  AcquireRequest first;
  first.name = "contended";
  first.lease_id = 1;
  first.wait_ms = 10000;  // a waiting acquire of a free lock must not wait for company
  auto held = service_.acquire(first);
  ASSERT_TRUE(held.ok()) << held.error().message;
  ASSERT_EQ(held->outcome, Outcome::kGranted);

  AcquireRequest second;
  second.name = "contended";
  second.lease_id = 2;
  second.wait_ms = 10000;
  auto parked = std::async(std::launch::async, [&] { return service_.acquire(second); });
  // Held back on the leader: not in the log, so not queued yet.
  EXPECT_EQ(parked.wait_for(200ms), std::future_status::timeout);
  EXPECT_EQ(service_.get_lock("contended", false)->waiters, 0u);
  EXPECT_EQ(node_->status().pending_proposals, 1u);
  const raft::Index applied_while_held = node_->status().core.applied_index;

  // The release is appended at once and the acquire behind it, in the same round: granted.
  auto released = service_.release("contended", 1, held->lock->holder->fencing_token);
  ASSERT_TRUE(released.ok()) << released.error().message;
  ASSERT_EQ(parked.wait_for(5s), std::future_status::ready);
  auto answer = parked.get();
  ASSERT_TRUE(answer.ok()) << answer.error().message;
  EXPECT_EQ(answer->outcome, Outcome::kGranted);
  EXPECT_EQ(answer->lock->holder->lease_id, 2u);
  ASSERT_TRUE(released->lock.has_value());
  EXPECT_EQ(released->lock->revision, applied_while_held + 1) << "nothing was appended while held";
  EXPECT_EQ(answer->lock->holder->fencing_token, released->lock->revision + 1)
      << "the acquire's entry directly follows the release's";

  // The holder's own waiting re-acquire is not held back either (it is answered at once).
  AcquireRequest again = second;
  auto reacquired = service_.acquire(again);
  ASSERT_TRUE(reacquired.ok()) << reacquired.error().message;
  EXPECT_EQ(reacquired->outcome, Outcome::kGranted);
}

TEST_F(SingleNodeServiceHoldingForever, ACampaignBehindALeaderWaitsToShareTheResignsWrite) {
  ASSERT_TRUE(service_.create_lease(1, 60000).ok());
  ASSERT_TRUE(service_.create_lease(2, 60000).ok());
  CampaignRequest first;
  first.name = "primary";
  first.lease_id = 1;
  first.wait_ms = 10000;  // no leader yet: not held back
  first.value = "a";
  auto led = service_.campaign(first);
  ASSERT_TRUE(led.ok()) << led.error().message;
  ASSERT_EQ(led->outcome, Outcome::kGranted);

  CampaignRequest second = first;
  second.lease_id = 2;
  second.value = "b";
  auto parked = std::async(std::launch::async, [&] { return service_.campaign(second); });
  EXPECT_EQ(parked.wait_for(200ms), std::future_status::timeout);
  EXPECT_EQ(node_->status().pending_proposals, 1u);
  const raft::Index applied_while_held = node_->status().core.applied_index;

  auto resigned = service_.resign("primary", 1, led->election->leader->fencing_token);
  ASSERT_TRUE(resigned.ok()) << resigned.error().message;
  ASSERT_EQ(parked.wait_for(5s), std::future_status::ready);
  auto answer = parked.get();
  ASSERT_TRUE(answer.ok()) << answer.error().message;
  EXPECT_EQ(answer->outcome, Outcome::kGranted);
  ASSERT_TRUE(answer->election.has_value() && answer->election->leader.has_value());
  EXPECT_EQ(answer->election->leader->lease_id, 2u);
  // The resign was the first entry after the hold began, and the campaign came right behind it.
  EXPECT_EQ(answer->election->leader->fencing_token, applied_while_held + 2);
}

}  // namespace
}  // namespace raftlock::lockservice
