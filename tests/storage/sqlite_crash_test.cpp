// Crash durability: a writer process is SIGKILLed mid-stream; every batch it acknowledged must
// be found, whole, when the store is reopened.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "storage/sqlite_log_store.h"
#include "storage_test_support.h"

namespace raftlock::storage {
namespace {

using testing::options_for;
using testing::TempDir;

constexpr raft::Index kEntriesPerBatch = 7;
constexpr int kAcksBeforeKill = 120;
constexpr int kCompactEveryBatches = 40;
constexpr int kMaxBatchesPerRound = 100000;  // never reached: the parent kills the writer first

std::string entry_data(raft::Index index) {
  return "entry-" + std::to_string(index) + std::string(index % 97, '#');
}

std::string snapshot_data(raft::Index index) {
  return "state-through-" + std::to_string(index);
}

bool write_all(int fd, const void* bytes, size_t size) {
  const char* p = static_cast<const char*>(bytes);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// The child: appends batches in `term` after whatever is stored, compacting now and then, and
// writes the last index of each batch to `ack_fd` only after persist() returned.
[[noreturn]] void run_writer(const std::string& dir, raft::Term term, int ack_fd) {
  auto opened = SqliteLogStore::open(options_for(dir));
  if (!opened) _exit(3);
  SqliteLogStore& store = **opened;
  auto state = store.load();
  if (!state) _exit(4);
  raft::Index last = state->entries.empty() ? (state->snapshot ? state->snapshot->meta.index : 0)
                                            : state->entries.back().index;
  for (int batch_number = 1; batch_number <= kMaxBatchesPerRound; ++batch_number) {
    std::vector<raft::Entry> batch;
    for (raft::Index i = last + 1; i <= last + kEntriesPerBatch; ++i) {
      batch.push_back(raft::Entry{term, i, raft::EntryType::kNormal, entry_data(i)});
    }
    last += kEntriesPerBatch;
    if (!store.persist(raft::HardState{term, 1, last}, batch, std::nullopt).ok()) _exit(5);
    if (!write_all(ack_fd, &last, sizeof last)) _exit(6);
    if (batch_number % kCompactEveryBatches == 0) {
      const raft::Index through = last - 3 * kEntriesPerBatch;
      raft::Snapshot snapshot;
      snapshot.meta = raft::SnapshotMeta{through, term, testing::three_members()};
      snapshot.data = std::make_shared<const std::string>(snapshot_data(through));
      if (!store.compact(snapshot).ok()) _exit(7);
    }
  }
  _exit(0);
}

// Kills and reaps the writer if the test leaves early, so no writer outlives a failed assertion.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ~ChildGuard() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  void reaped() { pid_ = -1; }

 private:
  pid_t pid_;
};

TEST(SqliteLogStoreCrash, EveryAcknowledgedBatchSurvivesSigkill) {
  TempDir dir;
  raft::Index max_acked = 0;
  for (raft::Term round = 1; round <= 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(fds[0]);
      run_writer(dir.path(), round, fds[1]);
    }
    ChildGuard guard(child);
    ::close(fds[1]);
    int acks = 0;
    bool child_alive = true;
    while (acks < kAcksBeforeKill) {
      raft::Index acked = 0;
      ssize_t n = ::read(fds[0], &acked, sizeof acked);
      if (n < 0 && errno == EINTR) continue;
      if (n != static_cast<ssize_t>(sizeof acked)) {
        child_alive = false;
        break;
      }
      ASSERT_GT(acked, max_acked);
      max_acked = acked;
      ++acks;
    }
    ASSERT_TRUE(child_alive) << "the writer stopped before it was killed";
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    guard.reaped();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the writer exited on its own with status " << status;
    // Acknowledgements already in the pipe were sent after their batch was persisted.
    for (;;) {
      raft::Index acked = 0;
      ssize_t n = ::read(fds[0], &acked, sizeof acked);
      if (n < 0 && errno == EINTR) continue;
      if (n != static_cast<ssize_t>(sizeof acked)) break;
      max_acked = acked;
    }
    ::close(fds[0]);

    auto store = testing::open_or_fail(options_for(dir.path()));
    ASSERT_TRUE(store);
    auto state = store->load();
    ASSERT_TRUE(state.ok()) << state.error().message;
    ASSERT_FALSE(state->entries.empty());
    const raft::Index last = state->entries.back().index;
    EXPECT_GE(last, max_acked) << "an acknowledged entry was lost";
    EXPECT_EQ(last % kEntriesPerBatch, 0u) << "a batch was torn";
    EXPECT_EQ(state->hard_state.commit, last) << "hard state and entries from different batches";
    ASSERT_TRUE(state->snapshot.has_value()) << "the writer compacted at least once";
    EXPECT_EQ(*state->snapshot->data, snapshot_data(state->snapshot->meta.index));
    raft::Index expected = state->snapshot->meta.index + 1;
    for (const auto& entry : state->entries) {
      ASSERT_EQ(entry.index, expected);
      ASSERT_EQ(entry.data, entry_data(entry.index));
      ++expected;
    }
    max_acked = last;  // the next round appends after what survived
  }
}

}  // namespace
}  // namespace raftlock::storage
