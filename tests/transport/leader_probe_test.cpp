// probe_peer_port: a listening port accepts, a closed one refuses, a bad address is an error.
#include "raft/transport/leader_probe.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace raftlock::raft::transport {
namespace {

using namespace std::chrono_literals;

// A TCP socket listening on 127.0.0.1 at a port the kernel picked.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t length = sizeof(addr);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length), 0);
    port_ = ntohs(addr.sin_port);
  }
  ~Listener() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(LeaderProbe, ListeningPortAccepts) {
  Listener listener;
  EXPECT_EQ(probe_peer_port(listener.address(), 100ms), ProbeOutcome::kAccepted);
}

TEST(LeaderProbe, PortNobodyListensOnAnyMoreRefuses) {
  Listener listener;
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
