// The direct msgpack codec against the nlohmann/json codec it replaced (the oracle): the same bytes
// for every value, the same values back, the same accept/refuse decision (and error text) for
// every mutated or hand-made body.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "raft/transport/codec.h"
#include "tests/transport/codec_oracle.h"

namespace raftlock::raft::transport {
namespace {

using Rng = std::mt19937_64;

constexpr uint64_t kBoundaryValues[] = {
    0, 1, 127, 128, 255, 256, 65535, 65536, 0xFFFFFFFFull, 0x100000000ull, 0xFFFFFFFFFFFFFFFFull};
// Lengths where msgpack switches encodings (fixstr/str8/str16, bin8/bin16/bin32).
constexpr size_t kSmallLengths[] = {0, 1, 15, 16, 31, 32, 120, 255, 256};
constexpr size_t kLargeLengths[] = {65535, 65536};

uint64_t random_u64(Rng& rng) {
  switch (rng() % 4) {
    case 0:
      return kBoundaryValues[rng() % std::size(kBoundaryValues)];
    case 1:
      return rng() % 200;
    case 2:
      return rng() >> (rng() % 64);
    default:
      return rng();
  }
}

std::string random_bytes(Rng& rng, size_t len) {
  std::string s(len, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Mostly short byte strings at the encoding boundaries; a 64 KiB one once in a while.
std::string random_data(Rng& rng) {
  if (rng() % 200 == 0) return random_bytes(rng, kLargeLengths[rng() % 2]);
  if (rng() % 2 == 0) return random_bytes(rng, kSmallLengths[rng() % std::size(kSmallLengths)]);
  return random_bytes(rng, rng() % 40);
}

size_t random_count(Rng& rng) {
  constexpr size_t kCounts[] = {0, 1, 2, 15, 16, 17};
  return kCounts[rng() % std::size(kCounts)];
}

Snapshot random_snapshot(Rng& rng) {
  Snapshot s;
  s.meta.index = random_u64(rng);
  s.meta.term = random_u64(rng);
  for (size_t i = random_count(rng); i > 0; --i) {
    s.meta.config.members.push_back(Member{random_u64(rng), rng() % 2 == 0, random_data(rng)});
  }
  // The data pointer is never null on decode; an encoder may still meet a null one.
  const int data_kind = static_cast<int>(rng() % 3);
  if (data_kind == 0) s.data = std::make_shared<const std::string>(random_data(rng));
  if (data_kind == 1) s.data = std::make_shared<const std::string>();
  return s;
}

Message random_message(Rng& rng) {
  Message m;
  m.type = static_cast<MessageType>(rng() % 14);
  m.from = random_u64(rng);
  m.to = random_u64(rng);
  m.term = random_u64(rng);
  m.log_term = random_u64(rng);
  m.index = random_u64(rng);
  m.commit = random_u64(rng);
  for (size_t i = random_count(rng); i > 0; --i) {
    m.entries.push_back(Entry{random_u64(rng), random_u64(rng), static_cast<EntryType>(rng() % 3),
                              random_data(rng)});
  }
  m.reject = rng() % 2 == 0;
  m.reject_term = random_u64(rng);
  m.reject_hint = random_u64(rng);
  if (rng() % 3 == 0) m.snapshot = random_snapshot(rng);
  m.context = random_data(rng);
  return m;
}

std::string random_cluster_id(Rng& rng) {
  constexpr size_t kLengths[] = {0, 1, 31, 32, 255, 256, 65535, 65536};
  const size_t len = rng() % 100 == 0 ? kLengths[rng() % std::size(kLengths)] : kLengths[rng() % 6];
  return random_bytes(rng, len);  // any bytes: the id is a msgpack str, never UTF-8 checked
}

std::vector<Message> random_messages(Rng& rng) {
  std::vector<Message> messages;
  for (size_t i = rng() % 4; i > 0; --i) messages.push_back(random_message(rng));
  return messages;
}

SnapshotChunk random_chunk(Rng& rng) {
  SnapshotChunk c;
  c.version = rng() % 10 == 0 ? static_cast<uint32_t>(random_u64(rng)) : kProtocolVersion;
  c.cluster_id = random_cluster_id(rng);
  c.from = random_u64(rng);
  c.to = random_u64(rng);
  c.transfer_id = random_u64(rng);
  c.data = random_data(rng);
  c.total = rng() % 2 == 0 ? random_u64(rng) : c.data.size() + rng() % 3;
  c.offset = rng() % 2 == 0 ? random_u64(rng) : (c.total - c.data.size()) * (rng() % 2);
  c.total_crc = static_cast<uint32_t>(random_u64(rng));
  c.chunk_crc = static_cast<uint32_t>(random_u64(rng));
  if (rng() % 2 == 0) {
    c.header = random_message(rng);
    if (rng() % 4 != 0 && !c.header->snapshot) c.header->snapshot = random_snapshot(rng);
  }
  return c;
}

// Field-by-field equality. `expected` is what was encoded, `actual` what was decoded: a decoded
// snapshot always has data (empty when none was sent).
void expect_same_snapshot(const Snapshot& expected, const Snapshot& actual, bool with_data) {
  EXPECT_EQ(expected.meta, actual.meta);
  ASSERT_TRUE(actual.data);
  const std::string sent = with_data && expected.data ? *expected.data : std::string();
  EXPECT_EQ(sent, *actual.data);
}

void expect_same_message(const Message& expected, const Message& actual,
                         bool with_snapshot_data = true) {
  EXPECT_EQ(expected.type, actual.type);
  EXPECT_EQ(expected.from, actual.from);
  EXPECT_EQ(expected.to, actual.to);
  EXPECT_EQ(expected.term, actual.term);
  EXPECT_EQ(expected.log_term, actual.log_term);
  EXPECT_EQ(expected.index, actual.index);
  EXPECT_EQ(expected.commit, actual.commit);
  EXPECT_EQ(expected.entries, actual.entries);
  EXPECT_EQ(expected.reject, actual.reject);
  EXPECT_EQ(expected.reject_term, actual.reject_term);
  EXPECT_EQ(expected.reject_hint, actual.reject_hint);
  EXPECT_EQ(expected.context, actual.context);
  ASSERT_EQ(expected.snapshot.has_value(), actual.snapshot.has_value());
  if (expected.snapshot) {
    expect_same_snapshot(*expected.snapshot, *actual.snapshot, with_snapshot_data);
  }
}

void expect_same_batch(const MessageBatch& expected, const MessageBatch& actual) {
  EXPECT_EQ(expected.version, actual.version);
  EXPECT_EQ(expected.cluster_id, actual.cluster_id);
  EXPECT_EQ(expected.from, actual.from);
  ASSERT_EQ(expected.messages.size(), actual.messages.size());
  for (size_t i = 0; i < expected.messages.size(); ++i) {
    expect_same_message(expected.messages[i], actual.messages[i]);
  }
}

void expect_same_chunk(const SnapshotChunk& expected, const SnapshotChunk& actual,
                       bool header_has_snapshot_data) {
  EXPECT_EQ(expected.version, actual.version);
  EXPECT_EQ(expected.cluster_id, actual.cluster_id);
  EXPECT_EQ(expected.from, actual.from);
  EXPECT_EQ(expected.to, actual.to);
  EXPECT_EQ(expected.transfer_id, actual.transfer_id);
  EXPECT_EQ(expected.offset, actual.offset);
  EXPECT_EQ(expected.total, actual.total);
  EXPECT_EQ(expected.total_crc, actual.total_crc);
  EXPECT_EQ(expected.chunk_crc, actual.chunk_crc);
  EXPECT_EQ(expected.data, actual.data);
  ASSERT_EQ(expected.header.has_value(), actual.header.has_value());
  if (expected.header) {
    expect_same_message(*expected.header, *actual.header, header_has_snapshot_data);
  }
}

// The two decoders agree: both accept with equal values, or both refuse. A refusal for a reason
// of the codec's own (a field of the wrong type, another version, ...) carries the same text; a
// body nlohmann could not parse at all gets the direct codec's "not valid msgpack" text instead
// of nlohmann's exception text.
template <typename T>
void expect_agree(const Result<T>& mine, const Result<T>& oracle,
                  const std::function<void(const T&, const T&)>& expect_same) {
  ASSERT_EQ(mine.ok(), oracle.ok())
      << "direct: " << (mine.ok() ? "accepted" : mine.error().message)
      << "; oracle: " << (oracle.ok() ? "accepted" : oracle.error().message);
  if (mine.ok()) {
    expect_same(oracle.value(), mine.value());
    return;
  }
  EXPECT_EQ(mine.error().code, ErrorCode::kInvalidArgument);
  const std::string& theirs = oracle.error().message;
  if (theirs.find("[json.exception") != std::string::npos) {
    EXPECT_NE(mine.error().message.find("malformed peer message: not valid msgpack: "),
              std::string::npos)
        << mine.error().message << " vs oracle " << theirs;
  } else {
    EXPECT_EQ(mine.error().message, theirs);
  }
}

// Every decoder on the same bytes, against the oracle's. Returns how many of the three accepted.
int expect_all_decoders_agree(std::string_view bytes) {
  auto message = oracle::decode_message(bytes);
  auto batch = oracle::decode_batch(bytes);
  auto chunk = oracle::decode_snapshot_chunk(bytes);
  expect_agree<Message>(decode_message(bytes), message,
                        [](const Message& a, const Message& b) { expect_same_message(a, b); });
  expect_agree<MessageBatch>(decode_batch(bytes), batch, expect_same_batch);
  expect_agree<SnapshotChunk>(decode_snapshot_chunk(bytes), chunk,
                              [](const SnapshotChunk& a, const SnapshotChunk& b) {
                                expect_same_chunk(a, b, /*header_has_snapshot_data=*/true);
                              });
  return int{message.ok()} + int{batch.ok()} + int{chunk.ok()};
}

TEST(CodecEquivalenceTest, MessagesEncodeToTheOraclesBytesAndDecodeBack) {
  Rng rng(20261122);
  for (int i = 0; i < 3000; ++i) {
    SCOPED_TRACE(i);
    const Message m = random_message(rng);
    const std::string bytes = encode_message(m);
    ASSERT_EQ(bytes, oracle::encode_message(m));
    auto decoded = decode_message(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    expect_same_message(m, decoded.value());
    if (HasFailure()) return;
  }
}

TEST(CodecEquivalenceTest, BatchesEncodeToTheOraclesBytesAndDecodeBack) {
  Rng rng(7);
  for (int i = 0; i < 1500; ++i) {
    SCOPED_TRACE(i);
    const std::string cluster_id = random_cluster_id(rng);
    const NodeId from = random_u64(rng);
    const std::vector<Message> messages = random_messages(rng);
    const std::string bytes = encode_batch(cluster_id, from, messages);
    ASSERT_EQ(bytes, oracle::encode_batch(cluster_id, from, messages));
    auto decoded = decode_batch(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    expect_same_batch(MessageBatch{kProtocolVersion, cluster_id, from, messages}, decoded.value());

    // The MessageBatch overload writes whatever version it is given (another version is then
    // refused by both decoders with the same text).
    MessageBatch batch{rng() % 4 == 0 ? static_cast<uint32_t>(random_u64(rng)) : kProtocolVersion,
                       cluster_id, from, messages};
    const std::string with_version = encode_batch(batch);
    ASSERT_EQ(with_version, oracle::encode_batch(batch));
    expect_agree<MessageBatch>(decode_batch(with_version), oracle::decode_batch(with_version),
                               expect_same_batch);
    if (HasFailure()) return;
  }
}

TEST(CodecEquivalenceTest, SnapshotChunksEncodeToTheOraclesBytesAndDecodeBack) {
  Rng rng(99);
  int accepted = 0;
  for (int i = 0; i < 2000; ++i) {
    SCOPED_TRACE(i);
    const SnapshotChunk chunk = random_chunk(rng);
    // The header's snapshot data is never sent in a chunk (the data travels in slices).
    const std::string bytes = encode_snapshot_chunk(chunk, chunk.data);
    ASSERT_EQ(bytes, oracle::encode_snapshot_chunk(chunk, chunk.data));
    auto mine = decode_snapshot_chunk(bytes);
    auto theirs = oracle::decode_snapshot_chunk(bytes);
    expect_agree<SnapshotChunk>(mine, theirs, [](const SnapshotChunk& a, const SnapshotChunk& b) {
      expect_same_chunk(a, b, /*header_has_snapshot_data=*/true);
    });
    const bool valid = chunk.version == kProtocolVersion &&
                       (!chunk.header || chunk.header->snapshot) && chunk.offset <= chunk.total &&
                       chunk.data.size() <= chunk.total - chunk.offset;
    ASSERT_EQ(mine.ok(), valid) << (mine.ok() ? "accepted" : mine.error().message);
    if (valid) {
      ++accepted;
      expect_same_chunk(chunk, mine.value(), /*header_has_snapshot_data=*/false);
    }
    if (HasFailure()) return;
  }
  EXPECT_GT(accepted, 500);  // the generator makes plenty of valid chunks, not only refusals
}

TEST(CodecEquivalenceTest, BoundaryValuesEncodeIdentically) {
  // Every boundary value in every integer field at once, and every length boundary in bytes.
  for (uint64_t v : kBoundaryValues) {
    SCOPED_TRACE(v);
    Message m;
    m.type = MessageType::kSnapshot;
    m.from = m.to = m.term = m.log_term = m.index = m.commit = m.reject_term = m.reject_hint = v;
    m.entries = {Entry{v, v, EntryType::kConfChange, ""}};
    Snapshot s;
    s.meta.index = s.meta.term = v;
    s.meta.config.members = {Member{v, false, ""}};
    s.data = std::make_shared<const std::string>();
    m.snapshot = s;
    EXPECT_EQ(encode_message(m), oracle::encode_message(m));
    auto decoded = decode_message(encode_message(m));
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    expect_same_message(m, decoded.value());

    SnapshotChunk chunk;
    chunk.version = static_cast<uint32_t>(v);
    chunk.total_crc = chunk.chunk_crc = static_cast<uint32_t>(v);
    chunk.from = chunk.to = chunk.transfer_id = chunk.offset = chunk.total = v;
    EXPECT_EQ(encode_snapshot_chunk(chunk, ""), oracle::encode_snapshot_chunk(chunk, ""));
  }
  for (size_t len : {size_t{0}, size_t{15}, size_t{16}, size_t{255}, size_t{256}, size_t{65535},
                     size_t{65536}}) {
    SCOPED_TRACE(len);
    Message m;
    m.context = std::string(len, 'c');
    m.entries.resize(len, Entry{1, 2, EntryType::kNormal, ""});
    Snapshot s;
    s.data = std::make_shared<const std::string>(len, 'd');
    s.meta.config.members.resize(len, Member{3, true, ""});
    m.snapshot = s;
    const std::string bytes = encode_message(m);
    EXPECT_EQ(bytes, oracle::encode_message(m));
    auto decoded = decode_message(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    expect_same_message(m, decoded.value());
    const std::string cluster_id(len, 'x');
    EXPECT_EQ(encode_batch(cluster_id, 1, {m}), oracle::encode_batch(cluster_id, 1, {m}));
  }
}

Message full_message(Rng& rng) {
  Message m = random_message(rng);
  m.entries = {Entry{5, 300, EntryType::kNormal, random_bytes(rng, 20)},
               Entry{5, 70000, EntryType::kNoop, ""}};
  m.snapshot = random_snapshot(rng);
  m.snapshot->meta.config.members = {Member{1, true, "a:1"}, Member{2, false, ""}};
  m.snapshot->data = std::make_shared<const std::string>(random_bytes(rng, 40));
  m.context = random_bytes(rng, 6);
  return m;
}

// A few well-formed bodies of each kind to mutate.
std::vector<std::string> mutation_seeds(Rng& rng) {
  std::vector<std::string> seeds;
  seeds.push_back(encode_message(full_message(rng)));
  seeds.push_back(encode_message(Message{}));
  seeds.push_back(encode_batch("cluster", 1, {full_message(rng), Message{}}));
  seeds.push_back(encode_batch("", 2, {}));
  SnapshotChunk chunk;
  chunk.cluster_id = "c";
  chunk.total = 40;
  chunk.header = full_message(rng);
  seeds.push_back(encode_snapshot_chunk(chunk, std::string(40, 'd')));
  chunk.header.reset();
  chunk.offset = 30;
  seeds.push_back(encode_snapshot_chunk(chunk, std::string(10, 'e')));
  return seeds;
}

TEST(CodecEquivalenceTest, EveryTruncationIsDecidedLikeTheOracle) {
  Rng rng(4242);
  for (const std::string& seed : mutation_seeds(rng)) {
    for (size_t len = 0; len <= seed.size(); ++len) {
      SCOPED_TRACE(len);
      expect_all_decoders_agree(std::string_view(seed).substr(0, len));
      if (HasFailure()) return;
    }
    // Trailing bytes after a complete body.
    expect_all_decoders_agree(seed + '\x00');
    expect_all_decoders_agree(seed + seed);
  }
}

TEST(CodecEquivalenceTest, RandomByteFlipsAreDecidedLikeTheOracle) {
  Rng rng(31337);
  const std::vector<std::string> seeds = mutation_seeds(rng);
  int accepted = 0;  // rounds where a decoder still accepted the mutated body
  for (int round = 0; round < 4000; ++round) {
    SCOPED_TRACE(round);
    std::string bytes = seeds[rng() % seeds.size()];
    for (int flips = 1 + static_cast<int>(rng() % 3); flips > 0; --flips) {
      char& c = bytes[rng() % bytes.size()];
      // Half the time a random value, half the time a type byte (where the decoders differ most).
      c = rng() % 2 == 0 ? static_cast<char>(rng()) : static_cast<char>(0xC0 + rng() % 32);
    }
    if (expect_all_decoders_agree(bytes) > 0) ++accepted;
    if (HasFailure()) return;
  }
  // Flips inside opaque bytes still decode; flips of type bytes mostly do not: both paths ran.
  EXPECT_GT(accepted, 400);
  EXPECT_LT(accepted, 3600);
}

TEST(CodecEquivalenceTest, RandomBytesAreDecidedLikeTheOracle) {
  Rng rng(555);
  for (int round = 0; round < 3000; ++round) {
    SCOPED_TRACE(round);
    // Short bodies built from msgpack type bytes and small numbers, so some of them parse.
    std::string bytes;
    for (size_t n = 1 + rng() % 24; n > 0; --n) {
      bytes.push_back(rng() % 2 == 0 ? static_cast<char>(0x80 + rng() % 0x80)
                                     : static_cast<char>(rng() % 4));
    }
    expect_all_decoders_agree(bytes);
    if (HasFailure()) return;
  }
}

std::string hex(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

// Replaces the first occurrence of `from` in `bytes` (which must exist).
std::string replaced(std::string bytes, const std::string& from, const std::string& to) {
  const size_t at = bytes.find(from);
  EXPECT_NE(at, std::string::npos);
  return bytes.replace(at, from.size(), to);
}

TEST(CodecEquivalenceTest, HandMadeBodiesAreDecidedLikeTheOracle) {
  Message m;
  m.type = MessageType::kHeartbeat;
  m.term = 5;
  m.context = "ab";
  // [6, 0, 0, 5, 0, 0, 0, [], false, 0, 0, nil, bin"ab"]
  const std::string message = encode_message(m);
  ASSERT_EQ(message, hex({0x9D, 6, 0, 0, 5, 0, 0, 0, 0x90, 0xC2, 0, 0, 0xC0, 0xC4, 2, 'a', 'b'}));
  const std::string head = message.substr(0, 13);  // up to and including the nil snapshot

  const std::vector<std::pair<const char*, std::string>> cases = {
      {"signed int8 term", replaced(message, hex({0, 5, 0}), hex({0, 0xD0, 5, 0}))},
      {"negative fixint term", replaced(message, hex({0, 5, 0}), hex({0, 0xFF, 0}))},
      {"uint8 where fixint fits (accepted)",
       replaced(message, hex({0, 5, 0}), hex({0, 0xCC, 5, 0}))},
      {"uint64 term (accepted)",
       replaced(message, hex({0, 5, 0}), hex({0, 0xCF, 0, 0, 0, 0, 0, 0, 0, 5, 0}))},
      {"float term", replaced(message, hex({0, 5, 0}), hex({0, 0xCA, 0, 0, 0, 0, 0}))},
      {"str context", head + hex({0xA2, 'a', 'b'})},
      {"ext8 context (accepted)", head + hex({0xC7, 2, 7, 'a', 'b'})},
      {"fixext2 context (accepted)", head + hex({0xD5, 0x80, 'a', 'b'})},
      {"fixext16 context truncated", head + hex({0xD8, 1, 'a', 'b'})},
      {"bin16 context (accepted)", head + hex({0xC5, 0, 2, 'a', 'b'})},
      {"bin32 longer than the body", head + hex({0xC6, 0xFF, 0xFF, 0xFF, 0xFF, 'a'})},
      {"nil context", head + hex({0xC0})},
      {"0xc1 context", head + hex({0xC1})},
      {"map context", head + hex({0x81, 0xA1, 'k', 1})},
      {"map with a number key", head + hex({0x81, 1, 1})},
      {"entries claiming 4 billion",
       replaced(message, hex({0x90}), hex({0xDD, 0xFF, 0xFF, 0xFF, 0xFF}))},
      {"entries as array16 (accepted)", replaced(message, hex({0x90}), hex({0xDC, 0, 0}))},
      {"entries as a map", replaced(message, hex({0x90}), hex({0x80}))},
      {"reject as integer", replaced(message, hex({0xC2}), hex({0}))},
      {"true reject (accepted)", replaced(message, hex({0xC2}), hex({0xC3}))},
      {"snapshot as false", replaced(message, hex({0xC0}), hex({0xC2}))},
      {"empty snapshot array", replaced(message, hex({0xC0}), hex({0x90}))},
      {"snapshot with members as nil",
       replaced(message, hex({0xC0}), hex({0x94, 1, 1, 0xC0, 0xC4, 0}))},
      {"snapshot with nil data", replaced(message, hex({0xC0}), hex({0x94, 1, 1, 0x90, 0xC0}))},
      {"snapshot without data (accepted)",
       replaced(message, hex({0xC0}), hex({0x94, 1, 1, 0x90, 0xC4, 0}))},
      {"member voter as int",
       replaced(message, hex({0xC0}), hex({0x94, 1, 1, 0x91, 0x93, 1, 1, 0xC4, 0, 0xC4, 0}))},
      {"14 fields", replaced(message, hex({0x9D}), hex({0x9E})) + hex({0})},
      {"12 fields", replaced(message, hex({0x9D}), hex({0x9C}))},
      {"type 14", replaced(message, hex({0x9D, 6}), hex({0x9D, 14}))},
      {"type 13 (accepted)", replaced(message, hex({0x9D, 6}), hex({0x9D, 13}))},
      {"trailing byte", message + hex({0})},
      {"deep nesting in a field",
       replaced(message, hex({0x90}), std::string(20, '\x91') + hex({0}))},
      {"nesting just deep enough",
       replaced(message, hex({0x90}), std::string(7, '\x91') + hex({0}))},
      {"nesting one too deep", replaced(message, hex({0x90}), std::string(8, '\x91') + hex({0}))},
      {"nesting past truncation", std::string(9, '\x91')},
      {"empty", ""},
      {"nil", hex({0xC0})},
  };
  for (const auto& [name, bytes] : cases) {
    SCOPED_TRACE(name);
    expect_all_decoders_agree(bytes);
  }

  // The same for batches and chunks, built around the message above.
  const std::string batch = encode_batch("c", 1, {m});
  const std::vector<std::pair<const char*, std::string>> batch_cases = {
      {"version 2", replaced(batch, hex({0x94, 1}), hex({0x94, 2}))},
      {"version 2^32", replaced(batch, hex({0x94, 1}), hex({0x94, 0xCF, 0, 0, 0, 1, 0, 0, 0, 0}))},
      {"signed version", replaced(batch, hex({0x94, 1}), hex({0x94, 0xD0, 1}))},
      {"cluster id as bin", replaced(batch, hex({0xA1, 'c'}), hex({0xC4, 1, 'c'}))},
      {"cluster id as str8 (accepted)", replaced(batch, hex({0xA1, 'c'}), hex({0xD9, 1, 'c'}))},
      {"cluster id str32 past the end",
       replaced(batch, hex({0xA1, 'c'}), hex({0xDB, 0x7F, 0, 0, 0}))},
      {"messages claiming 4 billion",
       replaced(batch, hex({0x91, 0x9D}), hex({0xDD, 0xFF, 0xFF, 0xFF, 0xFF, 0x9D}))},
      {"messages as array32 (accepted)",
       replaced(batch, hex({0x91, 0x9D}), hex({0xDD, 0, 0, 0, 1, 0x9D}))},
  };
  for (const auto& [name, bytes] : batch_cases) {
    SCOPED_TRACE(name);
    expect_all_decoders_agree(bytes);
  }

  SnapshotChunk chunk;
  chunk.cluster_id = "c";
  chunk.total = 2;
  chunk.header = m;  // a header without a snapshot: refused
  const std::string no_snapshot = encode_snapshot_chunk(chunk, "zz");
  chunk.header.reset();
  const std::string plain = encode_snapshot_chunk(chunk, "zz");
  const std::vector<std::pair<const char*, std::string>> chunk_cases = {
      {"header without snapshot", no_snapshot},
      {"plain (accepted)", plain},
      {"past the total", replaced(plain, hex({0, 0, 2}), hex({0, 1, 2}))},
      {"crc above 32 bits",
       replaced(plain, hex({2, 0, 0, 0xC0}), hex({2, 0xCF, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0xC0}))},
      {"past the total and trailing", replaced(plain, hex({0, 0, 2}), hex({0, 1, 2})) + hex({0})},
  };
  for (const auto& [name, bytes] : chunk_cases) {
    SCOPED_TRACE(name);
    expect_all_decoders_agree(bytes);
  }
}

TEST(CodecEquivalenceTest, AbsurdDeclaredLengthsAreRefusedWithoutHugeAllocations) {
  // An array32 of 4 billion entries and a bin32 of 4 GiB in a few bytes each: refused as
  // truncated, and the decoder reserves nothing near the declared sizes (this would abort with
  // bad_alloc or take seconds otherwise).
  const std::string entries = hex({0x9D, 4, 0, 0, 0, 0, 0, 0, 0xDD, 0xFF, 0xFF, 0xFF, 0xFF});
  auto decoded = decode_message(entries + std::string(64, '\x90'));
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.error().message.find("not valid msgpack"), std::string::npos)
      << decoded.error().message;
  const std::string context =
      hex({0x9D, 4, 0, 0, 0, 0, 0, 0, 0x90, 0xC2, 0, 0, 0xC0, 0xC6, 0xFF, 0xFF, 0xFF, 0xFF, 'x'});
  decoded = decode_message(context);
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.error().message.find("truncated"), std::string::npos)
      << decoded.error().message;
  auto batch = decode_batch(hex({0x94, 1, 0xA0, 1, 0xDD, 0xFF, 0xFF, 0xFF, 0xFF}));
  ASSERT_FALSE(batch.ok());
  EXPECT_NE(batch.error().message.find("truncated"), std::string::npos) << batch.error().message;
}

}  // namespace
}  // namespace raftlock::raft::transport
