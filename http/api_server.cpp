#include "http/api_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>

#include "common/thread_name.h"
#include "lockservice/validation.h"

namespace raftlock::http {
namespace {

using lockservice::CommandResult;
using lockservice::Outcome;
using Clock = std::chrono::steady_clock;

constexpr const char* kForwardedHeader = "X-Raftlock-Forwarded";

ClientPoolOptions relay_pool_options(std::chrono::milliseconds io_timeout) {
  ClientPoolOptions options;
  options.io_timeout = io_timeout;
  return options;
}

constexpr const char* kNamePattern = Router::kSegment;  // empty names reach check_name: 400

// --- Views as JSON ---------------------------------------------------------------------------

Json holder_json(const std::optional<lockservice::LockHolderView>& holder) {
  if (!holder) return nullptr;
  return {{"owner", holder->owner},
          {"lease_id", holder->lease_id},
          {"fencing_token", holder->fencing_token}};
}

Json lock_json(const lockservice::LockView& view) {
  return {{"name", view.name},
          {"held", view.held},
          {"holder", holder_json(view.holder)},
          {"fencing_token", view.fencing_token ? Json(*view.fencing_token) : Json(nullptr)},
          {"waiters", view.waiters},
          {"revision", view.revision}};
}

Json leader_json(const std::optional<lockservice::ElectionLeaderView>& leader) {
  if (!leader) return nullptr;
  return {{"value", leader->value},
          {"lease_id", leader->lease_id},
          {"fencing_token", leader->fencing_token}};
}

Json election_json(const lockservice::ElectionView& view) {
  return {{"name", view.name}, {"leader", leader_json(view.leader)}, {"revision", view.revision}};
}

// --- Request parsing helpers ----------------------------------------------------------------

// Reads an optional integer field; on a bad value writes 400 and returns false.
bool read_int(const Json& body, const std::string& field, int64_t min, int64_t max,
              std::optional<int64_t>& out, httplib::Response& response) {
  auto value = get_int(body, field, min, max);
  if (!value) {
    write_error(response, 400, "invalid_argument", value.error().message);
    return false;
  }
  out = *value;
  return true;
}

bool read_string(const Json& body, const std::string& field, size_t max_length,
                 std::optional<std::string>& out, httplib::Response& response) {
  auto value = get_string(body, field, max_length);
  if (!value) {
    write_error(response, 400, "invalid_argument", value.error().message);
    return false;
  }
  out = *value;
  return true;
}

bool check_name(const std::string& name, httplib::Response& response) {
  auto valid = lockservice::check_name(name);
  if (!valid) {
    write_error(response, 400, "invalid_argument", valid.error().message);
    return false;
  }
  return true;
}

// A lease id from the path: a positive integer below 2^53.
std::optional<lockservice::LeaseId> path_lease_id(const std::string& text,
                                                  httplib::Response& response) {
  lockservice::LeaseId id = 0;
  bool digits = !text.empty() && text.size() <= 16;
  for (char c : text) digits = digits && c >= '0' && c <= '9';
  if (digits) id = std::stoull(text);
  if (!digits || !lockservice::valid_lease_id(id)) {
    write_error(response, 400, "invalid_argument",
                "Lease id '" + text + "' is not a positive integer below 2^53.");
    return std::nullopt;
  }
  return id;
}

// ?consistency=linearizable (default) | stale.
std::optional<bool> linearizable(const httplib::Request& request, httplib::Response& response) {
  if (!request.has_param("consistency")) return true;
  const auto value = request.get_param_value("consistency");
  if (value == "linearizable") return true;
  if (value == "stale") return false;
  write_error(response, 400, "invalid_argument",
              "Parameter 'consistency' must be 'linearizable' or 'stale'.");
  return std::nullopt;
}

// A handler that will answer later (StreamServer::defer_answer) marks its response with this.
constexpr int kDeferred = -2;

// Maps an infrastructure error (no leader, timeout, shutting down) to the contract.
void write_failure(httplib::Response& response, const Error& error) {
  write_status_error(response, error);
}

// The lease a lock acquire or election campaign runs under: an existing lease_id or a new
// lease of ttl_ms (exactly one), plus how long to wait in the queue.
struct LeaseChoice {
  std::optional<int64_t> lease_id, ttl_ms, wait_ms;

  // Reads lease_id, ttl_ms and wait_ms; on a bad value writes 400 and returns false.
  bool read(const Json& body, httplib::Response& response) {
    return read_int(body, "lease_id", 1, static_cast<int64_t>(lockservice::kMaxLeaseId), lease_id,
                    response) &&
           read_int(body, "ttl_ms", lockservice::kMinTtlMs, lockservice::kMaxTtlMs, ttl_ms,
                    response) &&
           read_int(body, "wait_ms", 0, lockservice::kMaxWaitMs, wait_ms, response);
  }

