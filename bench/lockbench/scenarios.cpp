#include "bench/lockbench/scenarios.h"

#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <barrier>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <queue>
#include <thread>

#include "bench/lockbench/latency_log.h"

namespace raftlock::bench {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int64_t kBenchLeaseTtlMs = 300'000;  // outlives every scenario: no keepalives needed

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// VmRSS of a process in MiB, or -1 when it cannot be read.
double rss_mib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1;
}

// Failure reasons of every session of a run ("op status" -> count, and one sample answer each).
class FailureLog {
 public:
  void absorb(const Session& session) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [k, n] : session.failures()) counts_[k] += n;
    for (const auto& [k, body] : session.failure_samples()) samples_.emplace(k, body);
  }
  json to_json() const {
    std::lock_guard<std::mutex> lock(mu_);
    json j = json::object();
    for (const auto& [k, n] : counts_) j[k] = {{"count", n}, {"sample", samples_.at(k)}};
    return j;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, int64_t> counts_;
  std::map<std::string, std::string> samples_;
};

FailureLog& failure_log() {
  static FailureLog log;
  return log;
}

// Builds the result document; metrics are appended with add().
class ResultBuilder {
 public:
  ResultBuilder(const std::string& scenario, const Backend& backend, const std::string& policy) {
    doc_ = {{"scenario", scenario},     {"system", backend.name()}, {"endpoints_policy", policy},
            {"params", json::object()}, {"metrics", json::array()}, {"errors", json::object()}};
    cpu_start_ = cpu_seconds();
    wall_start_ = Clock::now();
  }
  void param(const std::string& k, const json& v) { doc_["params"][k] = v; }
  void error(const std::string& k, int64_t n) { doc_["errors"][k] = n; }
  // better: "higher", "lower" or "info".
  void add(const std::string& name, double value, const std::string& unit,
           const std::string& better) {
    doc_["metrics"].push_back(
        {{"name", name}, {"value", value}, {"unit", unit}, {"better", better}});
  }
  void latency(const std::string& op, LatencyLog& log) {
    add(op + "_p50_ms", log.quantile_ms(0.50), "ms", "lower");
    add(op + "_p99_ms", log.quantile_ms(0.99), "ms", "lower");
    add(op + "_max_ms", log.max_ms(), "ms", "lower");
  }
  json finish() {
    doc_["failures"] = failure_log().to_json();
    double wall = seconds_between(wall_start_, Clock::now());
    // How much CPU the load generator itself used (it shares the machine with the cluster).
    add("client_cpu_cores", wall > 0 ? (cpu_seconds() - cpu_start_) / wall : 0, "cores", "info");
    return doc_;
  }

 private:
  json doc_;
  double cpu_start_;
  Clock::time_point wall_start_;
};

// A deadline shared between the load threads and whoever decides when the run ends.
class Deadline {
 public:
  Clock::time_point get() const {
    return Clock::time_point(Clock::duration(at_.load(std::memory_order_relaxed)));
  }
  void set(Clock::time_point t) { at_.store(t.time_since_epoch().count()); }
  bool passed() const { return Clock::now() >= get(); }

 private:
  std::atomic<Clock::rep> at_{Clock::time_point::max().time_since_epoch().count()};
};

