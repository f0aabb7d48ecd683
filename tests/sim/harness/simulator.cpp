#include "tests/sim/harness/simulator.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace raftlock::sim {

using raft::Entry;
using raft::EntryType;
using raft::Message;
using raft::MessageType;
using raft::Role;

// ---------------------------------------------------------------------------------------------
// SimRandom, hashing

uint64_t SimRandom::below(uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
  for (;;) {
    const uint64_t r = engine_();
    if (r >= threshold) return r % bound;
  }
}

uint64_t fnv1a(const void* data, size_t size, uint64_t hash) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 1099511628211ull;
  }
  return hash;
}

uint64_t hash_entry_content(EntryType type, const std::string& data) {
  const auto type_byte = static_cast<uint8_t>(type);
  return fnv1a(data.data(), data.size(), fnv1a(&type_byte, 1));
}

NetworkFaults NetworkFaults::unreliable() {
  NetworkFaults faults;
  faults.drop_ppm = 100000;
  faults.duplicate_ppm = 20000;
  faults.long_delay_ppm = 100000;
  faults.min_delay_ms = 1;
  faults.max_delay_ms = 27;
  faults.long_delay_max_ms = 300;
  faults.reorder = true;
  return faults;
}

uint64_t estimate_message_bytes(const Message& message) {
  uint64_t bytes = kMessageHeaderBytes + message.context.size();
  for (const auto& entry : message.entries) bytes += kEntryHeaderBytes + entry.data.size();
  if (message.snapshot) {
    bytes += kMessageHeaderBytes + message.snapshot->meta.config.members.size() * 16;
    if (message.snapshot->data) bytes += message.snapshot->data->size();
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// TestStateMachine

namespace {

void put_number(std::string& out, uint64_t value) {
  out += std::to_string(value);
  out += ' ';
}

void put_string(std::string& out, const std::string& value) {
  put_number(out, value.size());
  out += value;
}

class Reader {
 public:
  explicit Reader(const std::string& data) : data_(data) {}
  bool number(uint64_t& value) {
    value = 0;
    size_t digits = 0;
    while (pos_ < data_.size() && data_[pos_] >= '0' && data_[pos_] <= '9') {
      value = value * 10 + static_cast<uint64_t>(data_[pos_] - '0');
      ++pos_;
      ++digits;
    }
    if (digits == 0 || pos_ >= data_.size() || data_[pos_] != ' ') return false;
    ++pos_;
    return true;
  }
  bool string(std::string& value) {
    uint64_t size = 0;
    if (!number(size) || size > data_.size() - pos_) return false;
    value = data_.substr(pos_, size);
    pos_ += size;
    return true;
  }
  bool done() const { return pos_ == data_.size(); }

 private:
  const std::string& data_;
  size_t pos_ = 0;
};

constexpr char kStateMachineMagic[] = "testsm1 ";

}  // namespace

TestStateMachine::TestStateMachine(raft::Configuration initial_config)
    : config_(std::move(initial_config)) {}

void apply_conf_change(raft::Configuration& config, const raft::ConfChange& change) {
  auto& members = config.members;
  auto it = std::find_if(members.begin(), members.end(),
                         [&](const raft::Member& m) { return m.id == change.node_id; });
  switch (change.type) {
    case raft::ConfChangeType::kAddLearner:
      if (it == members.end()) {
        members.push_back(raft::Member{change.node_id, false, change.context});
        std::sort(members.begin(), members.end(),
                  [](const raft::Member& a, const raft::Member& b) { return a.id < b.id; });
      }
      break;
    case raft::ConfChangeType::kPromote:
      if (it != members.end()) it->voter = true;
      break;
    case raft::ConfChangeType::kRemove:
      if (it != members.end()) members.erase(it);
      break;
  }
}

Status TestStateMachine::apply(const Entry& entry) {
  if (entry.index != applied_index_ + 1) {
    return make_error(ErrorCode::kInvalidArgument,
                      "apply out of order: index " + std::to_string(entry.index) +
                          " after applied index " + std::to_string(applied_index_));
  }
  if (entry.type == EntryType::kNormal) {
    commands_.emplace_back(entry.index, entry.data);
  } else if (entry.type == EntryType::kConfChange) {
    auto change = raft::decode_conf_change(entry.data);
    if (!change.ok()) {
      return make_error(ErrorCode::kCorrupt, "undecodable conf change at index " +
                                                 std::to_string(entry.index) + ": " +
                                                 change.error().message);
    }
    apply_conf_change(config_, *change);
  }
  applied_index_ = entry.index;
  applied_term_ = entry.term;
  return Ok{};
}

bool TestStateMachine::has_command(const std::string& command) const {
  return std::any_of(commands_.begin(), commands_.end(),
                     [&](const auto& c) { return c.second == command; });
}

std::string TestStateMachine::serialize() const {
  std::string out = kStateMachineMagic;
  put_number(out, applied_index_);
  put_number(out, applied_term_);
  put_number(out, config_.members.size());
  for (const auto& m : config_.members) {
    put_number(out, m.id);
    put_number(out, m.voter ? 1 : 0);
    put_string(out, m.context);
  }
  put_number(out, commands_.size());
  for (const auto& [index, command] : commands_) {
    put_number(out, index);
    put_string(out, command);
  }
  if (!app_state_.empty()) put_string(out, app_state_);
  return out;
}

Status TestStateMachine::restore(const std::string& data) {
  const std::string magic = kStateMachineMagic;
  if (data.compare(0, magic.size(), magic) != 0) {
    return make_error(ErrorCode::kCorrupt, "not a test state machine snapshot");
  }
  const std::string body = data.substr(magic.size());
  Reader reader(body);
  TestStateMachine restored;
  uint64_t count = 0;
  bool good = reader.number(restored.applied_index_) && reader.number(restored.applied_term_) &&
              reader.number(count);
  for (uint64_t i = 0; good && i < count; ++i) {
    raft::Member member;
    uint64_t voter = 0;
    good = reader.number(member.id) && reader.number(voter) && reader.string(member.context);
    member.voter = voter != 0;
    restored.config_.members.push_back(std::move(member));
  }
  good = good && reader.number(count);
  for (uint64_t i = 0; good && i < count; ++i) {
    uint64_t index = 0;
    std::string command;
    good = reader.number(index) && reader.string(command);
    restored.commands_.emplace_back(index, std::move(command));
  }
  if (good && !reader.done()) good = reader.string(restored.app_state_);
  if (!good || !reader.done()) {
    return make_error(ErrorCode::kCorrupt, "malformed test state machine snapshot");
  }
  *this = std::move(restored);
  return Ok{};
}

// ---------------------------------------------------------------------------------------------
// Cluster internals

struct Cluster::Node {
  NodeId id = raft::kNoNode;
  std::unique_ptr<storage::MemoryLogStore> store;
  std::unique_ptr<raft::Core> core;  // null while crashed or stopped
  TestStateMachine state_machine;
  std::unique_ptr<raft::StateMachine> app;  // AppStateMachineHooks::make, when set
  bool stopped = false;
  uint64_t incarnation = 0;
  uint64_t slow_period_ms = 0;
  std::vector<Message> inbox;  // slow nodes only
  bool drain_scheduled = false;
  // checker state
  Index commit_seen = 0;  // this incarnation
  Term term_seen = 0;     // this incarnation
  Index persisted_commit = 0;
  Term persisted_term = 0;
  NodeId persisted_vote = raft::kNoNode;
  Index snapshot_index = 0;  // last local compaction or installed snapshot
  uint64_t snapshots_installed = 0;
  std::map<std::string, uint64_t> pending_reads;  // context -> read id
  std::vector<raft::ReadState> waiting_reads;     // read index known, not yet applied
};

struct Cluster::Event {
  // kSnapshotReport: tells node `node` whether its snapshot to message->to arrived (reject = no).
  enum class Kind { kTick, kDeliver, kDrain, kSnapshotReport };
  Kind kind = Kind::kTick;
  NodeId node = raft::kNoNode;
  uint64_t incarnation = 0;
  std::optional<Message> message;
};

struct Cluster::EventQueue {
  std::map<std::pair<uint64_t, uint64_t>, Event> events;
};

namespace {

std::optional<Term> term_at(const storage::PersistentState& state, Index index) {
  if (index == 0) return Term{0};
  const Index base = state.snapshot ? state.snapshot->meta.index : 0;
  if (index == base) return state.snapshot->meta.term;
  if (index < base || index - base > state.entries.size()) return std::nullopt;
  return state.entries[index - base - 1].term;
}

const Entry* entry_at(const storage::PersistentState& state, Index index) {
  const Index base = state.snapshot ? state.snapshot->meta.index : 0;
  if (index <= base || index - base > state.entries.size()) return nullptr;
  return &state.entries[index - base - 1];
}

Index last_index_of(const storage::PersistentState& state) {
  const Index base = state.snapshot ? state.snapshot->meta.index : 0;
  return base + state.entries.size();
}

std::string fmt_u(uint64_t value) {
  return std::to_string(value);
}

}  // namespace

Cluster::Cluster(ClusterOptions options)
    : options_(std::move(options)), random_(options_.seed), queue_(std::make_unique<EventQueue>()) {
  for (size_t i = 0; i < options_.nodes; ++i) {
    founding_config_.members.push_back(raft::Member{next_node_id_ + i, true, ""});
  }
  for (size_t i = 0; i < options_.nodes; ++i) {
    auto n = std::make_unique<Node>();
    n->id = next_node_id_++;
    n->store = std::make_unique<storage::MemoryLogStore>(founding_config_);
    nodes_.emplace(n->id, std::move(n));
  }
  for (auto& [id, n] : nodes_) start_core(*n);
  after_event();
}

Cluster::~Cluster() = default;

Cluster::Node& Cluster::node(NodeId id) {
  return *nodes_.at(id);
}
const Cluster::Node& Cluster::node(NodeId id) const {
  return *nodes_.at(id);
}

void Cluster::fail(const std::string& message) {
  if (!violation_.empty()) return;
  violation_ = "[seed " + fmt_u(options_.seed) + ", t=" + fmt_u(now_ms_) + "ms] " + message;
  if (options_.trace || options_.report_violations) {
    std::cerr << "SAFETY VIOLATION " << violation_ << "\n";
  }
}

void Cluster::trace(const std::string& line) {
  if (options_.trace) std::cerr << "t=" << now_ms_ << " " << line << "\n";
}

void Cluster::mix_trace(uint64_t value) {
  trace_hash_ = fnv1a(&value, sizeof value, trace_hash_);
}

void Cluster::schedule(uint64_t at, Event event) {
  queue_->events.emplace(std::make_pair(at, next_event_seq_++), std::move(event));
}

void Cluster::start_core(Node& n) {
  auto loaded = n.store->load();
  if (!loaded.ok()) {
    fail("node " + fmt_u(n.id) + ": load failed: " + loaded.error().message);
    return;
  }
  const storage::PersistentState& state = *loaded;
  raft::Config config;
  config.id = n.id;
  config.election_ticks = options_.election_ticks;
  config.heartbeat_ticks = options_.heartbeat_ticks;
  config.pre_vote = options_.pre_vote;
  config.check_quorum = options_.check_quorum;
  config.max_message_bytes = options_.max_message_bytes;
  config.max_inflight = options_.max_inflight;
  config.random_seed = random_.next();
  raft::InitialState initial;
  initial.hard_state = state.hard_state;
  initial.snapshot = state.snapshot;
  initial.entries = state.entries;
  initial.bootstrap_config = state.bootstrap_config;

  n.state_machine = TestStateMachine(state.bootstrap_config);
  n.snapshot_index = 0;
  if (options_.app.make) n.app = options_.app.make(n.id);
  if (state.snapshot) {
    Status restored = n.state_machine.restore(*state.snapshot->data);
    if (!restored.ok()) {
      fail("node " + fmt_u(n.id) +
           ": cannot restore persisted snapshot: " + restored.error().message);
      return;
    }
    n.snapshot_index = state.snapshot->meta.index;
  }
  restore_app(n, n.state_machine, n.snapshot_index);
  if (!violation_.empty()) return;
  n.core = std::make_unique<raft::Core>(config, std::move(initial));
  ++n.incarnation;
  n.inbox.clear();
  n.drain_scheduled = false;
  n.pending_reads.clear();
  n.waiting_reads.clear();
  n.term_seen = n.core->term();
  n.commit_seen = n.core->commit_index();
  mix_trace(0x5747A27ull ^ n.id);
  trace("node " + fmt_u(n.id) + " starts (incarnation " + fmt_u(n.incarnation) + ", term " +
        fmt_u(n.core->term()) + ", commit " + fmt_u(n.core->commit_index()) + ", last " +
        fmt_u(n.core->last_index()) + ")");
  if (n.core->term() < state.hard_state.term) {
    fail("node " + fmt_u(n.id) + " restarted with term " + fmt_u(n.core->term()) +
         " below its persisted term " + fmt_u(state.hard_state.term));
  }
  if (n.core->commit_index() < state.hard_state.commit) {
    fail("node " + fmt_u(n.id) + " restarted with commit index " + fmt_u(n.core->commit_index()) +
         " below its persisted commit " + fmt_u(state.hard_state.commit));
  }
  if (n.core->last_index() != last_index_of(state)) {
    fail("node " + fmt_u(n.id) + " restarted with last index " + fmt_u(n.core->last_index()) +
         " but persisted log ends at " + fmt_u(last_index_of(state)));
  }
  Event tick;
  tick.kind = Event::Kind::kTick;
  tick.node = n.id;
  tick.incarnation = n.incarnation;
  schedule(now_ms_ + random_.between(1, options_.tick_ms), std::move(tick));
  handle_ready(n);
}

// ---- the Ready loop ----

void Cluster::handle_ready(Node& n) {
  while (n.core && n.core->has_ready() && violation_.empty()) {
    raft::Ready ready = n.core->ready();
    const bool persists = ready.snapshot || !ready.entries.empty() || ready.hard_state;
    CrashPoint crash_point = CrashPoint::kNone;
    if (options_.mid_ready_crash_ppm > 0 && (persists || !ready.messages.empty()) &&
        random_.chance(options_.mid_ready_crash_ppm)) {
      crash_point = static_cast<CrashPoint>(1 + random_.below(3));
    }

    if (ready.soft_state && ready.soft_state->role == Role::kLeader) {
      auto [it, inserted] = leader_by_term_.emplace(ready.soft_state->term, n.id);
      if (!inserted && it->second != n.id) {
        fail("election safety: nodes " + fmt_u(it->second) + " and " + fmt_u(n.id) +
             " both leader in term " + fmt_u(ready.soft_state->term));
        return;
      }
      if (inserted) {
        trace("node " + fmt_u(n.id) + " becomes leader of term " + fmt_u(ready.soft_state->term));
        mix_trace(0x1EADE2ull ^ (n.id << 32) ^ ready.soft_state->term);
        check_leader_completeness(n, 1, UINT64_MAX);
      }
    }

    // 0. a leader whose term and vote are durable may send before persisting.
    const bool send_first = options_.leader_sends_first && n.core->role() == Role::kLeader &&
                            (!ready.hard_state || (ready.hard_state->term == n.persisted_term &&
                                                   ready.hard_state->vote == n.persisted_vote));
    if (send_first) {
      for (const auto& message : ready.messages) send(n, message);
      if (!violation_.empty()) return;
      if (crash_point == CrashPoint::kAfterSend) {
        trace("node " + fmt_u(n.id) + " (leader) crashes after sending, before persisting");
        if (persists) ++leader_crashes_before_persist_;
        crash(n.id);
        return;
      }
    }

    // 1. persist: snapshot, entries, hard state.
    if (persists) {
      if (ready.hard_state) {
        const raft::HardState& hs = *ready.hard_state;
        if (hs.term < n.persisted_term) {
          fail("node " + fmt_u(n.id) + " persists term " + fmt_u(hs.term) + " below " +
               fmt_u(n.persisted_term));
        } else if (hs.term == n.persisted_term && n.persisted_vote != raft::kNoNode &&
                   hs.vote != n.persisted_vote) {
          fail("node " + fmt_u(n.id) + " changes its vote in term " + fmt_u(hs.term) + " from " +
               fmt_u(n.persisted_vote) + " to " + fmt_u(hs.vote));
        } else if (hs.commit < n.persisted_commit) {
          fail("node " + fmt_u(n.id) + " persists commit " + fmt_u(hs.commit) +
               " below its persisted commit " + fmt_u(n.persisted_commit));
        }
      }
      if (!ready.entries.empty()) {
        const Index committed_bound = std::max(n.persisted_commit, n.commit_seen);
        for (size_t k = 0; k < ready.entries.size(); ++k) {
          const Entry& e = ready.entries[k];
          if (e.index != ready.entries.front().index + k ||
              (k > 0 && e.term < ready.entries[k - 1].term)) {
            fail("node " + fmt_u(n.id) + " persists a non-contiguous or term-decreasing batch");
            break;
          }
          if (e.index <= committed_bound && e.index < committed_.size() &&
              committed_[e.index].known && committed_[e.index].term != e.term) {
            fail("node " + fmt_u(n.id) + " overwrites committed entry " + fmt_u(e.index) +
                 " (term " + fmt_u(committed_[e.index].term) + ") with term " + fmt_u(e.term));
            break;
          }
        }
      }
      if (ready.snapshot && ready.snapshot->meta.index < n.state_machine.applied_index()) {
        fail("node " + fmt_u(n.id) + " is handed snapshot at " + fmt_u(ready.snapshot->meta.index) +
             " below its applied index " + fmt_u(n.state_machine.applied_index()));
      }
      std::optional<raft::HardState> hard_state = ready.hard_state;
      if (hard_state && options_.injected_bug == InjectedBug::kForgetVote) {
        hard_state->vote = raft::kNoNode;
      }
      std::vector<Entry> damaged;
      const std::vector<Entry>* entries = &ready.entries;
      if (options_.injected_bug == InjectedBug::kCorruptEntry && n.id == 1) {
        damaged = ready.entries;
        for (auto& e : damaged) {
          if (e.index == 5) e.data += "!";
        }
        entries = &damaged;
      }
      Status persisted = n.store->persist(hard_state, *entries, ready.snapshot);
      if (!persisted.ok()) {
        fail("node " + fmt_u(n.id) + ": store rejected Ready: " + persisted.error().message);
        return;
      }
      if (hard_state) {
        n.persisted_commit = std::max(n.persisted_commit, hard_state->commit);
        n.persisted_term = hard_state->term;
        n.persisted_vote = hard_state->vote;
      }
      if (!entries->empty()) {
        register_persisted_entries(n, *entries);
        mix_trace(ready.entries.back().index ^ (ready.entries.back().term << 40));
      }
      const auto& state = n.store->state();
      if (state.hard_state.commit > last_index_of(state)) {
        fail("node " + fmt_u(n.id) + " persisted commit " + fmt_u(state.hard_state.commit) +
             " beyond its persisted log end " + fmt_u(last_index_of(state)));
      }
      if (!violation_.empty()) return;
    }
    if (crash_point == CrashPoint::kAfterPersist) {
      trace("node " + fmt_u(n.id) + " crashes after persisting, before sending");
      crash(n.id);
      return;
    }

    // 2. send.
    if (!send_first) {
      for (const auto& message : ready.messages) send(n, message);
    }
    if (!violation_.empty()) return;
    if (crash_point == CrashPoint::kAfterSend) {
      trace("node " + fmt_u(n.id) + " crashes after sending, before applying");
      crash(n.id);
      return;
    }

    // 3. install the snapshot, apply committed entries, note reads.
    if (ready.snapshot) {
      const raft::Snapshot& snapshot = *ready.snapshot;
      check_snapshot_data(*snapshot.data, "installed snapshot", n.id);
      TestStateMachine restored;
      Status status = restored.restore(*snapshot.data);
      if (!status.ok()) {
        fail("node " + fmt_u(n.id) + " cannot install snapshot: " + status.error().message);
        return;
      }
      if (restored.applied_index() != snapshot.meta.index ||
          restored.applied_term() != snapshot.meta.term) {
        fail("node " + fmt_u(n.id) + " installs snapshot whose meta (" +
             fmt_u(snapshot.meta.index) + "," + fmt_u(snapshot.meta.term) +
             ") does not match its data (" + fmt_u(restored.applied_index()) + "," +
             fmt_u(restored.applied_term()) + ")");
        return;
      }
      if (!(restored.config() == snapshot.meta.config)) {
        fail("node " + fmt_u(n.id) + " installs snapshot at " + fmt_u(snapshot.meta.index) +
             " whose meta configuration differs from the configuration at that index");
        return;
      }
      restore_app(n, restored, snapshot.meta.index);
      if (!violation_.empty()) return;
      n.state_machine = std::move(restored);
      n.snapshot_index = snapshot.meta.index;
      ++n.snapshots_installed;
      trace("node " + fmt_u(n.id) + " installs snapshot at " + fmt_u(snapshot.meta.index));
      mix_trace(0x5AA95407ull ^ snapshot.meta.index);
    }
    for (const auto& entry : ready.committed_entries) {
      apply_committed(n, entry);
      if (!violation_.empty()) return;
    }
    for (const auto& read_state : ready.read_states) n.waiting_reads.push_back(read_state);
    serve_reads(n);
    if (!violation_.empty()) return;
    if (crash_point == CrashPoint::kAfterApply) {
      trace("node " + fmt_u(n.id) + " crashes after applying, before advance");
      crash(n.id);
      return;
    }
    // 4. advance.
    n.core->advance(ready);
  }
  if (n.core) maybe_compact(n);
}

void Cluster::register_persisted_entries(Node& n, const std::vector<Entry>& entries) {
  const auto& state = n.store->state();
  for (const auto& e : entries) {
    const std::optional<Term> prev = term_at(state, e.index - 1);
    const uint64_t content = hash_entry_content(e.type, e.data);
    auto [it, inserted] =
        log_records_.emplace(std::make_pair(e.index, e.term), LogRecord{content, prev.value_or(0)});
    if (inserted) {
      if (!prev) it->second.prev_term = UINT64_MAX;  // unknown (compacted)
      continue;
    }
    if (it->second.content_hash != content) {
      fail("log matching: two logs hold different entries with index " + fmt_u(e.index) +
           " and term " + fmt_u(e.term) + " (node " + fmt_u(n.id) + ")");
      return;
    }
    if (prev && it->second.prev_term != UINT64_MAX && it->second.prev_term != *prev) {
      fail("log matching: entry (" + fmt_u(e.index) + "," + fmt_u(e.term) +
           ") is preceded by term " + fmt_u(*prev) + " on node " + fmt_u(n.id) + " but by term " +
           fmt_u(it->second.prev_term) + " elsewhere");
      return;
    }
    if (prev && it->second.prev_term == UINT64_MAX) it->second.prev_term = *prev;
  }
}

void Cluster::send(Node& n, Message message) {
  ++stats_.sent;
  const auto type_index = static_cast<size_t>(message.type);
  if (type_index < stats_.sent_by_type.size()) ++stats_.sent_by_type[type_index];
  stats_.estimated_bytes += estimate_message_bytes(message);
  if (message.type == MessageType::kAppendResponse && message.reject) ++stats_.append_rejects;
  if (send_observer_) send_observer_(message);
  mix_trace((static_cast<uint64_t>(message.type) << 56) ^ (message.from << 48) ^
            (message.to << 40) ^ (message.term << 20) ^ message.index);

  if (message.from != n.id) {
    fail("node " + fmt_u(n.id) + " sends a message with from = " + fmt_u(message.from));
    return;
  }
  const auto& persisted = n.store->state();
  if (message.type == MessageType::kVoteResponse && !message.reject) {
    if (persisted.hard_state.term != message.term || persisted.hard_state.vote != message.to) {
      fail("node " + fmt_u(n.id) + " grants its vote to " + fmt_u(message.to) + " in term " +
           fmt_u(message.term) + " but persisted (term " + fmt_u(persisted.hard_state.term) +
           ", vote " + fmt_u(persisted.hard_state.vote) + ")");
      return;
    }
    auto [it, inserted] = vote_granted_.emplace(std::make_pair(n.id, message.term), message.to);
    if (!inserted && it->second != message.to) {
      fail("node " + fmt_u(n.id) + " grants votes to both " + fmt_u(it->second) + " and " +
           fmt_u(message.to) + " in term " + fmt_u(message.term));
      return;
    }
  }
  if (message.type == MessageType::kAppendResponse && !message.reject &&
      last_index_of(persisted) < message.index) {
    fail("node " + fmt_u(n.id) + " acknowledges index " + fmt_u(message.index) +
         " but has persisted only up to " + fmt_u(last_index_of(persisted)));
    return;
  }
  if (message.type == MessageType::kDurable) {
    // The leader claims its log is durable through message.index with its term there.
    const auto term_there = term_at(persisted, message.index);
    if (last_index_of(persisted) < message.index || !term_there ||
        *term_there != message.log_term) {
      fail("node " + fmt_u(n.id) + " announces its log durable through index " +
           fmt_u(message.index) + " (term " + fmt_u(message.log_term) +
           ") but has not persisted that entry");
      return;
    }
  }
  if (options_.trace) {
    trace("send " + std::string(raft::message_type_name(message.type)) + " " + fmt_u(message.from) +
          "->" + fmt_u(message.to) + " term " + fmt_u(message.term) + " index " +
          fmt_u(message.index) + " log_term " + fmt_u(message.log_term) + " commit " +
          fmt_u(message.commit) + " entries " + fmt_u(message.entries.size()) +
          (message.reject
               ? " REJECT hint " + fmt_u(message.reject_hint) + "/" + fmt_u(message.reject_term)
               : ""));
  }
  if (!nodes_.count(message.to) || link_blocked(message.from, message.to) ||
      random_.chance(options_.faults.drop_ppm)) {
    ++stats_.dropped;
    if (message.type == MessageType::kSnapshot) {
      Event report;
      report.kind = Event::Kind::kSnapshotReport;
      report.node = n.id;
      report.message = Message{};
      report.message->to = message.to;
      report.message->reject = true;
      schedule(now_ms_ + options_.tick_ms, std::move(report));
    }
    return;
  }
  const NetworkFaults& f = options_.faults;
  const std::pair<NodeId, NodeId> link{message.from, message.to};
  auto delay = [&]() {
    uint64_t d = random_.between(f.min_delay_ms, std::max(f.min_delay_ms, f.max_delay_ms));
    if (random_.chance(f.long_delay_ppm)) d += random_.between(0, f.long_delay_max_ms);
    if (!f.reorder) {
      uint64_t& last = link_last_delivery_[link];
      if (now_ms_ + d < last) d = last - now_ms_;
      last = now_ms_ + d;
    }
    return d;
  };
  const bool duplicate = random_.chance(f.duplicate_ppm);
  Event event;
  event.kind = Event::Kind::kDeliver;
  event.node = message.to;
  if (duplicate) {
    ++stats_.duplicated;
    Event copy = event;
    copy.message = message;
    schedule(now_ms_ + delay(), std::move(copy));
  }
  event.message = std::move(message);
  schedule(now_ms_ + delay(), std::move(event));
}

void Cluster::apply_committed(Node& n, const Entry& entry) {
  if (entry.index != n.state_machine.applied_index() + 1) {
    fail("node " + fmt_u(n.id) + " applies index " + fmt_u(entry.index) +
         " right after applied index " + fmt_u(n.state_machine.applied_index()));
    return;
  }
  if (entry.index > n.persisted_commit) {
    fail("node " + fmt_u(n.id) + " applies index " + fmt_u(entry.index) +
         " before persisting a commit index covering it (persisted commit " +
         fmt_u(n.persisted_commit) + ")");
    return;
  }
  record_committed(entry.index, entry.term, hash_entry_content(entry.type, entry.data),
                   n.core->term(), "applied", n.id);
  if (!violation_.empty()) return;
  Status applied = n.state_machine.apply(entry);
  if (!applied.ok()) {
    fail("node " + fmt_u(n.id) + ": " + applied.error().message);
    return;
  }
  mix_trace((n.id << 56) ^ (entry.index << 16) ^ entry.term);
  if (n.app) {
    std::any result;
    if (entry.type == EntryType::kNormal) result = n.app->apply(entry.index, entry.data);
    if (options_.app.on_apply) {
      const std::string problem = options_.app.on_apply(n.id, entry, result, *n.app);
      if (!problem.empty()) {
        fail("node " + fmt_u(n.id) + " applying index " + fmt_u(entry.index) + ": " + problem);
        return;
      }
    }
  }
  if (entry.type == EntryType::kConfChange) {
    auto change = raft::decode_conf_change(entry.data);
    if (change.ok() && change->type == raft::ConfChangeType::kRemove) {
      pending_stops_.push_back(change->node_id);
    }
  }
}

void Cluster::serve_reads(Node& n) {
  auto& waiting = n.waiting_reads;
  for (size_t i = 0; i < waiting.size();) {
    if (waiting[i].index > n.state_machine.applied_index()) {
      ++i;
      continue;
    }
    auto pending = n.pending_reads.find(waiting[i].context);
    if (pending != n.pending_reads.end()) {
      complete_read(n, reads_.at(pending->second), waiting[i].index);
      if (!violation_.empty()) return;
      n.pending_reads.erase(pending);
    }
    waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

void Cluster::complete_read(Node& n, ReadRecord& record, Index read_index) {
  if (read_index < record.required_index) {
    fail("stale read: read " + fmt_u(record.id) + " at node " + fmt_u(n.id) + " got read index " +
         fmt_u(read_index) + " but index " + fmt_u(record.required_index) +
         " was committed before the read started");
    return;
  }
  record.served = true;
  ++reads_served_;
  record.read_index = read_index;
  record.served_applied_index = n.state_machine.applied_index();
  record.served_ms = now_ms_;
  trace("node " + fmt_u(n.id) + " serves read " + fmt_u(record.id) + " at index " +
        fmt_u(read_index));
}

void Cluster::maybe_compact(Node& n) {
  if (options_.snapshot_every == 0) return;
  const Index applied = n.state_machine.applied_index();
  if (applied < n.snapshot_index + options_.snapshot_every) return;
  if (n.app) n.state_machine.set_app_state(n.app->snapshot());
  auto data = std::make_shared<const std::string>(n.state_machine.serialize());
  Status compacted = n.core->compact(applied, data);
  if (!compacted.ok()) return;
  raft::Snapshot snapshot;
  snapshot.meta.index = applied;
  snapshot.meta.term = n.state_machine.applied_term();
  snapshot.meta.config = n.state_machine.config();
  snapshot.data = data;
  Status stored = n.store->compact(snapshot);
  if (!stored.ok()) {
    fail("node " + fmt_u(n.id) + ": store compaction failed: " + stored.error().message);
    return;
  }
  n.snapshot_index = applied;
  const auto core_meta = n.core->snapshot_meta();
  if (!core_meta || !(*core_meta == snapshot.meta)) {
    fail("node " + fmt_u(n.id) + " compacted at " + fmt_u(applied) +
         " but the core's snapshot meta " +
         (core_meta ? "(" + fmt_u(core_meta->index) + "," + fmt_u(core_meta->term) + ", " +
                          fmt_u(core_meta->config.members.size()) + " members)"
                    : std::string("(none)")) +
         " differs from the state machine's (" + fmt_u(applied) + "," + fmt_u(snapshot.meta.term) +
         ", " + fmt_u(snapshot.meta.config.members.size()) + " members)");
    return;
  }
  mix_trace(0xC0AC7ull ^ (n.id << 32) ^ applied);
  trace("node " + fmt_u(n.id) + " compacts its log up to " + fmt_u(applied));
}

void Cluster::restore_app(Node& n, const TestStateMachine& restored, Index index) {
  if (!n.app) return;
  if (index > 0) {
    Status status = n.app->restore(restored.app_state());
    if (!status.ok()) {
      fail("node " + fmt_u(n.id) + " cannot restore its app state machine from the snapshot at " +
           fmt_u(index) + ": " + status.error().message);
      return;
    }
  }
  if (options_.app.on_restore) {
    const std::string problem = options_.app.on_restore(n.id, index, *n.app);
    if (!problem.empty())
      fail("node " + fmt_u(n.id) + " restored at index " + fmt_u(index) + ": " + problem);
  }
}

void Cluster::check_snapshot_data(const std::string& data, const char* what, NodeId by) {
  TestStateMachine sm;
  Status status = sm.restore(data);
  if (!status.ok()) {
    fail(std::string(what) + " at node " + fmt_u(by) + " is unreadable: " + status.error().message);
    return;
  }
  for (const auto& [index, command] : sm.commands()) {
    if (index < committed_.size() && committed_[index].known && committed_[index].has_content &&
        committed_[index].content_hash != hash_entry_content(EntryType::kNormal, command)) {
      fail(std::string(what) + " at node " + fmt_u(by) + " holds a different command at index " +
           fmt_u(index) + " than the one committed there");
      return;
    }
  }
  if (sm.applied_index() > 0) {
    record_committed(sm.applied_index(), sm.applied_term(), std::nullopt,
                     nodes_.count(by) && node(by).core ? node(by).core->term() : UINT64_MAX, what,
                     by);
  }
}

void Cluster::record_committed(Index index, Term term, std::optional<uint64_t> content,
                               Term seen_in_term, const char* source, NodeId by) {
  if (committed_.size() <= index) committed_.resize(index + 1);
  CommittedRecord& record = committed_[index];
  bool check_leaders = false;
  if (!record.known) {
    record.known = true;
    record.term = term;
    record.commit_term = seen_in_term;
    if (content) {
      record.has_content = true;
      record.content_hash = *content;
    }
    check_leaders = true;
  } else {
    if (record.term != term) {
      fail("two different entries committed at index " + fmt_u(index) + ": term " +
           fmt_u(record.term) + " and term " + fmt_u(term) + " (" + source + " by node " +
           fmt_u(by) + ")");
      return;
    }
    if (content) {
      if (record.has_content && record.content_hash != *content) {
        fail("state machine safety: different commands applied at index " + fmt_u(index) + " (" +
             source + " by node " + fmt_u(by) + ")");
        return;
      }
      record.has_content = true;
      record.content_hash = *content;
    }
    if (seen_in_term < record.commit_term) {
      record.commit_term = seen_in_term;
      check_leaders = true;
    }
  }
  max_commit_seen_ = std::max(max_commit_seen_, index);
  if (check_leaders) {
    for (auto& [id, n] : nodes_) {
      if (n->core && n->core->role() == Role::kLeader && n->core->term() > record.commit_term) {
        check_leader_completeness(*n, index, index);
        if (!violation_.empty()) return;
      }
    }
  }
}

void Cluster::check_leader_completeness(Node& leader, Index first, Index last_checked) {
  if (!leader.core) return;
  const Term leader_term = leader.core->term();
  const auto& state = leader.store->state();
  const Index base = state.snapshot ? state.snapshot->meta.index : 0;
  const Index last = last_index_of(state);
  for (Index i = first; i <= last_checked && i < committed_.size(); ++i) {
    const CommittedRecord& record = committed_[i];
    if (!record.known || record.commit_term >= leader_term) continue;
    if (i < base) continue;  // covered by the leader's snapshot (checked when installed/taken)
    if (i > last) {
      fail("leader completeness: leader " + fmt_u(leader.id) + " of term " + fmt_u(leader_term) +
           " lacks entry " + fmt_u(i) + " (term " + fmt_u(record.term) + ") committed in term " +
           fmt_u(record.commit_term) + "; its log ends at " + fmt_u(last));
      return;
    }
    const Term term = *term_at(state, i);
    if (term != record.term) {
      fail("leader completeness: leader " + fmt_u(leader.id) + " of term " + fmt_u(leader_term) +
           " has term " + fmt_u(term) + " at index " + fmt_u(i) + " where term " +
           fmt_u(record.term) + " was committed");
      return;
    }
  }
}

void Cluster::check_node(Node& n) {
  raft::Core& core = *n.core;
  const Term term = core.term();
  if (term < n.term_seen) {
    fail("node " + fmt_u(n.id) + " term went backwards from " + fmt_u(n.term_seen) + " to " +
         fmt_u(term));
    return;
  }
  n.term_seen = term;
  if (core.role() == Role::kLeader) {
    auto [it, inserted] = leader_by_term_.emplace(term, n.id);
    if (!inserted && it->second != n.id) {
      fail("election safety: nodes " + fmt_u(it->second) + " and " + fmt_u(n.id) +
           " both leader in term " + fmt_u(term));
      return;
    }
    if (inserted) check_leader_completeness(n, 1, UINT64_MAX);
  }
  const Index commit = core.commit_index();
  if (commit < n.commit_seen) {
    fail("node " + fmt_u(n.id) + " commit index went backwards from " + fmt_u(n.commit_seen) +
         " to " + fmt_u(commit));
    return;
  }
  if (commit > core.last_index()) {
    fail("node " + fmt_u(n.id) + " commit index " + fmt_u(commit) + " beyond its last index " +
         fmt_u(core.last_index()));
    return;
  }
  if (core.applied_index() != n.state_machine.applied_index()) {
    fail("node " + fmt_u(n.id) + " core applied index " + fmt_u(core.applied_index()) +
         " differs from the state machine's " + fmt_u(n.state_machine.applied_index()));
    return;
  }
  if (commit > n.commit_seen) {
    const auto& state = n.store->state();
    for (Index i = n.commit_seen + 1; i <= commit; ++i) {
      const Entry* entry = entry_at(state, i);
      if (entry != nullptr) {
        record_committed(i, entry->term, hash_entry_content(entry->type, entry->data), term,
                         "commit index", n.id);
      } else if (auto t = term_at(state, i)) {
        record_committed(i, *t, std::nullopt, term, "commit index", n.id);
      } else if (i > last_index_of(state)) {
        fail("node " + fmt_u(n.id) + " commits index " + fmt_u(i) +
             " beyond its persisted log end " + fmt_u(last_index_of(state)));
      }
      if (!violation_.empty()) return;
    }
    n.commit_seen = commit;
  }
}

void Cluster::after_event() {
  while (!pending_stops_.empty()) {
    const NodeId id = pending_stops_.back();
    pending_stops_.pop_back();
    if (nodes_.count(id) && !node(id).stopped) {
      trace("node " + fmt_u(id) + " left the configuration: stopped");
      stop(id);
    }
  }
  for (auto& [id, n] : nodes_) {
    if (!violation_.empty()) return;
    if (n->core) check_node(*n);
  }
}

void Cluster::process_one_event() {
  auto it = queue_->events.begin();
  now_ms_ = it->first.first;
  Event event = std::move(it->second);
  queue_->events.erase(it);
  ++events_;
  mix_trace(now_ms_ ^ (static_cast<uint64_t>(event.kind) << 60) ^ (event.node << 52));
  auto found = nodes_.find(event.node);
  if (found == nodes_.end()) return;
  Node& n = *found->second;
  switch (event.kind) {
    case Event::Kind::kTick: {
      if (!n.core || event.incarnation != n.incarnation) return;  // stale tick chain
      n.core->tick();
      if (options_.trace && std::getenv("RAFTLOCK_SIM_TRACE_TICKS")) {
        trace("tick node " + fmt_u(n.id) + " role " + raft::role_name(n.core->role()) + " term " +
              fmt_u(n.core->term()));
      }
      handle_ready(n);
      if (n.core && event.incarnation == n.incarnation) {
        Event next = event;
        schedule(now_ms_ + options_.tick_ms, std::move(next));
      }
      break;
    }
    case Event::Kind::kDeliver: {
      const Message& message = *event.message;
      if (!n.core || link_blocked(message.from, message.to)) {
        ++stats_.dropped;
        if (message.type == MessageType::kSnapshot) report_snapshot_to_sender(message, false);
        break;
      }
      if (message.type == MessageType::kSnapshot) report_snapshot_to_sender(message, true);
      ++stats_.delivered;
      if (n.slow_period_ms > 0) {
        n.inbox.push_back(std::move(*event.message));
        if (!n.drain_scheduled) {
          n.drain_scheduled = true;
          Event drain;
          drain.kind = Event::Kind::kDrain;
          drain.node = n.id;
          drain.incarnation = n.incarnation;
          schedule(now_ms_ + n.slow_period_ms, std::move(drain));
        }
        return;
      }
      (void)n.core->step(message);
      handle_ready(n);
      break;
    }
    case Event::Kind::kSnapshotReport: {
      if (!n.core) return;
      n.core->report_snapshot(event.message->to, !event.message->reject);
      handle_ready(n);
      break;
    }
    case Event::Kind::kDrain: {
      if (event.incarnation != n.incarnation) return;
      n.drain_scheduled = false;
      std::vector<Message> inbox = std::move(n.inbox);
      n.inbox.clear();
      for (const auto& message : inbox) {
        if (!n.core || !violation_.empty()) break;
        (void)n.core->step(message);
        handle_ready(n);
      }
      break;
    }
  }
  after_event();
}

void Cluster::report_snapshot_to_sender(const Message& snapshot_message, bool delivered) {
  Event report;
  report.kind = Event::Kind::kSnapshotReport;
  report.node = snapshot_message.from;
  report.message = Message{};
  report.message->to = snapshot_message.to;
  report.message->reject = !delivered;
  schedule(now_ms_, std::move(report));
}

// ---- running ----

void Cluster::run_for(uint64_t ms) {
  const uint64_t deadline = now_ms_ + ms;
  while (violation_.empty() && !queue_->events.empty() &&
         queue_->events.begin()->first.first <= deadline) {
    process_one_event();
  }
  if (violation_.empty()) now_ms_ = std::max(now_ms_, deadline);
}

bool Cluster::run_until(const std::function<bool()>& pred, uint64_t max_ms) {
  const uint64_t deadline = now_ms_ + max_ms;
  while (violation_.empty()) {
    if (pred()) return true;
    if (queue_->events.empty() || queue_->events.begin()->first.first > deadline) {
      now_ms_ = std::max(now_ms_, deadline);
      return pred();
    }
    process_one_event();
  }
  return false;
}

// ---- inspection ----

std::string Cluster::describe() const {
  std::string out;
  for (const auto& [id, n] : nodes_) {
    out += "  node " + fmt_u(id) + ": ";
    if (n->stopped) {
      out += "stopped\n";
      continue;
    }
    const auto& state = n->store->state();
    const Index last = last_index_of(state);
    out += "persisted term " + fmt_u(state.hard_state.term) + " vote " +
           fmt_u(state.hard_state.vote) + " commit " + fmt_u(state.hard_state.commit) + " log (" +
           fmt_u(last) + "," + fmt_u(term_at(state, last).value_or(0)) + ")";
    if (!n->core) {
      out += " DOWN\n";
      continue;
    }
    const raft::CoreStatus status = n->core->status();
    out += std::string(" | ") + raft::role_name(status.role) + " term " + fmt_u(status.term) +
           " leader " + fmt_u(status.leader_id) + " commit " + fmt_u(status.commit_index) +
           " applied " + fmt_u(status.applied_index) + " first " + fmt_u(status.first_index) +
           " config [";
    for (const auto& m : status.config.members) {
      out += " " + fmt_u(m.id) + (m.voter ? "" : "(learner)");
    }
    out += " ] applied-config [";
    for (const auto& m : n->state_machine.config().members) {
      out += " " + fmt_u(m.id) + (m.voter ? "" : "(learner)");
    }
    out += " ]\n";
  }
  return out;
}

std::vector<NodeId> Cluster::node_ids() const {
  std::vector<NodeId> ids;
  for (const auto& [id, n] : nodes_) ids.push_back(id);
  return ids;
}

bool Cluster::is_up(NodeId id) const {
  return nodes_.count(id) && node(id).core != nullptr;
}

bool Cluster::is_stopped(NodeId id) const {
  return nodes_.count(id) && node(id).stopped;
}

raft::Core* Cluster::core(NodeId id) {
  return nodes_.count(id) ? node(id).core.get() : nullptr;
}

const TestStateMachine& Cluster::state_machine(NodeId id) const {
  return node(id).state_machine;
}

const raft::StateMachine* Cluster::app_state_machine(NodeId id) const {
  if (!nodes_.count(id) || !node(id).core) return nullptr;
  return node(id).app.get();
}

const storage::MemoryLogStore& Cluster::store(NodeId id) const {
  return *node(id).store;
}

uint64_t Cluster::snapshots_installed(NodeId id) const {
  return node(id).snapshots_installed;
}

std::vector<NodeId> Cluster::leaders() const {
  std::vector<NodeId> out;
  for (const auto& [id, n] : nodes_) {
    if (n->core && n->core->role() == Role::kLeader) out.push_back(id);
  }
  return out;
}

Term Cluster::max_term() const {
  Term term = 0;
  for (const auto& [id, n] : nodes_) {
    if (n->core) term = std::max(term, n->core->term());
  }
  return term;
}

std::optional<NodeId> Cluster::current_leader() const {
  std::optional<NodeId> best;
  Term best_term = 0;
  for (const auto& [id, n] : nodes_) {
    if (n->core && n->core->role() == Role::kLeader && n->core->term() >= best_term) {
      best = id;
      best_term = n->core->term();
    }
  }
  if (!best) return std::nullopt;
  for (const auto& [id, n] : nodes_) {
    if (n->core && n->core->term() > best_term && !link_blocked(*best, id) &&
        !link_blocked(id, *best)) {
      return std::nullopt;  // a reachable node is already in a later term: election pending
    }
  }
  return best;
}

std::vector<NodeId> Cluster::live_members(const raft::Configuration& config) const {
  std::vector<NodeId> out;
  for (const auto& member : config.members) {
    if (is_up(member.id)) out.push_back(member.id);
  }
  return out;
}

size_t Cluster::applied_count(Index index) const {
  size_t count = 0;
  for (const auto& [id, n] : nodes_) {
    if (n->core && n->state_machine.applied_index() >= index) ++count;
  }
  return count;
}

std::optional<std::pair<Term, uint64_t>> Cluster::committed_at(Index index) const {
  if (index >= committed_.size() || !committed_[index].known) return std::nullopt;
  return std::make_pair(committed_[index].term,
                        committed_[index].has_content ? committed_[index].content_hash : 0);
}

// ---- faults ----

void Cluster::crash(NodeId id) {
  Node& n = node(id);
  if (!n.core) return;
  trace("node " + fmt_u(id) + " crashes");
  mix_trace(0xC2A5Bull ^ id);
  n.core.reset();
  ++n.incarnation;
  n.inbox.clear();
  n.drain_scheduled = false;
  n.pending_reads.clear();
  n.waiting_reads.clear();
}

void Cluster::restart(NodeId id) {
  Node& n = node(id);
  if (n.core || n.stopped) return;
  start_core(n);
  after_event();
}

void Cluster::stop(NodeId id) {
  crash(id);
  node(id).stopped = true;
}

void Cluster::block(NodeId from, NodeId to) {
  blocked_links_.insert({from, to});
}
void Cluster::unblock(NodeId from, NodeId to) {
  blocked_links_.erase({from, to});
}

void Cluster::disconnect(NodeId id) {
  disconnected_.insert(id);
  for (const auto& [other, n] : nodes_) {
    if (other == id) continue;
    block(id, other);
    block(other, id);
  }
}

void Cluster::reconnect(NodeId id) {
  disconnected_.erase(id);
  for (const auto& [other, n] : nodes_) {
    if (disconnected_.count(other)) continue;
    unblock(id, other);
    unblock(other, id);
  }
}

void Cluster::partition(const std::vector<std::vector<NodeId>>& groups) {
  blocked_links_.clear();
  disconnected_.clear();
  std::map<NodeId, size_t> group_of;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (NodeId id : groups[g]) group_of[id] = g;
  }
  for (const auto& [a, na] : nodes_) {
    for (const auto& [b, nb] : nodes_) {
      if (a == b) continue;
      auto ga = group_of.find(a);
      auto gb = group_of.find(b);
      if (ga == group_of.end() || gb == group_of.end() || ga->second != gb->second) block(a, b);
    }
  }
}

void Cluster::heal_network() {
  blocked_links_.clear();
  disconnected_.clear();
}

bool Cluster::link_blocked(NodeId from, NodeId to) const {
  return !blocked_links_.empty() && blocked_links_.count({from, to}) != 0;
}

void Cluster::set_slow(NodeId id, uint64_t period_ms) {
  Node& n = node(id);
  n.slow_period_ms = period_ms;
  if (period_ms == 0 && !n.inbox.empty() && n.core) {
    Event drain;
    drain.kind = Event::Kind::kDrain;
    drain.node = id;
    drain.incarnation = n.incarnation;
    n.drain_scheduled = true;
    schedule(now_ms_, std::move(drain));
  }
}

// ---- clients ----

Result<raft::EntryId> Cluster::propose(NodeId at, std::string command) {
  if (!is_up(at)) return make_error(ErrorCode::kUnavailable, "node is down");
  Node& n = node(at);
  auto result = n.core->propose(std::move(command));
  handle_ready(n);
  after_event();
  return result;
}

size_t Cluster::propose_batch(NodeId at, const std::vector<std::string>& commands) {
  if (!is_up(at)) return 0;
  Node& n = node(at);
  size_t accepted = 0;
  for (const auto& command : commands) accepted += n.core->propose(command).ok() ? 1 : 0;
  handle_ready(n);
  after_event();
  return accepted;
}

Result<raft::EntryId> Cluster::propose_conf_change(NodeId at, const raft::ConfChange& change) {
  if (!is_up(at)) return make_error(ErrorCode::kUnavailable, "node is down");
  Node& n = node(at);
  auto result = n.core->propose_conf_change(change);
  handle_ready(n);
  after_event();
  return result;
}

Index Cluster::agree(const std::string& command, size_t expected_nodes, uint64_t timeout_ms) {
  const uint64_t deadline = now_ms_ + timeout_ms;
  const uint64_t content = hash_entry_content(EntryType::kNormal, command);
  while (now_ms_ < deadline && violation_.empty()) {
    auto leader = current_leader();
    if (!leader) {
      run_for(std::min<uint64_t>(50, deadline - now_ms_));
      continue;
    }
    auto proposed = propose(*leader, command);
    if (!proposed.ok()) {
      run_for(std::min<uint64_t>(50, deadline - now_ms_));
      continue;
    }
    const Index index = proposed->index;
    bool lost = false;
    run_until(
        [&] {
          auto committed = committed_at(index);
          if (committed && committed->second != content) {
            lost = true;  // another entry won this index: retry
            return true;
          }
          return committed && applied_count(index) >= expected_nodes;
        },
        std::min<uint64_t>(2000, deadline - now_ms_));
    auto committed = committed_at(index);
    if (!lost && committed && committed->second == content &&
        applied_count(index) >= expected_nodes) {
      return index;
    }
  }
  return 0;
}

uint64_t Cluster::start_read(NodeId at) {
  if (!is_up(at)) return 0;
  Node& n = node(at);
  const uint64_t id = next_read_id_++;
  const std::string context = "read-" + fmt_u(id);
  if (options_.injected_bug != InjectedBug::kLocalReads) {
    Status status = n.core->read_index(context);
    if (!status.ok()) return 0;
  }
  ReadRecord record;
  record.id = id;
  record.node = at;
  record.incarnation = n.incarnation;
  record.required_index = max_commit_seen_;
  record.started_ms = now_ms_;
  reads_.emplace(id, record);
  if (options_.injected_bug == InjectedBug::kLocalReads) {
    complete_read(n, reads_.at(id), n.state_machine.applied_index());
    return id;
  }
  n.pending_reads.emplace(context, id);
  handle_ready(n);
  after_event();
  return id;
}

Status Cluster::transfer_leadership(NodeId leader, NodeId target) {
  if (!is_up(leader)) return make_error(ErrorCode::kUnavailable, "node is down");
  Node& n = node(leader);
  Status status = n.core->transfer_leadership(target);
  handle_ready(n);
  after_event();
  return status;
}

NodeId Cluster::spawn_node() {
  auto n = std::make_unique<Node>();
  n->id = next_node_id_++;
  n->store = std::make_unique<storage::MemoryLogStore>(founding_config_);
  Node& ref = *n;
  nodes_.emplace(ref.id, std::move(n));
  start_core(ref);
  after_event();
  return ref.id;
}

void Cluster::campaign(NodeId id) {
  if (!is_up(id)) return;
  Node& n = node(id);
  n.core->campaign();
  handle_ready(n);
  after_event();
}

}  // namespace raftlock::sim
