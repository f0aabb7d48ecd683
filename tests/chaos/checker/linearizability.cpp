// check_linearizable: a Wing–Gong / porcupine-style search over each partition of the history
// against a nondeterministic model of leases and locks (see checkers.h for the model).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "checkers.h"

namespace raftlock::chaos {

namespace {

// ---- The model ------------------------------------------------------------------------------

struct LockModel {
  uint64_t holder_lease = 0;        // 0 = free
  uint64_t holder_token = 0;        // 0 = granted by an unknown acquire, token not yet observed
  uint64_t largest = 0;             // largest token observed granted; an unobserved one is larger
  uint64_t last_release_lease = 0;  // the last explicit successful release (for retries)
  uint64_t last_release_token = 0;
  bool operator==(const LockModel&) const = default;
};

// A lease that is alive; every other lease of the partition is not (never granted, or ended).
struct AliveLease {
  int index = 0;       // the partition's lease index
  int64_t ttl_ms = 0;  // 0 = not known (a lease that was alive before the history began)
  bool operator==(const AliveLease&) const = default;
};

struct ModelState {
  std::vector<LockModel> locks;   // indexed by the partition's lock index
  std::vector<AliveLease> alive;  // sorted by index; short: most leases are long gone
  bool operator==(const ModelState&) const = default;
};

inline void hash_mix(uint64_t& h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
}

uint64_t hash_state(const ModelState& s) {
  uint64_t h = 0x12345678;
  for (const auto& l : s.locks) {
    hash_mix(h, l.holder_lease);
    hash_mix(h, l.holder_token);
    hash_mix(h, l.largest);
    hash_mix(h, l.last_release_lease);
    hash_mix(h, l.last_release_token);
  }
  for (const auto& l : s.alive) {
    hash_mix(h, static_cast<uint64_t>(l.index));
    hash_mix(h, static_cast<uint64_t>(l.ttl_ms));
  }
  return h;
}

const AliveLease* find_alive(const ModelState& s, int index) {
  auto it = std::lower_bound(s.alive.begin(), s.alive.end(), index,
                             [](const AliveLease& l, int i) { return l.index < i; });
  return it != s.alive.end() && it->index == index ? &*it : nullptr;
}
bool is_alive(const ModelState& s, int index) {
  return find_alive(s, index) != nullptr;
}
void set_alive(ModelState& s, int index, int64_t ttl_ms) {
  auto it = std::lower_bound(s.alive.begin(), s.alive.end(), index,
                             [](const AliveLease& l, int i) { return l.index < i; });
  if (it != s.alive.end() && it->index == index) {
    it->ttl_ms = ttl_ms;
  } else {
    s.alive.insert(it, AliveLease{index, ttl_ms});
  }
}

// An operation reduced to what the model needs, with indices into the partition's tables.
enum class Outcome { kOk, kLockHeld, kNotHolder, kLeaseNotFound, kLeaseExists, kUnknown };

struct ModelOp {
  const Operation* op = nullptr;
  Outcome outcome = Outcome::kUnknown;
  int lock = -1;   // index, for lock operations
  int lease = -1;  // index of op->lease_id in the partition's lease table
};

class Model {
 public:
  Model(std::vector<uint64_t> lease_ids) : lease_ids_(std::move(lease_ids)) {
    for (size_t i = 0; i < lease_ids_.size(); ++i)
      lease_index_[lease_ids_[i]] = static_cast<int>(i);
  }

  int lease_index(uint64_t id) const {
    auto it = lease_index_.find(id);
    return it == lease_index_.end() ? -1 : it->second;
  }

  // Ends lease `index` (expiry or revoke): it stops being alive and every lock it holds is freed.
  void end_lease(ModelState& s, int index) const {
    auto it = std::lower_bound(s.alive.begin(), s.alive.end(), index,
                               [](const AliveLease& l, int i) { return l.index < i; });
    if (it != s.alive.end() && it->index == index) s.alive.erase(it);
    const uint64_t id = lease_ids_[index];
    for (auto& lock : s.locks) {
      if (lock.holder_lease == id) {
        lock.holder_lease = 0;
        lock.holder_token = 0;
      }
    }
  }

  // Frees `lock` by ending its holder's lease (a lease may expire at any moment).
  void end_holder(ModelState& s, int lock) const {
    const int idx = lease_index(s.locks[lock].holder_lease);
    if (idx >= 0) end_lease(s, idx);
  }

