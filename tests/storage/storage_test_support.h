// Helpers shared by the storage tests: temporary data dirs, file fingerprints, entry builders.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "raft/types.h"
#include "storage/crc32c.h"
#include "storage/sqlite_log_store.h"

namespace raftlock::storage::testing {

// A directory under /tmp (mkdtemp) that is removed, with everything in it, on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/raftlock-storage-test-XXXXXX";
    char* made = ::mkdtemp(pattern.data());
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Every regular file under `dir` (recursively) with its size and CRC-32C (which changes with any
// change of up to 32 bits): equal fingerprints mean no file was created, removed or changed.
inline std::map<std::string, std::string> fingerprint(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& item : std::filesystem::recursive_directory_iterator(dir)) {
    if (item.is_regular_file()) {
      const std::string bytes = read_bytes(item.path().string());
      files[std::filesystem::relative(item.path(), dir).string()] =
          std::to_string(bytes.size()) + " bytes, crc32c " + std::to_string(crc32c(bytes));
    }
  }
  return files;
}

inline raft::Configuration three_members() {
  return raft::Configuration{{{1, true, "127.0.0.1:7081"},
                              {2, true, "127.0.0.1:7082"},
                              {3, false, std::string("10.0.0.3:7083\0binary", 20)}}};
}

inline SqliteLogStore::OpenOptions options_for(const std::string& dir, raft::NodeId node = 1,
                                               std::string cluster = "cluster-a") {
  SqliteLogStore::OpenOptions options;
  options.data_dir = dir;
  options.node_id = node;
  options.cluster_id = std::move(cluster);
  options.bootstrap_config = three_members();
  return options;
}

inline std::unique_ptr<SqliteLogStore> open_or_fail(const SqliteLogStore::OpenOptions& options) {
  auto opened = SqliteLogStore::open(options);
  if (!opened) {
    ADD_FAILURE() << "open failed: " << opened.error().message;
    return nullptr;
  }
  return std::move(*opened);
}

inline raft::Entry make_entry(raft::Index index, raft::Term term, std::string data = {},
                              raft::EntryType type = raft::EntryType::kNormal) {
  raft::Entry entry;
  entry.index = index;
  entry.term = term;
  entry.type = type;
  entry.data = data.empty() && type == raft::EntryType::kNormal
                   ? "cmd-" + std::to_string(index) + "-" + std::to_string(term)
                   : std::move(data);
  return entry;
}

// Entries [first, last] all in `term`.
inline std::vector<raft::Entry> make_entries(raft::Index first, raft::Index last, raft::Term term) {
  std::vector<raft::Entry> entries;
  for (raft::Index i = first; i <= last; ++i) entries.push_back(make_entry(i, term));
  return entries;
}

inline raft::Snapshot make_snapshot(raft::Index index, raft::Term term, std::string data,
                                    raft::Configuration config = three_members()) {
  raft::Snapshot snapshot;
  snapshot.meta.index = index;
  snapshot.meta.term = term;
  snapshot.meta.config = std::move(config);
  snapshot.data = std::make_shared<const std::string>(std::move(data));
  return snapshot;
}

inline std::vector<std::string> snapshot_files(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& item : std::filesystem::directory_iterator(dir)) {
    const std::string name = item.path().filename().string();
    if (name.rfind("snapshot-", 0) == 0) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace raftlock::storage::testing