  // Checks exactly one of lease_id and ttl_ms was given; otherwise writes 400 and returns false.
  bool check_exactly_one(httplib::Response& response) const {
    if (lease_id.has_value() == ttl_ms.has_value()) {
      write_error(response, 400, "invalid_argument",
                  "Exactly one of 'lease_id' or 'ttl_ms' is required.");
      return false;
    }
    return true;
  }

  // Fills the lease fields of an AcquireRequest or CampaignRequest.
  template <typename Request>
  void fill(Request& out) const {
    if (lease_id) out.lease_id = static_cast<lockservice::LeaseId>(*lease_id);
    out.create_ttl_ms = ttl_ms;
    out.wait_ms = wait_ms.value_or(0);
  }
};

// With ttl_ms the lease was created even if the lock or election was not granted: say which,
// so the client can reuse or revoke it.
Json created_lease_field(const std::optional<int64_t>& ttl_ms, const CommandResult& result) {
  if (!ttl_ms || !result.lease) return Json::object();
  return {{"lease_id", result.lease->lease_id}};
}

// Maps the domain outcomes every command can produce that are not its success; `extra` fields
// are added to the error body.
void write_outcome_error(httplib::Response& response, const CommandResult& result,
                         Json extra = Json::object()) {
  auto with = [&extra](Json fields) {
    for (auto& [key, value] : extra.items()) fields[key] = value;
    return fields;
  };
  switch (result.outcome) {
    case Outcome::kLeaseNotFound:
      write_error(response, 404, "lease_not_found",
                  result.message.empty() ? "The lease does not exist." : result.message);
      return;
    case Outcome::kLeaseExists:
      write_error(response, 409, "lease_exists", result.message);
      return;
    case Outcome::kInvalid:
      write_error(response, 400, "invalid_argument", result.message);
      return;
    case Outcome::kLockHeld:
      write_error(
          response, 409, "lock_held",
          result.message.empty() ? "The lock is held by another lease." : result.message,
          with({{"holder", result.lock ? holder_json(result.lock->holder) : Json(nullptr)}}));
      return;
    case Outcome::kNotHolder:
      write_error(response, 409, "not_holder", result.message,
                  {{"holder", result.lock ? holder_json(result.lock->holder) : Json(nullptr)}});
      return;
    case Outcome::kNotLeader:
      write_error(
          response, 409, "not_leader",
          result.message.empty() ? "This lease is not the election's leader." : result.message,
          with({{"leader",
                 result.election ? leader_json(result.election->leader) : Json(nullptr)}}));
      return;
    default:
      write_error(
          response, 500, "internal",
          "Unexpected outcome '" + std::string(lockservice::outcome_name(result.outcome)) + "'.");
      return;
  }
}

// The answer to a proclaim or a resign: the election's leader after it.
auto leader_change_answer(const std::string& name, bool resigned) {
  return [name, resigned](const Result<CommandResult>& result, httplib::Response& response) {
    if (!result) return write_failure(response, result.error());
    if (result->outcome != Outcome::kOk) return write_outcome_error(response, *result);
    Json out = {
        {"name", name},
        {"leader", result->election ? leader_json(result->election->leader) : Json(nullptr)}};
    if (resigned) out["resigned"] = true;
    write_json(response, 200, out);
  };
}

// The (lease_id, fencing_token) pair a holder presents to release or resign; both required.
struct HolderProof {
  lockservice::LeaseId lease_id = 0;
  lockservice::FencingToken fencing_token = 0;
};

std::optional<HolderProof> read_holder_proof(const Json& body, httplib::Response& response) {
  std::optional<int64_t> lease_id, token;
  if (!read_int(body, "lease_id", 1, static_cast<int64_t>(lockservice::kMaxLeaseId), lease_id,
                response) ||
      !read_int(body, "fencing_token", 1, INT64_MAX, token, response)) {
    return std::nullopt;
  }
  if (!lease_id || !token) {
    write_error(response, 400, "invalid_argument",
                "Fields 'lease_id' and 'fencing_token' are required.");
    return std::nullopt;
  }
  return HolderProof{static_cast<lockservice::LeaseId>(*lease_id),
                     static_cast<lockservice::FencingToken>(*token)};
}

// Status probe: which error (if any) binding host:port would give, for a message that names it.
std::optional<std::string> probe_bind(const std::string& host, int port) {
  if (port == 0) return std::nullopt;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    return std::nullopt;  // let httplib try
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::nullopt;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  std::optional<std::string> problem;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    problem = std::strerror(errno);
  }
  ::close(fd);
  return problem;
}

}  // namespace

ApiServer::ApiServer(ApiServerOptions options, raft::Node& node, lockservice::LockService& service,
                     metrics::Metrics& metrics, PeerResolver peers)
    : options_(std::move(options)),
      node_(node),
      service_(service),
      metrics_(metrics),
      peers_(std::move(peers)),
      relay_clients_(relay_pool_options(options_.forward_timeout)) {
  build_routes();
}