  // Whether the lock's holder matches the reported holder; pins an unobserved token.
  static bool holder_matches(LockModel& lock, const Holder& reported) {
    if (lock.holder_lease == 0 || lock.holder_lease != reported.lease_id) return false;
    if (lock.holder_token != 0) return lock.holder_token == reported.fencing_token;
    if (reported.fencing_token <= lock.largest) return false;
    lock.holder_token = reported.fencing_token;
    lock.largest = reported.fencing_token;
    return true;
  }

  // The states the model may be in after `m` takes effect in `s` (empty: not possible). The
  // first alternative is the one where no lease ended that did not have to.
  void step(const ModelState& s, const ModelOp& m, std::vector<ModelState>& out) const {
    out.clear();
    const Operation& op = *m.op;
    switch (op.kind) {
      case OpKind::kAcquire:
        return step_acquire(s, m, out);
      case OpKind::kRelease:
        return step_release(s, m, out);
      case OpKind::kLockRead:
        return step_read(s, m, out);
      case OpKind::kLeaseGrant:
        return step_grant(s, m, out);
      case OpKind::kLeaseKeepalive:
      case OpKind::kLeaseRevoke:
        return step_lease_liveness(s, m, out);
    }
  }

 private:
  void step_acquire(const ModelState& s, const ModelOp& m, std::vector<ModelState>& out) const {
    const Operation& op = *m.op;
    const uint64_t me = op.lease_id;
    switch (m.outcome) {
      case Outcome::kOk:
      case Outcome::kUnknown: {
        const bool known = m.outcome == Outcome::kOk;
        if (m.lease < 0 || !is_alive(s, m.lease)) return;
        ModelState n = s;
        LockModel& lock = n.locks[m.lock];
        if (lock.holder_lease == me) {
          if (!known) return;  // no change: equivalent to never taking effect
          if (!holder_matches(lock, Holder{me, op.granted_token})) return;
          out.push_back(std::move(n));
          return;
        }
        if (lock.holder_lease != 0) end_holder(n, m.lock);
        if (known) {
          if (op.granted_token <= lock.largest) return;
          lock.holder_token = op.granted_token;
          lock.largest = op.granted_token;
        } else {
          // The token is not known: larger than `largest`, pinned by its first observation.
          // (Leaving `largest` as it is loses only the strictness between two unobserved tokens.)
          lock.holder_token = 0;
        }
        lock.holder_lease = me;
        out.push_back(std::move(n));
        return;
      }
      case Outcome::kLockHeld: {
        // The service checks the lease before the lock: lock_held means the lease was alive.
        if (m.lease < 0 || !is_alive(s, m.lease)) return;
        ModelState n = s;
        LockModel& lock = n.locks[m.lock];
        if (lock.holder_lease == me) return;  // it would have been granted (idempotent)
        if (!op.holder) {
          // Free (lock-delay after an expiry also answers lock_held without a holder).
          if (lock.holder_lease != 0) end_holder(n, m.lock);
          out.push_back(std::move(n));
          return;
        }
        if (op.holder->lease_id == me) return;
        if (!holder_matches(lock, *op.holder)) return;
        out.push_back(std::move(n));
        return;
      }
      case Outcome::kLeaseNotFound: {
        ModelState n = s;
        if (m.lease >= 0 && is_alive(n, m.lease)) end_lease(n, m.lease);
        out.push_back(std::move(n));
        return;
      }
      default:
        return;
    }
  }

