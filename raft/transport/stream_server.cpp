#include "raft/transport/stream_server.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
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

// httplib's reason phrases (detail::status_message is not exported by the compiled library);
// the direct-path equivalence tests compare every status from 100 to 599 with httplib's own.
const char* status_message(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocol";
    case 102:
      return "Processing";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 203:
      return "Non-Authoritative Information";
    case 204:
      return "No Content";
    case 205:
      return "Reset Content";
    case 206:
      return "Partial Content";
    case 207:
      return "Multi-Status";
    case 208:
      return "Already Reported";
    case 226:
      return "IM Used";
    case 300:
      return "Multiple Choice";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 305:
      return "Use Proxy";
    case 306:
      return "unused";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 418:
      return "I'm a teapot";
    case 421:
      return "Misdirected Request";
    case 422:
      return "Unprocessable Entity";
    case 423:
      return "Locked";
    case 424:
      return "Failed Dependency";
    case 425:
      return "Too Early";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 451:
      return "Unavailable For Legal Reasons";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    case 506:
      return "Variant Also Negotiates";
    case 507:
      return "Insufficient Storage";
    case 508:
      return "Loop Detected";
    case 510:
      return "Not Extended";
    case 511:
      return "Network Authentication Required";
    default:
      return "Internal Server Error";
  }
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_space_or_tab(char c) {
  return c == ' ' || c == '\t';
}

// A request line the direct path takes: "METHOD /target HTTP/1.x" with one space between the
// parts, a method it serves, a target without controls, spaces or a fragment and at most one '?'.
struct RequestLine {
  std::string_view method, target, version;
};

std::optional<RequestLine> parse_plain_request_line(std::string_view line) {
  for (char c : line) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
  }
  const size_t first = line.find(' ');
  if (first == std::string_view::npos) return std::nullopt;
  const size_t second = line.find(' ', first + 1);
  if (second == std::string_view::npos || line.find(' ', second + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  RequestLine out{line.substr(0, first), line.substr(first + 1, second - first - 1),
                  line.substr(second + 1)};
  static constexpr std::string_view kMethods[] = {"GET",    "POST",  "PUT",
                                                  "DELETE", "PATCH", "OPTIONS"};
  if (std::find(std::begin(kMethods), std::end(kMethods), out.method) == std::end(kMethods)) {
    return std::nullopt;
  }
  if (out.version != "HTTP/1.1" && out.version != "HTTP/1.0") return std::nullopt;
  if (out.target.empty() || out.target.front() != '/' ||
      out.target.find('#') != std::string_view::npos || out.target.back() == '?' ||
      std::count(out.target.begin(), out.target.end(), '?') > 1) {
    return std::nullopt;
  }
  return out;
}

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// What the direct path needs to know of a request's headers, noted while they are parsed (each
// name is compared once, instead of a case-insensitive map lookup per question).
struct NotedHeaders {
  size_t content_lengths = 0;
  std::string content_length;  // the first
  std::optional<std::string> connection;
  std::optional<std::string> content_type;
  std::optional<std::string> accept_encoding;  // the first
};

// Whether an Accept-Encoding value lets the answer go uncompressed (RFC 9110 12.5.3): unless it
// gives "identity" or "*" a q of 0. A value this cannot read says no (httplib then answers).
bool identity_acceptable(std::string_view value) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    const size_t semicolon = item.find(';');
    std::string_view coding = item.substr(0, semicolon);
    while (!coding.empty() && is_space_or_tab(coding.front())) coding.remove_prefix(1);
    while (!coding.empty() && is_space_or_tab(coding.back())) coding.remove_suffix(1);
    if (!same_name(coding, "identity") && coding != "*") continue;
    if (semicolon == std::string_view::npos) continue;
    std::string_view weight = item.substr(semicolon + 1);
    while (!weight.empty() && is_space_or_tab(weight.front())) weight.remove_prefix(1);
    if (weight.size() < 2 || (weight[0] != 'q' && weight[0] != 'Q') || weight[1] != '=') {
      return false;
    }
    weight.remove_prefix(2);
    while (!weight.empty() && is_space_or_tab(weight.back())) weight.remove_suffix(1);
    // q=0, q=0., q=0.0, q=0.00, q=0.000 exclude it; any other digit keeps it.
    if (weight.empty() || weight.find_first_not_of("0123456789.") != std::string_view::npos) {
      return false;
    }
    if (weight.find_first_of("123456789") == std::string_view::npos) return false;
  }
  return true;
}

