// raft::Node fast failover with a scripted leader prober: a stopped leader ("refused") is replaced
// by a campaign the detection started; a false alarm at one follower about a leader the others
// still hear changes nothing, because the campaign goes through pre-vote.
#include <gtest/gtest.h>

#include <set>

#include "tests/runtime/runtime_harness.h"

namespace raftlock::raft::runtime_testing {
namespace {

// Three Nodes wired in-process (10 ms ticks) whose probers answer "refused" for stopped nodes,
// and always for a node told to be misled (`mislead`).
class ProbedTrio {
 public:
  explicit ProbedTrio(int election_ticks) {
    Configuration bootstrap;
    for (NodeId id = 1; id <= 3; ++id) bootstrap.members.push_back(Member{id, true, ""});
    for (NodeId id = 1; id <= 3; ++id) {
      stores_[id] = std::make_unique<storage::MemoryLogStore>(bootstrap);
      machines_[id] = std::make_unique<RecordingStateMachine>(id);
      NodeOptions options;
      options.core.id = id;
      options.core.election_ticks = election_ticks;
      options.core.heartbeat_ticks = 1;
      options.core.random_seed = 4242 + id;
      options.tick_interval = 10ms;
      nodes_[id] = std::make_unique<Node>(options, *stores_[id], *machines_[id],
                                          [this](std::vector<Message> m) { route(std::move(m)); });
      nodes_[id]->set_leader_prober([this, id](NodeId leader) {
        std::lock_guard lock(mu_);
        ++probes_;
        return misled_.count(id) > 0 || stopped_.count(leader) > 0;
      });
    }
    for (auto& [id, node] : nodes_) {
      Status started = node->start();
      EXPECT_TRUE(started.ok());
    }
  }
  ~ProbedTrio() {
    for (auto& [id, node] : nodes_) node->stop();
  }

  Node& node(NodeId id) { return *nodes_.at(id); }
  NodeStatus status(NodeId id) { return nodes_.at(id)->status(); }

  // The process is gone: it stops, and its port refuses connections.
  void stop(NodeId id) {
    {
      std::lock_guard lock(mu_);
      stopped_.insert(id);
    }
    nodes_.at(id)->stop();
  }
  // Messages from `from` to `to` are lost (both stay alive).
  void cut(NodeId from, NodeId to) {
    std::lock_guard lock(mu_);
    cut_.insert({from, to});
  }
  // From now on `id`'s prober says "refused" whatever it probes (a false alarm at that node only).
  void mislead(NodeId id) {
    std::lock_guard lock(mu_);
    misled_.insert(id);
  }
  void heal() {
    std::lock_guard lock(mu_);
    cut_.clear();
  }
  size_t probes() {
    std::lock_guard lock(mu_);
    return probes_;
  }

  // A node among `among` that leads while the others follow it in its term.
  std::optional<NodeId> wait_for_leader(const std::vector<NodeId>& among,
                                        std::chrono::milliseconds timeout = 10s) {
    std::optional<NodeId> found;
    InProcessCluster::wait_until(
        [&] {
          found =
              InProcessCluster::stable_leader_of(among, [this](NodeId id) { return status(id); });
          return found.has_value();
        },
        timeout);
    return found;
  }

 private:
  void route(std::vector<Message> messages) {
    std::map<NodeId, std::vector<Message>> by_destination;
    std::lock_guard lock(mu_);
    for (Message& m : messages) {
      if (stopped_.count(m.to) || stopped_.count(m.from) || cut_.count({m.from, m.to})) continue;
      by_destination[m.to].push_back(std::move(m));
    }
    for (auto& [to, batch] : by_destination) nodes_.at(to)->receive(std::move(batch));
  }

  std::map<NodeId, std::unique_ptr<storage::MemoryLogStore>> stores_;
  std::map<NodeId, std::unique_ptr<RecordingStateMachine>> machines_;
  std::map<NodeId, std::unique_ptr<Node>> nodes_;
  std::mutex mu_;
  std::set<NodeId> stopped_;
  std::set<NodeId> misled_;
  std::set<std::pair<NodeId, NodeId>> cut_;
  size_t probes_ = 0;
};

std::vector<NodeId> others(NodeId excluded) {
  std::vector<NodeId> out;
  for (NodeId id = 1; id <= 3; ++id) {
    if (id != excluded) out.push_back(id);
  }
  return out;
}

TEST(NodeFastFailover, StoppedLeaderIsReplacedByTheCampaignItsDetectionStarted) {
  ProbedTrio trio(/*election_ticks=*/50);
  const auto leader = trio.wait_for_leader({1, 2, 3});
  ASSERT_TRUE(leader.has_value());
  const Term old_term = trio.status(*leader).core.term;

  trio.stop(*leader);
  const auto next = trio.wait_for_leader(others(*leader));
  ASSERT_TRUE(next.has_value());
  EXPECT_GT(trio.status(*next).core.term, old_term);
  uint64_t detected = 0;
  for (NodeId id : others(*leader)) detected += trio.status(id).leader_deaths_detected;
  EXPECT_GE(detected, 1u);
  EXPECT_GE(trio.status(*next).fast_campaigns, 1u) << "the winner campaigned on its timeout";
  EXPECT_GE(trio.probes(), 1u);
}

TEST(NodeFastFailover, FalseAlarmAboutALeaderTheOthersHearDisruptsNothing) {
  ProbedTrio trio(/*election_ticks=*/50);
  const auto leader = trio.wait_for_leader({1, 2, 3});
  ASSERT_TRUE(leader.has_value());
  const Term term = trio.status(*leader).core.term;
  const std::vector<NodeId> followers = others(*leader);
  const NodeId deaf = followers[0], hearing = followers[1];

  // `deaf` stops hearing the (alive) leader and its prober wrongly says "refused". Only its
  // prober lies: `hearing` may also probe on a scheduling hiccup of two heartbeats (20 ms), and a
  // real prober would find the leader's port open.
  trio.mislead(deaf);
  trio.cut(*leader, deaf);
  ASSERT_TRUE(InProcessCluster::wait_until([&] { return trio.status(deaf).fast_campaigns >= 2; }));
  EXPECT_GE(trio.status(deaf).leader_deaths_detected, 1u);
  // Its campaigns were pre-votes that the leader and `hearing` ignored: nobody's term moved.
  EXPECT_EQ(trio.status(*leader).core.role, Role::kLeader);
  EXPECT_EQ(trio.status(*leader).core.term, term);
  EXPECT_EQ(trio.status(hearing).core.leader_id, *leader);
  EXPECT_EQ(trio.status(hearing).core.term, term);
  EXPECT_EQ(trio.status(deaf).core.term, term);

  trio.heal();
  const auto after = trio.wait_for_leader({1, 2, 3});
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(*after, *leader);
  EXPECT_EQ(trio.status(*leader).core.term, term);
}

}  // namespace
}  // namespace raftlock::raft::runtime_testing
