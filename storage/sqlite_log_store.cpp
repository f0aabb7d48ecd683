#include "storage/sqlite_log_store.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "storage/codec.h"
#include "storage/crc32c.h"
#include "storage/data_dir.h"

namespace raftlock::storage {
namespace {

// The temporary name a new database is built under; renamed to raftlock.db once complete, so a
// raftlock.db that exists is always a fully initialised store.
constexpr const char* kCreatingDatabaseName = "raftlock.db.creating";

constexpr const char* kSchemaSql = R"sql(
CREATE TABLE meta (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  node_id INTEGER NOT NULL,
  cluster_id TEXT NOT NULL,
  bootstrap_config BLOB NOT NULL
);
CREATE TABLE hard_state (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  term INTEGER NOT NULL,
  vote INTEGER NOT NULL,
  commit_index INTEGER NOT NULL
);
CREATE TABLE entries (
  idx INTEGER PRIMARY KEY,
  term INTEGER NOT NULL,
  type INTEGER NOT NULL,
  data BLOB NOT NULL
);
CREATE TABLE snapshot (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  idx INTEGER NOT NULL,
  term INTEGER NOT NULL,
  config BLOB NOT NULL,
  file_name TEXT NOT NULL,
  file_size INTEGER NOT NULL,
  crc32c INTEGER NOT NULL
);
)sql";

bool path_exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

bool is_snapshot_file(const std::string& name) {
  return starts_with(name, "snapshot-") &&
         (ends_with(name, ".snap") || ends_with(name, ".snap.tmp"));
}

ErrorCode code_for_sqlite(int rc) {
  switch (rc & 0xFF) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return ErrorCode::kCorrupt;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return ErrorCode::kBusy;
    default:
      return ErrorCode::kIo;
  }
}

Error sqlite_error_for(sqlite3* db, int rc, const std::string& what, const std::string& path) {
  std::string message = what + " in " + path + ": ";
  message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  if ((rc & 0xFF) == SQLITE_BUSY) {
    message += " (the data dir is in use by another raftlock process or store)";
  }
  return make_error(code_for_sqlite(rc), std::move(message));
}

int64_t to_sql(uint64_t value) {
  return static_cast<int64_t>(value);
}
uint64_t from_sql(int64_t value) {
  return static_cast<uint64_t>(value);
}

std::string column_blob(sqlite3_stmt* statement, int column) {
  const void* bytes = sqlite3_column_blob(statement, column);
  const int size = sqlite3_column_bytes(statement, column);
  if (bytes == nullptr || size <= 0) return {};
  return std::string(static_cast<const char*>(bytes), static_cast<size_t>(size));
}

std::string column_text(sqlite3_stmt* statement, int column) {
  const unsigned char* text = sqlite3_column_text(statement, column);
  const int size = sqlite3_column_bytes(statement, column);
  if (text == nullptr || size <= 0) return {};
  return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(size));
}

// Resets a cached statement (and its bindings) when the current use of it ends.
class StatementUse {
 public:
  explicit StatementUse(sqlite3_stmt* statement) : statement_(statement) {}
  ~StatementUse() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }
  StatementUse(const StatementUse&) = delete;
  StatementUse& operator=(const StatementUse&) = delete;

 private:
  sqlite3_stmt* statement_;
};

// A raw connection that is closed on scope exit (used while building a new database).
class Connection {
 public:
  Connection() = default;
  ~Connection() {
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  sqlite3** out() { return &db_; }
  sqlite3* get() const { return db_; }
  sqlite3* release() { return std::exchange(db_, nullptr); }

 private:
  sqlite3* db_ = nullptr;
};

// Runs one statement that may return rows and gives the first column of the first row ("" if none).
Result<std::string> query_first_text(sqlite3* db, const char* sql, const std::string& path) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
  if (rc != SQLITE_OK) return sqlite_error_for(db, rc, std::string("cannot run ") + sql, path);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> statement(raw, sqlite3_finalize);
  rc = sqlite3_step(raw);
  if (rc == SQLITE_ROW) return column_text(raw, 0);
  if (rc == SQLITE_DONE) return std::string();
  return sqlite_error_for(db, rc, std::string("cannot run ") + sql, path);
}

Status exec(sqlite3* db, const char* sql, const std::string& path) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sqlite_error_for(db, rc, std::string("cannot run ") + sql, path);
  return Ok{};
}

// Exclusive locking before the first access keeps the WAL index in process memory (no -shm file)
// and holds the database lock for the connection's lifetime: one process owns a data dir.
Status set_connection_pragmas(sqlite3* db, const std::string& path) {
  if (auto s = exec(db, "PRAGMA locking_mode=EXCLUSIVE", path); !s) return s;
  auto mode = query_first_text(db, "PRAGMA journal_mode=WAL", path);
  if (!mode) return mode.error();
  if (*mode != "wal") {
    return make_error(ErrorCode::kIo, "cannot switch " + path + " to WAL mode (got " + *mode + ")");
  }
  return exec(db, "PRAGMA synchronous=FULL", path);
}

