// raft::LoopInbox — how a node's loop reads peer connections itself (implemented by the transport).
#pragma once

#include <functional>
#include <vector>

#include "raft/types.h"

namespace raftlock::raft {

// Lets the loop read peer connections itself, with no thread hand-off per incoming batch: the
// loop waits on the inbox's descriptors together with its own wake-up, and asks the inbox to read
// what became readable. The transport implements it (PeerTransport's message streams).
class LoopInbox {
 public:
  virtual ~LoopInbox() = default;
  // Called once by the node before its loop starts: `wake` (thread-safe) makes the loop call
  // descriptors() again soon (a connection was added or must be dropped).
  virtual void attach(std::function<void()> wake) = 0;
  // Called by the node when its loop has ended: no more descriptors()/read() calls follow.
  virtual void detach() = 0;
  // Loop thread: the descriptors to wait on for reading (replaces the contents of `fds`).
  virtual void descriptors(std::vector<int>& fds) = 0;
  // Loop thread: reads what arrived on `fd` (it polled readable or hung up) and appends the
  // complete, validated messages to `out`.
  virtual void read(int fd, std::vector<Message>& out) = 0;
};

}  // namespace raftlock::raft