ApiServer::~ApiServer() {
  stop();
}

void ApiServer::build_routes() {
  using R = const httplib::Request&;
  using W = httplib::Response&;
  using M = const Router::Params&;
  const std::string n = kNamePattern;
  router_.add("GET", "/healthz", [](R, W res, M) { write_json(res, 200, {{"status", "ok"}}); });
  router_.add("GET", "/readyz", [this](R req, W res, M) { readyz(req, res); });
  router_.add("GET", "/metrics", [this](R, W res, M) {
    res.status = 200;
    res.set_content(metrics_.serialize(), "text/plain; version=0.0.4; charset=utf-8");
  });
  router_.add("GET", "/v1/status", [this](R req, W res, M) { status(req, res); });
  router_.add("POST", "/v1/leases", [this](R req, W res, M) { create_lease(req, res); });
  router_.add("POST", "/v1/leases/" + n + "/keepalive",
              [this](R req, W res, M m) { keepalive(req, res, m[1]); });
  router_.add("GET", "/v1/leases/" + n, [this](R req, W res, M m) { get_lease(req, res, m[1]); });
  router_.add("DELETE", "/v1/leases/" + n,
              [this](R req, W res, M m) { revoke_lease(req, res, m[1]); });
  router_.add("POST", "/v1/locks/" + n + "/acquire",
              [this](R req, W res, M m) { acquire(req, res, m[1]); });
  router_.add("POST", "/v1/locks/" + n + "/release",
              [this](R req, W res, M m) { release(req, res, m[1]); });
  router_.add("GET", "/v1/locks", [this](R req, W res, M) { list_locks(req, res); });
  router_.add("GET", "/v1/locks/" + n, [this](R req, W res, M m) { get_lock(req, res, m[1]); });
  router_.add("POST", "/v1/elections/" + n + "/campaign",
              [this](R req, W res, M m) { campaign(req, res, m[1]); });
  router_.add("POST", "/v1/elections/" + n + "/proclaim",
              [this](R req, W res, M m) { proclaim(req, res, m[1]); });
  router_.add("POST", "/v1/elections/" + n + "/resign",
              [this](R req, W res, M m) { resign(req, res, m[1]); });
  router_.add("GET", "/v1/elections/" + n + "/observe",
              [this](R req, W res, M m) { observe(req, res, m[1]); });
  router_.add("GET", "/v1/elections/" + n,
              [this](R req, W res, M m) { get_election(req, res, m[1]); });
}

void ApiServer::install(httplib::Server& server) {
  register_handlers(server, "/(v1/.*|healthz|readyz|metrics)");
}

void ApiServer::register_handlers(httplib::Server& server, const std::string& pattern) {
  auto plain = [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); };
  // Write methods read their own body: httplib would otherwise wait for EOF on a request that has
  // neither Content-Length nor chunked encoding (curl -XPOST with no data), and answer 400. The
  // contract says a missing body equals {}.
  auto with_body = [this](const httplib::Request& req, httplib::Response& res,
                          const httplib::ContentReader& read) {
    const bool has_body =
        req.has_header("Content-Length") ||
        req.get_header_value("Transfer-Encoding").find("chunked") != std::string::npos;
    if (has_body) {
      std::string body;
      const bool ok = read([&body](const char* data, size_t length) {
        body.append(data, length);
        return true;
      });
      if (!ok) {
        if (res.status == 413) {
          write_error(res, 413, "payload_too_large", "The request body is larger than 64 KiB.");
        } else {
          write_error(res, 400, "invalid_argument", "The request body could not be read.");
        }
        spdlog::info("node {}: refused {} {}: {} (request body not read)", node_.id(), req.method,
                     req.path, res.status);
        metrics_.observe_request(router_.route_of(req.path), req.method, res.status,
                                 std::chrono::nanoseconds(0));
        return;
      }
      // httplib hands handlers a const Request it owns as a mutable local; the body is ours to set.
      const_cast<httplib::Request&>(req).body = std::move(body);
    }
    handle(req, res);
  };
  server.Get(pattern, plain);
  server.Options(pattern, plain);
  server.Post(pattern, with_body);
  server.Put(pattern, with_body);
  server.Patch(pattern, with_body);
  server.Delete(pattern, with_body);
}