// Adds one "Name: value" header line (without its CRLF) the way httplib does: the value without
// the spaces and tabs around it, %-escapes decoded. False for a line the direct path leaves to
// httplib (no name, a name that is not a token, an empty value, control characters), and for the
// headers that make a request not plain: a body httplib reads in its own ways (chunked, encoded,
// behind Expect) and ranges. (Accept-Encoding is noted: see serve_directly.)
bool add_header(std::string_view line, httplib::Headers& headers, NotedHeaders& noted) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  const std::string_view name = line.substr(0, colon);
  if (!std::all_of(name.begin(), name.end(), is_token_char)) return false;
  for (std::string_view refused : {"Transfer-Encoding", "Expect", "Range", "Content-Encoding"}) {
    if (same_name(name, refused)) return false;
  }
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && is_space_or_tab(value.front())) value.remove_prefix(1);
  while (!value.empty() && is_space_or_tab(value.back())) value.remove_suffix(1);
  if (value.empty()) return false;
  for (char c : value) {
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  std::string text = value.find('%') == std::string_view::npos
                         ? std::string(value)
                         : httplib::detail::decode_url(std::string(value), false);
  // httplib's get_header_value answers with the first of equal names.
  if (same_name(name, "Content-Length")) {
    if (noted.content_lengths++ == 0) noted.content_length = text;
  } else if (same_name(name, "Connection")) {
    if (!noted.connection) noted.connection = text;
  } else if (same_name(name, "Content-Type")) {
    if (!noted.content_type) noted.content_type = text;
  } else if (same_name(name, "Accept-Encoding")) {
    if (!noted.accept_encoding) noted.accept_encoding = text;
  }
  headers.emplace(std::string(name), std::move(text));
  return true;
}