Clock::duration seconds_duration(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

std::optional<size_t> wait_for_leader(Backend& backend) {
  std::optional<size_t> leader;
  for (int i = 0; i < 50 && !leader; ++i) {
    leader = backend.leader_endpoint();
    if (!leader) std::this_thread::sleep_for(milliseconds(100));
  }
  return leader;
}

// Per-thread counters of the lock cycle scenarios.
struct CycleStats {
  LatencyLog acquire;
  LatencyLog release;
  int64_t cycles = 0;
  int64_t acquire_failed = 0;
  int64_t acquire_busy = 0;
  int64_t release_failed = 0;
  int64_t setup_failed = 0;
};

using AcquireHook = std::function<void(Clock::time_point sent, Clock::time_point answered)>;

// Drives `clients` threads, each with its own lease (granted before the clock starts), acquiring
// then releasing lock_of(client) until the deadline. If duration_s > 0 the deadline is set to
// start + duration_s; otherwise someone else sets it. on_started runs once all clients are ready.
struct CycleRun {
  std::vector<CycleStats> per_client;
  double seconds = 0;
};

CycleRun run_cycles(Backend& backend, int clients, const std::function<std::string(int)>& lock_of,
                    int64_t wait_ms, milliseconds read_timeout, Deadline& deadline,
                    double duration_s, const AcquireHook& on_acquired,
                    const std::function<void()>& on_started, size_t first_endpoint = 0) {
  CycleRun run;
  run.per_client.resize(clients);
  std::barrier sync(clients + 1);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      CycleStats& st = run.per_client[c];
      auto session = backend.connect(first_endpoint + static_cast<size_t>(c), read_timeout);
      uint64_t lease = 0;
      bool have_lease = false;
      for (int attempt = 0; attempt < 20 && !have_lease; ++attempt) {
        have_lease = session->grant(kBenchLeaseTtlMs, &lease) == Outcome::kOk;
        if (!have_lease) std::this_thread::sleep_for(milliseconds(100));
      }
      if (!have_lease) ++st.setup_failed;
      sync.arrive_and_wait();
      if (!have_lease) return;
      const std::string name = lock_of(c);
      while (!deadline.passed()) {
        LockHold hold;
        auto t0 = Clock::now();
        Outcome a = session->acquire(name, lease, wait_ms, &hold);
        auto t1 = Clock::now();
        bool in_time = t1 <= deadline.get();
        if (a != Outcome::kOk) {
          if (a == Outcome::kBusy) {
            ++st.acquire_busy;
          } else {
            ++st.acquire_failed;
            std::this_thread::sleep_for(milliseconds(5));
          }
          continue;
        }
        if (in_time) st.acquire.add(t1 - t0);
        if (on_acquired) on_acquired(t0, t1);
        // A lost release would leave a contended lock held until the lease ends: retry it.
        for (int attempt = 0; attempt < 5; ++attempt) {
          auto r0 = Clock::now();
          Outcome r = session->release(hold);
          auto r1 = Clock::now();
          if (r == Outcome::kOk) {
            if (r1 <= deadline.get()) {
              st.release.add(r1 - r0);
              if (in_time) ++st.cycles;
            }
            break;
          }
          ++st.release_failed;
          std::this_thread::sleep_for(milliseconds(5));
        }
      }
      session->revoke(lease);
      failure_log().absorb(*session);
    });
  }
  sync.arrive_and_wait();
  auto begin = Clock::now();
  if (duration_s > 0) deadline.set(begin + seconds_duration(duration_s));
  if (on_started) on_started();
  for (auto& t : threads) t.join();
  run.seconds = seconds_between(begin, std::min(Clock::now(), deadline.get()));
  return run;
}

struct CycleTotals {
  LatencyLog acquire, release;
  int64_t cycles = 0, acquire_failed = 0, acquire_busy = 0, release_failed = 0, setup_failed = 0;
};

CycleTotals total(CycleRun& run) {
  CycleTotals t;
  for (auto& s : run.per_client) {
    t.acquire.merge(s.acquire);
    t.release.merge(s.release);
    t.cycles += s.cycles;
    t.acquire_failed += s.acquire_failed;
    t.acquire_busy += s.acquire_busy;
    t.release_failed += s.release_failed;
    t.setup_failed += s.setup_failed;
  }
  return t;
}

void add_cycle_errors(ResultBuilder& r, const CycleTotals& t) {
  r.error("acquire_failed", t.acquire_failed);
  r.error("acquire_busy", t.acquire_busy);
  r.error("release_failed", t.release_failed);
  r.error("lease_setup_failed", t.setup_failed);
}

