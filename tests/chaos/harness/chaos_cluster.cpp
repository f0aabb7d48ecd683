#include "chaos_cluster.h"

#include <signal.h>

#include <filesystem>
#include <thread>

namespace raftlock::chaos {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

ChaosCluster::ChaosCluster(int nodes, int heartbeat_ms, int election_timeout_ms)
    : rules_(std::make_shared<NetworkRules>()) {
  testing::ClusterOptions options;
  options.heartbeat_ms = heartbeat_ms;
  options.election_timeout_ms = election_timeout_ms;
  for (int id = 1; id <= nodes; ++id) {
    ids_.push_back(id);
    auto proxy = std::make_unique<PeerProxy>(id, rules_);
    proxy_ports_[id] = proxy->bind_free_port();  // bound now: no one can take it meanwhile
    options.advertised_peer_port[id] = proxy_ports_[id];
    proxies_[id] = std::move(proxy);
  }
  processes_ = std::make_unique<testing::Cluster>(nodes, options);
  for (int id : ids_) {
    client_ports_[id] = processes_->client_port(id);
    proxies_[id]->set_target(processes_->peer_port(id));
  }
}

ChaosCluster::~ChaosCluster() {
  processes_.reset();  // SIGKILLs the nodes first, so no proxy thread waits on them
  for (auto& [id, proxy] : proxies_) proxy->stop();
}

bool ChaosCluster::start(std::string* error) {
  for (int id : ids_) {
    if (proxy_ports_[id] == 0) {
      *error = "the peer proxy for node " + std::to_string(id) + " could not bind a port";
      return false;
    }
    proxies_[id]->start();
  }
  for (int id : ids_) {
    processes_->start(id);
    if (!processes_->running(id)) {
      *error = "node " + std::to_string(id) + " did not start";
      return false;
    }
  }
  return true;
}

void ChaosCluster::kill(int id) {
  std::lock_guard lock(mu_);
  processes_->kill(id, SIGKILL);
  paused_.erase(id);
}

bool ChaosCluster::restart(int id) {
  std::lock_guard lock(mu_);
  if (processes_->running(id)) return true;
  processes_->start(id);
  return processes_->running(id);
}

void ChaosCluster::pause(int id) {
  std::lock_guard lock(mu_);
  if (!processes_->running(id)) return;
  processes_->pause(id);
  paused_.insert(id);
}

void ChaosCluster::resume(int id) {
  std::lock_guard lock(mu_);
  if (!paused_.count(id)) return;
  if (processes_->running(id)) processes_->resume(id);
  paused_.erase(id);
}

bool ChaosCluster::running(int id) const {
  std::lock_guard lock(mu_);
  return processes_->running(id);
}

bool ChaosCluster::paused(int id) const {
  std::lock_guard lock(mu_);
  return paused_.count(id) > 0;
}

Json ChaosCluster::status(int id, std::chrono::milliseconds timeout) {
  auto reply = testing::http_request(client_ports_.at(id), "GET", "/v1/status", "", timeout);
  return reply.status == 200 ? reply.body : Json(nullptr);
}

std::optional<int> ChaosCluster::current_leader() {
  std::optional<int> leader;
  uint64_t best_term = 0;
  for (int id : ids_) {
    if (!running(id) || paused(id)) continue;
    Json s = status(id, 300ms);
    if (s.is_null() || s["role"] != "leader") continue;
    const uint64_t term = s["term"].get<uint64_t>();
    if (!leader || term > best_term) {
      leader = id;
      best_term = term;
    }
  }
  return leader;
}

bool ChaosCluster::heal_all(std::string* error) {
  rules_->heal();
  for (int id : ids_) resume(id);
  for (int id : ids_) {
    if (!restart(id)) {
      *error = "node " + std::to_string(id) + " did not restart after the faults were healed";
      return false;
    }
  }
  return true;
}

std::optional<int> ChaosCluster::wait_for_leader(std::chrono::milliseconds timeout) {
  return processes_->wait_for_leader(timeout);
}

bool ChaosCluster::wait_converged(std::chrono::milliseconds timeout,
                                  const std::vector<std::string>& extra_paths,
                                  std::string* detail) {
  const auto deadline = Clock::now() + timeout;
  std::vector<std::string> paths = {"/v1/locks?prefix=&consistency=stale"};
  paths.insert(paths.end(), extra_paths.begin(), extra_paths.end());
  while (true) {
    bool same = true;
    std::string why;
    std::optional<uint64_t> applied;
    std::vector<std::string> first_views;
    for (int id : ids_) {
      Json before = status(id);
      std::vector<std::string> views;
      for (const auto& path : paths) {
        auto reply = testing::http_request(client_ports_.at(id), "GET", path, "", 1s);
        views.push_back(reply.status == 200 ? reply.body.dump()
                                            : "HTTP " + std::to_string(reply.status));
      }
      Json after = status(id);
      for (size_t i = 0; i < views.size() && same; ++i) {
        if (views[i].rfind("HTTP ", 0) == 0) {
          same = false;
          why = "node " + std::to_string(id) + " answers " + paths[i] + " with " + views[i];
        }
      }
      if (!same) break;
      if (before.is_null() || after.is_null()) {
        same = false;
        why = "node " + std::to_string(id) + " does not answer /v1/status";
        break;
      }
      const uint64_t applied_before = before["applied_index"].get<uint64_t>();
      if (applied_before != after["applied_index"].get<uint64_t>() ||
          applied_before != after["commit_index"].get<uint64_t>()) {
        same = false;
        why = "node " + std::to_string(id) + " is still applying (applied " +
              std::to_string(applied_before) + ", commit " + after["commit_index"].dump() + ")";
        break;
      }
      if (!applied) {
        applied = applied_before;
        first_views = views;
      } else if (*applied != applied_before) {
        same = false;
        why = "node " + std::to_string(id) + " applied " + std::to_string(applied_before) +
              ", node " + std::to_string(ids_.front()) + " applied " + std::to_string(*applied);
        break;
      } else if (views != first_views) {
        same = false;
        for (size_t i = 0; i < views.size(); ++i) {
          if (views[i] != first_views[i]) {
            why = "at applied index " + std::to_string(*applied) + " node " + std::to_string(id) +
                  " serves " + paths[i] + " = " + views[i] + " but node " +
                  std::to_string(ids_.front()) + " serves " + first_views[i];
            break;
          }
        }
        break;
      }
    }
    if (same) return true;
    if (detail) *detail = why;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
}

void ChaosCluster::save_logs(const std::string& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  for (int id : ids_) {
    fs::copy_file(processes_->log_path(id), dir + "/node" + std::to_string(id) + ".log",
                  fs::copy_options::overwrite_existing, ec);
  }
}

}  // namespace raftlock::chaos
