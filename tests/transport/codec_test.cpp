// Tests for the peer transport's wire codec: exact round trips and rejection of bad bytes.
#include "raft/transport/codec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace raftlock::raft::transport {
namespace {

// Every byte value, including NUL and invalid UTF-8, must survive as opaque data.
std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

Message full_message(MessageType type) {
  Message m;
  m.type = type;
  m.from = 3;
  m.to = 0xFFFFFFFFFFFFFFFFull;  // the widest id must survive
  m.term = 7;
  m.log_term = 6;
  m.index = 1ull << 40;
  m.commit = 99;
  m.entries = {
      Entry{6, (1ull << 40) + 1, EntryType::kNormal, all_bytes()},
      Entry{7, (1ull << 40) + 2, EntryType::kNoop, ""},
      Entry{7, (1ull << 40) + 3, EntryType::kConfChange, std::string("\0conf\xff", 6)},
  };
  m.reject = true;
  m.reject_term = 5;
  m.reject_hint = 42;
  m.context = std::string("ctx\0\x80\xfe", 6);
  Snapshot snapshot;
  snapshot.meta.index = 1000;
  snapshot.meta.term = 4;
  snapshot.meta.config.members = {Member{1, true, "127.0.0.1:7080"},
                                  Member{2, false, std::string("\xc3\x28", 2)}};
  snapshot.data = std::make_shared<const std::string>(all_bytes() + all_bytes());
  m.snapshot = snapshot;
  return m;
}

void expect_same(const Message& a, const Message& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.from, b.from);
  EXPECT_EQ(a.to, b.to);
  EXPECT_EQ(a.term, b.term);
  EXPECT_EQ(a.log_term, b.log_term);
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.commit, b.commit);
  EXPECT_EQ(a.entries, b.entries);
  EXPECT_EQ(a.reject, b.reject);
  EXPECT_EQ(a.reject_term, b.reject_term);
  EXPECT_EQ(a.reject_hint, b.reject_hint);
  EXPECT_EQ(a.context, b.context);
  ASSERT_EQ(a.snapshot.has_value(), b.snapshot.has_value());
  if (a.snapshot) {
    EXPECT_EQ(a.snapshot->meta, b.snapshot->meta);
    ASSERT_TRUE(b.snapshot->data);
    EXPECT_EQ(*a.snapshot->data, *b.snapshot->data);
  }
}

constexpr MessageType kAllTypes[] = {
    MessageType::kPreVote,   MessageType::kPreVoteResponse,
    MessageType::kVote,      MessageType::kVoteResponse,
    MessageType::kAppend,    MessageType::kAppendResponse,
    MessageType::kHeartbeat, MessageType::kHeartbeatResponse,
    MessageType::kSnapshot,  MessageType::kTimeoutNow,
    MessageType::kReadIndex, MessageType::kReadIndexResponse,
    MessageType::kForward,   MessageType::kForwardResponse,
    MessageType::kDurable,
};

TEST(CodecTest, EveryMessageTypeRoundTripsWithEveryField) {
  for (MessageType type : kAllTypes) {
    SCOPED_TRACE(message_type_name(type));
    Message m = full_message(type);
    auto decoded = decode_message(encode_message(m));
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    expect_same(m, decoded.value());
  }
}

TEST(CodecTest, DefaultMessageRoundTripsWithoutSnapshot) {
  Message m;
  auto decoded = decode_message(encode_message(m));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  expect_same(m, decoded.value());
  EXPECT_FALSE(decoded->snapshot.has_value());
}

TEST(CodecTest, DataIsEncodedAsMsgpackBinaryNotString) {
  Message m;
  m.entries = {Entry{1, 1, EntryType::kNormal, "payload"}};
  m.context = "ctx";
  std::string bytes = encode_message(m);
  auto j = nlohmann::json::from_msgpack(bytes);
  EXPECT_TRUE(j[7][0][3].is_binary());
  EXPECT_TRUE(j[12].is_binary());
}

