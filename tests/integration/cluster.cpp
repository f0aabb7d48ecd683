#include "tests/integration/cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace raftlock::testing {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

HttpReply http_request(int port, const std::string& method, const std::string& path,
                       const std::string& body, std::chrono::milliseconds timeout,
                       const std::map<std::string, std::string>& headers) {
  httplib::Client client("127.0.0.1", port);
  // Keep-alive, as real clients: httplib's one-shot default sends "Connection: close", and a
  // request that closes its connection is answered on its thread instead of later from the Raft
  // loop (StreamServer::defer_answer), so the contract tests would miss the path clients take.
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  client.set_connection_timeout(std::chrono::milliseconds(500));
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  httplib::Headers h(headers.begin(), headers.end());
  httplib::Result result =
      method == "GET"      ? client.Get(path, h)
      : method == "DELETE" ? (body.empty() ? client.Delete(path, h)
                                           : client.Delete(path, h, body, "application/json"))
      : method == "PUT"    ? client.Put(path, h, body, "application/json")
      : method == "PATCH"  ? client.Patch(path, h, body, "application/json")
                           : (body.empty() ? client.Post(path, h, "", "application/json")
                                           : client.Post(path, h, body, "application/json"));
  HttpReply reply;
  if (!result) return reply;
  reply.status = result->status;
  reply.raw = result->body;
  for (const auto& [k, v] : result->headers) reply.headers[k] = v;
  reply.body = Json::parse(result->body, nullptr, false);
  if (reply.body.is_discarded()) reply.body = nullptr;
  return reply;
}

int free_port() {
  // Below the kernel's ephemeral range (32768+), so an outgoing connection can never take a port
  // a stopped node will listen on again; random so parallel test processes rarely collide.
  static std::mutex mu;
  static std::set<int> handed_out;
  static std::mt19937 rng(std::random_device{}());
  std::lock_guard lock(mu);
  while (true) {
    const int port = 20000 + static_cast<int>(rng() % 12000);
    if (handed_out.count(port)) continue;
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    if (!free) continue;
    handed_out.insert(port);
    return port;
  }
}

std::string raftlockd_path() {
  if (const char* env = std::getenv("RAFTLOCKD")) return env;
#ifdef RAFTLOCKD_PATH
  return RAFTLOCKD_PATH;
#else
  return "raftlockd";
#endif
}

namespace {

pid_t spawn(const std::vector<std::string>& args, int stderr_fd,
            const std::map<std::string, std::string>& env = {}) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    const int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(stderr_fd, 2);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

// Waits for `pid` up to `timeout`: exit code, -signal, or nullopt on timeout.
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return -WTERMSIG(status);
      return -1;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

}  // namespace

Cluster::Cluster(int size, ClusterOptions options) : options_(std::move(options)) {
  char templ[] = "/tmp/raftlock-it-XXXXXX";
  root_ = ::mkdtemp(templ);
  for (int id = 1; id <= size; ++id) {
    NodeProcess node;
    node.id = id;
    node.client_port = free_port();
    node.peer_port = free_port();
    node.data_dir = root_ + "/node" + std::to_string(id);
    nodes_[id] = node;
  }
}

Cluster::~Cluster() {
  for (auto& [id, node] : nodes_) {
    if (node.pid > 0) {
      ::kill(node.pid, SIGCONT);
      ::kill(node.pid, SIGKILL);
      wait_exit(node.pid, 5s);
      node.pid = -1;
    }
  }
  if (::testing::Test::HasFailure()) dump_logs();
  std::error_code ec;
  fs::remove_all(root_, ec);
}

std::vector<int> Cluster::ids() const {
  std::vector<int> out;
  for (const auto& [id, node] : nodes_) out.push_back(id);
  return out;
}

std::string Cluster::initial_cluster() const {
  std::string out;
  for (const auto& [id, node] : nodes_) {
    if (!out.empty()) out += ",";
    auto advertised = options_.advertised_peer_port.find(id);
    const int port =
        advertised == options_.advertised_peer_port.end() ? node.peer_port : advertised->second;
    out += std::to_string(id) + "=127.0.0.1:" + std::to_string(port);
  }
  return out;
}

void Cluster::start_all() {
  for (const auto& [id, node] : nodes_) start(id);
}

