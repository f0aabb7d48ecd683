// raft::transport::probe_peer_port — one TCP connect that tells whether a peer's process is gone:
// a port nobody listens on any more refuses the connection at once (ECONNREFUSED).
#pragma once

#include <chrono>
#include <string>

namespace raftlock::raft::transport {

// What one connect attempt to a peer's port found.
enum class ProbeOutcome {
  kRefused,   // nothing listens there: the process is gone (or never started)
  kAccepted,  // something listens (the process is alive, maybe paused or slow)
  kTimedOut,  // no answer within the timeout (partition, full backlog): says nothing
  kError,     // bad address, or another socket error: says nothing
};

const char* probe_outcome_name(ProbeOutcome outcome);

// Blocks for at most `timeout` (plus name resolution for a non-numeric host): a non-blocking
// connect to `address` ("host:port", "[v6]:port"), closed again at once. Only kRefused is
// evidence of anything; callers must treat every other outcome as "no news".
ProbeOutcome probe_peer_port(const std::string& address, std::chrono::milliseconds timeout);

}  // namespace raftlock::raft::transport
