// Durable-node behaviour with real raftlockd processes: failover, crash recovery, snapshots,
// quorum loss, refusal of damaged data dirs, and a paused follower.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "tests/integration/cluster.h"

namespace raftlock::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// One long-lived lease (1 h) so expiry never interferes; returns its id.
uint64_t make_lease(Cluster& cluster, int node, uint64_t lease_id) {
  auto reply =
      cluster.request(node, "POST", "/v1/leases", {{"lease_id", lease_id}, {"ttl_ms", 3600000}});
  EXPECT_TRUE(reply.status == 201 || reply.status == 200) << reply.raw;
  return lease_id;
}

// Acquires lock `name` for `lease`; returns the fencing token, or 0 when not acknowledged.
uint64_t acquire(Cluster& cluster, int node, const std::string& name, uint64_t lease,
                 std::chrono::milliseconds timeout = 10s) {
  auto reply = cluster.request(node, "POST", "/v1/locks/" + name + "/acquire",
                               {{"lease_id", lease}, {"owner", "it"}}, timeout);
  if (reply.status != 200) return 0;
  return reply.body["fencing_token"].get<uint64_t>();
}

// The lock as one node sees it locally (stale read: no quorum needed).
Json local_lock(Cluster& cluster, int node, const std::string& name) {
  auto reply = cluster.request(node, "GET", "/v1/locks/" + name + "?consistency=stale");
  return reply.status == 200 ? reply.body : Json(nullptr);
}

uint64_t commit_index(Cluster& cluster, int node) {
  Json s = cluster.status(node);
  return s.is_null() ? 0 : s["commit_index"].get<uint64_t>();
}

TEST(Node, ThreeNodesElectALeaderAndSurviveItsDeath) {
  Cluster cluster(3);
  cluster.start_all();
  auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const uint64_t lease = make_lease(cluster, *leader, 1001);
  const uint64_t first_token = acquire(cluster, *leader, "failover-a", lease);
  ASSERT_GT(first_token, 0u);

  cluster.kill(*leader);
  std::vector<int> survivors;
  for (int id : cluster.ids()) {
    if (id != *leader) survivors.push_back(id);
  }
  auto new_leader = cluster.wait_for_leader(15s, survivors);
  ASSERT_TRUE(new_leader.has_value());
  ASSERT_NE(*new_leader, *leader);
  // The new leader serves writes, and the lock taken before is still held with its token.
  const uint64_t second_token = acquire(cluster, survivors[0], "failover-b", lease);
  ASSERT_GT(second_token, first_token);
  Json held = local_lock(cluster, *new_leader, "failover-a");
  ASSERT_FALSE(held.is_null());
  EXPECT_EQ(held["fencing_token"], first_token);

  // The killed node restarts and catches up.
  cluster.start(*leader);
  const uint64_t target = commit_index(cluster, *new_leader);
  ASSERT_TRUE(cluster.wait_for_applied(target, 15s, {*leader}));
  Json caught_up = local_lock(cluster, *leader, "failover-b");
  ASSERT_FALSE(caught_up.is_null());
  EXPECT_EQ(caught_up["fencing_token"], second_token);
}

TEST(Node, EveryAcknowledgedWriteSurvivesKillingAllNodesMidLoad) {
  Cluster cluster(3);
  cluster.start_all();
  auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const uint64_t lease = make_lease(cluster, *leader, 2002);

  // Three writers, one per node, each acquiring fresh locks until told to stop.
  std::mutex mu;
  std::map<std::string, uint64_t> acknowledged;  // lock -> token
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int node : cluster.ids()) {
    writers.emplace_back([&, node] {
      for (int i = 0; !stop; ++i) {
        const std::string name = "durable-" + std::to_string(node) + "-" + std::to_string(i);
        const uint64_t token = acquire(cluster, node, name, lease, 3s);
        if (token > 0) {
          std::lock_guard lock(mu);
          acknowledged[name] = token;
        }
      }
    });
  }
  // Let the load run, then SIGKILL every node at once while requests are in flight.
  const auto until = Clock::now() + 5s;
  while (Clock::now() < until) {
    {
      std::lock_guard lock(mu);
      if (acknowledged.size() >= 150) break;
    }
    std::this_thread::sleep_for(20ms);
  }
  for (int id : cluster.ids()) cluster.kill(id);
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_GE(acknowledged.size(), 20u) << "the load made too little progress to mean anything";

  cluster.start_all();
  auto restarted_leader = cluster.wait_for_leader();
  ASSERT_TRUE(restarted_leader.has_value());
  const uint64_t target = commit_index(cluster, *restarted_leader);
  ASSERT_TRUE(cluster.wait_for_applied(target, 15s));
  for (int node : cluster.ids()) {
    for (const auto& [name, token] : acknowledged) {
      Json view = local_lock(cluster, node, name);
      ASSERT_FALSE(view.is_null()) << name;
      ASSERT_TRUE(view["held"].get<bool>()) << "node " << node << " lost acknowledged " << name;
      ASSERT_EQ(view["fencing_token"], token) << "node " << node << " " << name;
    }
  }
}