// Lock names unique per run, so repeated runs against one cluster do not collide.
std::string unique_prefix() {
  return "lb" +
         std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000000);
}

const char* kSpread = "spread: client i -> node i%3";

// The common ending of the acquire+release scenarios: rate, latencies and errors.
json finish_cycles(ResultBuilder& r, CycleRun& run, const char* rate_metric) {
  CycleTotals t = total(run);
  r.add(rate_metric, t.cycles / std::max(run.seconds, 1e-9), "1/s", "higher");
  r.latency("acquire", t.acquire);
  r.latency("release", t.release);
  add_cycle_errors(r, t);
  return r.finish();
}

// Scenarios 1 and 2: every client cycles on its own lock.
json own_lock_cycles(const std::string& scenario, Backend& backend, const ScenarioOptions& o,
                     int default_clients) {
  int clients = o.clients > 0 ? o.clients : default_clients;
  // One client alone would land on node 1, leader or not, so the two systems could differ by an
  // election's luck: a lone client always talks to a follower (the common case, 2 nodes in 3).
  size_t first_endpoint = 0;
  std::string policy = kSpread;
  if (clients == 1) {
    std::optional<size_t> leader = wait_for_leader(backend);
    if (leader) first_endpoint = (*leader + 1) % backend.endpoints().size();
    policy = "one client on a follower";
  }
  ResultBuilder r(scenario, backend, policy);
  r.param("clients", clients);
  r.param("locks", clients);
  r.param("duration_s", o.duration_s);
  std::string prefix = unique_prefix();
  Deadline deadline;
  CycleRun run = run_cycles(
      backend, clients, [&](int c) { return prefix + "-own-" + std::to_string(c); }, 0,
      milliseconds(10000), deadline, o.duration_s, nullptr, nullptr, first_endpoint);
  return finish_cycles(r, run, "cycles_per_s");
}

// Scenario 3: clients queue for one lock; every grant is a handoff from the previous holder.
json contended(Backend& backend, const ScenarioOptions& o) {
  int clients = o.clients > 0 ? o.clients : 16;
  ResultBuilder r("contended", backend, kSpread);
  r.param("clients", clients);
  r.param("locks", 1);
  r.param("duration_s", o.duration_s);
  r.param("wait_ms", 30000);
  std::string name = unique_prefix() + "-contended";
  Deadline deadline;
  CycleRun run = run_cycles(
      backend, clients, [&](int) { return name; }, 30000, milliseconds(35000), deadline,
      o.duration_s, nullptr, nullptr);
  return finish_cycles(r, run, "handoffs_per_s");
}

