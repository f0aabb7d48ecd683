// In-process harness for raft::Node tests: real Nodes over MemoryLogStores, wired to each other
// through a switchable in-memory router, with a recording state machine and a faulty store.
#pragma once

#include <gtest/gtest.h>

#include <any>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "raft/runtime/node.h"
#include "storage/memory_log_store.h"

namespace raftlock::raft::runtime_testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A state machine that records every applied command. Its result names the node, the command
// and the index, so a caller can tell exactly which entry (and which node's apply) answered it.
class RecordingStateMachine final : public StateMachine {
 public:
  explicit RecordingStateMachine(NodeId node) : node_(node) {}

  static std::string result_for(NodeId node, const std::string& command, Index index) {
    return "n" + std::to_string(node) + ":" + command + "@" + std::to_string(index);
  }

  std::any apply(Index index, std::string_view command) override {
    std::lock_guard lock(mu_);
    applied_.emplace_back(index, std::string(command));
    return result_for(node_, std::string(command), index);
  }

  // Format: per command "<index> <size> <bytes>".
  std::string snapshot() const override {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& [index, command] : applied_) {
      out += std::to_string(index) + " " + std::to_string(command.size()) + " " + command;
    }
    return out;
  }

  Status restore(std::string_view data) override {
    std::vector<std::pair<Index, std::string>> restored;
    size_t pos = 0;
    auto number = [&](uint64_t& value) {
      const size_t space = data.find(' ', pos);
      if (space == std::string_view::npos || space == pos) return false;
      value = std::stoull(std::string(data.substr(pos, space - pos)));
      pos = space + 1;
      return true;
    };
    while (pos < data.size()) {
      uint64_t index = 0, size = 0;
      if (!number(index) || !number(size) || size > data.size() - pos) {
        return make_error(ErrorCode::kCorrupt, "malformed recording snapshot");
      }
      restored.emplace_back(index, std::string(data.substr(pos, size)));
      pos += size;
    }
    std::lock_guard lock(mu_);
    applied_ = std::move(restored);
    ++restores_;
    return Ok{};
  }

  std::vector<std::pair<Index, std::string>> applied() const {
    std::lock_guard lock(mu_);
    return applied_;
  }
  // Index of the last applied command (0 when none).
  Index last_command_index() const {
    std::lock_guard lock(mu_);
    return applied_.empty() ? 0 : applied_.back().first;
  }
  std::optional<std::string> command_at(Index index) const {
    std::lock_guard lock(mu_);
    for (const auto& [i, command] : applied_) {
      if (i == index) return command;
    }
    return std::nullopt;
  }
  bool has_command(const std::string& command) const {
    std::lock_guard lock(mu_);
    for (const auto& [i, c] : applied_) {
      if (c == command) return true;
    }
    return false;
  }
  size_t restores() const {
    std::lock_guard lock(mu_);
    return restores_;
  }

 private:
  NodeId node_;
  mutable std::mutex mu_;
  std::vector<std::pair<Index, std::string>> applied_;
  size_t restores_ = 0;
};

// A MemoryLogStore behind a mutex (so tests can inspect it while the node runs) whose persist and
// compact can be made to fail.
class FaultyStore final : public storage::LogStore {
 public:
  explicit FaultyStore(Configuration bootstrap) : inner_(std::move(bootstrap)) {}

  Result<storage::PersistentState> load() override {
    std::lock_guard lock(mu_);
    return inner_.load();
  }
  Status persist(const std::optional<HardState>& hard_state, const std::vector<Entry>& entries,
                 const std::optional<Snapshot>& snapshot) override {
    std::lock_guard lock(mu_);
    if (failed_) ++calls_after_failure_;
    if (fail_persist_) {
      failed_ = true;
      return make_error(ErrorCode::kIo, "injected persist failure");
    }
    if (hard_state) ++hard_state_writes_;
    if (!entries.empty()) {
      std::vector<std::string> batch;
      for (const Entry& entry : entries) batch.push_back(entry.data);
      written_batches_.push_back(std::move(batch));
    }
    return inner_.persist(hard_state, entries, snapshot);
  }
  Status compact(const Snapshot& snapshot) override {
    std::lock_guard lock(mu_);
    if (failed_) ++calls_after_failure_;
    if (fail_compact_) {
      failed_ = true;
      return make_error(ErrorCode::kIo, "injected compact failure");
    }
    return inner_.compact(snapshot);
  }