// Builds a new store under a temporary name and renames it to `database_path` once complete.
Status create_database(const std::string& data_dir, const std::string& database_path,
                       const SqliteLogStore::OpenOptions& options) {
  const std::string temp_path = join_path(data_dir, kCreatingDatabaseName);
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    if (auto s = remove_file(temp_path + suffix); !s) return s;
  }
  Connection connection;
  int rc = sqlite3_open_v2(temp_path.c_str(), connection.out(),
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK)
    return sqlite_error_for(connection.get(), rc, "cannot create database", temp_path);
  sqlite3* db = connection.get();
  if (auto s = set_connection_pragmas(db, temp_path); !s) return s;
  if (auto s = exec(db, "BEGIN IMMEDIATE", temp_path); !s) return s;
  if (auto s = exec(db, kSchemaSql, temp_path); !s) return s;
  {
    sqlite3_stmt* raw = nullptr;
    rc = sqlite3_prepare_v2(db,
                            "INSERT INTO meta (id, node_id, cluster_id, bootstrap_config) "
                            "VALUES (0, ?, ?, ?)",
                            -1, &raw, nullptr);
    if (rc != SQLITE_OK) return sqlite_error_for(db, rc, "cannot record identity", temp_path);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> insert(raw, sqlite3_finalize);
    const std::string config = encode_configuration(options.bootstrap_config);
    sqlite3_bind_int64(raw, 1, to_sql(options.node_id));
    sqlite3_bind_text(raw, 2, options.cluster_id.data(),
                      static_cast<int>(options.cluster_id.size()), SQLITE_TRANSIENT);
    sqlite3_bind_blob(raw, 3, config.data(), static_cast<int>(config.size()), SQLITE_TRANSIENT);
    rc = sqlite3_step(raw);
    if (rc != SQLITE_DONE) return sqlite_error_for(db, rc, "cannot record identity", temp_path);
  }
  const std::string set_version =
      "PRAGMA user_version=" + std::to_string(SqliteLogStore::kSchemaVersion);
  if (auto s = exec(db, set_version.c_str(), temp_path); !s) return s;
  if (auto s = exec(db, "COMMIT", temp_path); !s) return s;
  // Move everything into the main file so the rename below carries the whole database.
  auto busy = query_first_text(db, "PRAGMA wal_checkpoint(TRUNCATE)", temp_path);
  if (!busy) return busy.error();
  if (*busy != "0")
    return make_error(ErrorCode::kIo, "cannot checkpoint new database " + temp_path);
  rc = sqlite3_close(connection.release());
  if (rc != SQLITE_OK) return sqlite_error_for(nullptr, rc, "cannot close new database", temp_path);
  if (path_exists(temp_path + "-wal")) {
    auto wal = read_whole_file(temp_path + "-wal");
    if (!wal) return wal.error();
    if (!wal->empty()) {
      return make_error(ErrorCode::kIo,
                        "new database " + temp_path + " left a non-empty WAL behind");
    }
    if (auto s = remove_file(temp_path + "-wal"); !s) return s;
  }
  if (auto s = fsync_file(temp_path); !s) return s;
  if (std::rename(temp_path.c_str(), database_path.c_str()) != 0) {
    return make_error(ErrorCode::kIo, "cannot rename " + temp_path + " to " + database_path + ": " +
                                          std::strerror(errno));
  }
  return fsync_directory(data_dir);
}

}  // namespace

void SqliteLogStore::StatementDeleter::operator()(sqlite3_stmt* statement) const {
  sqlite3_finalize(statement);
}

std::string SqliteLogStore::snapshot_file_name(raft::Term term, raft::Index index) {
  return "snapshot-" + std::to_string(term) + "-" + std::to_string(index) + ".snap";
}

SqliteLogStore::SqliteLogStore(std::string data_dir, std::string database_path, sqlite3* db)
    : data_dir_(std::move(data_dir)), database_path_(std::move(database_path)), db_(db) {}

SqliteLogStore::~SqliteLogStore() {
  // Statements must be finalized before the connection closes.
  for (Statement* statement :
       {&insert_entry_, &delete_entries_from_, &delete_entries_through_, &delete_all_entries_,
        &select_term_, &select_entries_, &upsert_hard_state_, &select_hard_state_,
        &upsert_snapshot_, &select_snapshot_, &begin_, &commit_, &rollback_}) {
    statement->reset();
  }
  if (db_ != nullptr) {
    int rc = sqlite3_close(db_);
    if (rc != SQLITE_OK) {
      spdlog::error("storage: closing {} failed: {}", database_path_, sqlite3_errstr(rc));
      sqlite3_close_v2(db_);
    }
  }
}

