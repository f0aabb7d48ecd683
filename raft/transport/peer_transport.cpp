#include "raft/transport/peer_transport.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <optional>
#include <random>
#include <set>
#include <utility>

#include "common/thread_name.h"
#include "raft/transport/codec.h"
#include "raft/transport/peer_stream.h"
#include "raft/transport/stream_server.h"

namespace raftlock::raft::transport {

namespace {

constexpr const char* kMessagesPath = "/raft/v1/messages";
constexpr const char* kSnapshotPath = "/raft/v1/snapshot";
constexpr const char* kContentType = "application/msgpack";
// Names the sending node on every peer request (logs, and fault-injecting proxies in tests).
constexpr const char* kFromHeader = "X-Raftlock-From";
// A transfer that sees no chunk for this long is abandoned by the receiver.
constexpr auto kSnapshotAssemblyIdle = std::chrono::seconds(30);
// A request that fails this quickly on a reused connection is retried once at once: the peer
// most likely closed an idle keep-alive connection just as we reused it.
constexpr auto kQuickFailure = std::chrono::milliseconds(100);
// A peer that answered a stream request with 404 (an older node) gets one POST per batch; after
// this long a stream is tried again (it may have been upgraded).
constexpr auto kPostFallbackPeriod = std::chrono::seconds(30);
// An inbound stream that brings nothing for this long is closed (the sender opens a new one).
constexpr auto kStreamIdle = std::chrono::seconds(60);

struct HostPort {
  std::string host;
  int port = 0;
};

Result<HostPort> parse_host_port(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "peer address '" + address + "' is not HOST:PORT");
  }
  HostPort hp;
  hp.host = address.substr(0, colon);
  if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']') {
    hp.host = hp.host.substr(1, hp.host.size() - 2);
  }
  const char* first = address.data() + colon + 1;
  const char* last = address.data() + address.size();
  auto [ptr, ec] = std::from_chars(first, last, hp.port);
  if (ec != std::errc() || ptr != last || hp.port < 0 || hp.port > 65535) {
    return make_error(ErrorCode::kInvalidArgument,
                      "peer address '" + address + "' has an invalid port");
  }
  return hp;
}

// httplib only says "bind failed"; bind a probe socket the same way to learn why.
std::string explain_bind_failure(const HostPort& hp, const std::string& address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  std::string port = std::to_string(hp.port);
  if (getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
    return "peer address " + address + " cannot be resolved";
  }
  int err = 0;
  int sock = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
  if (sock < 0) {
    err = errno;
  } else {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (bind(sock, found->ai_addr, found->ai_addrlen) != 0) err = errno;
    close(sock);
  }
  freeaddrinfo(found);
  switch (err) {
    case EADDRINUSE:
      return "peer address " + address + " is in use";
    case EACCES:
      return "peer address " + address + " needs privileges to bind";
    case EADDRNOTAVAIL:
      return "peer address " + address + " is not an address of this host";
    case 0:
      return "peer address " + address + " could not be bound";
    default:
      return "peer address " + address + " could not be bound: " + std::strerror(err);
  }
}

template <typename Duration>
void set_client_timeouts(httplib::ClientImpl& client, Duration connect, Duration request) {
  auto usec = [](auto d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  };
  client.set_connection_timeout(usec(connect) / 1000000, usec(connect) % 1000000);
  client.set_read_timeout(usec(request) / 1000000, usec(request) % 1000000);
  client.set_write_timeout(usec(request) / 1000000, usec(request) % 1000000);
}

std::string describe(const httplib::Result& result) {
  if (!result) return httplib::to_string(result.error());
  std::string text = "HTTP " + std::to_string(result->status);
  if (!result->body.empty()) text += ": " + result->body.substr(0, 200);
  return text;
}

}  // namespace

