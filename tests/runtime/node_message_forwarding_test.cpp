// raft::Node message forwarding: a follower's proposals travel to the leader as kForward messages
// (no Forwarder), are answered with where they were appended, and a missing answer is reported
// as an unknown outcome, never as a failure that invites a second copy.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/runtime/runtime_harness.h"

namespace raftlock::raft::runtime_testing {
namespace {

using namespace std::chrono_literals;

ClusterConfig message_forwarding_config() {
  ClusterConfig config;
  config.message_forwarding = true;
  return config;
}

// Holds back every message of one type the cluster routes (they never arrive): the test reads
// them and delivers what it wants, when it wants. The filter shares the held messages, so it
// stays valid while the cluster (declared first, destroyed last) shuts down.
class HeldBack {
 public:
  HeldBack(InProcessCluster& cluster, MessageType type) : state_(std::make_shared<State>()) {
    cluster.set_drop_filter([state = state_, type](const Message& m) {
      if (m.type != type) return false;
      std::lock_guard lock(state->mu);
      state->held.push_back(m);
      return true;
    });
  }
  std::vector<Message> messages() const {
    std::lock_guard lock(state_->mu);
    return state_->held;
  }

 private:
  struct State {
    std::mutex mu;
    std::vector<Message> held;
  };
  std::shared_ptr<State> state_;
};

TEST(NodeMessageForwarding, FollowerProposalsGoAsMessagesAndAnswerWithTheirOwnApplyResult) {
  InProcessCluster cluster(message_forwarding_config());
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const NodeId follower = cluster.others(*leader).front();

  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::vector<std::pair<std::string, std::future<Result<std::any>>>>> pending(kThreads);
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string command = "m" + std::to_string(t) + "-" + std::to_string(i);
        pending[t].emplace_back(command, cluster.node(follower).propose(command));
      }
    });
  }
  for (auto& client : clients) client.join();
  std::set<Index> indices;
  for (auto& list : pending) {
    for (auto& [command, future] : list) {
      const Result<std::any> answer = await(future);
      ASSERT_TRUE(answer.ok()) << command << ": " << answer.error().message;
      const auto own = own_result_index(answer, follower, command);
      ASSERT_TRUE(own) << command << " answered with " << result_string(answer);
      const Index index = *own;
      EXPECT_TRUE(indices.insert(index).second) << "two proposals answered for index " << index;
      EXPECT_EQ(cluster.machine(follower).command_at(index), command);
      EXPECT_TRUE(InProcessCluster::wait_until([&] {
        return cluster.machine(*leader).command_at(index) == command;
      })) << command
          << " at " << index;
    }
  }
  EXPECT_EQ(indices.size(), static_cast<size_t>(kThreads * kPerThread));
  // No Forwarder call: every proposal went as a message, and one message carries all that one
  // loop round collected (at most one per proposal).
  EXPECT_EQ(cluster.forwards(), 0u);
  EXPECT_GE(cluster.routed(MessageType::kForward), 1u);
  EXPECT_LE(cluster.routed(MessageType::kForward), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(cluster.routed(MessageType::kForwardResponse), cluster.routed(MessageType::kForward));
}

TEST(NodeMessageForwarding, AMissingAnswerIsAnUnknownOutcomeAfterTheReadTimeout) {
  ClusterConfig config = message_forwarding_config();
  config.read_timeout = 500ms;
  InProcessCluster cluster(config);
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const NodeId follower = cluster.others(*leader).front();
  cluster.set_drop_filter([](const Message& m) { return m.type == MessageType::kForwardResponse; });

  auto future = cluster.node(follower).propose("unanswered");
  const Result<std::any> answer = await(future);
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.error().code, ErrorCode::kTimeout) << answer.error().message;
  // Honest: the leader did append (and commit) it, so "failed, retry" would have applied it twice.
  EXPECT_TRUE(InProcessCluster::wait_until([&] {
    const auto& machine = cluster.machine(*leader);
    for (Index i = 1; i <= cluster.node(*leader).status().core.applied_index; ++i) {
      if (machine.command_at(i) == "unanswered") return true;
    }
    return false;
  }));
}

TEST(NodeMessageForwarding, ALeaderChangeEndsForwardsToTheOldLeaderAsUnknownOutcomes) {
  ClusterConfig config = message_forwarding_config();
  config.read_timeout = 60s;  // only the leader change can end the wait in this test
  InProcessCluster cluster(config);
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const NodeId follower = cluster.others(*leader).front();
  cluster.set_drop_filter([](const Message& m) { return m.type == MessageType::kForward; });

  auto future = cluster.node(follower).propose("to-the-old-leader");
  ASSERT_EQ(future.wait_for(100ms), std::future_status::timeout);  // waits for an answer
  cluster.isolate(*leader);                                        // the others elect a new leader
  ASSERT_EQ(future.wait_for(20s), std::future_status::ready);
  const Result<std::any> answer = future.get();
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.error().code, ErrorCode::kTimeout) << answer.error().message;
}

TEST(NodeMessageForwarding, AFailedSendToTheLeaderEndsItsForwardsAsUnknownOutcomes) {
  ClusterConfig config = message_forwarding_config();
  config.read_timeout = 60s;  // only the transport's report can end the wait in this test
  InProcessCluster cluster(config);
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const auto followers = cluster.others(*leader);
  cluster.set_drop_filter([](const Message& m) { return m.type == MessageType::kForward; });

  auto future = cluster.node(followers.front()).propose("lost-on-the-way");
  ASSERT_EQ(future.wait_for(100ms), std::future_status::timeout);
  // A failed send to another node says nothing about the leader's answer.
  cluster.node(followers.front()).report_unreachable(followers.back());
  ASSERT_EQ(future.wait_for(200ms), std::future_status::timeout);
  cluster.node(followers.front()).report_unreachable(*leader);
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  const Result<std::any> answer = future.get();
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.error().code, ErrorCode::kTimeout) << answer.error().message;
}

