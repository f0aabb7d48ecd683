#include "nemesis.h"

#include <algorithm>
#include <set>

namespace raftlock::chaos {

const std::vector<FaultKind>& all_fault_kinds() {
  static const std::vector<FaultKind> kinds = {
      FaultKind::kKill,      FaultKind::kKillLeader,        FaultKind::kPause,
      FaultKind::kPauseLong, FaultKind::kPartitionMajority, FaultKind::kIsolateLeader,
      FaultKind::kOneWay,    FaultKind::kFlapping,          FaultKind::kSlowLinks,
      FaultKind::kRestartAll};
  return kinds;
}

std::string fault_name(FaultKind kind) {
  switch (kind) {
    case FaultKind::kKill:
      return "kill";
    case FaultKind::kKillLeader:
      return "kill-leader";
    case FaultKind::kPause:
      return "pause";
    case FaultKind::kPauseLong:
      return "pause-long";
    case FaultKind::kPartitionMajority:
      return "partition";
    case FaultKind::kIsolateLeader:
      return "isolate-leader";
    case FaultKind::kOneWay:
      return "one-way";
    case FaultKind::kFlapping:
      return "flapping";
    case FaultKind::kSlowLinks:
      return "slow";
    case FaultKind::kRestartAll:
      return "restart-all";
  }
  return "?";
}

std::optional<FaultKind> parse_fault_name(const std::string& name) {
  for (FaultKind kind : all_fault_kinds()) {
    if (fault_name(kind) == name) return kind;
  }
  return std::nullopt;
}

Nemesis::Nemesis(ChaosCluster& cluster, NemesisOptions options)
    : cluster_(cluster),
      options_(std::move(options)),
      rng_(options_.seed * 0x9E3779B97F4A7C15ULL + 7) {}

Nemesis::~Nemesis() {
  stop();
}

void Nemesis::start() {
  started_ = std::chrono::steady_clock::now();
  thread_ = std::thread([this] { run(); });
}

void Nemesis::stop() {
  {
    std::lock_guard lock(wake_mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Nemesis::wait_first_cycle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(wake_mu_);
  return wake_.wait_for(lock, timeout, [this] { return first_cycle_done_ || stopping_.load(); }) &&
         first_cycle_done_;
}

std::map<std::string, uint64_t> Nemesis::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

std::vector<std::string> Nemesis::log() const {
  std::lock_guard lock(mu_);
  return log_;
}

bool Nemesis::sleep_ms(int ms) {
  std::unique_lock lock(wake_mu_);
  return !wake_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_.load(); });
}

int Nemesis::pick_node() {
  return cluster_.ids()[pick(0, cluster_.size() - 1)];
}

int Nemesis::leader_or_random() {
  const int fallback = pick_node();  // drawn always, so the schedule does not depend on timing
  return cluster_.current_leader().value_or(fallback);
}

void Nemesis::note(const std::string& what) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started_)
                      .count();
  std::lock_guard lock(mu_);
  log_.push_back("+" + std::to_string(ms) + "ms " + what);
}

void Nemesis::run() {
  if (options_.kinds.empty()) return;
  // Every kind once in a seeded order, then seeded random picks.
  std::vector<FaultKind> first = options_.kinds;
  std::shuffle(first.begin(), first.end(), rng_);
  size_t next = 0;
  if (!sleep_ms(pick(options_.gap_min_ms, options_.gap_max_ms))) return;
  while (!stopping_) {
    const FaultKind kind =
        next < first.size() ? first[next++]
                            : options_.kinds[pick(0, static_cast<int>(options_.kinds.size()) - 1)];
    inject(kind);
    {
      std::lock_guard lock(mu_);
      ++counts_[fault_name(kind)];
    }
    if (next == first.size()) {
      {
        std::lock_guard lock(wake_mu_);
        first_cycle_done_ = true;
      }
      wake_.notify_all();
    }
    if (!sleep_ms(pick(options_.gap_min_ms, options_.gap_max_ms))) return;
  }
}