const char* drop_reason_name(DropReason reason) {
  switch (reason) {
    case DropReason::kMalformed:
      return "malformed";
    case DropReason::kWrongCluster:
      return "wrong_cluster";
    case DropReason::kUnknownSender:
      return "unknown_sender";
    case DropReason::kWrongRecipient:
      return "wrong_recipient";
    case DropReason::kUnknownPeer:
      return "unknown_peer";
    case DropReason::kQueueFull:
      return "queue_full";
    case DropReason::kPeerUnreachable:
      return "peer_unreachable";
    case DropReason::kNotRunning:
      return "not_running";
    case DropReason::kSnapshotRejected:
      return "snapshot_rejected";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

const PeerStats* TransportStats::peer(NodeId id) const {
  for (const auto& p : peers)
    if (p.id == id) return &p;
  return nullptr;
}

struct PeerTransport::Counters {
  std::array<std::atomic<uint64_t>, static_cast<size_t>(DropReason::kCount)> dropped{};
};

// Logs at most one line per reason per second, saying how many lines it held back.
class PeerTransport::RateLimitedLog {
 public:
  void log(DropReason reason, uint64_t count, const std::string& detail) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    Slot& slot = slots_[static_cast<size_t>(reason)];
    if (slot.logged_once && now - slot.last < std::chrono::seconds(1)) {
      slot.suppressed += count;
      return;
    }
    if (slot.suppressed > 0) {
      spdlog::warn(
          "peer transport: dropped {} message(s) ({}): {} [{} more dropped in the last "
          "second, not logged]",
          count, drop_reason_name(reason), detail, slot.suppressed);
    } else {
      spdlog::warn("peer transport: dropped {} message(s) ({}): {}", count,
                   drop_reason_name(reason), detail);
    }
    slot.logged_once = true;
    slot.last = now;
    slot.suppressed = 0;
  }

 private:
  struct Slot {
    bool logged_once = false;
    std::chrono::steady_clock::time_point last;
    uint64_t suppressed = 0;
  };
  std::mutex mutex_;
  std::array<Slot, static_cast<size_t>(DropReason::kCount)> slots_{};
};

struct PeerTransport::SnapshotAssembly {
  uint64_t transfer_id = 0;
  Message header;
  uint64_t total = 0;
  uint32_t total_crc = 0;
  std::string data;
  std::chrono::steady_clock::time_point last_chunk;
};

struct PeerTransport::Peer {
  struct Queued {
    Message message;
    size_t bytes = 0;
  };

  NodeId id = kNoNode;
  std::string address;
  HostPort host_port;

  std::mutex mutex;
  std::condition_variable wake;               // the message sender: messages queued, or stopping
  std::condition_variable snapshot_wake;      // the snapshot sender: a snapshot queued, or stopping
  std::deque<Queued> queue;                   // guarded by mutex
  size_t queued_bytes = 0;                    // guarded by mutex
  bool stopping = false;                      // guarded by mutex
  bool backing_off = false;                   // guarded by mutex; sends are dropped meanwhile
  std::chrono::milliseconds next_backoff{0};  // guarded by mutex
  std::optional<Message> pending_snapshot;    // guarded by mutex
  uint64_t superseded_snapshots = 0;          // guarded by mutex

  // The message stream (guarded by mutex). kConnect: none open; the sender thread opens one when
  // there is something to send. kStream: open; send() writes frames straight into it unless
  // bytes are still waiting (`out`, or the sender thread is writing them: `flushing`). kPost: the
  // peer does not know streams (an older node); one POST per batch until post_until.
  enum class Mode { kConnect, kStream, kPost };
  Mode mode = Mode::kConnect;
  int stream_fd = -1;
  std::string out;  // framed bytes not written yet
  uint64_t out_messages = 0;
  uint64_t out_frames = 0;
  bool flushing = false;  // the sender thread is writing bytes taken from `out`
  bool broken = false;    // a write failed or the peer closed: the sender thread reconnects
  std::chrono::steady_clock::time_point post_until;

  std::unique_ptr<StreamClient> message_client;
  std::unique_ptr<StreamClient> snapshot_client;
  std::thread message_thread;
  std::thread snapshot_thread;
  std::atomic<int> live_threads{0};

  std::atomic<uint64_t> sent_messages{0};
  std::atomic<uint64_t> sent_bytes{0};
  std::atomic<uint64_t> sent_batches{0};
  std::atomic<uint64_t> received_messages{0};
  std::atomic<uint64_t> received_bytes{0};
  std::atomic<uint64_t> send_failures{0};
  std::atomic<uint64_t> snapshots_sent{0};
  std::atomic<uint64_t> snapshots_failed{0};

  // Marks the peer stopping, empties its queues and interrupts any request in flight.
  void signal_stop() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
      queue.clear();
      queued_bytes = 0;
      pending_snapshot.reset();
    }
    wake.notify_all();
    snapshot_wake.notify_all();
    interrupt_requests();
  }

  // Shuts down the sockets of requests in flight (httplib's thread-safe way to cancel) and the
  // stream (the sender thread closes it).
  void interrupt_requests() {
    message_client->stop();
    snapshot_client->stop();
    std::lock_guard lock(mutex);
    if (stream_fd >= 0) ::shutdown(stream_fd, SHUT_RDWR);
  }

  // Waits for both threads, interrupting requests again while they linger: a request that
  // started just after signal_stop() would otherwise wait for its full timeout.
  void join() {
    while (live_threads.load() > 0) {
      interrupt_requests();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (message_thread.joinable()) message_thread.join();
    if (snapshot_thread.joinable()) snapshot_thread.join();
  }

  bool is_stopping() {
    std::lock_guard lock(mutex);
    return stopping;
  }
};

// The incoming message streams a node's loop reads itself (see LoopInbox). Descriptors are
// closed only by the loop thread (read() at end of stream, or detach()), so the loop never polls
// a descriptor number that was closed and reused; stop() only shuts them down.
class PeerTransport::Inbox final : public LoopInbox {
 public:
  explicit Inbox(PeerTransport& transport) : transport_(transport) {}
  ~Inbox() override { close_all(); }

  void attach(std::function<void()> wake) override {
    std::lock_guard lock(mutex_);
    wake_ = std::move(wake);
  }

  void detach() override {
    std::lock_guard lock(mutex_);
    wake_ = nullptr;
    close_all_locked();
  }

  void descriptors(std::vector<int>& fds) override {
    std::lock_guard lock(mutex_);
    fds.clear();
    for (const auto& [fd, stream] : streams_) fds.push_back(fd);
  }

  void read(int fd, std::vector<Message>& out) override {
    std::lock_guard lock(mutex_);
    auto it = streams_.find(fd);
    if (it == streams_.end()) return;
    if (!receive(fd, it->second, out)) {
      ::close(fd);
      streams_.erase(it);
    }
  }

  enum class Adopted { kYes, kNoLoop, kBadFrame };
  // A connection thread hands over an accepted stream. kNoLoop: no loop reads (the thread keeps
  // serving it); kBadFrame: a frame already read was bad (counted; close the connection).
  // Complete frames already read go to on_messages first.
  Adopted adopt(BufferedSocketStream& stream, NodeId from) {
    std::function<void()> wake;
    {
      std::lock_guard lock(mutex_);
      if (!wake_ || !transport_.running_) return Adopted::kNoLoop;
      Stream adopted;
      adopted.from = from;
      adopted.buffer = stream.take_buffered();
      std::vector<Message> first;
      const bool good = parse_frames(adopted, first);
      transport_.deliver(std::move(first));
      if (!good) return Adopted::kBadFrame;
      streams_.emplace(stream.socket(), std::move(adopted));
      wake = wake_;
    }
    wake();
    return Adopted::kYes;
  }

  // Transport stop: every stream ends (the loop reads the end and closes it).
  void shut_down_all() {
    std::lock_guard lock(mutex_);
    for (const auto& [fd, stream] : streams_) ::shutdown(fd, SHUT_RDWR);
  }

 private:
  struct Stream {
    NodeId from = kNoNode;
    std::string buffer;  // bytes read, not yet a whole frame
  };

