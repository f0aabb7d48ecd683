#include "workloads.h"

#include <httplib.h>

#include <algorithm>
#include <map>
#include <random>
#include <thread>

namespace raftlock::chaos {
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

Nanos now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

NodeClient::NodeClient(int port) : port_(port) {}
NodeClient::~NodeClient() = default;

void NodeClient::connect(int port) {
  port_ = port;
  client_.reset();
}

NodeClient::Reply NodeClient::request(const std::string& method, const std::string& path,
                                      const Json& body, std::chrono::milliseconds timeout) {
  if (!client_) {
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_keep_alive(true);
    client_->set_tcp_nodelay(true);
    client_->set_connection_timeout(0, 300000);
  }
  const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  client_->set_read_timeout(usec / 1000000, usec % 1000000);
  client_->set_write_timeout(usec / 1000000, usec % 1000000);
  const std::string text = body.is_null() ? "" : body.dump();
  httplib::Result result = method == "GET"      ? client_->Get(path)
                           : method == "DELETE" ? client_->Delete(path)
                                                : client_->Post(path, text, "application/json");
  Reply reply;
  if (!result) {
    client_.reset();  // a fresh connection next time
    return reply;
  }
  reply.status = result->status;
  reply.body = Json::parse(result->body, nullptr, false);
  if (reply.body.is_discarded()) reply.body = nullptr;
  return reply;
}

namespace {

std::string error_code_of(const NodeClient::Reply& reply) {
  if (reply.body.is_object() && reply.body.contains("error") && reply.body["error"].is_object()) {
    return reply.body["error"].value("code", "");
  }
  return "";
}

// 2xx: ok. A definite refusal that names the state: error. Anything else: unknown.
OpStatus classify(const NodeClient::Reply& reply) {
  if (reply.status >= 200 && reply.status < 300) return OpStatus::kOk;
  const std::string code = error_code_of(reply);
  if ((reply.status == 409 && (code == "lock_held" || code == "not_holder" ||
                               code == "lease_exists" || code == "not_leader")) ||
      (reply.status == 404 && code == "lease_not_found")) {
    return OpStatus::kError;
  }
  return OpStatus::kUnknown;
}

void count(OpCounts* counts, OpStatus status) {
  if (!counts) return;
  (status == OpStatus::kOk      ? counts->ok
   : status == OpStatus::kError ? counts->error
                                : counts->unknown)
      .fetch_add(1);
}

std::optional<Holder> holder_of(const Json& holder) {
  if (!holder.is_object()) return std::nullopt;
  Holder out;
  out.lease_id = holder.value("lease_id", uint64_t{0});
  out.fencing_token = holder.value("fencing_token", uint64_t{0});
  return out;
}

// What an election read or observe answer says, as observer `observer` saw it through `node`.
ElectionObservation observation_of(const Json& body, int observer, int node) {
  ElectionObservation seen;
  seen.observer = observer;
  seen.node = node;
  seen.revision = body.value("revision", uint64_t{0});
  const Json leader = body.value("leader", Json(nullptr));
  if (leader.is_object()) {
    seen.leader = holder_of(leader);
    seen.value = leader.value("value", "");
  }
  seen.at_ns = now_ns();
  return seen;
}

// Sleeps `ms` unless the run is stopping.
void pause_ms(const WorkloadEnv& env, int ms) {
  const auto end = Clock::now() + std::chrono::milliseconds(ms);
  while (!env.stop->load() && Clock::now() < end) std::this_thread::sleep_for(5ms);
}

int node_port(const WorkloadEnv& env, int index) {
  const auto ids = env.cluster->ids();
  return env.cluster->client_port(ids[static_cast<size_t>(index) % ids.size()]);
}

int node_id(const WorkloadEnv& env, int port) {
  for (int id : env.cluster->ids()) {
    if (env.cluster->client_port(id) == port) return id;
  }
  return 0;
}

// A client that moves to the next node after a few answers in a row that say nothing.
struct RotatingClient {
  RotatingClient(const WorkloadEnv& env, int start)
      : env(env), index(start), http(node_port(env, start)) {}
  NodeClient::Reply request(const std::string& method, const std::string& path, const Json& body,
                            std::chrono::milliseconds timeout) {
    auto reply = http.request(method, path, body, timeout);
    if (classify(reply) == OpStatus::kUnknown) {
      if (++failures >= 3) {
        failures = 0;
        http.connect(node_port(env, ++index));
      }
    } else {
      failures = 0;
    }
    return reply;
  }
  int node() const { return node_id(env, http.port()); }
  const WorkloadEnv& env;
  int index;
  NodeClient http;
  int failures = 0;
};

// A new lease with the run's TTL (the server picks the id), or 0 after a short pause.
uint64_t take_lease(const WorkloadEnv& env, RotatingClient& client) {
  auto reply = client.request("POST", "/v1/leases", {{"ttl_ms", env.lease_ttl_ms}}, 7s);
  count(env.counts, classify(reply));
  if (classify(reply) == OpStatus::kOk) return reply.body.value("lease_id", uint64_t{0});
  pause_ms(env, 50);
  return 0;
}

class HistoryRecorder {
 public:
  uint64_t next_id() { return ++last_id_; }
  void add(Operation op) {
    std::lock_guard lock(mu_);
    ops_.push_back(std::move(op));
  }
  History take() {
    std::lock_guard lock(mu_);
    History history;
    history.operations = std::move(ops_);
    std::stable_sort(
        history.operations.begin(), history.operations.end(),
        [](const Operation& a, const Operation& b) { return a.invoke_ns < b.invoke_ns; });
    return history;
  }