void Nemesis::inject(FaultKind kind) {
  const int duration = pick(options_.fault_min_ms, options_.fault_max_ms);
  const std::vector<int> ids = cluster_.ids();
  auto others = [&](int node) {
    std::set<int> out(ids.begin(), ids.end());
    out.erase(node);
    return out;
  };
  switch (kind) {
    case FaultKind::kKill:
    case FaultKind::kKillLeader: {
      const int node = kind == FaultKind::kKill ? pick_node() : leader_or_random();
      note(fault_name(kind) + " node " + std::to_string(node) + " for " + std::to_string(duration) +
           "ms");
      cluster_.kill(node);
      sleep_ms(duration);
      cluster_.restart(node);
      break;
    }
    case FaultKind::kPause:
    case FaultKind::kPauseLong: {
      const bool leader = pick(0, 1) == 0;
      const int random_node = pick_node();
      const int node = leader ? cluster_.current_leader().value_or(random_node) : random_node;
      const int ms = kind == FaultKind::kPause ? std::min(duration, options_.lease_ttl_ms / 2)
                                               : options_.lease_ttl_ms + pick(300, 1500);
      note(fault_name(kind) + " node " + std::to_string(node) + (leader ? " (leader)" : "") +
           " for " + std::to_string(ms) + "ms");
      cluster_.pause(node);
      sleep_ms(ms);
      cluster_.resume(node);
      break;
    }
    case FaultKind::kPartitionMajority:
    case FaultKind::kFlapping: {
      std::vector<int> shuffled = ids;
      std::shuffle(shuffled.begin(), shuffled.end(), rng_);
      const int minority = pick(1, (static_cast<int>(ids.size()) - 1) / 2);
      std::set<int> side_a(shuffled.begin(), shuffled.begin() + minority);
      std::set<int> side_b(shuffled.begin() + minority, shuffled.end());
      std::string text;
      for (int n : side_a) text += std::to_string(n) + " ";
      note(fault_name(kind) + " minority { " + text + "} for " + std::to_string(duration) + "ms");
      if (kind == FaultKind::kPartitionMajority) {
        cluster_.rules().split(side_a, side_b);
        sleep_ms(duration);
      } else {
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(duration);
        // Its own generator: how many toggles fit depends on timing, the main schedule must not.
        std::mt19937_64 toggles(rng_());
        bool cut = false;
        while (!stopping_ && std::chrono::steady_clock::now() < end) {
          cut = !cut;
          if (cut) {
            cluster_.rules().split(side_a, side_b);
          } else {
            cluster_.rules().heal();
          }
          sleep_ms(std::uniform_int_distribution<int>(150, 400)(toggles));
        }
      }
      cluster_.rules().heal();
      break;
    }
    case FaultKind::kIsolateLeader: {
      const int node = leader_or_random();
      note("isolate-leader node " + std::to_string(node) + " for " + std::to_string(duration) +
           "ms");
      cluster_.rules().split({node}, others(node));
      sleep_ms(duration);
      cluster_.rules().heal();
      break;
    }
    case FaultKind::kOneWay: {
      const bool outgoing = pick(0, 1) == 0;
      const int node = pick(0, 1) == 0 ? leader_or_random() : pick_node();
      note(std::string("one-way node ") + std::to_string(node) +
           (outgoing ? " cannot send" : " cannot receive") + " for " + std::to_string(duration) +
           "ms");
      for (int other : others(node)) {
        if (outgoing) {
          cluster_.rules().cut(node, other);
        } else {
          cluster_.rules().cut(other, node);
        }
      }
      sleep_ms(duration);
      cluster_.rules().heal();
      break;
    }
    case FaultKind::kSlowLinks: {
      note("slow links 20-200ms for " + std::to_string(duration) + "ms");
      cluster_.rules().slow_all(std::set<int>(ids.begin(), ids.end()), 20, 200);
      sleep_ms(duration);
      cluster_.rules().heal();
      break;
    }
    case FaultKind::kRestartAll: {
      const int down = pick(100, 600);
      note("restart-all after " + std::to_string(down) + "ms down");
      for (int node : ids) cluster_.kill(node);
      sleep_ms(down);
      for (int node : ids) cluster_.restart(node);
      break;
    }
  }
}

}  // namespace raftlock::chaos
