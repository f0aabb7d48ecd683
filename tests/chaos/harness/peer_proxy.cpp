#include "peer_proxy.h"

#include <httplib.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <deque>
#include <limits>
#include <string>
#include <string_view>

#include "cluster.h"
#include "raft/transport/peer_stream.h"
#include "raft/transport/stream_server.h"

namespace raftlock::chaos {

void NetworkRules::heal() {
  std::lock_guard lock(mu_);
  rules_.clear();
}

void NetworkRules::set(int from, int to, LinkRule rule) {
  std::lock_guard lock(mu_);
  rules_[{from, to}] = rule;
}

void NetworkRules::cut(int from, int to) {
  std::lock_guard lock(mu_);
  rules_[{from, to}].cut = true;
}

void NetworkRules::split(const std::set<int>& side_a, const std::set<int>& side_b) {
  std::lock_guard lock(mu_);
  for (int a : side_a) {
    for (int b : side_b) {
      rules_[{a, b}].cut = true;
      rules_[{b, a}].cut = true;
    }
  }
}

void NetworkRules::slow_all(const std::set<int>& nodes, int delay_min_ms, int delay_max_ms) {
  std::lock_guard lock(mu_);
  for (int a : nodes) {
    for (int b : nodes) {
      if (a == b) continue;
      rules_[{a, b}].delay_min_ms = delay_min_ms;
      rules_[{a, b}].delay_max_ms = delay_max_ms;
    }
  }
}

LinkRule NetworkRules::rule(int from, int to) const {
  std::lock_guard lock(mu_);
  auto it = rules_.find({from, to});
  return it == rules_.end() ? LinkRule{} : it->second;
}

int NetworkRules::random_delay_ms(const LinkRule& rule) {
  if (rule.delay_max_ms <= 0) return 0;
  std::lock_guard lock(mu_);
  return std::uniform_int_distribution<int>(rule.delay_min_ms, rule.delay_max_ms)(rng_);
}

namespace {

using Clock = std::chrono::steady_clock;
using raft::transport::BufferedSocketStream;

constexpr const char* kFromHeader = "X-Raftlock-From";
// Within one frame or one handshake answer: how long a read or write may wait.
constexpr int kIoTimeoutMs = 15000;
constexpr auto kConnectTimeout = std::chrono::milliseconds(1000);
// Frames held back by delays, per stream, before the proxy stops reading from the sender (so a
// sender feels backpressure as it would from a slow node instead of the proxy buffering forever).
constexpr size_t kMaxQueuedBytes = 64 * 1024 * 1024;

// How long a dropped request is held before the sender is told it failed: a lost packet is only
// noticed at a timeout, but holding every request for the sender's full timeout would only slow
// the test down.
int drop_hold_ms() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return std::uniform_int_distribution<int>(50, 400)(rng);
}

void answer_dropped(httplib::Response& res) {
  res.status = 503;
  res.set_content(
      "{\"error\":{\"code\":\"unavailable\",\"message\":\"dropped by the chaos proxy\"}}",
      "application/json");
}

const char* reason_phrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    default:
      return "Refused";
  }
}

// Refuses a stream request; the connection closes after it.
void refuse_stream(BufferedSocketStream& sender, int status) {
  const std::string answer = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) +
                             "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  (void)sender.write(answer.data(), answer.size());
  (void)sender.flush();
}