// Scenario 5: scenario 2's load; SIGKILL the leader; time until an acquire sent after the kill
// succeeds.
json failover(Backend& backend, const ScenarioOptions& o) {
  int clients = o.clients > 0 ? o.clients : 64;
  ResultBuilder r("failover", backend, std::string(kSpread) + ", next node on a transport error");
  const double warmup_s = 3;
  const double after_kill_max_s = std::max(10.0, o.duration_s);
  r.param("clients", clients);
  r.param("warmup_s", warmup_s);
  r.param("request_timeout_ms", 2000);
  if (o.pids.size() != backend.endpoints().size()) {
    json doc = r.finish();
    doc["error"] = "failover needs --pids (one per endpoint)";
    return doc;
  }
  std::string prefix = unique_prefix();
  Deadline deadline;
  std::atomic<Clock::rep> kill_at{0};
  std::atomic<Clock::rep> first_after_kill{0};  // answer time of the first acquire sent after it
  std::atomic<Clock::rep> first_any_after_kill{0};  // first successful answer after the kill
  std::atomic<int64_t> killed_node{-1};
  std::atomic<int64_t> acquires_before{0};
  auto record_min = [](std::atomic<Clock::rep>& slot, Clock::rep v) {
    Clock::rep cur = slot.load();
    while ((cur == 0 || v < cur) && !slot.compare_exchange_weak(cur, v)) {
    }
  };
  std::thread controller;
  auto on_started = [&] {
    controller = std::thread([&] {
      std::this_thread::sleep_for(seconds_duration(warmup_s));
      std::optional<size_t> leader = wait_for_leader(backend);
      if (!leader) {
        deadline.set(Clock::now());
        return;
      }
      killed_node = static_cast<int64_t>(*leader);
      auto now = Clock::now();
      kill_at = now.time_since_epoch().count();
      ::kill(o.pids[*leader], SIGKILL);
      deadline.set(now + seconds_duration(after_kill_max_s));
      // End early once recovered: 3 s after the first successful acquire sent after the kill.
      while (!deadline.passed()) {
        Clock::rep f = first_after_kill.load();
        if (f != 0) {
          deadline.set(std::min(deadline.get(),
                                Clock::time_point(Clock::duration(f)) + std::chrono::seconds(3)));
          break;
        }
        std::this_thread::sleep_for(milliseconds(10));
      }
    });
  };
  auto on_acquired = [&](Clock::time_point sent, Clock::time_point answered) {
    Clock::rep k = kill_at.load();
    if (k == 0) {
      ++acquires_before;
      return;
    }
    if (answered.time_since_epoch().count() >= k)
      record_min(first_any_after_kill, answered.time_since_epoch().count());
    if (sent.time_since_epoch().count() >= k)
      record_min(first_after_kill, answered.time_since_epoch().count());
  };
  CycleRun run = run_cycles(
      backend, clients, [&](int c) { return prefix + "-fo-" + std::to_string(c); }, 0,
      milliseconds(2000), deadline, 0, on_acquired, on_started);
  if (controller.joinable()) controller.join();
  CycleTotals t = total(run);
  r.param("killed_endpoint", killed_node.load());
  Clock::rep k = kill_at.load();
  if (k == 0) {
    json doc = r.finish();
    doc["error"] = "no leader found to kill";
    return doc;
  }
  auto ms_after_kill = [&](Clock::rep v) {
    return v == 0 ? -1.0
                  : std::chrono::duration<double, std::milli>(Clock::duration(v - k)).count();
  };
  r.add("time_to_acquire_ms", ms_after_kill(first_after_kill.load()), "ms", "lower");
  r.add("first_answer_after_kill_ms", ms_after_kill(first_any_after_kill.load()), "ms", "info");
  r.add("cycles_per_s_before_kill", acquires_before.load() / warmup_s, "1/s", "info");
  add_cycle_errors(r, t);
  return r.finish();
}

// One lease of scenario 4, owned by one client thread.
struct TrackedLease {
  uint64_t id = 0;
  Clock::time_point due;           // next keepalive
  Clock::time_point last_ok_sent;  // send time of the last keepalive (or grant) that succeeded
};

struct DueLater {
  bool operator()(const TrackedLease* a, const TrackedLease* b) const { return a->due > b->due; }
};

struct LeaseStats {
  LatencyLog grant, keepalive, check;
  int64_t granted = 0, grant_failed = 0, keepalive_failed = 0, keepalives = 0;
  int64_t premature = 0, late_expiry = 0, check_failed = 0;
  double max_gap_ms = 0;  // longest time between successful keepalives of one lease
};

