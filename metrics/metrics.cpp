#include "metrics/metrics.h"

#include <prometheus/text_serializer.h>

#include <array>

namespace raftlock::metrics {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::ClientMetric;
using prometheus::Histogram;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Latency buckets from 100 µs to ~10 s.
Histogram::BucketBoundaries latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

// Lock waits and snapshots run longer: 1 ms to 5 min.
Histogram::BucketBoundaries long_buckets() {
  return {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
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
                                 const std::string& help,
                                 Histogram::BucketBoundaries buckets = latency_buckets()) {
  return BuildHistogram().Name(name).Help(help).Register(r).Add({}, std::move(buckets));
}

// The outcomes raftlock_lock_acquisitions_total is labelled with (created up front, so every
// series exists from the first scrape and rate() works from zero).
constexpr std::array<const char*, 4> kAcquireOutcomes = {"granted", "timed_out", "rejected",
                                                         "failed"};

const char* method_label(const std::string& method) {
  static constexpr std::array<const char*, 7> kMethods = {"GET",    "POST",    "PUT", "PATCH",
                                                          "DELETE", "OPTIONS", "HEAD"};
  for (const char* known : kMethods) {
    if (method == known) return known;
  }
  return "other";
}

// Sets a sample's value where its family's type reads it.
void set_value(ClientMetric& metric, MetricType type, double value) {
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
}

// A family of one unlabelled series, built at scrape time.
MetricFamily single_family(const char* name, const char* help, MetricType type, double value) {
  MetricFamily family{name, help, type, {}};
  ClientMetric metric;
  set_value(metric, type, value);
  family.metric.push_back(std::move(metric));
  return family;
}

// One family of per-peer samples; `value` reads the field from a PeerStats.
template <typename Field>
MetricFamily peer_family(const raft::transport::TransportStats& stats, const std::string& name,
                         const std::string& help, MetricType type, Field value) {
  MetricFamily family{name, help, type, {}};
  for (const auto& peer : stats.peers) {
    ClientMetric metric;
    metric.label.push_back({"peer", std::to_string(peer.id)});
    set_value(metric, type, static_cast<double>(value(peer)));
    family.metric.push_back(std::move(metric));
  }
  return family;
}

}  // namespace

Metrics::Metrics() : Metrics(std::make_shared<prometheus::Registry>()) {}

Metrics::Metrics(std::shared_ptr<prometheus::Registry> r)
    : raft_node_id(gauge(*r, "raftlock_raft_node_id", "Raft id of this node.")),
      raft_term(gauge(*r, "raftlock_raft_term", "Current Raft term of this node.")),
      raft_is_leader(gauge(*r, "raftlock_raft_is_leader", "1 if this node is the Raft leader.")),
      raft_leader_id(
          gauge(*r, "raftlock_raft_leader_id", "Id of the leader this node knows (0: none).")),
      raft_leader_changes(counter(*r, "raftlock_raft_leader_changes_total",
                                  "Times the leader known to this node changed to a new node.")),
      raft_elections_started(counter(*r, "raftlock_raft_elections_started_total",
                                     "Elections this node started as a candidate (one per term).")),
      raft_elections_won(counter(*r, "raftlock_raft_elections_won_total",
                                 "Elections this node won (became leader).")),
      raft_pre_vote_campaigns(
          counter(*r, "raftlock_raft_pre_vote_campaigns_total",
                  "Times this node became a pre-candidate and asked for pre-votes.")),
      raft_last_index(gauge(*r, "raftlock_raft_last_index", "Index of the last entry in the log.")),
      raft_commit_index(gauge(*r, "raftlock_raft_commit_index", "Raft commit index.")),
      raft_applied_index(
          gauge(*r, "raftlock_raft_applied_index", "Last index applied to the state machine.")),
      raft_proposals_pending(gauge(*r, "raftlock_raft_proposals_pending",
                                   "Proposals made on this node waiting to be applied.")),
      raft_reads_pending(gauge(*r, "raftlock_raft_reads_pending",
                               "Linearizable read barriers waiting for their read index.")),
      raft_stopped(gauge(*r, "raftlock_raft_stopped",
                         "1 if the node's Raft loop has stopped (shutdown or storage failure).")),
      raft_commit_latency(
          histogram(*r, "raftlock_raft_commit_latency_seconds",
                    "Leader only: time from appending an entry (before its fsync) to its commit.")),
      raft_proposal_duration(histogram(
          *r, "raftlock_raft_proposal_duration_seconds",
          "Time from propose to apply of proposals made on this node (forwarding included).")),
      raft_apply_duration(histogram(*r, "raftlock_raft_apply_duration_seconds",
                                    "Time to apply one batch of committed entries.")),
      raft_entries_applied(counter(*r, "raftlock_raft_entries_applied_total",
                                   "Committed entries applied to the state machine.")),
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
                                       "Time to take and store a local snapshot.", long_buckets())),
      raft_snapshot_install_duration(
          histogram(*r, "raftlock_raft_snapshot_install_duration_seconds",
                    "Time to restore the state machine from a snapshot received from the leader.",
                    long_buckets())),
      raft_snapshot_bytes(gauge(*r, "raftlock_raft_snapshot_bytes",
                                "Size of the latest snapshot taken or installed.")),
      lock_acquisitions(
          BuildCounter()
              .Name("raftlock_lock_acquisitions_total")
              .Help("Lock acquire requests by outcome (granted, timed_out, rejected, failed).")
              .Register(*r)),
      lock_wait_duration(histogram(*r, "raftlock_lock_wait_duration_seconds",
                                   "Time acquire requests spent before being answered.",
                                   long_buckets())),
      locks_held(gauge(*r, "raftlock_locks_held", "Locks currently held.")),
      lock_waiters(gauge(*r, "raftlock_lock_waiters",
                         "Acquire requests queued for locks (behind a holder or a lock-delay).")),
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
                                 .Register(*registry_)) {
  for (const char* outcome : kAcquireOutcomes) lock_acquisitions.Add({{"outcome", outcome}});
}

