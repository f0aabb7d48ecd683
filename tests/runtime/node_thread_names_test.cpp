// raft::Node names its threads (top -H, perf and gdb show "raft-loop-<id>").
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "tests/runtime/runtime_harness.h"

namespace raftlock::raft::runtime_testing {
namespace {

std::set<std::string> thread_names() {
  std::set<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  return names;
}

TEST(NodeThreads, TheLoopThreadIsNamedAfterTheNode) {
  EXPECT_EQ(thread_names().count("raft-loop-2"), 0u);
  InProcessCluster cluster({});
  cluster.start_all();
  const auto names = thread_names();
  for (const char* expected : {"raft-loop-1", "raft-loop-2", "raft-loop-3"}) {
    EXPECT_EQ(names.count(expected), 1u) << expected;
  }
}

}  // namespace
}  // namespace raftlock::raft::runtime_testing
