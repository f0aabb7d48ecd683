// Shared pieces of the HTTP contract tests: elapsed-time helper, the contract's error-shape check,
// and a base fixture running one 3-node raftlockd cluster per test suite.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "tests/integration/cluster.h"

namespace raftlock::testing {

using Clock = std::chrono::steady_clock;

// Milliseconds elapsed since `start`.
inline int64_t ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// The contract's error shape: {"error": {"code", "message"}}, JSON content type, given status.
// `context` is printed with a failure (e.g. which path and body were sent).
inline void expect_error(const HttpReply& reply, int status, const std::string& code,
                         const std::string& context = "") {
  EXPECT_EQ(reply.status, status) << context << ": " << reply.raw;
  ASSERT_TRUE(reply.body.is_object()) << context << ": " << reply.raw;
  ASSERT_TRUE(reply.body.contains("error")) << context << ": " << reply.raw;
  const Json& error = reply.body["error"];
  EXPECT_EQ(error.value("code", ""), code) << context << ": " << reply.raw;
  ASSERT_TRUE(error.contains("message") && error["message"].is_string()) << reply.raw;
  EXPECT_FALSE(error["message"].get<std::string>().empty()) << reply.raw;
  EXPECT_EQ(error.size(), 2u) << reply.raw;
  ASSERT_NE(reply.headers.count("Content-Type"), 0u) << context;
  EXPECT_NE(reply.headers.at("Content-Type").find("application/json"), std::string::npos)
      << context;
}

// A fixture sharing one 3-node cluster across a test suite; each test starts knowing the current
// leader and the two followers.
class SharedClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = std::make_unique<Cluster>(3);
    cluster_->start_all();
    ASSERT_TRUE(cluster_->wait_for_leader().has_value()) << "no leader in the 3-node cluster";
  }
  static void TearDownTestSuite() { cluster_.reset(); }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    auto leader = cluster_->wait_for_leader();
    ASSERT_TRUE(leader.has_value());
    leader_ = *leader;
    follower_ = leader_ % 3 + 1;
    other_follower_ = follower_ % 3 + 1;
  }

  HttpReply post(int node, const std::string& path, const Json& body = nullptr,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return cluster_->request(node, "POST", path, body, timeout);
  }
  HttpReply get(int node, const std::string& path,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return cluster_->request(node, "GET", path, nullptr, timeout);
  }

  inline static std::unique_ptr<Cluster> cluster_;
  int leader_ = 0;
  int follower_ = 0;
  int other_follower_ = 0;
};

}  // namespace raftlock::testing
