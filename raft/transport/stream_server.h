// transport::StreamServer / StreamClient — cpp-httplib's server and client with a leaner socket
// stream, for the peer port and the client port alike:
//  - a keep-alive connection waits for its next request in one blocking recv() on its thread
//    (httplib's own loop wakes every ~11 ms per idle connection to check it); one that stays idle
//    longer than a short linger gives its thread back and waits in the server's epoll set, so
//    idle connections never hold the pool's threads (httplib gives every connection a thread for
//    as long as it is open: as many silent connections as threads stall every new one);
//  - a message's header block is held back and sent with its body in one segment (httplib writes
//    them with two send() calls: two segments and often two wake-ups of the reader);
//  - reads are buffered (httplib reads request lines a byte at a time);
//  - stop can shut every open connection down at once (an idle or paused peer does not hold it).
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "raft/loop_source.h"

namespace raftlock::raft::transport {

// httplib::Stream over one connected socket; every wait is bounded by a timeout.
class BufferedSocketStream final : public httplib::Stream {
 public:
  BufferedSocketStream(int sock, int read_timeout_ms, int write_timeout_ms)
      : sock_(sock), read_timeout_ms_(read_timeout_ms), write_timeout_ms_(write_timeout_ms) {}
  ~BufferedSocketStream() override { (void)flush(); }

  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  using httplib::Stream::write;
  // A write that is a whole header block ("...\r\n\r\n", at most 8 KiB) is held back until the
  // next write, read or flush(); every other write goes out at once (with what is held back).
  ssize_t write(const char* ptr, size_t size) override;
  // Both addresses are looked up once per stream (httplib asks for them on every request).
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return sock_; }
  void set_read_timeout_ms(int timeout_ms) { read_timeout_ms_ = timeout_ms; }
  // Removes and returns what was read from the socket but not consumed yet.
  std::string take_buffered();
  // What was read from the socket but not consumed yet.
  std::string_view buffered_view() const { return {buffer_ + begin_, buffered()}; }
  // Waits for the next request of a keep-alive connection: kReady once at least one byte is
  // buffered. With nothing buffered it is one blocking recv() straight into the buffer, bounded by
  // the socket's SO_RCVTIMEO (set by the caller), instead of poll() + recv(). kTimedOut when
  // that timeout passed with nothing sent; kClosed at end of stream or on an error.
  enum class Await { kReady, kTimedOut, kClosed };
  Await await_request();
  // Reads more into the buffer (waiting at most the read timeout); false when nothing more came
  // (or the buffer is full).
  bool read_more();
  // One blocking recv() into the buffer, bounded by SO_RCVTIMEO (as await_request); kReady at
  // once when the buffer is full.
  Await receive_more();
  // One recv() that does not wait: kReady when bytes came (or the buffer is full), kTimedOut when
  // none were there, kClosed at the end of the stream or on an error.
  Await receive_available();
  // Does the buffer hold a header block's end (an empty line), or is it full?
  bool has_header_block() const;
  // Drops the first n buffered bytes (n <= buffered_view().size()).
  void consume(size_t n) { begin_ += n; }
  // The buffer's capacity: a request larger than this is never parsed from the buffer whole.
  static constexpr size_t kBufferBytes = 4096;

  // Sends what is held back; false when the connection failed.
  bool flush();
  // Waits until `sock` is readable (data, EOF or a shutdown) for at most timeout_ms.
  static bool wait_readable(int sock, int timeout_ms);

 private:
  static constexpr size_t kMaxHeldBytes = 8192;
  size_t buffered() const { return end_ - begin_; }
  bool wait_for(short events, int timeout_ms) const;
  bool send_all(const char* ptr, size_t size);
  ssize_t recv_retrying(char* ptr, size_t size, int flags = 0);
  // receive_more() and receive_available(): one recv() with `flags` into the buffer.
  Await receive(int flags);

  int sock_;
  int read_timeout_ms_;
  int write_timeout_ms_;
  struct Address {
    bool known = false;
    std::string ip;
    int port = 0;
  };
  mutable Address remote_;
  mutable Address local_;
  std::string held_;  // a held-back header block
  char buffer_[kBufferBytes];
  size_t begin_ = 0;
  size_t end_ = 0;
};

