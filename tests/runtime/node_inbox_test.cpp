// raft::Node with a LoopInbox (Node::set_inbox): the loop polls the inbox's descriptors together
// with its own wake-up, reads the messages itself and steps them, also while posted work keeps it
// busy. The inbox here is a scripted fake backed by a socketpair this test writes to.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "raft/loop_inbox.h"
#include "tests/runtime/runtime_harness.h"

namespace raftlock::raft::runtime_testing {
namespace {

// A LoopInbox whose one descriptor is the read end of a socketpair: push() queues messages and
// writes a byte to make it readable; read() drains the bytes and hands over what is queued.
class ScriptedInbox final : public LoopInbox {
 public:
  ScriptedInbox() {
    ok_ = ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_) == 0;
  }
  ~ScriptedInbox() override {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }

  bool ok() const { return ok_; }

  // Any thread.
  void push(std::vector<Message> messages) {
    {
      std::lock_guard lock(mu_);
      for (auto& m : messages) pending_.push_back(std::move(m));
    }
    const char token = 1;
    // A full socket buffer (EAGAIN) is already readable: nothing is lost, read() takes it all.
    [[maybe_unused]] const ssize_t n = ::send(fds_[1], &token, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  }

  void attach(std::function<void()> wake) override {
    std::lock_guard lock(mu_);
    ++attach_calls_;
    wake_ = std::move(wake);
  }
  void detach() override {
    std::lock_guard lock(mu_);
    ++detach_calls_;
    wake_ = nullptr;
  }
  void descriptors(std::vector<int>& fds) override {
    std::lock_guard lock(mu_);
    if (detach_calls_ > 0) ++calls_after_detach_;
    ++descriptor_calls_;
    fds.assign(1, fds_[0]);
  }
  void read(int fd, std::vector<Message>& out) override {
    char drain[256];
    while (::recv(fd, drain, sizeof(drain), MSG_DONTWAIT) > 0) {
    }
    std::lock_guard lock(mu_);
    if (detach_calls_ > 0) ++calls_after_detach_;
    if (fd != fds_[0]) ++foreign_fds_;
    ++reads_;
    reader_ = std::this_thread::get_id();
    for (auto& m : pending_) out.push_back(std::move(m));
    pending_.clear();
  }

  int attach_calls() const {
    std::lock_guard lock(mu_);
    return attach_calls_;
  }
  int detach_calls() const {
    std::lock_guard lock(mu_);
    return detach_calls_;
  }
  int calls_after_detach() const {
    std::lock_guard lock(mu_);
    return calls_after_detach_;
  }
  int foreign_fds() const {
    std::lock_guard lock(mu_);
    return foreign_fds_;
  }
  uint64_t reads() const {
    std::lock_guard lock(mu_);
    return reads_;
  }
  uint64_t descriptor_calls() const {
    std::lock_guard lock(mu_);
    return descriptor_calls_;
  }
  std::thread::id reader() const {
    std::lock_guard lock(mu_);
    return reader_;
  }
  // Calls the wake function the node attached (false when there is none).
  bool wake() {
    std::function<void()> wake;
    {
      std::lock_guard lock(mu_);
      wake = wake_;
    }
    if (!wake) return false;
    wake();
    return true;
  }

 private:
  int fds_[2] = {-1, -1};
  bool ok_ = false;
  mutable std::mutex mu_;
  std::vector<Message> pending_;
  std::function<void()> wake_;
  int attach_calls_ = 0;
  int detach_calls_ = 0;
  int calls_after_detach_ = 0;
  int foreign_fds_ = 0;
  uint64_t reads_ = 0;
  uint64_t descriptor_calls_ = 0;
  std::thread::id reader_;
};

// Everything the node sent (its Sender), thread-safe.
struct SentLog {
  std::mutex mu;
  std::vector<Message> messages;

