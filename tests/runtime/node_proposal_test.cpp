// raft::Node proposals: answered with the state machine's result for exactly their own entry,
// forwarded from followers, and failed (never mis-answered) when another entry takes their index;
// a leadership change alone answers nothing, since the entry may still commit.
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "tests/runtime/runtime_harness.h"

namespace raftlock::raft::runtime_testing {
namespace {

TEST(NodeProposal, AnsweredWithTheStateMachineResultOfItsOwnEntry) {
  InProcessCluster cluster({});
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());

  // Several client threads propose concurrently, so entries interleave in the log.
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10;
  std::vector<std::vector<std::pair<std::string, Result<std::any>>>> answers(kThreads);
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      std::vector<std::pair<std::string, std::future<Result<std::any>>>> pending;
      for (int i = 0; i < kPerThread; ++i) {
        std::string command = "t" + std::to_string(t) + "-c" + std::to_string(i);
        pending.emplace_back(command, cluster.node(*leader).propose(command));
      }
      for (auto& [command, future] : pending) answers[t].emplace_back(command, await(future));
    });
  }
  for (auto& client : clients) client.join();

  std::set<Index> indices;
  for (const auto& per_thread : answers) {
    for (const auto& [command, answer] : per_thread) {
      ASSERT_TRUE(answer.ok()) << command << ": " << answer.error().message;
      // "n<leader>:<command>@<index>": this node's result for this very command.
      const auto own = own_result_index(answer, *leader, command);
      ASSERT_TRUE(own) << command << " answered with " << result_string(answer);
      const Index index = *own;
      EXPECT_TRUE(indices.insert(index).second) << "two proposals answered for index " << index;
      EXPECT_EQ(cluster.machine(*leader).command_at(index), command)
          << "the state machine applied something else at " << index;
    }
  }
  EXPECT_EQ(indices.size(), static_cast<size_t>(kThreads * kPerThread));
}

// Whoever got an answer reads a status (GET /v1/status, /metrics) that covers its entry: never an
// applied index below the one that answered it, on the leader or on a follower.
TEST(NodeProposal, AnAnsweredProposalIsCoveredByThePublishedStatus) {
  ClusterConfig config;
  config.message_forwarding = true;
  InProcessCluster cluster(config);
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  for (NodeId at : {*leader, cluster.others(*leader).front()}) {
    for (int i = 0; i < 100; ++i) {
      const std::string command = "s" + std::to_string(at) + "-" + std::to_string(i);
      auto future = cluster.node(at).propose(command);
      const auto answer = await(future);
      const auto index = own_result_index(answer, at, command);
      ASSERT_TRUE(index) << result_string(answer);
      const NodeStatus status = cluster.node(at).status();
      ASSERT_GE(status.core.applied_index, *index) << "node " << at << ", proposal " << i;
      ASSERT_GE(status.core.commit_index, *index) << "node " << at << ", proposal " << i;
    }
  }
}

// propose_async: the same answer as propose(), given once to the callback on the node's loop
// thread, after the published status covers the entry; on the leader and through a follower.
TEST(NodeProposal, AnAsyncProposalIsAnsweredOnceOnTheLoopAndCoveredByTheStatus) {
  ClusterConfig config;
  config.message_forwarding = true;
  InProcessCluster cluster(config);
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  struct Answer {
    std::string command;
    Result<std::any> result = make_error(ErrorCode::kInternal, "unanswered");
    std::thread::id thread;
    Index applied = 0;  // the node's published applied index when the callback ran
    int calls = 0;
  };
  for (NodeId at : {*leader, cluster.others(*leader).front()}) {
    constexpr int kProposals = 20;
    std::mutex mu;
    std::vector<Answer> answers(kProposals);
    for (int i = 0; i < kProposals; ++i) {
      answers[static_cast<size_t>(i)].command = "a" + std::to_string(at) + "-" + std::to_string(i);
      cluster.node(at).propose_async(answers[static_cast<size_t>(i)].command, Urgency::kNow,
                                     [&, i, at](Result<std::any> result) {
                                       const Index applied =
                                           cluster.node(at).status().core.applied_index;
                                       std::lock_guard lock(mu);
                                       Answer& answer = answers[static_cast<size_t>(i)];
                                       answer.result = std::move(result);
                                       answer.thread = std::this_thread::get_id();
                                       answer.applied = applied;
                                       ++answer.calls;
                                     });
    }
    ASSERT_TRUE(InProcessCluster::wait_until([&] {
      std::lock_guard lock(mu);
      for (const Answer& answer : answers) {
        if (answer.calls == 0) return false;
      }
      return true;
    }));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a second call would show
    std::lock_guard lock(mu);
    std::set<Index> indices;
    for (const Answer& answer : answers) {
      EXPECT_EQ(answer.calls, 1) << answer.command;
      EXPECT_NE(answer.thread, std::this_thread::get_id()) << answer.command;
      const auto own = own_result_index(answer.result, at, answer.command);
      ASSERT_TRUE(own) << answer.command << " answered with " << result_string(answer.result);
      EXPECT_TRUE(indices.insert(*own).second) << "two proposals answered for index " << *own;
      EXPECT_GE(answer.applied, *own) << answer.command << ": answered before the status said so";
    }
  }
}

