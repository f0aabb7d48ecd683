// metrics::Metrics — the node's one Prometheus registry and every metric definition.
//
// Hot paths only touch prebuilt counters, gauges and histograms. State that is cheap to read
// (log indexes, pending proposals, per-peer transport counters, follower lag) is read at scrape
// time from the sources set with set_node_status_source / set_transport_stats_source /
// set_client_connections_source.
// No user-supplied string ever becomes a label value: routes are route patterns, peers are node
// ids, outcomes and reasons are fixed sets.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "raft/runtime/node.h"
#include "raft/transport/peer_transport.h"

namespace raftlock::metrics {

// The client port's connections, read at scrape time.
struct ClientConnections {
  size_t open = 0;     // accepted and not closed yet
  size_t parked = 0;   // idle (or a request header still coming in), waiting without a thread
  uint64_t parks = 0;  // times a connection was parked
  uint64_t loop_requests = 0;  // requests the Raft loop read and served itself
};

class Metrics {
 public:
  using NodeStatusSource = std::function<raft::NodeStatus()>;
  using TransportStatsSource = std::function<raft::transport::TransportStats()>;
  using ClientConnectionsSource = std::function<ClientConnections()>;

  Metrics();

  prometheus::Registry& registry() { return *registry_; }
  // Prometheus text exposition format of every metric (reads the scrape-time sources first).
  std::string serialize() const;

  // Scrape-time sources; either may be left unset. They must stay valid while serialize() can run.
  void set_node_status_source(NodeStatusSource source);
  void set_transport_stats_source(TransportStatsSource source);
  void set_client_connections_source(ClientConnectionsSource source);

  // Raft runtime observations (RaftObserver below records them).
  prometheus::Gauge& raft_node_id;
  prometheus::Gauge& raft_term;
  prometheus::Gauge& raft_is_leader;
  prometheus::Gauge& raft_leader_id;
  prometheus::Counter& raft_leader_changes;
  prometheus::Counter& raft_elections_started;
  prometheus::Counter& raft_elections_won;
  prometheus::Counter& raft_pre_vote_campaigns;
  prometheus::Gauge& raft_last_index;             // set at scrape time
  prometheus::Gauge& raft_commit_index;           // set at scrape time
  prometheus::Gauge& raft_applied_index;          // set at scrape time
  prometheus::Gauge& raft_proposals_pending;      // set at scrape time
  prometheus::Gauge& raft_reads_pending;          // set at scrape time
  prometheus::Gauge& raft_stopped;                // set at scrape time
  prometheus::Histogram& raft_commit_latency;     // leader: appended -> committed
  prometheus::Histogram& raft_proposal_duration;  // this node's proposals: propose -> applied
  prometheus::Histogram& raft_apply_duration;
  prometheus::Counter& raft_entries_applied;
  prometheus::Histogram& raft_persist_duration;
  prometheus::Histogram& raft_read_index_latency;
  prometheus::Counter& raft_snapshots_taken;
  prometheus::Counter& raft_snapshots_installed;
  prometheus::Histogram& raft_snapshot_duration;
  prometheus::Histogram& raft_snapshot_install_duration;
  prometheus::Gauge& raft_snapshot_bytes;

  // HTTP requests: `route` is the router's route pattern (bounded), never the raw path; the
  // pattern's capture groups are shown as {name} / {id}. Methods outside the HTTP set are "other".
  void observe_request(const std::string& route, const std::string& method, int status,
                       std::chrono::nanoseconds duration);
  // The label value observe_request uses for a route pattern (exposed for tests).
  static std::string route_label(const std::string& route_pattern);

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

  // Families built from a status snapshot at scrape time (pure; exposed for tests).
  static std::vector<prometheus::MetricFamily> transport_families(
      const raft::transport::TransportStats& stats);
  static std::vector<prometheus::MetricFamily> follower_families(const raft::NodeStatus& status);
  static std::vector<prometheus::MetricFamily> loop_families(const raft::NodeStatus& status);
  static std::vector<prometheus::MetricFamily> client_connection_families(
      const ClientConnections& connections);

 private:
  explicit Metrics(std::shared_ptr<prometheus::Registry> registry);
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Histogram>& http_request_duration_;
  // The series each (route, method, status) of a request reaches, looked up in the families once.
  struct RequestSeries {
    prometheus::Counter* requests = nullptr;
    prometheus::Histogram* duration = nullptr;
  };
  std::mutex request_series_mu_;
  std::unordered_map<std::string, RequestSeries> request_series_;
  mutable std::mutex serialize_mu_;  // also guards the sources
  NodeStatusSource node_status_source_;
  TransportStatsSource transport_stats_source_;
  ClientConnectionsSource client_connections_source_;
};

// Records the node runtime's observations into Metrics (every call is on the node's loop thread).
class RaftObserver final : public raft::NodeObserver {
 public:
  explicit RaftObserver(Metrics& metrics) : metrics_(metrics) {}
  void on_soft_state(const raft::SoftState& state) override;
  void on_persist(std::chrono::nanoseconds duration, size_t entries) override;
  void on_commit_latency(std::chrono::nanoseconds propose_to_apply) override;
  void on_apply(std::chrono::nanoseconds duration, size_t entries) override;
  void on_read_index_latency(std::chrono::nanoseconds duration) override;
  void on_snapshot_taken(std::chrono::nanoseconds duration, size_t bytes) override;
  void on_snapshot_installed(std::chrono::nanoseconds duration, size_t bytes) override;
  void on_appending(raft::Index first, raft::Index last) override;
  void on_committed(raft::Index commit_index) override;

  // Appended entries whose commit is still awaited (leader only; bounded by kMaxTracked).
  size_t tracked_appends() const { return appended_.size(); }
  static constexpr size_t kMaxTracked = 1 << 16;

 private:
  using Clock = std::chrono::steady_clock;
  Metrics& metrics_;
  raft::SoftState last_{};
  std::deque<std::pair<raft::Index, Clock::time_point>> appended_;  // leader: index -> appended at
};

}  // namespace raftlock::metrics