 private:
  std::atomic<uint64_t> last_id_{0};
  std::mutex mu_;
  std::vector<Operation> ops_;
};

// Longer than the server's own budget for committing a write (5 s, retries included), so most
// requests get an answer instead of leaving an operation whose outcome is unknown.
std::chrono::milliseconds request_timeout(int64_t wait_ms) {
  return std::chrono::milliseconds(wait_ms + 7000);
}

}  // namespace

History run_linearizable(const WorkloadEnv& env, int clients, int locks) {
  HistoryRecorder recorder;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937_64 rng(env.seed * 1000003ULL + static_cast<uint64_t>(c));
      auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
      RotatingClient client(env, c);
      const std::string lock = "lin-" + std::to_string(c % locks);
      uint64_t lease_seq = 0;
      uint64_t lease = 0;
      bool lease_live = false;
      uint64_t held_token = 0;
      uint64_t last_token = 0;
      auto last_keepalive = Clock::now();
      auto new_lease = [&] {
        lease = static_cast<uint64_t>(c + 1) * 1000000ULL + ++lease_seq;
        lease_live = false;
        held_token = 0;
      };
      new_lease();
      while (!env.stop->load()) {
        Operation op;
        op.id = recorder.next_id();
        op.client = c;
        op.node = client.node();
        op.lease_id = lease;
        std::string method = "POST";
        std::string path;
        Json body;
        const int roll = pick(0, 99);
        if (!lease_live) {
          op.kind = OpKind::kLeaseGrant;
          op.ttl_ms = env.lease_ttl_ms;
          path = "/v1/leases";
          body = {{"lease_id", lease}, {"ttl_ms", env.lease_ttl_ms}};
        } else if (Clock::now() - last_keepalive >
                       std::chrono::milliseconds(env.lease_ttl_ms / 4) ||
                   roll >= 95) {
          op.kind = OpKind::kLeaseKeepalive;
          path = "/v1/leases/" + std::to_string(lease) + "/keepalive";
        } else if (roll < 35) {
          op.kind = OpKind::kAcquire;
          op.lock = lock;
          op.wait_ms = pick(0, 2) == 0 ? pick(100, 800) : 0;
          path = "/v1/locks/" + lock + "/acquire";
          body = {{"lease_id", lease}, {"wait_ms", op.wait_ms}};
        } else if (roll < 55) {
          op.kind = OpKind::kRelease;
          op.lock = lock;
          op.token = held_token != 0 ? held_token : (last_token != 0 ? last_token : 1);
          path = "/v1/locks/" + lock + "/release";
          body = {{"lease_id", lease}, {"fencing_token", op.token}};
        } else if (roll < 92) {
          op.kind = OpKind::kLockRead;
          op.lock = lock;
          method = "GET";
          path = "/v1/locks/" + lock;
        } else {
          op.kind = OpKind::kLeaseRevoke;
          method = "DELETE";
          path = "/v1/leases/" + std::to_string(lease);
        }
        op.invoke_ns = now_ns();
        const auto sent = Clock::now();
        auto reply = client.request(method, path, body, request_timeout(op.wait_ms));
        op.status = classify(reply);
        count(env.counts, op.status);
        if (op.status == OpStatus::kUnknown) {
          op.complete_ns = kNeverCompleted;
        } else {
          op.complete_ns = now_ns();
        }
        if (op.status == OpStatus::kError) {
          op.error_code = error_code_of(reply);
          op.holder = holder_of(reply.body.value("holder", Json(nullptr)));
        }
        switch (op.kind) {
          case OpKind::kLeaseGrant:
            if (op.status == OpStatus::kOk) {
              lease_live = true;
              last_keepalive = sent;
            } else {
              // Unknown: it may exist and may even have expired already; never reuse the id.
              new_lease();
            }
            break;
          case OpKind::kLeaseKeepalive:
            if (op.status == OpStatus::kOk) {
              op.remaining_ms = reply.body.value("remaining_ms", int64_t{0});
              last_keepalive = sent;
            } else if (op.status == OpStatus::kError) {
              new_lease();
            }
            break;
          case OpKind::kLeaseRevoke:
            if (op.status != OpStatus::kUnknown) new_lease();
            break;
          case OpKind::kAcquire:
            if (op.status == OpStatus::kOk) {
              op.granted_token = reply.body.value("fencing_token", uint64_t{0});
              held_token = last_token = op.granted_token;
            } else if (op.error_code == "lease_not_found") {
              new_lease();
            }
            break;
          case OpKind::kRelease:
            if (op.status == OpStatus::kOk || op.error_code == "not_holder") held_token = 0;
            if (op.error_code == "lease_not_found") new_lease();
            break;
          case OpKind::kLockRead:
            if (op.status == OpStatus::kOk) {
              op.holder = holder_of(reply.body.value("holder", Json(nullptr)));
              if (op.holder && op.holder->lease_id == lease) {
                held_token = last_token = op.holder->fencing_token;
              } else {
                held_token = 0;
              }
            }
            break;
        }
        recorder.add(std::move(op));
        pause_ms(env, pick(5, 40));
      }
    });
  }
  for (auto& t : threads) t.join();
  return recorder.take();
}

