#include "storage/sqlite_log_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "storage/crc32c.h"
#include "storage_test_support.h"

namespace raftlock::storage {
namespace {

using testing::make_entries;
using testing::make_entry;
using testing::make_snapshot;
using testing::open_or_fail;
using testing::options_for;
using testing::snapshot_files;
using testing::TempDir;

PersistentState load_or_fail(SqliteLogStore& store) {
  auto loaded = store.load();
  EXPECT_TRUE(loaded.ok()) << (loaded.ok() ? "" : loaded.error().message);
  return loaded.ok() ? std::move(*loaded) : PersistentState{};
}

std::vector<raft::Index> indexes(const std::vector<raft::Entry>& entries) {
  std::vector<raft::Index> out;
  for (const auto& entry : entries) out.push_back(entry.index);
  return out;
}

TEST(SqliteLogStore, NewStoreIsEmptyAndRecordsTheBootstrapConfig) {
  TempDir dir;
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->database_path(), dir.file("raftlock.db"));
  auto state = load_or_fail(*store);
  EXPECT_EQ(state.hard_state, raft::HardState{});
  EXPECT_FALSE(state.snapshot.has_value());
  EXPECT_TRUE(state.entries.empty());
  EXPECT_EQ(state.bootstrap_config, testing::three_members());
  EXPECT_TRUE(std::filesystem::exists(dir.file("raftlock.db")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("raftlock.db.creating")));
}

TEST(SqliteLogStore, CreatesMissingNestedDataDir) {
  TempDir dir;
  const std::string nested = dir.path() + "/a/b/c";
  auto store = open_or_fail(options_for(nested));
  ASSERT_TRUE(store);
  EXPECT_TRUE(std::filesystem::is_regular_file(nested + "/raftlock.db"));
}

TEST(SqliteLogStore, EntriesAndHardStateSurviveReopen) {
  TempDir dir;
  std::vector<raft::Entry> entries = {
      make_entry(1, 1, "", raft::EntryType::kNoop),
      make_entry(2, 1, std::string("binary\0data\xff", 12)),
      make_entry(3, 2, "conf", raft::EntryType::kConfChange),
      make_entry(4, 2, std::string(100000, 'x')),
      make_entry(5, UINT64_MAX - 1, ""),  // the term column keeps the full 64-bit range
  };
  entries[4].data.clear();  // an empty normal command stays empty (not NULL)
  const raft::HardState hard_state{UINT64_MAX - 1, 3, 4};
  {
    auto store = open_or_fail(options_for(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->persist(hard_state, entries, std::nullopt).ok());
    auto state = load_or_fail(*store);
    EXPECT_EQ(state.entries, entries);
    EXPECT_EQ(state.hard_state, hard_state);
  }
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  auto state = load_or_fail(*store);
  EXPECT_EQ(state.entries, entries);
  EXPECT_EQ(state.hard_state, hard_state);
  EXPECT_FALSE(state.snapshot.has_value());
}

TEST(SqliteLogStore, HardStateAloneIsPersistedAndOverwritten) {
  TempDir dir;
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->persist(raft::HardState{1, 2, 0}, {}, std::nullopt).ok());
  ASSERT_TRUE(store->persist(raft::HardState{5, 0, 0}, {}, std::nullopt).ok());
  store.reset();
  store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  EXPECT_EQ(load_or_fail(*store).hard_state, (raft::HardState{5, 0, 0}));
}

// A Ready that only moves the commit index is written without waiting for the disk; it must still
// be stored (it survives a process restart), and the writes after it must be stored normally.
TEST(SqliteLogStore, CommitOnlyHardStateChangesAreStoredAndLaterWritesStillLand) {
  TempDir dir;
  {
    auto store = open_or_fail(options_for(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->persist(raft::HardState{2, 1, 0}, make_entries(1, 3, 2), std::nullopt).ok());
    load_or_fail(*store);
    ASSERT_TRUE(store->persist(raft::HardState{2, 1, 2}, {}, std::nullopt).ok());
    ASSERT_TRUE(store->persist(raft::HardState{2, 1, 3}, {}, std::nullopt).ok());
    ASSERT_TRUE(store->persist(std::nullopt, make_entries(4, 5, 2), std::nullopt).ok());
    EXPECT_EQ(load_or_fail(*store).hard_state, (raft::HardState{2, 1, 3}));
    // A new term and vote after commit-only writes is a full write again.
    ASSERT_TRUE(store->persist(raft::HardState{3, 2, 3}, {}, std::nullopt).ok());
  }
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  auto state = load_or_fail(*store);
  EXPECT_EQ(state.hard_state, (raft::HardState{3, 2, 3}));
  EXPECT_EQ(indexes(state.entries), (std::vector<raft::Index>{1, 2, 3, 4, 5}));
}

TEST(SqliteLogStore, ConflictingAppendTruncatesTheSuffix) {
  TempDir dir;
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->persist(std::nullopt, make_entries(1, 10, 1), std::nullopt).ok());
  // A new leader overwrites 6..10 with a shorter suffix from term 2.
  ASSERT_TRUE(store->persist(std::nullopt, make_entries(6, 7, 2), std::nullopt).ok());
  auto expected = make_entries(1, 5, 1);
  for (auto& entry : make_entries(6, 7, 2)) expected.push_back(entry);
  EXPECT_EQ(load_or_fail(*store).entries, expected);
  // Appending right after the new end works; the old 8..10 are gone for good.
  ASSERT_TRUE(store->persist(std::nullopt, make_entries(8, 8, 2), std::nullopt).ok());
  expected.push_back(make_entry(8, 2));
  store.reset();
  store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  EXPECT_EQ(load_or_fail(*store).entries, expected);
}

TEST(SqliteLogStore, InvalidAppendsAreRefusedAndChangeNothing) {
  TempDir dir;
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->persist(raft::HardState{3, 1, 2}, make_entries(1, 5, 3), std::nullopt).ok());
  const auto before = load_or_fail(*store);

