// Parity: the same seeded sequence of persist/compact calls, applied to SqliteLogStore and to
// MemoryLogStore, loads equal state after every step (and after reopening the SQLite store).
#include <gtest/gtest.h>

#include <random>

#include "storage/memory_log_store.h"
#include "storage/sqlite_log_store.h"
#include "storage_test_support.h"

namespace raftlock::storage {
namespace {

using testing::options_for;
using testing::TempDir;

void expect_same_state(const PersistentState& memory, const PersistentState& sqlite, int step) {
  SCOPED_TRACE("step " + std::to_string(step));
  EXPECT_EQ(sqlite.hard_state, memory.hard_state);
  EXPECT_EQ(sqlite.entries, memory.entries);
  EXPECT_EQ(sqlite.bootstrap_config, memory.bootstrap_config);
  ASSERT_EQ(sqlite.snapshot.has_value(), memory.snapshot.has_value());
  if (memory.snapshot) {
    EXPECT_EQ(sqlite.snapshot->meta, memory.snapshot->meta);
    EXPECT_EQ(*sqlite.snapshot->data, *memory.snapshot->data);
  }
}

class ParityRun {
 public:
  ParityRun(uint64_t seed, const std::string& dir)
      : random_(seed), dir_(dir), memory_(testing::three_members()) {
    sqlite_ = testing::open_or_fail(options_for(dir_));
  }

  bool ready() const { return sqlite_ != nullptr; }

  void step(int number) {
    const int choice = pick(0, 99);
    if (choice < 55) {
      append(/*valid=*/true);
    } else if (choice < 62) {
      append(/*valid=*/false);
    } else if (choice < 72) {
      persist_hard_state_only();
    } else if (choice < 84) {
      compact();
    } else if (choice < 90) {
      install_snapshot();
    } else {
      sqlite_.reset();  // a restart
      sqlite_ = testing::open_or_fail(options_for(dir_));
      ASSERT_TRUE(sqlite_);
    }
    auto memory_state = memory_.load();
    auto sqlite_state = sqlite_->load();
    ASSERT_TRUE(sqlite_state.ok()) << sqlite_state.error().message;
    expect_same_state(*memory_state, *sqlite_state, number);
  }

 private:
  int pick(int low, int high) { return std::uniform_int_distribution<int>(low, high)(random_); }

  raft::Index base_index() const {
    const auto& state = memory_.state();
    return state.snapshot ? state.snapshot->meta.index : 0;
  }
  raft::Index last_index() const { return base_index() + memory_.state().entries.size(); }
  raft::Term term_at(raft::Index index) const {
    const auto& state = memory_.state();
    if (index == base_index()) return state.snapshot ? state.snapshot->meta.term : 0;
    return state.entries[index - base_index() - 1].term;
  }
  raft::Term last_term() const { return term_at(last_index()); }

  std::optional<raft::HardState> maybe_hard_state() {
    if (pick(0, 1) == 0) return std::nullopt;
    max_term_ += static_cast<raft::Term>(pick(0, 1));
    return raft::HardState{max_term_, static_cast<raft::NodeId>(pick(0, 3)),
                           static_cast<raft::Index>(pick(0, static_cast<int>(last_index())))};
  }

  std::string random_bytes() {
    std::string bytes(static_cast<size_t>(pick(0, 40)), '\0');
    for (auto& c : bytes) c = static_cast<char>(pick(0, 255));
    return bytes;
  }

  // Entries from `first` with terms that never go below the entry before them.
  std::vector<raft::Entry> make_batch(raft::Index first, raft::Term previous_term) {
    std::vector<raft::Entry> batch;
    raft::Term term = std::max(previous_term, max_term_) + static_cast<raft::Term>(pick(0, 1));
    max_term_ = std::max(max_term_, term);
    const int count = pick(1, 6);
    for (int i = 0; i < count; ++i) {
      if (pick(0, 9) == 0) max_term_ = ++term;
      raft::Entry entry;
      entry.index = first + static_cast<raft::Index>(i);
      entry.term = term;
      entry.type = static_cast<raft::EntryType>(pick(0, 2));
      entry.data = random_bytes();
      batch.push_back(std::move(entry));
    }
    return batch;
  }

