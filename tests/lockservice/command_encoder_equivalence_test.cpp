// lockservice::encode_command writes, byte for byte, what the generic nlohmann encoder
// (detail::encode_command_generic, the encoding's definition) writes: every command kind, with
// integers and strings at every size boundary of MessagePack's forms.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lockservice/commands.h"

namespace raftlock::lockservice {
namespace {

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

class Values {
 public:
  explicit Values(uint64_t seed) : rng_(seed) {}

  uint64_t u64() {
    static const uint64_t edges[] = {0,     1,     127,        128,         255,       256,
                                     65535, 65536, 0xffffffff, 0x100000000, INT64_MAX, UINT64_MAX};
    if (rng_() % 3 == 0) return rng_();
    return edges[rng_() % std::size(edges)];
  }
  int64_t i64() {
    static const int64_t edges[] = {0,
                                    1,
                                    -1,
                                    -32,
                                    -33,
                                    -128,
                                    -129,
                                    -32768,
                                    -32769,
                                    INT32_MIN,
                                    static_cast<int64_t>(INT32_MIN) - 1,
                                    INT64_MIN,
                                    127,
                                    128,
                                    65536,
                                    INT64_MAX};
    if (rng_() % 3 == 0) return static_cast<int64_t>(rng_());
    return edges[rng_() % std::size(edges)];
  }
  bool boolean() { return rng_() % 2 == 0; }
  std::string text() {
    static const size_t lengths[] = {0, 1, 31, 32, 255, 256, 65535, 65536};
    const size_t n = rng_() % 4 == 0 ? lengths[rng_() % std::size(lengths)] : rng_() % 40;
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng_() % 256);
    return s;
  }
  std::optional<int64_t> maybe_i64() {
    if (boolean()) return std::nullopt;
    return i64();
  }

 private:
  std::mt19937_64 rng_;
};

std::vector<Command> commands_of_every_kind(Values& v) {
  return {CreateLease{v.u64(), v.i64()},
          RevokeLease{v.u64()},
          ExpireLease{v.u64(), v.u64()},
          Acquire{v.text(), v.u64(), v.text(), v.i64(), v.boolean(), v.maybe_i64()},
          CancelWait{v.text(), v.u64()},
          Release{v.text(), v.u64(), v.u64()},
          EndLockDelay{v.text(), v.u64()},
          Campaign{v.text(), v.u64(), v.text(), v.boolean(), v.maybe_i64()},
          Proclaim{v.text(), v.u64(), v.u64(), v.text()},
          Resign{v.text(), v.u64(), v.u64()},
          CancelCampaign{v.text(), v.u64()}};
}

TEST(CommandEncoder, WritesTheGenericEncodersBytesForEveryKindAndBoundary) {
  constexpr uint64_t kSeed = 20261122;
  Values values(kSeed);
  size_t compared = 0;
  for (int round = 0; round < 150; ++round) {
    for (const Command& command : commands_of_every_kind(values)) {
      const std::string direct = encode_command(command);
      const std::string generic = detail::encode_command_generic(command);
      ASSERT_EQ(direct, generic) << "seed " << kSeed << " round " << round << " "
                                 << command_name(command) << "\n direct  " << hex(direct)
                                 << "\n generic " << hex(generic);
      auto decoded = decode_command(direct);
      ASSERT_TRUE(decoded.ok()) << decoded.error().message;
      EXPECT_TRUE(*decoded == command) << command_name(command);
      ++compared;
    }
  }
  EXPECT_EQ(compared, 150u * std::variant_size_v<Command>);
}

TEST(CommandEncoder, AFixedAcquireHasTheExpectedBytes) {
  // Keys in bytewise order, "op" among them; small integers as fixints.
  const std::string bytes = encode_command(Acquire{"l", 5, "o", 0, true, std::nullopt});
  EXPECT_EQ(hex(bytes),
            "86"  // fixmap, 6 pairs
            "a86c656173655f6964"
            "05"  // "lease_id": 5
            "ad6c6f636b5f64656c61795f6d73"
            "00"  // "lock_delay_ms": 0
            "a46e616d65"
            "a16c"  // "name": "l"
            "a26f70"
            "a761637175697265"  // "op": "acquire"
            "a56f776e6572"
            "a16f"  // "owner": "o"
            "a477616974"
            "c3");  // "wait": true
}

}  // namespace
}  // namespace raftlock::lockservice
