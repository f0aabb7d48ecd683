// http::ProposalForwarder and the append-batch wire format: batching of concurrent proposals into
// one request, the error classes a follower derives from each kind of failure (never sent / refused
// -> kNoLeader, sent but unanswered or unreadable -> kTimeout), and the leader route's refusals.
#include "http/proposal_forwarder.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "raft/runtime/node.h"
#include "storage/memory_log_store.h"
#include "tests/support/loopback_socket.h"

namespace raftlock::http {
namespace {

TEST(CommandBatch, RoundTripsCommandsOfAnyBytes) {
  const std::vector<std::string> commands = {"a", "", std::string("\0\x01\xff", 3),
                                             std::string(70000, 'x')};
  auto decoded = decode_command_batch(encode_command_batch(commands));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, commands);
}

TEST(CommandBatch, RefusesEmptyTruncatedAndOverlongBodies) {
  EXPECT_EQ(decode_command_batch("").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(decode_command_batch(std::string("\x01\x00\x00", 3)).error().code,
            ErrorCode::kInvalidArgument);  // a length cut short
  std::string body = encode_command_batch({"hello"});
  body.pop_back();  // the command runs past the end
  auto refused = decode_command_batch(body);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("claims 5 bytes"), std::string::npos);
}

TEST(BatchAnswer, RoundTripsResultsAndRefusals) {
  std::vector<Result<raft::EntryId>> results = {
      raft::EntryId{7, 2}, make_error(ErrorCode::kNotLeader, "not the leader")};
  auto decoded = decode_batch_answer(encode_batch_answer(results), 2);
  ASSERT_TRUE(decoded);
  ASSERT_TRUE((*decoded)[0]);
  EXPECT_EQ((*decoded)[0]->index, 7u);
  EXPECT_EQ((*decoded)[0]->term, 2u);
  ASSERT_FALSE((*decoded)[1]);
  EXPECT_EQ((*decoded)[1].error().code, ErrorCode::kNoLeader);  // not appended: retry is safe
}

TEST(BatchAnswer, RefusesWrongCountsAndMalformedResults) {
  const std::string one = encode_batch_answer({raft::EntryId{1, 1}});
  EXPECT_FALSE(decode_batch_answer(one, 2));
  EXPECT_FALSE(decode_batch_answer("not json", 1));
  EXPECT_FALSE(decode_batch_answer(R"({"results":[{"index":"1","term":1}]})", 1));
  EXPECT_FALSE(decode_batch_answer(R"({"results":{}})", 0));
}

// A stand-in leader: answers each batch with consecutive indexes; can hold the first request
// until released, or answer with a fixed status.
class FakeLeader {
 public:
  FakeLeader() {
    server_.Post(kAppendBatchPath, [this](const httplib::Request& req, httplib::Response& res) {
      auto commands = decode_command_batch(req.body);
      ASSERT_TRUE(commands);
      const int request = requests_.fetch_add(1);
      if (request == 0 && hold_first_) release_.get_future().wait();
      {
        std::lock_guard lock(mu_);
        batch_sizes_.push_back(commands->size());
        for (auto& command : *commands) received_.push_back(command);
      }
      if (status_ != 200) {
        res.status = status_;
        res.set_content("{}", "application/json");
        return;
      }
      std::vector<Result<raft::EntryId>> results;
      for (size_t i = 0; i < commands->size(); ++i) {
        results.emplace_back(raft::EntryId{next_index_.fetch_add(1), 3});
      }
      res.set_content(encode_batch_answer(results), "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeLeader() {
    if (hold_first_) release();
    server_.stop();
    thread_.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  void hold_first() { hold_first_ = true; }
  void release() {
    if (!released_.exchange(true)) release_.set_value();
  }
  void answer_with(int status) { status_ = status; }
  int requests() const { return requests_.load(); }
  std::vector<size_t> batch_sizes() {
    std::lock_guard lock(mu_);
    return batch_sizes_;
  }
  std::vector<std::string> received() {
    std::lock_guard lock(mu_);
    return received_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> requests_{0};
  std::atomic<raft::Index> next_index_{100};
  bool hold_first_ = false;
  std::promise<void> release_;
  std::atomic<bool> released_{false};
  int status_ = 200;
  std::mutex mu_;
  std::vector<size_t> batch_sizes_;
  std::vector<std::string> received_;
};

// A TCP socket bound to a free loopback port (-1 on failure); `address` gets "127.0.0.1:port".
ProposalForwarderOptions options_with(size_t in_flight) {
  ProposalForwarderOptions options;
  options.cluster_id = "c1";
  options.self_id = "2";
  options.max_in_flight = in_flight;
  options.pool.connect_timeout = std::chrono::milliseconds(500);
  options.pool.io_timeout = std::chrono::milliseconds(2000);
  return options;
}

// Forwards `n` commands and waits for every answer.
std::vector<Result<raft::EntryId>> forward_all(ProposalForwarder& forwarder, int n,
                                               std::function<void()> after_queueing = {}) {
  std::vector<std::future<Result<raft::EntryId>>> answers;
  for (int i = 0; i < n; ++i) {
    auto promise = std::make_shared<std::promise<Result<raft::EntryId>>>();
    answers.push_back(promise->get_future());
    forwarder.forward(1, "cmd" + std::to_string(i),
                      [promise](Result<raft::EntryId> r) { promise->set_value(std::move(r)); });
  }
  if (after_queueing) after_queueing();
  std::vector<Result<raft::EntryId>> results;
  for (auto& answer : answers) results.push_back(answer.get());
  return results;
}

TEST(ProposalForwarder, ProposalsQueuedWhileABatchIsInFlightGoInOneRequest) {
  FakeLeader leader;
  leader.hold_first();
  ProposalForwarder forwarder(options_with(1),
                              [&](raft::NodeId) { return std::optional(leader.address()); });
  auto results = forward_all(forwarder, 50, [&] { leader.release(); });
  // The first request left with what was queued when the sender woke; all the rest were queued
  // while it was held, so they went together in the second.
  EXPECT_LE(leader.requests(), 2);
  EXPECT_EQ(forwarder.commands_sent(), 50u);
  EXPECT_EQ(forwarder.batches_sent(), static_cast<uint64_t>(leader.requests()));
  std::set<raft::Index> indexes;
  for (auto& result : results) {
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(result->term, 3u);
    indexes.insert(result->index);
  }
  EXPECT_EQ(indexes.size(), 50u);  // each proposal got its own entry
  const auto received = leader.received();
  ASSERT_EQ(received.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(received[i], "cmd" + std::to_string(i));  // in order
}

// Every proposal of a batch the leader answers with `status` fails with `expected`.
void expect_batch_fails(int status, ErrorCode expected) {
  FakeLeader leader;
  leader.answer_with(status);
  ProposalForwarder forwarder(options_with(2),
                              [&](raft::NodeId) { return std::optional(leader.address()); });
  for (auto& result : forward_all(forwarder, 3)) {
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, expected);
  }
}

TEST(ProposalForwarder, ARefusingLeaderMeansNotAppended) {
  expect_batch_fails(409, ErrorCode::kNoLeader);
}

TEST(ProposalForwarder, AnUnexpectedStatusMeansTheOutcomeIsUnknown) {
  expect_batch_fails(502, ErrorCode::kTimeout);
}

TEST(ProposalForwarder, AnUnreachableOrUnknownLeaderMeansNeverSent) {
  // A port nobody listens on: bind one, learn its number, close it.
  const std::string closed = testing::refusing_address();
  ProposalForwarder forwarder(options_with(1), [&](raft::NodeId id) -> std::optional<std::string> {
    if (id == 1) return closed;
    return std::nullopt;
  });
  for (auto& result : forward_all(forwarder, 2)) {
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, ErrorCode::kNoLeader);
  }
  std::promise<Result<raft::EntryId>> unknown;
  forwarder.forward(9, "x", [&](Result<raft::EntryId> r) { unknown.set_value(std::move(r)); });
  auto result = unknown.get_future().get();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kNoLeader);
}

TEST(ProposalForwarder, ALeaderThatDropsTheConnectionLeavesTheOutcomeUnknown) {
  // Accepts, reads the request, closes without answering.
  testing::LoopbackSocket socket(4);
  ASSERT_TRUE(socket.ok());
  const std::string address = socket.address();
  std::thread rude([listener = socket.fd()] {
    int conn = ::accept(listener, nullptr, nullptr);
    char buffer[4096];
    (void)::recv(conn, buffer, sizeof(buffer), 0);
    ::close(conn);
  });
  ProposalForwarder forwarder(options_with(1),
                              [&](raft::NodeId) { return std::optional(address); });
  auto results = forward_all(forwarder, 1);
  rude.join();
  ASSERT_FALSE(results[0]);
  EXPECT_EQ(results[0].error().code, ErrorCode::kTimeout);
}

TEST(ProposalForwarder, StopFailsWhatIsQueuedAndRefusesMore) {
  FakeLeader leader;
  leader.hold_first();
  ProposalForwarder forwarder(options_with(1),
                              [&](raft::NodeId) { return std::optional(leader.address()); });
  std::vector<std::future<Result<raft::EntryId>>> answers;
  for (int i = 0; i < 5; ++i) {
    auto promise = std::make_shared<std::promise<Result<raft::EntryId>>>();
    answers.push_back(promise->get_future());
    forwarder.forward(1, "c", [promise](Result<raft::EntryId> r) { promise->set_value(r); });
  }
  // The first batch is in flight (held by the leader) when stop() begins.
  while (leader.requests() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::thread stopper([&] { forwarder.stop(); });
  leader.release();
  stopper.join();
  // Every proposal is answered exactly once: appended (it reached the leader) or kUnavailable
  // (still queued when the forwarder stopped); none is lost or answered twice.
  size_t appended = 0;
  size_t unavailable = 0;
  for (auto& answer : answers) {
    auto result = answer.get();
    if (result) {
      ++appended;
    } else {
      EXPECT_EQ(result.error().code, ErrorCode::kUnavailable);
      ++unavailable;
    }
  }
  size_t reached_leader = 0;
  for (size_t size : leader.batch_sizes()) reached_leader += size;
  EXPECT_EQ(appended, reached_leader);
  EXPECT_EQ(appended + unavailable, 5u);
  EXPECT_GE(appended, 1u);
  std::promise<Result<raft::EntryId>> late;
  forwarder.forward(1, "late", [&](Result<raft::EntryId> r) { late.set_value(r); });
  EXPECT_EQ(late.get_future().get().error().code, ErrorCode::kUnavailable);
}

class NullStateMachine final : public raft::StateMachine {
 public:
  std::any apply(raft::Index, std::string_view) override { return {}; }
  std::string snapshot() const override { return {}; }
  Status restore(std::string_view) override { return Ok{}; }
};

TEST(AppendBatchRoute, RefusesOtherClustersAndMalformedBodiesWithoutTouchingTheNode) {
  raft::Configuration config;
  config.members.push_back(raft::Member{1, true, "127.0.0.1:1"});
  config.members.push_back(raft::Member{2, true, "127.0.0.1:2"});
  config.members.push_back(raft::Member{3, true, "127.0.0.1:3"});
  storage::MemoryLogStore store(config);
  NullStateMachine machine;
  raft::NodeOptions node_options;
  node_options.core.id = 1;
  raft::Node node(node_options, store, machine, [](std::vector<raft::Message>) {});
  ASSERT_TRUE(node.start());  // one of three, alone: never the leader

  httplib::Server server;
  install_append_routes(server, node, "c1");
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread listener([&] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  httplib::Client client("127.0.0.1", port);
  const std::string body = encode_command_batch({"a", "b"});

  // The status of a POST to `path` from cluster `cluster` (-1: no answer).
  auto status_of = [&client](const char* path, const char* cluster, const std::string& payload) {
    auto result = client.Post(path, {{"X-Raftlock-Cluster", cluster}}, payload, "application/x");
    return result ? result->status : -1;
  };
  EXPECT_EQ(status_of(kAppendBatchPath, "other", body), 403);
  EXPECT_EQ(status_of(kAppendBatchPath, "c1", "\x05"), 400);
  // Right cluster, well formed, but this node is not the leader: nothing appended, 409.
  EXPECT_EQ(status_of(kAppendBatchPath, "c1", body), 409);
  EXPECT_EQ(status_of(kAppendPath, "c1", "a"), 409);
  EXPECT_EQ(status_of(kAppendPath, "x", "a"), 403);
  EXPECT_EQ(node.status().core.last_index, 0u);

  server.stop();
  listener.join();
  node.stop();
}

}  // namespace
}  // namespace raftlock::http