struct StreamServerOptions {
  std::chrono::milliseconds read_timeout{30000};    // within one request
  std::chrono::milliseconds write_timeout{30000};   // per send
  std::chrono::milliseconds keep_alive_idle{5000};  // an idle connection is closed after this
  // How long an idle keep-alive connection keeps its thread before it waits without one (in the
  // server's epoll set, back to the pool when readable). A client sending request after request
  // never waits that long, so it keeps its thread; one that pauses pays one hand-off when it
  // sends again. Zero keeps the thread for the whole idle time (httplib's way).
  std::chrono::milliseconds idle_thread_linger{100};
  std::string thread_name = "http-conn";       // what a connection's thread is called
  std::string idle_thread_name = "http-idle";  // the thread watching idle connections
};

// One connection as seen by an answer written later (DeferredAnswer), from another thread.
// `closed` is set under `mu` before the socket is closed, so a late answer never reaches a reused
// descriptor number. `pending` is set while a deferred answer is owed: the connection's next
// request waits for it (answers go out in request order), and the connection is not closed for
// idleness meanwhile.
struct ConnectionGuard {
  std::mutex mu;
  std::condition_variable answered;  // pending became false
  int sock = -1;
  bool closed = false;
  bool pending = false;
};

class StreamServer;

// An answer a direct handler gives later, from any thread (StreamServer::defer_answer). If it is
// destroyed unsent, the connection is shut down (the client is not left waiting for nothing).
// send() uses its server's settings: the server must outlive the sends (destroying an unsent
// answer after the server is gone is fine).
class DeferredAnswer {
 public:
  DeferredAnswer(StreamServer& server, std::shared_ptr<ConnectionGuard> guard,
                 const httplib::Request& req);
  ~DeferredAnswer();
  DeferredAnswer(const DeferredAnswer&) = delete;
  DeferredAnswer& operator=(const DeferredAnswer&) = delete;
  // Writes the answer exactly as the direct path writes it, without blocking: false when the
  // connection is gone, was already answered, or did not take the answer whole (it is then shut
  // down: a client that does not read its answers loses its connection, not a thread).
  bool send(httplib::Response response);

 private:
  StreamServer& server_;
  std::shared_ptr<ConnectionGuard> guard_;
  httplib::Request req_;  // method, path and version only (the error handler's view)
  bool sent_ = false;     // guarded by guard_->mu
};

// httplib::Server serving each accepted connection with BufferedSocketStream.
class StreamServer final : public httplib::Server {
 public:
  explicit StreamServer(StreamServerOptions options = {});
  ~StreamServer() override;
  StreamServer(const StreamServer&) = delete;
  StreamServer& operator=(const StreamServer&) = delete;

  // The size of the pool serving requests (httplib's default otherwise). Use this instead of
  // setting new_task_queue: an idle connection goes back to this pool when it is readable (with
  // a task queue of someone else's making, idle connections keep their threads).
  void set_thread_count(size_t threads);

  // Refuses new connections and shuts open ones down: an idle one at once, a busy one for
  // reading (its current answer may still be written; then it closes).
  void shut_down_connections();

  // A connection whose first request starts with `prefix` is not served as HTTP: `handler` gets
  // it (on the connection's thread, with the stream holding whatever was read already). When the
  // handler returns false the connection is closed; true means the handler took the socket over
  // (it closes it; the server forgets it). Set before listening.
  using Takeover = std::function<bool(BufferedSocketStream& stream)>;
  void set_takeover(std::string prefix, Takeover handler) {
    takeover_prefix_ = std::move(prefix);
    takeover_ = std::move(handler);
  }

