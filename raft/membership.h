// Membership helpers: validating and applying single-server changes (Raft thesis §4.1) to a
// Configuration. encode/decode of ConfChange entry data are declared in raft/core.h.
#pragma once

#include "common/result.h"
#include "raft/types.h"

namespace raftlock::raft {

// Whether `change` makes sense against `config` (the leader checks before proposing):
// kAddLearner needs a new, non-zero id; kPromote needs a learner; kRemove needs a member and may
// not remove the last voter.
Status validate_conf_change(const Configuration& config, const ConfChange& change);

// Applies `change` to `config` (members stay sorted by id). Changes that do not apply (adding an
// existing member, promoting a voter, removing a stranger) leave it unchanged, identically on
// every node. Returns true when the configuration changed.
bool apply_conf_change(Configuration& config, const ConfChange& change);

}  // namespace raftlock::raft