TEST(NodeMessageForwarding, ARefusalAnswersEveryProposalOfTheRequestWithNotLeader) {
  InProcessCluster cluster(message_forwarding_config());
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const NodeId follower = cluster.others(*leader).front();
  // The leader never sees the forwards: the test answers instead.
  HeldBack requests(cluster, MessageType::kForward);
  std::vector<std::future<Result<std::any>>> pending;
  for (int i = 0; i < 6; ++i)
    pending.push_back(cluster.node(follower).propose("r" + std::to_string(i)));
  ASSERT_TRUE(InProcessCluster::wait_until([&] {
    size_t entries = 0;
    for (const Message& r : requests.messages()) entries += r.entries.size();
    return entries == pending.size();
  }));
  std::vector<Message> refusals;
  for (const Message& request : requests.messages()) {
    Message refusal;
    refusal.type = MessageType::kForwardResponse;
    refusal.from = *leader;
    refusal.to = follower;
    refusal.context = request.context;
    refusal.reject = true;
    refusal.reject_hint = static_cast<Index>(ErrorCode::kNotLeader);
    refusals.push_back(refusal);
  }
  cluster.node(follower).receive(refusals);
  for (auto& future : pending) {
    const Result<std::any> answer = await(future);
    ASSERT_FALSE(answer.ok());
    EXPECT_EQ(answer.error().code, ErrorCode::kNotLeader) << answer.error().message;
  }
}

TEST(NodeMessageForwarding, ANodeThatIsNotTheLeaderRefusesAForwardWithNotLeader) {
  InProcessCluster cluster(message_forwarding_config());
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const NodeId follower = cluster.others(*leader).front();
  const NodeId other = cluster.others(*leader).back();
  std::mutex mu;
  std::vector<Message> responses;
  cluster.set_drop_filter([&](const Message& m) {
    if (m.type == MessageType::kForwardResponse) {
      std::lock_guard lock(mu);
      responses.push_back(m);
    }
    return false;
  });
  Message request;
  request.type = MessageType::kForward;
  request.from = other;
  request.to = follower;
  request.context = "77";
  request.entries.resize(2);
  request.entries[0].data = "a";
  request.entries[1].data = "b";
  cluster.node(follower).receive({request});
  ASSERT_TRUE(InProcessCluster::wait_until([&] {
    std::lock_guard lock(mu);
    return !responses.empty();
  }));
  std::lock_guard lock(mu);
  const Message& response = responses.front();
  EXPECT_EQ(response.from, follower);
  EXPECT_EQ(response.to, other);
  EXPECT_EQ(response.context, "77");
  EXPECT_TRUE(response.reject);
  EXPECT_TRUE(response.entries.empty());
  EXPECT_EQ(static_cast<ErrorCode>(response.reject_hint), ErrorCode::kNotLeader);
}

TEST(NodeMessageForwarding, AnAnswerThatArrivesAfterTheEntryWasAppliedGetsItsResult) {
  // The leader's answer to a forward is held back until the follower has applied the entries (it
  // learns them from the appends): the proposals are then answered from the results the follower
  // kept, each with its own entry's result; an answer naming the right index with another term
  // is refused as dropped.
  InProcessCluster cluster(message_forwarding_config());
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const NodeId follower = cluster.others(*leader).front();
  // Delivered by the test after the entries were applied.
  HeldBack answers(cluster, MessageType::kForwardResponse);
  std::vector<std::future<Result<std::any>>> pending;
  for (int i = 0; i < 3; ++i) {
    pending.push_back(cluster.node(follower).propose("late" + std::to_string(i)));
  }
  ASSERT_TRUE(InProcessCluster::wait_until([&] {
    return cluster.machine(follower).has_command("late0") &&
           cluster.machine(follower).has_command("late1") &&
           cluster.machine(follower).has_command("late2");
  }));
  const std::vector<Message> held = answers.messages();
  ASSERT_FALSE(held.empty());
  std::map<std::string, Index> index_of;  // command -> where the leader appended it
  for (const Message& answer : held) {
    ASSERT_FALSE(answer.reject);
    for (const Entry& where : answer.entries) {
      for (const auto& [index, command] : cluster.machine(follower).applied()) {
        if (index == where.index) index_of[command] = index;
      }
    }
  }
  ASSERT_EQ(index_of.size(), 3u);
  // The first forward's answer with a wrong term for its first entry: that claim is refused.
  Message wrong = held.front();
  std::vector<Message> rest(held.begin() + 1, held.end());
  ASSERT_FALSE(wrong.entries.empty());
  const Index wrong_index = wrong.entries.front().index;
  wrong.entries.front().term += 1;
  cluster.node(follower).receive({wrong});
  cluster.node(follower).receive(rest);
  for (int i = 0; i < 3; ++i) {
    const std::string command = "late" + std::to_string(i);
    const Result<std::any> answer = await(pending[static_cast<size_t>(i)]);
    if (index_of[command] == wrong_index) {
      ASSERT_FALSE(answer.ok()) << command;
      EXPECT_EQ(answer.error().code, ErrorCode::kDropped) << answer.error().message;
      continue;
    }
    ASSERT_TRUE(answer.ok()) << command << ": " << answer.error().message;
    EXPECT_EQ(std::any_cast<std::string>(answer.value()),
              RecordingStateMachine::result_for(follower, command, index_of[command]));
  }
}

}  // namespace
}  // namespace raftlock::raft::runtime_testing