TEST(CodecTest, BatchRoundTripsWithEnvelope) {
  std::vector<Message> messages;
  for (MessageType type : kAllTypes) messages.push_back(full_message(type));
  messages.push_back(Message{});
  std::string bytes = encode_batch("cluster-A", 3, messages);
  auto batch = decode_batch(bytes);
  ASSERT_TRUE(batch.ok()) << batch.error().message;
  EXPECT_EQ(batch->version, kProtocolVersion);
  EXPECT_EQ(batch->cluster_id, "cluster-A");
  EXPECT_EQ(batch->from, 3u);
  ASSERT_EQ(batch->messages.size(), messages.size());
  for (size_t i = 0; i < messages.size(); ++i) expect_same(messages[i], batch->messages[i]);
}

TEST(CodecTest, EmptyBatchRoundTrips) {
  auto batch = decode_batch(encode_batch("", 1, {}));
  ASSERT_TRUE(batch.ok()) << batch.error().message;
  EXPECT_TRUE(batch->messages.empty());
  EXPECT_EQ(batch->from, 1u);
}

TEST(CodecTest, OtherProtocolVersionIsRejectedClearly) {
  MessageBatch batch;
  batch.version = kProtocolVersion + 1;
  batch.cluster_id = "c";
  batch.from = 1;
  auto decoded = decode_batch(encode_batch(batch));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(decoded.error().message.find("unsupported protocol version"), std::string::npos);
}

TEST(CodecTest, SnapshotChunkRoundTrips) {
  SnapshotChunk chunk;
  chunk.cluster_id = "c";
  chunk.from = 1;
  chunk.to = 2;
  chunk.transfer_id = 0xDEADBEEFCAFEull;
  chunk.offset = 0;
  chunk.total = 10;
  chunk.total_crc = crc32("0123456789");
  chunk.chunk_crc = crc32("01234");
  Message header = full_message(MessageType::kSnapshot);
  header.snapshot->data = std::make_shared<const std::string>();
  chunk.header = header;
  auto decoded = decode_snapshot_chunk(encode_snapshot_chunk(chunk, "01234"));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded->from, 1u);
  EXPECT_EQ(decoded->to, 2u);
  EXPECT_EQ(decoded->transfer_id, chunk.transfer_id);
  EXPECT_EQ(decoded->total, 10u);
  EXPECT_EQ(decoded->total_crc, chunk.total_crc);
  EXPECT_EQ(decoded->chunk_crc, chunk.chunk_crc);
  EXPECT_EQ(decoded->data, "01234");
  ASSERT_TRUE(decoded->header.has_value());
  expect_same(header, *decoded->header);

  chunk.header.reset();
  chunk.offset = 5;
  decoded = decode_snapshot_chunk(encode_snapshot_chunk(chunk, "56789"));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_FALSE(decoded->header.has_value());
  EXPECT_EQ(decoded->offset, 5u);
}

TEST(CodecTest, SnapshotChunkRunningPastTotalIsRejected) {
  SnapshotChunk chunk;
  chunk.offset = 8;
  chunk.total = 10;
  auto decoded = decode_snapshot_chunk(encode_snapshot_chunk(chunk, "abc"));
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.error().message.find("past the snapshot's total"), std::string::npos);
}

TEST(CodecTest, Crc32MatchesTheStandardCheckValue) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32(""), 0u);
  // Continuing a crc over a split input gives the crc of the whole.
  EXPECT_EQ(crc32("6789", crc32("12345")), 0xCBF43926u);
}

TEST(CodecTest, EveryTruncationOfAValidBatchIsRejected) {
  std::vector<Message> messages = {full_message(MessageType::kAppend),
                                   full_message(MessageType::kSnapshot)};
  std::string bytes = encode_batch("cluster", 1, messages);
  for (size_t len = 0; len < bytes.size(); ++len) {
    auto decoded = decode_batch(std::string_view(bytes).substr(0, len));
    ASSERT_FALSE(decoded.ok()) << "prefix of " << len << " bytes decoded";
    EXPECT_EQ(decoded.error().code, ErrorCode::kInvalidArgument);
  }
  // Trailing garbage is rejected too.
  EXPECT_FALSE(decode_batch(bytes + '\x00').ok());
}