void Metrics::set_node_status_source(NodeStatusSource source) {
  std::lock_guard lock(serialize_mu_);
  node_status_source_ = std::move(source);
}

void Metrics::set_transport_stats_source(TransportStatsSource source) {
  std::lock_guard lock(serialize_mu_);
  transport_stats_source_ = std::move(source);
}

void Metrics::set_client_connections_source(ClientConnectionsSource source) {
  std::lock_guard lock(serialize_mu_);
  client_connections_source_ = std::move(source);
}

std::string Metrics::serialize() const {
  std::lock_guard lock(serialize_mu_);
  std::vector<MetricFamily> extra;
  if (node_status_source_) {
    const raft::NodeStatus status = node_status_source_();
    raft_node_id.Set(static_cast<double>(status.core.id));
    raft_term.Set(static_cast<double>(status.core.term));
    raft_is_leader.Set(status.core.role == raft::Role::kLeader ? 1 : 0);
    raft_leader_id.Set(static_cast<double>(status.core.leader_id));
    raft_last_index.Set(static_cast<double>(status.core.last_index));
    raft_commit_index.Set(static_cast<double>(status.core.commit_index));
    raft_applied_index.Set(static_cast<double>(status.core.applied_index));
    raft_proposals_pending.Set(static_cast<double>(status.pending_proposals));
    raft_reads_pending.Set(static_cast<double>(status.pending_reads));
    raft_stopped.Set(status.stopped ? 1 : 0);
    for (auto& family : follower_families(status)) extra.push_back(std::move(family));
    for (auto& family : loop_families(status)) extra.push_back(std::move(family));
  }
  if (transport_stats_source_) {
    for (auto& family : transport_families(transport_stats_source_())) {
      extra.push_back(std::move(family));
    }
  }
  if (client_connections_source_) {
    for (auto& family : client_connection_families(client_connections_source_())) {
      extra.push_back(std::move(family));
    }
  }
  std::vector<MetricFamily> families = registry_->Collect();
  for (auto& family : extra) families.push_back(std::move(family));
  prometheus::TextSerializer serializer;
  return serializer.Serialize(families);
}

std::vector<MetricFamily> Metrics::follower_families(const raft::NodeStatus& status) {
  const raft::CoreStatus& core = status.core;
  MetricFamily lag{"raftlock_raft_follower_lag_entries",
                   "Leader only: entries the peer's log is behind the leader's last index.",
                   MetricType::Gauge,
                   {}};
  MetricFamily match{"raftlock_raft_follower_match_index",
                     "Leader only: highest log index known to be replicated on the peer.",
                     MetricType::Gauge,
                     {}};
  if (core.role == raft::Role::kLeader) {
    for (const auto& [peer, progress] : core.progress) {
      if (peer == core.id) continue;
      ClientMetric metric;
      metric.label.push_back({"peer", std::to_string(peer)});
      metric.gauge.value = static_cast<double>(
          core.last_index > progress.match ? core.last_index - progress.match : 0);
      lag.metric.push_back(metric);
      metric.gauge.value = static_cast<double>(progress.match);
      match.metric.push_back(std::move(metric));
    }
  }
  std::vector<MetricFamily> out;
  out.push_back(std::move(lag));
  out.push_back(std::move(match));
  return out;
}

std::vector<MetricFamily> Metrics::loop_families(const raft::NodeStatus& status) {
  std::vector<MetricFamily> out;
  out.push_back(single_family(
      "raftlock_raft_loop_spin_catches_total",
      "Raft loop waits ended by an event while the loop was still polling (--loop-spin-us), "
      "without a sleep and wake-up.",
      MetricType::Counter, static_cast<double>(status.loop_spin_catches)));
  out.push_back(single_family("raftlock_raft_loop_sleeps_total",
                              "Raft loop waits that went to sleep until an event or a timer.",
                              MetricType::Counter, static_cast<double>(status.loop_sleeps)));
  return out;
}

