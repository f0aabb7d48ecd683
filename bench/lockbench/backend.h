// Backend: the lock-service operations the scenarios drive, implemented once for raftlock's HTTP
// API and once for etcd v3's JSON gateway, so both systems run the very same workload.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/lockbench/http_connection.h"

namespace raftlock::bench {

// How one operation ended.
enum class Outcome {
  kOk,
  kNotFound,  // the lease does not exist (expired or revoked)
  kBusy,      // the lock stayed held by someone else for the whole wait
  kFailed,    // transport error, timeout, or an unexpected answer
};

// A held lock: what release needs. token is raftlock's fencing token; key is etcd's lock key.
struct LockHold {
  std::string name;
  uint64_t lease = 0;
  uint64_t token = 0;
  std::string key;
};

// One simulated client: one keep-alive connection to one node (moves on transport errors).
class Session {
 public:
  virtual ~Session() = default;
  virtual Outcome grant(int64_t ttl_ms, uint64_t* lease) = 0;
  virtual Outcome keepalive(uint64_t lease) = 0;
  // kOk when the lease exists, kNotFound when it is gone.
  virtual Outcome lease_alive(uint64_t lease) = 0;
  virtual Outcome revoke(uint64_t lease) = 0;
  // Waits up to wait_ms for the lock (etcd's lock RPC always waits, bounded by the read timeout).
  virtual Outcome acquire(const std::string& name, uint64_t lease, int64_t wait_ms,
                          LockHold* hold) = 0;
  virtual Outcome release(const LockHold& hold) = 0;
  // A linearizable read of the lock's holder; *held tells whether someone holds it.
  virtual Outcome read_holder(const std::string& name, bool* held) = 0;
  // Creates a lease and takes a free lock with it, the cheapest way the system offers
  // (raftlock: one acquire with ttl_ms; etcd: lease grant, then lock).
  virtual Outcome acquire_with_new_lease(const std::string& name, int64_t ttl_ms,
                                         LockHold* hold) = 0;
  virtual size_t endpoint_index() const = 0;

  // Why operations failed: "op status" (e.g. "keepalive 503", "grant transport") -> count.
  const std::map<std::string, int64_t>& failures() const { return failures_; }
  // The first answer body seen for each failure key.
  const std::map<std::string, std::string>& failure_samples() const { return samples_; }

 protected:
  // Records an answer that was neither success nor an expected refusal.
  void note_failure(const char* op, const HttpAnswer& a) {
    std::string key =
        std::string(op) + " " + (a.transport_ok ? std::to_string(a.status) : "transport");
    if (++failures_[key] == 1) samples_[key] = a.body.substr(0, 200);
  }
  Outcome fail(const char* op, const HttpAnswer& a) {
    note_failure(op, a);
    return Outcome::kFailed;
  }

 private:
  std::map<std::string, int64_t> failures_;
  std::map<std::string, std::string> samples_;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual std::unique_ptr<Session> connect(size_t first_endpoint,
                                           std::chrono::milliseconds read_timeout) = 0;
  // Index (into the endpoint list) of the node that is leader now, if one answers as leader.
  virtual std::optional<size_t> leader_endpoint() = 0;
  const std::vector<Endpoint>& endpoints() const { return endpoints_; }

 protected:
  explicit Backend(std::vector<Endpoint> endpoints) : endpoints_(std::move(endpoints)) {}
  std::vector<Endpoint> endpoints_;
};

std::unique_ptr<Backend> make_raftlock_backend(std::vector<Endpoint> endpoints);
std::unique_ptr<Backend> make_etcd_backend(std::vector<Endpoint> endpoints);

}  // namespace raftlock::bench