// A Content-Length the direct path takes: 1 to 18 digits.
std::optional<size_t> parse_length(const std::string& text) {
  if (text.empty() || text.size() > 18 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return static_cast<size_t>(std::stoull(text));
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

BufferedSocketStream::Await BufferedSocketStream::await_request() {
  if (!flush()) return Await::kClosed;
  if (buffered() > 0) return Await::kReady;
  const ssize_t n = recv_retrying(buffer_, sizeof(buffer_));
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Await::kTimedOut;
  if (n <= 0) return Await::kClosed;
  begin_ = 0;
  end_ = static_cast<size_t>(n);
  return Await::kReady;
}

BufferedSocketStream::Await BufferedSocketStream::receive_more() {
  return receive(0);
}

BufferedSocketStream::Await BufferedSocketStream::receive_available() {
  return receive(MSG_DONTWAIT);
}

BufferedSocketStream::Await BufferedSocketStream::receive(int flags) {
  if (begin_ > 0) {
    std::memmove(buffer_, buffer_ + begin_, buffered());
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == sizeof(buffer_)) return Await::kReady;
  const ssize_t n = recv_retrying(buffer_ + end_, sizeof(buffer_) - end_, flags);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Await::kTimedOut;
  if (n <= 0) return Await::kClosed;
  end_ += static_cast<size_t>(n);
  return Await::kReady;
}

bool BufferedSocketStream::has_header_block() const {
  // A full buffer counts as one: what does not fit is read by whoever serves the request.
  const std::string_view got = buffered_view();
  return buffered() == sizeof(buffer_) || got.find("\n\r\n") != std::string_view::npos ||
         got.find("\n\n") != std::string_view::npos;
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

ssize_t BufferedSocketStream::recv_retrying(char* ptr, size_t size, int flags) {
  ssize_t n;
  do {
    n = ::recv(sock_, ptr, size, flags);
  } while (n < 0 && errno == EINTR);
  return n;
}

StreamServer& StreamServer::set_error_handler(HandlerWithResponse handler) {
  error_handler_copy_ = handler;
  httplib::Server::set_error_handler(std::move(handler));
  return *this;
}

StreamServer& StreamServer::set_exception_handler(ExceptionHandler handler) {
  exception_handler_copy_ = handler;
  httplib::Server::set_exception_handler(std::move(handler));
  return *this;
}

StreamServer& StreamServer::set_default_headers(httplib::Headers headers) {
  httplib_extras_ = true;
  httplib::Server::set_default_headers(std::move(headers));
  return *this;
}

StreamServer& StreamServer::set_pre_routing_handler(HandlerWithResponse handler) {
  httplib_extras_ = true;
  httplib::Server::set_pre_routing_handler(std::move(handler));
  return *this;
}

StreamServer& StreamServer::set_post_routing_handler(Handler handler) {
  httplib_extras_ = true;
  httplib::Server::set_post_routing_handler(std::move(handler));
  return *this;
}

StreamServer& StreamServer::set_logger(httplib::Logger logger) {
  httplib_extras_ = true;
  httplib::Server::set_logger(std::move(logger));
  return *this;
}

bool StreamServer::set_mount_point(const std::string& mount_point, const std::string& dir,
                                   httplib::Headers headers) {
  httplib_extras_ = true;
  return httplib::Server::set_mount_point(mount_point, dir, std::move(headers));
}

bool StreamServer::set_base_dir(const std::string& dir, const std::string& mount_point) {
  httplib_extras_ = true;
  return httplib::Server::set_base_dir(dir, mount_point);
}

// One connection: its socket, its buffered stream (bytes of a pipelined next request stay in
// it), and where it is in its keep-alive life. Owned by one thread at a time: the one serving it,
// or the watcher while it is parked.
struct StreamServer::Connection {
  Connection(int s, int read_ms, int write_ms)
      : sock(s), stream(s, read_ms, write_ms), guard(std::make_shared<ConnectionGuard>()) {
    guard->sock = s;
  }
  int sock;
  BufferedSocketStream stream;
  std::shared_ptr<ConnectionGuard> guard;
  size_t served = 0;
  // When the wait for more of the client ends: the keep-alive limit while idle, the read timeout
  // once a request has begun (its first byte, until its header block is in).
  std::chrono::steady_clock::time_point deadline;
  bool request_begun = false;
  bool waits_out_deadline = false;  // SO_RCVTIMEO is the rest of the wait, not the linger
};

// httplib's thread pool, known to the server: a parked connection that becomes readable is
// enqueued on it; once it shuts down, parked connections are closed instead.
class StreamServer::Pool final : public httplib::TaskQueue {
 public:
  Pool(StreamServer& server, size_t threads) : server_(server), threads_(threads) {
    server_.attach_pool(this);
  }
  void enqueue(std::function<void()> fn) override { threads_.enqueue(std::move(fn)); }
  void shutdown() override {
    server_.detach_pool(this);
    threads_.shutdown();
  }

 private:
  StreamServer& server_;
  httplib::ThreadPool threads_;
};

StreamServer::StreamServer(StreamServerOptions options) : options_(std::move(options)) {
  set_thread_count(CPPHTTPLIB_THREAD_POOL_COUNT);
}

StreamServer::~StreamServer() {
  {
    std::lock_guard lock(mutex_);
    watcher_stop_ = true;
    if (wake_fd_ >= 0) {
      const uint64_t one = 1;
      (void)::write(wake_fd_, &one, sizeof(one));
    }
  }
  if (watcher_.joinable()) watcher_.join();
  std::lock_guard lock(mutex_);
  while (!parked_.empty()) close_parked_locked(parked_.begin()->first);
  while (!loop_parked_.empty()) close_parked_locked(loop_parked_.begin()->first);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (loop_epoll_fd_ >= 0) ::close(loop_epoll_fd_);
}

void StreamServer::set_thread_count(size_t threads) {
  new_task_queue = [this, threads] { return new Pool(*this, threads); };
}

void StreamServer::attach_pool(Pool* pool) {
  std::lock_guard lock(mutex_);
  pool_ = pool;
}

void StreamServer::detach_pool(Pool* pool) {
  std::lock_guard lock(mutex_);
  if (pool_ != pool) return;
  pool_ = nullptr;
  // Nothing could serve them any more.
  while (!parked_.empty()) close_parked_locked(parked_.begin()->first);
  while (!loop_parked_.empty()) close_parked_locked(loop_parked_.begin()->first);
}

StreamServer::ConnectionStats StreamServer::connection_stats() const {
  std::lock_guard lock(mutex_);
  return {open_.size(), parked_.size() + loop_parked_.size(), parks_, loop_parked_.size(),
          loop_requests_.load(std::memory_order_relaxed)};
}

void StreamServer::shut_down_connections() {
  std::lock_guard lock(mutex_);
  // The first call lets busy connections write their answer; a repeated one cuts them off.
  const bool again = closing_;
  closing_ = true;
  while (!parked_.empty()) close_parked_locked(parked_.begin()->first);
  while (!loop_parked_.empty()) close_parked_locked(loop_parked_.begin()->first);
  for (const auto& [sock, idle] : open_) ::shutdown(sock, idle || again ? SHUT_RDWR : SHUT_RD);
}

StreamServer::Connection* StreamServer::find_parked_locked(int sock) {
  if (const auto it = parked_.find(sock); it != parked_.end()) return it->second.get();
  if (const auto it = loop_parked_.find(sock); it != loop_parked_.end()) return it->second.get();
  return nullptr;
}

void StreamServer::close_parked_locked(int sock) {
  auto it = parked_.find(sock);
  int set = epoll_fd_;
  if (it == parked_.end()) {
    it = loop_parked_.find(sock);
    if (it == loop_parked_.end()) return;
    set = loop_epoll_fd_;
  }
  deadlines_.erase({it->second->deadline, sock});
  const auto guard = it->second->guard;
  (set == epoll_fd_ ? parked_ : loop_parked_).erase(it);
  ::epoll_ctl(set, EPOLL_CTL_DEL, sock, nullptr);
  close_locked(sock, *guard);
}

void StreamServer::close_locked(int sock, ConnectionGuard& guard) {
  // Untracked before it is closed, under the lock: shut_down_connections never touches a
  // descriptor number that has been closed (and possibly reused).
  open_.erase(sock);
  std::lock_guard closing(guard.mu);
  guard.closed = true;
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
}

void StreamServer::close_connection(Connection& conn) {
  std::lock_guard lock(mutex_);
  close_locked(conn.sock, *conn.guard);
}

void StreamServer::enqueue_locked(std::shared_ptr<Connection> conn) {
  if (pool_ == nullptr || stopping_locked()) return close_locked(conn->sock, *conn->guard);
  pool_->enqueue([this, conn = std::move(conn)] {
    set_thread_name(options_.thread_name);
    serve(conn);
  });
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
  // The wait between requests is a blocking recv() bounded by SO_RCVTIMEO (one system call per
  // request instead of poll() + poll() + recv()): the idle linger when idle connections are
  // parked, else the whole idle timeout. A takeover handler gets the socket back without it.
  set_receive_timeout(sock, thread_wait_ms());
  auto conn = std::make_shared<Connection>(sock, static_cast<int>(options_.read_timeout.count()),
                                           static_cast<int>(options_.write_timeout.count()));
  conn->deadline = std::chrono::steady_clock::now() + options_.keep_alive_idle;
  return serve(std::move(conn));
}

bool StreamServer::serve(std::shared_ptr<Connection> conn) {
  const int sock = conn->sock;
  BufferedSocketStream& stream = conn->stream;
  bool ok = false;
  while (conn->served < keep_alive_max_count_) {
    // Wait for the next request (or EOF, or our shutdown): its first bytes, then, when idle
    // connections are parked, its whole header block, so that a client sending its header a
    // byte at a time waits without a thread too (up to the read timeout, as it would on one).
    auto waited = stream.await_request();
    while (waited == BufferedSocketStream::Await::kReady && parks_idle() &&
           !stream.has_header_block()) {
      if (!conn->request_begun) {
        conn->request_begun = true;
        conn->deadline = std::chrono::steady_clock::now() + options_.read_timeout;
      }
      waited = stream.receive_more();
      // The end of the stream (or an error) after part of a request: whoever reads the request
      // meets it, as without this wait (httplib answers a cut-short header block with 400).
      if (waited == BufferedSocketStream::Await::kClosed) {
        waited = BufferedSocketStream::Await::kReady;
        break;
      }
    }
    if (waited == BufferedSocketStream::Await::kTimedOut) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= conn->deadline && !conn->request_begun && owes_answer(*conn)) {
        // Not idle: a request on it is still being answered (it waits for a lock, say).
        conn->deadline = now + options_.keep_alive_idle;
      }
      if (now >= conn->deadline) break;  // idle for the keep-alive limit, or too slow a request
      // Waiting for the linger: wait without a thread.
      if (park(conn)) return true;
      {
        std::lock_guard lock(mutex_);
        if (stopping_locked()) break;
      }
      // It cannot be parked: this thread waits out the rest.
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(conn->deadline - now);
      set_receive_timeout(
          sock, static_cast<int>(std::max<std::chrono::milliseconds::rep>(left.count(), 1)));
      conn->waits_out_deadline = true;
      continue;
    }
    if (waited != BufferedSocketStream::Await::kReady) break;
    // Answers go out in request order: a pipelined request waits for the one answered later.
    if (!await_deferred(*conn)) break;
    {
      std::lock_guard lock(mutex_);
      if (stopping_locked()) break;
      open_[sock] = false;
    }
    if (conn->served == 0 && takeover_ && starts_with_takeover_prefix(stream)) {
      set_receive_timeout(sock, 0);
      if (takeover_(stream)) {
        std::lock_guard lock(mutex_);
        open_.erase(sock);
        return true;  // the socket is the handler's now
      }
      break;
    }
    bool connection_closed = false;
    const bool last = conn->served + 1 == keep_alive_max_count_;
    // Loop serving: a connection whose request the loop could serve waits for its next request
    // in the loop's set; any other keeps its thread (reads, keepalives: the loop would only hand
    // them back to a thread).
    bool for_the_loop = false;
    if (loop_eligible_) {
      const std::string_view view = stream.buffered_view();
      const size_t line_end = view.find("\r\n");
      for_the_loop = line_end != std::string_view::npos && loop_eligible_(view.substr(0, line_end));
    }
    std::optional<bool> direct;
    if (direct_handler_) direct = serve_directly(stream, last, connection_closed, conn->guard);
    ok = direct ? *direct
                : process_request(stream, last, connection_closed, [](httplib::Request&) {});
    if (!stream.flush()) ok = false;
    {
      std::lock_guard lock(mutex_);
      if (closing_) break;
      open_[sock] = true;
    }
    if (!ok || connection_closed) break;
    ++conn->served;
    conn->deadline = std::chrono::steady_clock::now() + options_.keep_alive_idle;
    conn->request_begun = false;
    if (conn->waits_out_deadline) {
      set_receive_timeout(sock, thread_wait_ms());
      conn->waits_out_deadline = false;
    }
    // The next request is the loop's to read (whatever is buffered already is a pipelined
    // request, served here).
    if (for_the_loop && stream.buffered_view().empty() && hand_to_loop(conn)) return true;
  }
  close_connection(*conn);
  return ok;
}

bool StreamServer::owes_answer(Connection& conn) {
  std::lock_guard lock(conn.guard->mu);
  return conn.guard->pending;
}

bool StreamServer::start_watcher_locked() {
  if (watcher_stop_) return false;
  if (!watcher_.joinable()) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event wake{};
    wake.events = EPOLLIN;
    wake.data.fd = wake_fd_;
    if (epoll_fd_ < 0 || wake_fd_ < 0 ||
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake) != 0) {
      if (epoll_fd_ >= 0) ::close(epoll_fd_);
      if (wake_fd_ >= 0) ::close(wake_fd_);
      epoll_fd_ = wake_fd_ = -1;
      watcher_stop_ = true;  // no parking in this server: connections keep their threads
      return false;
    }
    watcher_ = std::thread([this] { watch_parked(); });
  }
  return true;
}

