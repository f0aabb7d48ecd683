// floor_bench — this machine's floor for one contended lock handoff: the least a 3-node service
// that makes each handoff durable on two nodes can spend per handoff here, measured with nothing
// of a real service in the way.
//
// A handoff is one commit plus one client round trip: the holder's release must be durable on a
// majority before the next waiter is answered, and that waiter's release comes only after its
// answer. floor_bench runs exactly that chain and nothing else, with the benchmark clusters'
// shape: three single-threaded "nodes" (processes) and one client on loopback TCP (TCP_NODELAY).
// The client sends a 64-byte request; the leader sends it to both followers, appends a WAL-frame
// sized record (24 + 4096 bytes, two pwrite()s, as SQLite writes one page of a WAL) to its own
// file and fdatasync()s it; each follower does the same and acknowledges; the leader answers once
// its own write and the first acknowledgement are in (a majority of three); the client sends the
// next request at once. Files are preallocated and overwritten, as a WAL is after its first
// checkpoint. No HTTP, no JSON, no Raft state, no threads: what remains is the disk and the kernel.
//
// bench/compare.sh runs it next to each contended round, so every run shows how close the two
// systems come to the machine as it was in that minute (the disk's flush time drifts by 2x).
//
//   floor_bench [--duration S] [--dir D] [--port-base P] [--no-disk]
//               [--results FILE --round N]
//
// Prints handoffs/s and the handoff p50/p99; --results appends one JSON line in lockbench's
// format (system "floor", scenario "contended", metric handoffs_per_s) for lockbench report.
// --no-disk skips the writes: what the network and the wake-ups alone cost.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMessageBytes = 64;
constexpr size_t kFrameHeaderBytes = 24;
constexpr size_t kPageBytes = 4096;
constexpr size_t kFrameBytes = kFrameHeaderBytes + kPageBytes;
constexpr long kFrames = 1000;  // SQLite's default WAL size before a checkpoint: 1,000 pages

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "floor_bench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::_Exit(1);
}