FencingRecord run_fencing(const WorkloadEnv& env, int clients) {
  FencingRecord record;
  std::mutex mu;  // the fencing register and the record
  uint64_t largest_accepted = 0;
  std::vector<std::thread> threads;
  const std::string lock = "fenced";
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937_64 rng(env.seed * 7919ULL + static_cast<uint64_t>(c));
      auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
      RotatingClient client(env, c);
      uint64_t lease = 0;
      while (!env.stop->load()) {
        if (lease == 0) {
          lease = take_lease(env, client);
          continue;
        }
        const int wait_ms = pick(300, 1500);
        Grant grant;
        grant.client = c;
        grant.lease_id = lease;
        grant.invoke_ns = now_ns();
        auto reply =
            client.request("POST", "/v1/locks/" + lock + "/acquire",
                           {{"lease_id", lease}, {"wait_ms", wait_ms}}, request_timeout(wait_ms));
        const OpStatus status = classify(reply);
        count(env.counts, status);
        if (status != OpStatus::kOk) {
          if (error_code_of(reply) == "lease_not_found") lease = 0;
          pause_ms(env, pick(10, 50));
          continue;
        }
        grant.complete_ns = now_ns();
        grant.token = reply.body.value("fencing_token", uint64_t{0});
        {
          std::lock_guard lock_guard(mu);
          record.grants.push_back(grant);
          FencingWrite write;
          write.client = c;
          write.token = grant.token;
          write.accepted = grant.token >= largest_accepted;
          if (write.accepted) largest_accepted = grant.token;
          write.at_ns = now_ns();
          record.writes.push_back(write);
        }
        pause_ms(env, pick(20, 150));  // the critical section
        auto released = client.request("POST", "/v1/locks/" + lock + "/release",
                                       {{"lease_id", lease}, {"fencing_token", grant.token}}, 7s);
        const OpStatus release_status = classify(released);
        count(env.counts, release_status);
        if (release_status == OpStatus::kUnknown || error_code_of(released) == "lease_not_found") {
          // Whether it still holds the lock is unknown: an acquire on this lease could answer
          // with the same grant again. Abandon the lease; it expires and frees the lock.
          lease = 0;
        }
        pause_ms(env, pick(0, 50));
      }
    });
  }
  for (auto& t : threads) t.join();
  return record;
}