  void step_release(const ModelState& s, const ModelOp& m, std::vector<ModelState>& out) const {
    const Operation& op = *m.op;
    const Holder presented{op.lease_id, op.token};
    switch (m.outcome) {
      case Outcome::kOk:
      case Outcome::kUnknown: {
        if (m.outcome == Outcome::kUnknown && s.locks[m.lock].holder_lease != op.lease_id) return;
        ModelState n = s;
        LockModel& lock = n.locks[m.lock];
        if (holder_matches(lock, presented)) {
          lock.holder_lease = 0;
          lock.holder_token = 0;
          lock.last_release_lease = presented.lease_id;
          lock.last_release_token = presented.fencing_token;
          out.push_back(std::move(n));
          return;
        }
        // A retry of the release that already took effect answers ok and changes nothing.
        if (m.outcome == Outcome::kOk && lock.last_release_lease == presented.lease_id &&
            lock.last_release_token == presented.fencing_token) {
          out.push_back(s);
        }
        return;
      }
      case Outcome::kNotHolder: {
        auto consistent = [&](ModelState& n) {
          LockModel& lock = n.locks[m.lock];
          if (lock.last_release_lease == presented.lease_id &&
              lock.last_release_token == presented.fencing_token) {
            return false;  // the service answers a retried release with ok
          }
          if (!op.holder) return lock.holder_lease == 0;
          if (*op.holder == presented) return false;
          if (lock.holder_lease == presented.lease_id &&
              lock.holder_token == presented.fencing_token)
            return false;
          return holder_matches(lock, *op.holder);
        };
        ModelState n = s;
        if (consistent(n)) {
          out.push_back(std::move(n));
          return;
        }
        if (s.locks[m.lock].holder_lease != 0) {
          ModelState e = s;
          end_holder(e, m.lock);
          if (consistent(e)) out.push_back(std::move(e));
        }
        return;
      }
      default:
        return;
    }
  }

  void step_read(const ModelState& s, const ModelOp& m, std::vector<ModelState>& out) const {
    if (m.outcome != Outcome::kOk) return;
    const Operation& op = *m.op;
    ModelState n = s;
    LockModel& lock = n.locks[m.lock];
    if (!op.holder) {
      if (lock.holder_lease != 0) end_holder(n, m.lock);
      out.push_back(std::move(n));
      return;
    }
    if (holder_matches(lock, *op.holder)) out.push_back(std::move(n));
  }

  void step_grant(const ModelState& s, const ModelOp& m, std::vector<ModelState>& out) const {
    const Operation& op = *m.op;
    const AliveLease* lease = find_alive(s, m.lease);
    switch (m.outcome) {
      case Outcome::kOk:
      case Outcome::kUnknown: {
        if (lease && (lease->ttl_ms == 0 || lease->ttl_ms == op.ttl_ms)) {
          // The idempotent retry (no change, so only for a known answer) ...
          if (m.outcome == Outcome::kOk) {
            ModelState n = s;
            set_alive(n, m.lease, op.ttl_ms);
            out.push_back(std::move(n));
          }
        }
        // ... or the old lease expired first and this created a new one with the same id.
        ModelState n = s;
        if (lease) end_lease(n, m.lease);
        set_alive(n, m.lease, op.ttl_ms);
        out.push_back(std::move(n));
        return;
      }
      case Outcome::kLeaseExists:
        if (lease && (lease->ttl_ms == 0 || lease->ttl_ms != op.ttl_ms)) out.push_back(s);
        return;
      default:
        return;
    }
  }

  void step_lease_liveness(const ModelState& s, const ModelOp& m,
                           std::vector<ModelState>& out) const {
    const bool alive = is_alive(s, m.lease);
    switch (m.outcome) {
      case Outcome::kOk: {
        if (!alive) return;
        ModelState n = s;
        if (m.op->kind == OpKind::kLeaseRevoke) end_lease(n, m.lease);
        out.push_back(std::move(n));
        return;
      }
      case Outcome::kLeaseNotFound: {
        ModelState n = s;
        if (alive) end_lease(n, m.lease);
        out.push_back(std::move(n));
        return;
      }
      default:
        return;  // an unknown keepalive or revoke adds nothing: a lease may end at any time
    }
  }

