// raft::LoopSource — other work a node's loop serves itself (the client port's connections).
#pragma once

namespace raftlock::raft {

// A descriptor the node's loop polls with its own, and the work to do when it is readable, run
// on the loop thread: no thread hand-off between a client's request and the loop. The work must
// never wait for the loop (it runs on it); anything that might goes to its owner's threads.
class LoopSource {
 public:
  virtual ~LoopSource() = default;
  // The descriptor to poll for reading (fixed for the source's life).
  virtual int descriptor() const = 0;
  // Loop thread: the descriptor polled readable.
  virtual void on_readable() = 0;
  // The loop starts (true) or has ended (false) serving this source: until it is attached, and
  // once it is detached, the owner serves everything on its own threads.
  virtual void set_attached(bool attached) = 0;
};

}  // namespace raftlock::raft
