// probe_peer_port: a plain TCP connect with a deadline (connect_with_timeout), no HTTP.
#include "raft/transport/leader_probe.h"

#include <unistd.h>

#include <charconv>
#include <string>

#include "raft/transport/peer_stream.h"

namespace raftlock::raft::transport {

namespace {

bool split_host_port(const std::string& address, std::string& host, std::string& port) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= address.size()) return false;
  host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  port = address.substr(colon + 1);
  int value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  return ec == std::errc() && ptr == port.data() + port.size() && value > 0 && value <= 65535;
}

}  // namespace

const char* probe_outcome_name(ProbeOutcome outcome) {
  switch (outcome) {
    case ProbeOutcome::kRefused:
      return "refused";
    case ProbeOutcome::kAccepted:
      return "accepted";
    case ProbeOutcome::kTimedOut:
      return "timed out";
    case ProbeOutcome::kError:
      return "error";
  }
  return "unknown";
}

ProbeOutcome probe_peer_port(const std::string& address, std::chrono::milliseconds timeout) {
  std::string host, port;
  if (!split_host_port(address, host, port)) return ProbeOutcome::kError;
  Connected connected = connect_with_timeout(host, std::stoi(port), timeout);
  if (connected.fd >= 0) {
    ::close(connected.fd);
    return ProbeOutcome::kAccepted;
  }
  if (connected.refused) return ProbeOutcome::kRefused;
  return connected.timed_out ? ProbeOutcome::kTimedOut : ProbeOutcome::kError;
}

}  // namespace raftlock::raft::transport