  auto gap = store->persist(raft::HardState{9, 9, 9}, make_entries(7, 8, 3), std::nullopt);
  ASSERT_FALSE(gap.ok());
  EXPECT_EQ(gap.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(gap.error().message.find("gap"), std::string::npos) << gap.error().message;

  auto backwards = store->persist(std::nullopt, make_entries(6, 6, 2), std::nullopt);
  ASSERT_FALSE(backwards.ok());
  EXPECT_NE(backwards.error().message.find("term going backwards"), std::string::npos);

  std::vector<raft::Entry> holes = {make_entry(6, 3), make_entry(8, 3)};
  auto not_contiguous = store->persist(std::nullopt, holes, std::nullopt);
  ASSERT_FALSE(not_contiguous.ok());
  EXPECT_NE(not_contiguous.error().message.find("not contiguous"), std::string::npos);

  auto bad_type = store->persist(
      std::nullopt, {make_entry(6, 3, "x", static_cast<raft::EntryType>(9))}, std::nullopt);
  ASSERT_FALSE(bad_type.ok());
  EXPECT_EQ(bad_type.error().code, ErrorCode::kInvalidArgument);

  const auto after = load_or_fail(*store);
  EXPECT_EQ(after.entries, before.entries);
  EXPECT_EQ(after.hard_state, before.hard_state);
}

TEST(SqliteLogStore, CompactKeepsTheSuffixAndDropsThePrefix) {
  TempDir dir;
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->persist(raft::HardState{2, 1, 8}, make_entries(1, 10, 2), std::nullopt).ok());
  ASSERT_TRUE(store->compact(make_snapshot(6, 2, "state@6")).ok());

  auto check = [&](SqliteLogStore& s) {
    auto state = load_or_fail(s);
    ASSERT_TRUE(state.snapshot.has_value());
    EXPECT_EQ(state.snapshot->meta.index, 6u);
    EXPECT_EQ(state.snapshot->meta.term, 2u);
    EXPECT_EQ(state.snapshot->meta.config, testing::three_members());
    EXPECT_EQ(*state.snapshot->data, "state@6");
    EXPECT_EQ(state.entries, make_entries(7, 10, 2));
    EXPECT_EQ(state.hard_state, (raft::HardState{2, 1, 8}));
  };
  check(*store);
  EXPECT_EQ(snapshot_files(dir.path()), std::vector<std::string>{"snapshot-2-6.snap"});
  EXPECT_EQ(testing::read_bytes(dir.file("snapshot-2-6.snap")), "state@6");
  store.reset();
  store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  check(*store);

  // An older or equal snapshot changes nothing.
  ASSERT_TRUE(store->compact(make_snapshot(4, 2, "older")).ok());
  check(*store);

  // A newer one replaces the old snapshot file; appends continue after the kept suffix.
  ASSERT_TRUE(store->compact(make_snapshot(9, 2, "state@9")).ok());
  EXPECT_EQ(snapshot_files(dir.path()), std::vector<std::string>{"snapshot-2-9.snap"});
  ASSERT_TRUE(store->persist(std::nullopt, make_entries(11, 12, 3), std::nullopt).ok());
  store.reset();
  store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  auto state = load_or_fail(*store);
  EXPECT_EQ(indexes(state.entries), (std::vector<raft::Index>{10, 11, 12}));
  ASSERT_TRUE(state.snapshot.has_value());
  EXPECT_EQ(*state.snapshot->data, "state@9");
}

