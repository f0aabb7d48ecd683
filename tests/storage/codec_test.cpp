#include "storage/codec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace raftlock::storage {
namespace {

TEST(ConfigurationCodec, RoundTripsMembersAndBinaryContexts) {
  raft::Configuration config{{{1, true, "127.0.0.1:7080"},
                              {7, false, std::string("\0\xff\x80not-utf8", 11)},
                              {UINT64_MAX, true, ""}}};
  auto decoded = decode_configuration(encode_configuration(config));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(*decoded, config);
}

TEST(ConfigurationCodec, RoundTripsAnEmptyConfiguration) {
  auto decoded = decode_configuration(encode_configuration(raft::Configuration{}));
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->members.empty());
}

TEST(ConfigurationCodec, GarbageIsCorrupt) {
  auto decoded = decode_configuration("\xc1 not msgpack");
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(decoded.error().message.find("MessagePack"), std::string::npos);
}

TEST(ConfigurationCodec, WrongShapeIsCorrupt) {
  using json = nlohmann::json;
  for (const json& document :
       {json{{"members", 5}}, json{{"members", {{{"id", "one"}}}}}, json::array()}) {
    auto bytes = json::to_msgpack(document);
    auto decoded = decode_configuration(std::string(bytes.begin(), bytes.end()));
    ASSERT_FALSE(decoded.ok()) << document.dump();
    EXPECT_EQ(decoded.error().code, ErrorCode::kCorrupt);
  }
}

TEST(ConfigurationCodec, RepeatedIdOnDiskIsCorrupt) {
  raft::Configuration config{{{2, true, "a"}, {2, true, "b"}}};
  auto decoded = decode_configuration(encode_configuration(config));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.error().code, ErrorCode::kCorrupt);
}

TEST(ConfigurationCodec, ValidationRefusesZeroAndRepeatedIds) {
  EXPECT_TRUE(validate_configuration(raft::Configuration{{{1, true, ""}, {2, false, ""}}}).ok());
  auto zero = validate_configuration(raft::Configuration{{{0, true, ""}}});
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.error().code, ErrorCode::kInvalidArgument);
  auto twice = validate_configuration(raft::Configuration{{{3, true, ""}, {3, true, ""}}});
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().message.find("node 3 twice"), std::string::npos);
}

}  // namespace
}  // namespace raftlock::storage
