// Raw client sockets for tests that speak HTTP byte by byte to a server on 127.0.0.1.
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace raftlock::testing {

// A socket connected to 127.0.0.1:port, or -1.
inline int connect_loopback(int port) {
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  if (sock < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(sock);
    return -1;
  }
  return sock;
}

// Reads until `marker` has arrived `count` times, the peer closed (`*closed` set, if given) or
// `wait` passed; returns what arrived.
inline std::string read_until(int sock, const std::string& marker, size_t count,
                              std::chrono::milliseconds wait = std::chrono::seconds(5),
                              bool* closed = nullptr) {
  std::string out;
  auto occurrences = [&] {
    size_t found = 0;
    for (size_t at = out.find(marker); at != std::string::npos; at = out.find(marker, at + 1)) {
      ++found;
    }
    return found;
  };
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (occurrences() < count && std::chrono::steady_clock::now() < deadline) {
    pollfd p{sock, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    char buffer[4096];
    const ssize_t n = ::recv(sock, buffer, sizeof(buffer), 0);
    if (n <= 0) {
      if (closed != nullptr) *closed = true;
      break;
    }
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

// Reads one HTTP response: its header and the Content-Length bytes of body after it (or what
// arrived before `wait` passed or the peer closed).
inline std::string read_response(int sock,
                                 std::chrono::milliseconds wait = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::string out;
  auto complete = [&] {
    const size_t header_end = out.find("\r\n\r\n");
    if (header_end == std::string::npos) return false;
    size_t length = 0;
    const size_t field = out.find("Content-Length: ");
    if (field != std::string::npos && field < header_end) {
      length = std::stoul(out.substr(field + 16));
    }
    return out.size() >= header_end + 4 + length;
  };
  while (!complete() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{sock, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    char buffer[4096];
    const ssize_t n = ::recv(sock, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace raftlock::testing
