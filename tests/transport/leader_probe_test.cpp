// probe_peer_port: a listening port accepts, a closed one refuses, a bad address is an error.
#include "raft/transport/leader_probe.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "tests/support/loopback_socket.h"

namespace raftlock::raft::transport {
namespace {

using namespace std::chrono_literals;

using raftlock::testing::LoopbackSocket;

TEST(LeaderProbe, ListeningPortAccepts) {
  LoopbackSocket listener;
  ASSERT_TRUE(listener.ok());
  EXPECT_EQ(probe_peer_port(listener.address(), 100ms), ProbeOutcome::kAccepted);
}

TEST(LeaderProbe, PortNobodyListensOnAnyMoreRefuses) {
  LoopbackSocket listener;
  ASSERT_TRUE(listener.ok());
  const std::string address = listener.address();
  listener.close();  // the "process" is gone
  EXPECT_EQ(probe_peer_port(address, 100ms), ProbeOutcome::kRefused);
}

TEST(LeaderProbe, BracketedIpv6LoopbackIsUnderstood) {
  // Whether or not this host has IPv6, the address must parse: refused or an error, never a hang.
  const ProbeOutcome outcome = probe_peer_port("[::1]:1", 100ms);
  EXPECT_TRUE(outcome == ProbeOutcome::kRefused || outcome == ProbeOutcome::kError)
      << probe_outcome_name(outcome);
}

TEST(LeaderProbe, MalformedAddressIsAnErrorNotARefusal) {
  for (const char* bad :
       {"", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:http", "127.0.0.1:0", "127.0.0.1:70000"}) {
    EXPECT_EQ(probe_peer_port(bad, 100ms), ProbeOutcome::kError) << bad;
  }
}

}  // namespace
}  // namespace raftlock::raft::transport
