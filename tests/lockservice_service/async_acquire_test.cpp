// LockService::acquire_async / release_async: a waiting acquire holds no thread. It is a record on
// its lock, answered by the apply that grants it (in queue order, tokens rising), by the end of
// its lease, by its wait's end (it then leaves the queue through the log), or by shutdown.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "lockservice/commands.h"
#include "tests/lockservice_service/single_node_service.h"

namespace raftlock::lockservice {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Answers delivered by callbacks (on the Raft loop or the timer thread), in arrival order.
class Answers {
 public:
  LockService::CommandCallback record(LeaseId lease_id) {
    return [this, lease_id](Result<CommandResult> result) {
      std::lock_guard lock(mu_);
      got_.emplace_back(lease_id, std::move(result));
      cv_.notify_all();
    };
  }
  bool wait_for(size_t count, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return got_.size() >= count; });
  }
  std::vector<std::pair<LeaseId, Result<CommandResult>>> snapshot() {
    std::lock_guard lock(mu_);
    return got_;
  }
  size_t size() {
    std::lock_guard lock(mu_);
    return got_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<LeaseId, Result<CommandResult>>> got_;
};

class AsyncAcquire : public SingleNodeService {
 protected:
  AcquireRequest waiting(const std::string& name, LeaseId lease_id, int64_t wait_ms = 30000) {
    AcquireRequest request;
    request.name = name;
    request.lease_id = lease_id;
    request.wait_ms = wait_ms;
    return request;
  }
  FencingToken hold(const std::string& name, LeaseId lease_id) {
    EXPECT_TRUE(service_.create_lease(lease_id, 60000).ok());
    auto held = service_.acquire(waiting(name, lease_id, 0));
    EXPECT_TRUE(held.ok());
    EXPECT_EQ(held->outcome, Outcome::kGranted);
    return held->lock->holder->fencing_token;
  }
  bool wait_for_waiters(const std::string& name, size_t count) {
    const auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      auto view = service_.get_lock(name, false);
      if (view && view->waiters == count) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }
};

TEST_F(AsyncAcquire, ManyWaitersHoldNoThreadAndAreGrantedInQueueOrder) {
  constexpr LeaseId kHolder = 1;
  constexpr int kWaiters = 50;
  const FencingToken first_token = hold("chain", kHolder);
  for (LeaseId lease = 2; lease <= kWaiters + 1; ++lease) {
    ASSERT_TRUE(service_.create_lease(lease, 60000).ok());
  }
  // Each waiter, once granted, releases at once from its callback: the next one's grant follows.
  Answers answers;
  std::mutex order_mu;
  std::vector<LeaseId> granted_order;
  std::vector<FencingToken> tokens;
  for (LeaseId lease = 2; lease <= kWaiters + 1; ++lease) {
    auto record = answers.record(lease);
    // All from this one thread: each call returns at once, none is answered yet.
    service_.acquire_async(waiting("chain", lease), [&, lease, record](Result<CommandResult> r) {
      if (r && r->outcome == Outcome::kGranted) {
        {
          std::lock_guard lock(order_mu);
          granted_order.push_back(lease);
          tokens.push_back(r->lock->holder->fencing_token);
        }
        service_.release_async("chain", lease, r->lock->holder->fencing_token,
                               [](Result<CommandResult>) {});
      }
      record(std::move(r));
    });
    // Queue order is the order of these calls.
    ASSERT_TRUE(wait_for_waiters("chain", static_cast<size_t>(lease - 1)));
  }
  EXPECT_EQ(answers.size(), 0u) << "a waiter was answered while the lock was held";

  ASSERT_TRUE(service_.release("chain", kHolder, first_token).ok());
  ASSERT_TRUE(answers.wait_for(kWaiters)) << answers.size() << " of " << kWaiters << " answered";
  std::lock_guard lock(order_mu);
  ASSERT_EQ(granted_order.size(), static_cast<size_t>(kWaiters));
  for (int i = 0; i < kWaiters; ++i) {
    EXPECT_EQ(granted_order[static_cast<size_t>(i)], static_cast<LeaseId>(i + 2));
    EXPECT_GT(tokens[static_cast<size_t>(i)],
              i == 0 ? first_token : tokens[static_cast<size_t>(i) - 1]);
  }
  const auto deadline = Clock::now() + 5s;
  while (service_.get_lock("chain", true)->held && Clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_FALSE(service_.get_lock("chain", true)->held) << "the last waiter's release was lost";
}

TEST_F(AsyncAcquire, AWaitThatEndsUngrantedLeavesTheQueueThroughTheLog) {
  hold("busy", 1);
  ASSERT_TRUE(service_.create_lease(2, 60000).ok());
  Answers answers;
  const auto started = Clock::now();
  service_.acquire_async(waiting("busy", 2, 150), answers.record(2));
  ASSERT_TRUE(answers.wait_for(1, 5s));
  const auto waited = Clock::now() - started;
  auto got = answers.snapshot();
  ASSERT_TRUE(got[0].second.ok()) << got[0].second.error().message;
  EXPECT_EQ(got[0].second->outcome, Outcome::kLockHeld);
  EXPECT_GE(waited, 150ms);
  auto view = service_.get_lock("busy", true);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->waiters, 0u) << "the timed-out waiter is still queued";
  EXPECT_EQ(view->holder->lease_id, 1u);
}

