// transport::StreamServer / StreamClient — cpp-httplib's server and client with a leaner socket
// stream, for the peer port and the client port alike:
//  - an idle keep-alive connection waits in one blocking poll (httplib's own loop wakes every
//    ~11 ms per idle connection to check it);
//  - a message's header block is held back and sent with its body in one segment (httplib writes
//    them with two send() calls: two segments and often two wake-ups of the reader);
//  - reads are buffered (httplib reads request lines a byte at a time);
//  - stop can shut every open connection down at once (an idle or paused peer does not hold it).
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

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
  // Waits for the next request of a keep-alive connection: true once at least one byte is
  // buffered. With nothing buffered it is one blocking recv() straight into the buffer, bounded by
  // the socket's SO_RCVTIMEO (the caller sets it to the idle timeout), instead of poll() + recv().
  // False at end of stream, on an error, or when the wait timed out.
  bool await_request();
  // Reads more into the buffer (waiting at most the read timeout); false when nothing more came
  // (or the buffer is full).
  bool read_more();
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
  ssize_t recv_retrying(char* ptr, size_t size);

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
  std::string thread_name = "http-conn";            // what a connection's thread is called
};

// httplib::Server serving each accepted connection with BufferedSocketStream.
class StreamServer final : public httplib::Server {
 public:
  explicit StreamServer(StreamServerOptions options = {}) : options_(options) {}

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
  // multipart, behind Expect, of unknown length or not read by httplib (GET); Range or
  // Accept-Encoding; HEAD and other methods; anything odd in the request line or a header line; a
  // line break in the decoded path; a request larger than the connection's buffer. The direct
  // path is off while the server has no exception handler, or has default headers, routing
  // hooks, a logger or mounted directories.
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
  // How many requests the direct path answered (for tests and metrics).
  size_t direct_requests() const { return direct_requests_.load(std::memory_order_relaxed); }

 private:
  bool process_and_close_socket(socket_t sock) override;
  // Serves the buffered request through the direct path: nullopt when it is not plain or the
  // handler declined (nothing consumed; httplib serves it), else whether the connection stays
  // usable. Sets connection_closed when the request asked for the connection to be closed.
  std::optional<bool> serve_directly(BufferedSocketStream& stream, bool last,
                                     bool& connection_closed);
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
  std::mutex mutex_;
  std::map<int, bool> open_;  // socket -> idle (waiting for the next request)
  bool closing_ = false;
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
