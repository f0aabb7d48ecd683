// Input limits shared by the state machine and the HTTP layer.
#include "lockservice/validation.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace raftlock::lockservice {
namespace {

TEST(Validation, NamesTable) {
  struct Row {
    std::string name;
    bool valid;
  };
  const std::vector<Row> rows = {
      {"a", true},
      {"svc/primary", false},
      {"A-Z.a_z:0@9", true},
      {"", false},
      {std::string(256, 'x'), true},
      {std::string(257, 'x'), false},
      {"has space", false},
      {"tab\t", false},
      {"emoji\xF0\x9F\x98\x80", false},
      {"percent%", false},
      {std::string("nul\0byte", 8), false},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(valid_name(row.name), row.valid);
    EXPECT_EQ(check_name(row.name).ok(), row.valid);
  }
  EXPECT_EQ(check_name("bad name").error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(check_name("bad name").error().message.empty());
}

TEST(Validation, NumericRangesTable) {
  struct Row {
    const char* what;
    bool (*valid)(int64_t);
    int64_t below, low, high, above;
  };
  const std::vector<Row> rows = {
      {"ttl_ms", valid_ttl_ms, 999, 1000, 3'600'000, 3'600'001},
      {"wait_ms", valid_wait_ms, -1, 0, 300'000, 300'001},
      {"lock_delay_ms", valid_lock_delay_ms, -1, 0, 60'000, 60'001},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.what);
    EXPECT_FALSE(row.valid(row.below));
    EXPECT_TRUE(row.valid(row.low));
    EXPECT_TRUE(row.valid(row.high));
    EXPECT_FALSE(row.valid(row.above));
  }
  EXPECT_FALSE(check_ttl_ms(0).ok());
  EXPECT_FALSE(check_wait_ms(-5).ok());
  EXPECT_FALSE(check_lock_delay_ms(70'000).ok());
  EXPECT_TRUE(check_ttl_ms(kDefaultTtlMs).ok());
}

TEST(Validation, LeaseIdsOwnersValues) {
  EXPECT_FALSE(valid_lease_id(0));
  EXPECT_TRUE(valid_lease_id(1));
  EXPECT_TRUE(valid_lease_id((LeaseId{1} << 53) - 1));
  EXPECT_FALSE(valid_lease_id(LeaseId{1} << 53));
  EXPECT_FALSE(valid_lease_id(static_cast<LeaseId>(int64_t{-1})));  // a negative id cast
  EXPECT_FALSE(check_lease_id(0).ok());

  EXPECT_TRUE(valid_owner(""));
  EXPECT_TRUE(valid_owner(std::string(256, 'o')));
  EXPECT_FALSE(valid_owner(std::string(257, 'o')));
  EXPECT_FALSE(check_owner(std::string(257, 'o')).ok());
  EXPECT_TRUE(valid_value(std::string(4096, 'v')));
  EXPECT_FALSE(valid_value(std::string(4097, 'v')));
  EXPECT_FALSE(check_value(std::string(4097, 'v')).ok());
}

}  // namespace
}  // namespace raftlock::lockservice