TEST_F(AsyncAcquire, ALeaseRevokedWhileWaitingEndsTheWaitWithLeaseNotFound) {
  hold("revoked", 1);
  ASSERT_TRUE(service_.create_lease(2, 60000).ok());
  Answers answers;
  service_.acquire_async(waiting("revoked", 2), answers.record(2));
  ASSERT_TRUE(wait_for_waiters("revoked", 1));
  ASSERT_TRUE(service_.revoke_lease(2).ok());
  ASSERT_TRUE(answers.wait_for(1, 5s)) << "the waiter was not answered when its lease ended";
  auto got = answers.snapshot();
  ASSERT_TRUE(got[0].second.ok());
  EXPECT_EQ(got[0].second->outcome, Outcome::kLeaseNotFound);
}

TEST_F(AsyncAcquire, AGrantAppliedJustBeforeItsLeaseEndsIsTheAnswer) {
  for (int round = 0; round < 50; ++round) {
    const LeaseId holder = 100 + round * 2, waiter = 101 + round * 2;
    const std::string name = "lock-" + std::to_string(round);
    const FencingToken held = hold(name, holder);
    ASSERT_TRUE(service_.create_lease(waiter, 60000).ok());
    Answers answers;
    service_.acquire_async(waiting(name, waiter), answers.record(waiter));
    ASSERT_TRUE(wait_for_waiters(name, 1));
    // The release grants the waiter; the revoke right behind it (usually in the same batch)
    // ends the waiter's lease.
    auto release = node_->propose(encode_command(Release{name, holder, held}));
    auto revoke = node_->propose(encode_command(RevokeLease{waiter}));
    ASSERT_TRUE(release.get().ok());
    ASSERT_TRUE(revoke.get().ok());
    ASSERT_TRUE(answers.wait_for(1, 5s));
    auto got = answers.snapshot();
    ASSERT_TRUE(got[0].second.ok());
    EXPECT_EQ(got[0].second->outcome, Outcome::kGranted) << "round " << round;
    ASSERT_TRUE(got[0].second->lock && got[0].second->lock->holder);
    EXPECT_EQ(got[0].second->lock->holder->lease_id, waiter);
    EXPECT_GT(got[0].second->lock->holder->fencing_token, held);
  }
}

TEST_F(AsyncAcquire, ShutdownAnswersWaitersUnavailable) {
  hold("stopping", 1);
  ASSERT_TRUE(service_.create_lease(2, 60000).ok());
  Answers answers;
  service_.acquire_async(waiting("stopping", 2), answers.record(2));
  ASSERT_TRUE(wait_for_waiters("stopping", 1));
  service_.shutdown();
  ASSERT_TRUE(answers.wait_for(1, 2s)) << "a waiter was left unanswered at shutdown";
  auto got = answers.snapshot();
  ASSERT_FALSE(got[0].second.ok());
  EXPECT_EQ(got[0].second.error().code, ErrorCode::kUnavailable);
}

TEST_F(AsyncAcquire, WithoutAWaitAHeldLockIsRefusedAndOnlyItsHolderReleasesIt) {
  const FencingToken token = hold("plain", 1);
  ASSERT_TRUE(service_.create_lease(2, 60000).ok());
  Answers answers;
  service_.acquire_async(waiting("plain", 2, 0), answers.record(2));
  service_.release_async("plain", 2, token, answers.record(2));
  ASSERT_TRUE(answers.wait_for(2, 5s));
  service_.release_async("plain", 1, token, answers.record(1));
  ASSERT_TRUE(answers.wait_for(3, 5s));
  auto got = answers.snapshot();
  ASSERT_TRUE(got[0].second.ok() && got[1].second.ok() && got[2].second.ok());
  EXPECT_EQ(got[0].second->outcome, Outcome::kLockHeld);
  EXPECT_EQ(got[1].second->outcome, Outcome::kNotHolder);
  EXPECT_EQ(got[2].second->outcome, Outcome::kOk);
  EXPECT_FALSE(service_.get_lock("plain", true)->held);
}

}  // namespace
}  // namespace raftlock::lockservice
