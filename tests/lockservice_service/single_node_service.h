// A LockService on one in-process node (memory log), leader before each test starts.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "lockservice/service/lock_service.h"
#include "raft/runtime/node.h"
#include "storage/memory_log_store.h"

namespace raftlock::lockservice {

class SingleNodeService : public ::testing::Test {
 protected:
  virtual std::chrono::microseconds may_wait_limit() const {
    return raft::NodeOptions{}.may_wait_limit;
  }
  void SetUp() override {
    raft::Configuration config;
    config.members.push_back(raft::Member{1, true, "n1"});
    store_ = std::make_unique<storage::MemoryLogStore>(config);
    raft::NodeOptions options;
    options.core.id = 1;
    options.core.heartbeat_ticks = 1;
    options.core.election_ticks = 3;
    options.tick_interval = std::chrono::milliseconds(10);
    options.may_wait_limit = may_wait_limit();
    node_ =
        std::make_unique<raft::Node>(options, *store_, service_, [](std::vector<raft::Message>) {});
    service_.attach(*node_);
    ASSERT_TRUE(node_->start().ok());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (node_->status().core.role != raft::Role::kLeader &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
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

}  // namespace raftlock::lockservice
