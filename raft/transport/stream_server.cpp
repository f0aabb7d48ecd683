#include "raft/transport/stream_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "common/thread_name.h"

namespace raftlock::raft::transport {
namespace {

void describe(const sockaddr_storage& addr, std::string& ip, int& port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    port = ntohs(in6->sin6_port);
  }
  ip = text;
}

void set_receive_timeout(int sock, int timeout_ms) {
  timeval tv{};
  tv.tv_sec = timeout_ms / 1000;
  tv.tv_usec = static_cast<suseconds_t>(timeout_ms % 1000) * 1000;
  ::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

int to_ms(time_t sec, time_t usec) {
  return static_cast<int>(sec * 1000 + usec / 1000);
}

}  // namespace

bool BufferedSocketStream::is_readable() const {
  return buffered() > 0 || wait_for(POLLIN, read_timeout_ms_);
}

bool BufferedSocketStream::is_writable() const {
  return wait_for(POLLOUT, write_timeout_ms_);
}

ssize_t BufferedSocketStream::read(char* ptr, size_t size) {
  if (!flush()) return -1;
  if (buffered() == 0) {
    if (!wait_for(POLLIN, read_timeout_ms_)) return -1;
    if (size >= sizeof(buffer_)) return recv_retrying(ptr, size);
    ssize_t n = recv_retrying(buffer_, sizeof(buffer_));
    if (n <= 0) return n;
    begin_ = 0;
    end_ = static_cast<size_t>(n);
  }
  size_t n = std::min(size, buffered());
  std::memcpy(ptr, buffer_ + begin_, n);
  begin_ += n;
  return static_cast<ssize_t>(n);
}

ssize_t BufferedSocketStream::write(const char* ptr, size_t size) {
  const std::string_view data(ptr, size);
  if (held_.empty() && data.size() <= kMaxHeldBytes && data.ends_with("\r\n\r\n")) {
    held_.assign(data);
    return static_cast<ssize_t>(size);
  }
  if (!held_.empty()) {
    held_.append(data);
    const bool sent = send_all(held_.data(), held_.size());
    held_.clear();
    return sent ? static_cast<ssize_t>(size) : -1;
  }
  return send_all(ptr, size) ? static_cast<ssize_t>(size) : -1;
}

bool BufferedSocketStream::flush() {
  if (held_.empty()) return true;
  const bool sent = send_all(held_.data(), held_.size());
  held_.clear();
  return sent;
}

std::string BufferedSocketStream::take_buffered() {
  std::string rest(buffer_ + begin_, buffered());
  begin_ = end_ = 0;
  return rest;
}

bool BufferedSocketStream::await_request() {
  if (!flush()) return false;
  if (buffered() > 0) return true;
  const ssize_t n = recv_retrying(buffer_, sizeof(buffer_));
  if (n <= 0) return false;
  begin_ = 0;
  end_ = static_cast<size_t>(n);
  return true;
}

bool BufferedSocketStream::read_more() {
  if (begin_ > 0) {
    std::memmove(buffer_, buffer_ + begin_, buffered());
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == sizeof(buffer_) || !wait_for(POLLIN, read_timeout_ms_)) return false;
  const ssize_t n = recv_retrying(buffer_ + end_, sizeof(buffer_) - end_);
  if (n <= 0) return false;
  end_ += static_cast<size_t>(n);
  return true;
}

void BufferedSocketStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  if (!remote_.known) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    describe(addr, remote_.ip, remote_.port);
    remote_.known = true;
  }
  ip = remote_.ip;
  port = remote_.port;
}

void BufferedSocketStream::get_local_ip_and_port(std::string& ip, int& port) const {
  if (!local_.known) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    describe(addr, local_.ip, local_.port);
    local_.known = true;
  }
  ip = local_.ip;
  port = local_.port;
}

