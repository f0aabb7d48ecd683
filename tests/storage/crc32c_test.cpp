#include "storage/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace raftlock::storage {
namespace {

// Check values from RFC 3720 (iSCSI) appendix B.4 and the common "123456789" check value.
TEST(Crc32c, MatchesPublishedCheckValues) {
  EXPECT_EQ(crc32c(""), 0x00000000u);
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
}

TEST(Crc32c, ExtendingInPiecesEqualsTheWhole) {
  const std::string text = "the quick brown fox jumps over the lazy dog, twice over";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    const uint32_t head = crc32c(text.substr(0, cut));
    EXPECT_EQ(crc32c_extend(head, text.substr(cut)), crc32c(text)) << "cut at " << cut;
  }
}

TEST(Crc32c, DetectsEverySingleBitFlip) {
  const std::string original = "snapshot bytes: leases, locks and waiters";
  const uint32_t expected = crc32c(original);
  for (size_t byte = 0; byte < original.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = original;
      damaged[byte] = static_cast<char>(damaged[byte] ^ (1 << bit));
      EXPECT_NE(crc32c(damaged), expected);
    }
  }
}

}  // namespace
}  // namespace raftlock::storage