Result<std::unique_ptr<SqliteLogStore>> SqliteLogStore::open(const OpenOptions& options) {
  if (options.node_id == raft::kNoNode) {
    return make_error(ErrorCode::kInvalidArgument, "node id must be a positive integer");
  }
  if (auto s = validate_configuration(options.bootstrap_config); !s) {
    return make_error(ErrorCode::kInvalidArgument, "bootstrap configuration: " + s.error().message);
  }
  if (auto s = ensure_writable_directory(options.data_dir); !s) return s.error();

  const std::string database_path = join_path(options.data_dir, kDatabaseFileName);
  if (!path_exists(database_path)) {
    // A WAL or snapshot without its database means the database was lost: starting an empty log
    // here would silently forget acknowledged entries.
    if (path_exists(database_path + "-wal")) {
      return make_error(ErrorCode::kCorrupt,
                        "data dir " + options.data_dir + " has " + kDatabaseFileName +
                            "-wal but no " + kDatabaseFileName + ": the database file is missing");
    }
    auto names = list_files(options.data_dir);
    if (!names) return names.error();
    for (const auto& name : *names) {
      if (starts_with(name, "snapshot-") && ends_with(name, ".snap")) {
        return make_error(ErrorCode::kCorrupt,
                          "data dir " + options.data_dir + " has snapshot file " + name +
                              " but no " + kDatabaseFileName + ": the database file is missing");
      }
    }
    if (auto s = create_database(options.data_dir, database_path, options); !s) return s.error();
    spdlog::info("storage: created new store {} for node {}", database_path, options.node_id);
  }

  // Opening a WAL database creates an empty -wal file; a refused open removes it again so that
  // a refusal leaves the data dir exactly as it found it.
  const std::string wal_path = database_path + "-wal";
  const bool wal_existed = path_exists(wal_path);
  auto opened = open_existing(options, database_path);
  if (!opened && !wal_existed) {
    struct stat info {};
    if (::stat(wal_path.c_str(), &info) == 0 && info.st_size == 0) (void)remove_file(wal_path);
  }
  return opened;
}

