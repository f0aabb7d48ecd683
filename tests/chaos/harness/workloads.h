// chaos workloads — client threads driving the HTTP API of every node while the nemesis works,
// recording what the checkers need (history.h): linearizability histories, fencing grants and
// register writes, election observations and wins, and the acknowledged-write ledger.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "chaos_cluster.h"
#include "history.h"

namespace httplib {
class Client;
}

namespace raftlock::chaos {

Nanos now_ns();

// Operation outcomes counted across a run, for the statistics.
struct OpCounts {
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> error{0};    // a definite refusal (409, 404)
  std::atomic<uint64_t> unknown{0};  // timeout, no connection, 5xx
};

// One client's keep-alive connection to a node's client port (one request at a time).
class NodeClient {
 public:
  struct Reply {
    int status = 0;  // 0: no answer
    Json body;
  };
  explicit NodeClient(int port);
  ~NodeClient();
  void connect(int port);  // talk to another node from now on
  int port() const { return port_; }
  Reply request(const std::string& method, const std::string& path, const Json& body,
                std::chrono::milliseconds timeout);

 private:
  int port_;
  std::unique_ptr<httplib::Client> client_;
};

struct WorkloadEnv {
  ChaosCluster* cluster = nullptr;
  uint64_t seed = 1;
  int lease_ttl_ms = 3000;
  const std::atomic<bool>* stop = nullptr;
  OpCounts* counts = nullptr;
};

// Clients with client-chosen lease ids (one lease per client, each client on one lock) acquiring,
// releasing, reading, keeping alive and revoking; every operation recorded.
History run_linearizable(const WorkloadEnv& env, int clients, int locks);

// Clients taking one lock with waits and writing their token to a fencing register.
FencingRecord run_fencing(const WorkloadEnv& env, int clients);

// Candidates campaigning, resigning and letting leases lapse; observers long-polling.
ElectionRecord run_elections(const WorkloadEnv& env, const std::string& election, int candidates,
                             int observers);
// After the workload, on a healed cluster: reads `election` through node `via` (linearizable) and,
// while someone still leads, resigns that leader with its own lease and token, until a read shows
// no leader; every read is added to `record` (observer 1000). Shows, whatever the random schedule
// did, that "leader gone" is observed after a leader.
void observe_leader_gone(ChaosCluster& cluster, int via, const std::string& election,
                         ElectionRecord& record, std::chrono::milliseconds timeout);

// Writes whose acknowledgements must survive every node crashing at once.
struct DurabilityLedger {
  std::vector<AckedWrite> acked;
  std::vector<std::string> locks;  // every lock name used
  std::vector<uint64_t> leases;    // every lease id tried (acknowledged or not)
};
DurabilityLedger run_durability_writes(const WorkloadEnv& env, int clients, int locks);

// The linearizable state of `locks` and `leases`, read through node `via` (retried until it
// answers or `timeout`); nullopt on timeout.
std::optional<ObservedState> read_observed_state(ChaosCluster& cluster, int via,
                                                 const std::vector<std::string>& locks,
                                                 const std::vector<uint64_t>& leases,
                                                 std::chrono::milliseconds timeout);

}  // namespace raftlock::chaos
