// SqliteLogStore — the durable LogStore: log, hard state and identity in one SQLite database
// (<data_dir>/raftlock.db, WAL, synchronous=FULL), snapshot data in a checksummed file beside it.
//
// One persist() or compact() call is one SQLite transaction; it returns only after the commit is
// on disk. open() refuses, with one clear error naming the path, a data dir that belongs to
// another node or cluster, was written by a newer schema, or fails validation; a refusal changes
// no file. The database is held with an exclusive lock, so a second process (or a second store in
// this process) cannot open the same data dir. Not thread-safe: one owner thread (the node's
// event loop) calls it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/log_store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace raftlock::storage {

class SqliteLogStore final : public LogStore {
 public:
  struct OpenOptions {
    std::string data_dir;                  // created if missing
    raft::NodeId node_id = raft::kNoNode;  // must match the node that created the data dir
    std::string cluster_id;                // must match the cluster that created the data dir
    // Accept an existing data dir's cluster id whatever `cluster_id` says (raftlockd: flags like
    // --initial-cluster only matter when the data dir is new). New stores record `cluster_id`.
    bool adopt_stored_cluster_id = false;
    raft::Configuration bootstrap_config;  // recorded only when the data dir is new
  };

  static constexpr int kSchemaVersion = 1;
  static constexpr const char* kDatabaseFileName = "raftlock.db";

  static Result<std::unique_ptr<SqliteLogStore>> open(const OpenOptions& options);

  ~SqliteLogStore() override;
  SqliteLogStore(const SqliteLogStore&) = delete;
  SqliteLogStore& operator=(const SqliteLogStore&) = delete;

  Result<PersistentState> load() override;
  Status persist(const std::optional<raft::HardState>& hard_state,
                 const std::vector<raft::Entry>& entries,
                 const std::optional<raft::Snapshot>& snapshot) override;
  Status compact(const raft::Snapshot& snapshot) override;

  // Copies the WAL into the database file and empties the WAL (for tests and maintenance).
  Status checkpoint();

  const std::string& database_path() const { return database_path_; }
  // The cluster this data dir belongs to.
  const std::string& cluster_id() const { return cluster_id_; }
  // The snapshot file's name for a snapshot at (term, index): snapshot-<term>-<index>.snap.
  static std::string snapshot_file_name(raft::Term term, raft::Index index);

 private:
  struct StoredSnapshot {
    raft::SnapshotMeta meta;
    std::string file_name;
    uint64_t file_size = 0;
    uint32_t checksum = 0;
  };
  struct StatementDeleter {
    void operator()(sqlite3_stmt* statement) const;
  };
  using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

  SqliteLogStore(std::string data_dir, std::string database_path, sqlite3* db);
  static Result<std::unique_ptr<SqliteLogStore>> open_existing(const OpenOptions& options,
                                                               const std::string& database_path);

  Status validate_and_read_identity(const OpenOptions& options);
  Status prepare_statements();
  void remove_unreferenced_files();

  Error sqlite_error(const std::string& what) const;
  Status execute(const char* sql);
  Status begin_immediate();
  Status commit();
  void rollback();
  Result<Statement> prepare(const char* sql) const;

  Result<std::optional<StoredSnapshot>> read_snapshot_row();
  Result<std::optional<raft::Term>> term_at(raft::Index index);
  Result<StoredSnapshot> write_snapshot_file(const raft::Snapshot& snapshot);
  Status write_snapshot_row(const StoredSnapshot& stored);
  void replace_snapshot_file(const std::optional<StoredSnapshot>& previous);

  std::string data_dir_;
  std::string cluster_id_;
  std::string database_path_;
  sqlite3* db_ = nullptr;
  raft::Configuration bootstrap_config_;

  // What is on disk, cached: the snapshot (if any) and the log's last (index, term).
  std::optional<StoredSnapshot> snapshot_;
  raft::Index last_index_ = 0;
  raft::Term last_term_ = 0;
  // The hard state on disk, once known (load() or a persist). A persist that changes only its
  // commit index is written without waiting for the disk (see persist()).
  std::optional<raft::HardState> stored_hard_state_;

  Statement insert_entry_;
  Statement delete_entries_from_;
  Statement delete_entries_through_;
  Statement delete_all_entries_;
  Statement select_term_;
  Statement select_entries_;
  Statement upsert_hard_state_;
  Statement select_hard_state_;
  Statement upsert_snapshot_;
  Statement select_snapshot_;
  Statement begin_;
  Statement commit_;
  Statement rollback_;
};

}  // namespace raftlock::storage