  // The direct path: a plain request is parsed by this server from the connection's buffer and
  // handed to `handler` with its body read, instead of going through httplib's request
  // processing (its parser, regex routing and header handling cost more CPU than the rest of a
  // request together). The handler returns false to decline without touching the response
  // (httplib then serves the request as usual: e.g. a handler that streams with a content
  // provider); true when it answered. The answer is written as httplib writes it: the same status
  // line, headers in the same order, the error handler applied to a status >= 400, the exception
  // handler to a throw. Set before listening. Requests that are not plain go to httplib, so every
  // behaviour outside the direct path is httplib's own: a body that is chunked, encoded,
  // multipart, behind Expect, of unknown length or not read by httplib (GET); Range; a GET with
  // Accept-Encoding (httplib may compress its answer; a POST's is answered uncompressed, unless
  // the header refuses "identity"); HEAD and other methods; anything odd in the request line or a
  // header line; a line break in the decoded path; a request larger than the connection's buffer.
  // The direct path is off while the server has no exception handler, or has default headers,
  // routing hooks, a logger or mounted directories.
  using DirectHandler = std::function<bool(const httplib::Request&, httplib::Response&)>;
  void set_direct_handler(DirectHandler handler) { direct_handler_ = std::move(handler); }
  // Same as httplib::Server's; the direct path applies the first two, and the others turn it off.
  StreamServer& set_error_handler(HandlerWithResponse handler);
  StreamServer& set_exception_handler(ExceptionHandler handler);
  StreamServer& set_default_headers(httplib::Headers headers);
  StreamServer& set_pre_routing_handler(HandlerWithResponse handler);
  StreamServer& set_post_routing_handler(Handler handler);
  StreamServer& set_logger(httplib::Logger logger);
  bool set_mount_point(const std::string& mount_point, const std::string& dir,
                       httplib::Headers headers = httplib::Headers());
  bool set_base_dir(const std::string& dir, const std::string& mount_point = std::string());
  // Called by a direct handler on the connection's thread: the request will be answered later
  // through the returned object (from any thread), and the connection's thread goes back to
  // reading at once, so a request that waits holds no thread. The next request on the
  // connection is served only after this answer is written. nullptr when the current request
  // cannot be answered later (it is not on the direct path, or the connection closes after it):
  // the handler then answers as usual.
  static std::shared_ptr<DeferredAnswer> defer_answer();
  // The bytes the direct path writes for `res`.
  std::string format_direct_response(bool close_connection, const httplib::Request& req,
                                     httplib::Response& res);
  // Loop serving (set before listening): between requests a keep-alive connection waits in an
  // epoll set that an event loop polls (loop_source(): the Raft loop's), and that loop serves on
  // its own thread each request that is whole in the buffer, on the direct path, accepted by
  // `eligible` (given the request line) and answerable later (StreamServer::defer_answer), so no
  // thread wakes between the client and the loop. Everything else (another request, one cut in
  // two, a pipelined one, one on a connection owing an answer or with unread answers, any request
  // while no loop is attached) goes to the pool as before. `eligible` must accept only requests
  // whose handler never waits for the loop: it answers at once or defers its answer.
  void enable_loop_serving(std::function<bool(std::string_view request_line)> eligible);
  // The loop's side (nullptr unless loop serving is enabled).
  LoopSource* loop_source();
  // How many requests the direct path answered (for tests and metrics).
  size_t direct_requests() const { return direct_requests_.load(std::memory_order_relaxed); }
  // The server's connections now, and how often one waited for its next request without a
  // thread (tests, metrics).
  struct ConnectionStats {
    size_t open = 0;             // accepted and not closed yet (parked ones included)
    size_t parked = 0;           // waiting for their next request without a thread (loop's set too)
    uint64_t parks = 0;          // times a connection was parked
    size_t loop_parked = 0;      // of `parked`, those in the loop's set (loop serving)
    uint64_t loop_requests = 0;  // requests the loop served itself
  };
  ConnectionStats connection_stats() const;