Status ApiServer::start() {
  // A connection is served by a pool thread with a blocking wait between requests (httplib's own
  // loop polls every idle keep-alive connection ~90 times a second); one idle for 100 ms gives
  // its thread back and waits in the server's epoll set, so silent connections cannot take the
  // pool's threads from new ones.
  raft::transport::StreamServerOptions stream_options;
  stream_options.read_timeout = std::chrono::seconds(30);
  stream_options.write_timeout = std::chrono::seconds(30);
  stream_options.keep_alive_idle = std::chrono::seconds(60);
  stream_options.thread_name = "client-conn";
  stream_options.idle_thread_name = "client-idle";
  server_ = std::make_unique<raft::transport::StreamServer>(stream_options);
  server_->set_tcp_nodelay(true);
  // SO_REUSEADDR instead of httplib's default SO_REUSEPORT: a restart right after a clean
  // shutdown binds despite the old connections in TIME_WAIT (probe_bind below would refuse it),
  // and a second process can never silently share the client port.
  server_->set_socket_options([this](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_socket_ = sock;
  });
  server_->set_payload_max_length(options_.max_body_bytes);
  server_->set_keep_alive_max_count(1000000);
  server_->set_keep_alive_timeout(60);
  server_->set_read_timeout(30, 0);
  server_->set_write_timeout(30, 0);
  server_->set_thread_count(options_.threads);
  metrics_.set_client_connections_source([server = server_.get()] {
    const auto stats = server->connection_stats();
    return metrics::ClientConnections{stats.open, stats.parked, stats.parks, stats.loop_requests};
  });
  register_handlers(*server_, ".*");
  if (options_.serve_on_raft_loop) {
    // Both answer later (or at once, refused) and never wait for the loop.
    server_->enable_loop_serving([](std::string_view line) {
      constexpr std::string_view kPrefix = "POST /v1/locks/";
      const size_t space = line.rfind(' ');
      if (!line.starts_with(kPrefix) || space == std::string_view::npos) return false;
      const std::string_view target = line.substr(0, space);
      return target.ends_with("/acquire") || target.ends_with("/release");
    });
  }
  // Plain requests skip httplib's request processing (see StreamServer::set_direct_handler); an
  // event stream (observe with Accept: text/event-stream) is written by httplib's content
  // provider, so it is declined here.
  server_->set_direct_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Accept").find("text/event-stream") != std::string::npos) {
      return false;
    }
    handle(req, res);
    return true;
  });
  // Errors httplib produces itself (413 over the body limit, 400 unparsable request) get the
  // contract's JSON shape; our own error bodies are left alone.
  server_->set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        spdlog::info("refused {} {}: {} (rejected by the HTTP layer)", req.method, req.path,
                     res.status);
        if (res.status == 413) {
          write_error(res, 413, "payload_too_large", "The request body is larger than 64 KiB.");
        } else if (res.status == 404) {
          write_error(res, 404, "not_found", "No such path.");
        } else if (res.status >= 400 && res.status < 500) {
          write_error(res, res.status, "invalid_argument", "The request could not be parsed.");
        } else {
          write_error(res, res.status, "internal", "The server failed to answer the request.");
        }
        return httplib::Server::HandlerResponse::Handled;
      }));
  server_->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("internal error serving {} {}: {}", req.method, req.path, what);
        write_error(res, 500, "internal", "Internal error: " + what);
      });

  const std::string where = options_.host + ":" + std::to_string(options_.port);
  if (auto problem = probe_bind(options_.host, options_.port)) {
    return make_error(ErrorCode::kIo, "cannot listen on client address " + where + ": " + *problem);
  }
  if (options_.port == 0) {
    bound_port_ = server_->bind_to_any_port(options_.host);
    if (bound_port_ <= 0) {
      return make_error(ErrorCode::kIo, "cannot listen on client address " + options_.host);
    }
  } else {
    if (!server_->bind_to_port(options_.host, options_.port)) {
      return make_error(ErrorCode::kIo,
                        "cannot listen on client address " + where + ": address in use or invalid");
    }
    bound_port_ = options_.port;
  }
  // httplib listens with a backlog of 5: many clients connecting at once (a pool opening its
  // keep-alive connections) would see SYNs dropped and connect timeouts. Listening again on the
  // bound socket only raises the backlog (capped by net.core.somaxconn).
  if (listen_socket_ >= 0) ::listen(listen_socket_, SOMAXCONN);
  thread_ = std::thread([this] {
    set_thread_name("client-pool");  // httplib's pool threads start from it
    server_->listen_after_bind();
  });
  // httplib's stop() is a no-op until the listen loop runs: wait for it, so a stop() right after
  // start() (a failed startup) cannot leave the loop running forever.
  for (int i = 0; i < 5000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  spdlog::info("node {}: serving the client API on {}:{}", node_.id(), options_.host, bound_port_);
  return Ok{};
}

void ApiServer::stop() {
  if (server_) {
    server_->stop();
    server_->shut_down_connections();
  }
  if (thread_.joinable()) thread_.join();
  metrics_.set_client_connections_source(nullptr);  // (the server goes with this object)
}

bool ApiServer::forwarded(const httplib::Request& request) const {
  return request.has_header(kForwardedHeader);
}