TEST(NodeProposal, AnAsyncProposalStillPendingAtStopIsAnsweredUnavailable) {
  InProcessCluster cluster({});
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  for (NodeId other : cluster.others(*leader)) cluster.stop(other);  // no quorum: never commits
  std::promise<Result<std::any>> answered;
  cluster.node(*leader).propose_async("stuck", Urgency::kNow, [&](Result<std::any> result) {
    answered.set_value(std::move(result));
  });
  auto future = answered.get_future();
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  cluster.stop(*leader);
  ASSERT_EQ(future.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  const Result<std::any> result = future.get();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::kUnavailable) << result.error().message;
}

TEST(NodeProposal, FollowerForwardsToTheLeaderAndAnswersWithItsOwnApplyResult) {
  InProcessCluster cluster({});
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const NodeId follower = cluster.others(*leader).front();

  std::vector<std::pair<std::string, std::future<Result<std::any>>>> pending;
  for (int i = 0; i < 5; ++i) {
    std::string command = "fwd-" + std::to_string(i);
    pending.emplace_back(command, cluster.node(follower).propose(command));
  }
  for (auto& [command, future] : pending) {
    const Result<std::any> answer = await(future);
    ASSERT_TRUE(answer.ok()) << command << ": " << answer.error().message;
    const auto own = own_result_index(answer, follower, command);
    ASSERT_TRUE(own) << command << " answered with " << result_string(answer);
    const Index index = *own;
    EXPECT_EQ(cluster.machine(follower).command_at(index), command);
    // The leader applies it too (possibly after the follower: it sends the commit first).
    EXPECT_TRUE(InProcessCluster::wait_until([&] {
      return cluster.machine(*leader).command_at(index) == command;
    })) << command
        << " at " << index;
  }
  EXPECT_EQ(cluster.forwards(), 5u);
  EXPECT_EQ(cluster.forwarded_appends().size(), 5u);
}

TEST(NodeProposal, FollowerWithoutForwarderAnswersNotLeader) {
  ClusterConfig config;
  config.forwarding = false;
  InProcessCluster cluster(config);
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  auto future = cluster.node(cluster.others(*leader).front()).propose("x");
  const Result<std::any> answer = await(future);
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.error().code, ErrorCode::kNotLeader);
}

TEST(NodeProposal, PendingProposalsOfALeaderThatStepsDownWaitForTheEntryAtTheirIndex) {
  InProcessCluster cluster({});  // check_quorum: the isolated leader steps down by itself
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  cluster.isolate(*leader);
  std::vector<std::future<Result<std::any>>> pending;
  for (int i = 0; i < 5; ++i)
    pending.push_back(cluster.node(*leader).propose("lost-" + std::to_string(i)));
  ASSERT_TRUE(InProcessCluster::wait_until(
      [&] { return cluster.node(*leader).status().core.role != Role::kLeader; }));
  // Stepping down answers nothing: the node cannot know whether its entries will commit.
  for (auto& future : pending) {
    ASSERT_EQ(future.wait_for(0ms), std::future_status::timeout)
        << "answered on step-down: " << result_string(future.get());
  }

  // The majority goes on; after healing the old leader's uncommitted entries are replaced, and
  // only then are its proposals answered: dropped, since another entry took each index.
  const auto others = cluster.others(*leader);
  const auto new_leader = cluster.wait_for_leader(others);
  ASSERT_TRUE(new_leader.has_value());
  std::vector<std::future<Result<std::any>>> fresh;
  for (int i = 0; i < 6; ++i)
    fresh.push_back(cluster.node(*new_leader).propose("after-" + std::to_string(i)));
  for (auto& future : fresh) ASSERT_TRUE(await(future).ok());
  cluster.heal();
  for (auto& future : pending) {
    const Result<std::any> answer = await(future, 5s);
    ASSERT_FALSE(answer.ok()) << "answered " << result_string(answer);
    EXPECT_EQ(answer.error().code, ErrorCode::kDropped) << answer.error().message;
  }
  ASSERT_TRUE(InProcessCluster::wait_until(
      [&] { return cluster.machine(*leader).has_command("after-5"); }));
  for (NodeId id : cluster.ids()) {
    for (int i = 0; i < 5; ++i) {
      EXPECT_FALSE(cluster.machine(id).has_command("lost-" + std::to_string(i))) << "node " << id;
    }
  }
}