  std::vector<uint64_t> lease_ids_;
  std::unordered_map<uint64_t, int> lease_index_;
};

// ---- Classification ---------------------------------------------------------------------------

Outcome classify(const Operation& op) {
  if (op.status == OpStatus::kOk) return Outcome::kOk;
  if (op.status == OpStatus::kUnknown) return Outcome::kUnknown;
  const std::string& c = op.error_code;
  switch (op.kind) {
    case OpKind::kAcquire:
      if (c == "lock_held") return Outcome::kLockHeld;
      if (c == "lease_not_found") return Outcome::kLeaseNotFound;
      break;
    case OpKind::kRelease:
      if (c == "not_holder") return Outcome::kNotHolder;
      break;
    case OpKind::kLeaseGrant:
      if (c == "lease_exists") return Outcome::kLeaseExists;
      break;
    case OpKind::kLeaseKeepalive:
    case OpKind::kLeaseRevoke:
      if (c == "lease_not_found") return Outcome::kLeaseNotFound;
      break;
    case OpKind::kLockRead:
      break;
  }
  return Outcome::kUnknown;  // any other error: treated as indeterminate
}

// Unknown operations whose only possible effect the model gets for free, or none: never needed.
bool can_drop(const Operation& op, Outcome outcome) {
  if (outcome != Outcome::kUnknown) return false;
  return op.kind == OpKind::kLockRead || op.kind == OpKind::kLeaseKeepalive ||
         op.kind == OpKind::kLeaseRevoke;
}

// ---- The search ------------------------------------------------------------------------------

using Bits = std::vector<uint64_t>;

// The cache of visited configurations: the known operations linearized and the model state,
// with every set of unknown operations linearized alongside. A configuration whose unknown set is
// a superset of a visited one's is subsumed by it (it has fewer options, none that the visited
// one lacks: unknown operations never need to be linearized and never block others).
struct CacheKey {
  Bits known_bits;
  ModelState state;
  uint64_t hash = 0;
  bool operator==(const CacheKey& o) const {
    return known_bits == o.known_bits && state == o.state;
  }
};
struct CacheKeyHash {
  size_t operator()(const CacheKey& k) const { return static_cast<size_t>(k.hash); }
};

// The call and return events of the known operations, in a doubly linked list (porcupine's lift
// and unlift). Unknown operations have no return and are kept apart (unknown_of_lease_).
struct Entry {
  int op = 0;  // index into the partition's ops
  bool is_call = true;
  Nanos at = 0;
  int match = -1;  // call → its return entry
  int prev = -1;
  int next = -1;
};

struct Partition {
  std::string name;
  std::vector<std::string> locks;
  std::vector<uint64_t> leases;
  std::vector<const Operation*> ops;
};

enum class SearchResult { kLinearizable, kNotLinearizable, kOutOfBudget };

struct Failure {
  std::vector<int> longest_prefix;  // op indices, in linearization order
  std::vector<int> stuck;           // ops that could not be linearized after the prefix
};

class Search {
 public:
  Search(const Partition& p, std::chrono::steady_clock::time_point deadline)
      : p_(p), model_(p.leases), deadline_(deadline) {}

  SearchResult run(Failure& failure) {
    build();
    ModelState state;
    state.locks.resize(p_.locks.size());
    std::vector<bool> has_grant(p_.leases.size(), false);
    for (const auto& m : mops_) {
      if (m.op->kind == OpKind::kLeaseGrant && m.lease >= 0) has_grant[m.lease] = true;
    }
    for (size_t i = 0; i < p_.leases.size(); ++i) {
      // A lease without a grant in the history was granted before it began.
      if (!has_grant[i]) set_alive(state, static_cast<int>(i), 0);
    }

    const int n = static_cast<int>(mops_.size());
    bits_.assign((n + 63) / 64, 0);
    Bits& bits = bits_;
    int remaining_known = 0;
    for (const auto& m : mops_) remaining_known += m.outcome == Outcome::kUnknown ? 0 : 1;

    struct Frame {
      std::vector<int> candidates;  // call entries that may be linearized next
      size_t next = 0;              // resume position in candidates
      size_t alt = 0;               // resume alternative of candidates[next]
      int applied = -1;             // the candidate this frame linearized (for undo)
      ModelState saved;
      bool unknown_added = false;  // unknown operations are offered once the known ones fail
    };
    std::vector<Frame> frames;
    std::vector<ModelState> succs;
    size_t best_depth = 0;
    bool best_recorded = false;
    uint64_t iterations = 0;

    frames.push_back(Frame{known_candidates(), 0, 0, -1, {}, false});
    while (true) {
      if (remaining_known == 0) return SearchResult::kLinearizable;
      if ((++iterations & 1023) == 0 && std::chrono::steady_clock::now() > deadline_) {
        return SearchResult::kOutOfBudget;
      }
      Frame& f = frames.back();
      bool pushed = false;
      while (!pushed) {
        if (f.next == f.candidates.size()) {
          if (f.unknown_added) break;
          f.unknown_added = true;
          add_unknown_candidates(state, f.candidates);
          if (f.next == f.candidates.size()) break;
        }
        const int entry = f.candidates[f.next];
        const int opi = op_of(entry);
        const ModelOp& m = mops_[opi];
        model_.step(state, m, succs);
        for (size_t a = f.alt; a < succs.size(); ++a) {
          if (m.outcome == Outcome::kUnknown && succs[a] == state) continue;  // no effect
          bits[opi / 64] |= (1ULL << (opi % 64));
          if (!visit(bits, succs[a])) {
            bits[opi / 64] &= ~(1ULL << (opi % 64));
            continue;
          }
          f.alt = a + 1;
          f.applied = entry;
          f.saved = state;
          state = succs[a];
          lift(entry);
          if (m.outcome != Outcome::kUnknown) --remaining_known;
          pushed = true;
          break;
        }
        if (!pushed) {
          ++f.next;
          f.alt = 0;
        }
      }
      if (pushed) {
        frames.push_back(Frame{known_candidates(), 0, 0, -1, {}, false});
        if (frames.size() - 1 > best_depth) {
          best_depth = frames.size() - 1;
          best_recorded = false;
        }
        continue;
      }
      // Every candidate failed here.
      if (frames.size() - 1 == best_depth && !best_recorded) {
        best_recorded = true;
        failure.longest_prefix.clear();
        for (size_t i = 0; i + 1 < frames.size(); ++i) {
          failure.longest_prefix.push_back(op_of(frames[i].applied));
        }
        failure.stuck.clear();
        for (int e = head_next(); e != -1; e = entries_[e].next) {
          const int opi = entries_[e].op;
          if (!entries_[e].is_call) break;  // this operation had to be linearized by now
          failure.stuck.push_back(opi);
        }
      }
      frames.pop_back();
      if (frames.empty()) return SearchResult::kNotLinearizable;
      Frame& parent = frames.back();
      const int entry = parent.applied;
      const int opi = op_of(entry);
      state = parent.saved;
      unlift(entry);
      bits[opi / 64] &= ~(1ULL << (opi % 64));
      if (mops_[opi].outcome != Outcome::kUnknown) ++remaining_known;
      parent.applied = -1;
    }
  }

