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
// against a model of leases and locks. The history is split into independent partitions, one per
// lock name; a lease's operations go to the partition of the lock it is used with (the workloads
// use each lease with one lock only). kUnknown operations may take effect at any point after their
// invocation, or never. A lease may end (expire) at any point the model needs it to, but a lease
// that has ended never answers ok again. `budget` bounds the search time over all partitions; when
// it runs out the verdict is inconclusive (not ok, no anomaly claimed).
Verdict check_linearizable(const History& history,
                           std::chrono::milliseconds budget = std::chrono::seconds(60));

// Fencing: every granted token unique; an acquire that completed before another was invoked has a
// smaller token; the register accepted tokens in non-decreasing order and rejected only tokens
// smaller than one it had accepted; at least `min_grants` grants (progress).
Verdict check_fencing(const FencingRecord& record, size_t min_grants);

// Elections: at every revision at most one leader (all observations of one revision agree); each
// observer's revisions never go backwards; two wins never share a token and a win that completed
// before another was invoked has the smaller token; `require_no_leader_transition`: at least one
// observation of "no leader" after a leader was observed.
Verdict check_elections(const ElectionRecord& record, bool require_no_leader_transition);

// Durability after every node crashed and restarted: `after` equals `before` (the linearizable
// state read once the workload stopped), and every acknowledged write is reflected: an acked grant
// of token T on lock L means L's revision >= T and, if L is held, its token >= T; an acked lease
// grant is live after the restart unless a later acked revoke (or an observed end) removed it.
Verdict check_durability(const std::vector<AckedWrite>& acked, const ObservedState& before,
                         const ObservedState& after);

// One line naming an operation, its arguments, result and times (for anomaly explanations).
std::string describe_operation(const Operation& op);

// Writes the history and the verdict as JSON to `path` (for a failing run), with the seed.
bool write_failure_report(const std::string& path, uint64_t seed, const History& history,
                          const Verdict& verdict);

}  // namespace raftlock::chaos