std::vector<MetricFamily> Metrics::client_connection_families(
    const ClientConnections& connections) {
  std::vector<MetricFamily> out;
  out.push_back(single_family("raftlock_http_connections_open",
                              "Client-port connections accepted and not closed yet.",
                              MetricType::Gauge, static_cast<double>(connections.open)));
  out.push_back(
      single_family("raftlock_http_connections_parked",
                    "Client-port connections waiting for their next request (or the rest of its "
                    "header) without a thread.",
                    MetricType::Gauge, static_cast<double>(connections.parked)));
  out.push_back(
      single_family("raftlock_http_connection_parks_total",
                    "Times a client-port connection idle for 100 ms gave its thread back.",
                    MetricType::Counter, static_cast<double>(connections.parks)));
  out.push_back(single_family(
      "raftlock_http_loop_requests_total",
      "Client requests (lock acquires and releases) the Raft loop read and served itself.",
      MetricType::Counter, static_cast<double>(connections.loop_requests)));
  return out;
}

std::vector<MetricFamily> Metrics::transport_families(
    const raft::transport::TransportStats& stats) {
  using raft::transport::PeerStats;
  constexpr auto kCounter = MetricType::Counter;
  constexpr auto kGauge = MetricType::Gauge;
  std::vector<MetricFamily> out;
  out.push_back(peer_family(stats, "raftlock_transport_messages_sent_total",
                            "Raft messages delivered to the peer.", kCounter,
                            [](const PeerStats& p) { return p.sent_messages; }));
  out.push_back(peer_family(stats, "raftlock_transport_sent_bytes_total",
                            "Encoded message bytes delivered to the peer.", kCounter,
                            [](const PeerStats& p) { return p.sent_bytes; }));
  out.push_back(peer_family(stats, "raftlock_transport_messages_received_total",
                            "Raft messages received from the peer.", kCounter,
                            [](const PeerStats& p) { return p.received_messages; }));
  out.push_back(peer_family(stats, "raftlock_transport_received_bytes_total",
                            "Encoded message bytes received from the peer.", kCounter,
                            [](const PeerStats& p) { return p.received_bytes; }));
  out.push_back(peer_family(stats, "raftlock_transport_send_failures_total",
                            "Sends to the peer that failed (connection, timeout, refusal).",
                            kCounter, [](const PeerStats& p) { return p.send_failures; }));
  out.push_back(peer_family(stats, "raftlock_transport_snapshots_sent_total",
                            "Snapshots delivered to the peer.", kCounter,
                            [](const PeerStats& p) { return p.snapshots_sent; }));
  out.push_back(peer_family(stats, "raftlock_transport_snapshots_failed_total",
                            "Snapshot transfers to the peer that failed.", kCounter,
                            [](const PeerStats& p) { return p.snapshots_failed; }));
  out.push_back(peer_family(stats, "raftlock_transport_queued_messages",
                            "Messages queued for the peer.", kGauge,
                            [](const PeerStats& p) { return p.queued_messages; }));
  out.push_back(peer_family(stats, "raftlock_transport_queued_bytes",
                            "Estimated bytes queued for the peer.", kGauge,
                            [](const PeerStats& p) { return p.queued_bytes; }));
  out.push_back(peer_family(stats, "raftlock_transport_peer_backing_off",
                            "1 while sends to the peer back off after a failure.", kGauge,
                            [](const PeerStats& p) { return p.backing_off ? 1 : 0; }));
  out.push_back(peer_family(
      stats, "raftlock_transport_peer_streaming",
      "1 while a message stream to the peer is open (0: none yet, or one POST per batch to an "
      "older node).",
      kGauge, [](const PeerStats& p) { return p.streaming ? 1 : 0; }));
  MetricFamily dropped{"raftlock_transport_dropped_total",
                       "Messages or bodies the transport dropped, by reason.",
                       kCounter,
                       {}};
  for (size_t i = 0; i < stats.dropped.size(); ++i) {
    ClientMetric metric;
    metric.label.push_back(
        {"reason", raft::transport::drop_reason_name(static_cast<raft::transport::DropReason>(i))});
    metric.counter.value = static_cast<double>(stats.dropped[i]);
    dropped.metric.push_back(std::move(metric));
  }
  out.push_back(std::move(dropped));
  return out;
}

