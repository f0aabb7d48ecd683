// HttpConnection: one keep-alive HTTP/1.1 connection (TCP_NODELAY) of one simulated client, with
// endpoint failover (a transport error moves it to the next endpoint of the cluster).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace raftlock::bench {

// host:port of one node's client API.
struct Endpoint {
  std::string host;
  int port = 0;
  std::string text() const { return host + ":" + std::to_string(port); }
};

// Parses "h:p,h:p,...". Returns an empty list on a malformed entry.
std::vector<Endpoint> parse_endpoints(const std::string& text);

// What one request got back. transport_ok is false when no HTTP answer arrived (refused,
// reset, timed out); status and body are then meaningless.
struct HttpAnswer {
  bool transport_ok = false;
  int status = 0;
  std::string body;
};

class HttpConnection {
 public:
  HttpConnection(std::vector<Endpoint> endpoints, size_t first_endpoint,
                 std::chrono::milliseconds read_timeout);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  HttpAnswer post(const std::string& path, const std::string& body);
  HttpAnswer get(const std::string& path);
  HttpAnswer del(const std::string& path);

  size_t endpoint_index() const { return current_; }

 private:
  // How reading one response ended.
  enum class ReadOutcome {
    kComplete,             // a whole final response was parsed
    kClosedBeforeAnyByte,  // EOF or reset before the first response byte (idle close)
    kFailed,               // timeout, malformed, too large, or EOF/reset mid-response
  };

  HttpAnswer request(const char* method, const std::string& path, const std::string* body);
  bool connect_current();
  void close_socket();
  void rotate();
  bool send_request();
  ReadOutcome read_response(HttpAnswer& answer, bool& close_after);
  // recv()s more bytes into buffer_ (growing it to hold at least min_free more bytes). Returns
  // >0 bytes read, 0 on EOF, -1 on error or timeout (errno_out holds the errno).
  long receive_more(size_t min_free, bool first, std::chrono::steady_clock::time_point deadline,
                    int& errno_out);
  void compact(size_t& cursor);
  bool set_receive_timeout(std::chrono::microseconds timeout);

  std::vector<Endpoint> endpoints_;
  size_t current_;
  std::chrono::milliseconds read_timeout_;
  int fd_ = -1;
  bool reused_ = false;  // the open socket already carried a whole response
  std::chrono::microseconds receive_timeout_set_{0};
  std::string request_;       // the request being sent, rebuilt in place each time
  std::vector<char> buffer_;  // received bytes; buffer_.size() is the capacity
  size_t filled_ = 0;         // bytes of buffer_ holding received data
};

}  // namespace raftlock::bench
