// Unit tests of metrics::Metrics and metrics::RaftObserver: what each observation records, the
// scrape-time families, label hygiene, and that promtool accepts the whole exposition.
#include "metrics/metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>

#include "tests/metrics/prometheus_tools.h"

namespace raftlock::metrics {
namespace {

using namespace std::chrono_literals;
using raft::Role;
using raft::SoftState;
namespace tools = raftlock::testing::prometheus_tools;

using tools::sample;

double value_of(const Metrics& metrics, const std::string& series) {
  auto value = sample(metrics.serialize(), series);
  EXPECT_TRUE(value.has_value()) << "no sample " << series;
  return value.value_or(-1);
}

TEST(RaftObserver, CountsLeaderChangesElectionsAndPreVotesFromSoftStates) {
  Metrics metrics;
  RaftObserver observer(metrics);
  observer.on_soft_state(SoftState{Role::kFollower, 2, 1});      // learns leader 2
  observer.on_soft_state(SoftState{Role::kFollower, 0, 1});      // loses it
  observer.on_soft_state(SoftState{Role::kPreCandidate, 0, 1});  // pre-vote round
  observer.on_soft_state(SoftState{Role::kCandidate, 0, 2});     // election at term 2
  observer.on_soft_state(SoftState{Role::kCandidate, 0, 3});     // split vote: another at term 3
  observer.on_soft_state(SoftState{Role::kLeader, 1, 3});        // won term 3
  observer.on_soft_state(SoftState{Role::kFollower, 3, 4});      // deposed, leader 3

  EXPECT_EQ(value_of(metrics, "raftlock_raft_leader_changes_total"), 3);  // 2, 1, 3
  EXPECT_EQ(value_of(metrics, "raftlock_raft_pre_vote_campaigns_total"), 1);
  EXPECT_EQ(value_of(metrics, "raftlock_raft_elections_started_total"), 2);
  EXPECT_EQ(value_of(metrics, "raftlock_raft_elections_won_total"), 1);
  EXPECT_EQ(value_of(metrics, "raftlock_raft_term"), 4);
  EXPECT_EQ(value_of(metrics, "raftlock_raft_is_leader"), 0);
  EXPECT_EQ(value_of(metrics, "raftlock_raft_leader_id"), 3);
}

TEST(RaftObserver, ASingleVoterThatBecomesLeaderAtOnceCountsOneElectionStartedAndWon) {
  Metrics metrics;
  RaftObserver observer(metrics);
  observer.on_soft_state(SoftState{Role::kLeader, 1, 1});
  EXPECT_EQ(value_of(metrics, "raftlock_raft_elections_started_total"), 1);
  EXPECT_EQ(value_of(metrics, "raftlock_raft_elections_won_total"), 1);
  EXPECT_EQ(value_of(metrics, "raftlock_raft_is_leader"), 1);
}

TEST(RaftObserver, CommitLatencyIsObservedOncePerEntryTheLeaderAppendedWhenItCommits) {
  Metrics metrics;
  RaftObserver observer(metrics);
  // A follower's appends are not the leader's commit path.
  observer.on_soft_state(SoftState{Role::kFollower, 2, 1});
  observer.on_appending(1, 4);
  observer.on_committed(4);
  EXPECT_EQ(value_of(metrics, "raftlock_raft_commit_latency_seconds_count"), 0);

  observer.on_soft_state(SoftState{Role::kLeader, 1, 2});
  observer.on_appending(5, 7);
  observer.on_appending(7, 8);  // an overlapping report never double-counts index 7
  EXPECT_EQ(observer.tracked_appends(), 4u);
  observer.on_committed(6);
  EXPECT_EQ(value_of(metrics, "raftlock_raft_commit_latency_seconds_count"), 2);
  observer.on_committed(6);  // nothing new
  EXPECT_EQ(value_of(metrics, "raftlock_raft_commit_latency_seconds_count"), 2);
  observer.on_committed(8);
  EXPECT_EQ(value_of(metrics, "raftlock_raft_commit_latency_seconds_count"), 4);
  EXPECT_EQ(observer.tracked_appends(), 0u);

  // Losing leadership forgets uncommitted appends (they may be overwritten by the new leader).
  observer.on_appending(9, 10);
  observer.on_soft_state(SoftState{Role::kFollower, 3, 3});
  EXPECT_EQ(observer.tracked_appends(), 0u);
  observer.on_committed(10);
  EXPECT_EQ(value_of(metrics, "raftlock_raft_commit_latency_seconds_count"), 4);
}

TEST(RaftObserver, TrackedAppendsStayBoundedWhileCommitsStall) {
  Metrics metrics;
  RaftObserver observer(metrics);
  observer.on_soft_state(SoftState{Role::kLeader, 1, 1});
  observer.on_appending(1, RaftObserver::kMaxTracked + 100);
  EXPECT_EQ(observer.tracked_appends(), RaftObserver::kMaxTracked);
  observer.on_committed(RaftObserver::kMaxTracked + 100);
  EXPECT_EQ(value_of(metrics, "raftlock_raft_commit_latency_seconds_count"),
            static_cast<double>(RaftObserver::kMaxTracked));
}

TEST(RaftObserver, RecordsPersistApplySnapshotsReadsAndProposals) {
  Metrics metrics;
  RaftObserver observer(metrics);
  observer.on_persist(3ms, 10);
  observer.on_apply(1ms, 7);
  observer.on_apply(1ms, 5);
  observer.on_read_index_latency(2ms);
  observer.on_commit_latency(4ms);
  observer.on_snapshot_taken(20ms, 1000);
  observer.on_snapshot_installed(30ms, 2500);
  const std::string text = metrics.serialize();
  EXPECT_EQ(sample(text, "raftlock_raft_persist_duration_seconds_count"), 1);
  EXPECT_NEAR(*sample(text, "raftlock_raft_persist_duration_seconds_sum"), 0.003, 1e-9);
  EXPECT_EQ(sample(text, "raftlock_raft_entries_applied_total"), 12);
  EXPECT_EQ(sample(text, "raftlock_raft_apply_duration_seconds_count"), 2);
  EXPECT_EQ(sample(text, "raftlock_raft_read_index_latency_seconds_count"), 1);
  EXPECT_EQ(sample(text, "raftlock_raft_proposal_duration_seconds_count"), 1);
  EXPECT_EQ(sample(text, "raftlock_raft_snapshots_taken_total"), 1);
  EXPECT_EQ(sample(text, "raftlock_raft_snapshot_duration_seconds_count"), 1);
  EXPECT_EQ(sample(text, "raftlock_raft_snapshots_installed_total"), 1);
  EXPECT_NEAR(*sample(text, "raftlock_raft_snapshot_install_duration_seconds_sum"), 0.03, 1e-9);
  EXPECT_EQ(sample(text, "raftlock_raft_snapshot_bytes"), 2500);  // the latest one
}

raft::NodeStatus leader_status() {
  raft::NodeStatus status;
  status.core.id = 1;
  status.core.role = Role::kLeader;
  status.core.term = 7;
  status.core.leader_id = 1;
  status.core.last_index = 120;
  status.core.commit_index = 118;
  status.core.applied_index = 117;
  status.core.progress[1].match = 120;
  status.core.progress[2].match = 118;
  status.core.progress[3].match = 20;
  status.pending_proposals = 4;
  status.pending_reads = 2;
  return status;
}

TEST(Metrics, NodeStatusIsReadAtScrapeTime) {
  Metrics metrics;
  raft::NodeStatus status = leader_status();
  metrics.set_node_status_source([&status] { return status; });
  std::string text = metrics.serialize();
  EXPECT_EQ(sample(text, "raftlock_raft_node_id"), 1);
  EXPECT_EQ(sample(text, "raftlock_raft_term"), 7);
  EXPECT_EQ(sample(text, "raftlock_raft_is_leader"), 1);
  EXPECT_EQ(sample(text, "raftlock_raft_last_index"), 120);
  EXPECT_EQ(sample(text, "raftlock_raft_commit_index"), 118);
  EXPECT_EQ(sample(text, "raftlock_raft_applied_index"), 117);
  EXPECT_EQ(sample(text, "raftlock_raft_proposals_pending"), 4);
  EXPECT_EQ(sample(text, "raftlock_raft_reads_pending"), 2);
  EXPECT_EQ(sample(text, "raftlock_raft_stopped"), 0);
  EXPECT_EQ(sample(text, "raftlock_raft_loop_spin_catches_total"), 0);
  EXPECT_EQ(sample(text, "raftlock_raft_loop_sleeps_total"), 0);
  // Follower lag: per peer, never for the leader itself.
  EXPECT_EQ(sample(text, "raftlock_raft_follower_lag_entries{peer=\"2\"}"), 2);
  EXPECT_EQ(sample(text, "raftlock_raft_follower_lag_entries{peer=\"3\"}"), 100);
  EXPECT_EQ(sample(text, "raftlock_raft_follower_match_index{peer=\"3\"}"), 20);
  EXPECT_FALSE(sample(text, "raftlock_raft_follower_lag_entries{peer=\"1\"}").has_value());

  // The next scrape sees the new state; a follower exports no lag series.
  status.core.role = Role::kFollower;
  status.core.leader_id = 2;
  status.core.applied_index = 118;
  status.stopped = true;
  status.loop_spin_catches = 12;
  status.loop_sleeps = 34;
  text = metrics.serialize();
  EXPECT_EQ(sample(text, "raftlock_raft_is_leader"), 0);
  EXPECT_EQ(sample(text, "raftlock_raft_leader_id"), 2);
  EXPECT_EQ(sample(text, "raftlock_raft_applied_index"), 118);
  EXPECT_EQ(sample(text, "raftlock_raft_stopped"), 1);
  EXPECT_EQ(sample(text, "raftlock_raft_loop_spin_catches_total"), 12);
  EXPECT_EQ(sample(text, "raftlock_raft_loop_sleeps_total"), 34);
  EXPECT_EQ(text.find("raftlock_raft_follower_lag_entries{"), std::string::npos);
}

raft::transport::TransportStats two_peer_stats() {
  raft::transport::TransportStats stats;
  raft::transport::PeerStats two;
  two.id = 2;
  two.address = "127.0.0.1:7082";
  two.sent_messages = 10;
  two.sent_bytes = 1000;
  two.received_messages = 9;
  two.received_bytes = 900;
  two.send_failures = 1;
  two.snapshots_sent = 2;
  two.snapshots_failed = 1;
  two.queued_messages = 3;
  two.queued_bytes = 300;
  raft::transport::PeerStats three;
  three.id = 3;
  three.address = "127.0.0.1:7083";
  three.sent_messages = 5;
  three.backing_off = true;
  three.streaming = true;
  stats.peers = {two, three};
  stats.dropped[static_cast<size_t>(raft::transport::DropReason::kQueueFull)] = 6;
  return stats;
}

TEST(Metrics, TransportStatsBecomePerPeerSeriesLabelledByNodeId) {
  Metrics metrics;
  metrics.set_transport_stats_source([] { return two_peer_stats(); });
  const std::string text = metrics.serialize();
  EXPECT_EQ(sample(text, "raftlock_transport_messages_sent_total{peer=\"2\"}"), 10);
  EXPECT_EQ(sample(text, "raftlock_transport_sent_bytes_total{peer=\"2\"}"), 1000);
  EXPECT_EQ(sample(text, "raftlock_transport_messages_received_total{peer=\"2\"}"), 9);
  EXPECT_EQ(sample(text, "raftlock_transport_received_bytes_total{peer=\"2\"}"), 900);
  EXPECT_EQ(sample(text, "raftlock_transport_send_failures_total{peer=\"2\"}"), 1);
  EXPECT_EQ(sample(text, "raftlock_transport_snapshots_sent_total{peer=\"2\"}"), 2);
  EXPECT_EQ(sample(text, "raftlock_transport_snapshots_failed_total{peer=\"2\"}"), 1);
  EXPECT_EQ(sample(text, "raftlock_transport_queued_messages{peer=\"2\"}"), 3);
  EXPECT_EQ(sample(text, "raftlock_transport_queued_bytes{peer=\"2\"}"), 300);
  EXPECT_EQ(sample(text, "raftlock_transport_peer_backing_off{peer=\"2\"}"), 0);
  EXPECT_EQ(sample(text, "raftlock_transport_messages_sent_total{peer=\"3\"}"), 5);
  EXPECT_EQ(sample(text, "raftlock_transport_peer_backing_off{peer=\"3\"}"), 1);
  EXPECT_EQ(sample(text, "raftlock_transport_peer_streaming{peer=\"2\"}"), 0);
  EXPECT_EQ(sample(text, "raftlock_transport_peer_streaming{peer=\"3\"}"), 1);
  EXPECT_EQ(sample(text, "raftlock_transport_dropped_total{reason=\"queue_full\"}"), 6);
  EXPECT_EQ(sample(text, "raftlock_transport_dropped_total{reason=\"malformed\"}"), 0);
  // The peer's address is not a label: peers are identified by their (bounded) node id.
  EXPECT_EQ(text.find("7082"), std::string::npos);
  EXPECT_EQ(text.find("# TYPE raftlock_transport_sent_bytes_total counter") != std::string::npos,
            true);
}

TEST(Metrics, ClientConnectionsAreReadAtScrapeTime) {
  Metrics metrics;
  EXPECT_EQ(metrics.serialize().find("raftlock_http_connections_open"), std::string::npos);
  ClientConnections now{7, 5, 40, 12};
  metrics.set_client_connections_source([&now] { return now; });
  std::string text = metrics.serialize();
  EXPECT_EQ(sample(text, "raftlock_http_connections_open"), 7);
  EXPECT_EQ(sample(text, "raftlock_http_connections_parked"), 5);
  EXPECT_EQ(sample(text, "raftlock_http_connection_parks_total"), 40);
  EXPECT_NE(text.find("# TYPE raftlock_http_connections_parked gauge"), std::string::npos);
  EXPECT_NE(text.find("# TYPE raftlock_http_connection_parks_total counter"), std::string::npos);
  EXPECT_EQ(sample(text, "raftlock_http_loop_requests_total"), 12);
  EXPECT_NE(text.find("# TYPE raftlock_http_loop_requests_total counter"), std::string::npos);
  now = {2, 0, 41, 13};
  text = metrics.serialize();
  EXPECT_EQ(sample(text, "raftlock_http_connections_open"), 2);
  EXPECT_EQ(sample(text, "raftlock_http_connections_parked"), 0);
  EXPECT_EQ(sample(text, "raftlock_http_connection_parks_total"), 41);
  EXPECT_EQ(sample(text, "raftlock_http_loop_requests_total"), 13);
  metrics.set_client_connections_source(nullptr);
  EXPECT_EQ(metrics.serialize().find("raftlock_http_connections_open"), std::string::npos);
}

TEST(Metrics, RequestsAreLabelledByRoutePatternNeverByTheUsersPath) {
  EXPECT_EQ(Metrics::route_label("/v1/locks/([^/]*)/acquire"), "/v1/locks/{name}/acquire");
  EXPECT_EQ(Metrics::route_label("/v1/elections/([^/]*)"), "/v1/elections/{name}");
  EXPECT_EQ(Metrics::route_label("/v1/leases/([^/]*)/keepalive"), "/v1/leases/{id}/keepalive");
  EXPECT_EQ(Metrics::route_label("/v1/status"), "/v1/status");
  Metrics metrics;
  metrics.observe_request("/v1/locks/([^/]*)/acquire", "POST", 200, 2ms);
  metrics.observe_request("/v1/locks/([^/]*)/acquire", "POST", 409, 1ms);
  metrics.observe_request("/v1/locks/([^/]*)/acquire", "POST", 200, 2ms);
  metrics.observe_request("unmatched", "BREW", 404, 1ms);  // an odd method is not a label value
  const std::string text = metrics.serialize();
  EXPECT_EQ(
      sample(
          text,
          R"(raftlock_http_requests_total{code="200",method="POST",route="/v1/locks/{name}/acquire"})"),
      2);
  EXPECT_EQ(
      sample(
          text,
          R"(raftlock_http_requests_total{code="409",method="POST",route="/v1/locks/{name}/acquire"})"),
      1);
  EXPECT_EQ(
      sample(text, R"(raftlock_http_requests_total{code="404",method="other",route="unmatched"})"),
      1);
  EXPECT_EQ(
      sample(text,
             R"(raftlock_http_request_duration_seconds_count{route="/v1/locks/{name}/acquire"})"),
      3);
  EXPECT_EQ(text.find("BREW"), std::string::npos);
}

TEST(Metrics, EveryAcquireOutcomeSeriesExistsFromTheStart) {
  Metrics metrics;
  const std::string text = metrics.serialize();
  for (const char* outcome : {"granted", "timed_out", "rejected", "failed"}) {
    EXPECT_EQ(
        sample(text, std::string("raftlock_lock_acquisitions_total{outcome=\"") + outcome + "\"}"),
        0)
        << outcome;
  }
}

TEST(Metrics, PromtoolAcceptsTheFullExposition) {
  auto promtool = tools::find_tool("promtool");
  if (!promtool) GTEST_SKIP() << "promtool is not installed (Debian package 'prometheus')";
  Metrics metrics;
  RaftObserver observer(metrics);
  raft::NodeStatus status = leader_status();
  metrics.set_node_status_source([&status] { return status; });
  metrics.set_transport_stats_source([] { return two_peer_stats(); });
  observer.on_soft_state(SoftState{Role::kLeader, 1, 7});
  observer.on_appending(1, 2);
  observer.on_committed(2);
  observer.on_persist(1ms, 2);
  observer.on_snapshot_taken(5ms, 100);
  metrics.observe_request("/v1/locks/([^/]*)/acquire", "POST", 200, 2ms);
  metrics.lock_acquisitions.Add({{"outcome", "granted"}}).Increment();
  const std::string text = metrics.serialize();
  auto checked = tools::run_tool({*promtool, "check", "metrics"}, text);
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_EQ(checked.output, "") << "promtool lint findings:\n" << checked.output;

  // promtool's linter does catch a badly named metric (so the check above is not vacuous).
  auto bad = tools::run_tool({*promtool, "check", "metrics"},
                             "# HELP raftlock_bad_latency_ms A counter without _total.\n"
                             "# TYPE raftlock_bad_latency_ms counter\n"
                             "raftlock_bad_latency_ms 1\n");
  EXPECT_NE(bad.exit_code, 0) << bad.output;
}

}  // namespace
}  // namespace raftlock::metrics