// Sends all of `data` on a blocking socket, each wait for room bounded by kIoTimeoutMs.
bool send_all(int sock, std::string_view data) {
  while (!data.empty()) {
    ssize_t n;
    do {
      n = ::send(sock, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{sock, POLLOUT, 0};
      int ready;
      do {
        ready = ::poll(&p, 1, kIoTimeoutMs);
      } while (ready < 0 && errno == EINTR);
      if (ready <= 0 || (p.revents & (POLLERR | POLLHUP)) != 0) return false;
      continue;
    }
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

enum class Readable { kFirst, kSecond, kTimeout };
// Waits until `first` or `second` is readable (data, end of stream, error or a shutdown).
Readable wait_readable(int first, int second, int timeout_ms) {
  pollfd fds[2] = {{first, POLLIN, 0}, {second, POLLIN, 0}};
  int ready;
  do {
    ready = ::poll(fds, 2, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) return Readable::kTimeout;
  return fds[0].revents != 0 ? Readable::kFirst : Readable::kSecond;
}

}  // namespace

// One relayed stream: the sender's connection (owned by the server), the connection to the target
// node (owned here), and the frames waiting for their delivery time. The connection thread reads
// frames and queues them; a delivery thread writes them to the target when they are due.
class StreamRelay {
 public:
  StreamRelay(NetworkRules& rules, int from, int to, int sender_fd)
      : rules_(rules), from_(from), to_(to), sender_fd_(sender_fd) {}
  ~StreamRelay() {
    if (target_fd_ >= 0) ::close(target_fd_);
  }
  StreamRelay(const StreamRelay&) = delete;
  StreamRelay& operator=(const StreamRelay&) = delete;

  // Adopts the connection to the target; false (and closes it) if the relay was closed meanwhile.
  bool adopt_target(int fd) {
    std::lock_guard lock(mu_);
    target_fd_ = fd;
    if (closed_) ::shutdown(fd, SHUT_RDWR);
    return !closed_;
  }
  int target_fd() const { return target_fd_; }

  // Ends the relay at once: queued frames are abandoned, both connections shut down (which wakes
  // every wait on them). Idempotent; called by either thread or by PeerProxy::stop().
  void close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    ::shutdown(sender_fd_, SHUT_RDWR);
    if (target_fd_ >= 0) ::shutdown(target_fd_, SHUT_RDWR);
    wake_.notify_all();
  }
  bool closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }

  // A frame arrived from the sender (`frame` holds its size prefix and body): applies the link's
  // rule now. Waits while too much is queued. False when the relay is closed.
  bool arrived(std::string frame) {
    const LinkRule rule = rules_.rule(from_, to_);
    if (rule.cut) {  // lost on the way; the sender is not told
      rules_.dropped.fetch_add(1);
      return !closed();
    }
    const int delay = rules_.random_delay_ms(rule);
    if (delay > 0) {
      rules_.delayed.fetch_add(1);
    } else {
      rules_.passed.fetch_add(1);
    }
    std::unique_lock lock(mu_);
    wake_.wait(lock, [&] { return closed_ || queued_bytes_ <= kMaxQueuedBytes; });
    if (closed_) return false;
    // Frames of one stream keep their order: none is delivered before the one ahead of it.
    const Clock::time_point due =
        std::max(Clock::now() + std::chrono::milliseconds(delay), last_due_);
    last_due_ = due;
    queued_bytes_ += frame.size();
    queue_.push_back({due, std::move(frame)});
    wake_.notify_all();
    return true;
  }

  // The sender closed its side: what is queued is still delivered, then the delivery ends.
  void input_ended() {
    std::lock_guard lock(mu_);
    input_ended_ = true;
    wake_.notify_all();
  }

  // The delivery thread: writes each frame to the target when it is due, unless the link was cut
  // meanwhile (then the frame is lost). A failed write closes the relay.
  void deliver() {
    std::unique_lock lock(mu_);
    while (true) {
      wake_.wait(lock, [&] { return closed_ || input_ended_ || !queue_.empty(); });
      if (closed_) return;
      if (queue_.empty()) return;  // input ended and everything was delivered
      const Clock::time_point due = queue_.front().due;
      if (Clock::now() < due) {
        wake_.wait_until(lock, due, [&] { return closed_; });
        continue;
      }
      std::string frame = std::move(queue_.front().frame);
      queue_.pop_front();
      queued_bytes_ -= frame.size();
      wake_.notify_all();  // room for the reader
      lock.unlock();
      bool ok = true;
      if (rules_.rule(from_, to_).cut) {  // cut while it was in flight
        rules_.dropped.fetch_add(1);
      } else {
        ok = send_all(target_fd_, frame);
      }
      if (!ok) return close();
      lock.lock();
    }
  }

 private:
  struct Pending {
    Clock::time_point due;
    std::string frame;
  };

  NetworkRules& rules_;
  const int from_;
  const int to_;
  const int sender_fd_;
  int target_fd_ = -1;  // set once, before the delivery thread starts

  std::mutex mu_;  // guards what follows
  std::condition_variable wake_;
  bool closed_ = false;
  bool input_ended_ = false;
  std::deque<Pending> queue_;
  size_t queued_bytes_ = 0;
  Clock::time_point last_due_{};
};

PeerProxy::PeerProxy(int to, std::shared_ptr<NetworkRules> rules)
    : to_(to), rules_(std::move(rules)) {
  raft::transport::StreamServerOptions options;
  options.read_timeout = std::chrono::seconds(30);
  options.write_timeout = std::chrono::seconds(30);
  server_ = std::make_unique<raft::transport::StreamServer>(options);
}

PeerProxy::~PeerProxy() {
  stop();
}

int PeerProxy::bind_free_port() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int port = testing::free_port();
    if (server_->bind_to_port("127.0.0.1", port)) {
      listen_port_ = port;
      return port;
    }
  }
  return 0;
}