lockservice::LockService::CommandCallback ApiServer::answer_later(
    const httplib::Request& request, std::shared_ptr<raft::transport::DeferredAnswer> deferred,
    std::function<void(const Result<lockservice::CommandResult>&, httplib::Response&)> answer) {
  // Runs on the Raft loop or the lock service's timer thread, possibly after stop(): it holds no
  // pointer to this object. (`deferred` refers to the StreamServer, which lives as long as this
  // object; raftlockd stops the node, the last source of answers, before destroying it.)
  return [deferred = std::move(deferred), answer = std::move(answer), metrics = &metrics_,
          node = node_.id(), route = router_.route_of(request.path), method = request.method,
          path = request.path, started = Clock::now()](Result<lockservice::CommandResult> result) {
    httplib::Response response;
    response.version = "HTTP/1.1";
    answer(result, response);
    if (response.status >= 500 && response.status != 503) {
      spdlog::error("node {}: internal error answering {} {}: {} {}", node, method, path,
                    response.status, response.body.substr(0, 200));
    }
    metrics->observe_request(route, method, response.status, Clock::now() - started);
    deferred->send(std::move(response));
  };
}

void ApiServer::answer_command(
    const httplib::Request& request, httplib::Response& response,
    std::function<void(const Result<lockservice::CommandResult>&, httplib::Response&)> answer,
    const std::function<void(lockservice::LockService::CommandCallback)>& later,
    const std::function<Result<lockservice::CommandResult>()>& now) {
  if (auto deferred = raft::transport::StreamServer::defer_answer()) {
    response.status = kDeferred;
    later(answer_later(request, std::move(deferred), std::move(answer)));
    return;
  }
  answer(now(), response);
}

void ApiServer::handle(const httplib::Request& request, httplib::Response& response) {
  const auto started = Clock::now();
  const auto outcome = router_.dispatch(request, response);
  if (response.status == kDeferred) return;  // answered (and observed) later
  if (outcome == Router::Outcome::kNoPath) {
    write_error(response, 404, "not_found", "No such path: " + request.path);
  } else if (outcome == Router::Outcome::kWrongMethod) {
    response.set_header("Allow", router_.allowed_methods(request.path));
    write_error(response, 405, "method_not_allowed",
                "Method " + request.method + " is not allowed on " + request.path + ".");
  }
  if (response.status == 400 || response.status == 404 || response.status == 405 ||
      response.status == 413) {
    spdlog::info("node {}: refused {} {}: {} {}", node_.id(), request.method, request.path,
                 response.status, response.body.substr(0, 200));
  } else if (response.status >= 500 && response.status != 503) {
    spdlog::error("node {}: internal error answering {} {}: {} {}", node_.id(), request.method,
                  request.path, response.status, response.body.substr(0, 200));
  }
  metrics_.observe_request(router_.route_of(request.path), request.method, response.status,
                           Clock::now() - started);
}

void ApiServer::forward_to_leader(const httplib::Request& request, httplib::Response& response) {
  const raft::NodeId leader = node_.status().core.leader_id;
  std::optional<std::string> address;
  if (leader != raft::kNoNode && leader != node_.id() && !forwarded(request) && peers_) {
    address = peers_(leader);
  }
  if (!address) {
    response.set_header("Retry-After", "1");
    write_error(response, 503, "no_leader", "No leader is known right now; retry shortly.");
    return;
  }
  httplib::Headers headers = {{kForwardedHeader, std::to_string(node_.id())},
                              {"X-Raftlock-From", std::to_string(node_.id())}};
  std::string target = request.path;
  if (!request.params.empty()) {
    target += "?" + httplib::detail::params_to_query_str(request.params);
  }
  const std::string& body = request.body;
  // Pooled keep-alive connections (a new connection per relayed request used up the loopback's
  // ephemeral ports under keepalive load). Only keepalive and GET lease are relayed; both are
  // safe to send twice, so a failed attempt is retried once on a fresh connection.
  auto send = [&]() {
    auto client = relay_clients_.take(*address);
    httplib::Result result = request.method == "GET" ? client->Get(target, headers)
                             : request.method == "DELETE"
                                 ? client->Delete(target, headers, body, "application/json")
                                 : client->Post(target, headers, body, "application/json");
    if (result) relay_clients_.give_back(*address, std::move(client));
    return result;
  };
  httplib::Result result = send();
  if (!result) result = send();
  if (!result) {
    response.set_header("Retry-After", "1");
    write_error(response, 503, "no_leader",
                "The leader (node " + std::to_string(leader) + ") did not answer; retry shortly.");
    return;
  }
  response.status = result->status;
  for (const auto& [name, value] : result->headers) {
    if (name == "Retry-After" || name == "Allow") response.set_header(name, value);
  }
  response.set_content(result->body, result->get_header_value("Content-Type"));
}

// --- Cluster ---------------------------------------------------------------------------------