  const std::vector<ModelOp>& ops() const { return mops_; }

 private:
  // Records the configuration; false when it (or one that subsumes it) was visited before.
  bool visit(const Bits& bits, const ModelState& state) {
    CacheKey key;
    key.known_bits.resize(bits.size());
    Bits unknown(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) {
      key.known_bits[i] = bits[i] & ~unknown_mask_[i];
      unknown[i] = bits[i] & unknown_mask_[i];
    }
    key.state = state;
    key.hash = hash_bits(key.known_bits);
    hash_mix(key.hash, hash_state(state));
    std::vector<Bits>& seen = cache_[std::move(key)];
    for (const Bits& earlier : seen) {
      bool subset = true;
      for (size_t i = 0; i < bits.size() && subset; ++i) subset = (earlier[i] & ~unknown[i]) == 0;
      if (subset) return false;
    }
    seen.push_back(std::move(unknown));
    return true;
  }

  static uint64_t hash_bits(const Bits& bits) {
    uint64_t h = 0xabcdef;
    for (uint64_t w : bits) hash_mix(h, w);
    return h;
  }

  void build() {
    std::unordered_map<std::string, int> lock_index;
    for (size_t i = 0; i < p_.locks.size(); ++i) lock_index[p_.locks[i]] = static_cast<int>(i);
    for (const Operation* op : p_.ops) {
      ModelOp m;
      m.op = op;
      m.outcome = classify(*op);
      if (can_drop(*op, m.outcome)) continue;
      if (op->kind == OpKind::kAcquire || op->kind == OpKind::kRelease ||
          op->kind == OpKind::kLockRead) {
        m.lock = lock_index.at(op->lock);
      }
      m.lease = model_.lease_index(op->lease_id);
      mops_.push_back(m);
    }
    mentions_.assign(p_.leases.size(), 0);
    for (size_t i = 0; i < mops_.size(); ++i) {
      for_each_mention(static_cast<int>(i), [&](int lease) { ++mentions_[lease]; });
    }
    unknown_mask_.assign((mops_.size() + 63) / 64, 0);
    for (size_t i = 0; i < mops_.size(); ++i) {
      if (mops_[i].outcome == Outcome::kUnknown) unknown_mask_[i / 64] |= 1ULL << (i % 64);
    }
    // Events: a call at invocation, a return at completion (known outcomes only). At equal times
    // calls sort first, so touching operations count as concurrent.
    struct Event {
      Nanos at;
      bool is_call;
      int op;
    };
    std::vector<Event> events;
    unknown_of_lease_.assign(p_.leases.size(), {});
    for (size_t i = 0; i < mops_.size(); ++i) {
      if (mops_[i].outcome == Outcome::kUnknown) {
        // (Unknown acquire, release and grant: the only unknown kinds kept, all with a lease.)
        if (mops_[i].lease >= 0) unknown_of_lease_[mops_[i].lease].push_back(static_cast<int>(i));
        continue;
      }
      events.push_back({mops_[i].op->invoke_ns, true, static_cast<int>(i)});
      events.push_back({mops_[i].op->complete_ns, false, static_cast<int>(i)});
    }
    for (size_t l = 0; l < unknown_of_lease_.size(); ++l) {
      auto& ops = unknown_of_lease_[l];
      if (ops.empty()) continue;
      std::stable_sort(ops.begin(), ops.end(), [&](int a, int b) {
        return mops_[a].op->invoke_ns < mops_[b].op->invoke_ns;
      });
      leases_with_unknown_.push_back(static_cast<int>(l));
    }
    std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
      if (a.at != b.at) return a.at < b.at;
      return a.is_call && !b.is_call;
    });
    // Entry 0 is the list head.
    entries_.resize(events.size() + 1);
    std::vector<int> call_of(mops_.size(), -1);
    for (size_t i = 0; i < events.size(); ++i) {
      Entry& e = entries_[i + 1];
      e.op = events[i].op;
      e.is_call = events[i].is_call;
      e.at = events[i].at;
      if (e.is_call) {
        call_of[e.op] = static_cast<int>(i + 1);
      } else {
        entries_[call_of[e.op]].match = static_cast<int>(i + 1);
      }
    }
    for (size_t i = 0; i < entries_.size(); ++i) {
      entries_[i].prev = static_cast<int>(i) - 1;
      entries_[i].next = i + 1 < entries_.size() ? static_cast<int>(i + 1) : -1;
    }
  }

