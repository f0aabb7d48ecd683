// Filesystem helpers for a node's data directory: creation, durable whole-file writes, fsyncs.
// Every failure is a kIo error whose message names the path and the operating-system reason.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace raftlock::storage {

// Creates `dir` (and missing parents) if needed and checks that files can be created in it.
Status ensure_writable_directory(const std::string& dir);

// Flushes a directory's entries (new, renamed or removed names) to disk.
Status fsync_directory(const std::string& dir);

// Flushes a file's contents to disk.
Status fsync_file(const std::string& path);

// Writes `contents` to <dir>/<name> atomically and durably: a temporary name, fsync, rename,
// directory fsync. Either the old file (or none) or the complete new file survives a crash.
Status write_file_durably(const std::string& dir, const std::string& name,
                          std::string_view contents);

// Reads a whole file.
Result<std::string> read_whole_file(const std::string& path);

// Removes a file; a file that is already gone is not an error.
Status remove_file(const std::string& path);

// Names (not paths) of the regular files in `dir`.
Result<std::vector<std::string>> list_files(const std::string& dir);

// <dir>/<name>.
std::string join_path(const std::string& dir, const std::string& name);

}  // namespace raftlock::storage
