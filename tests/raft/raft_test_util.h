// Test harness for raft::Core unit tests: a few cores with in-memory "storage", a hand-driven
// message queue (deliver, drop, partition) and helpers to persist/apply each Ready.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "raft/core.h"

namespace raftlock::raft::testing {

inline Configuration voters(std::initializer_list<NodeId> ids,
                            std::initializer_list<NodeId> learners = {}) {
  Configuration c;
  for (NodeId id : ids) c.members.push_back(Member{id, true, "addr-" + std::to_string(id)});
  for (NodeId id : learners) c.members.push_back(Member{id, false, "addr-" + std::to_string(id)});
  std::sort(c.members.begin(), c.members.end(),
            [](const Member& a, const Member& b) { return a.id < b.id; });
  return c;
}

inline Config test_config(NodeId id) {
  Config c;
  c.id = id;
  c.election_ticks = 10;
  c.heartbeat_ticks = 1;
  c.random_seed = id * 7919;
  return c;
}

inline Entry entry(Index index, Term term, std::string data = "") {
  return Entry{term, index, EntryType::kNormal, std::move(data)};
}

// What one node has made durable (mirrors the LogStore contract).
struct Storage {
  HardState hard_state;
  std::optional<Snapshot> snapshot;
  std::vector<Entry> entries;

  void persist(const Ready& rd) {
    if (rd.snapshot) {
      snapshot = rd.snapshot;
      entries.clear();
    }
    if (!rd.entries.empty()) {
      const Index from = rd.entries.front().index;
      entries.erase(std::remove_if(entries.begin(), entries.end(),
                                   [&](const Entry& e) { return e.index >= from; }),
                    entries.end());
      entries.insert(entries.end(), rd.entries.begin(), rd.entries.end());
    }
    if (rd.hard_state) hard_state = *rd.hard_state;
  }
};

// One node: the core plus its storage and what it applied.
struct TestNode {
  std::unique_ptr<Core> core;
  Storage storage;
  std::vector<Entry> applied;
  std::vector<ReadState> read_states;
  std::vector<Ready> readies;  // every Ready handled, for inspection
  Configuration bootstrap;
  Config config;

  // Handles one Ready the way the runtime does and returns the messages it produced.
  std::vector<Message> handle_ready() {
    std::vector<Message> out;
    while (core->has_ready()) {
      Ready rd = core->ready();
      storage.persist(rd);
      for (const Message& m : rd.messages) out.push_back(m);
      for (const Entry& e : rd.committed_entries) applied.push_back(e);
      for (const ReadState& r : rd.read_states) read_states.push_back(r);
      core->advance(rd);
      readies.push_back(std::move(rd));
    }
    return out;
  }
};

class Cluster {
 public:
  explicit Cluster(Configuration config, std::function<void(Config&)> tweak = {}) {
    for (const Member& m : config.members) add_node(m.id, config, tweak);
  }
  Cluster(std::initializer_list<NodeId> ids, std::function<void(Config&)> tweak = {})
      : Cluster(voters(ids), std::move(tweak)) {}

  void add_node(NodeId id, const Configuration& bootstrap,
                std::function<void(Config&)> tweak = {}) {
    TestNode n;
    n.config = test_config(id);
    if (tweak) tweak(n.config);
    n.bootstrap = bootstrap;
    InitialState init;
    init.bootstrap_config = bootstrap;
    n.core = std::make_unique<Core>(n.config, init);
    nodes_[id] = std::move(n);
  }

  // Simulates a crash and restart from what the node persisted.
  void restart(NodeId id) {
    TestNode& n = nodes_.at(id);
    InitialState init;
    init.hard_state = n.storage.hard_state;
    init.snapshot = n.storage.snapshot;
    init.entries = n.storage.entries;
    init.bootstrap_config = n.bootstrap;
    n.core = std::make_unique<Core>(n.config, init);
    n.applied.clear();
    // drop in-flight messages to/from it
    std::deque<Message> kept;
    for (Message& m : queue_)
      if (m.to != id && m.from != id) kept.push_back(std::move(m));
    queue_ = std::move(kept);
  }