TEST(SqliteLogStore, CompactRefusesASnapshotWhoseTermDisagreesWithTheLog) {
  TempDir dir;
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->persist(std::nullopt, make_entries(1, 5, 2), std::nullopt).ok());
  auto refused = store->compact(make_snapshot(3, 1, "wrong term"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message.find("log has term 2"), std::string::npos);
  EXPECT_TRUE(snapshot_files(dir.path()).empty());
  EXPECT_EQ(load_or_fail(*store).entries, make_entries(1, 5, 2));
}

TEST(SqliteLogStore, CompactBeyondTheLogEmptiesItAndAppendsContinueAfterTheSnapshot) {
  TempDir dir;
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->persist(std::nullopt, make_entries(1, 3, 1), std::nullopt).ok());
  ASSERT_TRUE(store->compact(make_snapshot(5, 2, "ahead")).ok());
  EXPECT_TRUE(load_or_fail(*store).entries.empty());
  auto gap = store->persist(std::nullopt, make_entries(7, 7, 2), std::nullopt);
  EXPECT_FALSE(gap.ok());
  ASSERT_TRUE(store->persist(std::nullopt, make_entries(6, 6, 2), std::nullopt).ok());
  EXPECT_EQ(load_or_fail(*store).entries, make_entries(6, 6, 2));
}

TEST(SqliteLogStore, SnapshotInPersistReplacesTheWholeLog) {
  TempDir dir;
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->persist(raft::HardState{1, 1, 3}, make_entries(1, 10, 1), std::nullopt).ok());
  ASSERT_TRUE(store->compact(make_snapshot(3, 1, "local@3")).ok());
  // A leader's snapshot at 20 (beyond our log) plus the entries that follow it, in one call.
  raft::Configuration new_config{{{1, true, "h1:1"}, {4, true, "h4:4"}}};
  ASSERT_TRUE(store
                  ->persist(raft::HardState{4, 2, 20}, make_entries(21, 22, 4),
                            make_snapshot(20, 4, "leader@20", new_config))
                  .ok());
  EXPECT_EQ(snapshot_files(dir.path()), std::vector<std::string>{"snapshot-4-20.snap"});
  store.reset();
  store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  auto state = load_or_fail(*store);
  ASSERT_TRUE(state.snapshot.has_value());
  EXPECT_EQ(state.snapshot->meta.index, 20u);
  EXPECT_EQ(state.snapshot->meta.config, new_config);
  EXPECT_EQ(*state.snapshot->data, "leader@20");
  EXPECT_EQ(state.entries, make_entries(21, 22, 4));
  EXPECT_EQ(state.hard_state, (raft::HardState{4, 2, 20}));
  // A snapshot below the log we hold also drops every entry (the interface's rule).
  ASSERT_TRUE(store->persist(std::nullopt, {}, make_snapshot(21, 4, "leader@21")).ok());
  EXPECT_TRUE(load_or_fail(*store).entries.empty());
}

TEST(SqliteLogStore, AppendBelowTheSnapshotIsRefused) {
  TempDir dir;
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->persist(std::nullopt, {}, make_snapshot(10, 2, "s")).ok());
  auto below = store->persist(std::nullopt, make_entries(10, 11, 2), std::nullopt);
  ASSERT_FALSE(below.ok());
  EXPECT_EQ(below.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(below.error().message.find("below the snapshot index 10"), std::string::npos);
  auto older_term = store->persist(std::nullopt, make_entries(11, 11, 1), std::nullopt);
  EXPECT_FALSE(older_term.ok());
  EXPECT_TRUE(load_or_fail(*store).entries.empty());
}

TEST(SqliteLogStore, SameSnapshotTwiceKeepsTheFileItsRecordDescribes) {
  TempDir dir;
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->persist(std::nullopt, {}, make_snapshot(5, 1, "first bytes")).ok());
  ASSERT_TRUE(store->persist(std::nullopt, make_entries(6, 7, 1), std::nullopt).ok());
  // Same (term, index) again, serialised differently: the log is still dropped, the file kept.
  ASSERT_TRUE(store->persist(std::nullopt, {}, make_snapshot(5, 1, "other bytes!")).ok());
  store.reset();
  store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  auto state = load_or_fail(*store);
  ASSERT_TRUE(state.snapshot.has_value());
  EXPECT_EQ(*state.snapshot->data, "first bytes");
  EXPECT_TRUE(state.entries.empty());
}