  // Reads what is there (bounded per call, so one busy peer cannot hold the loop); false when
  // the stream is over (end, error, or a bad frame).
  bool receive(int fd, Stream& stream, std::vector<Message>& out) {
    constexpr size_t kMaxPerCall = 4u << 20;
    size_t taken = 0;
    while (taken < kMaxPerCall) {
      ssize_t n;
      do {
        n = ::recv(fd, scratch_.data(), scratch_.size(), MSG_DONTWAIT);
      } while (n < 0 && errno == EINTR);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        // The stream is over: what arrived before its end still counts.
        (void)parse_frames(stream, out);
        return false;
      }
      if (n < 0) break;
      stream.buffer.append(scratch_.data(), static_cast<size_t>(n));
      taken += static_cast<size_t>(n);
      if (static_cast<size_t>(n) < scratch_.size()) break;
    }
    return parse_frames(stream, out);
  }

  // Takes every whole frame off the front of the buffer; false on a bad frame.
  bool parse_frames(Stream& stream, std::vector<Message>& out) {
    size_t at = 0;
    const std::string& buffer = stream.buffer;
    while (buffer.size() - at >= kFramePrefixBytes) {
      const auto* prefix = reinterpret_cast<const unsigned char*>(buffer.data() + at);
      const size_t size = (size_t{prefix[0]} << 24) | (size_t{prefix[1]} << 16) |
                          (size_t{prefix[2]} << 8) | size_t{prefix[3]};
      if (size > transport_.options_.max_request_bytes) {
        transport_.drop(DropReason::kMalformed, 1,
                        "node " + std::to_string(stream.from) + " announced a stream frame over " +
                            std::to_string(transport_.options_.max_request_bytes) +
                            " bytes; stream closed");
        return false;
      }
      if (buffer.size() - at - kFramePrefixBytes < size) break;
      const std::string_view body(buffer.data() + at + kFramePrefixBytes, size);
      if (transport_.accept_batch(body, out).status != 204) return false;
      at += kFramePrefixBytes + size;
    }
    stream.buffer.erase(0, at);
    return true;
  }

  void close_all() {
    std::lock_guard lock(mutex_);
    close_all_locked();
  }
  void close_all_locked() {
    for (const auto& [fd, stream] : streams_) ::close(fd);
    streams_.clear();
  }

  PeerTransport& transport_;
  std::mutex mutex_;
  std::function<void()> wake_;             // set while a loop is attached
  std::map<int, Stream> streams_;          // by descriptor
  std::array<char, 64 * 1024> scratch_{};  // what one recv() reads (loop thread, under mutex_)
};

PeerTransport::PeerTransport(PeerTransportOptions options, MessageHandler on_messages,
                             UnreachableHandler on_unreachable,
                             SnapshotStatusHandler on_snapshot_status)
    : options_(std::move(options)),
      on_messages_(std::move(on_messages)),
      on_unreachable_(std::move(on_unreachable)),
      on_snapshot_status_(std::move(on_snapshot_status)),
      counters_(std::make_unique<Counters>()),
      inbox_(std::make_unique<Inbox>(*this)),
      drop_log_(std::make_unique<RateLimitedLog>()) {
  for (const auto& [id, address] : options_.peers) {
    if (id == options_.self || id == kNoNode) continue;
    peers_[id] = make_peer(id, address);
  }
}

PeerTransport::~PeerTransport() {
  stop();
  std::unique_lock lock(peers_mutex_);
  reap_retired_peers(/*wait=*/true);
  peers_.clear();
}

std::shared_ptr<PeerTransport::Peer> PeerTransport::make_peer(NodeId id,
                                                              const std::string& address) {
  auto peer = std::make_shared<Peer>();
  peer->id = id;
  peer->address = address;
  auto hp = parse_host_port(address);
  if (hp) peer->host_port = hp.value();
  peer->next_backoff = options_.backoff_min;
  for (auto* client : {&peer->message_client, &peer->snapshot_client}) {
    *client = std::make_unique<StreamClient>(peer->host_port.host, peer->host_port.port);
    (*client)->set_keep_alive(true);
    (*client)->set_tcp_nodelay(true);
    (*client)->set_default_headers({{kFromHeader, std::to_string(options_.self)}});
    set_client_timeouts(**client, options_.connect_timeout, options_.request_timeout);
  }
  return peer;
}

void PeerTransport::start_peer(const std::shared_ptr<Peer>& peer) {
  Peer* raw = peer.get();  // the transport keeps the peer alive until its threads are joined
  raw->live_threads = 2;
  raw->message_thread = std::thread([this, raw] {
    run_message_sender(*raw);
    raw->live_threads.fetch_sub(1);
  });
  raw->snapshot_thread = std::thread([this, raw] {
    run_snapshot_sender(*raw);
    raw->live_threads.fetch_sub(1);
  });
  set_thread_name(raw->message_thread, "peer-send-" + std::to_string(raw->id));
  set_thread_name(raw->snapshot_thread, "peer-snap-" + std::to_string(raw->id));
}

// Requires peers_mutex_ held exclusively.
void PeerTransport::retire_peer(std::shared_ptr<Peer> peer) {
  peer->signal_stop();
  retired_peers_.push_back(std::move(peer));
}

// Requires peers_mutex_ held exclusively.
void PeerTransport::reap_retired_peers(bool wait) {
  for (auto it = retired_peers_.begin(); it != retired_peers_.end();) {
    if (wait || (*it)->live_threads.load() == 0) {
      (*it)->join();
      it = retired_peers_.erase(it);
    } else {
      ++it;
    }
  }
}

namespace {
template <typename Reply>
void answer(const Reply& reply, httplib::Response& res) {
  res.status = reply.status;
  if (!reply.reason.empty()) res.set_content(reply.reason, "text/plain");
}
}  // namespace