void ApiServer::status(const httplib::Request&, httplib::Response& response) {
  const raft::NodeStatus node = node_.status();
  const raft::CoreStatus& core = node.core;
  Json members = Json::array();
  for (const auto& member : core.config.members) {
    Json entry = {{"id", member.id}, {"peer_addr", member.context}, {"voter", member.voter}};
    if (core.role == raft::Role::kLeader) {
      auto progress = core.progress.find(member.id);
      entry["match_index"] = member.id == core.id
                                 ? core.last_index
                                 : (progress == core.progress.end() ? 0 : progress->second.match);
    }
    members.push_back(std::move(entry));
  }
  const char* role = core.role == raft::Role::kLeader     ? "leader"
                     : core.role == raft::Role::kFollower ? "follower"
                                                          : "candidate";
  write_json(response, 200,
             {{"node_id", core.id},
              {"role", role},
              {"term", core.term},
              {"leader_id", core.leader_id == raft::kNoNode ? Json(nullptr) : Json(core.leader_id)},
              {"commit_index", core.commit_index},
              {"applied_index", core.applied_index},
              {"members", members}});
}

void ApiServer::readyz(const httplib::Request&, httplib::Response& response) {
  const raft::NodeStatus node = node_.status();
  if (node.stopped) {
    write_error(response, 503, "unavailable", "The node has stopped: " + node.stop_reason);
  } else if (node.core.leader_id == raft::kNoNode) {
    write_error(response, 503, "no_leader", "No leader is known.");
  } else if (node.core.applied_index < node.last_heard_commit) {
    write_error(response, 503, "unavailable",
                "Applied index " + std::to_string(node.core.applied_index) +
                    " is behind the commit index " + std::to_string(node.last_heard_commit) + ".");
  } else {
    write_json(response, 200, {{"status", "ready"}, {"leader_id", node.core.leader_id}});
  }
}

// --- Leases ----------------------------------------------------------------------------------

void ApiServer::create_lease(const httplib::Request& request, httplib::Response& response) {
  auto body = parse_body(request, response);
  if (!body) return;
  std::optional<int64_t> ttl_ms, lease_id;
  if (!read_int(*body, "ttl_ms", lockservice::kMinTtlMs, lockservice::kMaxTtlMs, ttl_ms,
                response) ||
      !read_int(*body, "lease_id", 1, static_cast<int64_t>(lockservice::kMaxLeaseId), lease_id,
                response)) {
    return;
  }
  const int64_t ttl = ttl_ms.value_or(lockservice::kDefaultTtlMs);
  auto result = service_.create_lease(
      lease_id ? std::optional<lockservice::LeaseId>(static_cast<lockservice::LeaseId>(*lease_id))
               : std::nullopt,
      ttl);
  if (!result) return write_failure(response, result.error());
  if (result->outcome != Outcome::kOk || !result->lease)
    return write_outcome_error(response, *result);
  write_json(response, result->lease_created ? 201 : 200,
             {{"lease_id", result->lease->lease_id}, {"ttl_ms", result->lease->ttl_ms}});
}

std::optional<lockservice::LeaseStatus> ApiServer::leader_lease_status(
    const httplib::Request& request, httplib::Response& response, const std::string& id_text,
    Result<lockservice::LeaseStatus> (lockservice::LockService::*read)(lockservice::LeaseId)) {
  auto id = path_lease_id(id_text, response);
  if (!id) return std::nullopt;
  // Only the leader knows a lease's deadline: a follower relays the request to it.
  if (!service_.is_leader()) {
    forward_to_leader(request, response);
    return std::nullopt;
  }
  auto status = (service_.*read)(*id);
  if (status) return *status;
  if (status.error().code == ErrorCode::kNotFound) {
    write_error(response, 404, "lease_not_found", status.error().message);
  } else if (status.error().code == ErrorCode::kNotLeader) {
    forward_to_leader(request, response);
  } else {
    write_failure(response, status.error());
  }
  return std::nullopt;
}

void ApiServer::keepalive(const httplib::Request& request, httplib::Response& response,
                          const std::string& id_text) {
  auto status =
      leader_lease_status(request, response, id_text, &lockservice::LockService::keepalive);
  if (!status) return;
  write_json(response, 200,
             {{"lease_id", status->lease.lease_id},
              {"ttl_ms", status->lease.ttl_ms},
              {"remaining_ms", status->remaining_ms}});
}

void ApiServer::get_lease(const httplib::Request& request, httplib::Response& response,
                          const std::string& id_text) {
  auto status =
      leader_lease_status(request, response, id_text, &lockservice::LockService::get_lease);
  if (!status) return;
  write_json(response, 200,
             {{"lease_id", status->lease.lease_id},
              {"ttl_ms", status->lease.ttl_ms},
              {"remaining_ms", status->remaining_ms},
              {"locks", status->lease.locks},
              {"elections", status->lease.elections}});
}

void ApiServer::revoke_lease(const httplib::Request&, httplib::Response& response,
                             const std::string& id_text) {
  auto id = path_lease_id(id_text, response);
  if (!id) return;
  auto result = service_.revoke_lease(*id);
  if (!result) return write_failure(response, result.error());
  if (result->outcome != Outcome::kOk) return write_outcome_error(response, *result);
  Json released = result->released;
  for (const auto& name : result->resigned) released.push_back(name);
  write_json(response, 200, {{"revoked", true}, {"released", released}});
}