bool StreamServer::park(const std::shared_ptr<Connection>& conn) {
  if (!parks_idle()) return false;
  std::lock_guard lock(mutex_);
  if (stopping_locked() || pool_ == nullptr || !start_watcher_locked()) return false;
  if (!watch_locked(epoll_fd_, parked_, conn)) return false;
  ++parks_;
  return true;
}

bool StreamServer::watch_locked(int epoll_fd, std::map<int, std::shared_ptr<Connection>>& set,
                                const std::shared_ptr<Connection>& conn) {
  epoll_event event{};
  event.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  event.data.fd = conn->sock;
  if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, conn->sock, &event) != 0) return false;
  set[conn->sock] = conn;
  // Its idle deadline is the watcher's to keep, whichever set it waits in.
  deadlines_.emplace(conn->deadline, conn->sock);
  if (conn->deadline < watcher_wakes_at_) {
    const uint64_t one = 1;
    (void)::write(wake_fd_, &one, sizeof(one));
  }
  return true;
}

// The Raft loop's side of loop serving.
class StreamServer::LoopSide final : public LoopSource {
 public:
  explicit LoopSide(StreamServer& server) : server_(server) {}
  int descriptor() const override { return server_.loop_epoll_fd_; }
  void on_readable() override { server_.serve_loop_ready(); }
  void set_attached(bool attached) override { server_.set_loop_attached(attached); }

