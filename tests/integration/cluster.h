// testing::Cluster — real raftlockd processes on loopback for integration tests: start, SIGKILL,
// SIGSTOP/SIGCONT, restart, and a small HTTP/JSON client.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace raftlock::testing {

using Json = nlohmann::json;

struct HttpReply {
  int status = 0;  // 0: no answer (connection failed or timed out)
  Json body;       // parsed JSON (null if the body was not JSON)
  std::string raw;
  std::map<std::string, std::string> headers;
};

// One HTTP request to 127.0.0.1:port. `body` empty sends no body.
HttpReply http_request(int port, const std::string& method, const std::string& path,
                       const std::string& body = "",
                       std::chrono::milliseconds timeout = std::chrono::seconds(10),
                       const std::map<std::string, std::string>& headers = {});

// A port on 127.0.0.1 that was free a moment ago.
int free_port();

// Path of the raftlockd binary under test.
std::string raftlockd_path();

struct ClusterOptions {
  int heartbeat_ms = 50;
  int election_timeout_ms = 500;
  int snapshot_every = 10000;
  std::vector<std::string> extra_args;
  // Node id -> the peer port its membership entry (--initial-cluster) names, when that differs
  // from the port it listens on (a fault-injecting proxy in between). Missing ids: the same port.
  std::map<int, int> advertised_peer_port;
};

class Cluster {
 public:
  explicit Cluster(int size, ClusterOptions options = {});
  ~Cluster();  // SIGKILLs every process and removes the data dirs (logs are printed on failure)
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  std::vector<int> ids() const;
  int client_port(int id) const { return nodes_.at(id).client_port; }
  int peer_port(int id) const { return nodes_.at(id).peer_port; }
  const std::string& data_dir(int id) const { return nodes_.at(id).data_dir; }
  std::string log_path(int id) const { return nodes_.at(id).data_dir + ".log"; }

  void start_all();
  void start(int id);
  // Sends `signal` (SIGKILL by default) and reaps the process.
  void kill(int id, int signal = 9);
  // SIGTERM; returns the exit code (or -signal if killed), waiting up to `timeout`.
  int terminate(int id, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void pause(int id);   // SIGSTOP; returns once every thread of the node is stopped
  void resume(int id);  // SIGCONT
  bool running(int id) const { return nodes_.at(id).pid > 0; }

  // The leader all running nodes agree on, waiting up to `timeout`; nullopt if none.
  std::optional<int> wait_for_leader(std::chrono::milliseconds timeout = std::chrono::seconds(15),
                                     const std::vector<int>& among = {});
  // Waits until every running node has applied at least `index`.
  bool wait_for_applied(uint64_t index, std::chrono::milliseconds timeout,
                        const std::vector<int>& among = {});
  Json status(int id);

  HttpReply request(int id, const std::string& method, const std::string& path,
                    const Json& body = nullptr,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

  void dump_logs(size_t last_lines = 40) const;

 private:
  struct NodeProcess {
    int id = 0;
    pid_t pid = -1;
    int client_port = 0;
    int peer_port = 0;
    std::string data_dir;
  };
  std::string initial_cluster() const;

  ClusterOptions options_;
  std::string root_;
  std::map<int, NodeProcess> nodes_;
};

// Runs raftlockd with `args` to completion (for flag/refusal tests): exit code and stderr.
struct ProcessOutcome {
  int exit_code = 0;
  std::string stderr_text;
  bool timed_out = false;
};
ProcessOutcome run_raftlockd(const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10),
                             const std::map<std::string, std::string>& env = {});

}  // namespace raftlock::testing