bool PeerProxy::pause_unless_stopping(int ms) {
  std::unique_lock lock(mu_);
  return !stopping_cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping_; });
}

bool PeerProxy::track(StreamRelay* relay) {
  std::lock_guard lock(mu_);
  if (stopping_) return false;
  streams_.insert(relay);
  return true;
}

void PeerProxy::untrack(StreamRelay* relay) {
  std::lock_guard lock(mu_);
  streams_.erase(relay);
}

void PeerProxy::close_all_streams() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  stopping_cv_.notify_all();
  for (StreamRelay* relay : streams_) relay->close();
  for (httplib::Client* client : forwarding_) client->stop();
}

void PeerProxy::serve_stream(BufferedSocketStream& sender) {
  namespace transport = raft::transport;
  auto request = transport::read_header_block(sender);
  if (!request) return;
  const std::string from_text = transport::header_value(*request, kFromHeader);
  const std::string cluster_id = transport::header_value(*request, transport::kClusterHeader);
  raft::NodeId from = 0;
  const auto [end, error] =
      std::from_chars(from_text.data(), from_text.data() + from_text.size(), from);
  if (error != std::errc() || end != from_text.data() + from_text.size() || from == 0 ||
      from > static_cast<raft::NodeId>(std::numeric_limits<int>::max())) {
    return refuse_stream(sender, 400);  // the proxy cannot tell which link this is
  }

  StreamRelay relay(*rules_, static_cast<int>(from), to_, sender.socket());
  if (!track(&relay)) return refuse_stream(sender, 503);
  struct Untrack {
    PeerProxy* proxy;
    StreamRelay* relay;
    ~Untrack() { proxy->untrack(relay); }
  } untrack{this, &relay};

  // The handshake with the target, as PeerTransport does it, but with the connection tracked
  // before waiting for the answer, so stop() can interrupt a paused target.
  const transport::Connected connected =
      transport::connect_with_timeout("127.0.0.1", target_port_, kConnectTimeout);
  if (connected.fd < 0) return refuse_stream(sender, 503);
  if (!relay.adopt_target(connected.fd)) return refuse_stream(sender, 503);
  const int target = relay.target_fd();
  int status = 0;
  bool accepted = false;
  {
    BufferedSocketStream to_target(target, kIoTimeoutMs, kIoTimeoutMs);
    const std::string open = transport::stream_request("127.0.0.1", from, cluster_id);
    if (to_target.write(open.data(), open.size()) < 0 || !to_target.flush()) {
      return refuse_stream(sender, 503);
    }
    // The sender writes nothing before it is answered: its socket turning readable means it
    // gave up (closed), and there is no one left to answer.
    const Readable first = wait_readable(target, sender.socket(), kIoTimeoutMs);
    if (first == Readable::kSecond) return;
    if (first == Readable::kTimeout) return refuse_stream(sender, 503);
    auto answer = transport::read_header_block(to_target);
    if (!answer) return refuse_stream(sender, 503);
    status = transport::answer_status(*answer);
    accepted = status == 200 && transport::header_value(*answer, transport::kStreamHeader) == "1";
  }
  if (!accepted) {
    // A refusal (404 from a node without streams, 403 from another cluster...) is passed on;
    // an answer that is neither a refusal nor an acceptance is the target's fault.
    return refuse_stream(sender, status >= 300 && status <= 599 ? status : 502);
  }
  const std::string accept = transport::stream_accept_answer();
  if (sender.write(accept.data(), accept.size()) < 0 || !sender.flush()) return;

  std::thread delivery([&relay] { relay.deliver(); });
  std::string body;
  bool sender_ended = false;
  while (!relay.closed()) {
    // Between frames the sender may be quiet for long; meanwhile watch the target too (it never
    // writes on a stream: readable means it closed). A stop() shuts both down.
    sender.set_read_timeout_ms(0);
    if (!sender.is_readable()) {
      if (wait_readable(sender.socket(), target, -1) != Readable::kFirst) break;
      continue;
    }
    sender.set_read_timeout_ms(kIoTimeoutMs);
    const transport::FrameRead read = transport::read_frame(sender, kMaxFrameBytes, body);
    if (read == transport::FrameRead::kClosed) {
      sender_ended = true;
      break;
    }
    if (read == transport::FrameRead::kTooLarge) break;
    std::string frame;
    frame.reserve(body.size() + 4);
    transport::append_frame(frame, body);
    if (!relay.arrived(std::move(frame))) break;
  }
  if (sender_ended) {
    relay.input_ended();  // what was sent before the end is still delivered (stop() cuts it short)
  } else {
    relay.close();  // too large a frame, the target closed, a failed delivery, or stop()
  }
  delivery.join();
  relay.close();
}