void no_delay(int sock) {
  int one = 1;
  if (::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die("TCP_NODELAY");
}

sockaddr_in loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

int listen_on(int port) {
  int sock = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address = loopback(port);
  if (::bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    die("cannot listen on 127.0.0.1:" + std::to_string(port));
  if (::listen(sock, 4) != 0) die("listen");
  return sock;
}

int accept_one(int listener) {
  int sock = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (sock < 0) die("accept");
  no_delay(sock);
  ::close(listener);
  return sock;
}

int connect_to(int port) {
  const auto give_up = Clock::now() + std::chrono::seconds(10);
  while (true) {
    int sock = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = loopback(port);
    if (::connect(sock, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
      no_delay(sock);
      return sock;
    }
    ::close(sock);
    if (Clock::now() > give_up) die("cannot connect to 127.0.0.1:" + std::to_string(port));
    ::usleep(5000);
  }
}

// Whole messages only; false when the peer closed, failed or (SO_RCVTIMEO) went quiet.
bool receive_message(int sock, char* buffer) {
  size_t got = 0;
  while (got < kMessageBytes) {
    ssize_t n = ::recv(sock, buffer + got, kMessageBytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

bool send_message(int sock, const char* buffer) {
  return ::send(sock, buffer, kMessageBytes, MSG_NOSIGNAL) == static_cast<ssize_t>(kMessageBytes);
}

// In a node: a peer that closed means the run is over, and the node ends quietly.
void receive(int sock, char* buffer) {
  if (!receive_message(sock, buffer)) std::_Exit(0);
}
void send_to(int sock, const char* buffer) {
  if (!send_message(sock, buffer)) std::_Exit(0);
}

// Each node's writes, summed where the parent can read them (shared memory made before the fork):
// the floor's own mean write, to set next to raftlock's (bench/compare.sh prints both, and the
// time per handoff beyond each system's own write compares the two across disk windows).
struct WriteStats {
  std::atomic<long long> nanoseconds{0};
  std::atomic<long long> writes{0};
};
static_assert(std::atomic<long long>::is_always_lock_free);

// One node's log file: preallocated, then one frame per write, overwritten round robin.
class Log {
 public:
  Log(const std::string& path, bool enabled, WriteStats* stats) : enabled_(enabled), stats_(stats) {
    if (!enabled_) return;
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) die("cannot create " + path);
    std::vector<char> zeros(kFrameBytes * kFrames, 0);
    if (::pwrite(fd_, zeros.data(), zeros.size(), 0) != static_cast<ssize_t>(zeros.size()))
      die("cannot preallocate " + path);
    if (::fsync(fd_) != 0) die("fsync " + path);
    frame_.assign(kFrameBytes, 'x');
  }
  void append() {
    if (!enabled_) return;
    const off_t at = static_cast<off_t>(next_ % kFrames) * static_cast<off_t>(kFrameBytes);
    ++next_;
    const auto started = Clock::now();
    if (::pwrite(fd_, frame_.data(), kFrameHeaderBytes, at) < 0 ||
        ::pwrite(fd_, frame_.data() + kFrameHeaderBytes, kPageBytes,
                 at + static_cast<off_t>(kFrameHeaderBytes)) < 0 ||
        ::fdatasync(fd_) != 0)
      die("write");
    stats_->nanoseconds +=
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started).count();
    ++stats_->writes;
  }

 private:
  bool enabled_;
  WriteStats* stats_;
  int fd_ = -1;
  long next_ = 0;
  std::vector<char> frame_;
};

[[noreturn]] void run_follower(int port, const std::string& file, bool disk, WriteStats* stats) {
  Log log(file, disk, stats);
  int leader = accept_one(listen_on(port));
  char message[kMessageBytes];
  while (true) {
    receive(leader, message);
    log.append();
    send_to(leader, message);
  }
}

[[noreturn]] void run_leader(int port, int follower_port, const std::string& file, bool disk,
                             WriteStats* stats) {
  Log log(file, disk, stats);
  const int followers[2] = {connect_to(follower_port), connect_to(follower_port + 1)};
  int client = accept_one(listen_on(port));
  char message[kMessageBytes];
  char ack[kMessageBytes];
  long unacknowledged[2] = {0, 0};  // requests sent to each follower and not acknowledged yet
  while (true) {
    receive(client, message);
    for (int i = 0; i < 2; ++i) {
      send_to(followers[i], message);
      ++unacknowledged[i];
    }
    log.append();
    // Committed once a follower has acknowledged this request (with the leader's own write: two
    // of three). Acknowledgements of the other follower are read as they come.
    bool committed = false;
    while (!committed) {
      pollfd fds[2] = {{followers[0], POLLIN, 0}, {followers[1], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0 && errno != EINTR) die("poll");
      for (int i = 0; i < 2; ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        receive(followers[i], ack);
        if (--unacknowledged[i] == 0) committed = true;
      }
    }
    send_to(client, message);
  }
}

double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(q * sorted.size()))];
}

int usage() {
  std::fprintf(stderr,
               "usage: floor_bench [--duration S] [--dir D] [--port-base P] [--no-disk]\n"
               "                   [--results FILE --round N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 5;
  std::string dir = std::filesystem::temp_directory_path().string();
  int port_base = 27390;
  bool disk = true;
  std::string results;
  int round = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--duration" && has_value) {
      seconds = std::atof(argv[++i]);
    } else if (arg == "--dir" && has_value) {
      dir = argv[++i];
    } else if (arg == "--port-base" && has_value) {
      port_base = std::atoi(argv[++i]);
    } else if (arg == "--results" && has_value) {
      results = argv[++i];
    } else if (arg == "--round" && has_value) {
      round = std::atoi(argv[++i]);
    } else if (arg == "--no-disk") {
      disk = false;
    } else {
      return usage();
    }
  }
  if (!(seconds > 0) || port_base <= 0 || port_base > 65530 || round < 1) return usage();
  const std::string work = dir + "/floor_bench." + std::to_string(::getpid());
  std::filesystem::create_directories(work);

  // One per node: leader, follower 1, follower 2.
  void* shared = ::mmap(nullptr, 3 * sizeof(WriteStats), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) die("mmap");
  auto* stats = new (shared) WriteStats[3];
  std::vector<pid_t> nodes;
  auto start = [&](auto body) {
    pid_t pid = ::fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a parent that gives up takes its nodes with it
      body();
    }
    nodes.push_back(pid);
  };
  const int leader_port = port_base;
  const int follower_port = port_base + 1;
  start([&] { run_follower(follower_port, work + "/follower1", disk, &stats[1]); });
  start([&] { run_follower(follower_port + 1, work + "/follower2", disk, &stats[2]); });
  start([&] { run_leader(leader_port, follower_port, work + "/leader", disk, &stats[0]); });

  const int leader = connect_to(leader_port);
  // The leader answers within milliseconds; one that does not in 10 s is not ours, or is stuck.
  timeval patience{10, 0};
  ::setsockopt(leader, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
  char message[kMessageBytes] = {};
  bool answered = true;
  std::vector<double> us;
  us.reserve(1 << 16);
  const auto began = Clock::now();
  const auto end = began + std::chrono::duration<double>(seconds);
  for (auto now = began; now < end;) {
    if (!send_message(leader, message) || !receive_message(leader, message)) {
      answered = false;
      break;
    }
    const auto done = Clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(done - now).count());
    now = done;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - began).count();
  ::close(leader);
  // A node that failed (a port taken, a write refused: it said why) exited with status 1, and
  // the chain ran without it: the figure would not be the floor. The others end when their peer
  // closes (status 0) or on SIGTERM.
  bool failed = !answered;
  for (pid_t pid : nodes) ::kill(pid, SIGTERM);
  for (pid_t pid : nodes) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    failed |= (WIFEXITED(status) && WEXITSTATUS(status) != 0) ||
              (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM);
  }
  std::filesystem::remove_all(work);
  if (failed) {
    std::fprintf(stderr, "floor_bench: a node failed during the run; no result\n");
    return 1;
  }

  const double rate = static_cast<double>(us.size()) / elapsed;
  std::sort(us.begin(), us.end());
  std::printf("floor%s: %.0f handoffs/s (%.3f ms per handoff), handoff p50 %.0f us, p99 %.0f us\n",
              disk ? "" : " without the disk", rate, 1e3 / rate, quantile(us, 0.5),
              quantile(us, 0.99));
  if (disk) {
    // Mean write (two pwrite()s and the fdatasync()) per node, and the rest of a handoff beyond
    // their mean: what the chain costs besides the disk in this minute.
    double sum = 0;
    std::string per_node;
    for (int i = 0; i < 3; ++i) {
      const long long writes = stats[i].writes;
      const double ms =
          writes > 0 ? static_cast<double>(stats[i].nanoseconds) / 1e6 / static_cast<double>(writes)
                     : 0;
      sum += ms;
      char text[32];
      std::snprintf(text, sizeof text, "%s%.3f", i == 0 ? "" : "/", ms);
      per_node += text;
    }
    std::printf(
        "floor: mean write per node %s ms (leader first); %.3f ms per handoff, %.3f beyond "
        "the mean write\n",
        per_node.c_str(), 1e3 / rate, 1e3 / rate - sum / 3);
  }
  if (!results.empty()) {
    // The shape of lockbench's own result documents (bench/lockbench/scenarios.cpp).
    const nlohmann::json result = {
        {"system", "floor"},
        {"scenario", "contended"},
        {"round", round},
        {"errors", nlohmann::json::object()},
        {"metrics",
         {{{"name", "handoffs_per_s"}, {"unit", "1/s"}, {"better", "higher"}, {"value", rate}}}}};
    std::ofstream out(results, std::ios::app);
    out << result.dump() << "\n";
    if (!out) {
      std::fprintf(stderr, "floor_bench: cannot append to %s\n", results.c_str());
      return 1;
    }
  }
  return 0;
}