void Cluster::start(int id) {
  NodeProcess& node = nodes_.at(id);
  if (node.pid > 0) return;
  std::vector<std::string> args = {raftlockd_path(),
                                   "--id",
                                   std::to_string(id),
                                   "--data-dir",
                                   node.data_dir,
                                   "--client-addr",
                                   "127.0.0.1:" + std::to_string(node.client_port),
                                   "--peer-addr",
                                   "127.0.0.1:" + std::to_string(node.peer_port),
                                   "--initial-cluster",
                                   initial_cluster(),
                                   "--heartbeat-ms",
                                   std::to_string(options_.heartbeat_ms),
                                   "--election-timeout-ms",
                                   std::to_string(options_.election_timeout_ms),
                                   "--snapshot-every",
                                   std::to_string(options_.snapshot_every),
                                   "--log-level",
                                   "debug"};
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  const int log_fd = ::open(log_path(id).c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  node.pid = spawn(args, log_fd);
  ::close(log_fd);
  // Wait until it serves (or died).
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {
    if (http_request(node.client_port, "GET", "/healthz", "", 500ms).status == 200) return;
    int status = 0;
    if (::waitpid(node.pid, &status, WNOHANG) == node.pid) {
      node.pid = -1;
      ADD_FAILURE() << "raftlockd node " << id << " exited during start";
      return;
    }
    std::this_thread::sleep_for(10ms);
  }
  ADD_FAILURE() << "raftlockd node " << id << " did not serve /healthz within 10 s";
}

void Cluster::kill(int id, int signal) {
  NodeProcess& node = nodes_.at(id);
  if (node.pid <= 0) return;
  ::kill(node.pid, SIGCONT);
  ::kill(node.pid, signal);
  wait_exit(node.pid, 10s);
  node.pid = -1;
}

int Cluster::terminate(int id, std::chrono::milliseconds timeout) {
  NodeProcess& node = nodes_.at(id);
  if (node.pid <= 0) return -1;
  ::kill(node.pid, SIGTERM);
  auto code = wait_exit(node.pid, timeout);
  if (!code) {
    ::kill(node.pid, SIGKILL);
    wait_exit(node.pid, 5s);
    node.pid = -1;
    return -1000;  // did not stop in time
  }
  node.pid = -1;
  return *code;
}

namespace {

// True once every thread of `pid` is stopped. kill(SIGSTOP) returns before that: the group stop
// starts only when one of the process's threads next runs, and on a busy machine the others can
// go on serving (answering a heartbeat, say) for milliseconds after kill() returned.
bool all_threads_stopped(pid_t pid) {
  std::error_code error;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks, error)) {
    std::ifstream stat(task.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const size_t paren = text.rfind(')');
    if (paren == std::string::npos || paren + 2 >= text.size()) return false;
    const char state = text[paren + 2];
    if (state != 'T' && state != 't') return false;
  }
  return !error;
}

}  // namespace

void Cluster::pause(int id) {
  const pid_t pid = nodes_.at(id).pid;
  ::kill(pid, SIGSTOP);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!all_threads_stopped(pid)) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "node " << id << " (pid " << pid << ") did not stop within 5 s of SIGSTOP";
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}
void Cluster::resume(int id) {
  ::kill(nodes_.at(id).pid, SIGCONT);
}

Json Cluster::status(int id) {
  auto reply = request(id, "GET", "/v1/status", nullptr, 2s);
  return reply.status == 200 ? reply.body : Json(nullptr);
}

std::optional<int> Cluster::wait_for_leader(std::chrono::milliseconds timeout,
                                            const std::vector<int>& among) {
  const auto deadline = Clock::now() + timeout;
  const std::vector<int> candidates = among.empty() ? ids() : among;
  while (Clock::now() < deadline) {
    std::optional<int> agreed;
    bool ok = true;
    int leaders = 0;
    for (int id : candidates) {
      if (!running(id)) continue;
      Json s = status(id);
      if (s.is_null() || s["leader_id"].is_null()) {
        ok = false;
        break;
      }
      const int leader = s["leader_id"].get<int>();
      if (s["role"] == "leader") ++leaders;
      if (agreed && *agreed != leader) ok = false;
      agreed = leader;
    }
    if (ok && agreed && leaders == 1 && running(*agreed)) return agreed;
    std::this_thread::sleep_for(20ms);
  }
  return std::nullopt;
}

bool Cluster::wait_for_applied(uint64_t index, std::chrono::milliseconds timeout,
                               const std::vector<int>& among) {
  const auto deadline = Clock::now() + timeout;
  const std::vector<int> candidates = among.empty() ? ids() : among;
  while (Clock::now() < deadline) {
    bool all = true;
    for (int id : candidates) {
      if (!running(id)) continue;
      Json s = status(id);
      if (s.is_null() || s["applied_index"].get<uint64_t>() < index) all = false;
    }
    if (all) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

HttpReply Cluster::request(int id, const std::string& method, const std::string& path,
                           const Json& body, std::chrono::milliseconds timeout) {
  return http_request(client_port(id), method, path, body.is_null() ? "" : body.dump(), timeout);
}

void Cluster::dump_logs(size_t last_lines) const {
  for (const auto& [id, node] : nodes_) {
    std::ifstream in(log_path(id));
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    std::cerr << "---- last " << last_lines << " log lines of node " << id << " ----\n";
    for (size_t i = lines.size() > last_lines ? lines.size() - last_lines : 0; i < lines.size();
         ++i) {
      std::cerr << lines[i] << "\n";
    }
  }
}

ProcessOutcome run_raftlockd(const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout,
                             const std::map<std::string, std::string>& env) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  std::vector<std::string> argv = {raftlockd_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = spawn(argv, fds[1], env);
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  ProcessOutcome outcome;
  const auto deadline = Clock::now() + timeout;
  std::optional<int> code;
  char buffer[4096];
  while (true) {
    ssize_t n;
    while ((n = ::read(fds[0], buffer, sizeof(buffer))) > 0) outcome.stderr_text.append(buffer, n);
    code = wait_exit(pid, 0ms);
    if (code) break;
    if (Clock::now() >= deadline) {
      outcome.timed_out = true;
      ::kill(pid, SIGKILL);
      code = wait_exit(pid, 5s);
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  ssize_t n;
  while ((n = ::read(fds[0], buffer, sizeof(buffer))) > 0) outcome.stderr_text.append(buffer, n);
  ::close(fds[0]);
  outcome.exit_code = code.value_or(-1);
  return outcome;
}

}  // namespace raftlock::testing