// Scenario 4: `leases` leases, each kept alive every ttl/3 from the moment it is granted.
json leases(Backend& backend, const ScenarioOptions& o) {
  // 128 connections: a closed loop of 64 would cap the offered rate at 64 / latency, which is
  // near the 2,500 keepalives/s that 50,000 leases at TTL/3 = 20 s need.
  int clients = o.clients > 0 ? o.clients : 128;
  const auto ttl = std::chrono::seconds(o.lease_ttl_s);
  const auto interval = std::chrono::duration_cast<Clock::duration>(ttl) / 3;
  ResultBuilder r("leases", backend, kSpread);
  r.param("clients", clients);
  r.param("leases", o.leases);
  r.param("ttl_s", o.lease_ttl_s);
  r.param("keepalive_every_ms", std::chrono::duration_cast<milliseconds>(interval).count());
  r.param("hold_s", o.lease_hold_s);
  r.param("grant_budget_s", o.lease_grant_budget_s);
  std::vector<LeaseStats> stats(clients);
  std::atomic<int> granting{clients};
  Deadline deadline;
  Clock::time_point begin = Clock::now();
  std::atomic<Clock::rep> grants_done_at{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      LeaseStats& st = stats[c];
      auto session = backend.connect(static_cast<size_t>(c), milliseconds(10000));
      int mine = o.leases / clients + (c < o.leases % clients ? 1 : 0);
      std::vector<std::unique_ptr<TrackedLease>> owned;
      std::priority_queue<TrackedLease*, std::vector<TrackedLease*>, DueLater> queue;
      auto keep_one_alive = [&] {
        TrackedLease* l = queue.top();
        queue.pop();
        auto sent = Clock::now();
        Outcome k = session->keepalive(l->id);
        auto got = Clock::now();
        if (k == Outcome::kOk) {
          st.keepalive.add(got - sent);
          ++st.keepalives;
          st.max_gap_ms = std::max(st.max_gap_ms, ms_between(l->last_ok_sent, sent));
          l->last_ok_sent = sent;
          l->due += interval;
          queue.push(l);
        } else if (k == Outcome::kNotFound) {
          if (got - l->last_ok_sent < ttl)
            ++st.premature;
          else
            ++st.late_expiry;
          l->id = 0;
        } else {
          ++st.keepalive_failed;
          queue.push(l);  // still due: retried next
          std::this_thread::sleep_for(milliseconds(5));
        }
      };
      int granted = 0, attempts = 0;
      const auto grant_until = begin + seconds_duration(o.lease_grant_budget_s);
      while (granted < mine && attempts < mine * 3 && Clock::now() < grant_until) {
        if (!queue.empty() && queue.top()->due <= Clock::now()) {
          keep_one_alive();
          continue;
        }
        ++attempts;
        auto lease = std::make_unique<TrackedLease>();
        auto sent = Clock::now();
        Outcome g = session->grant(o.lease_ttl_s * 1000LL, &lease->id);
        auto got = Clock::now();
        if (g != Outcome::kOk) {
          ++st.grant_failed;
          std::this_thread::sleep_for(milliseconds(5));
          continue;
        }
        st.grant.add(got - sent);
        ++granted;
        lease->last_ok_sent = sent;
        lease->due = sent + interval;
        queue.push(lease.get());
        owned.push_back(std::move(lease));
      }
      st.granted = granted;
      if (--granting == 0) {
        auto now = Clock::now();
        grants_done_at = now.time_since_epoch().count();
        deadline.set(now + seconds_duration(o.lease_hold_s));
      }
      while (!deadline.passed() && !queue.empty()) {
        auto next = queue.top()->due;
        auto now = Clock::now();
        if (next > now) {
          std::this_thread::sleep_until(std::min(next, deadline.get()));
          continue;
        }
        keep_one_alive();
      }
      // Final check: every lease this client kept alive must still exist.
      for (auto& l : owned) {
        if (l->id == 0) continue;
        auto sent = Clock::now();
        Outcome a = session->lease_alive(l->id);
        auto got = Clock::now();
        if (a == Outcome::kOk) {
          st.check.add(got - sent);
        } else if (a == Outcome::kNotFound) {
          if (got - l->last_ok_sent < ttl)
            ++st.premature;
          else
            ++st.late_expiry;
        } else {
          ++st.check_failed;
        }
      }
      failure_log().absorb(*session);
    });
  }
  // Progress on stderr every 10 s (granted so far is only known per thread: report the phase).
  std::atomic<bool> done{false};
  std::thread progress([&] {
    while (!done.load()) {
      for (int i = 0; i < 100 && !done.load(); ++i) std::this_thread::sleep_for(milliseconds(100));
      if (done.load()) break;
      std::fprintf(stderr, "leases: %.0f s, %d clients still granting\n",
                   seconds_between(begin, Clock::now()), granting.load());
    }
  });
  for (auto& t : threads) t.join();
  done = true;
  progress.join();
  LeaseStats all;
  for (auto& s : stats) {
    all.grant.merge(s.grant);
    all.keepalive.merge(s.keepalive);
    all.check.merge(s.check);
    all.granted += s.granted;
    all.grant_failed += s.grant_failed;
    all.keepalives += s.keepalives;
    all.keepalive_failed += s.keepalive_failed;
    all.premature += s.premature;
    all.late_expiry += s.late_expiry;
    all.check_failed += s.check_failed;
    all.max_gap_ms = std::max(all.max_gap_ms, s.max_gap_ms);
  }
  Clock::time_point grants_done{Clock::duration(grants_done_at.load())};
  r.add("premature_expiries", static_cast<double>(all.premature), "leases", "lower");
  // Every lease that did not survive, premature or not: the issue asks for all kept alive.
  r.add("leases_lost", static_cast<double>(all.premature + all.late_expiry), "leases", "lower");
  r.add("leases_granted", static_cast<double>(all.granted), "leases", "higher");
  r.add("grants_per_s", all.granted / std::max(seconds_between(begin, grants_done), 1e-9), "1/s",
        "higher");
  r.add("keepalives_per_s_needed", all.granted / std::chrono::duration<double>(interval).count(),
        "1/s", "info");
  r.add("keepalives_per_s", all.keepalives / std::max(seconds_between(begin, deadline.get()), 1e-9),
        "1/s", "higher");
  r.latency("keepalive", all.keepalive);
  r.add("max_keepalive_gap_ms", all.max_gap_ms, "ms", "lower");
  r.add("late_expiries", static_cast<double>(all.late_expiry), "leases", "info");
  r.error("grant_failed", all.grant_failed);
  r.error("keepalive_failed", all.keepalive_failed);
  r.error("final_check_failed", all.check_failed);
  return r.finish();
}

