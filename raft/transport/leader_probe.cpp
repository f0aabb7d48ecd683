// probe_peer_port: a plain non-blocking TCP connect with a deadline (poll), no HTTP.
#include "raft/transport/leader_probe.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "common/unique_fd.h"

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
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
    return ProbeOutcome::kError;
  }
  UniqueFd sock(::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) {
    freeaddrinfo(found);
    return ProbeOutcome::kError;
  }
  const int connected = ::connect(sock.get(), found->ai_addr, found->ai_addrlen);
  const int connect_errno = errno;
  freeaddrinfo(found);
  if (connected == 0) return ProbeOutcome::kAccepted;
  if (connect_errno == ECONNREFUSED) return ProbeOutcome::kRefused;
  if (connect_errno != EINPROGRESS) return ProbeOutcome::kError;
  pollfd pfd{sock.get(), POLLOUT, 0};
  int ready = 0;
  do {
    ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) return ProbeOutcome::kTimedOut;
  if (ready < 0) return ProbeOutcome::kError;
  int error = 0;
  socklen_t length = sizeof(error);
  if (::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
    return ProbeOutcome::kError;
  }
  if (error == 0) return ProbeOutcome::kAccepted;
  return error == ECONNREFUSED ? ProbeOutcome::kRefused : ProbeOutcome::kError;
}

}  // namespace raftlock::raft::transport
