// storage_bench — how long SqliteLogStore::persist() takes for the shapes the node writes: one
// entry per transaction (a lone client), batches of entries, with and without the hard state.
// Prints p50/p90/p99/max per shape, and the raw fdatasync() latency of the same directory as the
// floor any durable write here pays. The "3 at once" rows run three writers on three files in the
// same directory at the same time, as the three nodes of a benchmark cluster on one disk do.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "storage/sqlite_log_store.h"

namespace {

using Clock = std::chrono::steady_clock;
using raftlock::raft::Entry;
using raftlock::raft::HardState;

struct Figures {
  double p50, p90, p99, max;
};

using Samples = std::vector<double>;

Figures summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    return us[std::min(us.size() - 1, static_cast<size_t>(q * us.size()))];
  };
  return {at(0.5), at(0.9), at(0.99), us.back()};
}

void print(const char* name, const Figures& f, size_t per_write) {
  std::printf("%-56s p50 %7.1f us  p90 %7.1f us  p99 %7.1f us  max %7.1f us  (%zu entries/write)\n",
              name, f.p50, f.p90, f.p99, f.max, per_write);
}

Samples raw_fdatasync(const std::string& dir, int writes, bool overwrite) {
  const std::string path = dir + "/raw.bin";
  std::filesystem::create_directories(dir);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) std::exit(1);
  std::string page(4096 + 24, 'x');
  if (overwrite) {
    for (int i = 0; i < writes; ++i) {
      if (::pwrite(fd, page.data(), page.size(), static_cast<off_t>(i) * page.size()) < 0)
        std::exit(1);
    }
    ::fsync(fd);
  }
  std::vector<double> us;
  for (int i = 0; i < writes; ++i) {
    const auto t = Clock::now();
    if (::pwrite(fd, page.data(), page.size(), static_cast<off_t>(i) * page.size()) < 0)
      std::exit(1);
    ::fdatasync(fd);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
  }
  ::close(fd);
  std::filesystem::remove(path);
  return us;
}

Samples persist_run(const std::string& dir, int writes, size_t batch, bool with_hard_state) {
  std::filesystem::remove_all(dir);
  raftlock::storage::SqliteLogStore::OpenOptions options;
  options.data_dir = dir;
  options.node_id = 1;
  options.cluster_id = "bench";
  options.bootstrap_config.members.push_back({1, true, "127.0.0.1:1"});
  auto store = raftlock::storage::SqliteLogStore::open(options);
  if (!store) {
    std::fprintf(stderr, "open: %s\n", store.error().message.c_str());
    std::exit(1);
  }
  auto& s = **store;
  if (!s.load()) std::exit(1);
  HardState hs{1, 1, 0};
  if (!s.persist(hs, {}, std::nullopt)) std::exit(1);
  const std::string payload(120, 'c');  // about one acquire command
  std::vector<double> us;
  uint64_t index = 1;
  for (int w = 0; w < writes; ++w) {
    std::vector<Entry> entries;
    for (size_t i = 0; i < batch; ++i) {
      Entry e;
      e.index = index++;
      e.term = 1;
      e.data = payload;
      entries.push_back(std::move(e));
    }
    hs.commit = index - 1;
    const auto t = Clock::now();
    auto done = s.persist(with_hard_state ? std::optional<HardState>(hs) : std::nullopt, entries,
                          std::nullopt);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    if (!done) {
      std::fprintf(stderr, "persist: %s\n", done.error().message.c_str());
      std::exit(1);
    }
  }
  return us;
}

// Runs `run(dir_i)` on `writers` threads at once (each in its own directory) and pools the
// latencies.
Figures at_once(int writers, const std::string& dir,
                const std::function<Samples(const std::string&)>& run) {
  std::vector<Samples> each(static_cast<size_t>(writers));
  std::vector<std::thread> threads;
  for (int i = 0; i < writers; ++i) {
    threads.emplace_back([&, i] { each[static_cast<size_t>(i)] = run(dir + std::to_string(i)); });
  }
  for (auto& t : threads) t.join();
  Samples all;
  for (auto& s : each) all.insert(all.end(), s.begin(), s.end());
  return summarize(std::move(all));
}

}  // namespace

int main(int argc, char** argv) {
  const int writes = argc > 1 ? std::atoi(argv[1]) : 3000;
  const std::string base = argc > 2 ? argv[2] : std::filesystem::temp_directory_path().string();
  const std::string dir = base + "/raftlock-storage-bench-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  int rows = 0;
  for (int writers : {1, 3}) {
    const std::string tag = writers == 1 ? "" : ", 3 at once";
    auto row = [&](const std::string& name, size_t per_write,
                   const std::function<Samples(const std::string&)>& run) {
      const std::string row_dir = dir + "/row" + std::to_string(++rows) + "-";
      print((name + tag).c_str(), at_once(writers, row_dir, run), per_write);
    };
    row("raw pwrite 4 KiB + fdatasync, appending", 0,
        [&](const std::string& d) { return raw_fdatasync(d, writes, false); });
    row("raw pwrite 4 KiB + fdatasync, overwriting", 0,
        [&](const std::string& d) { return raw_fdatasync(d, writes, true); });
    row("persist 1 entry + hard state", 1,
        [&](const std::string& d) { return persist_run(d + "/a", writes, 1, true); });
    if (writers == 1) {
      row("persist 1 entry, no hard state", 1,
          [&](const std::string& d) { return persist_run(d + "/b", writes, 1, false); });
      row("persist 16 entries + hard state", 16,
          [&](const std::string& d) { return persist_run(d + "/c", writes / 4, 16, true); });
    }
  }
  std::filesystem::remove_all(dir);
  return 0;
}
