// Data dirs that SqliteLogStore must refuse: each refusal has a clear message and changes no file.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "storage/sqlite_log_store.h"
#include "storage_test_support.h"

namespace raftlock::storage {
namespace {

using testing::fingerprint;
using testing::make_entries;
using testing::make_snapshot;
using testing::open_or_fail;
using testing::options_for;
using testing::TempDir;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Creates a store with a log, a snapshot and a hard state, then closes it cleanly.
void write_store(const std::string& dir, raft::Index entries = 40) {
  auto store = open_or_fail(options_for(dir));
  ASSERT_TRUE(store);
  ASSERT_TRUE(
      store->persist(raft::HardState{3, 1, entries}, make_entries(1, entries, 3), std::nullopt)
          .ok());
  ASSERT_TRUE(store->compact(make_snapshot(entries / 2, 3, std::string(3000, 'z') + "tail")).ok());
}

// Opens `options` expecting a refusal with `code`; checks the data dir is byte-for-byte unchanged.
Error expect_refused(const SqliteLogStore::OpenOptions& options, ErrorCode code) {
  const auto before = fingerprint(options.data_dir);
  auto opened = SqliteLogStore::open(options);
  EXPECT_FALSE(opened.ok());
  if (opened.ok()) return Error{ErrorCode::kInternal, "opened"};
  EXPECT_EQ(opened.error().code, code) << opened.error().message;
  EXPECT_EQ(fingerprint(options.data_dir), before) << "a refused open changed files";
  return opened.error();
}

void set_user_version(const std::string& path, int version) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const std::string sql = "PRAGMA user_version=" + std::to_string(version);
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
}

TEST(SqliteLogStoreRefusal, DataDirOfAnotherNode) {
  TempDir dir;
  write_store(dir.path());
  const Error error = expect_refused(options_for(dir.path(), 1 + 2), ErrorCode::kInvalidArgument);
  EXPECT_EQ(error.message, "data dir " + dir.path() + " belongs to node 1, not node 3");
}

TEST(SqliteLogStoreRefusal, DataDirOfAnotherCluster) {
  TempDir dir;
  write_store(dir.path());
  const Error error =
      expect_refused(options_for(dir.path(), 1, "cluster-b"), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(contains(error.message, dir.path())) << error.message;
  EXPECT_TRUE(
      contains(error.message, "belongs to cluster \"cluster-a\", not cluster \"cluster-b\""))
      << error.message;
}

TEST(SqliteLogStoreRefusal, NewerSchemaVersion) {
  TempDir dir;
  write_store(dir.path());
  set_user_version(dir.file("raftlock.db"), SqliteLogStore::kSchemaVersion + 1);
  const Error error = expect_refused(options_for(dir.path()), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(contains(error.message, dir.file("raftlock.db"))) << error.message;
  EXPECT_TRUE(contains(error.message, "newer raftlock (schema version 2")) << error.message;
}

TEST(SqliteLogStoreRefusal, SqliteDatabaseThatIsNotARaftlockStore) {
  TempDir dir;
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir.file("raftlock.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "CREATE TABLE t (x); INSERT INTO t VALUES (1);", nullptr, nullptr, nullptr),
      SQLITE_OK);
  ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
  const Error error = expect_refused(options_for(dir.path()), ErrorCode::kCorrupt);
  EXPECT_TRUE(contains(error.message, "is not a raftlock database")) << error.message;
}

TEST(SqliteLogStoreRefusal, GarbageFileAsDatabase) {
  TempDir dir;
  std::string garbage;
  for (int i = 0; i < 8192; ++i) garbage.push_back(static_cast<char>((i * 7919) % 251));
  testing::write_bytes(dir.file("raftlock.db"), garbage);
  const Error error = expect_refused(options_for(dir.path()), ErrorCode::kCorrupt);
  EXPECT_TRUE(contains(error.message, dir.file("raftlock.db") + " is not a valid SQLite database"))
      << error.message;
}

TEST(SqliteLogStoreRefusal, TruncatedDatabaseFile) {
  TempDir dir;
  {
    auto store = open_or_fail(options_for(dir.path()));
    ASSERT_TRUE(store);
    for (raft::Index first = 1; first <= 2000; first += 100) {
      auto batch = make_entries(first, first + 99, 1);
      for (auto& entry : batch) entry.data = std::string(300, static_cast<char>('a' + first % 26));
      ASSERT_TRUE(store->persist(raft::HardState{1, 1, first + 99}, batch, std::nullopt).ok());
    }
    ASSERT_TRUE(store->checkpoint().ok());
  }
  const std::string db_path = dir.file("raftlock.db");
  ASSERT_FALSE(std::filesystem::exists(db_path + "-wal"));  // everything is in the main file
  const auto size = std::filesystem::file_size(db_path);
  ASSERT_GT(size, 500000u);
  std::filesystem::resize_file(db_path, size / 2);
  const Error error = expect_refused(options_for(dir.path()), ErrorCode::kCorrupt);
  EXPECT_TRUE(contains(error.message, db_path)) << error.message;
  EXPECT_TRUE(contains(error.message, db_path + " is damaged")) << error.message;
}

// A page in the middle of the log overwritten with zeros: the file size and header are intact, so
// only the integrity check at open can find it.
TEST(SqliteLogStoreRefusal, ZeroedPageInsideTheDatabase) {
  TempDir dir;
  {
    auto store = open_or_fail(options_for(dir.path()));
    ASSERT_TRUE(store);
    auto batch = make_entries(1, 1500, 1);
    for (auto& entry : batch) entry.data = std::string(200, 'q');
    ASSERT_TRUE(store->persist(raft::HardState{1, 1, 1500}, batch, std::nullopt).ok());
    ASSERT_TRUE(store->checkpoint().ok());
  }
  const std::string db_path = dir.file("raftlock.db");
  std::string bytes = testing::read_bytes(db_path);
  const size_t page = 4096;
  const size_t middle = (bytes.size() / 2) / page * page;
  ASSERT_GT(middle, page);
  std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(middle),
            bytes.begin() + static_cast<std::ptrdiff_t>(middle + page), '\0');
  testing::write_bytes(db_path, bytes);
  const Error error = expect_refused(options_for(dir.path()), ErrorCode::kCorrupt);
  EXPECT_TRUE(contains(error.message, db_path + " is damaged (integrity check: ")) << error.message;
}

TEST(SqliteLogStoreRefusal, SnapshotFileWithAFlippedByte) {
  TempDir dir;
  write_store(dir.path());
  const std::string snap = dir.file("snapshot-3-20.snap");
  std::string bytes = testing::read_bytes(snap);
  ASSERT_EQ(bytes.size(), 3004u);
  bytes[1500] = static_cast<char>(bytes[1500] ^ 0x10);
  testing::write_bytes(snap, bytes);
  const auto before = fingerprint(dir.path());
  auto store = open_or_fail(options_for(dir.path()));  // the size is right: found by load()
  ASSERT_TRUE(store);
  auto loaded = store->load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code, ErrorCode::kCorrupt);
  EXPECT_TRUE(contains(loaded.error().message, "snapshot file " + snap + " fails its checksum"))
      << loaded.error().message;
  store.reset();
  EXPECT_EQ(fingerprint(dir.path()), before);
}

TEST(SqliteLogStoreRefusal, MissingSnapshotFile) {
  TempDir dir;
  write_store(dir.path());
  std::filesystem::remove(dir.file("snapshot-3-20.snap"));
  const Error error = expect_refused(options_for(dir.path()), ErrorCode::kCorrupt);
  EXPECT_TRUE(
      contains(error.message, "snapshot file " + dir.file("snapshot-3-20.snap") + " is missing"))
      << error.message;
}

TEST(SqliteLogStoreRefusal, SnapshotFileOfTheWrongSize) {
  TempDir dir;
  write_store(dir.path());
  testing::write_bytes(dir.file("snapshot-3-20.snap"), "short");
  const Error error = expect_refused(options_for(dir.path()), ErrorCode::kCorrupt);
  EXPECT_TRUE(
      contains(error.message, dir.file("snapshot-3-20.snap") + " has 5 bytes, expected 3004"))
      << error.message;
}

TEST(SqliteLogStoreRefusal, WalWithoutItsDatabase) {
  TempDir dir;
  testing::write_bytes(dir.file("raftlock.db-wal"), std::string(4096, 'w'));
  const Error error = expect_refused(options_for(dir.path()), ErrorCode::kCorrupt);
  EXPECT_TRUE(contains(error.message, "the database file is missing")) << error.message;
  EXPECT_FALSE(std::filesystem::exists(dir.file("raftlock.db")));
}

TEST(SqliteLogStoreRefusal, SnapshotWithoutItsDatabase) {
  TempDir dir;
  write_store(dir.path());
  std::filesystem::remove(dir.file("raftlock.db"));
  const Error error = expect_refused(options_for(dir.path()), ErrorCode::kCorrupt);
  EXPECT_TRUE(contains(error.message, "snapshot-3-20.snap but no raftlock.db")) << error.message;
}

TEST(SqliteLogStoreRefusal, DataDirUnderARegularFile) {
  TempDir dir;
  testing::write_bytes(dir.file("plain-file"), "not a directory");
  const std::string wanted = dir.file("plain-file") + "/data";
  const auto before = fingerprint(dir.path());
  auto opened = SqliteLogStore::open(options_for(wanted));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, ErrorCode::kIo);
  EXPECT_TRUE(contains(opened.error().message, "cannot create data dir " + wanted))
      << opened.error().message;
  EXPECT_EQ(fingerprint(dir.path()), before);
}