// Scenario 6: one held lock; clients on the followers read its holder (linearizable).
json reads(Backend& backend, const ScenarioOptions& o) {
  int clients = o.clients > 0 ? o.clients : 16;
  ResultBuilder r("reads", backend, "followers only: client i -> follower i%2");
  r.param("clients", clients);
  r.param("duration_s", o.duration_s);
  std::optional<size_t> leader = wait_for_leader(backend);
  if (!leader) {
    json doc = r.finish();
    doc["error"] = "no leader";
    return doc;
  }
  std::vector<size_t> followers;
  for (size_t i = 0; i < backend.endpoints().size(); ++i)
    if (i != *leader) followers.push_back(i);
  std::string name = unique_prefix() + "-read";
  auto owner = backend.connect(*leader, milliseconds(10000));
  uint64_t lease = 0;
  LockHold hold;
  if (owner->grant(kBenchLeaseTtlMs, &lease) != Outcome::kOk ||
      owner->acquire(name, lease, 0, &hold) != Outcome::kOk) {
    json doc = r.finish();
    doc["error"] = "could not take the lock to read";
    return doc;
  }
  struct ReadStats {
    LatencyLog read;
    int64_t ok = 0, failed = 0, wrong = 0;
  };
  std::vector<ReadStats> stats(clients);
  std::barrier sync(clients + 1);
  Deadline deadline;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto session = backend.connect(followers[c % followers.size()], milliseconds(10000));
      sync.arrive_and_wait();
      while (!deadline.passed()) {
        bool held = false;
        auto t0 = Clock::now();
        Outcome a = session->read_holder(name, &held);
        auto t1 = Clock::now();
        if (a != Outcome::kOk) {
          ++stats[c].failed;
          continue;
        }
        if (!held) ++stats[c].wrong;
        if (t1 <= deadline.get()) {
          stats[c].read.add(t1 - t0);
          ++stats[c].ok;
        }
      }
      failure_log().absorb(*session);
    });
  }
  sync.arrive_and_wait();
  auto begin = Clock::now();
  deadline.set(begin + seconds_duration(o.duration_s));
  for (auto& t : threads) t.join();
  ReadStats all;
  for (auto& s : stats) {
    all.read.merge(s.read);
    all.ok += s.ok;
    all.failed += s.failed;
    all.wrong += s.wrong;
  }
  owner->release(hold);
  owner->revoke(lease);
  failure_log().absorb(*owner);
  r.add("reads_per_s", all.ok / std::max(o.duration_s, 1e-9), "1/s", "higher");
  r.latency("read", all.read);
  r.error("read_failed", all.failed);
  r.error("read_saw_lock_free", all.wrong);
  return r.finish();
}

