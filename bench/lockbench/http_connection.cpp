#include "bench/lockbench/http_connection.h"

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
#include <sstream>
#include <string_view>

namespace raftlock::bench {

std::vector<Endpoint> parse_endpoints(const std::string& text) {
  std::vector<Endpoint> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    auto colon = item.rfind(':');
    if (colon == std::string::npos || colon == 0) return {};
    Endpoint e;
    e.host = item.substr(0, colon);
    try {
      e.port = std::stoi(item.substr(colon + 1));
    } catch (...) {
      return {};
    }
    if (e.port <= 0 || e.port > 65535) return {};
    out.push_back(e);
  }
  return out;
}

namespace {

constexpr auto kConnectTimeout = std::chrono::milliseconds(500);
constexpr auto kSendTimeout = std::chrono::seconds(5);
constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxBodyBytes = 64 * 1024 * 1024;
constexpr size_t kMinReceiveSpace = 16 * 1024;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True when the comma-separated list `value` holds `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = trim(value.substr(0, comma));
    auto semicolon = item.find(';');
    if (semicolon != std::string_view::npos) item = trim(item.substr(0, semicolon));
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses a decimal Content-Length. Fails on anything but digits or a value over kMaxBodyBytes.
bool parse_length(std::string_view s, size_t& out) {
  if (s.empty()) return false;
  size_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return false;
    v = v * 10 + static_cast<size_t>(c - '0');
    if (v > kMaxBodyBytes) return false;
  }
  out = v;
  return true;
}

// What the head of one response says about its body.
struct ResponseHead {
  int status = 0;
  bool http10 = false;
  bool has_length = false;
  size_t length = 0;
  bool chunked = false;
  bool transfer_encoded = false;
  bool connection_close = false;
  bool connection_keep_alive = false;
};

// Parses the status line and headers in `head` (without the final empty line's CRLF pair).
bool parse_head(std::string_view head, ResponseHead& out) {
  size_t eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  // "HTTP/1.x SSS[ reason]"
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." ||
      !is_digit(status_line[7]) || status_line[8] != ' ' || !is_digit(status_line[9]) ||
      !is_digit(status_line[10]) || !is_digit(status_line[11]) ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    return false;
  }
  out.http10 = status_line[7] == '0';
  out.status =
      (status_line[9] - '0') * 100 + (status_line[10] - '0') * 10 + (status_line[11] - '0');
  if (out.status < 100) return false;
  if (eol == std::string_view::npos) return true;
  std::string_view rest = head.substr(eol + 2);
  while (!rest.empty()) {
    size_t line_end = rest.find("\r\n");
    std::string_view line = rest.substr(0, line_end);
    rest = line_end == std::string_view::npos ? std::string_view{} : rest.substr(line_end + 2);
    if (line.empty()) return false;
    if (line.front() == ' ' || line.front() == '\t') continue;  // obsolete fold: ignored
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    std::string_view name = line.substr(0, colon);
    if (name.find_first_of(" \t") != std::string_view::npos) return false;
    std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "content-length")) {
      size_t length = 0;
      if (!parse_length(value, length)) return false;
      if (out.has_length && out.length != length) return false;
      out.has_length = true;
      out.length = length;
    } else if (iequals(name, "transfer-encoding")) {
      out.transfer_encoded = true;
      if (has_token(value, "chunked")) out.chunked = true;
    } else if (iequals(name, "connection")) {
      if (has_token(value, "close")) out.connection_close = true;
      if (has_token(value, "keep-alive")) out.connection_keep_alive = true;
    }
  }
  return true;
}

}  // namespace

HttpConnection::HttpConnection(std::vector<Endpoint> endpoints, size_t first_endpoint,
                               std::chrono::milliseconds read_timeout)
    : endpoints_(std::move(endpoints)),
      current_(first_endpoint % endpoints_.size()),
      read_timeout_(read_timeout),
      buffer_(kMinReceiveSpace) {}

HttpConnection::~HttpConnection() {
  close_socket();
}

void HttpConnection::close_socket() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  reused_ = false;
}

void HttpConnection::rotate() {
  close_socket();
  current_ = (current_ + 1) % endpoints_.size();
}

bool HttpConnection::set_receive_timeout(std::chrono::microseconds timeout) {
  if (timeout == receive_timeout_set_) return true;
  if (timeout < std::chrono::microseconds(1)) timeout = std::chrono::microseconds(1);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(timeout.count() % 1000000);
  if (::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) return false;
  receive_timeout_set_ = timeout;
  return true;
}

bool HttpConnection::connect_current() {
  close_socket();
  const Endpoint& e = endpoints_[current_];
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(e.host.c_str(), std::to_string(e.port).c_str(), &hints, &found) != 0) {
    return false;
  }
  for (addrinfo* ai = found; ai != nullptr && fd_ < 0; ai = ai->ai_next) {
    int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    bool connected = ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    if (!connected && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int ready;
      do {
        ready = ::poll(&p, 1, static_cast<int>(kConnectTimeout.count()));
      } while (ready < 0 && errno == EINTR);
      int error = 0;
      socklen_t len = sizeof error;
      connected =
          ready == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0;
    }
    if (!connected) {
      ::close(fd);
      continue;
    }
    int flags = ::fcntl(fd, F_GETFL);
    int one = 1;
    timeval send_tv{static_cast<time_t>(kSendTimeout.count()), 0};
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_tv, sizeof send_tv) != 0) {
      ::close(fd);
      continue;
    }
    fd_ = fd;
    receive_timeout_set_ = std::chrono::microseconds(0);
    if (!set_receive_timeout(read_timeout_)) close_socket();
  }
  ::freeaddrinfo(found);
  return fd_ >= 0;
}

bool HttpConnection::send_request() {
  const char* data = request_.data();
  size_t left = request_.size();
  while (left > 0) {
    ssize_t n = ::send(fd_, data, left, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    left -= static_cast<size_t>(n);
  }
  return true;
}

long HttpConnection::receive_more(size_t min_free, bool first,
                                  std::chrono::steady_clock::time_point deadline, int& errno_out) {
  if (buffer_.size() - filled_ < min_free) {
    size_t capacity = buffer_.size();
    while (capacity - filled_ < min_free) capacity *= 2;
    buffer_.resize(capacity);
  }
  for (;;) {
    // The first recv of a response waits the socket's standing timeout (no extra syscall);
    // later ones wait only what is left of the whole-response deadline.
    std::chrono::microseconds wait = std::chrono::duration_cast<std::chrono::microseconds>(
        first ? std::chrono::microseconds(read_timeout_)
              : deadline - std::chrono::steady_clock::now());
    if (wait <= std::chrono::microseconds(0) || !set_receive_timeout(wait)) {
      errno_out = EAGAIN;
      return -1;
    }
    ssize_t n = ::recv(fd_, buffer_.data() + filled_, buffer_.size() - filled_, 0);
    if (n > 0) {
      filled_ += static_cast<size_t>(n);
      return n;
    }
    if (n == 0) return 0;
    if (errno == EINTR) {
      first = false;
      continue;
    }
    errno_out = errno;
    return -1;
  }
}

void HttpConnection::compact(size_t& cursor) {
  if (cursor == 0) return;
  std::memmove(buffer_.data(), buffer_.data() + cursor, filled_ - cursor);
  filled_ -= cursor;
  cursor = 0;
}

HttpConnection::ReadOutcome HttpConnection::read_response(HttpAnswer& answer, bool& close_after) {
  const auto deadline = std::chrono::steady_clock::now() + read_timeout_;
  filled_ = 0;
  bool first = true;
  bool any_byte = false;
  int error = 0;
  // Reads more; on EOF/error tells whether it was an idle close (nothing received yet).
  auto more = [&](size_t min_free) -> long {
    long n = receive_more(min_free, first, deadline, error);
    first = false;
    if (n > 0) any_byte = true;
    return n;
  };
  auto lost = [&](long n) {
    // EOF or a reset/pipe error before any byte: the server closed the idle connection.
    bool timed_out = n < 0 && (error == EAGAIN || error == EWOULDBLOCK);
    bool idle_close = !any_byte && !timed_out;
    return idle_close ? ReadOutcome::kClosedBeforeAnyByte : ReadOutcome::kFailed;
  };

  size_t cursor = 0;  // start of unparsed bytes in buffer_
  ResponseHead head;
  for (;;) {
    // Head: status line and headers up to the empty line.
    size_t scanned = cursor;
    size_t head_end;
    for (;;) {
      std::string_view seen(buffer_.data() + cursor, filled_ - cursor);
      size_t from = scanned - cursor >= 3 ? scanned - cursor - 3 : 0;
      head_end = seen.find("\r\n\r\n", from);
      if (head_end != std::string_view::npos) break;
      if (seen.size() > kMaxHeaderBytes) return ReadOutcome::kFailed;
      scanned = filled_;
      long n = more(kMinReceiveSpace);
      if (n <= 0) return lost(n);
    }
    if (head_end + 4 > kMaxHeaderBytes) return ReadOutcome::kFailed;
    head = ResponseHead{};
    if (!parse_head(std::string_view(buffer_.data() + cursor, head_end), head)) {
      return ReadOutcome::kFailed;
    }
    cursor += head_end + 4;
    if (head.status >= 200) break;
    // 1xx interim response (100 Continue): skip it, the final response follows.
  }

  answer.status = head.status;
  answer.body.clear();
  close_after = head.connection_close || (head.http10 && !head.connection_keep_alive);
  if (head.status == 204 || head.status == 304) return ReadOutcome::kComplete;

  if (head.chunked) {
    enum class State { kSize, kData, kDataEnd, kTrailer } state = State::kSize;
    size_t remaining = 0;
    size_t trailer_bytes = 0;
    for (;;) {
      bool need_more = false;
      if (state == State::kData) {
        if (cursor == filled_) {
          need_more = true;
        } else {
          size_t take = std::min(remaining, filled_ - cursor);
          answer.body.append(buffer_.data() + cursor, take);
          cursor += take;
          remaining -= take;
          if (remaining == 0) state = State::kDataEnd;
        }
      } else if (state == State::kDataEnd) {
        if (filled_ - cursor < 2) {
          need_more = true;
        } else {
          if (buffer_[cursor] != '\r' || buffer_[cursor + 1] != '\n') return ReadOutcome::kFailed;
          cursor += 2;
          state = State::kSize;
        }
      } else {
        std::string_view seen(buffer_.data() + cursor, filled_ - cursor);
        size_t eol = seen.find("\r\n");
        if (eol == std::string_view::npos) {
          if (seen.size() > kMaxHeaderBytes) return ReadOutcome::kFailed;
          need_more = true;
        } else if (state == State::kTrailer) {
          cursor += eol + 2;
          if (eol == 0) return ReadOutcome::kComplete;
          trailer_bytes += eol + 2;
          if (trailer_bytes > kMaxHeaderBytes) return ReadOutcome::kFailed;
        } else {
          // chunk-size [ chunk-ext ]
          std::string_view line = seen.substr(0, eol);
          cursor += eol + 2;
          size_t size = 0;
          size_t i = 0;
          for (; i < line.size() && hex_value(line[i]) >= 0; ++i) {
            size = size * 16 + static_cast<size_t>(hex_value(line[i]));
            if (size > kMaxBodyBytes) return ReadOutcome::kFailed;
          }
          if (i == 0) return ReadOutcome::kFailed;
          std::string_view ext = trim(line.substr(i));
          if (!ext.empty() && ext.front() != ';') return ReadOutcome::kFailed;
          if (answer.body.size() + size > kMaxBodyBytes) return ReadOutcome::kFailed;
          remaining = size;
          state = size == 0 ? State::kTrailer : State::kData;
        }
      }
      if (!need_more) continue;
      compact(cursor);
      long n = more(kMinReceiveSpace);
      if (n <= 0) return ReadOutcome::kFailed;
    }
  }

  if (head.has_length && !head.transfer_encoded) {
    size_t needed = cursor + head.length;
    while (filled_ < needed) {
      long n = more(needed - filled_);
      if (n <= 0) return ReadOutcome::kFailed;
    }
    answer.body.assign(buffer_.data() + cursor, head.length);
    return ReadOutcome::kComplete;
  }

  // Neither a length nor chunked: the body runs to the end of the connection.
  close_after = true;
  for (;;) {
    if (filled_ - cursor > kMaxBodyBytes) return ReadOutcome::kFailed;
    long n = more(kMinReceiveSpace);
    if (n == 0) break;
    if (n < 0) return ReadOutcome::kFailed;
  }
  if (filled_ - cursor > kMaxBodyBytes) return ReadOutcome::kFailed;
  answer.body.assign(buffer_.data() + cursor, filled_ - cursor);
  return ReadOutcome::kComplete;
}

HttpAnswer HttpConnection::request(const char* method, const std::string& path,
                                   const std::string* body) {
  const Endpoint& e = endpoints_[current_];
  request_.clear();
  request_.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ");
  request_.append(e.host).append(":").append(std::to_string(e.port)).append("\r\n");
  if (body != nullptr) {
    request_.append("Content-Type: application/json\r\nContent-Length: ");
    request_.append(std::to_string(body->size())).append("\r\n\r\n").append(*body);
  } else {
    request_.append("\r\n");
  }

  HttpAnswer answer;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (fd_ < 0 && !connect_current()) break;
    // Only a kept-alive socket may have been closed by the server while idle; a fresh one that
    // fails is a real failure.
    bool may_retry = reused_ && attempt == 0;
    if (!send_request()) {
      if (may_retry) {
        close_socket();
        continue;
      }
      break;
    }
    bool close_after = false;
    ReadOutcome outcome = read_response(answer, close_after);
    if (outcome == ReadOutcome::kComplete) {
      answer.transport_ok = true;
      if (close_after) {
        close_socket();
      } else {
        reused_ = true;
      }
      return answer;
    }
    if (outcome == ReadOutcome::kClosedBeforeAnyByte && may_retry) {
      close_socket();
      continue;
    }
    break;
  }
  rotate();
  return HttpAnswer{};
}

HttpAnswer HttpConnection::post(const std::string& path, const std::string& body) {
  return request("POST", path, &body);
}

HttpAnswer HttpConnection::get(const std::string& path) {
  return request("GET", path, nullptr);
}

HttpAnswer HttpConnection::del(const std::string& path) {
  return request("DELETE", path, nullptr);
}

}  // namespace raftlock::bench