  Core& core(NodeId id) { return *nodes_.at(id).core; }
  TestNode& node(NodeId id) { return nodes_.at(id); }

  // Collects the Ready output of every node into the queue.
  void collect() {
    for (auto& [id, n] : nodes_) {
      for (Message& m : n.handle_ready()) queue_.push_back(std::move(m));
    }
  }

  // Delivers queued messages (and whatever they produce) until quiet. Returns messages delivered.
  size_t deliver_all(size_t limit = 100000) {
    size_t delivered = 0;
    collect();
    while (!queue_.empty() && delivered < limit) {
      Message m = std::move(queue_.front());
      queue_.pop_front();
      if (!reachable(m)) continue;
      if (!nodes_.count(m.to)) continue;
      ++delivered;
      trace_.push_back(m);
      Status st = nodes_.at(m.to).core->step(m);
      EXPECT_TRUE(st.ok()) << message_type_name(m.type) << " " << m.from << "->" << m.to << ": "
                           << (st.ok() ? "" : st.error().message);
      collect();
    }
    return delivered;
  }

  // Takes queued messages out without delivering them.
  std::vector<Message> take(std::function<bool(const Message&)> pred) {
    collect();
    std::vector<Message> out;
    std::deque<Message> kept;
    for (Message& m : queue_) {
      if (pred(m)) {
        out.push_back(std::move(m));
      } else {
        kept.push_back(std::move(m));
      }
    }
    queue_ = std::move(kept);
    return out;
  }
  void drop_all() {
    collect();
    queue_.clear();
  }

  void tick_all(int n = 1) {
    for (int i = 0; i < n; ++i) {
      for (auto& [id, node] : nodes_) node.core->tick();
      deliver_all();
    }
  }
  void tick(NodeId id, int n = 1) {
    for (int i = 0; i < n; ++i) nodes_.at(id).core->tick();
  }

  // Makes `id` leader by campaigning and delivering everything.
  void elect(NodeId id) {
    core(id).campaign();
    deliver_all();
  }

  void isolate(NodeId id) { isolated_.insert(id); }
  void heal() {
    isolated_.clear();
    cut_.clear();
  }
  void cut(NodeId a, NodeId b) {
    cut_.insert({a, b});
    cut_.insert({b, a});
  }

  Result<EntryId> propose(NodeId leader, std::string data) {
    auto r = core(leader).propose(std::move(data));
    deliver_all();
    return r;
  }

  const std::vector<Message>& trace() const { return trace_; }
  std::deque<Message>& queue() { return queue_; }
  std::map<NodeId, TestNode>& nodes() { return nodes_; }

 private:
  bool reachable(const Message& m) const {
    if (isolated_.count(m.from) || isolated_.count(m.to)) return false;
    return !cut_.count({m.from, m.to});
  }

  std::map<NodeId, TestNode> nodes_;
  std::deque<Message> queue_;
  std::set<NodeId> isolated_;
  std::set<std::pair<NodeId, NodeId>> cut_;
  std::vector<Message> trace_;
};

// Handles a lone core's Ready (persist = advance) and returns its messages.
inline std::vector<Message> drain(Core& core, std::vector<Entry>* applied = nullptr,
                                  std::vector<ReadState>* reads = nullptr) {
  std::vector<Message> out;
  while (core.has_ready()) {
    Ready rd = core.ready();
    out.insert(out.end(), rd.messages.begin(), rd.messages.end());
    if (applied)
      applied->insert(applied->end(), rd.committed_entries.begin(), rd.committed_entries.end());
    if (reads) reads->insert(reads->end(), rd.read_states.begin(), rd.read_states.end());
    core.advance(rd);
  }
  return out;
}

inline std::vector<Message> of_type(const std::vector<Message>& msgs, MessageType t) {
  std::vector<Message> out;
  for (const Message& m : msgs)
    if (m.type == t) out.push_back(m);
  return out;
}

inline Message msg(MessageType type, NodeId from, NodeId to, Term term) {
  Message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = term;
  return m;
}

}  // namespace raftlock::raft::testing