 private:
  StreamServer& server_;
};

void StreamServer::enable_loop_serving(std::function<bool(std::string_view)> eligible) {
  loop_epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (loop_epoll_fd_ < 0) {
    spdlog::warn("client connections: epoll_create1 failed ({}); served by threads only",
                 std::strerror(errno));
    return;
  }
  loop_eligible_ = std::move(eligible);
  loop_side_ = std::make_unique<LoopSide>(*this);
}

LoopSource* StreamServer::loop_source() {
  return loop_side_.get();
}

void StreamServer::set_loop_attached(bool attached) {
  std::lock_guard lock(mutex_);
  loop_attached_ = attached;
  if (attached) return;
  // Nobody polls the loop's set any more: its connections are the pool's again.
  while (!loop_parked_.empty()) {
    auto it = loop_parked_.begin();
    std::shared_ptr<Connection> conn = std::move(it->second);
    loop_parked_.erase(it);
    deadlines_.erase({conn->deadline, conn->sock});
    ::epoll_ctl(loop_epoll_fd_, EPOLL_CTL_DEL, conn->sock, nullptr);
    enqueue_locked(std::move(conn));
  }
}

bool StreamServer::hand_to_loop(const std::shared_ptr<Connection>& conn) {
  std::lock_guard lock(mutex_);
  if (!loop_attached_ || stopping_locked() || pool_ == nullptr || !start_watcher_locked()) {
    return false;
  }
  return watch_locked(loop_epoll_fd_, loop_parked_, conn);
}

void StreamServer::to_pool(std::shared_ptr<Connection> conn) {
  std::lock_guard lock(mutex_);
  enqueue_locked(std::move(conn));
}

void StreamServer::serve_loop_ready() {
  epoll_event events[64];
  const int n = ::epoll_wait(loop_epoll_fd_, events, 64, 0);
  for (int i = 0; i < n; ++i) {
    std::shared_ptr<Connection> conn;
    {
      std::lock_guard lock(mutex_);
      const auto it = loop_parked_.find(events[i].data.fd);
      if (it == loop_parked_.end()) continue;  // closed meanwhile (idle, or a shutdown)
      conn = std::move(it->second);
      loop_parked_.erase(it);
      deadlines_.erase({conn->deadline, conn->sock});
      ::epoll_ctl(loop_epoll_fd_, EPOLL_CTL_DEL, conn->sock, nullptr);
    }
    serve_on_loop(std::move(conn));
  }
}

