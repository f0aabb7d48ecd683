#include "cmd/flags.h"

#include <gtest/gtest.h>

namespace raftlock::cmd {
namespace {

Result<ServerFlags> parse(std::vector<std::string> args,
                          std::map<std::string, std::string> env = {}) {
  return parse_server_flags(args, env);
}

TEST(Flags, DefaultsMatchTheContract) {
  auto flags = parse({});
  ASSERT_TRUE(flags.ok());
  EXPECT_EQ(flags->id, 1u);
  EXPECT_EQ(flags->data_dir, "./raftlock-data");
  EXPECT_EQ(flags->client_addr.to_string(), "127.0.0.1:7070");
  EXPECT_EQ(flags->peer_addr.to_string(), "127.0.0.1:7080");
  EXPECT_TRUE(flags->initial_cluster.empty());
  EXPECT_EQ(flags->heartbeat_ms, 100);
  EXPECT_EQ(flags->election_timeout_ms, 1000);
  EXPECT_EQ(flags->log_level, "info");
  EXPECT_EQ(flags->loop_spin_us, 300);
}

TEST(Flags, ParsesEveryFlagInBothForms) {
  auto flags = parse({"--id", "3", "--data-dir=/tmp/x", "--client-addr", "0.0.0.0:9000",
                      "--peer-addr=127.0.0.1:9001", "--initial-cluster",
                      "1=127.0.0.1:9101,2=127.0.0.1:9102,3=127.0.0.1:9001", "--heartbeat-ms", "50",
                      "--election-timeout-ms=700", "--log-level", "debug"});
  ASSERT_TRUE(flags.ok()) << flags.error().message;
  EXPECT_EQ(flags->id, 3u);
  EXPECT_EQ(flags->data_dir, "/tmp/x");
  EXPECT_EQ(flags->client_addr.host, "0.0.0.0");
  EXPECT_EQ(flags->client_addr.port, 9000);
  EXPECT_EQ(flags->peer_addr.port, 9001);
  ASSERT_EQ(flags->initial_cluster.size(), 3u);
  EXPECT_EQ(flags->initial_cluster.at(2).to_string(), "127.0.0.1:9102");
  EXPECT_EQ(flags->heartbeat_ms, 50);
  EXPECT_EQ(flags->election_timeout_ms, 700);
  EXPECT_EQ(flags->log_level, "debug");
}

TEST(Flags, EnvironmentIsReadAndAFlagWins) {
  auto from_env = parse({}, {{"RAFTLOCK_CLIENT_ADDR", "127.0.0.1:7171"}, {"RAFTLOCK_ID", "2"}});
  ASSERT_TRUE(from_env.ok());
  EXPECT_EQ(from_env->client_addr.port, 7171);
  EXPECT_EQ(from_env->id, 2u);
  auto flag_wins =
      parse({"--client-addr", "127.0.0.1:7272"}, {{"RAFTLOCK_CLIENT_ADDR", "127.0.0.1:7171"}});
  ASSERT_TRUE(flag_wins.ok());
  EXPECT_EQ(flag_wins->client_addr.port, 7272);
}

struct BadCase {
  std::vector<std::string> args;
  std::string must_mention;
};

TEST(Flags, EveryBadFlagIsRefusedWithOneLineNamingIt) {
  const std::vector<BadCase> cases = {
      {{"--id", "0"}, "--id"},
      {{"--id", "abc"}, "--id"},
      {{"--id", "-4"}, "--id"},
      {{"--client-addr", "nope"}, "--client-addr"},
      {{"--client-addr", "127.0.0.1:99999"}, "--client-addr"},
      {{"--peer-addr", "127.0.0.1:"}, "--peer-addr"},
      {{"--initial-cluster", "1=127.0.0.1:1,1=127.0.0.1:2"}, "--initial-cluster"},
      {{"--initial-cluster", "x=127.0.0.1:1"}, "--initial-cluster"},
      {{"--initial-cluster", "2=127.0.0.1:1"}, "--initial-cluster"},  // does not name node 1
      {{"--heartbeat-ms", "0"}, "--heartbeat-ms"},
      {{"--election-timeout-ms", "ten"}, "--election-timeout-ms"},
      {{"--heartbeat-ms", "500", "--election-timeout-ms", "400"}, "--election-timeout-ms"},
      {{"--log-level", "loud"}, "--log-level"},
      {{"--loop-spin-us", "-1"}, "--loop-spin-us"},
      {{"--loop-spin-us", "10001"}, "--loop-spin-us"},
      {{"--loop-spin-us", "fast"}, "--loop-spin-us"},
      {{"--data-dir", ""}, "--data-dir"},
      {{"--bogus", "1"}, "--bogus"},
      {{"--id"}, "--id"},
      {{"stray"}, "stray"},
  };
  for (const auto& c : cases) {
    auto flags = parse(c.args);
    ASSERT_FALSE(flags.ok()) << c.args[0];
    EXPECT_EQ(flags.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(flags.error().message.find(c.must_mention), std::string::npos)
        << "message '" << flags.error().message << "' does not name " << c.must_mention;
    EXPECT_EQ(flags.error().message.find('\n'), std::string::npos);
  }
}

TEST(Flags, LoopSpinTakesZeroToTurnItOffAndComesFromTheEnvironmentToo) {
  auto off = parse({"--loop-spin-us", "0"});
  ASSERT_TRUE(off.ok()) << off.error().message;
  EXPECT_EQ(off->loop_spin_us, 0);
  auto most = parse({"--loop-spin-us=10000"});
  ASSERT_TRUE(most.ok()) << most.error().message;
  EXPECT_EQ(most->loop_spin_us, 10000);
  auto from_env = parse({}, {{"RAFTLOCK_LOOP_SPIN_US", "50"}});
  ASSERT_TRUE(from_env.ok()) << from_env.error().message;
  EXPECT_EQ(from_env->loop_spin_us, 50);
}

TEST(Flags, AValidFlagOverridesABadEnvironmentValue) {
  auto flags = parse({"--heartbeat-ms", "50"}, {{"RAFTLOCK_HEARTBEAT_MS", "fast"}});
  ASSERT_TRUE(flags.ok()) << flags.error().message;
  EXPECT_EQ(flags->heartbeat_ms, 50);
}

TEST(Flags, BadEnvironmentValueNamesTheVariable) {
  auto flags = parse({}, {{"RAFTLOCK_HEARTBEAT_MS", "fast"}});
  ASSERT_FALSE(flags.ok());
  EXPECT_NE(flags.error().message.find("RAFTLOCK_HEARTBEAT_MS"), std::string::npos);
}

TEST(Flags, HelpIsRecognisedAndDocumentsEveryFlag) {
  auto flags = parse({"--help"});
  ASSERT_TRUE(flags.ok());
  EXPECT_TRUE(flags->help);
  const std::string usage = server_usage();
  for (const char* flag :
       {"--id", "--data-dir", "--client-addr", "--peer-addr", "--initial-cluster", "--heartbeat-ms",
        "--election-timeout-ms", "--log-level", "--snapshot-every", "--loop-spin-us"}) {
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace raftlock::cmd
