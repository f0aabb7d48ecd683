// chaos::NetworkRules and chaos::PeerProxy — a fault-injecting proxy in front of each node's peer
// port: every peer request names its sender (X-Raftlock-From), and the rule for the ordered link
// (sender -> this node) passes it, delays it, or drops it (the sender sees a failure). A message
// stream (raft/transport/peer_stream.h) is relayed frame by frame, the rule applied to each frame:
// a cut link loses frames silently, a slow one delivers them later, in order.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <utility>

namespace raftlock::raft::transport {
class StreamServer;
class BufferedSocketStream;
}  // namespace raftlock::raft::transport

namespace httplib {
class Client;
}

namespace raftlock::chaos {

class StreamRelay;

// The fault on one ordered link (from -> to).
struct LinkRule {
  bool cut = false;      // drop every request
  int delay_min_ms = 0;  // added delay before forwarding, uniform in [min, max]
  int delay_max_ms = 0;
};

// What the proxies apply: a rule per ordered link, changed by the nemesis at any time.
class NetworkRules {
 public:
  void heal();  // every link passes
  void set(int from, int to, LinkRule rule);
  void cut(int from, int to);
  // Cuts every link between the two sides, both ways.
  void split(const std::set<int>& side_a, const std::set<int>& side_b);
  void slow_all(const std::set<int>& nodes, int delay_min_ms, int delay_max_ms);
  LinkRule rule(int from, int to) const;
  int random_delay_ms(const LinkRule& rule);

  // Counters for the run's statistics.
  std::atomic<uint64_t> passed{0};
  std::atomic<uint64_t> delayed{0};
  std::atomic<uint64_t> dropped{0};

 private:
  mutable std::mutex mu_;
  std::map<std::pair<int, int>, LinkRule> rules_;
  std::mt19937 rng_{12345};
};

class PeerProxy {
 public:
  // Forwards what arrives for node `to` to 127.0.0.1:target_port (set before start()).
  PeerProxy(int to, std::shared_ptr<NetworkRules> rules);
  ~PeerProxy();
  PeerProxy(const PeerProxy&) = delete;
  PeerProxy& operator=(const PeerProxy&) = delete;

  // Binds a free port on 127.0.0.1 (retrying other ports if one was taken meanwhile); 0 on failure.
  int bind_free_port();
  void set_target(int target_port) { target_port_ = target_port; }
  void start();  // serves on the bound port
  // Ends every request and stream promptly (also with frames waiting out a delay, or a target
  // node that is paused or dead) and stops serving. The proxy cannot be started again.
  void stop();

  // The largest stream frame relayed; a larger announced frame closes the stream.
  static constexpr size_t kMaxFrameBytes = 256 * 1024 * 1024;

 private:
  // Relays one message stream: the handshake with the target, then the frames.
  void serve_stream(raft::transport::BufferedSocketStream& sender);
  // Tracks a relay while it runs so stop() can close it; false (not tracked) when stopping.
  bool track(StreamRelay* relay);
  void untrack(StreamRelay* relay);
  // Waits `ms` or until stop(); false when stopping.
  bool pause_unless_stopping(int ms);
  void close_all_streams();

  int to_;
  int listen_port_ = 0;
  int target_port_ = 0;
  std::shared_ptr<NetworkRules> rules_;
  std::unique_ptr<raft::transport::StreamServer> server_;
  std::thread thread_;

  std::mutex mu_;  // guards what follows
  std::condition_variable stopping_cv_;
  bool stopping_ = false;
  std::set<StreamRelay*> streams_;
  std::set<httplib::Client*> forwarding_;  // clients with a request to the target in flight
};

}  // namespace raftlock::chaos
