// Helpers shared by the simulator's gtest files: reproduction hints and cluster queries.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/sim/harness/simulator.h"

namespace raftlock::sim::testing {

// Absolute path of the running test binary (for reproduction commands).
std::string self_path();
// "cd ... && ./test_sim --gtest_filter=<current test>" with optional environment assignments.
std::string repro_command(const std::string& environment = "");
// Options for a cluster of `nodes` nodes with a fixed seed and the default timing.
ClusterOptions cluster_options(size_t nodes, uint64_t seed);
// The live leader among `ids` whose term is at least every other listed live node's term.
std::optional<NodeId> leader_among(Cluster& cluster, const std::vector<NodeId>& ids);
// Every node id except those in `excluded`.
std::vector<NodeId> all_except(const Cluster& cluster, const std::vector<NodeId>& excluded);
// Waits (at most 10 election timeouts) for a leader among `ids` (all nodes when empty).
std::optional<NodeId> wait_for_leader(Cluster& cluster, const std::vector<NodeId>& ids = {});

}  // namespace raftlock::sim::testing

// Fails the current test with the first safety violation and how to reproduce it.
#define EXPECT_SAFE(cluster)                           \
  EXPECT_TRUE((cluster).ok()) << (cluster).violation() \
                              << "\n  reproduce: " << ::raftlock::sim::testing::repro_command()
#define ASSERT_SAFE(cluster)                           \
  ASSERT_TRUE((cluster).ok()) << (cluster).violation() \
                              << "\n  reproduce: " << ::raftlock::sim::testing::repro_command()
