// metrics::Metrics — the node's one Prometheus registry and every metric definition.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "raft/runtime/node.h"

namespace raftlock::metrics {

class Metrics {
 public:
  Metrics();

  prometheus::Registry& registry() { return *registry_; }
  // Prometheus text exposition format of every metric.
  std::string serialize() const;

  // Raft runtime observations (metrics/raft_observer.cpp implements raft::NodeObserver with them).
  prometheus::Gauge& raft_term;
  prometheus::Gauge& raft_is_leader;
  prometheus::Gauge& raft_leader_id;
  prometheus::Counter& raft_leader_changes;
  prometheus::Counter& raft_elections_started;
  prometheus::Counter& raft_elections_won;
  prometheus::Gauge& raft_last_index;
  prometheus::Gauge& raft_commit_index;
  prometheus::Gauge& raft_applied_index;
  prometheus::Gauge& raft_proposals_pending;
  prometheus::Histogram& raft_commit_latency;
  prometheus::Histogram& raft_apply_duration;
  prometheus::Histogram& raft_persist_duration;
  prometheus::Histogram& raft_read_index_latency;
  prometheus::Counter& raft_snapshots_taken;
  prometheus::Counter& raft_snapshots_installed;
  prometheus::Histogram& raft_snapshot_duration;
  prometheus::Gauge& raft_snapshot_bytes;

  // HTTP requests: route is the route pattern's name (bounded), never a user string.
  void observe_request(const std::string& route, const std::string& method, int status,
                       std::chrono::nanoseconds duration);

  // Lock service.
  prometheus::Family<prometheus::Counter>& lock_acquisitions;  // label outcome
  prometheus::Histogram& lock_wait_duration;
  prometheus::Gauge& locks_held;
  prometheus::Gauge& lock_waiters;
  prometheus::Gauge& leases_active;
  prometheus::Counter& lease_expirations;
  prometheus::Counter& election_leader_changes;

  static double seconds(std::chrono::nanoseconds duration) {
    return std::chrono::duration<double>(duration).count();
  }

 private:
  explicit Metrics(std::shared_ptr<prometheus::Registry> registry);
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Histogram>& http_request_duration_;
  mutable std::mutex serialize_mu_;
};

// Records the node runtime's observations into Metrics.
class RaftObserver final : public raft::NodeObserver {
 public:
  explicit RaftObserver(Metrics& metrics) : metrics_(metrics) {}
  void on_soft_state(const raft::SoftState& state) override;
  void on_persist(std::chrono::nanoseconds duration, size_t entries) override;
  void on_commit_latency(std::chrono::nanoseconds propose_to_apply) override;
  void on_apply(std::chrono::nanoseconds duration, size_t entries) override;
  void on_read_index_latency(std::chrono::nanoseconds duration) override;
  void on_snapshot_taken(std::chrono::nanoseconds duration, size_t bytes) override;
  void on_snapshot_installed(size_t bytes) override;
  void on_election_started() override;

 private:
  Metrics& metrics_;
  raft::SoftState last_{};
};

}  // namespace raftlock::metrics