TEST(Node, AFollowerBehindTheCompactedLogCatchesUpThroughASnapshot) {
  ClusterOptions options;
  options.snapshot_every = 50;
  Cluster cluster(3, options);
  cluster.start_all();
  auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  int lagging = 0;
  for (int id : cluster.ids()) {
    if (id != *leader) lagging = id;
  }
  cluster.kill(lagging);
  const uint64_t lease = make_lease(cluster, *leader, 3003);
  std::map<std::string, uint64_t> tokens;
  for (int i = 0; i < 160; ++i) {
    const std::string name = "snap-" + std::to_string(i);
    const uint64_t token = acquire(cluster, *leader, name, lease);
    ASSERT_GT(token, 0u) << name;
    tokens[name] = token;
  }
  cluster.start(lagging);
  const uint64_t target = commit_index(cluster, *leader);
  ASSERT_TRUE(cluster.wait_for_applied(target, 20s, {lagging}));
  for (const auto& [name, token] : tokens) {
    Json view = local_lock(cluster, lagging, name);
    ASSERT_FALSE(view.is_null());
    ASSERT_EQ(view["fencing_token"], token) << name;
  }
  // It got there through a snapshot, not by replaying the (compacted) log.
  auto metrics = cluster.request(lagging, "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  const auto line_start = metrics.raw.find("\nraftlock_raft_snapshots_installed_total ");
  ASSERT_NE(line_start, std::string::npos);
  const double installed = std::stod(metrics.raw.substr(
      line_start + std::string("\nraftlock_raft_snapshots_installed_total ").size()));
  EXPECT_GE(installed, 1.0);
}

TEST(Node, FiveNodesCommitWithTwoDownStallWithThreeDownAndRecover) {
  Cluster cluster(5);
  cluster.start_all();
  auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  const uint64_t lease = make_lease(cluster, *leader, 4004);
  std::vector<int> followers;
  for (int id : cluster.ids()) {
    if (id != *leader) followers.push_back(id);
  }
  cluster.kill(followers[0]);
  cluster.kill(followers[1]);
  EXPECT_GT(acquire(cluster, *leader, "quorum-2-down", lease), 0u);

  cluster.kill(followers[2]);
  // Three of five down: nothing commits. The request is answered (503), not hung.
  auto reply = cluster.request(*leader, "POST", "/v1/locks/quorum-3-down/acquire",
                               {{"lease_id", lease}}, 20s);
  EXPECT_EQ(reply.status, 503) << reply.raw;
  ASSERT_FALSE(reply.body.is_null()) << reply.raw;
  EXPECT_TRUE(reply.body["error"]["code"] == "no_leader" ||
              reply.body["error"]["code"] == "unavailable")
      << reply.raw;

  // One comes back: a majority again, writes commit again.
  cluster.start(followers[2]);
  std::vector<int> alive = {*leader, followers[2], followers[3]};
  auto recovered = cluster.wait_for_leader(20s, alive);
  ASSERT_TRUE(recovered.has_value());
  EXPECT_GT(acquire(cluster, *recovered, "quorum-recovered", lease, 15s), 0u);
}

TEST(Node, APausedFollowerDoesNotStallTheLeadersCommits) {
  Cluster cluster(3);
  cluster.start_all();
  auto leader = cluster.wait_for_leader();
  ASSERT_TRUE(leader.has_value());
  int paused = 0;
  for (int id : cluster.ids()) {
    if (id != *leader) paused = id;
  }
  const uint64_t lease = make_lease(cluster, *leader, 5005);
  cluster.pause(paused);
  // For 30 s, write continuously through the leader; every second must see commits, and no write
  // may wait on the paused peer (a transport that blocked on it would stall for seconds).
  const auto start = Clock::now();
  std::map<int, int> commits_per_second;
  std::chrono::milliseconds slowest{0};
  int i = 0;
  while (Clock::now() - start < 30s) {
    const auto before = Clock::now();
    const uint64_t token = acquire(cluster, *leader, "paused-" + std::to_string(i++), lease, 5s);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - before);
    ASSERT_GT(token, 0u) << "write " << i << " failed while a follower was paused";
    slowest = std::max(slowest, took);
    commits_per_second[static_cast<int>(
        std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count())]++;
  }
  cluster.resume(paused);
  for (int second = 0; second < 30; ++second) {
    EXPECT_GT(commits_per_second[second], 0) << "no commit during second " << second;
  }
  EXPECT_LT(slowest, 1000ms) << "a write waited on the paused follower";
  std::cout << "paused follower: " << i << " writes in 30 s, slowest " << slowest.count()
            << " ms\n";
}

