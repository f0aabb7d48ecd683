// Randomized self-test of check_linearizable: histories generated from a sequential reference
// implementation of the lock service with random real-time overlap, random lease expiry and
// unknown outcomes must always pass; mutating one recorded result must usually be caught. Also the
// timing of a realistic-size history.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "checkers.h"

namespace raftlock::chaos {
namespace {

// The service's semantics, sequentially (mirrors lockservice/lock_state_machine.cpp).
class ServiceSim {
 public:
  void apply(Operation& op) {
    op.status = OpStatus::kOk;
    switch (op.kind) {
      case OpKind::kLeaseGrant: {
        auto it = leases_.find(op.lease_id);
        if (it == leases_.end()) {
          leases_[op.lease_id] = op.ttl_ms;
          ++index_;
        } else if (it->second != op.ttl_ms) {
          fail(op, "lease_exists");
        }
        return;
      }
      case OpKind::kLeaseKeepalive:
        if (!leases_.count(op.lease_id)) fail(op, "lease_not_found");
        return;
      case OpKind::kLeaseRevoke:
        if (!leases_.count(op.lease_id)) return fail(op, "lease_not_found");
        end_lease(op.lease_id);
        return;
      case OpKind::kAcquire: {
        if (!leases_.count(op.lease_id)) return fail(op, "lease_not_found");
        Lock& lock = locks_[op.lock];
        if (lock.holder_lease == op.lease_id) {
          op.granted_token = lock.token;
        } else if (lock.holder_lease == 0) {
          lock.holder_lease = op.lease_id;
          lock.token = ++index_;
          op.granted_token = lock.token;
        } else {
          fail(op, "lock_held");
          op.holder = Holder{lock.holder_lease, lock.token};
        }
        return;
      }
      case OpKind::kRelease: {
        Lock& lock = locks_[op.lock];
        if (lock.holder_lease == op.lease_id && lock.token == op.token) {
          lock.holder_lease = 0;
          lock.last_release_lease = op.lease_id;
          lock.last_release_token = op.token;
          ++index_;
        } else if (lock.last_release_lease != op.lease_id || lock.last_release_token != op.token) {
          fail(op, "not_holder");
          if (lock.holder_lease != 0) op.holder = Holder{lock.holder_lease, lock.token};
        }
        return;
      }
      case OpKind::kLockRead: {
        const Lock& lock = locks_[op.lock];
        if (lock.holder_lease != 0) op.holder = Holder{lock.holder_lease, lock.token};
        return;
      }
    }
  }

  // Lease expiry: the same effect as a revoke.
  void expire_some(std::mt19937_64& rng) {
    if (leases_.empty()) return;
    auto it = leases_.begin();
    std::advance(it, rng() % leases_.size());
    end_lease(it->first);
  }

 private:
  struct Lock {
    uint64_t holder_lease = 0, token = 0, last_release_lease = 0, last_release_token = 0;
  };
  static void fail(Operation& op, const std::string& code) {
    op.status = OpStatus::kError;
    op.error_code = code;
  }
  void end_lease(uint64_t id) {
    leases_.erase(id);
    ++index_;
    for (auto& [name, lock] : locks_) {
      if (lock.holder_lease == id) lock.holder_lease = 0;
    }
  }