  int head_next() const { return entries_[0].next; }

  // Call entries of known operations before the first return entry: the operations that may be
  // linearized next.
  std::vector<int> known_candidates() const {
    std::vector<int> known;
    for (int e = head_next(); e != -1 && entries_[e].is_call; e = entries_[e].next) {
      known.push_back(e);
    }
    return known;
  }

  // Appends the unknown operations that may take effect next, those after which one of the
  // `candidates` (known) could be linearized first. Of several pending unknown operations with
  // the same arguments only the earliest is offered: all of them are invoked already and never
  // complete, so they are interchangeable.
  void add_unknown_candidates(const ModelState& state, std::vector<int>& candidates) const {
    const size_t known_count = candidates.size();
    // Invoked before the first pending return (touching counts as concurrent).
    int first_return = head_next();
    while (first_return != -1 && entries_[first_return].is_call) {
      first_return = entries_[first_return].next;
    }
    if (first_return == -1) return;  // nothing known left: the search has succeeded
    const Nanos horizon = entries_[first_return].at;
    std::vector<int> enabling, others;
    std::vector<ModelState> after, next;
    for (int lease : leases_with_unknown_) {
      // Nothing left mentions it and it holds nothing (nothing for its releases to free).
      if (mentions_[lease] == 0 && !holds_a_lock(state, lease)) continue;
      for (int opi : unknown_of_lease_[lease]) {
        if (mops_[opi].op->invoke_ns > horizon) break;
        if ((bits_[opi / 64] >> (opi % 64)) & 1) continue;  // linearized already
        if (!relevant(mops_[opi])) continue;
        const int code = -(opi + 1);
        auto same = [&](int other) {
          return same_arguments(*mops_[op_of(other)].op, *mops_[opi].op);
        };
        if (std::any_of(enabling.begin(), enabling.end(), same) ||
            std::any_of(others.begin(), others.end(), same)) {
          continue;
        }
        model_.step(state, mops_[opi], after);
        if (after.empty()) continue;
        bool enables = false;
        for (const ModelState& s : after) {
          for (size_t k = 0; k < known_count && !enables; ++k) {
            model_.step(s, mops_[entries_[candidates[k]].op], next);
            enables = !next.empty();
          }
        }
        (enables ? enabling : others).push_back(code);
      }
    }
    candidates.insert(candidates.end(), enabling.begin(), enabling.end());
    candidates.insert(candidates.end(), others.begin(), others.end());
  }