  void set_fail_persist(bool fail) {
    std::lock_guard lock(mu_);
    fail_persist_ = fail;
  }
  void set_fail_compact(bool fail) {
    std::lock_guard lock(mu_);
    fail_compact_ = fail;
  }
  // True once an injected failure was returned.
  bool failed() const {
    std::lock_guard lock(mu_);
    return failed_;
  }
  // persist/compact calls made after the first injected failure.
  size_t calls_after_failure() const {
    std::lock_guard lock(mu_);
    return calls_after_failure_;
  }
  // persist calls that carried a hard state.
  size_t hard_state_writes() const {
    std::lock_guard lock(mu_);
    return hard_state_writes_;
  }
  storage::PersistentState state() const {
    std::lock_guard lock(mu_);
    return inner_.state();
  }
  // The entries' commands of each persist call that wrote entries, in order.
  std::vector<std::vector<std::string>> written_batches() const {
    std::lock_guard lock(mu_);
    return written_batches_;
  }

 private:
  mutable std::mutex mu_;
  storage::MemoryLogStore inner_;
  bool fail_persist_ = false;
  bool fail_compact_ = false;
  bool failed_ = false;
  size_t calls_after_failure_ = 0;
  size_t hard_state_writes_ = 0;
  std::vector<std::vector<std::string>> written_batches_;
};

struct ClusterConfig {
  size_t nodes = 3;
  std::chrono::milliseconds tick{10};
  int election_ticks = 10;
  bool check_quorum = true;
  uint64_t snapshot_every = 10000;
  std::chrono::milliseconds read_timeout{3000};
  std::chrono::microseconds may_wait_limit{2000};
  std::chrono::microseconds idle_spin{0};
  bool forwarding = true;
  // Proposals on a follower go to the leader as kForward messages (Node::set_message_forwarding).
  bool message_forwarding = false;
};

// Nodes 1..n wired in-process. Node objects live until the cluster is destroyed (restarts keep
// the stopped one), so callbacks racing with a restart never touch freed memory.
class InProcessCluster {
 public:
  explicit InProcessCluster(ClusterConfig config) : config_(config) {
    for (NodeId id = 1; id <= config_.nodes; ++id)
      bootstrap_.members.push_back(Member{id, true, ""});
    for (NodeId id = 1; id <= config_.nodes; ++id) {
      stores_[id] = std::make_unique<FaultyStore>(bootstrap_);
    }
  }

