#include "http/client_pool.h"

namespace raftlock::http {

std::unique_ptr<httplib::Client> ClientPool::take(const std::string& address) {
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
  auto client = std::make_unique<httplib::Client>("http://" + address);
  client->set_tcp_nodelay(true);
  client->set_keep_alive(true);
  client->set_connection_timeout(options_.connect_timeout);
  client->set_read_timeout(options_.io_timeout);
  client->set_write_timeout(options_.io_timeout);
  return client;
}

void ClientPool::give_back(const std::string& address, std::unique_ptr<httplib::Client> client) {
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