  // An unknown acquire or lease grant matters only through later observations of its lease: when
  // no operation left to linearize mentions the lease (known ones as lease or as reported holder,
  // unknown releases as lease), making the lease alive or the holder can only get in the way:
  // anything that needs the lock or the lease gone may end the lease first.
  bool relevant(const ModelOp& m) const {
    if (m.op->kind != OpKind::kAcquire && m.op->kind != OpKind::kLeaseGrant) return true;
    return m.lease >= 0 && mentions_[m.lease] > 0;
  }

  // The leases whose later observation can make unknown operations on them matter (see above).
  void for_each_mention(int opi, const auto& fn) const {
    const ModelOp& m = mops_[opi];
    if (m.outcome == Outcome::kUnknown) {
      if (m.op->kind == OpKind::kRelease && m.lease >= 0) fn(m.lease);
      return;
    }
    if (m.lease >= 0) fn(m.lease);
    if (m.op->holder) {
      const int holder = model_.lease_index(m.op->holder->lease_id);
      if (holder >= 0 && holder != m.lease) fn(holder);
    }
  }

  static bool same_arguments(const Operation& a, const Operation& b) {
    return a.kind == b.kind && a.lock == b.lock && a.lease_id == b.lease_id && a.token == b.token &&
           a.ttl_ms == b.ttl_ms;
  }

  void remove(int e) {
    Entry& x = entries_[e];
    entries_[x.prev].next = x.next;
    if (x.next != -1) entries_[x.next].prev = x.prev;
  }
  void restore(int e) {
    Entry& x = entries_[e];
    entries_[x.prev].next = e;
    if (x.next != -1) entries_[x.next].prev = e;
  }
  bool holds_a_lock(const ModelState& state, int lease) const {
    const uint64_t id = p_.leases[lease];
    return std::any_of(state.locks.begin(), state.locks.end(),
                       [&](const LockModel& l) { return l.holder_lease == id; });
  }

  // A candidate: an entry (>= 0) of a known operation, or -(index + 1) of an unknown one.
  int op_of(int candidate) const {
    return candidate >= 0 ? entries_[candidate].op : -candidate - 1;
  }

  void lift(int call) {
    for_each_mention(op_of(call), [&](int lease) { --mentions_[lease]; });
    if (call < 0) return;
    remove(call);
    if (entries_[call].match != -1) remove(entries_[call].match);
  }
  void unlift(int call) {
    for_each_mention(op_of(call), [&](int lease) { ++mentions_[lease]; });
    if (call < 0) return;
    if (entries_[call].match != -1) restore(entries_[call].match);
    restore(call);
  }

  const Partition& p_;
  Model model_;
  std::chrono::steady_clock::time_point deadline_;
  std::vector<ModelOp> mops_;
  std::vector<Entry> entries_;
  Bits unknown_mask_;
  Bits bits_;                                       // the operations linearized so far
  std::vector<std::vector<int>> unknown_of_lease_;  // per lease: its unknown ops by invocation
  std::vector<int> leases_with_unknown_;
  std::vector<int> mentions_;  // per lease: operations left to linearize that mention it
  std::unordered_map<CacheKey, std::vector<Bits>, CacheKeyHash> cache_;
};

// ---- Partitioning ---------------------------------------------------------------------------

struct UnionFind {
  std::vector<int> parent;
  int add() {
    parent.push_back(static_cast<int>(parent.size()));
    return parent.back();
  }
  int find(int x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  }
  void unite(int a, int b) { parent[find(a)] = find(b); }
};

bool is_lock_op(OpKind k) {
  return k == OpKind::kAcquire || k == OpKind::kRelease || k == OpKind::kLockRead;
}