// The chaos suite found this: a leader that steps down used to fail its pending proposals as
// "dropped, retry", yet an entry it had replicated to a majority commits under the next leader;
// the service retried and applied the command twice. Now the proposal is answered by its entry.
TEST(NodeProposal,
     AProposalReplicatedBeforeItsLeaderStepsDownIsAnsweredWhenTheNextLeaderCommitsIt) {
  InProcessCluster cluster({});
  cluster.start_all();
  const auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const NodeId old_leader = *leader;
  // The leader still reaches its followers, but hears nothing back: its entry reaches every log,
  // it never learns of a quorum, and check-quorum makes it step down.
  cluster.set_drop_filter([old_leader](const Message& m) { return m.to == old_leader; });
  const Index before = cluster.node(old_leader).status().core.last_index;
  auto kept = cluster.node(old_leader).propose("kept");
  ASSERT_TRUE(InProcessCluster::wait_until([&] {
    for (NodeId id : cluster.others(old_leader)) {
      if (cluster.node(id).status().core.last_index <= before) return false;
    }
    return true;
  }));
  ASSERT_TRUE(InProcessCluster::wait_until(
      [&] { return cluster.node(old_leader).status().core.role != Role::kLeader; }));
  ASSERT_EQ(kept.wait_for(0ms), std::future_status::timeout)
      << "answered on step-down: " << result_string(kept.get());

  // A follower that has the entry wins and commits it (with its own no-op); once the old leader
  // hears again it applies the entry at that index in the original term and answers ok.
  const auto new_leader = cluster.wait_for_leader(cluster.others(old_leader));
  ASSERT_TRUE(new_leader.has_value());
  ASSERT_TRUE(InProcessCluster::wait_until(
      [&] { return cluster.machine(*new_leader).has_command("kept"); }));
  cluster.heal();
  const Result<std::any> answer = await(kept, 5s);
  ASSERT_TRUE(answer.ok()) << "a committed proposal was answered " << answer.error().message;
  EXPECT_NE(result_string(answer).find(":kept@"), std::string::npos) << result_string(answer);
}

TEST(NodeProposal, StaleLeaderProposalsFailDroppedWhenANewLeaderOverwritesThem) {
  ClusterConfig config;
  config.check_quorum = false;  // the isolated leader believes it leads until it hears a new term
  InProcessCluster cluster(config);
  cluster.start_all();
  const auto old_leader = cluster.wait_for_leader();
  ASSERT_TRUE(old_leader.has_value());
  cluster.isolate(*old_leader);
  std::vector<std::future<Result<std::any>>> stale;
  for (int i = 0; i < 3; ++i)
    stale.push_back(cluster.node(*old_leader).propose("stale-" + std::to_string(i)));

  const auto others = cluster.others(*old_leader);
  const auto new_leader = cluster.wait_for_leader(others);
  ASSERT_TRUE(new_leader.has_value());
  std::vector<std::pair<std::string, std::future<Result<std::any>>>> fresh;
  for (int i = 0; i < 4; ++i) {
    std::string command = "fresh-" + std::to_string(i);
    fresh.emplace_back(command, cluster.node(*new_leader).propose(command));
  }
  for (auto& [command, future] : fresh) ASSERT_TRUE(await(future).ok()) << command;
  // Still pending: the isolated leader cannot commit them.
  for (auto& future : stale) {
    ASSERT_EQ(future.wait_for(0ms), std::future_status::timeout)
        << "resolved early: " << result_string(future.get());
  }

  cluster.heal();
  for (auto& future : stale) {
    const Result<std::any> answer = await(future, 5s);
    ASSERT_FALSE(answer.ok()) << "a stale proposal was answered with " << result_string(answer);
    EXPECT_EQ(answer.error().code, ErrorCode::kDropped);
  }
  // The stale indices now hold the new leader's entries on the old leader too.
  ASSERT_TRUE(InProcessCluster::wait_until(
      [&] { return cluster.machine(*old_leader).has_command("fresh-3"); }));
  for (NodeId id : cluster.ids()) {
    for (int i = 0; i < 3; ++i) {
      EXPECT_FALSE(cluster.machine(id).has_command("stale-" + std::to_string(i))) << "node " << id;
    }
  }
}