  void append(bool valid) {
    const raft::Index base = base_index();
    const raft::Index last = last_index();
    raft::Index first;
    if (valid) {
      first =
          static_cast<raft::Index>(pick(static_cast<int>(base + 1), static_cast<int>(last + 1)));
    } else if (base > 0 && pick(0, 1) == 0) {
      first = static_cast<raft::Index>(pick(1, static_cast<int>(base)));  // below the snapshot
    } else {
      first = last + static_cast<raft::Index>(pick(2, 5));  // leaves a gap
    }
    const raft::Term previous = valid ? term_at(first - 1) : max_term_;
    auto batch = make_batch(first, previous);
    // Invalid appends carry no hard state: MemoryLogStore checks entries before touching it.
    auto hard_state = valid ? maybe_hard_state() : std::nullopt;
    auto memory_result = memory_.persist(hard_state, batch, std::nullopt);
    auto sqlite_result = sqlite_->persist(hard_state, batch, std::nullopt);
    ASSERT_EQ(memory_result.ok(), valid);
    ASSERT_EQ(sqlite_result.ok(), valid)
        << (sqlite_result.ok() ? "" : sqlite_result.error().message);
    if (!valid) {
      EXPECT_EQ(sqlite_result.error().code, memory_result.error().code);
    }
  }

  void persist_hard_state_only() {
    max_term_ += 1;
    raft::HardState hard_state{max_term_, static_cast<raft::NodeId>(pick(0, 3)),
                               static_cast<raft::Index>(pick(0, static_cast<int>(last_index())))};
    ASSERT_TRUE(memory_.persist(hard_state, {}, std::nullopt).ok());
    ASSERT_TRUE(sqlite_->persist(hard_state, {}, std::nullopt).ok());
  }

  raft::Snapshot snapshot_at(raft::Index index, raft::Term term) {
    raft::Configuration config;
    const int members = pick(1, 4);
    for (int id = 1; id <= members; ++id) {
      config.members.push_back({static_cast<raft::NodeId>(id), pick(0, 3) != 0,
                                "10.0.0." + std::to_string(id) + ":7080"});
    }
    raft::Snapshot snapshot;
    snapshot.meta = raft::SnapshotMeta{index, term, std::move(config)};
    // The same (term, index) always names the same state.
    snapshot.data =
        std::make_shared<const std::string>("state@" + std::to_string(term) + "/" +
                                            std::to_string(index) + std::string(index % 50, '.'));
    return snapshot;
  }

  void compact() {
    const raft::Index base = base_index();
    const raft::Index last = last_index();
    raft::Index index;
    raft::Term term;
    if (last > base && pick(0, 4) != 0) {
      index = static_cast<raft::Index>(pick(static_cast<int>(base + 1), static_cast<int>(last)));
      term = term_at(index);
    } else if (pick(0, 3) == 0 && base > 0) {
      index = static_cast<raft::Index>(pick(0, static_cast<int>(base)));  // stale: a no-op
      term = index == base ? term_at(base) : 1;
    } else {
      index = last + static_cast<raft::Index>(pick(1, 3));  // beyond the log
      term = std::max(last_term(), max_term_);
    }
    auto snapshot = snapshot_at(index, term);
    ASSERT_TRUE(memory_.compact(snapshot).ok());
    auto result = sqlite_->compact(snapshot);
    ASSERT_TRUE(result.ok()) << result.error().message;
  }

  void install_snapshot() {
    max_term_ += static_cast<raft::Term>(pick(0, 1));
    const raft::Index index = base_index() + static_cast<raft::Index>(pick(1, 15));
    auto snapshot = snapshot_at(index, std::max(max_term_, last_term()));
    std::vector<raft::Entry> batch;
    if (pick(0, 1) == 0) batch = make_batch(index + 1, snapshot.meta.term);
    auto hard_state = maybe_hard_state();
    ASSERT_TRUE(memory_.persist(hard_state, batch, snapshot).ok());
    auto result = sqlite_->persist(hard_state, batch, snapshot);
    ASSERT_TRUE(result.ok()) << result.error().message;
  }

  std::mt19937_64 random_;
  std::string dir_;
  MemoryLogStore memory_;
  std::unique_ptr<SqliteLogStore> sqlite_;
  raft::Term max_term_ = 1;
};

TEST(SqliteLogStoreParity, RandomOperationsMatchMemoryLogStore) {
  for (uint64_t seed : {1u, 2u, 42u, 20240601u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempDir dir;
    ParityRun run(seed, dir.path());
    ASSERT_TRUE(run.ready());
    for (int step = 0; step < 200; ++step) {
      run.step(step);
      if (::testing::Test::HasFatalFailure() || ::testing::Test::HasNonfatalFailure()) return;
    }
  }
}

}  // namespace
}  // namespace raftlock::storage