 private:
  struct Connection;
  class Pool;
  bool process_and_close_socket(socket_t sock) override;
  // Serves the connection's requests on this thread until it closes (false: failed), its idle
  // linger passes (it is parked: true), or the server stops.
  bool serve(std::shared_ptr<Connection> conn);
  // Waits until the connection owes no deferred answer; false when the server is closing.
  bool await_deferred(Connection& conn);
  // Does the connection owe a deferred answer?
  static bool owes_answer(Connection& conn);
  // Hands an idle connection to the epoll watcher; false when it cannot (the server is stopping,
  // or the pool is not ours), and the caller keeps it.
  bool park(const std::shared_ptr<Connection>& conn);
  // The watcher's loop: parked connections that became readable go back to the pool; those idle
  // for keep_alive_idle are closed.
  void watch_parked();
  // Under mutex_: closes a parked connection (in the watcher's set or the loop's).
  void close_parked_locked(int sock);
  // Under mutex_: the parked connection on `sock` in either set, or nullptr.
  Connection* find_parked_locked(int sock);
  // Under mutex_: starts the thread that closes idle parked connections; false if it cannot.
  bool start_watcher_locked();
  // Loop serving: hands a connection between requests to the loop's set; false when it cannot
  // (no loop attached, the server is stopping), and the caller keeps it.
  bool hand_to_loop(const std::shared_ptr<Connection>& conn);
  // Adds `conn` to `set`, polled through `epoll_fd` (one-shot), with its idle deadline kept by
  // the watcher thread (woken if that deadline is its nearest). Both waiting sets use it.
  bool watch_locked(int epoll_fd, std::map<int, std::shared_ptr<Connection>>& set,
                    const std::shared_ptr<Connection>& conn);
  // Loop thread: serves the loop's readable connections.
  void serve_loop_ready();
  // Loop thread: serves the connection's next request if the loop may, else hands it to the pool.
  void serve_on_loop(std::shared_ptr<Connection> conn);
  // The loop started or stopped serving: when it stops, its connections go to the pool.
  void set_loop_attached(bool attached);
  // A connection to be served by a pool thread (closed when there is no pool any more, or the
  // server is stopping); enqueue_locked under mutex_.
  void to_pool(std::shared_ptr<Connection> conn);
  void enqueue_locked(std::shared_ptr<Connection> conn);
  // Closes a connection no set holds, untracking it first; close_locked under mutex_.
  void close_connection(Connection& conn);
  void close_locked(int sock, ConnectionGuard& guard);
  void attach_pool(Pool* pool);
  void detach_pool(Pool* pool);
  bool stopping_locked() const { return closing_ || svr_sock_ == INVALID_SOCKET; }
  bool parks_idle() const {
    return options_.idle_thread_linger.count() > 0 &&
           options_.idle_thread_linger < options_.keep_alive_idle;
  }
  // How long a connection's thread waits for its next request at a time.
  int thread_wait_ms() const {
    return static_cast<int>(
        (parks_idle() ? options_.idle_thread_linger : options_.keep_alive_idle).count());
  }
  // Serves the buffered request through the direct path: nullopt when it is not plain or the
  // handler declined (nothing consumed; httplib serves it), else whether the connection stays
  // usable. Sets connection_closed when the request asked for the connection to be closed.
  // With only_deferrable, a request whose answer could not be deferred (the connection closes
  // after it) is declined too. `incomplete` (if given) is set when it was declined because the
  // request is not all there yet and no more came within the stream's read timeout.
  std::optional<bool> serve_directly(BufferedSocketStream& stream, bool last,
                                     bool& connection_closed,
                                     const std::shared_ptr<ConnectionGuard>& guard,
                                     bool only_deferrable = false, bool* incomplete = nullptr);
  // close_connection: the answer says "Connection: close" (the request asked for it, or it is
  // the connection's last).
  bool write_direct_response(BufferedSocketStream& stream, bool close_connection,
                             const httplib::Request& req, httplib::Response& res);
  // Do the first bytes of a new connection start with the takeover prefix?
  bool starts_with_takeover_prefix(BufferedSocketStream& stream) const;

  const StreamServerOptions options_;
  std::string takeover_prefix_;
  Takeover takeover_;
  DirectHandler direct_handler_;
  HandlerWithResponse error_handler_copy_;
  ExceptionHandler exception_handler_copy_;
  bool httplib_extras_ = false;  // see set_direct_handler
  std::atomic<size_t> direct_requests_{0};
  mutable std::mutex mutex_;
  std::map<int, bool> open_;  // socket -> idle (waiting for the next request)
  bool closing_ = false;
  // Parked connections (under mutex_): their sockets are in the epoll set (one-shot), each goes
  // back to pool_ when readable or is closed at its idle deadline.
  Pool* pool_ = nullptr;
  std::map<int, std::shared_ptr<Connection>> parked_;
  uint64_t parks_ = 0;
  std::set<std::pair<std::chrono::steady_clock::time_point, int>> deadlines_;
  std::chrono::steady_clock::time_point watcher_wakes_at_ =
      std::chrono::steady_clock::time_point::max();
  bool watcher_stop_ = false;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd: wakes the watcher (an earlier deadline, or stop)
  std::thread watcher_;
  // Loop serving (see enable_loop_serving): the loop's epoll set, and its connections (under
  // mutex_, their idle deadlines in deadlines_ with the watcher's).
  class LoopSide;
  std::unique_ptr<LoopSide> loop_side_;
  std::function<bool(std::string_view)> loop_eligible_;
  int loop_epoll_fd_ = -1;
  bool loop_attached_ = false;
  std::map<int, std::shared_ptr<Connection>> loop_parked_;
  std::atomic<uint64_t> loop_requests_{0};
};

// httplib::ClientImpl that talks through BufferedSocketStream (a request's header block and body
// go out in one segment). Same interface as httplib::Client for plain HTTP.
class StreamClient final : public httplib::ClientImpl {
 public:
  using httplib::ClientImpl::ClientImpl;

 private:
  bool process_socket(const Socket& socket,
                      std::function<bool(httplib::Stream& strm)> callback) override;
};

}  // namespace raftlock::raft::transport