std::string Metrics::route_label(const std::string& route_pattern) {
  static const std::string kGroup = "([^/]*)";
  const bool lease = route_pattern.rfind("/v1/leases/", 0) == 0;
  std::string out = route_pattern;
  for (size_t at = out.find(kGroup); at != std::string::npos; at = out.find(kGroup, at)) {
    out.replace(at, kGroup.size(), lease ? "{id}" : "{name}");
  }
  return out;
}

void Metrics::observe_request(const std::string& route, const std::string& method, int status,
                              std::chrono::nanoseconds duration) {
  std::string key = route;
  key += '\n';
  key += method_label(method);
  key += '\n';
  key += std::to_string(status);
  RequestSeries series;
  {
    std::lock_guard lock(request_series_mu_);
    auto it = request_series_.find(key);
    if (it == request_series_.end()) {
      // Family::Add returns the series it holds for good (nothing here ever removes one).
      const std::string label = route_label(route);
      RequestSeries found;
      found.requests = &http_requests_.Add(
          {{"route", label}, {"method", method_label(method)}, {"code", std::to_string(status)}});
      found.duration = &http_request_duration_.Add({{"route", label}}, latency_buckets());
      it = request_series_.emplace(std::move(key), found).first;
    }
    series = it->second;
  }
  series.requests->Increment();
  series.duration->Observe(seconds(duration));
}

void RaftObserver::on_soft_state(const raft::SoftState& state) {
  metrics_.raft_term.Set(static_cast<double>(state.term));
  metrics_.raft_is_leader.Set(state.role == raft::Role::kLeader ? 1 : 0);
  metrics_.raft_leader_id.Set(static_cast<double>(state.leader_id));
  if (state.leader_id != last_.leader_id && state.leader_id != raft::kNoNode) {
    metrics_.raft_leader_changes.Increment();
  }
  // An election is counted once per term this node stood in: as a candidate, or straight as the
  // leader when the campaign was won within one step (a single voter).
  const bool stood = state.role == raft::Role::kCandidate || state.role == raft::Role::kLeader;
  const bool already_stood =
      (last_.role == raft::Role::kCandidate || last_.role == raft::Role::kLeader) &&
      last_.term == state.term;
  if (stood && !already_stood) metrics_.raft_elections_started.Increment();
  if (state.role == raft::Role::kLeader && last_.role != raft::Role::kLeader) {
    metrics_.raft_elections_won.Increment();
  }
  if (state.role == raft::Role::kPreCandidate && last_.role != raft::Role::kPreCandidate) {
    metrics_.raft_pre_vote_campaigns.Increment();
  }
  if (state.role != raft::Role::kLeader || state.term != last_.term) appended_.clear();
  last_ = state;
}

void RaftObserver::on_appending(raft::Index first, raft::Index last) {
  if (last_.role != raft::Role::kLeader) return;
  const auto now = Clock::now();
  if (!appended_.empty() && first <= appended_.back().first) first = appended_.back().first + 1;
  for (raft::Index index = first; index <= last; ++index) {
    if (appended_.size() >= kMaxTracked) appended_.pop_front();  // commits stalled: keep recent
    appended_.emplace_back(index, now);
  }
}

void RaftObserver::on_committed(raft::Index commit_index) {
  if (appended_.empty()) return;
  const auto now = Clock::now();
  while (!appended_.empty() && appended_.front().first <= commit_index) {
    metrics_.raft_commit_latency.Observe(Metrics::seconds(now - appended_.front().second));
    appended_.pop_front();
  }
}

void RaftObserver::on_persist(std::chrono::nanoseconds duration, size_t /*entries*/) {
  metrics_.raft_persist_duration.Observe(Metrics::seconds(duration));
}

void RaftObserver::on_commit_latency(std::chrono::nanoseconds propose_to_apply) {
  metrics_.raft_proposal_duration.Observe(Metrics::seconds(propose_to_apply));
}

void RaftObserver::on_apply(std::chrono::nanoseconds duration, size_t entries) {
  metrics_.raft_apply_duration.Observe(Metrics::seconds(duration));
  metrics_.raft_entries_applied.Increment(static_cast<double>(entries));
}

void RaftObserver::on_read_index_latency(std::chrono::nanoseconds duration) {
  metrics_.raft_read_index_latency.Observe(Metrics::seconds(duration));
}

void RaftObserver::on_snapshot_taken(std::chrono::nanoseconds duration, size_t bytes) {
  metrics_.raft_snapshots_taken.Increment();
  metrics_.raft_snapshot_duration.Observe(Metrics::seconds(duration));
  metrics_.raft_snapshot_bytes.Set(static_cast<double>(bytes));
}

void RaftObserver::on_snapshot_installed(std::chrono::nanoseconds duration, size_t bytes) {
  metrics_.raft_snapshots_installed.Increment();
  metrics_.raft_snapshot_install_duration.Observe(Metrics::seconds(duration));
  metrics_.raft_snapshot_bytes.Set(static_cast<double>(bytes));
}

}  // namespace raftlock::metrics