// --- Damaged or foreign data dirs are refused with one clear line ------------------------------

class DataDirRefusal : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/raftlock-refusal-XXXXXX";
    root_ = ::mkdtemp(templ);
    data_dir_ = root_ + "/data";
    // A real data dir: a single node that took a few writes and a snapshot, then stopped cleanly.
    client_port_ = free_port();
    peer_port_ = free_port();
    run_node_briefly();
  }
  void TearDown() override { fs::remove_all(root_); }

  std::vector<std::string> args(int id = 1) const {
    return {"--id",
            std::to_string(id),
            "--data-dir",
            data_dir_,
            "--client-addr",
            "127.0.0.1:" + std::to_string(client_port_),
            "--peer-addr",
            "127.0.0.1:" + std::to_string(peer_port_),
            "--snapshot-every",
            "20"};
  }

  void run_node_briefly() {
    const std::string log = root_ + "/first-run.log";
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 2);
      std::vector<std::string> a = {raftlockd_path()};
      auto rest = args();
      a.insert(a.end(), rest.begin(), rest.end());
      std::vector<char*> argv;
      for (auto& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    // Wait for it to lead, write enough for a snapshot, stop it with SIGTERM.
    bool ready = false;
    for (int i = 0; i < 500 && !ready; ++i) {
      ready = http_request(client_port_, "GET", "/readyz", "", 500ms).status == 200;
      if (!ready) std::this_thread::sleep_for(10ms);
    }
    ASSERT_TRUE(ready) << "the single node never became ready";
    auto lease =
        http_request(client_port_, "POST", "/v1/leases", R"({"lease_id": 77, "ttl_ms": 3600000})");
    ASSERT_EQ(lease.status, 201) << lease.raw;
    for (int i = 0; i < 30; ++i) {
      auto r = http_request(client_port_, "POST", "/v1/locks/r" + std::to_string(i) + "/acquire",
                            R"({"lease_id": 77})");
      ASSERT_EQ(r.status, 200) << r.raw;
    }
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  }

  std::string db() const { return data_dir_ + "/raftlock.db"; }
  std::string snapshot_file() const {
    for (const auto& entry : fs::directory_iterator(data_dir_)) {
      if (entry.path().extension() == ".snap") return entry.path().string();
    }
    return "";
  }

  void expect_refused(const std::vector<std::string>& a, const std::string& must_mention) {
    auto outcome = run_raftlockd(a, 10s);
    EXPECT_FALSE(outcome.timed_out) << "raftlockd kept running on a damaged data dir";
    EXPECT_NE(outcome.exit_code, 0);
    EXPECT_NE(outcome.stderr_text.find(must_mention), std::string::npos)
        << "stderr does not mention '" << must_mention << "':\n"
        << outcome.stderr_text;
  }

  std::string root_, data_dir_;
  int client_port_ = 0, peer_port_ = 0;
};

TEST_F(DataDirRefusal, TheUndamagedDataDirRestartsWithItsState) {
  auto outcome = run_raftlockd(args(), 3s);
  EXPECT_TRUE(outcome.timed_out) << "a healthy data dir must start and keep serving:\n"
                                 << outcome.stderr_text;
}

TEST_F(DataDirRefusal, CorruptDatabase) {
  {
    std::fstream f(db(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f << "this is not a sqlite database header at all";
  }
  expect_refused(args(), db());
}

TEST_F(DataDirRefusal, TruncatedDatabase) {
  const auto size = fs::file_size(db());
  fs::resize_file(db(), size / 2);
  expect_refused(args(), db());
}

TEST_F(DataDirRefusal, SnapshotWithABadChecksum) {
  const std::string snap = snapshot_file();
  ASSERT_FALSE(snap.empty()) << "the first run took no snapshot";
  {
    std::fstream f(snap, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0);
    char c = 0;
    f.read(&c, 1);
    f.seekp(0);
    c = static_cast<char>(c ^ 0x5a);
    f.write(&c, 1);
  }
  expect_refused(args(), fs::path(snap).filename().string());
}

TEST_F(DataDirRefusal, DataDirOfAnotherNode) {
  expect_refused(args(2), "belongs to node 1, not node 2");
}

}  // namespace
}  // namespace raftlock::testing
