// LockService::acquire_async / release_async, and campaign_async / proclaim_async /
// resign_async: a waiting acquire or campaign holds no thread. It is a record on its lock (or
// election), answered by the apply that grants it (in queue order, tokens rising), by the end of
// its lease, by its wait's end (it then leaves the queue through the log), or by shutdown.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "lockservice/commands.h"
#include "tests/lockservice_service/single_node_service.h"
#include "tests/support/eventually.h"

namespace raftlock::lockservice {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using raftlock::testing::eventually;

// Answers delivered by callbacks (on the Raft loop or the timer thread), in arrival order. The
// callbacks share its state, so one that runs after a failed test's Answers is gone (the fixture's
// shutdown answers every waiter) still writes somewhere valid.
class Answers {
 public:
  LockService::CommandCallback record(LeaseId lease_id) {
    return [state = state_, lease_id](Result<CommandResult> result) {
      std::lock_guard lock(state->mu);
      state->got.emplace_back(lease_id, std::move(result));
      state->cv.notify_all();
    };
  }
  bool wait_for(size_t count, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(state_->mu);
    return state_->cv.wait_for(lock, timeout, [&] { return state_->got.size() >= count; });
  }
  std::vector<std::pair<LeaseId, Result<CommandResult>>> snapshot() {
    std::lock_guard lock(state_->mu);
    return state_->got;
  }
  size_t size() {
    std::lock_guard lock(state_->mu);
    return state_->got.size();
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::pair<LeaseId, Result<CommandResult>>> got;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// The grants of a chain of waiters (each releases or resigns when granted), in the order they
// were applied, with their fencing tokens.
class GrantOrder {
 public:
  void add(LeaseId granted, FencingToken token) {
    std::lock_guard lock(mu_);
    leases_.push_back(granted);
    tokens_.push_back(token);
  }
  // Leases first, first + 1, ... were granted in that order, each token above the one before
  // (the first above `after`).
  void expect_queue_order(LeaseId first, size_t count, FencingToken after) {
    std::lock_guard lock(mu_);
    ASSERT_EQ(leases_.size(), count);
    for (size_t i = 0; i < count; ++i) {
      EXPECT_EQ(leases_[i], first + i) << "grant " << i;
      EXPECT_GT(tokens_[i], i == 0 ? after : tokens_[i - 1]) << "grant " << i;
    }
  }

 private:
  std::mutex mu_;
  std::vector<LeaseId> leases_;
  std::vector<FencingToken> tokens_;
};

// Leases first..last (60 s), for a chain of waiters.
void create_leases(LockService& service, LeaseId first, LeaseId last) {
  for (LeaseId lease = first; lease <= last; ++lease) {
    ASSERT_TRUE(service.create_lease(lease, 60000).ok()) << "lease " << lease;
  }
}

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
  create_leases(service_, 2, kWaiters + 1);
  // Each waiter, once granted, releases at once from its callback: the next one's grant follows.
  Answers answers;
  GrantOrder granted;
  for (LeaseId lease = 2; lease <= kWaiters + 1; ++lease) {
    auto record = answers.record(lease);
    // All from this one thread: each call returns at once, none is answered yet.
    service_.acquire_async(waiting("chain", lease), [&, lease, record](Result<CommandResult> r) {
      if (r && r->outcome == Outcome::kGranted) {
        granted.add(r->lock->holder->lease_id, r->lock->holder->fencing_token);
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
  granted.expect_queue_order(2, kWaiters, first_token);
  EXPECT_TRUE(eventually([&] { return !service_.get_lock("chain", true)->held; }, 5s))
      << "the last waiter's release was lost";
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

class AsyncCampaign : public SingleNodeService {
 protected:
  CampaignRequest candidate(const std::string& name, LeaseId lease_id, int64_t wait_ms = 30000) {
    CampaignRequest request;
    request.name = name;
    request.lease_id = lease_id;
    request.wait_ms = wait_ms;
    request.value = "v" + std::to_string(lease_id);
    return request;
  }
  FencingToken lead(const std::string& name, LeaseId lease_id) {
    EXPECT_TRUE(service_.create_lease(lease_id, 60000).ok());
    auto elected = service_.campaign(candidate(name, lease_id, 0));
    EXPECT_TRUE(elected.ok());
    EXPECT_EQ(elected->outcome, Outcome::kGranted);
    return elected->election->leader->fencing_token;
  }
  // Calls `start` and waits until the entry it proposed is applied (one entry: nothing else is
  // proposed meanwhile), so the next candidate queues behind this one.
  template <class Start>
  void applied_after(Start start) {
    const raft::Index before = node_->status().core.applied_index;
    start();
    ASSERT_TRUE(eventually([&] { return node_->status().core.applied_index > before; }, 5s))
        << "the campaign was never applied";
  }
};

TEST_F(AsyncCampaign, ManyCandidatesHoldNoThreadAndAreElectedInQueueOrder) {
  constexpr LeaseId kLeader = 1;
  constexpr int kCandidates = 30;
  const FencingToken first_token = lead("primary", kLeader);
  create_leases(service_, 2, kCandidates + 1);
  // Each candidate, once elected, checks its value and resigns from its callback: the next one
  // is elected by that resignation.
  Answers answers;
  GrantOrder elected;
  for (LeaseId lease = 2; lease <= kCandidates + 1; ++lease) {
    auto record = answers.record(lease);
    auto on_answer = [&, lease, record](Result<CommandResult> r) {
      if (r && r->outcome == Outcome::kGranted) {
        const auto& leader = *r->election->leader;
        EXPECT_EQ(leader.value, "v" + std::to_string(lease));
        elected.add(leader.lease_id, leader.fencing_token);
        service_.resign_async("primary", lease, leader.fencing_token, [](Result<CommandResult>) {});
      }
      record(std::move(r));
    };
    applied_after([&] { service_.campaign_async(candidate("primary", lease), on_answer); });
  }
  EXPECT_EQ(answers.size(), 0u) << "a candidate was answered while another led";
  EXPECT_EQ(service_.get_election("primary", true)->leader->lease_id, kLeader);

  Answers resigned;
  service_.resign_async("primary", kLeader, first_token, resigned.record(kLeader));
  ASSERT_TRUE(resigned.wait_for(1));
  ASSERT_TRUE(resigned.snapshot()[0].second.ok());
  EXPECT_EQ(resigned.snapshot()[0].second->outcome, Outcome::kOk);
  ASSERT_TRUE(answers.wait_for(kCandidates))
      << answers.size() << " of " << kCandidates << " answered";
  elected.expect_queue_order(2, kCandidates, first_token);
  EXPECT_TRUE(eventually([&] { return !service_.get_election("primary", true)->leader; }, 5s))
      << "the last candidate's resignation was lost";
}

TEST_F(AsyncCampaign, AWaitThatEndsLeavesTheCandidatesThroughTheLog) {
  lead("busy", 1);
  ASSERT_TRUE(service_.create_lease(2, 60000).ok());
  ASSERT_TRUE(service_.create_lease(3, 60000).ok());
  Answers answers;
  const auto started = Clock::now();
  service_.campaign_async(candidate("busy", 2, 150), answers.record(2));
  ASSERT_TRUE(answers.wait_for(1, 5s));
  EXPECT_GE(Clock::now() - started, 150ms);
  auto got = answers.snapshot();
  ASSERT_TRUE(got[0].second.ok()) << got[0].second.error().message;
  EXPECT_EQ(got[0].second->outcome, Outcome::kNotLeader);
  // Gone from the candidates: when the leader resigns, the next candidate (3) is elected, not 2.
  applied_after([&] { service_.campaign_async(candidate("busy", 3), answers.record(3)); });
  auto view = service_.get_election("busy", true);
  ASSERT_TRUE(view.ok() && view->leader);
  ASSERT_TRUE(service_.resign("busy", 1, view->leader->fencing_token).ok());
  ASSERT_TRUE(answers.wait_for(2, 5s));
  got = answers.snapshot();
  ASSERT_TRUE(got[1].second.ok());
  EXPECT_EQ(got[1].second->outcome, Outcome::kGranted);
  EXPECT_EQ(service_.get_election("busy", true)->leader->lease_id, 3u);
}

TEST_F(AsyncCampaign, ALeaseRevokedWhileCampaigningEndsItWithLeaseNotFound) {
  lead("revoked", 1);
  ASSERT_TRUE(service_.create_lease(2, 60000).ok());
  Answers answers;
  applied_after([&] { service_.campaign_async(candidate("revoked", 2), answers.record(2)); });
  EXPECT_EQ(answers.size(), 0u);
  ASSERT_TRUE(service_.revoke_lease(2).ok());
  ASSERT_TRUE(answers.wait_for(1, 5s)) << "the candidate was not answered when its lease ended";
  auto got = answers.snapshot();
  ASSERT_TRUE(got[0].second.ok());
  EXPECT_EQ(got[0].second->outcome, Outcome::kLeaseNotFound);
}

TEST_F(AsyncCampaign, ShutdownAnswersCandidatesUnavailable) {
  lead("stopping", 1);
  ASSERT_TRUE(service_.create_lease(2, 60000).ok());
  Answers answers;
  applied_after([&] { service_.campaign_async(candidate("stopping", 2), answers.record(2)); });
  service_.shutdown();
  ASSERT_TRUE(answers.wait_for(1, 2s)) << "a candidate was left unanswered at shutdown";
  auto got = answers.snapshot();
  ASSERT_FALSE(got[0].second.ok());
  EXPECT_EQ(got[0].second.error().code, ErrorCode::kUnavailable);
}

TEST_F(AsyncCampaign, OnlyTheLeaderProclaimsAndResigns) {
  const FencingToken token = lead("proclaimed", 1);
  ASSERT_TRUE(service_.create_lease(2, 60000).ok());
  Answers answers;
  service_.campaign_async(candidate("proclaimed", 2, 0), answers.record(2));
  ASSERT_TRUE(answers.wait_for(1, 5s));
  service_.proclaim_async("proclaimed", 2, token, "stolen", answers.record(2));
  ASSERT_TRUE(answers.wait_for(2, 5s));
  service_.proclaim_async("proclaimed", 1, token, "new value", answers.record(1));
  ASSERT_TRUE(answers.wait_for(3, 5s));
  service_.resign_async("proclaimed", 2, token, answers.record(2));
  ASSERT_TRUE(answers.wait_for(4, 5s));
  auto got = answers.snapshot();
  for (const auto& [lease, result] : got) ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(got[0].second->outcome, Outcome::kNotLeader) << "a campaign without a wait";
  EXPECT_EQ(got[1].second->outcome, Outcome::kNotLeader);
  EXPECT_EQ(got[2].second->outcome, Outcome::kOk);
  EXPECT_EQ(got[3].second->outcome, Outcome::kNotLeader);
  auto view = service_.get_election("proclaimed", true);
  ASSERT_TRUE(view.ok() && view->leader);
  EXPECT_EQ(view->leader->lease_id, 1u);
  EXPECT_EQ(view->leader->value, "new value");
}

}  // namespace
}  // namespace raftlock::lockservice