  ~InProcessCluster() {
    release_forward_answers();
    std::vector<Node*> all;
    {
      std::lock_guard lock(mu_);
      for (auto& node : all_nodes_) all.push_back(node.get());
    }
    for (Node* node : all) node->stop();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      threads.swap(forward_threads_);
      live_.clear();
    }
    for (auto& thread : threads) thread.join();
  }

  // Listeners installed on every node started from now on (before its start()).
  std::function<void(NodeId, const SoftState&)> soft_state_listener;
  std::function<void(NodeId, const Configuration&)> config_listener;

  void start_all() {
    for (NodeId id = 1; id <= config_.nodes; ++id) start(id);
  }

  // Starts a new Node over `id`'s store with a fresh state machine.
  void start(NodeId id) {
    NodeOptions options;
    options.core.id = id;
    options.core.election_ticks = config_.election_ticks;
    options.core.heartbeat_ticks = 1;
    options.core.check_quorum = config_.check_quorum;
    options.core.random_seed = 1000 + id * 7919 + restarts_;
    options.tick_interval = config_.tick;
    options.snapshot_every = config_.snapshot_every;
    options.read_timeout = config_.read_timeout;
    options.may_wait_limit = config_.may_wait_limit;
    options.idle_spin = config_.idle_spin;
    auto machine = std::make_unique<RecordingStateMachine>(id);
    auto node = std::make_unique<Node>(
        options, *stores_.at(id), *machine,
        [this](std::vector<Message> messages) { route(std::move(messages)); });
    if (config_.forwarding) {
      node->set_forwarder(
          [this](NodeId leader, std::string command, std::function<void(Result<EntryId>)> done) {
            forward(leader, std::move(command), std::move(done));
          });
    }
    if (config_.message_forwarding) node->set_message_forwarding([](NodeId) { return true; });
    if (soft_state_listener) {
      node->set_soft_state_listener([this, id](const SoftState& s) { soft_state_listener(id, s); });
    }
    if (config_listener) {
      node->set_config_listener([this, id](const Configuration& c) { config_listener(id, c); });
    }
    Node* raw = node.get();
    {
      std::lock_guard lock(mu_);
      machines_[id] = machine.get();
      all_machines_.push_back(std::move(machine));
      all_nodes_.push_back(std::move(node));
      live_[id] = raw;
    }
    ++restarts_;
    Status started = raw->start();
    ASSERT_TRUE(started.ok()) << started.error().message;
  }

  // Stops node `id` (its store is kept for a restart).
  void stop(NodeId id) {
    Node* node = nullptr;
    {
      std::lock_guard lock(mu_);
      auto it = live_.find(id);
      if (it == live_.end()) return;
      node = it->second;
      live_.erase(it);
    }
    node->stop();
  }

  Node& node(NodeId id) {
    std::lock_guard lock(mu_);
    return *live_.at(id);
  }
  RecordingStateMachine& machine(NodeId id) {
    std::lock_guard lock(mu_);
    return *machines_.at(id);
  }
  FaultyStore& store(NodeId id) { return *stores_.at(id); }
  std::vector<NodeId> ids() const {
    std::vector<NodeId> out;
    for (NodeId id = 1; id <= config_.nodes; ++id) out.push_back(id);
    return out;
  }
  std::vector<NodeId> others(NodeId excluded) const {
    std::vector<NodeId> out;
    for (NodeId id : ids()) {
      if (id != excluded) out.push_back(id);
    }
    return out;
  }

  // ---- network ----
  void isolate(NodeId id) {
    std::lock_guard lock(mu_);
    isolated_.insert(id);
  }
  // Ends every isolation (keeps the drop filter).
  void reconnect_all() {
    std::lock_guard lock(mu_);
    isolated_.clear();
  }
  // Ends every isolation and removes the drop filter.
  void heal() {
    std::lock_guard lock(mu_);
    isolated_.clear();
    drop_filter_ = nullptr;
  }
  // Drops every message for which `filter` returns true (on top of isolation).
  void set_drop_filter(std::function<bool(const Message&)> filter) {
    std::lock_guard lock(mu_);
    drop_filter_ = std::move(filter);
  }
  // Messages sent by `id` since the cluster started.
  size_t messages_sent_by(NodeId id) const {
    std::lock_guard lock(mu_);
    auto it = sent_by_.find(id);
    return it == sent_by_.end() ? 0 : it->second;
  }

  // ---- forwarding ----
  // While held, forwarded appends are made at the leader but their answers wait for release().
  void hold_forward_answers() {
    std::lock_guard lock(mu_);
    hold_ = std::make_shared<std::promise<void>>();
    held_answer_ = hold_->get_future().share();
  }
  void release_forward_answers() {
    std::shared_ptr<std::promise<void>> hold;
    {
      std::lock_guard lock(mu_);
      hold.swap(hold_);
    }
    if (hold) hold->set_value();
  }
  size_t forwards() const { return forwards_.load(); }
  // Messages of `type` handed to route() so far (dropped ones included).
  size_t routed(MessageType type) const {
    std::lock_guard lock(mu_);
    auto it = routed_by_type_.find(type);
    return it == routed_by_type_.end() ? 0 : it->second;
  }
  // Where the leader appended forwarded commands, in order.
  std::vector<EntryId> forwarded_appends() const {
    std::lock_guard lock(mu_);
    return forwarded_appends_;
  }

  // ---- waiting ----
  static bool wait_until(const std::function<bool()>& pred,
                         std::chrono::milliseconds timeout = 10s) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(2ms);
    }
    return pred();
  }

  // A node among `among` that leads while every other one of them follows it.
  std::optional<NodeId> stable_leader(const std::vector<NodeId>& among) {
    return stable_leader_of(among, [this](NodeId id) { return node(id).status(); });
  }
  // A node among `among` that leads while the others follow it in its term, by `status_of`.
  static std::optional<NodeId> stable_leader_of(
      const std::vector<NodeId>& among, const std::function<NodeStatus(NodeId)>& status_of) {
    for (NodeId candidate : among) {
      const NodeStatus status = status_of(candidate);
      if (status.core.role != Role::kLeader) continue;
      bool all_follow = true;
      for (NodeId other : among) {
        if (other == candidate) continue;
        const NodeStatus s = status_of(other);
        if (s.core.leader_id != candidate || s.core.term != status.core.term) all_follow = false;
      }
      if (all_follow) return candidate;
    }
    return std::nullopt;
  }
  std::optional<NodeId> wait_for_leader(std::vector<NodeId> among = {},
                                        std::chrono::milliseconds timeout = 10s) {
    if (among.empty()) among = ids();
    std::optional<NodeId> leader;
    wait_until(
        [&] {
          leader = stable_leader(among);
          return leader.has_value();
        },
        timeout);
    return leader;
  }

 private:
  void route(std::vector<Message> messages) {
    std::map<NodeId, std::vector<Message>> by_destination;
    std::vector<std::pair<NodeId, std::pair<NodeId, bool>>> snapshot_reports;
    std::lock_guard lock(mu_);
    for (Message& message : messages) {
      ++sent_by_[message.from];
      ++routed_by_type_[message.type];
      const bool dropped = isolated_.count(message.from) || isolated_.count(message.to) ||
                           !live_.count(message.to) || (drop_filter_ && drop_filter_(message));
      if (message.type == MessageType::kSnapshot) {
        snapshot_reports.push_back({message.from, {message.to, !dropped}});
      }
      if (!dropped) by_destination[message.to].push_back(std::move(message));
    }
    for (auto& [to, batch] : by_destination) live_.at(to)->receive(std::move(batch));
    for (const auto& [from, report] : snapshot_reports) {
      auto it = live_.find(from);
      if (it != live_.end()) it->second->report_snapshot(report.first, report.second);
    }
  }

  void forward(NodeId leader, std::string command, std::function<void(Result<EntryId>)> done) {
    ++forwards_;
    std::lock_guard lock(mu_);
    forward_threads_.emplace_back(
        [this, leader, command = std::move(command), done = std::move(done)]() mutable {
          std::optional<std::future<Result<EntryId>>> appended;
          std::optional<std::shared_future<void>> hold;
          {
            std::lock_guard lock(mu_);
            auto it = live_.find(leader);
            if (it != live_.end()) appended = it->second->append(command);
            if (hold_) hold = held_answer_;
          }
          if (!appended) {
            done(make_error(ErrorCode::kUnavailable, "leader not reachable"));
            return;
          }
          Result<EntryId> answer = appended->get();
          if (answer) {
            std::lock_guard lock(mu_);
            forwarded_appends_.push_back(*answer);
          }
          if (hold) hold->wait();
          done(std::move(answer));
        });
  }

  ClusterConfig config_;
  Configuration bootstrap_;
  uint64_t restarts_ = 0;
  std::map<NodeId, std::unique_ptr<FaultyStore>> stores_;

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<RecordingStateMachine>> all_machines_;
  std::vector<std::unique_ptr<Node>> all_nodes_;
  std::map<NodeId, Node*> live_;
  std::map<NodeId, RecordingStateMachine*> machines_;
  std::set<NodeId> isolated_;
  std::function<bool(const Message&)> drop_filter_;
  std::map<NodeId, size_t> sent_by_;
  std::vector<std::thread> forward_threads_;
  std::shared_ptr<std::promise<void>> hold_;
  std::shared_future<void> held_answer_;
  std::vector<EntryId> forwarded_appends_;
  std::atomic<size_t> forwards_{0};
  std::map<MessageType, size_t> routed_by_type_;  // guarded by mu_
};

// Waits for a future (failing the test on a hang).
template <typename T>
T await(std::future<T>& future, std::chrono::milliseconds timeout = 10s) {
  if (future.wait_for(timeout) != std::future_status::ready) {
    ADD_FAILURE() << "future not ready within " << timeout.count() << " ms";
    return T(make_error(ErrorCode::kTimeout, "test: the future never completed"));
  }
  return future.get();
}

inline std::string result_string(const Result<std::any>& result) {
  if (!result) return "<error " + std::string(error_code_name(result.error().code)) + ">";
  const auto* text = std::any_cast<std::string>(&result.value());
  return text ? *text : "<not a string>";
}

// The index in a RecordingStateMachine answer "n<node>:<command>@<index>": node `node`'s result
// for exactly `command`; nullopt for any other answer.
inline std::optional<Index> own_result_index(const Result<std::any>& result, NodeId node,
                                             const std::string& command) {
  const std::string text = result_string(result);
  const std::string prefix = "n" + std::to_string(node) + ":" + command + "@";
  if (text.rfind(prefix, 0) != 0) return std::nullopt;
  return std::stoull(text.substr(prefix.size()));
}

}  // namespace raftlock::raft::runtime_testing
