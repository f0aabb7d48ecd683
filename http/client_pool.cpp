#include "http/client_pool.h"

#include <cstdlib>

namespace raftlock::http {

std::unique_ptr<raft::transport::StreamClient> ClientPool::take(const std::string& address) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    auto& idle = idle_[address];
    while (!idle.empty()) {
      Idle newest = std::move(idle.back());
      idle.pop_back();
      if (now - newest.since <= options_.max_idle_age) return std::move(newest.client);
      // Older ones are staler still: drop them all.
      idle.clear();
    }
    ++created_;
  }
  // "host:port" (the port after the last colon; an IPv6 host comes in brackets).
  const size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  const int port = colon == std::string::npos ? 80 : std::atoi(address.c_str() + colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto client = std::make_unique<raft::transport::StreamClient>(host, port);
  client->set_tcp_nodelay(true);
  client->set_keep_alive(true);
  client->set_connection_timeout(options_.connect_timeout);
  client->set_read_timeout(options_.io_timeout);
  client->set_write_timeout(options_.io_timeout);
  return client;
}

void ClientPool::give_back(const std::string& address,
                           std::unique_ptr<raft::transport::StreamClient> client) {
  std::lock_guard lock(mu_);
  auto& idle = idle_[address];
  if (idle.size() >= options_.max_idle_per_address) return;  // closes it
  idle.push_back(Idle{std::move(client), std::chrono::steady_clock::now()});
}

size_t ClientPool::created() const {
  std::lock_guard lock(mu_);
  return created_;
}

}  // namespace raftlock::http