// --- Locks -----------------------------------------------------------------------------------

void ApiServer::acquire(const httplib::Request& request, httplib::Response& response,
                        const std::string& name) {
  if (!check_name(name, response)) return;
  auto body = parse_body(request, response);
  if (!body) return;
  LeaseChoice lease;
  std::optional<int64_t> lock_delay_ms;
  std::optional<std::string> owner;
  if (!lease.read(*body, response) ||
      !read_int(*body, "lock_delay_ms", 0, lockservice::kMaxLockDelayMs, lock_delay_ms, response) ||
      !read_string(*body, "owner", lockservice::kMaxOwnerLength, owner, response) ||
      !lease.check_exactly_one(response)) {
    return;
  }
  lockservice::AcquireRequest acquire;
  acquire.name = name;
  lease.fill(acquire);
  acquire.owner = owner.value_or("");
  acquire.lock_delay_ms = lock_delay_ms.value_or(0);
  const auto answer = [name, ttl_ms = lease.ttl_ms](const Result<CommandResult>& result,
                                                    httplib::Response& response) {
    if (!result) return write_failure(response, result.error());
    if (result->outcome != Outcome::kGranted || !result->lock || !result->lock->holder) {
      return write_outcome_error(response, *result, created_lease_field(ttl_ms, *result));
    }
    const auto& holder = *result->lock->holder;
    Json out = {{"name", name},
                {"fencing_token", holder.fencing_token},
                {"lease_id", holder.lease_id},
                {"owner", holder.owner}};
    if (ttl_ms) out["ttl_ms"] = *ttl_ms;
    write_json(response, 200, out);
  };
  answer_command(
      request, response, answer,
      [&](auto done) { service_.acquire_async(acquire, std::move(done)); },
      [&] { return service_.acquire(acquire); });
}

void ApiServer::release(const httplib::Request& request, httplib::Response& response,
                        const std::string& name) {
  if (!check_name(name, response)) return;
  auto body = parse_body(request, response);
  if (!body) return;
  auto holder = read_holder_proof(*body, response);
  if (!holder) return;
  const auto answer = [](const Result<CommandResult>& result, httplib::Response& response) {
    if (!result) return write_failure(response, result.error());
    if (result->outcome != Outcome::kOk) return write_outcome_error(response, *result);
    write_json(response, 200, {{"released", true}});
  };
  answer_command(
      request, response, answer,
      [&](auto done) {
        service_.release_async(name, holder->lease_id, holder->fencing_token, std::move(done));
      },
      [&] { return service_.release(name, holder->lease_id, holder->fencing_token); });
}

void ApiServer::get_lock(const httplib::Request& request, httplib::Response& response,
                         const std::string& name) {
  if (!check_name(name, response)) return;
  auto consistent = linearizable(request, response);
  if (!consistent) return;
  auto view = service_.get_lock(name, *consistent);
  if (!view) return write_failure(response, view.error());
  write_json(response, 200, lock_json(*view));
}

void ApiServer::list_locks(const httplib::Request& request, httplib::Response& response) {
  auto consistent = linearizable(request, response);
  if (!consistent) return;
  const std::string prefix = request.get_param_value("prefix");
  if (prefix.size() > lockservice::kMaxNameLength) {
    return write_error(response, 400, "invalid_argument",
                       "Parameter 'prefix' must be at most 256 characters.");
  }
  auto views = service_.list_locks(prefix, *consistent);
  if (!views) return write_failure(response, views.error());
  Json locks = Json::array();
  for (const auto& view : *views) locks.push_back(lock_json(view));
  write_json(response, 200, {{"locks", locks}});
}

// --- Elections -------------------------------------------------------------------------------

void ApiServer::campaign(const httplib::Request& request, httplib::Response& response,
                         const std::string& name) {
  if (!check_name(name, response)) return;
  auto body = parse_body(request, response);
  if (!body) return;
  LeaseChoice lease;
  std::optional<std::string> value;
  if (!lease.read(*body, response) ||
      !read_string(*body, "value", lockservice::kMaxValueLength, value, response) ||
      !lease.check_exactly_one(response)) {
    return;
  }
  lockservice::CampaignRequest campaign;
  campaign.name = name;
  lease.fill(campaign);
  campaign.value = value.value_or("");
  const auto answer = [name, ttl_ms = lease.ttl_ms](const Result<CommandResult>& result,
                                                    httplib::Response& response) {
    if (!result) return write_failure(response, result.error());
    if (result->outcome != Outcome::kGranted || !result->election) {
      return write_outcome_error(response, *result, created_lease_field(ttl_ms, *result));
    }
    write_json(response, 200, {{"name", name}, {"leader", leader_json(result->election->leader)}});
  };
  answer_command(
      request, response, answer,
      [&](auto done) { service_.campaign_async(campaign, std::move(done)); },
      [&] { return service_.campaign(campaign); });
}

