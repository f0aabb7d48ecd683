#include "tests/sim/sim_test_support.h"

#include <unistd.h>

#include <algorithm>
#include <array>

namespace raftlock::sim::testing {

std::string self_path() {
  std::array<char, 4096> buffer{};
  const ssize_t size = ::readlink("/proc/self/exe", buffer.data(), buffer.size() - 1);
  return size > 0 ? std::string(buffer.data(), static_cast<size_t>(size)) : "test_sim";
}

std::string repro_command(const std::string& environment) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string filter = info ? std::string(info->test_suite_name()) + "." + info->name() : "*";
  return (environment.empty() ? "" : environment + " ") + self_path() + " --gtest_filter='" +
         filter + "'";
}

ClusterOptions cluster_options(size_t nodes, uint64_t seed) {
  ClusterOptions options;
  options.nodes = nodes;
  options.seed = seed;
  return options;
}

std::optional<NodeId> leader_among(Cluster& cluster, const std::vector<NodeId>& ids) {
  std::optional<NodeId> best;
  Term best_term = 0;
  Term max_term = 0;
  for (NodeId id : ids) {
    raft::Core* core = cluster.core(id);
    if (core == nullptr) continue;
    max_term = std::max(max_term, core->term());
    if (core->role() == raft::Role::kLeader && core->term() >= best_term) {
      best = id;
      best_term = core->term();
    }
  }
  if (best && best_term < max_term) return std::nullopt;
  return best;
}

std::vector<NodeId> all_except(const Cluster& cluster, const std::vector<NodeId>& excluded) {
  std::vector<NodeId> out;
  for (NodeId id : cluster.node_ids()) {
    if (std::find(excluded.begin(), excluded.end(), id) == excluded.end()) out.push_back(id);
  }
  return out;
}

std::optional<NodeId> wait_for_leader(Cluster& cluster, const std::vector<NodeId>& ids) {
  const std::vector<NodeId> candidates = ids.empty() ? cluster.node_ids() : ids;
  std::optional<NodeId> leader;
  cluster.run_until(
      [&] {
        leader = leader_among(cluster, candidates);
        return leader.has_value();
      },
      10 * cluster.election_timeout_ms());
  return leader;
}

}  // namespace raftlock::sim::testing