Status PeerTransport::start() {
  std::lock_guard lifecycle(lifecycle_mutex_);
  if (started_once_) {
    return make_error(ErrorCode::kInvalidArgument, "peer transport was already started");
  }
  if (options_.self == kNoNode) {
    return make_error(ErrorCode::kInvalidArgument, "peer transport needs this node's id");
  }
  auto listen = parse_host_port(options_.listen_addr);
  if (!listen) return listen.error();
  {
    std::shared_lock lock(peers_mutex_);
    for (const auto& [id, peer] : peers_) {
      auto hp = parse_host_port(peer->address);
      if (!hp) {
        return make_error(ErrorCode::kInvalidArgument,
                          "node " + std::to_string(id) + ": " + hp.error().message);
      }
    }
  }

  // Keep-alive connections idle for up to 5 s: a busy peer reuses one connection; stop() does
  // not wait for them (StreamServer shuts them down).
  StreamServerOptions server_options;
  server_options.read_timeout = options_.request_timeout;
  server_options.write_timeout = options_.request_timeout;
  server_options.keep_alive_idle = std::chrono::seconds(5);
  server_options.thread_name = "peer-conn";
  server_options.idle_thread_name = "peer-idle";
  auto server = std::make_unique<StreamServer>(server_options);
  size_t threads = options_.server_threads;
  // A peer's stream holds a pool thread while open (a peer keeps up to two: messages and
  // snapshots), so leave room for peers added later and for short-lived extra connections (an
  // idle HTTP connection gives its thread back after 100 ms).
  if (threads == 0) threads = std::max<size_t>(16, 2 * options_.peers.size() + 8);
  server->set_thread_count(threads);
  server->set_tcp_nodelay(true);
  server->set_keep_alive_max_count(1000);
  server->set_payload_max_length(options_.max_request_bytes);
  server->set_takeover(std::string(kStreamRequestPrefix),
                       [this](BufferedSocketStream& stream) { return serve_stream(stream); });
  server->Post(kMessagesPath, [this](const httplib::Request& req, httplib::Response& res) {
    answer(handle_messages_body(req.body), res);
  });
  server->Post(kSnapshotPath, [this](const httplib::Request& req, httplib::Response& res) {
    answer(handle_snapshot_body(req.body), res);
  });
  if (route_installer_) route_installer_(*server);
  // httplib's default socket options add SO_REUSEPORT, which would let a second process listen on
  // a peer port that is already in use; keep only SO_REUSEADDR (restart over TIME_WAIT).
  auto listen_socket = std::make_shared<socket_t>(-1);
  server->set_socket_options([listen_socket](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    *listen_socket = sock;
  });

  int port = listen->port;
  bool bound = false;
  if (port == 0) {
    port = server->bind_to_any_port(listen->host);
    bound = port > 0;
  } else {
    bound = server->bind_to_port(listen->host, port);
  }
  if (!bound) {
    return make_error(ErrorCode::kIo, explain_bind_failure(listen.value(), options_.listen_addr));
  }

  // httplib listens with a backlog of 5: a burst of peers' pool threads connecting at once would
  // see SYNs dropped and connect timeouts. Listening again on the bound socket raises it.
  if (*listen_socket >= 0) ::listen(*listen_socket, SOMAXCONN);
  server_ = std::move(server);
  listen_port_ = port;
  running_ = true;
  started_once_ = true;
  server_thread_ = std::thread([this] {
    set_thread_name("peer-pool");  // httplib's pool threads start from it
    server_->listen_after_bind();
  });
  // httplib's stop() is a no-op until the accept loop runs; wait for it so stop() can't miss it.
  for (int i = 0; i < 2000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  {
    std::unique_lock lock(peers_mutex_);
    for (auto& [id, peer] : peers_) start_peer(peer);
  }
  spdlog::info("peer transport: node {} listening on {}:{} ({} peers)", options_.self, listen->host,
               port, options_.peers.size());
  return Ok{};
}

void PeerTransport::stop() {
  std::lock_guard lifecycle(lifecycle_mutex_);
  if (!running_.exchange(false)) return;
  // Nothing below holds peers_mutex_ while it waits: a loop reading a stream (inbox) and a server
  // handler both look peers up (shared) and must be able to finish.
  inbox_->shut_down_all();
  std::vector<std::shared_ptr<Peer>> stopping;
  {
    std::unique_lock lock(peers_mutex_);
    for (auto& [id, peer] : peers_) stopping.push_back(peer);
    // Retired peers are joined here only (taken out, so no set_peer() reaps them meanwhile).
    for (auto& peer : retired_peers_) stopping.push_back(std::move(peer));
    retired_peers_.clear();
  }
  for (auto& peer : stopping) peer->signal_stop();
  // Stop accepting; listen_after_bind() returns once every connection handler has finished.
  std::atomic<bool> server_done{false};
  std::thread stopper([&] {
    while (!server_done.load()) {
      server_->stop();
      static_cast<StreamServer*>(server_.get())->shut_down_connections();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  for (auto& peer : stopping) peer->join();
  if (server_thread_.joinable()) server_thread_.join();
  server_done = true;
  stopper.join();
  {
    std::lock_guard assembly_lock(assembly_mutex_);
    assemblies_.clear();
  }
}

Status PeerTransport::set_peer(NodeId id, const std::string& address) {
  if (id == options_.self || id == kNoNode) return Ok{};
  auto hp = parse_host_port(address);
  if (!hp) {
    return make_error(ErrorCode::kInvalidArgument,
                      "node " + std::to_string(id) + ": " + hp.error().message);
  }
  std::unique_lock lock(peers_mutex_);
  reap_retired_peers(/*wait=*/false);
  auto it = peers_.find(id);
  if (it != peers_.end() && it->second->address == address) return Ok{};
  if (it != peers_.end()) retire_peer(it->second);
  auto peer = make_peer(id, address);
  peers_[id] = peer;
  if (running_) start_peer(peer);
  return Ok{};
}

void PeerTransport::remove_peer(NodeId id) {
  std::unique_lock lock(peers_mutex_);
  reap_retired_peers(/*wait=*/false);
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  retire_peer(it->second);
  peers_.erase(it);
}

std::shared_ptr<PeerTransport::Peer> PeerTransport::find_peer(NodeId id) const {
  std::shared_lock lock(peers_mutex_);
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second;
}

void PeerTransport::drop(DropReason reason, uint64_t count, const std::string& detail) {
  if (count == 0) return;
  counters_->dropped[static_cast<size_t>(reason)].fetch_add(count);
  drop_log_->log(reason, count, detail);
}

void PeerTransport::send(std::vector<Message> messages) {
  if (messages.empty()) return;
  if (!running_) {
    drop(DropReason::kNotRunning, messages.size(), "the peer transport is not running");
    return;
  }
  // Group by destination so each peer's queue is locked (and its sender woken) once.
  std::map<NodeId, std::vector<Message>> by_peer;
  for (Message& m : messages) by_peer[m.to].push_back(std::move(m));

  for (auto& [to, list] : by_peer) {
    auto peer = find_peer(to);
    if (!peer) {
      drop(DropReason::kUnknownPeer, list.size(), "no peer address for node " + std::to_string(to));
      continue;
    }
    uint64_t unreachable = 0;
    uint64_t overflow = 0;
    uint64_t unknown = 0;
    bool queued_message = false;
    bool queued_snapshot = false;
    {
      std::lock_guard lock(peer->mutex);
      if (peer->stopping) {  // removed or replaced a moment ago
        unknown = list.size();
        list.clear();
      }
      std::vector<Message> messages;
      messages.reserve(list.size());
      for (Message& m : list) {
        if (m.snapshot) {
          if (peer->pending_snapshot) ++peer->superseded_snapshots;
          peer->pending_snapshot = std::move(m);
          queued_snapshot = true;
        } else {
          messages.push_back(std::move(m));
        }
      }
      if (!messages.empty() && peer->mode == Peer::Mode::kStream && !peer->broken) {
        const StreamWrite written = write_to_stream(*peer, messages);
        if (written == StreamWrite::kOverflow) overflow += messages.size();
        if (written == StreamWrite::kWaiting) queued_message = true;  // the sender thread goes on
        if (written == StreamWrite::kBroken) {
          // Not written: the sender thread reconnects and sends them (queued below).
          peer->broken = true;
          queued_message = true;
        } else {
          messages.clear();
        }
      }
      for (Message& m : messages) {
        if (peer->backing_off) {
          ++unreachable;
          continue;
        }
        size_t bytes = estimated_encoded_size(m);
        peer->queue.push_back({std::move(m), bytes});
        peer->queued_bytes += bytes;
        queued_message = true;
        while (peer->queued_bytes > options_.max_queue_bytes && peer->queue.size() > 1) {
          peer->queued_bytes -= peer->queue.front().bytes;
          peer->queue.pop_front();
          ++overflow;
        }
      }
    }
    // Each sender thread has its own condition variable: waking both for every message would
    // cost the idle snapshot thread a context switch per batch.
    if (queued_message) peer->wake.notify_one();
    if (queued_snapshot) peer->snapshot_wake.notify_one();
    drop(DropReason::kUnknownPeer, unknown, "node " + std::to_string(to) + " was just removed");
    drop(DropReason::kPeerUnreachable, unreachable,
         "node " + std::to_string(to) + " is backing off after a failed send");
    drop(DropReason::kQueueFull, overflow,
         "queue for node " + std::to_string(to) + " exceeded " +
             std::to_string(options_.max_queue_bytes) + " bytes; oldest messages dropped");
  }
}

namespace {

// True when the peer has closed (or reset) a stream it never writes to: any readable byte or
// end of stream means the connection is over.
bool stream_closed_by_peer(int fd) {
  char byte;
  ssize_t n;
  do {
    n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  return true;  // data (a protocol violation) or end of stream
}

// Writes as much as the socket takes now; returns the bytes written, or -1 on a failure.
ssize_t send_now(int fd, const char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n;
    do {
      n = ::send(fd, data + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

// Writes all of `data` within `timeout` of no progress; false on a failure or a stall.
bool send_all_within(int fd, std::string_view data, std::chrono::milliseconds timeout) {
  while (!data.empty()) {
    const ssize_t n = send_now(fd, data.data(), data.size());
    if (n < 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
    if (data.empty()) break;
    pollfd p{fd, POLLOUT, 0};
    int ready;
    do {
      ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (ready < 0 && errno == EINTR);
    if (ready <= 0 || (p.revents & (POLLERR | POLLHUP)) != 0) return false;
  }
  return true;
}

}  // namespace

// Requires peer.mutex held and an open stream. Appends the frame behind bytes still waiting, or
// writes it into the socket at once: no thread hand-off on the way out.
PeerTransport::StreamWrite PeerTransport::write_to_stream(Peer& peer,
                                                          const std::vector<Message>& messages) {
  std::string frame;
  append_frame(frame, encode_batch(options_.cluster_id, options_.self, messages));
  if (!peer.out.empty() || peer.flushing) {
    if (peer.out.size() + frame.size() > options_.max_queue_bytes) return StreamWrite::kOverflow;
    peer.out += frame;
    peer.out_messages += messages.size();
    ++peer.out_frames;
    return StreamWrite::kWaiting;
  }
  if (stream_closed_by_peer(peer.stream_fd)) return StreamWrite::kBroken;
  const ssize_t written = send_now(peer.stream_fd, frame.data(), frame.size());
  if (written < 0) return StreamWrite::kBroken;
  if (static_cast<size_t>(written) == frame.size()) {
    count_sent(peer, frame.size() - kFramePrefixBytes, messages.size());
    return StreamWrite::kWritten;
  }
  peer.out.assign(frame, static_cast<size_t>(written));
  peer.out_messages = messages.size();
  peer.out_frames = 1;
  return StreamWrite::kWaiting;
}

void PeerTransport::count_sent(Peer& peer, size_t bytes, uint64_t messages) {
  // Messages last: a reader that sees the message count also sees the bytes.
  peer.sent_bytes.fetch_add(bytes);
  peer.sent_batches.fetch_add(1);
  peer.sent_messages.fetch_add(messages);
}

void PeerTransport::backoff(Peer& peer) {
  std::chrono::milliseconds delay;
  uint64_t discarded = 0;
  {
    std::lock_guard lock(peer.mutex);
    peer.backing_off = true;
    discarded = peer.queue.size();
    peer.queue.clear();
    peer.queued_bytes = 0;
    // Jitter: somewhere in [next, 1.5 * next], capped at backoff_max.
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    auto base = peer.next_backoff.count();
    std::uniform_int_distribution<int64_t> jitter(0, std::max<int64_t>(0, base / 2));
    delay = std::min(options_.backoff_max, std::chrono::milliseconds(base + jitter(rng)));
    peer.next_backoff = std::min(options_.backoff_max, peer.next_backoff * 2);
  }
  drop(DropReason::kPeerUnreachable, discarded,
       "node " + std::to_string(peer.id) + " is unreachable; queued messages dropped");
  std::unique_lock lock(peer.mutex);
  peer.wake.wait_for(lock, delay, [&] { return peer.stopping; });
  peer.backing_off = false;
}

void PeerTransport::run_message_sender(Peer& peer) {
  std::unique_lock lock(peer.mutex);
  while (true) {
    peer.wake.wait(lock, [&] {
      return peer.stopping || peer.broken || !peer.out.empty() || !peer.queue.empty();
    });
    if (peer.stopping) break;
    if (peer.mode == Peer::Mode::kStream) {
      if (peer.broken) {
        // send() found the stream closed before writing: what it queued goes on a new one.
        close_stream(peer);
        continue;
      }
      if (peer.out.empty()) {
        // Queued while the stream was being opened (or after it broke): frame them in order.
        while (!peer.queue.empty()) {
          std::vector<Message> batch = take_batch(peer);
          append_frame(peer.out, encode_batch(options_.cluster_id, options_.self, batch));
          peer.out_messages += batch.size();
          ++peer.out_frames;
        }
      }
      std::string data;
      data.swap(peer.out);
      const uint64_t messages = std::exchange(peer.out_messages, 0);
      const uint64_t frames = std::exchange(peer.out_frames, 0);
      peer.flushing = true;
      const int fd = peer.stream_fd;
      lock.unlock();
      const bool written = send_all_within(fd, data, options_.request_timeout);
      lock.lock();
      peer.flushing = false;
      if (written) {
        count_sent(peer, data.size() - frames * kFramePrefixBytes, messages);
        peer.next_backoff = options_.backoff_min;
        continue;
      }
      if (peer.stopping) break;
      const uint64_t lost = messages + std::exchange(peer.out_messages, 0);
      peer.out.clear();
      peer.out_frames = 0;
      close_stream(peer);
      lock.unlock();
      fail_send(peer, lost,
                "the stream to node " + std::to_string(peer.id) + " at " + peer.address +
                    " failed or took no bytes for " +
                    std::to_string(options_.request_timeout.count()) + " ms");
      lock.lock();
      continue;
    }
    if (peer.mode == Peer::Mode::kPost && std::chrono::steady_clock::now() >= peer.post_until) {
      peer.mode = Peer::Mode::kConnect;  // the peer may have been upgraded meanwhile
    }
    if (peer.mode == Peer::Mode::kConnect) {
      // The first frame goes out with the request: no round trip before it is on its way.
      std::vector<Message> first = take_batch(peer);
      std::string first_frame;
      append_frame(first_frame, encode_batch(options_.cluster_id, options_.self, first));
      lock.unlock();
      std::string error;
      int status = 0;
      Connected connected =
          connect_with_timeout(peer.host_port.host, peer.host_port.port, options_.connect_timeout);
      if (connected.fd >= 0) {
        {
          // Visible to interrupt_requests() while the peer is asked (a hung one never answers).
          std::lock_guard connecting(peer.mutex);
          peer.stream_fd = connected.fd;
        }
        status = request_stream(connected.fd, peer.host_port.host, options_.self,
                                options_.cluster_id, first_frame, options_.request_timeout, error);
      } else {
        error = connected.error;
      }
      lock.lock();
      if (status != 200 && peer.stream_fd >= 0) {
        ::close(peer.stream_fd);
        peer.stream_fd = -1;
      }
      if (peer.stopping) break;  // an open stream is closed below
      if (status == 200) {
        peer.mode = Peer::Mode::kStream;
        peer.broken = false;
        peer.next_backoff = options_.backoff_min;
        count_sent(peer, first_frame.size() - kFramePrefixBytes, first.size());
        continue;
      }
      if (status == 404) {
        spdlog::info(
            "peer transport: node {} at {} has no message stream (an older version); "
            "one request per batch",
            peer.id, peer.address);
        peer.mode = Peer::Mode::kPost;
        peer.post_until = std::chrono::steady_clock::now() + kPostFallbackPeriod;
        // It ignored the frame: the messages go again, first, as a POST.
        for (auto it = first.rbegin(); it != first.rend(); ++it) {
          const size_t bytes = estimated_encoded_size(*it);
          peer.queued_bytes += bytes;
          peer.queue.push_front({std::move(*it), bytes});
        }
        continue;
      }
      lock.unlock();
      fail_send(peer, first.size(),
                "opening a stream to node " + std::to_string(peer.id) + " at " + peer.address +
                    " failed: " + error);
      lock.lock();
      continue;
    }
    std::vector<Message> batch = take_batch(peer);
    lock.unlock();
    post_batch(peer, batch);
    lock.lock();
  }
  close_stream(peer);
}

// Requires peer.mutex held.
std::vector<Message> PeerTransport::take_batch(Peer& peer) {
  std::vector<Message> batch;
  size_t batch_bytes = 0;
  while (!peer.queue.empty()) {
    auto& next = peer.queue.front();
    if (!batch.empty() && batch_bytes + next.bytes > options_.max_batch_bytes) break;
    batch_bytes += next.bytes;
    peer.queued_bytes -= next.bytes;
    batch.push_back(std::move(next.message));
    peer.queue.pop_front();
  }
  return batch;
}

// Requires peer.mutex held.
void PeerTransport::close_stream(Peer& peer) {
  if (peer.stream_fd >= 0) ::close(peer.stream_fd);
  peer.stream_fd = -1;
  peer.broken = false;
  if (peer.mode == Peer::Mode::kStream) peer.mode = Peer::Mode::kConnect;
}

// A send failed: count it, drop what was in flight, report the peer unreachable and back off.
void PeerTransport::fail_send(Peer& peer, uint64_t lost, const std::string& why) {
  peer.send_failures.fetch_add(1);
  drop(DropReason::kPeerUnreachable, lost, why);
  if (lost == 0) spdlog::warn("peer transport: {}", why);
  if (on_unreachable_) on_unreachable_(peer.id);
  backoff(peer);
}

void PeerTransport::post_batch(Peer& peer, const std::vector<Message>& batch) {
  const std::string body = encode_batch(options_.cluster_id, options_.self, batch);
  auto started = std::chrono::steady_clock::now();
  auto result = peer.message_client->Post(kMessagesPath, body, kContentType);
  if (!result && result.error() != httplib::Error::Connection && !peer.is_stopping() &&
      std::chrono::steady_clock::now() - started < kQuickFailure) {
    result = peer.message_client->Post(kMessagesPath, body, kContentType);
  }
  if (peer.is_stopping()) return;
  if (result && result->status == 204) {
    count_sent(peer, body.size(), batch.size());
    std::lock_guard lock(peer.mutex);
    peer.next_backoff = options_.backoff_min;
    return;
  }
  fail_send(peer, batch.size(),
            "sending to node " + std::to_string(peer.id) + " at " + peer.address +
                " failed: " + describe(result));
}

void PeerTransport::run_snapshot_sender(Peer& peer) {
  while (true) {
    std::optional<Message> snapshot;
    uint64_t superseded = 0;
    {
      std::unique_lock lock(peer.mutex);
      peer.snapshot_wake.wait(lock, [&] {
        return peer.stopping || peer.pending_snapshot || peer.superseded_snapshots > 0;
      });
      if (peer.stopping) return;
      snapshot = std::move(peer.pending_snapshot);
      peer.pending_snapshot.reset();
      superseded = std::exchange(peer.superseded_snapshots, 0);
    }
    for (uint64_t i = 0; i < superseded; ++i) {
      peer.snapshots_failed.fetch_add(1);
      if (on_snapshot_status_) on_snapshot_status_(peer.id, false);
    }
    if (!snapshot) continue;
    bool ok = send_snapshot(peer, *snapshot);
    if (peer.is_stopping()) return;
    (ok ? peer.snapshots_sent : peer.snapshots_failed).fetch_add(1);
    if (on_snapshot_status_) on_snapshot_status_(peer.id, ok);
  }
}

bool PeerTransport::send_snapshot(Peer& peer, const Message& message) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const std::shared_ptr<const std::string> data =
      message.snapshot->data ? message.snapshot->data : std::make_shared<const std::string>();
  SnapshotChunk chunk;
  chunk.cluster_id = options_.cluster_id;
  chunk.from = options_.self;
  chunk.to = peer.id;
  chunk.transfer_id = rng();
  chunk.total = data->size();
  chunk.total_crc = crc32(*data);
  chunk.header = message;
  chunk.header->snapshot->data = std::make_shared<const std::string>();
  const size_t step = std::max<size_t>(1, options_.snapshot_chunk_bytes);
  size_t offset = 0;
  do {
    if (peer.is_stopping()) return false;
    std::string_view slice = std::string_view(*data).substr(offset, step);
    chunk.offset = offset;
    chunk.chunk_crc = crc32(slice);
    const std::string body = encode_snapshot_chunk(chunk, slice);
    auto result = peer.snapshot_client->Post(kSnapshotPath, body, kContentType);
    if (!result || result->status != 204) {
      if (!peer.is_stopping()) {
        peer.send_failures.fetch_add(1);
        drop(DropReason::kSnapshotRejected, 1,
             "snapshot to node " + std::to_string(peer.id) + " failed at offset " +
                 std::to_string(offset) + ": " + describe(result));
      }
      return false;
    }
    peer.sent_bytes.fetch_add(body.size());
    chunk.header.reset();
    offset += slice.size();
  } while (offset < data->size());
  peer.sent_messages.fetch_add(1);
  return true;
}

void PeerTransport::deliver(std::vector<Message> messages) {
  if (messages.empty() || !on_messages_) return;
  std::lock_guard lock(deliver_mutex_);
  on_messages_(std::move(messages));
}

PeerTransport::Reply PeerTransport::reject(DropReason reason, uint64_t count, std::string detail,
                                           int status) {
  drop(reason, count, detail);
  return {status, std::move(detail)};
}

PeerTransport::Reply PeerTransport::handle_messages_body(const std::string& body) {
  std::vector<Message> accepted;
  Reply reply = accept_batch(body, accepted);
  deliver(std::move(accepted));
  return reply;
}

PeerTransport::Reply PeerTransport::accept_batch(std::string_view body,
                                                 std::vector<Message>& accepted) {
  if (!running_) return {503, "the peer transport is stopping"};
  auto batch = decode_batch(body);
  if (!batch) return reject(DropReason::kMalformed, 1, batch.error().message, 400);
  const uint64_t count = batch->messages.size();
  const std::string sender = "node " + std::to_string(batch->from);
  if (batch->cluster_id != options_.cluster_id) {
    return reject(DropReason::kWrongCluster, count,
                  sender + " belongs to cluster '" + batch->cluster_id + "', this node to '" +
                      options_.cluster_id + "'",
                  403);
  }
  auto peer = find_peer(batch->from);
  if (!peer) return reject(DropReason::kUnknownSender, count, sender + " is not a known peer", 403);
  const size_t before = accepted.size();
  accepted.reserve(before + batch->messages.size());
  uint64_t wrong_to = 0;
  uint64_t wrong_from = 0;
  for (Message& m : batch->messages) {
    if (m.to != options_.self) {
      ++wrong_to;
    } else if (m.from != batch->from) {
      ++wrong_from;
    } else {
      accepted.push_back(std::move(m));
    }
  }
  if (wrong_to > 0) {
    drop(DropReason::kWrongRecipient, wrong_to,
         sender + " sent messages addressed to another node");
  }
  if (wrong_from > 0) {
    drop(DropReason::kUnknownSender, wrong_from, sender + " sent messages claiming another sender");
  }
  peer->received_messages.fetch_add(accepted.size() - before);
  peer->received_bytes.fetch_add(body.size());
  return {204, {}};
}

namespace {
// A refusal on a stream request: the connection closes after it.
void refuse_stream(BufferedSocketStream& stream, int status, const std::string& reason) {
  const std::string answer =
      "HTTP/1.1 " + std::to_string(status) +
      (status == 403 ? " Forbidden" : " Service Unavailable") +
      "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(reason.size()) +
      "\r\nConnection: close\r\n\r\n" + reason;
  (void)stream.write(answer.data(), answer.size());
  (void)stream.flush();
}
}  // namespace

bool PeerTransport::serve_stream(BufferedSocketStream& stream) {
  auto request = read_header_block(stream);
  if (!request) return false;
  if (!running_) {
    refuse_stream(stream, 503, "the peer transport is stopping");
    return false;
  }
  const std::string cluster = header_value(*request, kClusterHeader);
  const std::string from_text = header_value(*request, kFromHeader);
  NodeId from = kNoNode;
  auto [ptr, ec] = std::from_chars(from_text.data(), from_text.data() + from_text.size(), from);
  const bool known =
      ec == std::errc() && ptr == from_text.data() + from_text.size() && find_peer(from) != nullptr;
  if (cluster != options_.cluster_id || !known) {
    // Refused (403). The sender writes its first frame right behind the request: when it is
    // there, it is validated like any body, so its messages are counted by reason.
    std::string reason = cluster != options_.cluster_id
                             ? "a stream from node " + from_text + " of cluster '" + cluster +
                                   "', this node's is '" + options_.cluster_id + "'"
                             : "a stream from '" + from_text + "', not a known peer";
    std::string body;
    stream.set_read_timeout_ms(100);
    if (read_frame(stream, options_.max_request_bytes, body) == FrameRead::kFrame) {
      const Reply reply = handle_messages_body(body);
      if (reply.status != 204) reason = reply.reason;
    } else {
      spdlog::warn("peer transport: refused {}", reason);
    }
    refuse_stream(stream, 403, reason);
    return false;
  }
  const std::string accepted = stream_accept_answer();
  if (stream.write(accepted.data(), accepted.size()) < 0 || !stream.flush()) return false;
  // From here on the node's loop reads the stream itself when it has attached its inbox; the
  // frames that came with the request are handed over first (on_messages, in order).
  switch (inbox_->adopt(stream, from)) {
    case Inbox::Adopted::kYes:
      return true;
    case Inbox::Adopted::kBadFrame:
      return false;
    case Inbox::Adopted::kNoLoop:
      break;
  }
  stream.set_read_timeout_ms(
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(kStreamIdle).count()));
  std::string body;
  while (running_) {
    const FrameRead read = read_frame(stream, options_.max_request_bytes, body);
    if (read == FrameRead::kClosed) return false;
    if (read == FrameRead::kTooLarge) {
      drop(DropReason::kMalformed, 1,
           "node " + from_text + " announced a stream frame over " +
               std::to_string(options_.max_request_bytes) + " bytes; stream closed");
      return false;
    }
    // Every frame is validated like a POST body; a bad one closes the stream (the sender opens a
    // new one), its messages counted as dropped by reason.
    if (handle_messages_body(body).status != 204) return false;
  }
  return false;
}

bool PeerTransport::streaming_to(NodeId id) const {
  auto peer = find_peer(id);
  if (!peer) return false;
  std::lock_guard lock(peer->mutex);
  return peer->mode == Peer::Mode::kStream;
}

LoopInbox* PeerTransport::loop_inbox() {
  return inbox_.get();
}

PeerTransport::Reply PeerTransport::handle_snapshot_body(const std::string& body) {
  if (!running_) return {503, "the peer transport is stopping"};
  auto chunk = decode_snapshot_chunk(body);
  if (!chunk) return reject(DropReason::kMalformed, 1, chunk.error().message, 400);
  const std::string sender = "snapshot from node " + std::to_string(chunk->from);
  if (chunk->cluster_id != options_.cluster_id) {
    return reject(DropReason::kWrongCluster, 1,
                  sender + " of cluster '" + chunk->cluster_id + "', this node's is '" +
                      options_.cluster_id + "'",
                  403);
  }
  auto peer = find_peer(chunk->from);
  if (!peer) return reject(DropReason::kUnknownSender, 1, sender + ", not a known peer", 403);
  if (chunk->to != options_.self || (chunk->header && (chunk->header->to != options_.self ||
                                                       chunk->header->from != chunk->from))) {
    return reject(DropReason::kWrongRecipient, 1, sender + " addressed to another node", 403);
  }
  peer->received_bytes.fetch_add(body.size());

  std::optional<Message> complete;
  {
    std::lock_guard lock(assembly_mutex_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = assemblies_.begin(); it != assemblies_.end();) {
      it = now - it->second->last_chunk > kSnapshotAssemblyIdle ? assemblies_.erase(it)
                                                                : std::next(it);
    }
    if (crc32(chunk->data) != chunk->chunk_crc) {
      assemblies_.erase(chunk->from);
      return reject(DropReason::kSnapshotRejected, 1, sender + ": a chunk failed its checksum",
                    400);
    }
    if (chunk->offset == 0) {
      if (!chunk->header) {
        return reject(DropReason::kSnapshotRejected, 1, sender + ": first chunk has no header",
                      400);
      }
      if (chunk->total > options_.max_snapshot_bytes) {
        return reject(DropReason::kSnapshotRejected, 1,
                      sender + " of " + std::to_string(chunk->total) +
                          " bytes exceeds the limit of " +
                          std::to_string(options_.max_snapshot_bytes),
                      413);
      }
      auto assembly = std::make_unique<SnapshotAssembly>();
      assembly->transfer_id = chunk->transfer_id;
      assembly->header = std::move(*chunk->header);
      assembly->total = chunk->total;
      assembly->total_crc = chunk->total_crc;
      assembly->data.reserve(std::min<uint64_t>(chunk->total, options_.max_request_bytes));
      assemblies_[chunk->from] = std::move(assembly);
    }
    auto it = assemblies_.find(chunk->from);
    if (it == assemblies_.end() || it->second->transfer_id != chunk->transfer_id ||
        it->second->data.size() != chunk->offset || it->second->total != chunk->total) {
      if (it != assemblies_.end() && it->second->transfer_id == chunk->transfer_id) {
        assemblies_.erase(it);
      }
      return reject(DropReason::kSnapshotRejected, 1,
                    sender + ": chunk at offset " + std::to_string(chunk->offset) +
                        " does not continue the transfer in progress",
                    409);
    }
    SnapshotAssembly& assembly = *it->second;
    assembly.data.append(chunk->data);
    assembly.last_chunk = now;
    if (assembly.data.size() == assembly.total) {
      if (crc32(assembly.data) != assembly.total_crc) {
        assemblies_.erase(it);
        return reject(DropReason::kSnapshotRejected, 1,
                      sender + ": the reassembled data failed its checksum", 400);
      }
      complete = std::move(assembly.header);
      complete->snapshot->data = std::make_shared<const std::string>(std::move(assembly.data));
      assemblies_.erase(it);
    }
  }
  if (complete) {
    peer->received_messages.fetch_add(1);
    std::vector<Message> one;
    one.push_back(std::move(*complete));
    deliver(std::move(one));
  }
  return {204, {}};
}

TransportStats PeerTransport::stats() const {
  TransportStats out;
  for (size_t i = 0; i < out.dropped.size(); ++i) out.dropped[i] = counters_->dropped[i].load();
  std::shared_lock lock(peers_mutex_);
  for (const auto& [id, peer] : peers_) {
    PeerStats s;
    s.id = id;
    s.address = peer->address;
    s.sent_messages = peer->sent_messages.load();
    s.sent_bytes = peer->sent_bytes.load();
    s.sent_batches = peer->sent_batches.load();
    s.received_messages = peer->received_messages.load();
    s.received_bytes = peer->received_bytes.load();
    s.send_failures = peer->send_failures.load();
    s.snapshots_sent = peer->snapshots_sent.load();
    s.snapshots_failed = peer->snapshots_failed.load();
    {
      std::lock_guard peer_lock(peer->mutex);
      s.queued_messages = peer->queue.size();
      s.queued_bytes = peer->queued_bytes;
      s.backing_off = peer->backing_off;
      s.streaming = peer->mode == Peer::Mode::kStream;
    }
    out.peers.push_back(std::move(s));
  }
  return out;
}

}  // namespace raftlock::raft::transport