Result<std::unique_ptr<SqliteLogStore>> SqliteLogStore::open_existing(
    const OpenOptions& options, const std::string& database_path) {
  Connection connection;
  int rc = sqlite3_open_v2(database_path.c_str(), connection.out(), SQLITE_OPEN_READWRITE, nullptr);
  if (rc != SQLITE_OK) {
    return sqlite_error_for(connection.get(), rc, "cannot open database", database_path);
  }
  std::unique_ptr<SqliteLogStore> store(
      new SqliteLogStore(options.data_dir, database_path, connection.release()));
  // Until the store is validated, closing must not checkpoint: a refusal changes no file.
  sqlite3_db_config(store->db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  if (auto s = store->validate_and_read_identity(options); !s) return s.error();
  sqlite3_db_config(store->db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
  if (auto s = set_connection_pragmas(store->db_, database_path); !s) return s.error();
  if (auto s = store->prepare_statements(); !s) return s.error();
  store->remove_unreferenced_files();
  spdlog::info("storage: opened {} (node {}, snapshot index {}, last index {})", database_path,
               options.node_id, store->snapshot_ ? store->snapshot_->meta.index : 0,
               store->last_index_);
  return store;
}

Status SqliteLogStore::validate_and_read_identity(const OpenOptions& options) {
  const std::string& path = database_path_;
  if (auto s = execute("PRAGMA locking_mode=EXCLUSIVE"); !s) return s;
  // Reading inside one transaction takes (and, in exclusive mode, keeps) the database lock.
  auto explain_damage = [&](const Error& error) -> Error {
    if (error.code != ErrorCode::kCorrupt) return error;
    if ((sqlite3_errcode(db_) & 0xFF) == SQLITE_NOTADB) {
      return make_error(ErrorCode::kCorrupt,
                        path + " is not a valid SQLite database (" + sqlite3_errmsg(db_) + ")");
    }
    return make_error(ErrorCode::kCorrupt, path + " is damaged (" + sqlite3_errmsg(db_) + ")");
  };
  if (auto s = execute("BEGIN IMMEDIATE"); !s) return explain_damage(s.error());
  auto version_text = query_first_text(db_, "PRAGMA user_version", path);
  if (!version_text) return explain_damage(version_text.error());
  const long long version = std::stoll(version_text->empty() ? "0" : *version_text);
  if (version > kSchemaVersion) {
    return make_error(ErrorCode::kInvalidArgument,
                      path + " was written by a newer raftlock (schema version " +
                          std::to_string(version) + "; this build understands up to " +
                          std::to_string(kSchemaVersion) + ")");
  }
  if (version < 1) {
    return make_error(ErrorCode::kCorrupt,
                      path + " is not a raftlock database (it has no schema version)");
  }

  {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_, "PRAGMA quick_check", -1, &raw, nullptr);
    if (rc != SQLITE_OK) {
      return make_error(ErrorCode::kCorrupt,
                        path + " is damaged (integrity check: " + sqlite3_errmsg(db_) + ")");
    }
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> check(raw, sqlite3_finalize);
    rc = sqlite3_step(raw);
    if (rc != SQLITE_ROW) {
      return make_error(ErrorCode::kCorrupt,
                        path + " is damaged (integrity check: " + sqlite3_errmsg(db_) + ")");
    }
    const std::string first = column_text(raw, 0);
    if (first != "ok") {
      return make_error(ErrorCode::kCorrupt, path + " is damaged (integrity check: " + first + ")");
    }
  }

  {
    auto select = prepare("SELECT node_id, cluster_id, bootstrap_config FROM meta WHERE id = 0");
    if (!select) {
      return make_error(ErrorCode::kCorrupt,
                        path + " has no identity record: " + select.error().message);
    }
    sqlite3_stmt* raw = select->get();
    int rc = sqlite3_step(raw);
    if (rc != SQLITE_ROW) {
      return make_error(ErrorCode::kCorrupt, path + " has no identity record");
    }
    const raft::NodeId stored_node = from_sql(sqlite3_column_int64(raw, 0));
    const std::string stored_cluster = column_text(raw, 1);
    if (stored_node != options.node_id) {
      return make_error(ErrorCode::kInvalidArgument, "data dir " + data_dir_ + " belongs to node " +
                                                         std::to_string(stored_node) +
                                                         ", not node " +
                                                         std::to_string(options.node_id));
    }
    if (stored_cluster != options.cluster_id && !options.adopt_stored_cluster_id) {
      return make_error(ErrorCode::kInvalidArgument,
                        "data dir " + data_dir_ + " belongs to cluster \"" + stored_cluster +
                            "\", not cluster \"" + options.cluster_id + "\"");
    }
    auto config = decode_configuration(column_blob(raw, 2));
    if (!config) {
      return make_error(ErrorCode::kCorrupt,
                        path + " has a damaged bootstrap configuration: " + config.error().message);
    }
    bootstrap_config_ = std::move(*config);
    cluster_id_ = stored_cluster;
  }

  auto snapshot = read_snapshot_row();
  if (!snapshot) return snapshot.error();
  snapshot_ = std::move(*snapshot);
  if (snapshot_) {
    const std::string file = join_path(data_dir_, snapshot_->file_name);
    struct stat info {};
    if (::stat(file.c_str(), &info) != 0) {
      return make_error(ErrorCode::kCorrupt, "snapshot file " + file + " is missing (" + path +
                                                 " records snapshot index " +
                                                 std::to_string(snapshot_->meta.index) + ")");
    }
    if (static_cast<uint64_t>(info.st_size) != snapshot_->file_size) {
      return make_error(ErrorCode::kCorrupt,
                        "snapshot file " + file + " has " + std::to_string(info.st_size) +
                            " bytes, expected " + std::to_string(snapshot_->file_size));
    }
  }

  {
    auto select = prepare("SELECT idx, term FROM entries ORDER BY idx DESC LIMIT 1");
    if (!select) return make_error(ErrorCode::kCorrupt, path + ": " + select.error().message);
    sqlite3_stmt* raw = select->get();
    int rc = sqlite3_step(raw);
    if (rc == SQLITE_ROW) {
      last_index_ = from_sql(sqlite3_column_int64(raw, 0));
      last_term_ = from_sql(sqlite3_column_int64(raw, 1));
    } else if (rc == SQLITE_DONE) {
      last_index_ = snapshot_ ? snapshot_->meta.index : 0;
      last_term_ = snapshot_ ? snapshot_->meta.term : 0;
    } else {
      return sqlite_error("cannot read the last log entry");
    }
    if (snapshot_ && last_index_ < snapshot_->meta.index) {
      return make_error(ErrorCode::kCorrupt, path +
                                                 " holds entries at or below its snapshot index " +
                                                 std::to_string(snapshot_->meta.index));
    }
  }
  return execute("COMMIT");
}

Status SqliteLogStore::prepare_statements() {
  struct Spec {
    Statement* statement;
    const char* sql;
  };
  const Spec specs[] = {
      {&insert_entry_, "INSERT INTO entries (idx, term, type, data) VALUES (?, ?, ?, ?)"},
      {&delete_entries_from_, "DELETE FROM entries WHERE idx >= ?"},
      {&delete_entries_through_, "DELETE FROM entries WHERE idx <= ?"},
      {&delete_all_entries_, "DELETE FROM entries"},
      {&select_term_, "SELECT term FROM entries WHERE idx = ?"},
      {&select_entries_, "SELECT idx, term, type, data FROM entries ORDER BY idx"},
      {&upsert_hard_state_,
       "INSERT OR REPLACE INTO hard_state (id, term, vote, commit_index) VALUES (0, ?, ?, ?)"},
      {&select_hard_state_, "SELECT term, vote, commit_index FROM hard_state WHERE id = 0"},
      {&upsert_snapshot_,
       "INSERT OR REPLACE INTO snapshot (id, idx, term, config, file_name, file_size, crc32c) "
       "VALUES (0, ?, ?, ?, ?, ?, ?)"},
      {&select_snapshot_,
       "SELECT idx, term, config, file_name, file_size, crc32c FROM snapshot WHERE id = 0"},
      {&begin_, "BEGIN IMMEDIATE"},
      {&commit_, "COMMIT"},
      {&rollback_, "ROLLBACK"},
  };
  for (const auto& spec : specs) {
    auto statement = prepare(spec.sql);
    if (!statement) return statement.error();
    *spec.statement = std::move(*statement);
  }
  return Ok{};
}

void SqliteLogStore::remove_unreferenced_files() {
  auto names = list_files(data_dir_);
  if (!names) return;
  bool removed = false;
  for (const auto& name : *names) {
    const bool stale_snapshot =
        is_snapshot_file(name) && !(snapshot_ && snapshot_->file_name == name);
    const bool stale_creation = starts_with(name, kCreatingDatabaseName);
    if (!stale_snapshot && !stale_creation) continue;
    const std::string path = join_path(data_dir_, name);
    if (auto s = remove_file(path); !s) {
      spdlog::warn("storage: {}", s.error().message);
    } else {
      spdlog::info("storage: removed unreferenced file {}", path);
      removed = true;
    }
  }
  if (removed) (void)fsync_directory(data_dir_);
}

Error SqliteLogStore::sqlite_error(const std::string& what) const {
  return sqlite_error_for(db_, sqlite3_errcode(db_), what, database_path_);
}

Status SqliteLogStore::execute(const char* sql) {
  return exec(db_, sql, database_path_);
}

Result<SqliteLogStore::Statement> SqliteLogStore::prepare(const char* sql) const {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(raw);
    return sqlite_error_for(db_, rc, std::string("cannot prepare ") + sql, database_path_);
  }
  return Statement(raw);
}

