// LatencyLog: every latency sample of one operation kind (microseconds), for exact percentiles.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace raftlock::bench {

class LatencyLog {
 public:
  void add(std::chrono::steady_clock::duration d) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    samples_.push_back(static_cast<uint32_t>(std::clamp<int64_t>(us, 0, UINT32_MAX)));
  }
  void merge(const LatencyLog& other) {
    samples_.insert(samples_.end(), other.samples_.begin(), other.samples_.end());
  }
  size_t count() const { return samples_.size(); }
  // The p-quantile (0 < p <= 1) in milliseconds; 0 when empty. Sorts in place.
  double quantile_ms(double p) {
    if (samples_.empty()) return 0;
    if (!sorted_) {
      std::sort(samples_.begin(), samples_.end());
      sorted_ = true;
    }
    size_t rank = static_cast<size_t>(p * static_cast<double>(samples_.size()) + 0.999999);
    rank = std::clamp<size_t>(rank, 1, samples_.size());
    return samples_[rank - 1] / 1000.0;
  }
  double max_ms() { return quantile_ms(1.0); }

 private:
  std::vector<uint32_t> samples_;
  bool sorted_ = false;
};

}  // namespace raftlock::bench
