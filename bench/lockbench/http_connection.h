// HttpConnection: one keep-alive HTTP/1.1 connection (TCP_NODELAY) of one simulated client, with
// endpoint failover (a transport error moves it to the next endpoint of the cluster).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace httplib {
class Client;
}

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
  void connect_current();
  void rotate();

  std::vector<Endpoint> endpoints_;
  size_t current_;
  std::chrono::milliseconds read_timeout_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace raftlock::bench
