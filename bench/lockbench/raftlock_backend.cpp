// The raftlock side of the benchmark: raftlock's HTTP/JSON API (docs/api.md).
#include <nlohmann/json.hpp>

#include "bench/lockbench/backend.h"

namespace raftlock::bench {
namespace {

using nlohmann::json;

std::optional<json> parse(const HttpAnswer& a) {
  if (!a.transport_ok) return std::nullopt;
  json j = json::parse(a.body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

class RaftlockSession : public Session {
 public:
  RaftlockSession(std::vector<Endpoint> endpoints, size_t first,
                  std::chrono::milliseconds read_timeout)
      : conn_(std::move(endpoints), first, read_timeout) {}

  Outcome grant(int64_t ttl_ms, uint64_t* lease) override {
    HttpAnswer a = conn_.post("/v1/leases", json{{"ttl_ms", ttl_ms}}.dump());
    auto j = parse(a);
    if (!j || (a.status != 200 && a.status != 201) || !j->contains("lease_id"))
      return fail("grant", a);
    *lease = (*j)["lease_id"].get<uint64_t>();
    return Outcome::kOk;
  }

  Outcome keepalive(uint64_t lease) override {
    HttpAnswer a = conn_.post("/v1/leases/" + std::to_string(lease) + "/keepalive", "{}");
    if (!a.transport_ok) return fail("keepalive", a);
    if (a.status == 200) return Outcome::kOk;
    if (a.status == 404) return Outcome::kNotFound;
    return fail("keepalive", a);
  }

  Outcome lease_alive(uint64_t lease) override {
    HttpAnswer a = conn_.get("/v1/leases/" + std::to_string(lease));
    if (!a.transport_ok) return fail("lease_alive", a);
    if (a.status == 200) return Outcome::kOk;
    if (a.status == 404) return Outcome::kNotFound;
    return fail("lease_alive", a);
  }

  Outcome revoke(uint64_t lease) override {
    HttpAnswer a = conn_.del("/v1/leases/" + std::to_string(lease));
    if (!a.transport_ok) return fail("revoke", a);
    if (a.status == 200) return Outcome::kOk;
    if (a.status == 404) return Outcome::kNotFound;
    return fail("revoke", a);
  }

  Outcome acquire(const std::string& name, uint64_t lease, int64_t wait_ms,
                  LockHold* hold) override {
    json body{{"lease_id", lease}, {"owner", "lockbench"}};
    if (wait_ms > 0) body["wait_ms"] = wait_ms;
    return acquire_request(name, body, hold);
  }

  Outcome acquire_with_new_lease(const std::string& name, int64_t ttl_ms, LockHold* hold) override {
    return acquire_request(name, json{{"ttl_ms", ttl_ms}, {"owner", "lockbench"}}, hold);
  }

  Outcome release(const LockHold& hold) override {
    HttpAnswer a = conn_.post("/v1/locks/" + hold.name + "/release",
                              json{{"lease_id", hold.lease}, {"fencing_token", hold.token}}.dump());
    if (!a.transport_ok) return fail("release", a);
    return a.status == 200 ? Outcome::kOk : fail("release", a);
  }

  Outcome read_holder(const std::string& name, bool* held) override {
    HttpAnswer a = conn_.get("/v1/locks/" + name);
    auto j = parse(a);
    if (!j || a.status != 200 || !j->contains("held")) return fail("read_holder", a);
    *held = (*j)["held"].get<bool>();
    return Outcome::kOk;
  }

  size_t endpoint_index() const override { return conn_.endpoint_index(); }

 private:
  Outcome acquire_request(const std::string& name, const json& body, LockHold* hold) {
    HttpAnswer a = conn_.post("/v1/locks/" + name + "/acquire", body.dump());
    if (!a.transport_ok) return fail("acquire", a);
    if (a.status == 409) return Outcome::kBusy;
    if (a.status == 404) return Outcome::kNotFound;
    auto j = parse(a);
    if (!j || a.status != 200 || !j->contains("fencing_token")) return fail("acquire", a);
    hold->name = name;
    hold->lease = (*j)["lease_id"].get<uint64_t>();
    hold->token = (*j)["fencing_token"].get<uint64_t>();
    return Outcome::kOk;
  }

  HttpConnection conn_;
};

class RaftlockBackend : public Backend {
 public:
  explicit RaftlockBackend(std::vector<Endpoint> endpoints) : Backend(std::move(endpoints)) {}
  std::string name() const override { return "raftlock"; }

  std::unique_ptr<Session> connect(size_t first, std::chrono::milliseconds timeout) override {
    return std::make_unique<RaftlockSession>(endpoints_, first, timeout);
  }

  std::optional<size_t> leader_endpoint() override {
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      HttpConnection c({endpoints_[i]}, 0, std::chrono::milliseconds(1000));
      HttpAnswer a = c.get("/v1/status");
      auto j = parse(a);
      if (j && a.status == 200 && j->value("role", "") == "leader") return i;
    }
    return std::nullopt;
  }
};

}  // namespace

std::unique_ptr<Backend> make_raftlock_backend(std::vector<Endpoint> endpoints) {
  return std::make_unique<RaftlockBackend>(std::move(endpoints));
}

}  // namespace raftlock::bench