TEST(SqliteLogStoreRefusal, DataDirThatIsARegularFile) {
  TempDir dir;
  testing::write_bytes(dir.file("plain-file"), "not a directory");
  const auto before = fingerprint(dir.path());
  auto opened = SqliteLogStore::open(options_for(dir.file("plain-file")));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, ErrorCode::kIo);
  EXPECT_EQ(opened.error().message,
            "data dir " + dir.file("plain-file") + " exists but is not a directory");
  EXPECT_EQ(fingerprint(dir.path()), before);
}

// A WAL cut short is indistinguishable from a crash in the middle of writing it, so SQLite keeps
// the transactions whose frames are complete. What must hold: the store opens to a consistent,
// earlier state (whole transactions only), never to a torn one.
TEST(SqliteLogStoreRefusal, TruncatedWalKeepsWholeTransactionsOnly) {
  TempDir live;
  TempDir full_copy;
  TempDir cut_copy;
  constexpr raft::Index kBatches = 120;
  constexpr raft::Index kPerBatch = 5;
  auto store = open_or_fail(options_for(live.path()));
  ASSERT_TRUE(store);
  for (raft::Index b = 0; b < kBatches; ++b) {
    const raft::Index first = b * kPerBatch + 1;
    ASSERT_TRUE(store
                    ->persist(raft::HardState{1, 1, first + kPerBatch - 1},
                              make_entries(first, first + kPerBatch - 1, 1), std::nullopt)
                    .ok());
  }
  // Copy the files as a power cut would leave them (every commit is already written).
  const std::string wal = live.file("raftlock.db-wal");
  ASSERT_TRUE(std::filesystem::exists(wal));
  const std::string wal_bytes = testing::read_bytes(wal);
  ASSERT_GT(wal_bytes.size(), 100000u);
  for (const TempDir* copy : {&full_copy, &cut_copy}) {
    std::filesystem::copy_file(live.file("raftlock.db"), copy->file("raftlock.db"));
  }
  testing::write_bytes(full_copy.file("raftlock.db-wal"), wal_bytes);
  testing::write_bytes(cut_copy.file("raftlock.db-wal"), wal_bytes.substr(0, wal_bytes.size() / 2));

  auto full = open_or_fail(options_for(full_copy.path()));
  ASSERT_TRUE(full);
  auto full_state = full->load();
  ASSERT_TRUE(full_state.ok());
  EXPECT_EQ(full_state->entries, make_entries(1, kBatches * kPerBatch, 1));

  auto cut = open_or_fail(options_for(cut_copy.path()));
  ASSERT_TRUE(cut);
  auto cut_state = cut->load();
  ASSERT_TRUE(cut_state.ok()) << cut_state.error().message;
  const auto kept = cut_state->entries.size();
  EXPECT_LT(kept, kBatches * kPerBatch);
  EXPECT_EQ(kept % kPerBatch, 0u) << "a batch was torn";
  EXPECT_EQ(cut_state->entries, make_entries(1, kept, 1));
  EXPECT_EQ(cut_state->hard_state.commit, kept)
      << "hard state and entries come from different batches";
}

// raftlockd adopts the stored cluster id on restart: --initial-cluster only matters when new.
TEST(SqliteLogStoreRefusal, AdoptStoredClusterIdAcceptsTheDataDirAndReportsIt) {
  TempDir dir;
  write_store(dir.path());
  auto options = options_for(dir.path(), 1, "cluster-b");
  options.adopt_stored_cluster_id = true;
  auto store = open_or_fail(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->cluster_id(), "cluster-a");
  store.reset();
  // Still refused for another node, adoption or not.
  auto other_node = options_for(dir.path(), 2, "cluster-a");
  other_node.adopt_stored_cluster_id = true;
  expect_refused(other_node, ErrorCode::kInvalidArgument);
}

TEST(SqliteLogStoreRefusal, NewStoreRecordsTheGivenClusterId) {
  TempDir dir;
  auto options = options_for(dir.path(), 1, "cluster-new");
  options.adopt_stored_cluster_id = true;
  auto store = open_or_fail(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->cluster_id(), "cluster-new");
}

}  // namespace
}  // namespace raftlock::storage
