// chaos::ChaosCluster — real raftlockd processes whose peer links all go through fault-injecting
// proxies, with the fault primitives the nemesis uses (kill, restart, pause, network rules), the
// heal that undoes them all, and the check that every node converged to the same state.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cluster.h"
#include "peer_proxy.h"

namespace raftlock::chaos {

using Json = nlohmann::json;

class ChaosCluster {
 public:
  ChaosCluster(int nodes, int heartbeat_ms, int election_timeout_ms);
  ~ChaosCluster();
  ChaosCluster(const ChaosCluster&) = delete;
  ChaosCluster& operator=(const ChaosCluster&) = delete;

  // Starts the proxies and every node; false (with `error`) if something could not start.
  bool start(std::string* error);

  std::vector<int> ids() const { return ids_; }
  int size() const { return static_cast<int>(ids_.size()); }
  int client_port(int id) const { return client_ports_.at(id); }
  NetworkRules& rules() { return *rules_; }
  testing::Cluster& processes() { return *processes_; }

  // Fault primitives (one caller at a time: the nemesis, or the runner once it stopped).
  void kill(int id);
  bool restart(int id);  // false if it did not come up
  void pause(int id);
  void resume(int id);
  bool running(int id) const;
  bool paused(int id) const;
  // The node that says it is leader with the highest term among running, unpaused nodes.
  std::optional<int> current_leader();

  // Heals the network, resumes paused nodes and restarts dead ones.
  bool heal_all(std::string* error);
  std::optional<int> wait_for_leader(std::chrono::milliseconds timeout);
  // Waits until every node has applied the same index and serves the same local (stale) state:
  // the held locks and the given extra stale GET paths. `detail` says what differed last.
  bool wait_converged(std::chrono::milliseconds timeout,
                      const std::vector<std::string>& extra_paths, std::string* detail);

  Json status(int id, std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));
  // Copies every node's log into `dir`.
  void save_logs(const std::string& dir) const;

 private:
  std::vector<int> ids_;
  std::map<int, int> client_ports_;
  std::map<int, int> proxy_ports_;
  std::shared_ptr<NetworkRules> rules_;
  std::unique_ptr<testing::Cluster> processes_;
  std::map<int, std::unique_ptr<PeerProxy>> proxies_;
  std::set<int> paused_;
  mutable std::mutex mu_;
};

}  // namespace raftlock::chaos