TEST(NodeProposal, ForwardedProposalWhoseIndexWasOverwrittenFailsDropped) {
  InProcessCluster cluster({});
  cluster.start_all();
  const auto old_leader = cluster.wait_for_leader();
  ASSERT_TRUE(old_leader.has_value());
  const NodeId follower = cluster.others(*old_leader).front();

  // The leader is cut off from the peers (not from the forwarding client path): the forwarded
  // command is appended there but can never commit. Its answer is held back until a new leader
  // has committed other entries over that index.
  cluster.isolate(*old_leader);
  cluster.hold_forward_answers();
  auto forwarded = cluster.node(follower).propose("orphan");
  ASSERT_TRUE(
      InProcessCluster::wait_until([&] { return cluster.forwarded_appends().size() == 1; }));
  const EntryId orphan = cluster.forwarded_appends().front();

  const auto new_leader = cluster.wait_for_leader(cluster.others(*old_leader));
  ASSERT_TRUE(new_leader.has_value());
  std::vector<std::future<Result<std::any>>> fresh;
  for (int i = 0; i < 4; ++i)
    fresh.push_back(cluster.node(*new_leader).propose("fresh-" + std::to_string(i)));
  for (auto& future : fresh) ASSERT_TRUE(await(future).ok());
  ASSERT_TRUE(InProcessCluster::wait_until(
      [&] { return cluster.node(follower).status().core.applied_index >= orphan.index; }));

  cluster.release_forward_answers();
  const Result<std::any> answer = await(forwarded);
  ASSERT_FALSE(answer.ok()) << "the overwritten proposal was answered with "
                            << result_string(answer);
  EXPECT_EQ(answer.error().code, ErrorCode::kDropped) << answer.error().message;
  EXPECT_FALSE(cluster.machine(follower).has_command("orphan"));
}

TEST(NodeProposal, ACommitIndexThatOnlyMovedIsWrittenAtMostOncePerTickAndAtACleanStop) {
  ClusterConfig config;
  config.nodes = 1;
  config.tick = 1s;
  InProcessCluster cluster(config);
  cluster.start_all();
  ASSERT_TRUE(cluster.wait_for_leader().has_value());
  Node& node = cluster.node(1);
  const size_t writes_before = cluster.store(1).hard_state_writes();  // the election's
  constexpr int kCommands = 30;
  const auto started = Clock::now();
  for (int i = 0; i < kCommands; ++i) {
    auto answer = node.propose("c" + std::to_string(i));
    ASSERT_EQ(answer.wait_for(5s), std::future_status::ready);
    ASSERT_TRUE(answer.get().ok());
  }
  const auto ticks = static_cast<size_t>((Clock::now() - started) / config.tick);
  // Every entry was written (and acknowledged) on its own, but the commit index at most once
  // per tick (plus the first one, due at once): not once per entry.
  EXPECT_LE(cluster.store(1).hard_state_writes() - writes_before, ticks + 2);
  const Index last = node.status().core.last_index;
  EXPECT_LT(cluster.store(1).state().hard_state.commit, last);

  node.stop();
  // A clean stop writes the commit index it still held back.
  EXPECT_EQ(cluster.store(1).state().hard_state.commit, last);
  cluster.start(1);
  ASSERT_TRUE(cluster.wait_for_leader().has_value());
  EXPECT_TRUE(cluster.machine(1).has_command("c" + std::to_string(kCommands - 1)));
}

}  // namespace
}  // namespace raftlock::raft::runtime_testing
