// StateMachine — what the runtime applies committed commands to. Deterministic by contract.
#pragma once

#include <any>
#include <string>
#include <string_view>

#include "common/result.h"
#include "raft/types.h"

namespace raftlock::raft {

class StateMachine {
 public:
  virtual ~StateMachine() = default;
  // Applies the command committed at `index`. Must depend only on prior state, index and command:
  // no clock, no randomness. The result is handed to whoever proposed the command.
  virtual std::any apply(Index index, std::string_view command) = 0;
  // Called after a round of apply() calls, once the node's published status covers them (and
  // just before the proposals they settled get their results): answers the state machine itself
  // owes because of those applies may go out.
  virtual void applied() {}
  // Serialises the whole state (taken at the last applied index).
  virtual std::string snapshot() const = 0;
  // Replaces the whole state with a snapshot's. On error the state is unchanged.
  virtual Status restore(std::string_view data) = 0;
};

}  // namespace raftlock::raft