  std::map<uint64_t, int64_t> leases_;
  std::map<std::string, Lock> locks_;
  uint64_t index_ = 0;
};

struct GenConfig {
  int clients = 4;
  int ops_per_client = 25;
  int locks = 2;
  double unknown = 0.05;
  double expire = 0.01;  // per tick
};

// Each client uses its own leases with one lock; reads go to any lock. Per tick one random client
// advances: invoke → take effect (the linearization point) → complete, so operations overlap.
History generate(uint64_t seed, const GenConfig& cfg) {
  std::mt19937_64 rng(seed);
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  ServiceSim sim;
  History h;
  struct Client {
    int done = 0;
    int phase = 0;  // 0 idle, 1 invoked, 2 took effect
    size_t op = 0;
    bool unknown = false;
    uint64_t lease = 0;
    int generation = 0;
    bool has_lease = false;
    uint64_t token = 0;
  };
  std::vector<Client> clients(cfg.clients);
  for (int c = 0; c < cfg.clients; ++c) clients[c].lease = (c + 1) * 1000;
  uint64_t next_id = 1;
  Nanos now = 0;
  int active = cfg.clients;
  while (active > 0) {
    now += 1 + static_cast<Nanos>(rng() % 3);
    if (chance(cfg.expire)) sim.expire_some(rng);
    const int c = static_cast<int>(rng() % cfg.clients);
    Client& cl = clients[c];
    if (cl.phase == 0) {
      if (cl.done == cfg.ops_per_client) continue;
      Operation op;
      op.id = next_id++;
      op.client = c;
      op.node = c % 3 + 1;
      op.invoke_ns = now;
      op.lease_id = cl.lease;
      op.lock = "lock" + std::to_string(c % cfg.locks);
      const int r = static_cast<int>(rng() % 100);
      if (!cl.has_lease || r < 4) {
        op.kind = OpKind::kLeaseGrant;
        op.ttl_ms = 5000;
        op.lock.clear();
      } else if (r < 40) {
        op.kind = OpKind::kAcquire;
      } else if (r < 60) {
        op.kind = OpKind::kRelease;
        op.token = cl.token ? cl.token : 1;
      } else if (r < 85) {
        op.kind = OpKind::kLockRead;
        op.lease_id = 0;
        op.lock = "lock" + std::to_string(rng() % cfg.locks);
      } else if (r < 96) {
        op.kind = OpKind::kLeaseKeepalive;
        op.lock.clear();
      } else {
        op.kind = OpKind::kLeaseRevoke;
        op.lock.clear();
      }
      cl.unknown = chance(cfg.unknown);
      cl.op = h.operations.size();
      h.operations.push_back(op);
      cl.phase = 1;
    } else if (cl.phase == 1) {
      Operation& op = h.operations[cl.op];
      if (!cl.unknown || chance(0.5)) sim.apply(op);
      cl.phase = 2;
    } else {
      Operation& op = h.operations[cl.op];
      cl.phase = 0;
      ++cl.done;
      if (cl.done == cfg.ops_per_client) --active;
      if (cl.unknown) {
        op.status = OpStatus::kUnknown;
        op.error_code.clear();
        op.granted_token = 0;
        op.holder.reset();
        op.complete_ns = kNeverCompleted;
        if (op.kind == OpKind::kLeaseGrant) cl.has_lease = true;
        continue;
      }
      op.complete_ns = now;
      const bool lease_gone = op.error_code == "lease_not_found" ||
                              (op.kind == OpKind::kLeaseRevoke && op.status == OpStatus::kOk);
      if (op.kind == OpKind::kLeaseGrant && op.status == OpStatus::kOk) cl.has_lease = true;
      if (op.kind == OpKind::kAcquire && op.status == OpStatus::kOk) cl.token = op.granted_token;
      if (lease_gone) {
        cl.has_lease = false;
        cl.token = 0;
        cl.lease = (c + 1) * 1000 + static_cast<uint64_t>(++cl.generation);
      }
    }
  }
  return h;
}

std::string explain(const Verdict& v) {
  std::string s;
  for (const auto& a : v.anomalies) s += a + "\n";
  return s;
}

TEST(LinearizableRandomized, HistoriesOfTheReferenceServiceAlwaysPass) {
  GenConfig cfg;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    cfg.unknown = seed % 3 == 0 ? 0.15 : 0.05;
    const History h = generate(seed, cfg);
    const Verdict v = check_linearizable(h, std::chrono::seconds(10));
    ASSERT_TRUE(v.ok) << "seed " << seed << ":\n" << explain(v);
  }
}

// Changes one recorded answer of a known operation into one the service would not have given
// in that position, when there is such a change for it; false when the operation is unsuited.
bool mutate(Operation& op, std::mt19937_64& rng, const History& h) {
  if (op.status == OpStatus::kUnknown) return false;
  switch (op.kind) {
    case OpKind::kAcquire:
      if (op.status == OpStatus::kOk) {
        op.granted_token = rng() % 2 ? op.granted_token + 1 : op.granted_token - 1;
        return op.granted_token > 0;
      }
      if (op.error_code == "lock_held" && op.holder) {
        op.holder->fencing_token += 1;
        return true;
      }
      return false;
    case OpKind::kRelease:
      if (op.status == OpStatus::kOk) {
        op.status = OpStatus::kError;
        op.error_code = "not_holder";
        op.holder.reset();
        return true;
      }
      return false;
    case OpKind::kLockRead:
      if (op.holder) {
        op.holder->fencing_token += rng() % 2 ? 1 : 100;
        return true;
      } else {
        // Free → some earlier holder of this lock, if any.
        for (const auto& other : h.operations) {
          if (other.kind == OpKind::kAcquire && other.lock == op.lock &&
              other.status == OpStatus::kOk && other.complete_ns < op.invoke_ns) {
            op.holder = Holder{other.lease_id, other.granted_token};
          }
        }
        return op.holder.has_value();
      }
    case OpKind::kLeaseRevoke:
    case OpKind::kLeaseKeepalive:
      if (op.status == OpStatus::kError) {  // ok after the lease is gone
        op.status = OpStatus::kOk;
        op.error_code.clear();
        return true;
      }
      return false;
    case OpKind::kLeaseGrant:
      return false;
  }
  return false;
}

TEST(LinearizableRandomized, MostSingleResultMutationsAreCaught) {
  GenConfig cfg;
  cfg.ops_per_client = 15;
  cfg.unknown = 0.05;
  std::mt19937_64 rng(7);
  int tried = 0, caught = 0, inconclusive = 0;
  for (uint64_t seed = 1; tried < 300; ++seed) {
    History h = generate(seed, cfg);
    const size_t i = rng() % h.operations.size();
    if (!mutate(h.operations[i], rng, h)) continue;
    ++tried;
    const Verdict v = check_linearizable(h, std::chrono::seconds(5));
    if (v.inconclusive) ++inconclusive;
    if (!v.ok && !v.inconclusive) {
      ++caught;
      // The explanation names operations (not necessarily the mutated one: the conflict may
      // surface at the other end).
      EXPECT_FALSE(v.operation_ids.empty()) << explain(v);
    }
  }
  std::printf("mutations caught: %d of %d (inconclusive %d)\n", caught, tried, inconclusive);
  EXPECT_EQ(inconclusive, 0);
  EXPECT_GE(caught * 100, tried * 80);
}

TEST(LinearizablePerformance, ManyUnknownOutcomesAndExpiries) {
  GenConfig cfg;
  cfg.clients = 8;
  cfg.ops_per_client = 300;
  cfg.locks = 4;
  cfg.unknown = 0.15;
  cfg.expire = 0.01;
  const History h = generate(4711, cfg);
  const auto start = std::chrono::steady_clock::now();
  const Verdict v = check_linearizable(h, std::chrono::seconds(30));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  std::printf("2400 operations with 15%% unknown outcomes decided in %lld ms\n",
              static_cast<long long>(ms));
  EXPECT_TRUE(v.ok) << explain(v);
  EXPECT_FALSE(v.inconclusive);
}

TEST(LinearizablePerformance, EightClientsThreeHundredOpsFourLocks) {
  GenConfig cfg;
  cfg.clients = 8;
  cfg.ops_per_client = 300;
  cfg.locks = 4;
  cfg.unknown = 0.03;
  const History h = generate(2026, cfg);
  ASSERT_EQ(h.operations.size(), 2400u);
  const auto start = std::chrono::steady_clock::now();
  const Verdict v = check_linearizable(h, std::chrono::seconds(30));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  std::printf("2400 operations decided in %lld ms\n", static_cast<long long>(ms));
  EXPECT_TRUE(v.ok) << explain(v);

  // The same history with one read, past the middle, reporting a token its holder never had.
  History bad = h;
  uint64_t mutated = 0;
  for (auto& op : bad.operations) {
    if (op.kind == OpKind::kLockRead && op.status == OpStatus::kOk && op.holder &&
        op.invoke_ns > h.operations[h.operations.size() / 2].invoke_ns) {
      op.holder->fencing_token += 100000;
      mutated = op.id;
      break;
    }
  }
  ASSERT_NE(mutated, 0u);
  const auto bad_start = std::chrono::steady_clock::now();
  const Verdict bv = check_linearizable(bad, std::chrono::seconds(30));
  const auto bad_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - bad_start)
                          .count();
  std::printf("the mutated history decided in %lld ms\n", static_cast<long long>(bad_ms));
  EXPECT_FALSE(bv.ok);
  EXPECT_FALSE(bv.inconclusive) << explain(bv);
  EXPECT_NE(std::find(bv.operation_ids.begin(), bv.operation_ids.end(), mutated),
            bv.operation_ids.end())
      << explain(bv);
}

}  // namespace
}  // namespace raftlock::chaos