void StreamServer::serve_on_loop(std::shared_ptr<Connection> conn) {
  BufferedSocketStream& stream = conn->stream;
  const auto got = stream.receive_available();
  // A request not all there yet (a client that writes its body after its header) waits for the
  // rest here too, within the read timeout as on a thread.
  auto wait_for_the_rest = [&] {
    if (!conn->request_begun) {
      conn->request_begun = true;
      conn->deadline = std::chrono::steady_clock::now() + options_.read_timeout;
    }
    if (!hand_to_loop(conn)) to_pool(std::move(conn));
  };
  if (got == BufferedSocketStream::Await::kTimedOut && stream.buffered_view().empty()) {
    if (!hand_to_loop(conn)) to_pool(std::move(conn));  // nothing there after all
    return;
  }
  const std::string_view view = stream.buffered_view();
  const size_t line_end = view.find("\r\n");
  if (got != BufferedSocketStream::Await::kClosed && line_end == std::string_view::npos &&
      view.size() < BufferedSocketStream::kBufferBytes &&
      view.find('\n') == std::string_view::npos) {
    return wait_for_the_rest();
  }
  // The loop never waits on a client: it serves only a request whose line it can see now, on a
  // connection that owes no answer and has read every answer written to it (so this one's, a
  // few hundred bytes, goes into an empty send buffer at once).
  int unsent = -1;
  const bool loop_serves =
      got != BufferedSocketStream::Await::kClosed && line_end != std::string_view::npos &&
      conn->served + 1 < keep_alive_max_count_ && loop_eligible_(view.substr(0, line_end)) &&
      !owes_answer(*conn) && ::ioctl(conn->sock, SIOCOUTQ, &unsent) == 0 && unsent == 0;
  if (!loop_serves) return to_pool(std::move(conn));
  bool stopping;
  {
    std::lock_guard lock(mutex_);
    stopping = stopping_locked();
    if (!stopping) open_[conn->sock] = false;
  }
  if (stopping) return to_pool(std::move(conn));  // (which closes it)
  // No read here waits (a request not whole in the buffer is declined untouched), and a request
  // whose answer could not be deferred is declined too: a thread serves those.
  stream.set_read_timeout_ms(0);
  bool connection_closed = false;
  bool incomplete = false;
  // Counted before its answer can reach the client.
  loop_requests_.fetch_add(1, std::memory_order_relaxed);
  const auto direct =
      serve_directly(stream, false, connection_closed, conn->guard, true, &incomplete);
  if (!direct) loop_requests_.fetch_sub(1, std::memory_order_relaxed);
  stream.set_read_timeout_ms(static_cast<int>(options_.read_timeout.count()));
  bool ok = direct.value_or(false);
  if (direct && !stream.flush()) ok = false;
  {
    std::lock_guard lock(mutex_);
    open_[conn->sock] = true;
    if (closing_) ok = false;
  }
  if (!direct) return incomplete ? wait_for_the_rest() : to_pool(std::move(conn));
  if (!ok || connection_closed) return close_connection(*conn);
  ++conn->served;
  conn->deadline = std::chrono::steady_clock::now() + options_.keep_alive_idle;
  conn->request_begun = false;
  if (!stream.buffered_view().empty() || !hand_to_loop(conn)) to_pool(std::move(conn));
}

void StreamServer::watch_parked() {
  set_thread_name(options_.idle_thread_name);
  using Clock = std::chrono::steady_clock;
  epoll_event events[64];
  int timeout_ms = -1;
  while (true) {
    const int n = ::epoll_wait(epoll_fd_, events, 64, timeout_ms);
    if (n < 0 && errno != EINTR) {
      spdlog::error("idle connections: epoll_wait failed: {}", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::lock_guard lock(mutex_);
    if (watcher_stop_) return;
    for (int i = 0; i < n; ++i) {
      const int sock = events[i].data.fd;
      if (sock == wake_fd_) {
        uint64_t count;
        (void)::read(wake_fd_, &count, sizeof(count));
        continue;
      }
      const auto it = parked_.find(sock);
      if (it == parked_.end()) continue;  // closed meanwhile
      // Readable (a request, EOF or an error): back to a thread, which finds out which.
      std::shared_ptr<Connection> conn = std::move(it->second);
      deadlines_.erase({conn->deadline, sock});
      parked_.erase(it);
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, sock, nullptr);
      enqueue_locked(std::move(conn));
    }
    // Idle for keep_alive_idle, or a request's header block not in within the read timeout:
    // closed, as a connection waiting on its thread would be.
    const auto now = Clock::now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      const int sock = deadlines_.begin()->second;
      Connection* parked = find_parked_locked(sock);
      if (parked != nullptr && !parked->request_begun && owes_answer(*parked)) {
        // Not idle: a request on it is still being answered.
        deadlines_.erase(deadlines_.begin());
        parked->deadline = now + options_.keep_alive_idle;
        deadlines_.emplace(parked->deadline, sock);
        continue;
      }
      close_parked_locked(sock);
    }
    if (deadlines_.empty()) {
      watcher_wakes_at_ = Clock::time_point::max();
      timeout_ms = -1;
    } else {
      watcher_wakes_at_ = deadlines_.begin()->first;
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(watcher_wakes_at_ - now);
      timeout_ms = static_cast<int>(std::max<std::chrono::milliseconds::rep>(wait.count(), 1));
    }
  }
}

namespace {
// The request a direct handler is running for on this thread, and whether it deferred its answer.
struct DeferSlot {
  StreamServer* server = nullptr;
  const std::shared_ptr<ConnectionGuard>* guard = nullptr;
  const httplib::Request* req = nullptr;
  bool allowed = false;
  std::shared_ptr<DeferredAnswer> taken;
};
thread_local DeferSlot* tl_defer_slot = nullptr;
}  // namespace

