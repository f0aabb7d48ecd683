// The etcd side of the benchmark: etcd v3's JSON gRPC gateway (/v3/...), where bytes fields
// (keys, values, lock names) are base64 and 64-bit integers are JSON strings. The lock holder is
// the key with the lowest create_revision under "<name>/", as in etcd's concurrency package.
#include <nlohmann/json.hpp>

#include "bench/lockbench/backend.h"

namespace raftlock::bench {
namespace {

using nlohmann::json;

std::string base64(const std::string& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  while (i + 2 < in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
    i += 3;
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<json> parse(const HttpAnswer& a) {
  if (!a.transport_ok) return std::nullopt;
  json j = json::parse(a.body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

// etcd's gateway writes int64 fields as strings and leaves out zero values.
int64_t int_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_string()) return std::stoll(it->get<std::string>());
  if (it->is_number()) return it->get<int64_t>();
  return 0;
}

// Member ids use all 64 bits.
uint64_t uint_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_string()) return std::stoull(it->get<std::string>());
  if (it->is_number()) return it->get<uint64_t>();
  return 0;
}

class EtcdSession : public Session {
 public:
  EtcdSession(std::vector<Endpoint> endpoints, size_t first, std::chrono::milliseconds timeout)
      : conn_(std::move(endpoints), first, timeout) {}

  Outcome grant(int64_t ttl_ms, uint64_t* lease) override {
    int64_t ttl_s = std::max<int64_t>(1, (ttl_ms + 999) / 1000);
    HttpAnswer a = conn_.post("/v3/lease/grant", json{{"TTL", std::to_string(ttl_s)}}.dump());
    auto j = parse(a);
    if (!j || a.status != 200) return fail("grant", a);
    int64_t id = int_field(*j, "ID");
    if (id <= 0) return fail("grant", a);
    *lease = uint64_t(id);
    return Outcome::kOk;
  }

  Outcome keepalive(uint64_t lease) override {
    // A streaming RPC through the gateway: one JSON object in, one {"result": ...} out.
    HttpAnswer a = conn_.post("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}}.dump());
    auto j = parse(a);
    if (!j || a.status != 200) return fail("keepalive", a);
    auto it = j->find("result");
    if (it == j->end()) return fail("keepalive", a);
    return int_field(*it, "TTL") > 0 ? Outcome::kOk : Outcome::kNotFound;
  }

  Outcome lease_alive(uint64_t lease) override {
    HttpAnswer a = conn_.post("/v3/lease/timetolive", json{{"ID", std::to_string(lease)}}.dump());
    auto j = parse(a);
    if (!j || a.status != 200) return fail("lease_alive", a);
    return int_field(*j, "TTL") > 0 ? Outcome::kOk : Outcome::kNotFound;
  }

  Outcome revoke(uint64_t lease) override {
    HttpAnswer a = conn_.post("/v3/lease/revoke", json{{"ID", std::to_string(lease)}}.dump());
    if (!a.transport_ok) return fail("revoke", a);
    if (a.status == 200) return Outcome::kOk;
    if (a.status == 404) return Outcome::kNotFound;
    return fail("revoke", a);
  }

  Outcome acquire(const std::string& name, uint64_t lease, int64_t /*wait_ms*/,
                  LockHold* hold) override {
    HttpAnswer a = conn_.post(
        "/v3/lock/lock", json{{"name", base64(name)}, {"lease", std::to_string(lease)}}.dump());
    if (!a.transport_ok) return fail("acquire", a);
    if (a.status == 404) return Outcome::kNotFound;
    auto j = parse(a);
    if (!j || a.status != 200 || !j->contains("key")) return fail("acquire", a);
    hold->name = name;
    hold->lease = lease;
    hold->key = (*j)["key"].get<std::string>();
    return Outcome::kOk;
  }

  Outcome acquire_with_new_lease(const std::string& name, int64_t ttl_ms, LockHold* hold) override {
    uint64_t lease = 0;
    Outcome g = grant(ttl_ms, &lease);
    if (g != Outcome::kOk) return g;
    return acquire(name, lease, 0, hold);
  }

  Outcome release(const LockHold& hold) override {
    HttpAnswer a = conn_.post("/v3/lock/unlock", json{{"key", hold.key}}.dump());
    if (!a.transport_ok) return fail("release", a);
    return a.status == 200 ? Outcome::kOk : fail("release", a);
  }

  Outcome read_holder(const std::string& name, bool* held) override {
    // serializable defaults to false: a linearizable read.
    json body{{"key", base64(name + "/")},
              {"range_end", base64(name + "0")},
              {"sort_order", "ASCEND"},
              {"sort_target", "CREATE"},
              {"limit", "1"}};
    HttpAnswer a = conn_.post("/v3/kv/range", body.dump());
    auto j = parse(a);
    if (!j || a.status != 200) return fail("read_holder", a);
    auto it = j->find("kvs");
    *held = it != j->end() && it->is_array() && !it->empty();
    return Outcome::kOk;
  }

  size_t endpoint_index() const override { return conn_.endpoint_index(); }

 private:
  HttpConnection conn_;
};

class EtcdBackend : public Backend {
 public:
  explicit EtcdBackend(std::vector<Endpoint> endpoints) : Backend(std::move(endpoints)) {}
  std::string name() const override { return "etcd"; }

  std::unique_ptr<Session> connect(size_t first, std::chrono::milliseconds timeout) override {
    return std::make_unique<EtcdSession>(endpoints_, first, timeout);
  }

  std::optional<size_t> leader_endpoint() override {
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      HttpConnection c({endpoints_[i]}, 0, std::chrono::milliseconds(1000));
      HttpAnswer a = c.post("/v3/maintenance/status", "{}");
      auto j = parse(a);
      if (!j || a.status != 200 || !j->contains("header")) continue;
      uint64_t leader = uint_field(*j, "leader");
      if (leader != 0 && leader == uint_field((*j)["header"], "member_id")) return i;
    }
    return std::nullopt;
  }
};

}  // namespace

std::unique_ptr<Backend> make_etcd_backend(std::vector<Endpoint> endpoints) {
  return std::make_unique<EtcdBackend>(std::move(endpoints));
}

}  // namespace raftlock::bench
