// LockService on a single in-process node: what a parked acquire answers when its grant and the
// end of its lease are applied before its thread wakes (the chaos suite found it answering
// lease_not_found for a grant that had been made and seen by others).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "lockservice/commands.h"
#include "lockservice/service/lock_service.h"
#include "raft/runtime/node.h"
#include "storage/memory_log_store.h"

namespace raftlock::lockservice {
namespace {

using namespace std::chrono_literals;

class SingleNodeService : public ::testing::Test {
 protected:
  void SetUp() override {
    raft::Configuration config;
    config.members.push_back(raft::Member{1, true, "n1"});
    store_ = std::make_unique<storage::MemoryLogStore>(config);
    raft::NodeOptions options;
    options.core.id = 1;
    options.core.heartbeat_ticks = 1;
    options.core.election_ticks = 3;
    options.tick_interval = 10ms;
    node_ =
        std::make_unique<raft::Node>(options, *store_, service_, [](std::vector<raft::Message>) {});
    service_.attach(*node_);
    ASSERT_TRUE(node_->start().ok());
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (node_->status().core.role != raft::Role::kLeader &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    ASSERT_EQ(node_->status().core.role, raft::Role::kLeader);
  }
  void TearDown() override {
    service_.shutdown();
    if (node_) node_->stop();
  }

  LockService service_;
  std::unique_ptr<storage::MemoryLogStore> store_;
  std::unique_ptr<raft::Node> node_;
};

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

}  // namespace
}  // namespace raftlock::lockservice
