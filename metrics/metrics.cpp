#include "metrics/metrics.h"

#include <prometheus/text_serializer.h>

namespace raftlock::metrics {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

// Latency buckets from 100 µs to ~10 s.
Histogram::BucketBoundaries latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

prometheus::Gauge& gauge(prometheus::Registry& r, const std::string& name,
                         const std::string& help) {
  return BuildGauge().Name(name).Help(help).Register(r).Add({});
}
prometheus::Counter& counter(prometheus::Registry& r, const std::string& name,
                             const std::string& help) {
  return BuildCounter().Name(name).Help(help).Register(r).Add({});
}
prometheus::Histogram& histogram(prometheus::Registry& r, const std::string& name,
                                 const std::string& help) {
  return BuildHistogram().Name(name).Help(help).Register(r).Add({}, latency_buckets());
}

}  // namespace

Metrics::Metrics() : Metrics(std::make_shared<prometheus::Registry>()) {}

Metrics::Metrics(std::shared_ptr<prometheus::Registry> r)
    : raft_term(gauge(*r, "raftlock_raft_term", "Current Raft term of this node.")),
      raft_is_leader(gauge(*r, "raftlock_raft_is_leader", "1 if this node is the Raft leader.")),
      raft_leader_id(
          gauge(*r, "raftlock_raft_leader_id", "Id of the leader this node knows (0: none).")),
      raft_leader_changes(counter(*r, "raftlock_raft_leader_changes_total",
                                  "Times the leader known to this node changed.")),
      raft_elections_started(counter(*r, "raftlock_raft_elections_started_total",
                                     "Elections this node started as a candidate.")),
      raft_elections_won(counter(*r, "raftlock_raft_elections_won_total",
                                 "Elections this node won (became leader).")),
      raft_last_index(gauge(*r, "raftlock_raft_last_index", "Index of the last entry in the log.")),
      raft_commit_index(gauge(*r, "raftlock_raft_commit_index", "Raft commit index.")),
      raft_applied_index(
          gauge(*r, "raftlock_raft_applied_index", "Last index applied to the state machine.")),
      raft_proposals_pending(
          gauge(*r, "raftlock_raft_proposals_pending", "Proposals waiting to be applied.")),
      raft_commit_latency(histogram(*r, "raftlock_raft_commit_latency_seconds",
                                    "Time from propose to apply of this node's own proposals.")),
      raft_apply_duration(histogram(*r, "raftlock_raft_apply_duration_seconds",
                                    "Time to apply one batch of committed entries.")),
      raft_persist_duration(
          histogram(*r, "raftlock_raft_persist_duration_seconds",
                    "Time to durably persist one batch (SQLite transaction + fsync).")),
      raft_read_index_latency(histogram(*r, "raftlock_raft_read_index_latency_seconds",
                                        "Time to obtain and reach a linearizable read index.")),
      raft_snapshots_taken(
          counter(*r, "raftlock_raft_snapshots_taken_total", "Local snapshots taken.")),
      raft_snapshots_installed(counter(*r, "raftlock_raft_snapshots_installed_total",
                                       "Snapshots received from the leader and installed.")),
      raft_snapshot_duration(histogram(*r, "raftlock_raft_snapshot_duration_seconds",
                                       "Time to take a local snapshot.")),
      raft_snapshot_bytes(
          gauge(*r, "raftlock_raft_snapshot_bytes", "Size of the latest snapshot.")),
      lock_acquisitions(
          BuildCounter()
              .Name("raftlock_lock_acquisitions_total")
              .Help("Lock acquire requests by outcome (granted, timed_out, rejected).")
              .Register(*r)),
      lock_wait_duration(histogram(*r, "raftlock_lock_wait_duration_seconds",
                                   "Time acquire requests spent waiting before being answered.")),
      locks_held(gauge(*r, "raftlock_locks_held", "Locks currently held.")),
      lock_waiters(gauge(*r, "raftlock_lock_waiters", "Lock and election waiters queued.")),
      leases_active(gauge(*r, "raftlock_leases_active", "Leases currently alive.")),
      lease_expirations(
          counter(*r, "raftlock_lease_expirations_total", "Leases that expired (TTL).")),
      election_leader_changes(counter(*r, "raftlock_election_leader_changes_total",
                                      "Changes of leader across all named elections.")),
      registry_(std::move(r)),
      http_requests_(BuildCounter()
                         .Name("raftlock_http_requests_total")
                         .Help("HTTP requests by route, method and status code.")
                         .Register(*registry_)),
      http_request_duration_(BuildHistogram()
                                 .Name("raftlock_http_request_duration_seconds")
                                 .Help("HTTP request latency by route.")
                                 .Register(*registry_)) {}

std::string Metrics::serialize() const {
  std::lock_guard lock(serialize_mu_);
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

void Metrics::observe_request(const std::string& route, const std::string& method, int status,
                              std::chrono::nanoseconds duration) {
  http_requests_.Add({{"route", route}, {"method", method}, {"code", std::to_string(status)}})
      .Increment();
  http_request_duration_.Add({{"route", route}}, latency_buckets()).Observe(seconds(duration));
}

void RaftObserver::on_soft_state(const raft::SoftState& state) {
  metrics_.raft_term.Set(static_cast<double>(state.term));
  metrics_.raft_is_leader.Set(state.role == raft::Role::kLeader ? 1 : 0);
  metrics_.raft_leader_id.Set(static_cast<double>(state.leader_id));
  if (state.leader_id != last_.leader_id && state.leader_id != raft::kNoNode) {
    metrics_.raft_leader_changes.Increment();
  }
  if (state.role == raft::Role::kLeader && last_.role != raft::Role::kLeader) {
    metrics_.raft_elections_won.Increment();
  }
  last_ = state;
}

void RaftObserver::on_persist(std::chrono::nanoseconds duration, size_t /*entries*/) {
  metrics_.raft_persist_duration.Observe(Metrics::seconds(duration));
}

void RaftObserver::on_commit_latency(std::chrono::nanoseconds propose_to_apply) {
  metrics_.raft_commit_latency.Observe(Metrics::seconds(propose_to_apply));
}

void RaftObserver::on_apply(std::chrono::nanoseconds duration, size_t /*entries*/) {
  metrics_.raft_apply_duration.Observe(Metrics::seconds(duration));
}

void RaftObserver::on_read_index_latency(std::chrono::nanoseconds duration) {
  metrics_.raft_read_index_latency.Observe(Metrics::seconds(duration));
}

void RaftObserver::on_snapshot_taken(std::chrono::nanoseconds duration, size_t bytes) {
  metrics_.raft_snapshots_taken.Increment();
  metrics_.raft_snapshot_duration.Observe(Metrics::seconds(duration));
  metrics_.raft_snapshot_bytes.Set(static_cast<double>(bytes));
}

void RaftObserver::on_snapshot_installed(size_t bytes) {
  metrics_.raft_snapshots_installed.Increment();
  metrics_.raft_snapshot_bytes.Set(static_cast<double>(bytes));
}

void RaftObserver::on_election_started() {
  metrics_.raft_elections_started.Increment();
}

}  // namespace raftlock::metrics
