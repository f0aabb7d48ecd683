#include "storage/data_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "common/unique_fd.h"

namespace raftlock::storage {
namespace {

Error io_error(const std::string& what, const std::string& path, int err) {
  return make_error(ErrorCode::kIo, what + " " + path + ": " + std::strerror(err));
}

Status write_all(int fd, std::string_view contents, const std::string& path) {
  size_t written = 0;
  while (written < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write", path, errno);
    }
    written += static_cast<size_t>(n);
  }
  return Ok{};
}

}  // namespace

std::string join_path(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

Status ensure_writable_directory(const std::string& dir) {
  if (dir.empty()) return make_error(ErrorCode::kInvalidArgument, "data dir path is empty");
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec)) {
    return make_error(ErrorCode::kIo, "data dir " + dir + " exists but is not a directory");
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return make_error(ErrorCode::kIo, "cannot create data dir " + dir + ": " + ec.message());
  }
  struct stat info {};
  if (::stat(dir.c_str(), &info) != 0) return io_error("cannot stat data dir", dir, errno);
  if (!S_ISDIR(info.st_mode)) {
    return make_error(ErrorCode::kIo, "data dir " + dir + " is not a directory");
  }
  // access(W_OK) says yes to root on a read-only file system; creating a file is the real test.
  const std::string probe = join_path(dir, ".raftlock-write-probe");
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return io_error("cannot write in data dir", dir, errno);
  ::close(fd);
  if (::unlink(probe.c_str()) != 0) return io_error("cannot remove", probe, errno);
  return Ok{};
}

Status fsync_directory(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return io_error("cannot open directory", dir, errno);
  if (::fsync(fd.get()) != 0) return io_error("cannot fsync directory", dir, errno);
  return Ok{};
}

Status fsync_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return io_error("cannot open", path, errno);
  if (::fsync(fd.get()) != 0) return io_error("cannot fsync", path, errno);
  return Ok{};
}

Status write_file_durably(const std::string& dir, const std::string& name,
                          std::string_view contents) {
  const std::string final_path = join_path(dir, name);
  const std::string temp_path = final_path + ".tmp";
  {
    UniqueFd fd(::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) return io_error("cannot create", temp_path, errno);
    if (auto written = write_all(fd.get(), contents, temp_path); !written) {
      ::unlink(temp_path.c_str());
      return written.error();
    }
    if (::fsync(fd.get()) != 0) {
      int err = errno;
      ::unlink(temp_path.c_str());
      return io_error("cannot fsync", temp_path, err);
    }
    if (fd.close_now() != 0) {
      int err = errno;
      ::unlink(temp_path.c_str());
      return io_error("cannot close", temp_path, err);
    }
  }
  if (::rename(temp_path.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    ::unlink(temp_path.c_str());
    return io_error("cannot rename " + temp_path + " to", final_path, err);
  }
  return fsync_directory(dir);
}

Result<std::string> read_whole_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return io_error("cannot open", path, errno);
  std::string contents;
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot read", path, errno);
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  return contents;
}

Status remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return io_error("cannot remove", path, errno);
  return Ok{};
}

Result<std::vector<std::string>> list_files(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot list " + dir + ": " + ec.message());
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return make_error(ErrorCode::kIo, "cannot list " + dir + ": " + ec.message());
    std::error_code type_ec;
    if (it->is_regular_file(type_ec)) names.push_back(it->path().filename().string());
  }
  return names;
}

}  // namespace raftlock::storage
