#include "peer_proxy.h"

#include <httplib.h>

#include <chrono>
#include <string>

#include "cluster.h"

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

constexpr const char* kFromHeader = "X-Raftlock-From";

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

}  // namespace

PeerProxy::PeerProxy(int to, std::shared_ptr<NetworkRules> rules)
    : to_(to), rules_(std::move(rules)) {
  server_ = std::make_unique<httplib::Server>();
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

void PeerProxy::start() {
  server_->new_task_queue = [] { return new httplib::ThreadPool(96); };
  server_->set_tcp_nodelay(true);
  server_->set_keep_alive_max_count(1000000);
  server_->set_read_timeout(30, 0);
  server_->set_write_timeout(30, 0);
  server_->set_payload_max_length(256 * 1024 * 1024);
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
      std::this_thread::sleep_for(std::chrono::milliseconds(drop_hold_ms()));
      return answer_dropped(res);
    }
    if (const int delay = rules_->random_delay_ms(rule); delay > 0) {
      rules_->delayed.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      if (rules_->rule(from, to_).cut) {  // cut while it was in flight
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
    httplib::Result result =
        req.method == "GET"      ? client->Get(target, headers)
        : req.method == "DELETE" ? client->Delete(target, headers, req.body, content_type)
        : req.method == "PUT"    ? client->Put(target, headers, req.body, content_type)
                                 : client->Post(target, headers, req.body, content_type);
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
  for (int i = 0; i < 2000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void PeerProxy::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace raftlock::chaos
