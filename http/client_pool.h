// http::ClientPool — keep-alive HTTP clients to other nodes, shared by the threads that relay to
// the leader: reuse saves a handshake and a TIME_WAIT socket per request, and the number of idle
// connections stays bounded (each open connection holds a thread of the peer's server).
#pragma once

#include <httplib.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "raft/transport/stream_server.h"

namespace raftlock::http {

struct ClientPoolOptions {
  std::chrono::milliseconds connect_timeout{500};
  std::chrono::milliseconds io_timeout{5000};
  size_t max_idle_per_address = 16;
  // httplib's server closes a connection idle for 5 s and its client does not notice before
  // writing to it; a client idle longer than this is dropped instead of reused.
  std::chrono::milliseconds max_idle_age{2000};
};

class ClientPool {
 public:
  explicit ClientPool(ClientPoolOptions options = {}) : options_(options) {}

  // A client to "host:port": an idle pooled one, or a new one.
  std::unique_ptr<raft::transport::StreamClient> take(const std::string& address);
  // Returns a client after a successful request (one that failed is just dropped).
  void give_back(const std::string& address, std::unique_ptr<raft::transport::StreamClient> client);
  // Clients created so far (each is one new connection): how well reuse works.
  size_t created() const;

 private:
  struct Idle {
    std::unique_ptr<raft::transport::StreamClient> client;
    std::chrono::steady_clock::time_point since;
  };
  ClientPoolOptions options_;
  mutable std::mutex mu_;
  size_t created_ = 0;
  std::map<std::string, std::vector<Idle>> idle_;
};

}  // namespace raftlock::http