TEST(CodecTest, RandomBytesAndBitFlipsNeverThrowOrCrash) {
  std::mt19937_64 rng(12345);
  std::string valid = encode_batch("cluster", 1, {full_message(MessageType::kAppend)});
  int accepted_flips = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string bytes;
    if (round % 2 == 0) {
      bytes.resize(rng() % 300);
      for (char& c : bytes) c = static_cast<char>(rng());
    } else {
      bytes = valid;
      for (int flips = 1 + rng() % 4; flips > 0; --flips) {
        bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
      }
    }
    // Each decoder must answer with a value or an error; an exception fails the test.
    auto batch = decode_batch(bytes);
    auto message = decode_message(bytes);
    auto chunk = decode_snapshot_chunk(bytes);
    if (!batch.ok()) {
      EXPECT_EQ(batch.error().code, ErrorCode::kInvalidArgument);
    }
    if (batch.ok()) ++accepted_flips;  // a flip inside opaque data still decodes: fine
    (void)message;
    (void)chunk;
  }
  EXPECT_LT(accepted_flips, 3000);
}

TEST(CodecTest, DeeplyNestedInputIsRejectedWithoutExhaustingTheStack) {
  // One million nested one-element arrays (msgpack fixarray 0x91) would overflow the stack of
  // a recursive reader.
  std::string bytes(1000000, '\x91');
  bytes.push_back('\x00');
  auto decoded = decode_batch(bytes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.error().message.find("nesting"), std::string::npos);
  EXPECT_FALSE(decode_message(bytes).ok());
  EXPECT_FALSE(decode_snapshot_chunk(bytes).ok());
}

TEST(CodecTest, WellFormedMsgpackOfTheWrongShapeIsRejected) {
  using json = nlohmann::json;
  auto pack = [](const json& j) {
    std::string out;
    json::to_msgpack(j, out);
    return out;
  };
  const std::vector<std::pair<std::string, json>> cases = {
      {"object instead of array", json{{"v", 1}}},
      {"too few fields", json::array({kProtocolVersion, "c", 1})},
      {"negative sender", json::array({kProtocolVersion, "c", -1, json::array()})},
      {"cluster id as number", json::array({kProtocolVersion, 5, 1, json::array()})},
      {"messages not an array", json::array({kProtocolVersion, "c", 1, "x"})},
      {"message not an array", json::array({kProtocolVersion, "c", 1, json::array({7})})},
  };
  for (const auto& [name, j] : cases) {
    SCOPED_TRACE(name);
    auto decoded = decode_batch(pack(j));
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.error().code, ErrorCode::kInvalidArgument);
  }

  // A message with an unknown type, an unknown entry type, a string where bytes belong.
  json good = json::from_msgpack(encode_message(full_message(MessageType::kAppend)));
  json bad_type = good;
  bad_type[0] = 200;
  EXPECT_FALSE(decode_message(pack(bad_type)).ok());
  json bad_entry_type = good;
  bad_entry_type[7][0][2] = 9;
  EXPECT_FALSE(decode_message(pack(bad_entry_type)).ok());
  json string_data = good;
  string_data[7][0][3] = "text, not bytes";
  EXPECT_FALSE(decode_message(pack(string_data)).ok());
  json float_term = good;
  float_term[3] = 1.5;
  EXPECT_FALSE(decode_message(pack(float_term)).ok());
  json bad_member = good;
  bad_member[11][2][0] = json::array({1, "yes", json::binary({})});
  EXPECT_FALSE(decode_message(pack(bad_member)).ok());
  // The unmodified one still decodes (the mutations above are what made them fail).
  EXPECT_TRUE(decode_message(pack(good)).ok());
}

TEST(CodecTest, EmptyInputIsRejected) {
  EXPECT_FALSE(decode_batch("").ok());
  EXPECT_FALSE(decode_message("").ok());
  EXPECT_FALSE(decode_snapshot_chunk("").ok());
}

}  // namespace
}  // namespace raftlock::raft::transport
