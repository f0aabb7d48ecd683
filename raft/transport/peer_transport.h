// PeerTransport: carries Raft messages between nodes over HTTP (msgpack bodies) on the peer port.
//
// Sending never blocks the caller: send() only appends to a bounded per-peer queue. One sender
// thread per peer drains its queue in batches (one POST in flight per peer, the next batch as
// soon as the previous one is answered) over a keep-alive connection. Snapshots go through a
// separate per-peer thread in checksummed chunks, so they never hold up ordinary messages. A slow,
// paused or dead peer only ever affects its own queue: its messages are dropped (Raft retries),
// on_unreachable fires, and the sender backs off exponentially with jitter.
//
// Receiving: an httplib server validates every body (protocol version, cluster id, known sender,
// recipient) and hands the surviving messages to on_messages. Anything dropped is counted by
// reason and logged at most once per second per reason.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "raft/loop_inbox.h"
#include "raft/types.h"

namespace httplib {
class Server;
}

namespace raftlock::raft::transport {

class BufferedSocketStream;

// Why a message (or a whole body) was dropped instead of being sent or delivered.
enum class DropReason : uint8_t {
  kMalformed = 0,     // received bytes that do not decode (or another protocol version)
  kWrongCluster,      // received from a node of another cluster
  kUnknownSender,     // received from a node id this transport has no peer entry for
  kWrongRecipient,    // received a message whose `to` is not this node
  kUnknownPeer,       // asked to send to a node id with no peer address
  kQueueFull,         // the peer's queue exceeded max_queue_bytes: oldest messages dropped
  kPeerUnreachable,   // the send failed, or the peer is backing off after a failure
  kNotRunning,        // send() before start() or after stop()
  kSnapshotRejected,  // a snapshot transfer failed (I/O, checksum, out-of-order chunk)
  kCount,
};

const char* drop_reason_name(DropReason reason);

struct PeerTransportOptions {
  NodeId self = kNoNode;
  std::string cluster_id;
  std::string listen_addr = "127.0.0.1:7080";   // "host:port"; port 0 picks a free port
  std::map<NodeId, std::string> peers;          // id -> "host:port"; an entry for self is ignored
  size_t max_queue_bytes = 16u << 20;           // per peer, estimated encoded size
  size_t max_batch_bytes = 1u << 20;            // per POST (a larger single message goes alone)
  size_t snapshot_chunk_bytes = 1u << 20;       // snapshot data per POST
  size_t max_request_bytes = 64u << 20;         // largest body the server accepts
  size_t max_snapshot_bytes = size_t{4} << 30;  // largest snapshot the server reassembles
  std::chrono::milliseconds connect_timeout{200};
  std::chrono::milliseconds request_timeout{2000};  // socket read and write timeouts
  std::chrono::milliseconds backoff_min{50};
  std::chrono::milliseconds backoff_max{1000};
  size_t server_threads = 0;  // 0: sized from the number of peers
};

// Counters for one peer (a snapshot of atomics; fields are independent, not one instant).
struct PeerStats {
  NodeId id = kNoNode;
  std::string address;
  uint64_t sent_messages = 0;
  uint64_t sent_bytes = 0;  // encoded body bytes acknowledged by the peer
  uint64_t sent_batches = 0;
  uint64_t received_messages = 0;
  uint64_t received_bytes = 0;
  uint64_t send_failures = 0;  // POSTs that failed (connection, timeout or non-2xx answer)
  uint64_t snapshots_sent = 0;
  uint64_t snapshots_failed = 0;
  uint64_t queued_messages = 0;
  uint64_t queued_bytes = 0;
  bool backing_off = false;
  bool streaming = false;  // a message stream is open (false: none yet, or POSTs to an older node)
};

struct TransportStats {
  std::vector<PeerStats> peers;  // sorted by id
  std::array<uint64_t, static_cast<size_t>(DropReason::kCount)> dropped{};

  uint64_t dropped_for(DropReason reason) const { return dropped[static_cast<size_t>(reason)]; }
  const PeerStats* peer(NodeId id) const;
};

class PeerTransport {
 public:
  // Called with the messages of one received batch (or one reassembled snapshot). Runs on a
  // transport thread, never concurrently with itself; it must be cheap (enqueue and return).
  using MessageHandler = std::function<void(std::vector<Message>)>;
  // A send to this peer failed (the runtime reports the peer unreachable to the core).
  using UnreachableHandler = std::function<void(NodeId)>;
  // A snapshot send to this peer finished: delivered (true) or failed (false).
  using SnapshotStatusHandler = std::function<void(NodeId, bool)>;

  PeerTransport(PeerTransportOptions options, MessageHandler on_messages,
                UnreachableHandler on_unreachable = {},
                SnapshotStatusHandler on_snapshot_status = {});
  ~PeerTransport();

