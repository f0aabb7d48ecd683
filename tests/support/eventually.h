// raftlock::testing::eventually — polls a condition until it holds or a deadline passes.
#pragma once

#include <chrono>
#include <thread>

namespace raftlock::testing {

// Polls `done` every 2 ms until it holds or `timeout` passes; returns whether it held.
template <typename Pred>
bool eventually(Pred done, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return done();
}

}  // namespace raftlock::testing