std::vector<Partition> partition(const History& history) {
  UnionFind uf;
  std::map<std::string, int> lock_node;
  std::map<uint64_t, int> lease_node;
  auto lock_of = [&](const std::string& name) {
    auto [it, inserted] = lock_node.try_emplace(name, 0);
    if (inserted) it->second = uf.add();
    return it->second;
  };
  auto lease_of = [&](uint64_t id) {
    auto [it, inserted] = lease_node.try_emplace(id, 0);
    if (inserted) it->second = uf.add();
    return it->second;
  };
  for (const auto& op : history.operations) {
    if (is_lock_op(op.kind)) {
      const int l = lock_of(op.lock);
      if (op.kind != OpKind::kLockRead) uf.unite(lease_of(op.lease_id), l);
    } else {
      lease_of(op.lease_id);
    }
  }
  std::map<int, Partition> by_root;
  for (const auto& [name, node] : lock_node) by_root[uf.find(node)].locks.push_back(name);
  for (const auto& [id, node] : lease_node) by_root[uf.find(node)].leases.push_back(id);
  for (const auto& op : history.operations) {
    const int node = is_lock_op(op.kind) ? lock_of(op.lock) : lease_of(op.lease_id);
    by_root[uf.find(node)].ops.push_back(&op);
  }
  std::vector<Partition> out;
  for (auto& [root, p] : by_root) {
    if (!p.locks.empty()) {
      p.name = "lock " + p.locks.front();
      for (size_t i = 1; i < p.locks.size(); ++i) p.name += "+" + p.locks[i];
    } else {
      p.name = "lease " + std::to_string(p.leases.front());
    }
    // Leases reported as holders but never used here still need a (never alive) table slot.
    for (const Operation* op : p.ops) {
      if (op->holder &&
          std::find(p.leases.begin(), p.leases.end(), op->holder->lease_id) == p.leases.end()) {
        p.leases.push_back(op->holder->lease_id);
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::string validate(const Operation& op) {
  if (op.complete_ns != kNeverCompleted && op.complete_ns < op.invoke_ns) {
    return "completes before it was invoked";
  }
  if (op.status != OpStatus::kUnknown && op.complete_ns == kNeverCompleted) {
    return "has a definite result but no completion time";
  }
  if (is_lock_op(op.kind) && op.lock.empty()) return "names no lock";
  if (op.kind != OpKind::kLockRead && op.lease_id == 0) return "names no lease (lease_id 0)";
  if (op.kind == OpKind::kAcquire && op.status == OpStatus::kOk && op.granted_token == 0) {
    return "was granted without a fencing token";
  }
  return "";
}

}  // namespace

Verdict check_linearizable(const History& history, std::chrono::milliseconds budget) {
  Verdict verdict;
  std::unordered_set<uint64_t> ids;
  for (const auto& op : history.operations) {
    std::string problem = validate(op);
    if (problem.empty() && !ids.insert(op.id).second) problem = "reuses an operation id";
    if (!problem.empty()) {
      verdict.ok = false;
      verdict.anomalies.push_back("malformed history: operation " + describe_operation(op) + " " +
                                  problem);
      verdict.operation_ids.push_back(op.id);
    }
  }
  if (!verdict.ok) return verdict;

  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (const Partition& p : partition(history)) {
    Search search(p, deadline);
    Failure failure;
    const SearchResult result = search.run(failure);
    if (result == SearchResult::kLinearizable) continue;
    verdict.ok = false;
    if (result == SearchResult::kOutOfBudget) {
      verdict.inconclusive = true;
      verdict.anomalies.push_back(p.name + ": search budget exhausted after " +
                                  std::to_string(budget.count()) + " ms; not decided");
      continue;
    }
    const auto& ops = search.ops();
    std::ostringstream line;
    line << p.name << ": not linearizable; the longest linearizable prefix has "
         << failure.longest_prefix.size() << " of " << ops.size() << " operations";
    if (!failure.longest_prefix.empty()) {
      line << " (ending ";
      const size_t from = failure.longest_prefix.size() > 3 ? failure.longest_prefix.size() - 3 : 0;
      for (size_t i = from; i < failure.longest_prefix.size(); ++i) {
        if (i > from) line << "; ";
        line << describe_operation(*ops[failure.longest_prefix[i]].op);
      }
      line << ")";
    }
    line << "; after it none of these could be linearized:";
    verdict.anomalies.push_back(line.str());
    for (int opi : failure.stuck) {
      const Operation& op = *ops[opi].op;
      verdict.anomalies.push_back("  " + describe_operation(op));
      verdict.operation_ids.push_back(op.id);
    }
  }
  return verdict;
}

}  // namespace raftlock::chaos
