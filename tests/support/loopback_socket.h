// LoopbackSocket: a TCP socket listening on 127.0.0.1 at a port the kernel picked (or the one
// asked for; ok() says whether it could be had). Tests use it
// as a taken port, as a peer that accepts connections but never answers, or (closed) as an
// address that refuses connections.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace raftlock::testing {

class LoopbackSocket {
 public:
  explicit LoopbackSocket(int backlog = 16, int port = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    socklen_t length = sizeof(addr);
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
          ::listen(fd_, backlog) == 0 &&
          ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length) == 0;
    port_ = ntohs(addr.sin_port);
  }
  ~LoopbackSocket() { close(); }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;

  // Closes the socket: from now on its port refuses connections.
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool ok() const { return ok_; }
  int fd() const { return fd_; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
  bool ok_ = false;
};

// An address where nothing listens: connections are refused.
inline std::string refusing_address() {
  LoopbackSocket socket;
  return socket.address();  // closed when `socket` goes out of scope
}

}  // namespace raftlock::testing