void ApiServer::proclaim(const httplib::Request& request, httplib::Response& response,
                         const std::string& name) {
  if (!check_name(name, response)) return;
  auto body = parse_body(request, response);
  if (!body) return;
  std::optional<int64_t> lease_id, token;
  std::optional<std::string> value;
  if (!read_int(*body, "lease_id", 1, static_cast<int64_t>(lockservice::kMaxLeaseId), lease_id,
                response) ||
      !read_int(*body, "fencing_token", 1, INT64_MAX, token, response) ||
      !read_string(*body, "value", lockservice::kMaxValueLength, value, response)) {
    return;
  }
  if (!lease_id || !token || !value) {
    return write_error(response, 400, "invalid_argument",
                       "Fields 'lease_id', 'fencing_token' and 'value' are required.");
  }
  const auto answer = leader_change_answer(name, false);
  const auto lease = static_cast<lockservice::LeaseId>(*lease_id);
  const auto fencing_token = static_cast<lockservice::FencingToken>(*token);
  answer_command(
      request, response, answer,
      [&](auto done) {
        service_.proclaim_async(name, lease, fencing_token, *value, std::move(done));
      },
      [&] { return service_.proclaim(name, lease, fencing_token, *value); });
}

void ApiServer::resign(const httplib::Request& request, httplib::Response& response,
                       const std::string& name) {
  if (!check_name(name, response)) return;
  auto body = parse_body(request, response);
  if (!body) return;
  auto holder = read_holder_proof(*body, response);
  if (!holder) return;
  const auto answer = leader_change_answer(name, true);
  answer_command(
      request, response, answer,
      [&](auto done) {
        service_.resign_async(name, holder->lease_id, holder->fencing_token, std::move(done));
      },
      [&] { return service_.resign(name, holder->lease_id, holder->fencing_token); });
}

void ApiServer::get_election(const httplib::Request& request, httplib::Response& response,
                             const std::string& name) {
  if (!check_name(name, response)) return;
  auto consistent = linearizable(request, response);
  if (!consistent) return;
  auto view = service_.get_election(name, *consistent);
  if (!view) return write_failure(response, view.error());
  write_json(response, 200, election_json(*view));
}

void ApiServer::observe(const httplib::Request& request, httplib::Response& response,
                        const std::string& name) {
  if (!check_name(name, response)) return;
  auto read_param = [&](const char* param, int64_t max, int64_t& out) {
    if (!request.has_param(param)) return true;
    const std::string text = request.get_param_value(param);
    bool digits = !text.empty() && text.size() <= 18;
    for (char c : text) digits = digits && c >= '0' && c <= '9';
    if (!digits || std::stoll(text) > max) {
      write_error(response, 400, "invalid_argument",
                  std::string("Parameter '") + param + "' must be an integer between 0 and " +
                      std::to_string(max) + ".");
      return false;
    }
    out = std::stoll(text);
    return true;
  };
  int64_t after = -1;
  int64_t wait_ms = 0;
  if (!read_param("after_revision", INT64_MAX, after) ||
      !read_param("wait_ms", lockservice::kMaxWaitMs, wait_ms)) {
    return;
  }
  if (auto barrier = service_.read_barrier(true); !barrier) {
    return write_failure(response, barrier.error());
  }
  const bool stream =
      request.get_header_value("Accept").find("text/event-stream") != std::string::npos;
  if (!stream) {
    if (after < 0) after = 0;
    auto view = service_.observe(name, static_cast<raft::Index>(after),
                                 Clock::now() + std::chrono::milliseconds(wait_ms));
    if (!view) return write_failure(response, view.error());
    return write_json(response, 200, election_json(*view));
  }
  // Server-sent events: the current state first, then every change until the client leaves.
  response.status = 200;
  response.set_header("Cache-Control", "no-cache");
  auto last = std::make_shared<int64_t>(after);
  response.set_chunked_content_provider("text/event-stream", [this, name, last](
                                                                 size_t, httplib::DataSink& sink) {
    while (service_.running() && sink.is_writable()) {
      auto view = service_.observe(name, static_cast<raft::Index>(std::max<int64_t>(*last, 0)),
                                   Clock::now() + std::chrono::seconds(1));
      if (!view) break;
      if (*last >= 0 && static_cast<int64_t>(view->revision) <= *last) {
        // Nothing new within a second: a comment line keeps proxies and dead-peer checks honest.
        const std::string ping = ": keepalive\n\n";
        if (!sink.write(ping.data(), ping.size())) return false;
        continue;
      }
      *last = static_cast<int64_t>(view->revision);
      const std::string event = "id: " + std::to_string(view->revision) +
                                "\nevent: election\ndata: " + election_json(*view).dump() + "\n\n";
      if (!sink.write(event.data(), event.size())) return false;
    }
    sink.done();
    return true;
  });
}

}  // namespace raftlock::http
