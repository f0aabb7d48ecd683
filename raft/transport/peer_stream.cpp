#include "raft/transport/peer_stream.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/unique_fd.h"
#include "raft/transport/stream_server.h"

namespace raftlock::raft::transport {

void append_frame(std::string& out, std::string_view body) {
  const auto size = static_cast<uint32_t>(body.size());
  const char prefix[4] = {static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                          static_cast<char>(size >> 8), static_cast<char>(size)};
  out.append(prefix, sizeof(prefix));
  out.append(body);
}

bool read_exact(httplib::Stream& stream, char* out, size_t size) {
  while (size > 0) {
    const ssize_t n = stream.read(out, size);
    if (n <= 0) return false;
    out += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

FrameRead read_frame(httplib::Stream& stream, size_t max_bytes, std::string& body) {
  unsigned char prefix[4];
  if (!read_exact(stream, reinterpret_cast<char*>(prefix), sizeof(prefix))) {
    return FrameRead::kClosed;
  }
  const size_t size = (size_t{prefix[0]} << 24) | (size_t{prefix[1]} << 16) |
                      (size_t{prefix[2]} << 8) | size_t{prefix[3]};
  if (size > max_bytes) return FrameRead::kTooLarge;
  body.resize(size);
  return read_exact(stream, body.data(), size) ? FrameRead::kFrame : FrameRead::kClosed;
}

std::optional<std::string> read_header_block(httplib::Stream& stream) {
  std::string block;
  char c = 0;
  // Byte by byte is fine: the stream buffers its reads, and the block must not eat frame bytes.
  while (block.size() < kMaxStreamHeaderBytes) {
    if (stream.read(&c, 1) != 1) return std::nullopt;
    block.push_back(c);
    if (block.ends_with("\r\n\r\n")) return block;
  }
  return std::nullopt;
}

std::string header_value(std::string_view block, std::string_view name) {
  size_t pos = block.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < block.size()) {
    const size_t start = pos + 2;
    const size_t end = block.find("\r\n", start);
    if (end == std::string_view::npos) break;
    const std::string_view line = block.substr(start, end - start);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos && colon == name.size() &&
        std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
      }
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
        value.remove_suffix(1);
      }
      return std::string(value);
    }
    pos = end;
  }
  return {};
}

int answer_status(std::string_view block) {
  // "HTTP/1.1 200 OK\r\n..."
  if (!block.starts_with("HTTP/1.")) return 0;
  const size_t space = block.find(' ');
  if (space == std::string_view::npos || space + 4 > block.size()) return 0;
  int status = 0;
  for (size_t i = space + 1; i < space + 4; ++i) {
    if (block[i] < '0' || block[i] > '9') return 0;
    status = status * 10 + (block[i] - '0');
  }
  return status;
}

std::string stream_request(const std::string& host, NodeId from, const std::string& cluster_id) {
  return std::string(kStreamRequestPrefix) + "HTTP/1.1\r\nHost: " + host +
         "\r\nX-Raftlock-From: " + std::to_string(from) + "\r\n" + kClusterHeader + ": " +
         cluster_id + "\r\nContent-Length: 0\r\n\r\n";
}

std::string stream_accept_answer() {
  return std::string("HTTP/1.1 200 OK\r\n") + kStreamHeader + ": 1\r\nContent-Length: 0\r\n\r\n";
}

Connected connect_with_timeout(const std::string& host, int port,
                               std::chrono::milliseconds timeout) {
  Connected out;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port_text = std::to_string(port);
  if (getaddrinfo(host.c_str(), port_text.c_str(), &hints, &found) != 0 || found == nullptr) {
    out.error = "cannot resolve " + host;
    return out;
  }
  UniqueFd sock(::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) {
    out.error = std::string("socket: ") + std::strerror(errno);
    freeaddrinfo(found);
    return out;
  }
  const int connected = ::connect(sock.get(), found->ai_addr, found->ai_addrlen);
  int error = connected == 0 ? 0 : errno;
  freeaddrinfo(found);
  if (error == EINPROGRESS) {
    pollfd pfd{sock.get(), POLLOUT, 0};
    int ready = 0;
    do {
      ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
    } while (ready < 0 && errno == EINTR);
    if (ready == 0) {
      out.timed_out = true;
      out.error = "connect timed out";
      return out;
    }
    socklen_t length = sizeof(error);
    if (ready < 0 || ::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
      error = errno;
    }
  }
  if (error != 0) {
    out.refused = error == ECONNREFUSED;
    out.error = std::string("connect: ") + std::strerror(error);
    return out;
  }
  // Back to blocking: every later wait is a poll with its own timeout.
  int yes = 1;
  ::setsockopt(sock.get(), IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
  int fd = sock.get();
  int current = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, current & ~O_NONBLOCK);
  out.fd = fd;
  // Hand the descriptor over to the caller.
  sock.release();
  return out;
}

int request_stream(int fd, const std::string& host, NodeId from, const std::string& cluster_id,
                   std::string_view first_frames, std::chrono::milliseconds io_timeout,
                   std::string& error) {
  const int io_ms = static_cast<int>(io_timeout.count());
  BufferedSocketStream stream(fd, io_ms, io_ms);
  std::string request = stream_request(host, from, cluster_id);
  request.append(first_frames);
  if (stream.write(request.data(), request.size()) < 0 || !stream.flush()) {
    error = "sending the stream request failed";
    return 0;
  }
  // Only the answer's header block is read: nothing else comes on an accepted stream, and a
  // refused one is closed.
  auto answer = read_header_block(stream);
  if (!answer) {
    error = "no answer to the stream request";
    return 0;
  }
  const int status = answer_status(*answer);
  if (status == 200 && header_value(*answer, kStreamHeader) == "1") return 200;
  error = "the peer refused a stream (HTTP " + std::to_string(status) + ")";
  return status == 200 ? 0 : status;
}

}  // namespace raftlock::raft::transport