std::shared_ptr<DeferredAnswer> StreamServer::defer_answer() {
  DeferSlot* slot = tl_defer_slot;
  if (slot == nullptr || !slot->allowed || slot->taken) return nullptr;
  slot->taken = std::make_shared<DeferredAnswer>(*slot->server, *slot->guard, *slot->req);
  return slot->taken;
}

DeferredAnswer::DeferredAnswer(StreamServer& server, std::shared_ptr<ConnectionGuard> guard,
                               const httplib::Request& req)
    : server_(server), guard_(std::move(guard)) {
  req_.method = req.method;
  req_.path = req.path;
  req_.version = req.version;
  std::lock_guard lock(guard_->mu);
  guard_->pending = true;
}

DeferredAnswer::~DeferredAnswer() {
  std::lock_guard lock(guard_->mu);
  if (sent_) return;
  if (!guard_->closed) ::shutdown(guard_->sock, SHUT_RDWR);
  guard_->pending = false;
  guard_->answered.notify_all();
}

bool DeferredAnswer::send(httplib::Response response) {
  const std::string out = server_.format_direct_response(false, req_, response);
  std::lock_guard lock(guard_->mu);
  if (sent_) return false;
  sent_ = true;
  guard_->pending = false;
  guard_->answered.notify_all();
  if (guard_->closed) return false;
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::send(guard_->sock, out.data() + done, out.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::shutdown(guard_->sock, SHUT_RDWR);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

bool StreamServer::await_deferred(Connection& conn) {
  ConnectionGuard& guard = *conn.guard;
  std::unique_lock lock(guard.mu);
  while (guard.pending) {
    lock.unlock();
    {
      std::lock_guard server_lock(mutex_);
      if (closing_) return false;
    }
    lock.lock();
    guard.answered.wait_for(lock, std::chrono::milliseconds(100), [&] { return !guard.pending; });
  }
  return true;
}

std::optional<bool> StreamServer::serve_directly(BufferedSocketStream& stream, bool last,
                                                 bool& connection_closed,
                                                 const std::shared_ptr<ConnectionGuard>& guard,
                                                 bool only_deferrable, bool* incomplete) {
  // httplib answers a socket it cannot select() on with 500 (it is built without poll support);
  // such a connection stays with it so that every connection is answered alike.
  if (stream.socket() >= FD_SETSIZE) return std::nullopt;
  // Without an exception handler httplib writes the exception into a header of its own making;
  // a server with default headers, routing hooks, a logger or mounted files has httplib features
  // the direct path does not reproduce.
  if (!exception_handler_copy_ || httplib_extras_) return std::nullopt;
  // The whole header block, from the buffer (reading more while it is incomplete).
  size_t head_end;
  while (true) {
    const std::string_view got = stream.buffered_view();
    head_end = got.find("\r\n\r\n");
    if (head_end != std::string_view::npos) break;
    // A bare LF ends lines for nobody here: httplib's reader handles (skips) such lines.
    for (size_t i = got.find('\n'); i != std::string_view::npos; i = got.find('\n', i + 1)) {
      if (i == 0 || got[i - 1] != '\r') return std::nullopt;
    }
    if (got.size() >= BufferedSocketStream::kBufferBytes) return std::nullopt;
    if (!stream.read_more()) {
      if (incomplete != nullptr) *incomplete = true;
      return std::nullopt;
    }
  }
  const std::string_view head = stream.buffered_view().substr(0, head_end + 2);
  const size_t line_end = head.find("\r\n");
  const auto line = parse_plain_request_line(head.substr(0, line_end));
  if (!line) return std::nullopt;

  httplib::Request req;
  NotedHeaders noted;
  for (size_t at = line_end + 2; at < head.size();) {
    const size_t end = head.find("\r\n", at);
    const std::string_view header = head.substr(at, end - at);
    if (header.find('\n') != std::string_view::npos || !add_header(header, req.headers, noted)) {
      return std::nullopt;
    }
    at = end + 2;
  }
  // httplib parses multipart forms itself (Request::is_multipart_form_data).
  if (noted.content_type && noted.content_type->rfind("multipart/form-data", 0) == 0) {
    return std::nullopt;
  }
  // A client that accepts compressed answers (Go's and Python's HTTP clients say so by default)
  // gets httplib's compression on a GET, whose answer may be large (a list, /metrics). A POST's
  // answer is a small JSON document: the direct path answers it uncompressed, which the header
  // allows unless it refuses "identity" (a long wait then holds no thread for these clients too).
  if (noted.accept_encoding &&
      (line->method != "POST" || !identity_acceptable(*noted.accept_encoding))) {
    return std::nullopt;
  }
  req.method = std::string(line->method);
  req.version = std::string(line->version);
  req.target = std::string(line->target);
  // (line and head point into the buffer, which read_more() below may move: from here on only
  // req's own copies are used.)
  const size_t query_at = req.target.find('?');
  req.path = req.target.substr(0, query_at);
  if (req.path.find('%') != std::string::npos)
    req.path = httplib::detail::decode_url(req.path, false);
  // httplib's handler patterns (".*") match no line break, so such a path is its 404.
  if (req.path.find_first_of("\r\n") != std::string::npos) return std::nullopt;
  if (query_at != std::string::npos) {
    httplib::detail::parse_query_text(req.target.substr(query_at + 1), req.params);
  }
  size_t body_length = 0;
  const size_t lengths = noted.content_lengths;
  if (lengths > 1) return std::nullopt;
  if (lengths == 1) {
    const auto length = parse_length(noted.content_length);
    if (!length || *length > payload_max_length_) return std::nullopt;
    body_length = *length;
  }
  // httplib reads no body of a GET or OPTIONS, and reads a POST, PUT or PATCH without a length
  // until the end of the stream (unless its handler reads none): both stay with it.
  const bool takes_body = req.method != "GET" && req.method != "OPTIONS";
  if (!takes_body && body_length > 0) return std::nullopt;
  if (takes_body && lengths == 0 && req.method != "DELETE") return std::nullopt;
  const size_t request_bytes = head_end + 4 + body_length;
  if (request_bytes > BufferedSocketStream::kBufferBytes) return std::nullopt;
  while (stream.buffered_view().size() < request_bytes) {
    if (!stream.read_more()) {
      if (incomplete != nullptr) *incomplete = true;
      return std::nullopt;
    }
  }
  req.body.assign(stream.buffered_view().substr(head_end + 4, body_length));

  stream.get_remote_ip_and_port(req.remote_addr, req.remote_port);
  req.set_header("REMOTE_ADDR", req.remote_addr);
  req.set_header("REMOTE_PORT", std::to_string(req.remote_port));
  stream.get_local_ip_and_port(req.local_addr, req.local_port);
  req.set_header("LOCAL_ADDR", req.local_addr);
  req.set_header("LOCAL_PORT", std::to_string(req.local_port));

  httplib::Response res;
  res.version = "HTTP/1.1";
  const std::string connection = noted.connection.value_or("");
  DeferSlot slot;
  slot.server = this;
  slot.guard = &guard;
  slot.req = &req;
  slot.allowed =
      !last && connection != "close" && !(req.version == "HTTP/1.0" && connection != "Keep-Alive");
  if (only_deferrable && !slot.allowed) return std::nullopt;
  tl_defer_slot = &slot;
  bool threw = false;
  try {
    if (!direct_handler_(req, res)) {
      tl_defer_slot = nullptr;
      return std::nullopt;  // declined: httplib serves it
    }
  } catch (...) {
    threw = true;
    exception_handler_copy_(req, res, std::current_exception());
  }
  tl_defer_slot = nullptr;
  stream.consume(request_bytes);
  direct_requests_.fetch_add(1, std::memory_order_relaxed);
  if (slot.taken) {
    // Answered later by whoever holds the DeferredAnswer; a handler that threw after taking it
    // answers with the exception handler's response now (a later send is then refused).
    if (threw) slot.taken->send(std::move(res));
    return true;
  }
  if (connection == "close" || (req.version == "HTTP/1.0" && connection != "Keep-Alive")) {
    connection_closed = true;
  }
  if (res.status == -1) res.status = 200;
  return write_direct_response(stream, last || connection == "close", req, res);
}

bool StreamServer::write_direct_response(BufferedSocketStream& stream, bool close_connection,
                                         const httplib::Request& req, httplib::Response& res) {
  const std::string out = format_direct_response(close_connection, req, res);
  return stream.write(out.data(), out.size()) == static_cast<ssize_t>(out.size());
}

std::string StreamServer::format_direct_response(bool close_connection, const httplib::Request& req,
                                                 httplib::Response& res) {
  if (res.content_provider_) {
    // A direct handler must decline an answer it would stream; this one did not.
    res = httplib::Response();
    res.status = 500;
  }
  // As httplib::Server::write_response_core does for a routed request without ranges or
  // compression.
  if (res.status >= 400 && error_handler_copy_) error_handler_copy_(req, res);
  if (!res.body.empty()) res.set_header("Content-Length", std::to_string(res.body.size()));
  if (close_connection) {
    res.set_header("Connection", "close");
  } else {
    res.set_header("Keep-Alive", "timeout=" + std::to_string(keep_alive_timeout_sec_) +
                                     ", max=" + std::to_string(keep_alive_max_count_));
  }
  if (!res.has_header("Content-Type") && !res.body.empty()) {
    res.set_header("Content-Type", "text/plain");
  }
  if (!res.has_header("Content-Length") && res.body.empty()) {
    res.set_header("Content-Length", "0");
  }
  std::string out;
  out.reserve(256 + res.body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(res.status);
  out += ' ';
  out += status_message(res.status);
  out += "\r\n";
  for (const auto& [name, value] : res.headers) {
    // httplib formats each with "%s: %s": a name or value stops at an embedded NUL.
    out += name.c_str();
    out += ": ";
    out += value.c_str();
    out += "\r\n";
  }
  out += "\r\n";
  out += res.body;
  return out;
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