// Scenario 7: memory per node with N leases each holding one lock.
json memory(Backend& backend, const ScenarioOptions& o) {
  int clients = o.clients > 0 ? o.clients : 64;
  ResultBuilder r("memory", backend, kSpread);
  r.param("clients", clients);
  r.param("leases_and_locks", o.memory_locks);
  r.param("lease_ttl_s", 3600);
  if (o.pids.size() != backend.endpoints().size()) {
    json doc = r.finish();
    doc["error"] = "memory needs --pids (one per endpoint)";
    return doc;
  }
  double baseline = 0;
  for (pid_t p : o.pids) baseline = std::max(baseline, rss_mib(p));
  std::string prefix = unique_prefix();
  std::atomic<int64_t> created{0}, failed{0};
  auto begin = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto session = backend.connect(static_cast<size_t>(c), milliseconds(10000));
      for (int i = c; i < o.memory_locks; i += clients) {
        LockHold hold;
        Outcome a = Outcome::kFailed;
        for (int attempt = 0; attempt < 3 && a != Outcome::kOk; ++attempt)
          a = session->acquire_with_new_lease(prefix + "-m-" + std::to_string(i), 3'600'000, &hold);
        if (a == Outcome::kOk)
          ++created;
        else
          ++failed;
      }
      failure_log().absorb(*session);
    });
  }
  for (auto& t : threads) t.join();
  double secs = seconds_between(begin, Clock::now());
  std::this_thread::sleep_for(std::chrono::seconds(2));  // let followers apply the tail
  double max_rss = 0, sum_rss = 0;
  for (size_t i = 0; i < o.pids.size(); ++i) {
    double v = rss_mib(o.pids[i]);
    max_rss = std::max(max_rss, v);
    sum_rss += v;
    r.add("rss_node" + std::to_string(i + 1) + "_mib", v, "MiB", "lower");
  }
  r.add("rss_max_mib", max_rss, "MiB", "lower");
  r.add("rss_total_mib", sum_rss, "MiB", "lower");
  r.add("rss_baseline_max_mib", baseline, "MiB", "info");
  r.add("created_per_s", created / std::max(secs, 1e-9), "1/s", "higher");
  r.add("locks_created", static_cast<double>(created.load()), "locks", "info");
  r.error("create_failed", failed.load());
  return r.finish();
}

}  // namespace

const std::vector<std::string>& scenario_names() {
  static const std::vector<std::string> names = {"single",   "multi", "contended", "leases",
                                                 "failover", "reads", "memory"};
  return names;
}

json run_scenario(const std::string& scenario, Backend& backend, const ScenarioOptions& o) {
  if (scenario == "single") return own_lock_cycles("single", backend, o, 1);
  if (scenario == "multi") return own_lock_cycles("multi", backend, o, 64);
  if (scenario == "contended") return contended(backend, o);
  if (scenario == "leases") return leases(backend, o);
  if (scenario == "failover") return failover(backend, o);
  if (scenario == "reads") return reads(backend, o);
  if (scenario == "memory") return memory(backend, o);
  return json{{"scenario", scenario}, {"error", "unknown scenario"}};
}

}  // namespace raftlock::bench
