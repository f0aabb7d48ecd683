// raftlockd — one node of a raftlock cluster: SQLite-durable Raft, lock service, HTTP/JSON API.
#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <mutex>
#include <random>

#include "cmd/flags.h"
#include "http/api_server.h"
#include "http/proposal_forwarder.h"
#include "lockservice/service/lock_service.h"
#include "metrics/metrics.h"
#include "raft/runtime/node.h"
#include "raft/transport/leader_probe.h"
#include "raft/transport/peer_transport.h"
#include "storage/sqlite_log_store.h"

namespace {

using namespace raftlock;

int fail(const std::string& message) {
  std::fprintf(stderr, "raftlockd: %s\n", message.c_str());
  return 1;
}

// The founding membership: --initial-cluster, or this node alone.
raft::Configuration bootstrap_config(const cmd::ServerFlags& flags) {
  raft::Configuration config;
  if (flags.initial_cluster.empty()) {
    config.members.push_back(raft::Member{flags.id, true, flags.peer_addr.to_string()});
  } else {
    for (const auto& [id, addr] : flags.initial_cluster) {
      config.members.push_back(raft::Member{id, true, addr.to_string()});
    }
  }
  return config;
}

// A stable id for the founding membership; recorded in the data dir and on every peer message.
std::string cluster_id_of(const raft::Configuration& config) {
  uint64_t hash = 1469598103934665603ULL;  // FNV-1a
  for (const auto& member : config.members) {
    const std::string part = std::to_string(member.id) + "=" + member.context + ",";
    for (unsigned char c : part) hash = (hash ^ c) * 1099511628211ULL;
  }
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

// Peer addresses as the membership says, readable from any thread.
class PeerDirectory {
 public:
  void update(const raft::Configuration& config) {
    std::lock_guard lock(mu_);
    addresses_.clear();
    for (const auto& member : config.members) addresses_[member.id] = member.context;
  }
  std::optional<std::string> find(raft::NodeId id) const {
    std::lock_guard lock(mu_);
    auto it = addresses_.find(id);
    if (it == addresses_.end()) return std::nullopt;
    return it->second;
  }
  std::map<raft::NodeId, std::string> all() const {
    std::lock_guard lock(mu_);
    return addresses_;
  }

 private:
  mutable std::mutex mu_;
  std::map<raft::NodeId, std::string> addresses_;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = cmd::parse_server_flags(args, cmd::raftlock_environment());
  if (!parsed) {
    return fail(parsed.error().message);
  }
  const cmd::ServerFlags flags = *parsed;
  if (flags.help) {
    std::cout << cmd::server_usage();
    return 0;
  }

  auto logger = spdlog::stderr_color_mt("raftlockd");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ node=" + std::to_string(flags.id) + " %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(flags.log_level));

  // Block the shutdown signals in every thread; main waits for them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Storage: refuses a corrupt, foreign or newer data dir with one clear line.
  const raft::Configuration founding = bootstrap_config(flags);
  storage::SqliteLogStore::OpenOptions store_options;
  store_options.data_dir = flags.data_dir;
  store_options.node_id = flags.id;
  store_options.cluster_id = cluster_id_of(founding);
  store_options.bootstrap_config = founding;
  store_options.adopt_stored_cluster_id = true;  // --initial-cluster only matters when new
  auto opened = storage::SqliteLogStore::open(store_options);
  if (!opened) return fail(opened.error().message);
  std::unique_ptr<storage::SqliteLogStore> store = std::move(opened.value());
  const std::string cluster_id = store->cluster_id();

  metrics::Metrics metrics;
  metrics::RaftObserver observer(metrics);
  lockservice::LockService service(&metrics);
  PeerDirectory peers;

  raft::NodeOptions node_options;
  node_options.core.id = flags.id;
  node_options.core.heartbeat_ticks = 1;
  node_options.core.election_ticks =
      std::max(2, flags.election_timeout_ms / std::max(1, flags.heartbeat_ms));
  node_options.core.random_seed = std::random_device{}() ^ (flags.id * 0x9E3779B97F4A7C15ULL);
  node_options.tick_interval = std::chrono::milliseconds(flags.heartbeat_ms);
  node_options.snapshot_every = flags.snapshot_every;
  node_options.idle_spin = std::chrono::microseconds(flags.loop_spin_us);

  std::unique_ptr<raft::transport::PeerTransport> transport;
  raft::Node node(node_options, *store, service, [&transport](std::vector<raft::Message> messages) {
    if (transport) transport->send(std::move(messages));
  });
  node.set_observer(&observer);

  // Peer transport on the peer port; it also serves proposals and requests forwarded by followers.
  raft::transport::PeerTransportOptions transport_options;
  transport_options.self = flags.id;
  transport_options.cluster_id = cluster_id;
  transport_options.listen_addr = flags.peer_addr.to_string();
  transport_options.server_threads =
      128;  // also serves proposals and requests forwarded to the leader
  transport = std::make_unique<raft::transport::PeerTransport>(
      transport_options,
      [&node](std::vector<raft::Message> messages) { node.receive(std::move(messages)); },
      [&node](raft::NodeId peer) { node.report_unreachable(peer); },
      [&node](raft::NodeId peer, bool ok) { node.report_snapshot(peer, ok); });
  // The loop reads the peers' message streams itself: no thread hand-off per incoming batch.
  node.set_inbox(transport->loop_inbox());
  // Read at scrape time: log indexes, pending work, follower lag, per-peer transport counters.
  metrics.set_node_status_source([&node] { return node.status(); });
  metrics.set_transport_stats_source([&transport] { return transport->stats(); });

  http::ApiServerOptions api_options;
  api_options.host = flags.client_addr.host;
  api_options.port = flags.client_addr.port;
  http::ApiServer api(api_options, node, service, metrics,
                      [&peers](raft::NodeId id) { return peers.find(id); });

  transport->set_route_installer([&](httplib::Server& server) {
    // Leader side of proposal forwarding: append (one command or a batch) and say where.
    http::install_append_routes(server, node, cluster_id);
    api.install(server);
  });

  // Follower side of proposal forwarding: batched, off the loop thread (the loop never blocks on
  // the network).
  http::ProposalForwarderOptions forwarder_options;
  forwarder_options.cluster_id = cluster_id;
  forwarder_options.self_id = std::to_string(flags.id);
  http::ProposalForwarder forwarder(forwarder_options,
                                    [&peers](raft::NodeId id) { return peers.find(id); });
  node.set_forwarder([&forwarder](raft::NodeId leader, std::string command,
                                  std::function<void(Result<raft::EntryId>)> done) {
    forwarder.forward(leader, std::move(command), std::move(done));
  });
  // A leader this node has a message stream to runs a version that also takes forwarded
  // proposals as messages: straight from this loop to its loop, no HTTP exchange.
  node.set_message_forwarding(
      [&transport](raft::NodeId leader) { return transport && transport->streaming_to(leader); });
  node.set_config_listener([&peers, &transport, &flags](const raft::Configuration& config) {
    peers.update(config);
    if (!transport) return;
    for (const auto& member : config.members) {
      if (member.id != flags.id) (void)transport->set_peer(member.id, member.context);
    }
  });
  // Fast failover: a follower probes a silent leader's peer port; refused = its process is gone.
  node.set_leader_prober([&peers, &flags](raft::NodeId leader) {
    const auto address = peers.find(leader);
    const auto timeout = std::chrono::milliseconds(std::clamp(flags.heartbeat_ms, 10, 100));
    return address && raft::transport::probe_peer_port(*address, timeout) ==
                          raft::transport::ProbeOutcome::kRefused;
  });
  service.attach(node);

  auto shutdown = [&] {
    service.shutdown();  // parked requests answer 503 unavailable
    api.stop();
    node.stop();
    transport->stop();
    forwarder.stop();
    store.reset();
  };
  Status started = transport->start();
  if (started) started = api.start();
  if (started && api.loop_source() != nullptr) node.add_loop_source(api.loop_source());
  if (started) started = node.start();
  if (!started) {
    shutdown();
    return fail(started.error().message);
  }
  spdlog::info("raftlockd node {} up: client {} peer {} data dir {} cluster {}", flags.id,
               flags.client_addr.to_string(), flags.peer_addr.to_string(), flags.data_dir,
               cluster_id);

  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("received {}, shutting down", received == SIGTERM ? "SIGTERM" : "SIGINT");
  shutdown();
  spdlog::info("shutdown complete");
  return 0;
}