  PeerTransport(const PeerTransport&) = delete;
  PeerTransport& operator=(const PeerTransport&) = delete;

  // Binds the peer port and starts the server and sender threads. A taken port, a bad address or
  // a second start() yields an error before any thread is spawned.
  Status start();
  // Stops the server and every sender promptly (well within a second, hung peers included).
  // Queued messages are dropped. Idempotent; also done by the destructor.
  void stop();

  // Adds the caller's own handlers to the peer server (e.g. requests forwarded to the leader).
  // Must be called before start(); the installer runs once, inside start().
  using RouteInstaller = std::function<void(httplib::Server&)>;
  void set_route_installer(RouteInstaller installer) { route_installer_ = std::move(installer); }

  // The port actually bound (useful with port 0); 0 before start().
  int listen_port() const { return listen_port_.load(); }

  // Queues messages for their `to` peers and returns at once; never blocks on I/O.
  void send(std::vector<Message> messages);

  // Adds a peer or changes its address (reconnects). Ignored for self; a malformed address is
  // refused with kInvalidArgument.
  Status set_peer(NodeId id, const std::string& address);
  // Forgets a peer: its queue is dropped and its threads wind down in the background.
  void remove_peer(NodeId id);

  TransportStats stats() const;
  // True while a message stream to `id` is open (so it runs a version that knows streams).
  bool streaming_to(NodeId id) const;

  // Incoming message streams can be read by a node's loop itself (Node::set_inbox) instead of a
  // transport thread each. Until the node attaches (and after it detaches) they are read by
  // transport threads and handed to on_messages.
  LoopInbox* loop_inbox();

 private:
  class Inbox;
  struct Peer;
  struct Counters;
  struct SnapshotAssembly;
  class RateLimitedLog;

  std::shared_ptr<Peer> make_peer(NodeId id, const std::string& address);
  void start_peer(const std::shared_ptr<Peer>& peer);
  void retire_peer(std::shared_ptr<Peer> peer);
  void reap_retired_peers(bool wait);
  void run_message_sender(Peer& peer);
  enum class StreamWrite { kWritten, kWaiting, kOverflow, kBroken };
  StreamWrite write_to_stream(Peer& peer, const std::vector<Message>& messages);
  std::vector<Message> take_batch(Peer& peer);
  void close_stream(Peer& peer);
  void post_batch(Peer& peer, const std::vector<Message>& batch);
  void fail_send(Peer& peer, uint64_t lost, const std::string& why);
  void count_sent(Peer& peer, size_t bytes, uint64_t messages);
  // The receiving end of a message stream (a StreamServer takeover, on the connection's thread):
  // true when it handed the socket to the loop inbox.
  bool serve_stream(BufferedSocketStream& stream);
  void run_snapshot_sender(Peer& peer);
  bool send_snapshot(Peer& peer, const Message& message);
  void backoff(Peer& peer);

  // Server handlers: the HTTP status to answer with and, for an error, a one-line reason.
  struct Reply {
    int status = 204;
    std::string reason;
  };
  Reply handle_messages_body(const std::string& body);
  // Validates a batch body (counting what it drops, by reason) and appends what it accepts.
  Reply accept_batch(std::string_view body, std::vector<Message>& accepted);
  Reply reject(DropReason reason, uint64_t count, std::string detail, int status);
  Reply handle_snapshot_body(const std::string& body);
  std::shared_ptr<Peer> find_peer(NodeId id) const;
  void drop(DropReason reason, uint64_t count, const std::string& detail);
  void deliver(std::vector<Message> messages);

  const PeerTransportOptions options_;
  const MessageHandler on_messages_;
  const UnreachableHandler on_unreachable_;
  const SnapshotStatusHandler on_snapshot_status_;
  RouteInstaller route_installer_;

  mutable std::shared_mutex peers_mutex_;
  std::map<NodeId, std::shared_ptr<Peer>> peers_;
  std::vector<std::shared_ptr<Peer>> retired_peers_;  // guarded by peers_mutex_

  std::unique_ptr<Counters> counters_;
  std::unique_ptr<Inbox> inbox_;
  std::unique_ptr<RateLimitedLog> drop_log_;

  std::mutex deliver_mutex_;  // on_messages never runs concurrently with itself

  std::mutex assembly_mutex_;
  std::map<NodeId, std::unique_ptr<SnapshotAssembly>> assemblies_;  // by sender

  std::mutex lifecycle_mutex_;  // start/stop
  std::atomic<bool> running_{false};
  std::atomic<bool> started_once_{false};
  std::atomic<int> listen_port_{0};
  std::unique_ptr<httplib::Server> server_;
  std::thread server_thread_;
};

}  // namespace raftlock::raft::transport
