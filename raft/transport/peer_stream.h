// The peer message stream: one long-lived, one-way TCP connection per ordered pair of nodes that
// carries Raft message batches as length-prefixed frames, with no answer per batch.
//
// A sender opens it with an HTTP request on the peer port, so one port serves both this and the
// per-batch POSTs of older nodes:
//
//   POST /raft/v1/stream HTTP/1.1            HTTP/1.1 200 OK
//   X-Raftlock-From: <sender id>             X-Raftlock-Stream: 1
//   X-Raftlock-Cluster: <cluster id>         Content-Length: 0
//   Content-Length: 0
//
// After that answer the connection carries frames from the sender only: a 4-byte big-endian body
// size, then the body, which is exactly a /raft/v1/messages POST body (encode_batch: protocol
// version, cluster id, sender, messages). A peer that does not know the path answers 404 (a node
// from before streams: it ignores the frame), and the sender falls back to one POST per batch. A
// node refuses a stream of another cluster or from an unknown node with 403, after counting the
// messages of the first frame as dropped.
//
// Why: a POST per batch costs a thread hand-off on each side (the sender thread, the answer) and
// an HTTP parse per batch; a frame is written straight from the Raft loop into the socket.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "raft/types.h"

namespace raftlock::raft::transport {

inline constexpr const char* kStreamPath = "/raft/v1/stream";
inline constexpr const char* kStreamHeader = "X-Raftlock-Stream";
inline constexpr const char* kClusterHeader = "X-Raftlock-Cluster";
// The first bytes of every stream request (what a server peeks at to recognise one).
inline constexpr std::string_view kStreamRequestPrefix = "POST /raft/v1/stream ";
// The largest header block a stream request or answer may have.
inline constexpr size_t kMaxStreamHeaderBytes = 8192;

inline constexpr size_t kFramePrefixBytes = 4;

// Appends one frame (4-byte big-endian size, then `body`) to `out`.
void append_frame(std::string& out, std::string_view body);

// Reads exactly `size` bytes; false on end of stream, error or timeout.
bool read_exact(httplib::Stream& stream, char* out, size_t size);

enum class FrameRead {
  kFrame,     // `body` holds the next frame's body
  kClosed,    // end of stream, error or timeout (possibly mid-frame)
  kTooLarge,  // the frame announced more than `max_bytes`
};
FrameRead read_frame(httplib::Stream& stream, size_t max_bytes, std::string& body);

// Reads an HTTP header block through its blank line (at most kMaxStreamHeaderBytes).
std::optional<std::string> read_header_block(httplib::Stream& stream);
// The value of header `name` (case-insensitive) in a header block; "" when absent.
std::string header_value(std::string_view block, std::string_view name);
// The status code on the first line of an answer's header block; 0 when there is none.
int answer_status(std::string_view block);

// The request a sender opens a stream with.
std::string stream_request(const std::string& host, NodeId from, const std::string& cluster_id);
// The answer a server accepts a stream with.
std::string stream_accept_answer();

// Asks for a stream as node `from` on the connected socket `fd` and waits (within io_timeout) for
// the answer: 200 when accepted, the peer's status when refused (404: an older node), 0 when it
// did not answer (error says why). The caller keeps owning `fd`.
// `first_frames` (possibly empty) are written right behind the request, without waiting.
int request_stream(int fd, const std::string& host, NodeId from, const std::string& cluster_id,
                   std::string_view first_frames, std::chrono::milliseconds io_timeout,
                   std::string& error);

// A TCP connect with a deadline. fd >= 0 on success (blocking mode, owned by the caller); else
// fd = -1 and `refused` tells whether the peer refused the connection.
struct Connected {
  int fd = -1;
  bool refused = false;
  bool timed_out = false;
  std::string error;
};
Connected connect_with_timeout(const std::string& host, int port,
                               std::chrono::milliseconds timeout);

}  // namespace raftlock::raft::transport