  void add(const std::vector<Message>& batch) {
    std::lock_guard lock(mu);
    messages.insert(messages.end(), batch.begin(), batch.end());
  }
  bool has(const std::function<bool(const Message&)>& match) {
    std::lock_guard lock(mu);
    for (const Message& m : messages)
      if (match(m)) return true;
    return false;
  }
};

Configuration three_voters() {
  Configuration c;
  for (NodeId id = 1; id <= 3; ++id) c.members.push_back(Member{id, true, ""});
  return c;
}

NodeOptions options_for(NodeId id, std::chrono::milliseconds tick, int election_ticks) {
  NodeOptions options;
  options.core.id = id;
  options.core.election_ticks = election_ticks;
  options.core.heartbeat_ticks = 1;
  options.core.random_seed = 4242 + id;
  options.tick_interval = tick;
  return options;
}

Message from_leader(MessageType type, NodeId leader, NodeId to, Term term) {
  Message m;
  m.type = type;
  m.from = leader;
  m.to = to;
  m.term = term;
  return m;
}

TEST(NodeInbox, MessagesReadFromTheInboxAreSteppedAndTheNodeFollowsTheirLeader) {
  storage::MemoryLogStore store(three_voters());
  RecordingStateMachine machine(2);
  SentLog sent;
  ScriptedInbox inbox;
  ASSERT_TRUE(inbox.ok());
  // A long election timeout: this follower waits for the scripted leader instead of campaigning.
  Node node(options_for(2, 20ms, 100), store, machine,
            [&sent](std::vector<Message> batch) { sent.add(batch); });
  node.set_inbox(&inbox);
  ASSERT_TRUE(node.start().ok());
  EXPECT_EQ(inbox.attach_calls(), 1);

  inbox.push({from_leader(MessageType::kHeartbeat, 1, 2, 7)});
  ASSERT_TRUE(InProcessCluster::wait_until([&] {
    const NodeStatus s = node.status();
    return s.core.leader_id == 1 && s.core.term == 7;
  })) << "leader "
      << node.status().core.leader_id << " term " << node.status().core.term;
  EXPECT_EQ(node.status().core.role, Role::kFollower);
  ASSERT_TRUE(InProcessCluster::wait_until([&] {
    return sent.has([](const Message& m) {
      return m.type == MessageType::kHeartbeatResponse && m.to == 1 && m.term == 7;
    });
  })) << "the heartbeat was not answered";

  // An append with an entry and its commit: persisted, acknowledged and applied.
  Message append = from_leader(MessageType::kAppend, 1, 2, 7);
  append.index = 0;
  append.log_term = 0;
  append.entries = {Entry{7, 1, EntryType::kNormal, "via-the-inbox"}};
  append.commit = 1;
  inbox.push({append});
  ASSERT_TRUE(InProcessCluster::wait_until([&] { return machine.has_command("via-the-inbox"); }));
  EXPECT_EQ(machine.command_at(1), "via-the-inbox");
  EXPECT_TRUE(InProcessCluster::wait_until([&] {
    return sent.has([](const Message& m) {
      return m.type == MessageType::kAppendResponse && m.to == 1 && !m.reject && m.index == 1;
    });
  }));
  EXPECT_EQ(node.status().core.commit_index, 1u);

  // The loop thread (not this one, not a transport thread) read the inbox, only its descriptor.
  EXPECT_GE(inbox.reads(), 2u);
  EXPECT_NE(inbox.reader(), std::this_thread::get_id());
  EXPECT_EQ(inbox.foreign_fds(), 0);

  // wake() makes the loop ask for the descriptors again.
  const uint64_t asked = inbox.descriptor_calls();
  ASSERT_TRUE(inbox.wake());
  EXPECT_TRUE(InProcessCluster::wait_until([&] { return inbox.descriptor_calls() > asked; }));

  node.stop();
  EXPECT_EQ(inbox.detach_calls(), 1);
  EXPECT_EQ(inbox.calls_after_detach(), 0) << "the inbox was used after detach()";
}

TEST(NodeInbox, AFollowerRoundThatOnlyLearnsACommitAppliesBeforeItAcknowledges) {
  // A round that writes nothing has only acknowledgements to send, and they gate no commit: the
  // follower applies (and answers its waiting clients) first. A round that writes acknowledges
  // right after the write, before applying.
  storage::MemoryLogStore store(three_voters());
  RecordingStateMachine machine(2);
  ScriptedInbox inbox;
  ASSERT_TRUE(inbox.ok());
  std::mutex mu;
  std::vector<bool> applied_when_acknowledged;  // per kAppendResponse, in sending order
  Node node(options_for(2, 20ms, 100), store, machine, [&](std::vector<Message> batch) {
    for (const Message& m : batch) {
      if (m.type != MessageType::kAppendResponse) continue;
      std::lock_guard lock(mu);
      applied_when_acknowledged.push_back(machine.has_command("learned-late"));
    }
  });
  node.set_inbox(&inbox);
  ASSERT_TRUE(node.start().ok());
  auto acknowledgements = [&] {
    std::lock_guard lock(mu);
    return applied_when_acknowledged.size();
  };

  Message append = from_leader(MessageType::kAppend, 1, 2, 7);
  append.entries = {Entry{7, 1, EntryType::kNormal, "learned-late"}};
  append.commit = 0;  // not committed yet: written and acknowledged, not applied
  inbox.push({append});
  ASSERT_TRUE(InProcessCluster::wait_until([&] { return acknowledgements() == 1; }));

  Message commit = from_leader(MessageType::kAppend, 1, 2, 7);
  commit.index = 1;
  commit.log_term = 7;
  commit.commit = 1;  // no entries: this round only learns the commit
  inbox.push({commit});
  ASSERT_TRUE(InProcessCluster::wait_until([&] { return acknowledgements() == 2; }));
  node.stop();
  std::lock_guard lock(mu);
  EXPECT_FALSE(applied_when_acknowledged[0]) << "an uncommitted entry was applied";
  EXPECT_TRUE(applied_when_acknowledged[1])
      << "the round that only learned the commit acknowledged before applying";
}

// A MemoryLogStore whose writes of entries can be held at a gate (the test opens it).
class GatedStore final : public storage::LogStore {
 public:
  explicit GatedStore(Configuration bootstrap) : inner_(std::move(bootstrap)) {}
  Result<storage::PersistentState> load() override {
    std::lock_guard lock(mu_);
    return inner_.load();
  }
  Status persist(const std::optional<HardState>& hard_state, const std::vector<Entry>& entries,
                 const std::optional<Snapshot>& snapshot) override {
    std::unique_lock lock(mu_);
    if (!entries.empty()) {
      ++held_;
      opened_.wait(lock, [&] { return open_; });
      --held_;
    }
    return inner_.persist(hard_state, entries, snapshot);
  }
  Status compact(const Snapshot& snapshot) override {
    std::lock_guard lock(mu_);
    return inner_.compact(snapshot);
  }
  void set_open(bool open) {
    std::lock_guard lock(mu_);
    open_ = open;
    opened_.notify_all();
  }
  bool holding_a_write() const {
    std::lock_guard lock(mu_);
    return held_ > 0;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable opened_;
  storage::MemoryLogStore inner_;
  bool open_ = true;
  int held_ = 0;
};

TEST(NodeInbox, DurableCommittedEntriesAreAppliedWhileTheRoundsWriteIsInProgress) {
  // A round that learns a commit and also receives new entries applies (and answers) the
  // committed entries, durable since an earlier round, without waiting for the new entries'
  // write; the new entries are still acknowledged only once written.
  GatedStore store(three_voters());
  RecordingStateMachine machine(2);
  SentLog sent;
  ScriptedInbox inbox;
  ASSERT_TRUE(inbox.ok());
  Node node(options_for(2, 20ms, 100), store, machine,
            [&sent](std::vector<Message> batch) { sent.add(batch); });
  node.set_inbox(&inbox);
  ASSERT_TRUE(node.start().ok());
  auto acknowledged = [&](Index index) {
    return sent.has([index](const Message& m) {
      return m.type == MessageType::kAppendResponse && !m.reject && m.index == index;
    });
  };

  Message first = from_leader(MessageType::kAppend, 1, 2, 7);
  first.entries = {Entry{7, 1, EntryType::kNormal, "durable-first"}};
  inbox.push({first});
  ASSERT_TRUE(InProcessCluster::wait_until([&] { return acknowledged(1); }));
  EXPECT_FALSE(machine.has_command("durable-first"));  // not committed yet

  store.set_open(false);
  Message second = from_leader(MessageType::kAppend, 1, 2, 7);
  second.index = 1;
  second.log_term = 7;
  second.entries = {Entry{7, 2, EntryType::kNormal, "written-later"}};
  second.commit = 1;
  inbox.push({second});
  ASSERT_TRUE(InProcessCluster::wait_until([&] { return store.holding_a_write(); }));
  const bool applied_during_write =
      InProcessCluster::wait_until([&] { return machine.has_command("durable-first"); });
  const bool acknowledged_during_write = acknowledged(2);
  store.set_open(true);
  EXPECT_TRUE(applied_during_write) << "entry 1 waited for entry 2's write";
  EXPECT_FALSE(acknowledged_during_write) << "entry 2 was acknowledged before it was written";
  EXPECT_TRUE(InProcessCluster::wait_until([&] { return acknowledged(2); }));
  EXPECT_FALSE(machine.has_command("written-later"));  // written, not committed
  node.stop();
}

TEST(NodeInbox, InboxIsReadWhilePostedWorkKeepsTheLoopBusy) {
  storage::MemoryLogStore store(three_voters());
  RecordingStateMachine machine(1);
  ScriptedInbox inbox;
  ASSERT_TRUE(inbox.ok());
  // Nodes 2 and 3 are scripted: they grant every vote and acknowledge every append, through the
  // inbox only. Node 1 can be elected and can commit only if its loop reads the inbox.
  std::atomic<uint64_t> answered{0};
  Node node(options_for(1, 10ms, 10), store, machine, [&](std::vector<Message> batch) {
    std::vector<Message> answers;
    for (const Message& m : batch) {
      Message a;
      a.from = m.to;
      a.to = m.from;
      a.term = m.term;
      switch (m.type) {
        case MessageType::kPreVote:
          a.type = MessageType::kPreVoteResponse;
          break;
        case MessageType::kVote:
          a.type = MessageType::kVoteResponse;
          break;
        case MessageType::kAppend:
          a.type = MessageType::kAppendResponse;
          a.index = m.index + m.entries.size();
          break;
        case MessageType::kHeartbeat:
          a.type = MessageType::kHeartbeatResponse;
          a.context = m.context;
          break;
        default:
          continue;
      }
      answers.push_back(std::move(a));
    }
    answered.fetch_add(answers.size());
    if (!answers.empty()) inbox.push(std::move(answers));
  });
  node.set_inbox(&inbox);
  ASSERT_TRUE(node.start().ok());
  ASSERT_TRUE(InProcessCluster::wait_until([&] {
    return node.status().core.role == Role::kLeader;
  })) << "the votes in the inbox were not stepped";
  const Term term = node.status().core.term;

  // Busy work: two threads keep requests posted that the loop refuses at once (the wrong term),
  // up to 64 in flight each, so there is nearly always posted work waiting when the loop goes
  // round. They never wait on the inbox, so they keep the loop busy whether it is read or not.
  struct Posters {
    std::atomic<bool> busy{true};
    std::atomic<uint64_t> answered{0};
    std::vector<std::thread> threads;
    ~Posters() { stop(); }
    void stop() {
      busy = false;
      for (auto& t : threads)
        if (t.joinable()) t.join();
    }
  } posters;
  for (int t = 0; t < 2; ++t) {
    posters.threads.emplace_back([&] {
      std::deque<std::future<Result<std::any>>> in_flight;
      while (posters.busy.load()) {
        in_flight.push_back(node.propose_as_leader("noise", term + 1000));
        if (in_flight.size() < 64) continue;
        if (in_flight.front().wait_for(10s) != std::future_status::ready) break;
        in_flight.pop_front();
        posters.answered.fetch_add(1);
      }
    });
  }
  ASSERT_TRUE(InProcessCluster::wait_until([&] { return posters.answered.load() > 1000; }));

  // Each proposal commits only once the acknowledgements come back through the inbox.
  const uint64_t answered_before = answered.load();
  const uint64_t busy_before = posters.answered.load();
  for (int i = 0; i < 20; ++i) {
    auto proposal = node.propose("busy-" + std::to_string(i));
    const Result<std::any> result = await(proposal);
    ASSERT_TRUE(result.ok()) << "proposal " << i << ": " << result_string(result);
  }
  const uint64_t answered_during = posters.answered.load();
  EXPECT_TRUE(posters.busy.load());
  posters.stop();

  EXPECT_GT(answered.load(), answered_before);
  EXPECT_GT(answered_during, busy_before) << "the loop was not kept busy meanwhile";
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(machine.has_command("busy-" + std::to_string(i)));
  EXPECT_EQ(node.status().core.role, Role::kLeader);
  EXPECT_EQ(node.status().core.term, term);
  node.stop();
  EXPECT_EQ(inbox.detach_calls(), 1);
  EXPECT_EQ(inbox.calls_after_detach(), 0);
}

}  // namespace
}  // namespace raftlock::raft::runtime_testing