TEST(SqliteLogStore, ExistingStoreKeepsItsOwnBootstrapConfig) {
  TempDir dir;
  { ASSERT_TRUE(open_or_fail(options_for(dir.path()))); }
  auto options = options_for(dir.path());
  options.bootstrap_config = raft::Configuration{{{1, true, "somewhere-else:1"}}};
  auto store = open_or_fail(options);
  ASSERT_TRUE(store);
  EXPECT_EQ(load_or_fail(*store).bootstrap_config, testing::three_members());
}

TEST(SqliteLogStore, SecondOpenOfAnOpenDataDirIsRefused) {
  TempDir dir;
  auto first = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(first);
  ASSERT_TRUE(first->persist(raft::HardState{1, 1, 0}, make_entries(1, 3, 1), std::nullopt).ok());
  auto second = SqliteLogStore::open(options_for(dir.path()));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, ErrorCode::kBusy);
  EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;
  EXPECT_NE(second.error().message.find(dir.file("raftlock.db")), std::string::npos);
  // The first store is unaffected.
  ASSERT_TRUE(first->persist(std::nullopt, make_entries(4, 4, 1), std::nullopt).ok());
  EXPECT_EQ(load_or_fail(*first).entries, make_entries(1, 4, 1));
}

TEST(SqliteLogStore, UnreferencedSnapshotFilesAreRemovedOnOpen) {
  TempDir dir;
  {
    auto store = open_or_fail(options_for(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->persist(std::nullopt, make_entries(1, 4, 1), std::nullopt).ok());
    ASSERT_TRUE(store->compact(make_snapshot(2, 1, "kept")).ok());
  }
  // Leftovers of a crash: a snapshot written but never committed, and a half-written temp file.
  testing::write_bytes(dir.file("snapshot-1-4.snap"), "never committed");
  testing::write_bytes(dir.file("snapshot-1-3.snap.tmp"), "half");
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  EXPECT_EQ(snapshot_files(dir.path()), std::vector<std::string>{"snapshot-1-2.snap"});
  auto state = load_or_fail(*store);
  ASSERT_TRUE(state.snapshot.has_value());
  EXPECT_EQ(*state.snapshot->data, "kept");
}

TEST(SqliteLogStore, DatabaseIsInWalModeAndSnapshotRecordHoldsSizeAndChecksum) {
  TempDir dir;
  const std::string data(5000, 's');
  {
    auto store = open_or_fail(options_for(dir.path()));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->persist(std::nullopt, make_entries(1, 4, 1), std::nullopt).ok());
    ASSERT_TRUE(store->compact(make_snapshot(3, 1, data)).ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(dir.file("raftlock.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &statement, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(statement), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(statement, 0)), "wal");
  sqlite3_finalize(statement);
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT idx, term, file_name, file_size, crc32c FROM snapshot",
                               -1, &statement, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(statement), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(statement, 0), 3);
  EXPECT_EQ(sqlite3_column_int64(statement, 1), 1);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(statement, 2)),
               "snapshot-1-3.snap");
  EXPECT_EQ(sqlite3_column_int64(statement, 3), 5000);
  EXPECT_EQ(static_cast<uint32_t>(sqlite3_column_int64(statement, 4)), crc32c(data));
  sqlite3_finalize(statement);
  sqlite3_close(db);
}

TEST(SqliteLogStore, InvalidOptionsAreRefused) {
  TempDir dir;
  auto zero_node = SqliteLogStore::open(options_for(dir.path(), 0));
  ASSERT_FALSE(zero_node.ok());
  EXPECT_EQ(zero_node.error().code, ErrorCode::kInvalidArgument);
  auto options = options_for(dir.path());
  options.bootstrap_config = raft::Configuration{{{2, true, "a"}, {2, true, "b"}}};
  auto repeated = SqliteLogStore::open(options);
  ASSERT_FALSE(repeated.ok());
  EXPECT_EQ(repeated.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(repeated.error().message.find("bootstrap configuration"), std::string::npos);
  auto empty_dir = SqliteLogStore::open(options_for(""));
  ASSERT_FALSE(empty_dir.ok());
  EXPECT_EQ(empty_dir.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir.file("raftlock.db")));
}

TEST(SqliteLogStore, LargeBatchRoundTrips) {
  TempDir dir;
  auto store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  ASSERT_TRUE(
      store->persist(raft::HardState{1, 1, 5000}, make_entries(1, 5000, 1), std::nullopt).ok());
  store.reset();
  store = open_or_fail(options_for(dir.path()));
  ASSERT_TRUE(store);
  auto state = load_or_fail(*store);
  EXPECT_EQ(state.entries, make_entries(1, 5000, 1));
  EXPECT_EQ(state.hard_state, (raft::HardState{1, 1, 5000}));
}

}  // namespace
}  // namespace raftlock::storage