ElectionRecord run_elections(const WorkloadEnv& env, const std::string& election, int candidates,
                             int observers) {
  ElectionRecord record;
  std::mutex mu;
  std::vector<std::thread> threads;
  const std::string base = "/v1/elections/" + election;
  for (int c = 0; c < candidates; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937_64 rng(env.seed * 104729ULL + static_cast<uint64_t>(c));
      auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
      RotatingClient client(env, c);
      uint64_t lease = 0;
      int term = 0;
      while (!env.stop->load()) {
        if (lease == 0) {
          lease = take_lease(env, client);
          continue;
        }
        const int wait_ms = pick(200, 1200);
        ElectionWin win;
        win.candidate = c;
        win.lease_id = lease;
        win.invoke_ns = now_ns();
        const std::string value = "candidate-" + std::to_string(c) + "-" + std::to_string(++term);
        auto reply = client.request("POST", base + "/campaign",
                                    {{"lease_id", lease}, {"value", value}, {"wait_ms", wait_ms}},
                                    request_timeout(wait_ms));
        const OpStatus status = classify(reply);
        count(env.counts, status);
        if (status != OpStatus::kOk) {
          if (error_code_of(reply) == "lease_not_found") lease = 0;
          if (status == OpStatus::kUnknown) lease = 0;  // it may be leader now: let the lease go
          pause_ms(env, pick(50, 500));
          continue;
        }
        win.complete_ns = now_ns();
        win.fencing_token = reply.body["leader"].value("fencing_token", uint64_t{0});
        {
          std::lock_guard lock(mu);
          record.wins.push_back(win);
        }
        // Lead for a while, keeping the lease alive.
        const auto lead_until = Clock::now() + std::chrono::milliseconds(pick(200, 800));
        while (!env.stop->load() && Clock::now() < lead_until) {
          auto kept = client.request("POST", "/v1/leases/" + std::to_string(lease) + "/keepalive",
                                     nullptr, 2s);
          count(env.counts, classify(kept));
          pause_ms(env, env.lease_ttl_ms / 5);
        }
        if (pick(0, 3) == 0) {
          // Let the lease lapse: the next candidate takes over when it expires.
          lease = 0;
          pause_ms(env, env.lease_ttl_ms + 300);
        } else {
          auto resigned =
              client.request("POST", base + "/resign",
                             {{"lease_id", lease}, {"fencing_token", win.fencing_token}}, 7s);
          count(env.counts, classify(resigned));
          if (classify(resigned) != OpStatus::kOk) lease = 0;
        }
        // Now and then a longer break, so the election is sometimes left without candidates.
        pause_ms(env, pick(0, 2) == 0 ? pick(1500, 3000) : pick(100, 1000));
      }
    });
  }
  for (int o = 0; o < observers; ++o) {
    threads.emplace_back([&, o] {
      RotatingClient client(env, o + candidates);
      uint64_t after = 0;
      int n = 0;
      while (!env.stop->load()) {
        const bool plain_read = ++n % 5 == 0;
        const std::string path =
            plain_read
                ? base
                : base + "/observe?after_revision=" + std::to_string(after) + "&wait_ms=1000";
        const int node = client.node();
        auto reply = client.request("GET", path, nullptr, plain_read ? 3s : 4s);
        count(env.counts, classify(reply));
        if (reply.status != 200) {
          pause_ms(env, 50);
          continue;
        }
        ElectionObservation seen = observation_of(reply.body, o, node);
        after = std::max(after, seen.revision);
        std::lock_guard lock(mu);
        record.observations.push_back(seen);
      }
    });
  }
  for (auto& t : threads) t.join();
  return record;
}