void PeerProxy::start() {
  server_->set_thread_count(96);
  server_->set_tcp_nodelay(true);
  server_->set_keep_alive_max_count(1000000);
  server_->set_payload_max_length(kMaxFrameBytes);
  // A stream stays on its connection thread; the server closes the connection afterwards.
  server_->set_takeover(std::string(raft::transport::kStreamRequestPrefix),
                        [this](BufferedSocketStream& sender) {
                          serve_stream(sender);
                          return false;
                        });
  auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    int from = 0;
    try {
      from = std::stoi(req.get_header_value(kFromHeader));
    } catch (...) {
      from = 0;
    }
    LinkRule rule = rules_->rule(from, to_);
    if (rule.cut) {
      rules_->dropped.fetch_add(1);
      (void)pause_unless_stopping(drop_hold_ms());
      return answer_dropped(res);
    }
    if (const int delay = rules_->random_delay_ms(rule); delay > 0) {
      rules_->delayed.fetch_add(1);
      if (!pause_unless_stopping(delay) || rules_->rule(from, to_).cut) {
        // cut while it was in flight (or the proxy is stopping)
        rules_->dropped.fetch_add(1);
        return answer_dropped(res);
      }
    } else {
      rules_->passed.fetch_add(1);
    }
    thread_local std::map<int, std::unique_ptr<httplib::Client>> clients;
    auto& client = clients[target_port_];
    if (!client) {
      client = std::make_unique<httplib::Client>("127.0.0.1", target_port_);
      client->set_keep_alive(true);
      client->set_tcp_nodelay(true);
      client->set_connection_timeout(0, 300000);
      client->set_read_timeout(15, 0);
      client->set_write_timeout(15, 0);
    }
    httplib::Headers headers;
    for (const auto& [name, value] : req.headers) {
      if (name.rfind("X-Raftlock", 0) == 0 || name == "Accept") headers.emplace(name, value);
    }
    std::string target = req.path;
    if (!req.params.empty()) target += "?" + httplib::detail::params_to_query_str(req.params);
    const std::string content_type = req.get_header_value("Content-Type");
    {
      // Registered while its request is in flight, so stop() can interrupt it.
      std::lock_guard lock(mu_);
      if (stopping_) return answer_dropped(res);
      forwarding_.insert(client.get());
    }
    httplib::Result result =
        req.method == "GET"      ? client->Get(target, headers)
        : req.method == "DELETE" ? client->Delete(target, headers, req.body, content_type)
        : req.method == "PUT"    ? client->Put(target, headers, req.body, content_type)
                                 : client->Post(target, headers, req.body, content_type);
    {
      std::lock_guard lock(mu_);
      forwarding_.erase(client.get());
    }
    if (!result) {
      client.reset();
      res.status = 503;
      res.set_content("{\"error\":{\"code\":\"unavailable\",\"message\":\"node unreachable\"}}",
                      "application/json");
      return;
    }
    res.status = result->status;
    for (const auto& [name, value] : result->headers) {
      if (name == "Retry-After" || name == "Allow") res.set_header(name, value);
    }
    res.set_content(result->body, result->get_header_value("Content-Type"));
  };
  server_->Get(".*", handler);
  server_->Post(".*", handler);
  server_->Delete(".*", handler);
  server_->Put(".*", handler);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // httplib's stop() is a no-op until the accept loop runs; wait for it so stop() can't miss it.
  for (int i = 0; i < 2000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void PeerProxy::stop() {
  if (!server_) return;
  close_all_streams();
  if (thread_.joinable()) {
    // listen_after_bind() returns once every connection handler has finished; keep stopping and
    // shutting connections down (and closing relays that started meanwhile) until it does.
    std::atomic<bool> server_done{false};
    std::thread stopper([&] {
      while (!server_done.load()) {
        server_->stop();
        server_->shut_down_connections();
        close_all_streams();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
    thread_.join();
    server_done = true;
    stopper.join();
  }
  server_.reset();
}

}  // namespace raftlock::chaos
