// Command log encoding: every command round-trips; malformed bytes are clear errors, never throws.
#include "lockservice/commands.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace raftlock::lockservice {
namespace {

using nlohmann::json;

std::string msgpack(const json& j) {
  auto bytes = json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

std::vector<Command> one_of_each() {
  return {
      CreateLease{7, 5000},
      RevokeLease{7},
      ExpireLease{7, 42},
      Acquire{"db:primary", 7, "worker-1", 1500, true, std::nullopt},
      Acquire{"db:primary", 9, "", 0, false, 20000},
      CancelWait{"db:primary", 7},
      Release{"db:primary", 7, 123},
      EndLockDelay{"db:primary", 99},
      Campaign{"svc", 7, "10.0.0.1:80", true, std::nullopt},
      Campaign{"svc", 8, "", false, 3000},
      Proclaim{"svc", 7, 55, "new-value"},
      Resign{"svc", 7, 55},
      CancelCampaign{"svc", 7},
  };
}

TEST(Commands, EveryCommandRoundTrips) {
  for (const Command& command : one_of_each()) {
    SCOPED_TRACE(command_name(command));
    std::string bytes = encode_command(command);
    auto decoded = decode_command(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(*decoded, command);
    EXPECT_EQ(encode_command(*decoded), bytes);  // deterministic bytes
  }
}

TEST(Commands, NamesAreDistinct) {
  std::vector<std::string> names;
  for (const Command& command : one_of_each()) names.push_back(command_name(command));
  EXPECT_EQ(names.front(), "create_lease");
  EXPECT_EQ(std::string(command_name(Command{Release{}})), "release");
  EXPECT_EQ(std::string(command_name(Command{EndLockDelay{}})), "end_lock_delay");
}

TEST(Commands, MalformedBytesAreRejectedTable) {
  json good_acquire = json::from_msgpack(encode_command(Acquire{"a", 1, "o", 0, false, {}}));
  auto with = [&](const char* key, json value) {
    json j = good_acquire;
    j[key] = std::move(value);
    return msgpack(j);
  };
  auto without = [&](const char* key) {
    json j = good_acquire;
    j.erase(key);
    return msgpack(j);
  };
  std::string valid = msgpack(good_acquire);
  struct Row {
    const char* what;
    std::string bytes;
  };
  const std::vector<Row> rows = {
      {"empty", ""},
      {"one garbage byte", "\xc1"},
      {"text", "hello world"},
      {"truncated", valid.substr(0, valid.size() / 2)},
      {"trailing byte", valid + "x"},
      {"msgpack array", msgpack(json::array({1, 2, 3}))},
      {"msgpack integer", msgpack(json(5))},
      {"no op", without("op")},
      {"op not a string", with("op", 3)},
      {"unknown op", with("op", "explode")},
      {"missing name", without("name")},
      {"name is a number", with("name", 12)},
      {"negative lease id", with("lease_id", -4)},
      {"lease id is a float", with("lease_id", 1.5)},
      {"wait is an integer", with("wait", 1)},
      {"lock_delay_ms is a string", with("lock_delay_ms", "10")},
      {"create ttl is a string", with("create_lease_ttl_ms", "1000")},
      {"lock_delay_ms beyond int64", with("lock_delay_ms", UINT64_MAX)},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.what);
    auto decoded = decode_command(row.bytes);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.error().code, ErrorCode::kInvalidArgument);
    EXPECT_FALSE(decoded.error().message.empty());
  }
  EXPECT_TRUE(decode_command(valid).ok());
  EXPECT_TRUE(decode_command(with("create_lease_ttl_ms", nullptr)).ok());  // null = absent
}

TEST(Commands, UnknownFieldsAreIgnored) {
  json j = json::from_msgpack(encode_command(Release{"a", 3, 9}));
  j["future_field"] = "x";
  auto decoded = decode_command(msgpack(j));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, Command{(Release{"a", 3, 9})});
}

}  // namespace
}  // namespace raftlock::lockservice
