// http::ApiServer — the HTTP/JSON client API: route, parse and validate, call the lock service,
// map results and errors to the contract's JSON. No business rules live here.
#pragma once

#include <httplib.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "common/result.h"
#include "http/client_pool.h"
#include "http/json_io.h"
#include "http/router.h"
#include "lockservice/service/lock_service.h"
#include "metrics/metrics.h"
#include "raft/runtime/node.h"
#include "raft/transport/stream_server.h"

namespace raftlock::http {

struct ApiServerOptions {
  std::string host = "127.0.0.1";
  int port = 7070;       // 0 picks a free port (tests)
  size_t threads = 512;  // a waiting observe holds a thread (an acquire or campaign does not)
  size_t max_body_bytes = 64 * 1024;
  std::chrono::milliseconds forward_timeout{10000};
  // Lock acquires and releases on a keep-alive connection are read and served by the node's Raft
  // loop itself (StreamServer::enable_loop_serving), once the loop serves loop_source().
  bool serve_on_raft_loop = true;
};

class ApiServer {
 public:
  // Resolves a node id to its peer address ("host:port"), where forwarded requests go.
  using PeerResolver = std::function<std::optional<std::string>(raft::NodeId)>;

  ApiServer(ApiServerOptions options, raft::Node& node, lockservice::LockService& service,
            metrics::Metrics& metrics, PeerResolver peers);
  ~ApiServer();

  // Binds the client port (a clear error naming it when taken) and serves in a thread.
  Status start();
  void stop();
  int port() const { return bound_port_; }
  // After start(), for the node's loop (Node::add_loop_source); nullptr when the loop does not
  // serve client requests.
  raft::LoopSource* loop_source() { return server_ ? server_->loop_source() : nullptr; }

  // Serves the client API (for requests another node forwards to the leader) on `server`.
  void install(httplib::Server& server);

 private:
  void build_routes();
  void register_handlers(httplib::Server& server, const std::string& pattern);
  void handle(const httplib::Request& request, httplib::Response& response);
  // Forwards the request to the leader's peer port and relays its answer. Returns false (and
  // writes 503 no_leader) when there is no leader to forward to.
  void forward_to_leader(const httplib::Request& request, httplib::Response& response);
  bool forwarded(const httplib::Request& request) const;
  // Keepalive and lease reads need the leader's clock: parses the id, relays to the leader when
  // this node is not it, maps errors. nullopt when the response is already written.
  std::optional<lockservice::LeaseStatus> leader_lease_status(
      const httplib::Request& request, httplib::Response& response, const std::string& id_text,
      Result<lockservice::LeaseStatus> (lockservice::LockService::*read)(lockservice::LeaseId));

  // The callback that answers `request` later through `deferred` (see
  // StreamServer::defer_answer): `answer` writes the response for the service's result.
  lockservice::LockService::CommandCallback answer_later(
      const httplib::Request& request, std::shared_ptr<raft::transport::DeferredAnswer> deferred,
      std::function<void(const Result<lockservice::CommandResult>&, httplib::Response&)> answer);
  // Answers a command's request: later, through `later` with no thread waiting, when the
  // connection allows it (StreamServer::defer_answer); otherwise now, with `now`'s result.
  void answer_command(
      const httplib::Request& request, httplib::Response& response,
      std::function<void(const Result<lockservice::CommandResult>&, httplib::Response&)> answer,
      const std::function<void(lockservice::LockService::CommandCallback)>& later,
      const std::function<Result<lockservice::CommandResult>()>& now);

  // Handlers.
  void status(const httplib::Request&, httplib::Response&);
  void readyz(const httplib::Request&, httplib::Response&);
  void create_lease(const httplib::Request&, httplib::Response&);
  void keepalive(const httplib::Request&, httplib::Response&, const std::string& id);
  void get_lease(const httplib::Request&, httplib::Response&, const std::string& id);
  void revoke_lease(const httplib::Request&, httplib::Response&, const std::string& id);
  void acquire(const httplib::Request&, httplib::Response&, const std::string& name);
  void release(const httplib::Request&, httplib::Response&, const std::string& name);
  void get_lock(const httplib::Request&, httplib::Response&, const std::string& name);
  void list_locks(const httplib::Request&, httplib::Response&);
  void campaign(const httplib::Request&, httplib::Response&, const std::string& name);
  void proclaim(const httplib::Request&, httplib::Response&, const std::string& name);
  void resign(const httplib::Request&, httplib::Response&, const std::string& name);
  void get_election(const httplib::Request&, httplib::Response&, const std::string& name);
  void observe(const httplib::Request&, httplib::Response&, const std::string& name);

  ApiServerOptions options_;
  raft::Node& node_;
  lockservice::LockService& service_;
  metrics::Metrics& metrics_;
  PeerResolver peers_;
  ClientPool relay_clients_;  // keep-alive connections for requests relayed to the leader
  Router router_;
  std::unique_ptr<raft::transport::StreamServer> server_;
  std::thread thread_;
  int bound_port_ = 0;
  int listen_socket_ = -1;  // the listening socket (for its accept backlog)
};

}  // namespace raftlock::http