Status SqliteLogStore::begin_immediate() {
  StatementUse use(begin_.get());
  if (sqlite3_step(begin_.get()) != SQLITE_DONE) return sqlite_error("cannot begin a transaction");
  return Ok{};
}

Status SqliteLogStore::commit() {
  StatementUse use(commit_.get());
  if (sqlite3_step(commit_.get()) != SQLITE_DONE) return sqlite_error("cannot commit");
  return Ok{};
}

void SqliteLogStore::rollback() {
  if (sqlite3_get_autocommit(db_)) return;  // no transaction is open (SQLite already rolled back)
  StatementUse use(rollback_.get());
  if (sqlite3_step(rollback_.get()) != SQLITE_DONE) {
    spdlog::error("storage: rollback in {} failed: {}", database_path_, sqlite3_errmsg(db_));
  }
}

Result<std::optional<SqliteLogStore::StoredSnapshot>> SqliteLogStore::read_snapshot_row() {
  Statement owned;
  sqlite3_stmt* raw = select_snapshot_.get();
  if (raw == nullptr) {  // during open, before the statement cache exists
    auto prepared = prepare(
        "SELECT idx, term, config, file_name, file_size, crc32c FROM snapshot WHERE id = 0");
    if (!prepared) {
      return make_error(ErrorCode::kCorrupt, database_path_ + ": " + prepared.error().message);
    }
    owned = std::move(*prepared);
    raw = owned.get();
  }
  StatementUse use(raw);
  int rc = sqlite3_step(raw);
  if (rc == SQLITE_DONE) return std::optional<StoredSnapshot>();
  if (rc != SQLITE_ROW) return sqlite_error("cannot read the snapshot record");
  StoredSnapshot stored;
  stored.meta.index = from_sql(sqlite3_column_int64(raw, 0));
  stored.meta.term = from_sql(sqlite3_column_int64(raw, 1));
  auto config = decode_configuration(column_blob(raw, 2));
  if (!config) {
    return make_error(
        ErrorCode::kCorrupt,
        database_path_ + " has a damaged snapshot configuration: " + config.error().message);
  }
  stored.meta.config = std::move(*config);
  stored.file_name = column_text(raw, 3);
  stored.file_size = from_sql(sqlite3_column_int64(raw, 4));
  stored.checksum = static_cast<uint32_t>(sqlite3_column_int64(raw, 5));
  if (stored.file_name.empty() || stored.file_name.find('/') != std::string::npos) {
    return make_error(ErrorCode::kCorrupt, database_path_ + " has a bad snapshot file name \"" +
                                               stored.file_name + "\"");
  }
  return std::optional<StoredSnapshot>(std::move(stored));
}

Result<std::optional<raft::Term>> SqliteLogStore::term_at(raft::Index index) {
  if (snapshot_ && index == snapshot_->meta.index)
    return std::optional<raft::Term>(snapshot_->meta.term);
  if (index == 0) return std::optional<raft::Term>(0);
  StatementUse use(select_term_.get());
  sqlite3_bind_int64(select_term_.get(), 1, to_sql(index));
  int rc = sqlite3_step(select_term_.get());
  if (rc == SQLITE_ROW) {
    return std::optional<raft::Term>(from_sql(sqlite3_column_int64(select_term_.get(), 0)));
  }
  if (rc == SQLITE_DONE) return std::optional<raft::Term>();
  return sqlite_error("cannot read the term of entry " + std::to_string(index));
}

