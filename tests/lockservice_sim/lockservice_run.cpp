#include "tests/lockservice_sim/lockservice_run.h"

#include <algorithm>
#include <tuple>

namespace raftlock::lockservice::sim_testing {

using raft::Index;
using raft::NodeId;
using sim::Cluster;
using sim::SimRandom;

const LockStateMachine* as_lock_machine(const raft::StateMachine& machine) {
  if (const auto* lock = dynamic_cast<const LockStateMachine*>(&machine)) return lock;
  if (const auto* holder = dynamic_cast<const LockMachineHolder*>(&machine)) {
    return &holder->lock_machine();
  }
  return nullptr;
}

// ---------------------------------------------------------------- LockClusterChecker

std::string LockClusterChecker::on_apply(NodeId node, const raft::Entry& entry,
                                         const std::any& result,
                                         const raft::StateMachine& machine) {
  ++applies_checked_;
  Index& applied = applied_[node];
  if (entry.index != applied + 1) {
    return "applied index " + std::to_string(entry.index) + " right after " +
           std::to_string(applied);
  }
  applied = entry.index;
  const LockStateMachine* lock = as_lock_machine(machine);
  if (lock == nullptr) return "the app state machine is not a lock state machine";
  // The state bytes only change at entries the machine reports as changing it (no-op entries and
  // refused commands leave it as it was); the final check of every run compares the full bytes.
  uint64_t hash = 0;
  size_t size = 0;
  auto known = state_.find(node);
  if (known != state_.end() && lock->last_modified_index() < entry.index) {
    std::tie(hash, size) = known->second;
  } else {
    const std::string state = machine.snapshot();
    hash = sim::fnv1a(state.data(), state.size());
    size = state.size();
  }
  state_[node] = {hash, size};

  std::optional<CommandResult> typed;
  if (entry.type == raft::EntryType::kNormal) {
    const auto* command_result = std::any_cast<CommandResult>(&result);
    if (command_result == nullptr) return "apply did not return a CommandResult";
    typed = *command_result;
  }
  auto found = canonical_.find(entry.index);
  if (found == canonical_.end()) {
    // First apply of this index anywhere: it extends the history.
    Canonical canonical;
    canonical.state_hash = hash;
    canonical.state_size = size;
    if (typed) {
      auto command = decode_command(entry.data);
      if (!command.ok()) {
        if (typed->outcome != Outcome::kInvalid) return "undecodable command not answered invalid";
      } else {
        std::string problem = history_.check(entry.index, *command, *typed);
        if (!problem.empty()) return "history: " + problem;
      }
      canonical.has_result = true;
      canonical.result = *typed;
    }
    canonical_.emplace(entry.index, std::move(canonical));
  } else {
    const Canonical& canonical = found->second;
    if (canonical.state_hash != hash || canonical.state_size != size) {
      return "state after index " + std::to_string(entry.index) +
             " differs from another node's state after the same index";
    }
    if (canonical.has_result != typed.has_value() || (typed && !(canonical.result == *typed))) {
      return "result at index " + std::to_string(entry.index) +
             " differs from another node's result for the same entry";
    }
  }
  std::string problem = check_machine_state(*lock, lock_names(), election_names());
  return problem.empty() ? "" : "state after index " + std::to_string(entry.index) + ": " + problem;
}

std::string LockClusterChecker::on_restore(NodeId node, Index index,
                                           const raft::StateMachine& machine) {
  ++restores_checked_;
  applied_[node] = index;
  const LockStateMachine* lock = as_lock_machine(machine);
  if (lock == nullptr) return "the app state machine is not a lock state machine";
  {
    const std::string state = machine.snapshot();
    state_[node] = {sim::fnv1a(state.data(), state.size()), state.size()};
  }
  if (index > 0) {
    auto found = canonical_.find(index);
    if (found == canonical_.end()) {
      return "restored at index " + std::to_string(index) + " that no node ever applied";
    }
    if (found->second.state_hash != state_[node].first ||
        found->second.state_size != state_[node].second) {
      return "state restored at index " + std::to_string(index) +
             " differs from the state applied up to that index";
    }
  } else if (!lock->all_lease_ids().empty() || lock->last_modified_index() != 0) {
    return "a node without a snapshot starts from a non-empty state";
  }
  std::string problem = check_machine_state(*lock, lock_names(), election_names());
  return problem.empty() ? "" : "restored state: " + problem;
}

// ---------------------------------------------------------------- workload

namespace {

constexpr LeaseId kLeases = 5;
constexpr LeaseId kFinalLease = 1000;

template <typename T>
const T& pick(SimRandom& random, const std::vector<T>& values) {
  return values[random.below(values.size())];
}

LeaseId random_lease(SimRandom& random) {
  return random.between(1, kLeases);
}

// A random lock-service command, informed by the proposing node's applied state (which may be
// stale: that is part of the test).
Command random_command(SimRandom& random, const LockStateMachine* view) {
  const uint64_t kind = random.below(100);
  const std::string& lock_name = pick(random, lock_names());
  const std::string& election_name = pick(random, election_names());
  const LeaseId lease = random_lease(random);
  if (kind < 12) {
    return CreateLease{lease, random.chance(900000) ? 10000 : 20000};
  }
  if (kind < 40) {
    Acquire acquire;
    acquire.name = lock_name;
    acquire.lease_id = lease;
    acquire.owner = "o" + std::to_string(lease);
    acquire.lock_delay_ms = random.chance(300000) ? 1000 : 0;
    acquire.wait = random.chance(600000);
    if (random.chance(300000)) acquire.create_lease_ttl_ms = 10000;
    return acquire;
  }
  if (kind < 52) {
    Release release{lock_name, lease, random.between(1, 50)};
    if (view) {
      const LockView lock = view->get_lock(lock_name);
      if (lock.holder) {
        release.lease_id = lock.holder->lease_id;
        release.fencing_token = lock.holder->fencing_token;
        if (random.chance(250000)) {  // the wrong token or the wrong lease
          if (random.chance(500000)) {
            release.fencing_token += 1;
          } else {
            release.lease_id = release.lease_id % kLeases + 1;
          }
        }
      }
    }
    return release;
  }
  if (kind < 55) return RevokeLease{lease};
  if (kind < 60) {
    ExpireLease expire{lease, 0};
    if (view) {
      if (auto known = view->get_lease(lease); known && random.chance(800000)) {
        expire.created_index = known->created_index + (random.chance(100000) ? 1 : 0);
      }
    }
    return expire;
  }
  if (kind < 66) {
    EndLockDelay end{lock_name, 0};
    if (view) {
      const auto delayed = view->locks_in_lock_delay();
      if (!delayed.empty()) {
        const LockDelayView& delay = pick(random, delayed);
        end.name = delay.name;
        const uint64_t variant = random.below(10);
        end.started_index =
            variant < 8 ? delay.started_index : (variant == 8 ? 0 : delay.started_index + 1);
      }
    }
    return end;
  }
  if (kind < 70) return CancelWait{lock_name, lease};
  if (kind < 84) {
    Campaign campaign;
    campaign.name = election_name;
    campaign.lease_id = lease;
    campaign.value = "v" + std::to_string(random.below(4));
    campaign.wait = random.chance(600000);
    if (random.chance(200000)) campaign.create_lease_ttl_ms = 10000;
    return campaign;
  }
  FencingToken token = random.between(1, 50);
  LeaseId leader_lease = lease;
  if (view) {
    const ElectionView election = view->get_election(election_name);
    if (election.leader && random.chance(750000)) {
      leader_lease = election.leader->lease_id;
      token = election.leader->fencing_token;
    }
  }
  if (kind < 89) {
    return Proclaim{election_name, leader_lease, token, "p" + std::to_string(random.below(4))};
  }
  if (kind < 96) return Resign{election_name, leader_lease, token};
  return CancelCampaign{election_name, lease};
}

std::vector<NodeId> up_nodes(const Cluster& cluster) {
  std::vector<NodeId> out;
  for (NodeId id : cluster.node_ids()) {
    if (cluster.is_up(id)) out.push_back(id);
  }
  return out;
}

void shuffle(SimRandom& random, std::vector<NodeId>& ids) {
  for (size_t i = ids.size(); i > 1; --i) std::swap(ids[i - 1], ids[random.below(i)]);
}

}  // namespace

LockRunResult run_lockservice_random(const LockRunOptions& run) {
  SimRandom setup(run.seed * 0xD1B54A32D192ED03ull + 0x8BB84B93962EACC9ull);
  auto checker = std::make_shared<LockClusterChecker>();
  sim::ClusterOptions options;
  options.seed = run.seed;
  options.nodes = pick<size_t>(setup, {3, 3, 5});
  options.pre_vote = setup.chance(850000);
  options.check_quorum = setup.chance(800000);
  options.snapshot_every = pick<size_t>(setup, {0, 3, 7, 20});
  options.max_inflight = pick<size_t>(setup, {2, 256});
  options.mid_ready_crash_ppm = pick<uint32_t>(setup, {0, 0, 3000});
  options.trace = run.trace;
  options.report_violations = false;
  options.app.make = run.make_state_machine ? run.make_state_machine
                                            : [](NodeId) -> std::unique_ptr<raft::StateMachine> {
    return std::make_unique<LockStateMachine>();
  };
  options.app.on_apply = [checker](NodeId node, const raft::Entry& entry, const std::any& result,
                                   const raft::StateMachine& machine) {
    return checker->on_apply(node, entry, result, machine);
  };
  options.app.on_restore = [checker](NodeId node, Index index, const raft::StateMachine& machine) {
    return checker->on_restore(node, index, machine);
  };
  const uint64_t chaos_ms = setup.between(3000, 6000);

  Cluster cluster(options);
  SimRandom& random = cluster.random();
  LockRunResult result;
  result.seed = run.seed;
  result.nodes = options.nodes;

  const uint64_t chaos_end = cluster.now_ms() + chaos_ms;
  while (cluster.ok() && cluster.now_ms() < chaos_end) {
    cluster.run_for(random.between(5, 40));
    if (!cluster.ok()) break;
    const std::vector<NodeId> up = up_nodes(cluster);
    if (up.empty()) {
      for (NodeId id : cluster.node_ids()) cluster.restart(id);
      continue;
    }
    const uint64_t action = random.below(100);
    if (action < 60) {
      const auto leaders = cluster.leaders();
      const NodeId target =
          leaders.empty() || random.chance(100000) ? pick(random, up) : pick(random, leaders);
      const raft::StateMachine* machine = cluster.app_state_machine(target);
      const LockStateMachine* view = machine ? as_lock_machine(*machine) : nullptr;
      const uint64_t count = random.between(1, 4);
      for (uint64_t k = 0; k < count && cluster.ok(); ++k) {
        if (cluster.propose(target, encode_command(random_command(random, view))).ok()) {
          ++result.proposals_accepted;
        }
      }
    } else if (action < 62) {
      cluster.crash(pick(random, up));
      ++result.crashes;
    } else if (action < 68) {
      for (NodeId id : cluster.node_ids()) {
        if (!cluster.is_up(id)) {
          cluster.restart(id);
          break;
        }
      }
    } else if (action < 71) {
      std::vector<NodeId> ids = cluster.node_ids();
      shuffle(random, ids);
      const size_t cut = random.between(1, ids.size() - 1);
      cluster.partition({std::vector<NodeId>(ids.begin(), ids.begin() + cut),
                         std::vector<NodeId>(ids.begin() + cut, ids.end())});
    } else if (action < 73) {
      const auto leaders = cluster.leaders();
      if (leaders.empty()) continue;
      std::vector<NodeId> ids = cluster.node_ids();
      const NodeId leader = pick(random, leaders);
      ids.erase(std::find(ids.begin(), ids.end(), leader));
      shuffle(random, ids);
      const size_t extra = random.below((ids.size() + 1) / 2);
      std::vector<NodeId> minority{leader};
      minority.insert(minority.end(), ids.begin(), ids.begin() + extra);
      cluster.partition({minority, std::vector<NodeId>(ids.begin() + extra, ids.end())});
    } else if (action < 80) {
      const auto ids = cluster.node_ids();
      const NodeId from = pick(random, ids);
      const NodeId to = pick(random, ids);
      if (from != to) cluster.block(from, to);
    } else if (action < 88) {
      cluster.heal_network();
    } else if (action < 92) {
      const uint64_t kind = random.below(3);
      if (kind == 0) {
        cluster.set_faults(sim::NetworkFaults::reliable());
      } else if (kind == 1) {
        cluster.set_faults(sim::NetworkFaults::unreliable());
      } else {
        sim::NetworkFaults faults;
        faults.drop_ppm = static_cast<uint32_t>(random.below(300000));
        faults.duplicate_ppm = static_cast<uint32_t>(random.below(100000));
        faults.long_delay_ppm = static_cast<uint32_t>(random.below(300000));
        faults.max_delay_ms = random.between(1, 60);
        faults.long_delay_max_ms = random.between(50, 1000);
        faults.reorder = random.chance(500000);
        cluster.set_faults(faults);
      }
    } else if (action < 95) {
      cluster.set_slow(pick(random, cluster.node_ids()),
                       random.chance(500000) ? random.between(50, 500) : 0);
    } else {
      const auto leader = cluster.current_leader();
      if (!leader) continue;
      const NodeId target = pick(random, cluster.node_ids());
      if (target != *leader) (void)cluster.transfer_leadership(*leader, target);
    }
  }

  auto finish = [&](std::string failure) {
    result.ok = cluster.ok() && failure.empty();
    result.failure = cluster.ok() ? failure : cluster.violation();
    if (!result.ok) result.failure += "\n" + cluster.describe();
    result.applies_checked = checker->applies_checked();
    result.restores_checked = checker->restores_checked();
    result.history = checker->history();
    return result;
  };
  if (!cluster.ok()) return finish("");

  // Heal everything; the cluster must then agree on a last command everywhere, and every node
  // must end in the same state.
  cluster.heal_network();
  cluster.set_faults(sim::NetworkFaults::reliable());
  cluster.set_mid_ready_crash_ppm(0);
  for (NodeId id : cluster.node_ids()) {
    cluster.set_slow(id, 0);
    if (!cluster.is_up(id)) cluster.restart(id);
  }
  const uint64_t bound = (options.pre_vote ? 10 : 30) * cluster.election_timeout_ms();
  if (!cluster.run_until([&] { return cluster.current_leader().has_value(); }, bound)) {
    return finish("liveness: no leader after the faults healed");
  }
  const Index final_index =
      cluster.agree(encode_command(CreateLease{kFinalLease, 10000}), 1, bound);
  if (final_index == 0) return finish("liveness: the final command did not commit");
  result.final_index = final_index;
  const size_t nodes = cluster.node_ids().size();
  if (!cluster.run_until([&] { return cluster.applied_count(final_index) == nodes; }, bound)) {
    return finish("liveness: not every node applied the final command");
  }
  cluster.run_for(cluster.options().tick_ms * 3);
  std::optional<std::string> first_state;
  Index first_applied = 0;
  for (NodeId id : cluster.node_ids()) {
    const raft::StateMachine* machine = cluster.app_state_machine(id);
    if (machine == nullptr) return finish("node " + std::to_string(id) + " is down at the end");
    const LockStateMachine* lock = as_lock_machine(*machine);
    if (lock == nullptr || !lock->lease_exists(kFinalLease)) {
      return finish("node " + std::to_string(id) + " lacks the final lease");
    }
    const Index applied = cluster.state_machine(id).applied_index();
    if (!first_state) {
      first_state = machine->snapshot();
      first_applied = applied;
    } else if (applied == first_applied && machine->snapshot() != *first_state) {
      return finish("nodes end in different lock-service states at index " +
                    std::to_string(applied));
    }
  }
  return finish("");
}

}  // namespace raftlock::lockservice::sim_testing