DurabilityLedger run_durability_writes(const WorkloadEnv& env, int clients, int locks) {
  DurabilityLedger ledger;
  std::mutex mu;
  for (int l = 0; l < locks; ++l) ledger.locks.push_back("durable-" + std::to_string(l));
  auto ack = [&](AckedWrite write) {
    write.complete_ns = now_ns();
    std::lock_guard lock(mu);
    ledger.acked.push_back(std::move(write));
  };
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937_64 rng(env.seed * 15485863ULL + static_cast<uint64_t>(c));
      auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
      RotatingClient client(env, c);
      uint64_t lease_seq = 0;
      uint64_t lease = 0;
      std::map<std::string, uint64_t> held;  // lock -> token
      while (!env.stop->load()) {
        if (lease == 0) {
          const uint64_t id = static_cast<uint64_t>(c + 1) * 1000000ULL + ++lease_seq;
          {
            std::lock_guard lock(mu);
            ledger.leases.push_back(id);
          }
          // An unanswered grant may still take effect at any later time (even after a revoke
          // of the same id), so an id is never retried: the next attempt uses a new one.
          auto reply = client.request("POST", "/v1/leases",
                                      {{"lease_id", id}, {"ttl_ms", env.lease_ttl_ms}}, 7s);
          count(env.counts, classify(reply));
          if (classify(reply) == OpStatus::kOk) {
            lease = id;
            ack({AckedWrite::Kind::kLeaseGranted, id, "", 0, 0});
          } else {
            pause_ms(env, 50);
          }
          held.clear();
          continue;
        }
        const std::string lock = ledger.locks[static_cast<size_t>(pick(0, locks - 1))];
        const int roll = pick(0, 99);
        if (roll < 50) {
          auto reply = client.request("POST", "/v1/locks/" + lock + "/acquire",
                                      {{"lease_id", lease}, {"wait_ms", 0}}, 7s);
          count(env.counts, classify(reply));
          if (classify(reply) == OpStatus::kOk) {
            const uint64_t token = reply.body.value("fencing_token", uint64_t{0});
            held[lock] = token;
            ack({AckedWrite::Kind::kLockGranted, lease, lock, token, 0});
          }
        } else if (roll < 90) {
          auto it = held.find(lock);
          if (it == held.end()) continue;
          auto reply = client.request("POST", "/v1/locks/" + lock + "/release",
                                      {{"lease_id", lease}, {"fencing_token", it->second}}, 7s);
          count(env.counts, classify(reply));
          if (classify(reply) == OpStatus::kOk) {
            ack({AckedWrite::Kind::kLockReleased, lease, lock, it->second, 0});
            held.erase(it);
          }
        } else {
          auto reply = client.request("DELETE", "/v1/leases/" + std::to_string(lease), nullptr, 7s);
          count(env.counts, classify(reply));
          if (classify(reply) == OpStatus::kOk) {
            ack({AckedWrite::Kind::kLeaseRevoked, lease, "", 0, 0});
            lease = 0;
          }
        }
        pause_ms(env, pick(5, 40));
      }
    });
  }
  for (auto& t : threads) t.join();
  std::sort(ledger.acked.begin(), ledger.acked.end(),
            [](const AckedWrite& a, const AckedWrite& b) { return a.complete_ns < b.complete_ns; });
  return ledger;
}

void observe_leader_gone(ChaosCluster& cluster, int via, const std::string& election,
                         ElectionRecord& record, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  NodeClient client(cluster.client_port(via));
  const std::string base = "/v1/elections/" + election;
  constexpr int kEpilogueObserver = 1000;
  while (Clock::now() < deadline) {
    auto reply = client.request("GET", base, nullptr, 3s);
    if (reply.status != 200) {
      std::this_thread::sleep_for(50ms);
      continue;
    }
    ElectionObservation seen = observation_of(reply.body, kEpilogueObserver, via);
    record.observations.push_back(seen);
    if (!seen.leader) return;  // the election stands without a leader, as observed
    // Somebody still leads (its lease is alive): resign it with its own lease and token.
    (void)client.request(
        "POST", base + "/resign",
        {{"lease_id", seen.leader->lease_id}, {"fencing_token", seen.leader->fencing_token}}, 7s);
  }
}

std::optional<ObservedState> read_observed_state(ChaosCluster& cluster, int via,
                                                 const std::vector<std::string>& locks,
                                                 const std::vector<uint64_t>& leases,
                                                 std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  NodeClient client(cluster.client_port(via));
  auto get = [&](const std::string& path,
                 std::initializer_list<int> accepted) -> std::optional<NodeClient::Reply> {
    while (Clock::now() < deadline) {
      auto reply = client.request("GET", path, nullptr, 3s);
      for (int status : accepted) {
        if (reply.status == status) return reply;
      }
      std::this_thread::sleep_for(50ms);
    }
    return std::nullopt;
  };
  ObservedState state;
  for (const auto& name : locks) {
    auto reply = get("/v1/locks/" + name, {200});
    if (!reply) return std::nullopt;
    ObservedLock lock;
    lock.name = name;
    lock.holder = holder_of(reply->body.value("holder", Json(nullptr)));
    lock.revision = reply->body.value("revision", uint64_t{0});
    state.locks.push_back(lock);
  }
  for (uint64_t lease : leases) {
    auto reply = get("/v1/leases/" + std::to_string(lease), {200, 404});
    if (!reply) return std::nullopt;
    if (reply->status == 200) state.live_leases.push_back(lease);
  }
  auto status = get("/v1/status", {200});
  if (!status) return std::nullopt;
  state.applied_index = status->body.value("applied_index", uint64_t{0});
  return state;
}

}  // namespace raftlock::chaos
