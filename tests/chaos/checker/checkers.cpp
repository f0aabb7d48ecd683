// The fencing, elections and durability checkers, and the one-line operation description.
#include "checkers.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

namespace raftlock::chaos {

namespace {

const char* kind_name(OpKind k) {
  switch (k) {
    case OpKind::kLeaseGrant:
      return "lease-grant";
    case OpKind::kLeaseKeepalive:
      return "keepalive";
    case OpKind::kLeaseRevoke:
      return "revoke";
    case OpKind::kAcquire:
      return "acquire";
    case OpKind::kRelease:
      return "release";
    case OpKind::kLockRead:
      return "read";
  }
  return "?";
}

std::string holder_text(const std::optional<Holder>& h) {
  if (!h) return "free";
  return "lease " + std::to_string(h->lease_id) + " token " + std::to_string(h->fencing_token);
}

std::string ms(Nanos t) {
  if (t == kNeverCompleted) return "never";
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(3);
  s << static_cast<double>(t) / 1e6 << "ms";
  return s.str();
}

void add(Verdict& v, std::string anomaly, std::initializer_list<uint64_t> ids = {}) {
  v.ok = false;
  v.anomalies.push_back(std::move(anomaly));
  v.operation_ids.insert(v.operation_ids.end(), ids.begin(), ids.end());
}

// Tokens unique, and real-time order respected: whatever completed before another was invoked has
// the smaller token. `what` names the items ("grant", "win").
template <typename T>
void check_token_order(const std::vector<T>& items, const std::string& what, Verdict& v) {
  std::map<uint64_t, size_t> by_token;
  for (size_t i = 0; i < items.size(); ++i) {
    auto [it, inserted] = by_token.try_emplace(items[i].fencing_token_value(), i);
    if (!inserted) {
      add(v, "two " + what + "s with token " + std::to_string(items[i].fencing_token_value()) +
                 ": " + items[it->second].text() + " and " + items[i].text());
    }
  }
  // Sweep: items sorted by invoke; those completed before it, the largest token among them.
  std::vector<size_t> by_invoke(items.size()), by_complete(items.size());
  for (size_t i = 0; i < items.size(); ++i) by_invoke[i] = by_complete[i] = i;
  std::sort(by_invoke.begin(), by_invoke.end(),
            [&](size_t a, size_t b) { return items[a].invoke_ns < items[b].invoke_ns; });
  std::sort(by_complete.begin(), by_complete.end(),
            [&](size_t a, size_t b) { return items[a].complete_ns < items[b].complete_ns; });
  size_t c = 0;
  std::optional<size_t> max_before;
  for (size_t b : by_invoke) {
    while (c < by_complete.size() && items[by_complete[c]].complete_ns < items[b].invoke_ns) {
      const size_t a = by_complete[c++];
      if (!max_before ||
          items[a].fencing_token_value() > items[*max_before].fencing_token_value()) {
        max_before = a;
      }
    }
    if (max_before && items[*max_before].fencing_token_value() >= items[b].fencing_token_value() &&
        *max_before != b) {
      add(v, what + " " + items[*max_before].text() + " completed before " + items[b].text() +
                 " was invoked but its token is not smaller");
    }
  }
}

struct GrantView {
  const Grant& g;
  uint64_t fencing_token_value() const { return g.token; }
  Nanos invoke_ns = g.invoke_ns;
  Nanos complete_ns = g.complete_ns;
  std::string text() const {
    return "(client " + std::to_string(g.client) + ", lease " + std::to_string(g.lease_id) +
           ", token " + std::to_string(g.token) + ", " + ms(g.invoke_ns) + ".." +
           ms(g.complete_ns) + ")";
  }
};

struct WinView {
  const ElectionWin& w;
  uint64_t fencing_token_value() const { return w.fencing_token; }
  Nanos invoke_ns = w.invoke_ns;
  Nanos complete_ns = w.complete_ns;
  std::string text() const {
    return "(candidate " + std::to_string(w.candidate) + ", lease " + std::to_string(w.lease_id) +
           ", token " + std::to_string(w.fencing_token) + ", " + ms(w.invoke_ns) + ".." +
           ms(w.complete_ns) + ")";
  }
};

}  // namespace

std::string describe_operation(const Operation& op) {
  std::ostringstream s;
  s << "#" << op.id << " client " << op.client << " node " << op.node << " " << kind_name(op.kind);
  if (!op.lock.empty()) s << " lock " << op.lock;
  if (op.kind != OpKind::kLockRead) s << " lease " << op.lease_id;
  if (op.kind == OpKind::kRelease) s << " token " << op.token;
  if (op.kind == OpKind::kLeaseGrant) s << " ttl " << op.ttl_ms << "ms";
  s << " -> ";
  switch (op.status) {
    case OpStatus::kOk:
      s << "ok";
      if (op.kind == OpKind::kAcquire) s << " token " << op.granted_token;
      if (op.kind == OpKind::kLockRead) s << " " << holder_text(op.holder);
      break;
    case OpStatus::kError:
      s << op.error_code;
      if (op.kind == OpKind::kAcquire || op.kind == OpKind::kRelease) {
        s << " (holder " << holder_text(op.holder) << ")";
      }
      break;
    case OpStatus::kUnknown:
      s << "unknown";
      break;
  }
  s << " [" << ms(op.invoke_ns) << ".." << ms(op.complete_ns) << "]";
  return s.str();
}

Verdict check_fencing(const FencingRecord& record, size_t min_grants) {
  Verdict v;
  std::vector<GrantView> grants;
  for (const auto& g : record.grants) grants.push_back(GrantView{g});
  check_token_order(grants, "grant", v);

  std::set<uint64_t> granted;
  for (const auto& g : record.grants) granted.insert(g.token);
  bool any_accepted = false;
  uint64_t largest = 0;
  for (size_t i = 0; i < record.writes.size(); ++i) {
    const FencingWrite& w = record.writes[i];
    const std::string text = "write #" + std::to_string(i) + " (client " +
                             std::to_string(w.client) + ", token " + std::to_string(w.token) +
                             ", " + ms(w.at_ns) + ")";
    if (!granted.count(w.token)) add(v, text + " presents a token that was never granted");
    if (w.accepted) {
      if (any_accepted && w.token < largest) {
        add(v, "register accepted " + text + " after accepting the larger token " +
                   std::to_string(largest));
      }
      largest = any_accepted ? std::max(largest, w.token) : w.token;
      any_accepted = true;
    } else if (!any_accepted || w.token >= largest) {
      add(v, "register rejected " + text + " although no larger token had been accepted");
    }
  }
  if (record.grants.size() < min_grants) {
    add(v, "too little progress: " + std::to_string(record.grants.size()) + " grants, at least " +
               std::to_string(min_grants) + " required");
  }
  return v;
}

Verdict check_elections(const ElectionRecord& record, bool require_no_leader_transition) {
  Verdict v;
  auto leader_text = [](const ElectionObservation& o) {
    return holder_text(o.leader) + (o.leader ? " value \"" + o.value + "\"" : "");
  };
  auto obs_text = [&](const ElectionObservation& o) {
    return "(observer " + std::to_string(o.observer) + ", node " + std::to_string(o.node) +
           ", revision " + std::to_string(o.revision) + ", " + leader_text(o) + ", " + ms(o.at_ns) +
           ")";
  };

  // One state per revision.
  std::map<uint64_t, const ElectionObservation*> at_revision;
  std::map<uint64_t, const ElectionObservation*> lease_of_token;
  for (const auto& o : record.observations) {
    auto [it, inserted] = at_revision.try_emplace(o.revision, &o);
    if (!inserted && (it->second->leader != o.leader || it->second->value != o.value)) {
      add(v, "two states at revision " + std::to_string(o.revision) + ": " + obs_text(*it->second) +
                 " and " + obs_text(o));
    }
    if (o.leader) {
      if (o.leader->fencing_token > o.revision) {
        add(v, "leader token newer than the revision it was observed at: " + obs_text(o));
      }
      auto [t, fresh] = lease_of_token.try_emplace(o.leader->fencing_token, &o);
      if (!fresh && t->second->leader->lease_id != o.leader->lease_id) {
        add(v, "token " + std::to_string(o.leader->fencing_token) +
                   " held by two leases: " + obs_text(*t->second) + " and " + obs_text(o));
      }
    }
  }

  // Per observer, revisions never go backwards.
  std::map<int, const ElectionObservation*> last_seen;
  for (const auto& o : record.observations) {
    auto [it, inserted] = last_seen.try_emplace(o.observer, &o);
    if (!inserted) {
      if (o.revision < it->second->revision) {
        add(v, "observer " + std::to_string(o.observer) + " saw the revision go backwards: " +
                   obs_text(*it->second) + " then " + obs_text(o));
      }
      it->second = &o;
    }
  }

  std::vector<WinView> wins;
  for (const auto& w : record.wins) wins.push_back(WinView{w});
  check_token_order(wins, "win", v);

  if (require_no_leader_transition) {
    std::optional<uint64_t> first_leader_revision;
    for (const auto& o : record.observations) {
      if (o.leader && (!first_leader_revision || o.revision < *first_leader_revision)) {
        first_leader_revision = o.revision;
      }
    }
    bool seen = false;
    for (const auto& o : record.observations) {
      if (!o.leader && first_leader_revision && o.revision > *first_leader_revision) seen = true;
    }
    if (!seen) add(v, "no \"no leader\" state was observed after a leader was observed");
  }
  return v;
}

Verdict check_durability(const std::vector<AckedWrite>& acked, const ObservedState& before,
                         const ObservedState& after) {
  Verdict v;
  auto lock_map = [](const ObservedState& s) {
    std::map<std::string, const ObservedLock*> m;
    for (const auto& l : s.locks) m[l.name] = &l;
    return m;
  };
  const auto before_locks = lock_map(before);
  const auto after_locks = lock_map(after);
  auto lock_text = [](const ObservedLock* l) {
    if (!l) return std::string("not read");
    return holder_text(l->holder) + " revision " + std::to_string(l->revision);
  };
  std::set<std::string> names;
  for (const auto& [n, l] : before_locks) names.insert(n);
  for (const auto& [n, l] : after_locks) names.insert(n);
  for (const auto& n : names) {
    auto b = before_locks.find(n);
    auto a = after_locks.find(n);
    const ObservedLock* bl = b == before_locks.end() ? nullptr : b->second;
    const ObservedLock* al = a == after_locks.end() ? nullptr : a->second;
    if (!bl || !al || bl->holder != al->holder || bl->revision != al->revision) {
      add(v, "lock " + n + " changed across the restart: before " + lock_text(bl) + ", after " +
                 lock_text(al));
    }
  }
  const std::set<uint64_t> live_before(before.live_leases.begin(), before.live_leases.end());
  const std::set<uint64_t> live_after(after.live_leases.begin(), after.live_leases.end());
  for (uint64_t id : live_before) {
    if (!live_after.count(id)) add(v, "lease " + std::to_string(id) + " was lost in the restart");
  }
  for (uint64_t id : live_after) {
    if (!live_before.count(id)) {
      add(v, "lease " + std::to_string(id) + " came back to life in the restart");
    }
  }
  if (after.applied_index < before.applied_index) {
    add(v, "applied index went back in the restart: " + std::to_string(before.applied_index) +
               " -> " + std::to_string(after.applied_index));
  }

  // The latest acknowledged lease change per lease.
  std::map<uint64_t, const AckedWrite*> last_lease_change;
  for (const auto& w : acked) {
    if (w.kind != AckedWrite::Kind::kLeaseGranted && w.kind != AckedWrite::Kind::kLeaseRevoked) {
      continue;
    }
    auto [it, inserted] = last_lease_change.try_emplace(w.lease_id, &w);
    if (!inserted && w.complete_ns >= it->second->complete_ns) it->second = &w;
  }
  for (const auto& [id, w] : last_lease_change) {
    const std::string lease = "lease " + std::to_string(id);
    if (w->kind == AckedWrite::Kind::kLeaseGranted) {
      // Ended since (expiry) only if the state read before the restart already lacked it.
      // (Absent from both reads: it expired before the workload stopped, which is allowed.)
      if (live_before.count(id) && !live_after.count(id)) {
        add(v, "acknowledged grant of " + lease + " is missing after the restart");
      }
    } else if (live_after.count(id)) {
      add(v, "acknowledged revoke of " + lease + " is undone after the restart");
    }
  }

  for (const auto& w : acked) {
    if (w.kind != AckedWrite::Kind::kLockGranted && w.kind != AckedWrite::Kind::kLockReleased) {
      continue;
    }
    const bool grant = w.kind == AckedWrite::Kind::kLockGranted;
    const std::string what = std::string(grant ? "grant" : "release") + " of lock " + w.lock +
                             " to lease " + std::to_string(w.lease_id) + " with token " +
                             std::to_string(w.token);
    auto it = after_locks.find(w.lock);
    if (it == after_locks.end()) {
      add(v, "acknowledged " + what + ": the lock was not read back after the restart");
      continue;
    }
    const ObservedLock& l = *it->second;
    if (grant) {
      if (l.revision < w.token) {
        add(v, "acknowledged " + what + " is lost: the lock's revision is " +
                   std::to_string(l.revision));
      } else if (l.holder && l.holder->fencing_token < w.token) {
        add(v, "acknowledged " + what + " is lost: the lock is held with the older token " +
                   std::to_string(l.holder->fencing_token));
      }
    } else {
      if (l.revision <= w.token) {
        add(v, "acknowledged " + what + " is lost: the lock's revision is " +
                   std::to_string(l.revision));
      } else if (l.holder && l.holder->lease_id == w.lease_id &&
                 l.holder->fencing_token == w.token) {
        add(v, "acknowledged " + what + " is lost: the lock is still held with that token");
      }
    }
  }
  return v;
}

}  // namespace raftlock::chaos