bool BufferedSocketStream::wait_readable(int sock, int timeout_ms) {
  pollfd p{sock, POLLIN, 0};
  int r;
  do {
    r = poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

bool BufferedSocketStream::wait_for(short events, int timeout_ms) const {
  pollfd p{sock_, events, 0};
  int r;
  do {
    r = poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  return r > 0 && (p.revents & (events | POLLHUP | POLLERR)) != 0;
}

bool BufferedSocketStream::send_all(const char* ptr, size_t size) {
  while (size > 0) {
    ssize_t n;
    do {
      n = ::send(sock_, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // The socket buffer is full: wait (bounded) for room, then go on.
      if (!wait_for(POLLOUT, write_timeout_ms_)) return false;
      continue;
    }
    if (n <= 0) return false;
    ptr += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

ssize_t BufferedSocketStream::recv_retrying(char* ptr, size_t size) {
  ssize_t n;
  do {
    n = ::recv(sock_, ptr, size, 0);
  } while (n < 0 && errno == EINTR);
  return n;
}

void StreamServer::shut_down_connections() {
  std::lock_guard lock(mutex_);
  // The first call lets busy connections write their answer; a repeated one cuts them off.
  const bool again = closing_;
  closing_ = true;
  for (const auto& [sock, idle] : open_) ::shutdown(sock, idle || again ? SHUT_RDWR : SHUT_RD);
}

bool StreamServer::process_and_close_socket(socket_t sock) {
  {
    std::lock_guard lock(mutex_);
    if (closing_) {
      ::close(sock);
      return false;
    }
    open_[sock] = true;
  }
  set_thread_name(options_.thread_name);
  int yes = 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
  const int read_ms = static_cast<int>(options_.read_timeout.count());
  const int write_ms = static_cast<int>(options_.write_timeout.count());
  const int idle_ms = static_cast<int>(options_.keep_alive_idle.count());
  // The idle wait between requests is a blocking recv() bounded by SO_RCVTIMEO (one system call
  // per request instead of poll() + poll() + recv()). A takeover handler gets the socket back
  // without the timeout. One stream serves the whole connection, so bytes of a pipelined next
  // request that arrived with this one stay buffered for it.
  set_receive_timeout(sock, idle_ms);
  BufferedSocketStream stream(sock, read_ms, write_ms);
  bool ok = false;
  for (size_t served = 0; served < keep_alive_max_count_; ++served) {
    // Idle keep-alive: wait for the next request (or EOF, or our shutdown).
    if (!stream.await_request()) break;
    {
      std::lock_guard lock(mutex_);
      if (closing_ || svr_sock_ == INVALID_SOCKET) break;
      open_[sock] = false;
    }
    if (served == 0 && takeover_ && starts_with_takeover_prefix(stream)) {
      set_receive_timeout(sock, 0);
      if (takeover_(stream)) {
        std::lock_guard lock(mutex_);
        open_.erase(sock);
        return true;  // the socket is the handler's now
      }
      break;
    }
    bool connection_closed = false;
    const bool last = served + 1 == keep_alive_max_count_;
    ok = process_request(stream, last, connection_closed, [](httplib::Request&) {});
    if (!stream.flush()) ok = false;
    {
      std::lock_guard lock(mutex_);
      if (closing_) break;
      open_[sock] = true;
    }
    if (!ok || connection_closed) break;
  }
  {
    // Untrack before closing, under the lock: shut_down_connections never touches a descriptor
    // number that has been closed (and possibly reused).
    std::lock_guard lock(mutex_);
    open_.erase(sock);
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  }
  return ok;
}

bool StreamServer::starts_with_takeover_prefix(BufferedSocketStream& stream) const {
  // A request line normally arrives in one segment; read more (bounded) while it is a partial
  // match.
  while (true) {
    const std::string_view got = stream.buffered_view();
    const size_t n = std::min(got.size(), takeover_prefix_.size());
    if (got.substr(0, n) != std::string_view(takeover_prefix_).substr(0, n)) return false;
    if (n == takeover_prefix_.size()) return true;
    if (!stream.read_more()) return false;
  }
}

bool StreamClient::process_socket(const Socket& socket,
                                  std::function<bool(httplib::Stream& strm)> callback) {
  BufferedSocketStream stream(socket.sock, to_ms(read_timeout_sec_, read_timeout_usec_),
                              to_ms(write_timeout_sec_, write_timeout_usec_));
  const bool ok = callback(stream);
  return stream.flush() && ok;
}

}  // namespace raftlock::raft::transport