Result<SqliteLogStore::StoredSnapshot> SqliteLogStore::write_snapshot_file(
    const raft::Snapshot& snapshot) {
  if (!snapshot.data) return make_error(ErrorCode::kInvalidArgument, "snapshot has no data");
  if (auto s = validate_configuration(snapshot.meta.config); !s) {
    return make_error(ErrorCode::kInvalidArgument, "snapshot configuration: " + s.error().message);
  }
  StoredSnapshot stored;
  stored.meta = snapshot.meta;
  stored.file_name = snapshot_file_name(snapshot.meta.term, snapshot.meta.index);
  if (snapshot_ && snapshot_->file_name == stored.file_name) {
    // The same (term, index) is the same state machine state: keep the file already on disk
    // rather than overwrite the bytes the committed record's checksum describes.
    stored.file_size = snapshot_->file_size;
    stored.checksum = snapshot_->checksum;
    return stored;
  }
  stored.file_size = snapshot.data->size();
  stored.checksum = crc32c(*snapshot.data);
  if (auto s = write_file_durably(data_dir_, stored.file_name, *snapshot.data); !s)
    return s.error();
  return stored;
}

Status SqliteLogStore::write_snapshot_row(const StoredSnapshot& stored) {
  sqlite3_stmt* raw = upsert_snapshot_.get();
  StatementUse use(raw);
  const std::string config = encode_configuration(stored.meta.config);
  sqlite3_bind_int64(raw, 1, to_sql(stored.meta.index));
  sqlite3_bind_int64(raw, 2, to_sql(stored.meta.term));
  sqlite3_bind_blob(raw, 3, config.data(), static_cast<int>(config.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(raw, 4, stored.file_name.data(), static_cast<int>(stored.file_name.size()),
                    SQLITE_TRANSIENT);
  sqlite3_bind_int64(raw, 5, to_sql(stored.file_size));
  sqlite3_bind_int64(raw, 6, static_cast<int64_t>(stored.checksum));
  if (sqlite3_step(raw) != SQLITE_DONE) return sqlite_error("cannot record the snapshot");
  return Ok{};
}

void SqliteLogStore::replace_snapshot_file(const std::optional<StoredSnapshot>& previous) {
  if (!previous || (snapshot_ && snapshot_->file_name == previous->file_name)) return;
  if (auto s = remove_file(join_path(data_dir_, previous->file_name)); !s) {
    spdlog::warn("storage: {}", s.error().message);  // removed again at the next open
  }
}

Result<PersistentState> SqliteLogStore::load() {
  PersistentState state;
  state.bootstrap_config = bootstrap_config_;
  {
    sqlite3_stmt* raw = select_hard_state_.get();
    StatementUse use(raw);
    int rc = sqlite3_step(raw);
    if (rc == SQLITE_ROW) {
      state.hard_state.term = from_sql(sqlite3_column_int64(raw, 0));
      state.hard_state.vote = from_sql(sqlite3_column_int64(raw, 1));
      state.hard_state.commit = from_sql(sqlite3_column_int64(raw, 2));
    } else if (rc != SQLITE_DONE) {
      return sqlite_error("cannot read the hard state");
    }
  }
  stored_hard_state_ = state.hard_state;

  auto stored = read_snapshot_row();
  if (!stored) return stored.error();
  raft::Index base_index = 0;
  raft::Term base_term = 0;
  if (*stored) {
    const StoredSnapshot& meta = **stored;
    const std::string file = join_path(data_dir_, meta.file_name);
    auto data = read_whole_file(file);
    if (!data) {
      return make_error(
          ErrorCode::kCorrupt,
          "snapshot file " + file + " is missing or unreadable: " + data.error().message);
    }
    if (data->size() != meta.file_size) {
      return make_error(ErrorCode::kCorrupt,
                        "snapshot file " + file + " has " + std::to_string(data->size()) +
                            " bytes, expected " + std::to_string(meta.file_size));
    }
    const uint32_t checksum = crc32c(*data);
    if (checksum != meta.checksum) {
      char detail[96];
      std::snprintf(detail, sizeof detail, " (crc32c %08x, expected %08x)", checksum,
                    meta.checksum);
      return make_error(ErrorCode::kCorrupt,
                        "snapshot file " + file + " fails its checksum" + detail);
    }
    raft::Snapshot snapshot;
    snapshot.meta = meta.meta;
    snapshot.data = std::make_shared<const std::string>(std::move(*data));
    base_index = meta.meta.index;
    base_term = meta.meta.term;
    state.snapshot = std::move(snapshot);
  }

  sqlite3_stmt* raw = select_entries_.get();
  StatementUse use(raw);
  raft::Index expected = base_index + 1;
  raft::Term previous_term = base_term;
  for (;;) {
    int rc = sqlite3_step(raw);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return sqlite_error("cannot read the log");
    raft::Entry entry;
    entry.index = from_sql(sqlite3_column_int64(raw, 0));
    entry.term = from_sql(sqlite3_column_int64(raw, 1));
    const int64_t type = sqlite3_column_int64(raw, 2);
    if (entry.index != expected) {
      return make_error(ErrorCode::kCorrupt,
                        "log in " + database_path_ + " has a gap: expected entry " +
                            std::to_string(expected) + ", found " + std::to_string(entry.index));
    }
    if (entry.term < previous_term) {
      return make_error(ErrorCode::kCorrupt,
                        "log in " + database_path_ + " has a term going backwards at entry " +
                            std::to_string(entry.index) + " (term " + std::to_string(entry.term) +
                            " after term " + std::to_string(previous_term) + ")");
    }
    if (type < 0 || type > static_cast<int64_t>(raft::EntryType::kConfChange)) {
      return make_error(ErrorCode::kCorrupt, "log in " + database_path_ + " has entry " +
                                                 std::to_string(entry.index) + " of unknown type " +
                                                 std::to_string(type));
    }
    entry.type = static_cast<raft::EntryType>(type);
    entry.data = column_blob(raw, 3);
    previous_term = entry.term;
    ++expected;
    state.entries.push_back(std::move(entry));
  }
  return state;
}

Status SqliteLogStore::persist(const std::optional<raft::HardState>& hard_state,
                               const std::vector<raft::Entry>& entries,
                               const std::optional<raft::Snapshot>& snapshot) {
  if (!hard_state && entries.empty() && !snapshot) return Ok{};

  // Validate first: nothing that load() would refuse may reach the disk.
  const raft::Index base_index =
      snapshot ? snapshot->meta.index : (snapshot_ ? snapshot_->meta.index : 0);
  const raft::Index last_index = snapshot ? snapshot->meta.index : last_index_;
  if (!entries.empty()) {
    const raft::Index first = entries.front().index;
    if (first <= base_index) {
      return make_error(ErrorCode::kInvalidArgument, "append at entry " + std::to_string(first) +
                                                         " is below the snapshot index " +
                                                         std::to_string(base_index));
    }
    if (first > last_index + 1) {
      return make_error(ErrorCode::kInvalidArgument, "append at entry " + std::to_string(first) +
                                                         " leaves a gap after entry " +
                                                         std::to_string(last_index));
    }
    raft::Term previous_term = 0;
    if (snapshot && first == snapshot->meta.index + 1) {
      previous_term = snapshot->meta.term;
    } else {
      auto term = term_at(first - 1);
      if (!term) return term.error();
      if (!*term) {
        return make_error(ErrorCode::kInternal, "entry " + std::to_string(first - 1) +
                                                    " is missing from " + database_path_);
      }
      previous_term = **term;
    }
    raft::Index expected = first;
    for (const auto& entry : entries) {
      if (entry.index != expected) {
        return make_error(ErrorCode::kInvalidArgument,
                          "append batch is not contiguous at entry " + std::to_string(entry.index));
      }
      if (entry.term < previous_term) {
        return make_error(
            ErrorCode::kInvalidArgument,
            "append batch has a term going backwards at entry " + std::to_string(entry.index));
      }
      if (entry.type > raft::EntryType::kConfChange) {
        return make_error(ErrorCode::kInvalidArgument,
                          "entry " + std::to_string(entry.index) + " has an unknown type");
      }
      previous_term = entry.term;
      ++expected;
    }
  }

  std::optional<StoredSnapshot> new_snapshot;
  bool wrote_snapshot_file = false;
  if (snapshot) {
    auto written = write_snapshot_file(*snapshot);
    if (!written) return written.error();
    wrote_snapshot_file = !(snapshot_ && snapshot_->file_name == written->file_name);
    new_snapshot = std::move(*written);
  }
  auto fail = [&](Error error) -> Status {
    rollback();
    if (wrote_snapshot_file) (void)remove_file(join_path(data_dir_, new_snapshot->file_name));
    spdlog::error("storage: persist failed: {}", error.message);
    return error;
  };

  // A Ready that only moves the commit index acknowledges nothing: the commit index can always be
  // learned again from the leader, so this write need not wait for the disk (etcd skips the sync
  // the same way). It is not lost on a process crash (it is in the WAL), and the next synced
  // transaction makes it durable with everything before it (the WAL is written in order).
  const bool commit_only = !snapshot && entries.empty() && hard_state && stored_hard_state_ &&
                           hard_state->term == stored_hard_state_->term &&
                           hard_state->vote == stored_hard_state_->vote &&
                           hard_state->commit >= stored_hard_state_->commit;
  if (commit_only) {
    if (auto s = exec(db_, "PRAGMA synchronous=NORMAL", database_path_); !s) return s;
  }
  struct RestoreFullSync {
    sqlite3* db;
    const std::string& path;
    bool active;
    ~RestoreFullSync() {
      if (active) (void)exec(db, "PRAGMA synchronous=FULL", path);
    }
  } restore_full_sync{db_, database_path_, commit_only};

  if (auto s = begin_immediate(); !s) return fail(s.error());
  if (new_snapshot) {
    if (auto s = write_snapshot_row(*new_snapshot); !s) return fail(s.error());
    StatementUse use(delete_all_entries_.get());
    if (sqlite3_step(delete_all_entries_.get()) != SQLITE_DONE) {
      return fail(sqlite_error("cannot drop the log for a snapshot"));
    }
  }
  if (!entries.empty()) {
    {
      StatementUse use(delete_entries_from_.get());
      sqlite3_bind_int64(delete_entries_from_.get(), 1, to_sql(entries.front().index));
      if (sqlite3_step(delete_entries_from_.get()) != SQLITE_DONE) {
        return fail(sqlite_error("cannot truncate the log"));
      }
    }
    sqlite3_stmt* insert = insert_entry_.get();
    for (const auto& entry : entries) {
      StatementUse use(insert);
      sqlite3_bind_int64(insert, 1, to_sql(entry.index));
      sqlite3_bind_int64(insert, 2, to_sql(entry.term));
      sqlite3_bind_int(insert, 3, static_cast<int>(entry.type));
      // A non-null pointer with length 0 binds an empty blob (a null pointer would bind NULL).
      sqlite3_bind_blob(insert, 4, entry.data.data(), static_cast<int>(entry.data.size()),
                        SQLITE_STATIC);
      if (sqlite3_step(insert) != SQLITE_DONE) {
        return fail(sqlite_error("cannot append entry " + std::to_string(entry.index)));
      }
    }
  }
  if (hard_state) {
    sqlite3_stmt* raw = upsert_hard_state_.get();
    StatementUse use(raw);
    sqlite3_bind_int64(raw, 1, to_sql(hard_state->term));
    sqlite3_bind_int64(raw, 2, to_sql(hard_state->vote));
    sqlite3_bind_int64(raw, 3, to_sql(hard_state->commit));
    if (sqlite3_step(raw) != SQLITE_DONE) return fail(sqlite_error("cannot record the hard state"));
  }
  if (auto s = commit(); !s) return fail(s.error());
  if (commit_only) {
    // Every other write must wait for the disk again; refuse to go on if that cannot be set.
    restore_full_sync.active = false;
    if (auto s = exec(db_, "PRAGMA synchronous=FULL", database_path_); !s) return s;
  }

  // Committed: bring the cache up to date, then drop the snapshot file nothing refers to.
  if (hard_state) stored_hard_state_ = *hard_state;
  std::optional<StoredSnapshot> previous = snapshot_;
  if (new_snapshot) {
    snapshot_ = std::move(new_snapshot);
    last_index_ = snapshot_->meta.index;
    last_term_ = snapshot_->meta.term;
  }
  if (!entries.empty()) {
    last_index_ = entries.back().index;
    last_term_ = entries.back().term;
  }
  if (snapshot) replace_snapshot_file(previous);
  return Ok{};
}

Status SqliteLogStore::compact(const raft::Snapshot& snapshot) {
  const raft::Index base_index = snapshot_ ? snapshot_->meta.index : 0;
  const raft::Index index = snapshot.meta.index;
  if (index <= base_index) return Ok{};  // already covered by the stored snapshot

  if (index <= last_index_) {
    auto term = term_at(index);
    if (!term) return term.error();
    if (*term && **term != snapshot.meta.term) {
      return make_error(ErrorCode::kInvalidArgument,
                        "snapshot at entry " + std::to_string(index) + " has term " +
                            std::to_string(snapshot.meta.term) + " but the log has term " +
                            std::to_string(**term) + " there");
    }
  } else if (snapshot.meta.term < last_term_) {
    return make_error(ErrorCode::kInvalidArgument,
                      "snapshot term " + std::to_string(snapshot.meta.term) +
                          " is below the last log term " + std::to_string(last_term_));
  }

  auto written = write_snapshot_file(snapshot);
  if (!written) return written.error();
  StoredSnapshot new_snapshot = std::move(*written);
  auto fail = [&](Error error) -> Status {
    rollback();
    (void)remove_file(join_path(data_dir_, new_snapshot.file_name));
    spdlog::error("storage: compact failed: {}", error.message);
    return error;
  };
  if (auto s = begin_immediate(); !s) return fail(s.error());
  if (auto s = write_snapshot_row(new_snapshot); !s) return fail(s.error());
  {
    StatementUse use(delete_entries_through_.get());
    sqlite3_bind_int64(delete_entries_through_.get(), 1, to_sql(index));
    if (sqlite3_step(delete_entries_through_.get()) != SQLITE_DONE) {
      return fail(sqlite_error("cannot drop compacted entries"));
    }
  }
  if (auto s = commit(); !s) return fail(s.error());

  std::optional<StoredSnapshot> previous = snapshot_;
  snapshot_ = std::move(new_snapshot);
  if (last_index_ <= index) {
    last_index_ = index;
    last_term_ = snapshot_->meta.term;
  }
  replace_snapshot_file(previous);
  return Ok{};
}

Status SqliteLogStore::checkpoint() {
  auto busy = query_first_text(db_, "PRAGMA wal_checkpoint(TRUNCATE)", database_path_);
  if (!busy) return busy.error();
  if (*busy != "0")
    return make_error(ErrorCode::kBusy, "checkpoint of " + database_path_ + " was blocked");
  return Ok{};
}

}  // namespace raftlock::storage
