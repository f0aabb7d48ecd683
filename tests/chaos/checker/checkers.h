// The chaos suite's checkers: pure functions over what the workloads recorded (history.h). Each is
// shown to fail on hand-made bad histories in tests/chaos_checker/.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "history.h"

namespace raftlock::chaos {

// Linearizability of the lock service (Wing–Gong search with memoization, porcupine-style),
// against a model of leases and locks. The history is split into independent partitions: locks
// that share a lease are checked together (the workloads use each lease with one lock only, so
// normally one partition per lock); a lease's operations go with its lock(s); a lease used with
// no lock is a partition of its own. kUnknown operations may take effect at any point after
// their invocation, or never. A lease may end (expire) at any point the model needs it to, but a
// lease that has ended never answers ok again (unless a later lease grant with its id re-creates
// it, as the service allows). `budget` bounds the search time over all partitions; when it runs
// out the verdict is inconclusive (not ok, no anomaly claimed). A malformed history (an operation
// completing before its invocation, a definite result without a completion time, a missing lock
// or lease id, a granted acquire without a token, a repeated id) is refused: not ok, one anomaly
// per bad operation.
//
// The model, per partition: each lock has a holder (lease, token) or is free, the largest token
// granted, and the (lease, token) of its last explicit release; each lease is alive or not (with
// its ttl). A lease with a grant operation in the history starts not alive, any other alive.
// Ending a lease (revoke, or expiry at any moment) frees every lock it holds.
// - acquire ok(T): the lease is alive; it already holds the lock with token T (idempotent), or
//   the lock is free (its holder's lease may expire first) and T > the largest token granted.
// - acquire lock_held(H): the lease is alive (the service checks it first), does not hold the
//   lock, and the lock is held by H; lock_held without a holder: the lock is free (lock-delay).
// - acquire/keepalive/revoke lease_not_found: the lease is not alive (it may expire just then).
// - release ok(lease, T): the lock is held by (lease, T) and becomes free; or (a retry) the last
//   explicit release of the lock was exactly (lease, T): no change. The lease need not be alive.
// - release not_holder(H | null): neither of those, and the lock's holder is H (null: free).
// - read ok(H | free): the lock's holder is H, or it is free.
// - lease grant ok(ttl): creates the lease; or it is alive with that ttl (idempotent retry, no
//   change). lease_exists: alive with another ttl. keepalive ok: alive. revoke ok: alive, ends it.
// - Unknown: an acquire grants a token not yet known (> the largest), fixed by the first later
//   observation of it (read, 409 holder, idempotent acquire, release); a release or a grant may
//   take effect as above; an unknown read, keepalive or revoke is ignored (a lease may end at any
//   time anyway). Other error codes count as unknown outcomes.
// Operations whose intervals touch (one completes at the instant the other is invoked) count as
// concurrent. On an anomaly the verdict names the partition, the length of the longest
// linearizable prefix found (and its last operations), and the operations that could not be
// linearized after it (operation_ids).
Verdict check_linearizable(const History& history,
                           std::chrono::milliseconds budget = std::chrono::seconds(60));

// Fencing: every granted token unique; an acquire that completed before another was invoked has a
// smaller token; the register accepted tokens in non-decreasing order and rejected only tokens
// smaller than one it had accepted (so it must accept a token >= the largest accepted); every
// write presents a token that appears among the grants; at least `min_grants` grants (progress).
Verdict check_fencing(const FencingRecord& record, size_t min_grants);

// Elections: at every revision one state (all observations of one revision agree on leader and
// value); a leader's token is <= the revision it is observed at, and one token never names two
// leases; each observer's revisions (in its arrival order) never go backwards; two wins never
// share a token and a win that completed before another was invoked has the smaller token;
// `require_no_leader_transition`: some observation of "no leader" has a larger revision than
// some observation of a leader.
Verdict check_elections(const ElectionRecord& record, bool require_no_leader_transition);

// Durability after every node crashed and restarted: `after` equals `before` (the linearizable
// state read once the workload stopped: the same locks with the same holder and revision, the same
// live leases, and an applied index not smaller), and every acknowledged write is reflected. Each
// lock named by an acked grant or release must be among `after.locks` (read it by name), and:
// an acked grant of token T on lock L means L's revision >= T and, if L is held, its token >= T;
// an acked release of (lease, T) means L's revision > T and L is not held by (lease, T); for each
// lease, its latest acked change (by complete_ns) holds: after a grant it is live after the
// restart unless `before` already lacked it (it expired: an observed end); after a revoke it is
// not live.
Verdict check_durability(const std::vector<AckedWrite>& acked, const ObservedState& before,
                         const ObservedState& after);

// One line naming an operation, its arguments, result and times (for anomaly explanations).
std::string describe_operation(const Operation& op);

// Writes the history and the verdict as JSON to `path` (for a failing run), with the seed.
bool write_failure_report(const std::string& path, uint64_t seed, const History& history,
                          const Verdict& verdict);

}  // namespace raftlock::chaos
