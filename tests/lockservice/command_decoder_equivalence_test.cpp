// decode_command (fast path) against detail::decode_command_generic (the oracle): on every input
// both give the same Command, or both fail with the same ErrorCode and the same message.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "lockservice/commands.h"

namespace raftlock::lockservice {
namespace {

using nlohmann::json;

constexpr uint64_t kSeed = 0x5eed'c0de'2211'0007;
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
constexpr int64_t kI32Min = std::numeric_limits<int32_t>::min();

// ---- Readable failure output -------------------------------------------------------------------

std::string hex(std::string_view bytes, size_t limit = 256) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < limit; ++i) {
    auto b = static_cast<uint8_t>(bytes[i]);
    if (i > 0) out += ' ';
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  if (bytes.size() > limit) out += " ... (" + std::to_string(bytes.size()) + " bytes)";
  return out;
}

std::string escaped(std::string_view s, size_t limit = 200) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < limit; ++i) {
    auto b = static_cast<uint8_t>(s[i]);
    if (b >= 0x20 && b < 0x7f && b != '\\') {
      out += static_cast<char>(b);
    } else {
      static constexpr char kDigits[] = "0123456789abcdef";
      out += "\\x";
      out += kDigits[b >> 4];
      out += kDigits[b & 0xf];
    }
  }
  if (s.size() > limit) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string describe(const Command& command) {
  std::string bytes = encode_command(command);
  json object = json::from_msgpack(bytes);
  return std::string(command_name(command)) + " " +
         escaped(object.dump(-1, ' ', false, json::error_handler_t::replace), 400) +
         " (encoded: " + hex(bytes, 64) + ")";
}

std::string describe(const Result<Command>& result) {
  if (result.ok()) return "ok: " + describe(*result);
  return std::string("error ") + error_code_name(result.error().code) + ": \"" +
         escaped(result.error().message) + "\"";
}

bool same(const Result<Command>& a, const Result<Command>& b) {
  if (a.ok() != b.ok()) return false;
  if (a.ok()) return *a == *b;
  return a.error().code == b.error().code && a.error().message == b.error().message;
}

// Fails the test (with both results and a hex dump of `bytes`) unless the two decoders agree.
// Returns whether they agreed. Reports at most a few disagreements per test to keep output short.
int g_reported_disagreements = 0;

bool expect_same(std::string_view bytes) {
  Result<Command> fast = decode_command(bytes);
  Result<Command> generic = detail::decode_command_generic(bytes);
  if (same(fast, generic)) return true;
  if (++g_reported_disagreements <= 10) {
    ADD_FAILURE() << "decoders disagree on " << bytes.size() << " bytes:\n  " << hex(bytes)
                  << "\n  decode_command:         " << describe(fast)
                  << "\n  decode_command_generic: " << describe(generic);
  } else {
    ADD_FAILURE() << "decoders disagree (details of further cases omitted) on " << hex(bytes, 48);
  }
  return false;
}

class CommandDecoderEquivalence : public ::testing::Test {
 protected:
  void SetUp() override { g_reported_disagreements = 0; }
};

// The error both decoders must give (asserts they agree, then returns the generic one's error).
Error expect_same_error(std::string_view bytes) {
  expect_same(bytes);
  Result<Command> generic = detail::decode_command_generic(bytes);
  if (generic.ok()) {
    ADD_FAILURE() << "expected an error for " << hex(bytes) << ", got " << describe(generic);
    return Error{ErrorCode::kInternal, "(no error)"};
  }
  EXPECT_EQ(generic.error().code, ErrorCode::kInvalidArgument);
  return generic.error();
}

// The command both decoders must give (asserts they agree and succeed).
Command expect_same_command(std::string_view bytes) {
  expect_same(bytes);
  Result<Command> fast = decode_command(bytes);
  if (!fast.ok()) {
    ADD_FAILURE() << "expected a command for " << hex(bytes) << ", got " << describe(fast);
    return Command{};
  }
  return *fast;
}

// ---- A raw MessagePack writer, for encodings encode_command never produces --------------------

class Pack {
 public:
  Pack& byte(uint8_t b) {
    out_.push_back(static_cast<char>(b));
    return *this;
  }
  Pack& big_endian(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) byte(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  Pack& raw(std::string_view bytes) {
    out_.append(bytes);
    return *this;
  }

  Pack& fixmap(size_t n) { return byte(static_cast<uint8_t>(0x80 | n)); }
  Pack& map16(size_t n) { return byte(0xde).big_endian(n, 2); }
  Pack& map32(size_t n) { return byte(0xdf).big_endian(n, 4); }
  Pack& fixarray(size_t n) { return byte(static_cast<uint8_t>(0x90 | n)); }

  Pack& nil() { return byte(0xc0); }
  Pack& boolean(bool b) { return byte(b ? 0xc3 : 0xc2); }
  Pack& fixint(uint8_t v) { return byte(v); }                                // 0..127
  Pack& negative_fixint(int8_t v) { return byte(static_cast<uint8_t>(v)); }  // -32..-1
  Pack& u8(uint64_t v) { return byte(0xcc).big_endian(v, 1); }
  Pack& u16(uint64_t v) { return byte(0xcd).big_endian(v, 2); }
  Pack& u32(uint64_t v) { return byte(0xce).big_endian(v, 4); }
  Pack& u64(uint64_t v) { return byte(0xcf).big_endian(v, 8); }
  Pack& i8(int64_t v) { return byte(0xd0).big_endian(static_cast<uint64_t>(v), 1); }
  Pack& i16(int64_t v) { return byte(0xd1).big_endian(static_cast<uint64_t>(v), 2); }
  Pack& i32(int64_t v) { return byte(0xd2).big_endian(static_cast<uint64_t>(v), 4); }
  Pack& i64(int64_t v) { return byte(0xd3).big_endian(static_cast<uint64_t>(v), 8); }
  Pack& f32(float v) { return byte(0xca).big_endian(std::bit_cast<uint32_t>(v), 4); }
  Pack& f64(double v) { return byte(0xcb).big_endian(std::bit_cast<uint64_t>(v), 8); }

  // Shortest encodings, as nlohmann's to_msgpack writes them.
  Pack& uint(uint64_t v) {
    if (v < 128) return fixint(static_cast<uint8_t>(v));
    if (v <= 0xff) return u8(v);
    if (v <= 0xffff) return u16(v);
    if (v <= 0xffffffff) return u32(v);
    return u64(v);
  }
  Pack& int_(int64_t v) {
    if (v >= 0) return uint(static_cast<uint64_t>(v));
    if (v >= -32) return negative_fixint(static_cast<int8_t>(v));
    if (v >= -128) return i8(v);
    if (v >= -32768) return i16(v);
    if (v >= kI32Min) return i32(v);
    return i64(v);
  }
  Pack& str(std::string_view s) {
    if (s.size() < 32) return byte(static_cast<uint8_t>(0xa0 | s.size())).raw(s);
    if (s.size() <= 0xff) return str8(s);
    if (s.size() <= 0xffff) return str16(s);
    return str32(s);
  }
  Pack& str8(std::string_view s) { return byte(0xd9).big_endian(s.size(), 1).raw(s); }
  Pack& str16(std::string_view s) { return byte(0xda).big_endian(s.size(), 2).raw(s); }
  Pack& str32(std::string_view s) { return byte(0xdb).big_endian(s.size(), 4).raw(s); }
  Pack& bin8(std::string_view s) { return byte(0xc4).big_endian(s.size(), 1).raw(s); }

  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

// One key/value entry of a map, already encoded.
struct Entry {
  std::string key;    // encoded key item
  std::string value;  // encoded value item
};

Entry entry(std::string_view key, const Pack& value) {
  return Entry{Pack().str(key).bytes(), value.bytes()};
}

// The text of an encoded fixstr or str8 key.
std::string key_text(const std::string& encoded_key) {
  if (!encoded_key.empty() && static_cast<uint8_t>(encoded_key[0]) == 0xd9) {
    return encoded_key.substr(2);
  }
  return encoded_key.substr(1);
}

std::string fixmap_of(const std::vector<Entry>& entries) {
  Pack p;
  p.fixmap(entries.size());
  for (const Entry& e : entries) p.raw(e.key).raw(e.value);
  return p.bytes();
}

// Release{"lk", 7, 9} in encode_command's key order: fencing_token, lease_id, name, op.
std::vector<Entry> release_entries() {
  return {entry("fencing_token", Pack().uint(9)), entry("lease_id", Pack().uint(7)),
          entry("name", Pack().str("lk")), entry("op", Pack().str("release"))};
}

// Acquire{"lk", 7, "me", 1500, true, 3000} in encode_command's key order.
std::vector<Entry> acquire_entries() {
  return {entry("create_lease_ttl_ms", Pack().uint(3000)),
          entry("lease_id", Pack().uint(7)),
          entry("lock_delay_ms", Pack().uint(1500)),
          entry("name", Pack().str("lk")),
          entry("op", Pack().str("acquire")),
          entry("owner", Pack().str("me")),
          entry("wait", Pack().boolean(true))};
}

const Acquire kAcquire{"lk", 7, "me", 1500, true, 3000};
const Release kRelease{"lk", 7, 9};

// Replaces the value of `key` in `entries` (which must hold it).
std::vector<Entry> with_value(std::vector<Entry> entries, std::string_view key, const Pack& value) {
  std::string encoded_key = Pack().str(key).bytes();
  for (Entry& e : entries) {
    if (e.key == encoded_key) e.value = value.bytes();
  }
  return entries;
}

std::vector<Entry> without(std::vector<Entry> entries, std::string_view key) {
  std::string encoded_key = Pack().str(key).bytes();
  std::erase_if(entries, [&](const Entry& e) { return e.key == encoded_key; });
  return entries;
}

// ---- The command schema (field name -> type), for the random generators ------------------------

enum class FieldType { kU64, kI64, kString, kBool, kOptionalI64 };

struct FieldSpec {
  const char* key;
  FieldType type;
};

struct OpSpec {
  const char* op;
  std::vector<FieldSpec> fields;
};

const std::vector<OpSpec>& op_specs() {
  using enum FieldType;
  static const std::vector<OpSpec> specs = {
      {"create_lease", {{"lease_id", kU64}, {"ttl_ms", kI64}}},
      {"revoke_lease", {{"lease_id", kU64}}},
      {"expire_lease", {{"created_index", kU64}, {"lease_id", kU64}}},
      {"acquire",
       {{"create_lease_ttl_ms", kOptionalI64},
        {"lease_id", kU64},
        {"lock_delay_ms", kI64},
        {"name", kString},
        {"owner", kString},
        {"wait", kBool}}},
      {"cancel_wait", {{"lease_id", kU64}, {"name", kString}}},
      {"release", {{"fencing_token", kU64}, {"lease_id", kU64}, {"name", kString}}},
      {"end_lock_delay", {{"name", kString}, {"started_index", kU64}}},
      {"campaign",
       {{"create_lease_ttl_ms", kOptionalI64},
        {"lease_id", kU64},
        {"name", kString},
        {"value", kString},
        {"wait", kBool}}},
      {"proclaim",
       {{"fencing_token", kU64}, {"lease_id", kU64}, {"name", kString}, {"value", kString}}},
      {"resign", {{"fencing_token", kU64}, {"lease_id", kU64}, {"name", kString}}},
      {"cancel_campaign", {{"lease_id", kU64}, {"name", kString}}},
  };
  return specs;
}

// ---- Random values -----------------------------------------------------------------------------

const std::vector<uint64_t> kU64Boundaries = {
    0,      1, 127, 128, 255, 256, 65535, 65536, 0xffffffffULL, 0x100000000ULL, uint64_t{kI64Max},
    kU64Max};
const std::vector<int64_t> kI64Boundaries = {
    0,  1,   127, 128,  255,  256,    65535,  65536,   0xffffffffLL, 0x100000000LL, kI64Max,
    -1, -32, -33, -128, -129, -32768, -32769, kI32Min, kI32Min - 1,  kI64Min};
const std::vector<size_t> kStringLengths = {0, 1, 31, 32, 255, 256, 65535, 65536};

using Rng = std::mt19937_64;

uint64_t pick(Rng& rng, uint64_t n) {
  return rng() % n;
}
bool chance(Rng& rng, int percent) {
  return static_cast<int>(pick(rng, 100)) < percent;
}

// `boundary_index`, when set, picks that boundary (mod the list size), else a random value.
uint64_t random_u64(Rng& rng, std::optional<size_t> boundary_index = std::nullopt) {
  if (boundary_index) return kU64Boundaries[*boundary_index % kU64Boundaries.size()];
  switch (pick(rng, 4)) {
    case 0:
      return kU64Boundaries[pick(rng, kU64Boundaries.size())];
    case 1:
      return rng();
    case 2:
      return rng() >> pick(rng, 64);
    default:
      return pick(rng, 300);
  }
}

int64_t random_i64(Rng& rng, std::optional<size_t> boundary_index = std::nullopt) {
  if (boundary_index) return kI64Boundaries[*boundary_index % kI64Boundaries.size()];
  switch (pick(rng, 4)) {
    case 0:
      return kI64Boundaries[pick(rng, kI64Boundaries.size())];
    case 1:
      return static_cast<int64_t>(rng());
    case 2: {
      auto magnitude = static_cast<int64_t>(rng() >> (1 + pick(rng, 63)));
      return chance(rng, 50) ? magnitude : -magnitude;
    }
    default:
      return static_cast<int64_t>(pick(rng, 400)) - 200;
  }
}

std::string random_bytes(Rng& rng, size_t length) {
  std::string s(length, '\0');
  switch (pick(rng, 3)) {
    case 0:  // any bytes: NULs, high bytes, invalid UTF-8
      for (char& c : s) c = static_cast<char>(pick(rng, 256));
      break;
    case 1:  // printable ASCII
      for (char& c : s) c = static_cast<char>(0x20 + pick(rng, 0x5f));
      break;
    default:  // mostly ASCII with NULs, lone continuation bytes and truncated sequences
      for (char& c : s) {
        static constexpr uint8_t kOdd[] = {0x00, 0x80, 0xbf, 0xc0, 0xc1, 0xe2, 0xf0, 0xf8, 0xff};
        c = chance(rng, 30) ? static_cast<char>(kOdd[pick(rng, std::size(kOdd))])
                            : static_cast<char>('a' + pick(rng, 26));
      }
      break;
  }
  return s;
}

// `boundary_index`, when set, picks that length from kStringLengths (mod its size).
std::string random_string(Rng& rng, std::optional<size_t> boundary_index = std::nullopt) {
  size_t length;
  if (boundary_index) {
    length = kStringLengths[*boundary_index % kStringLengths.size()];
  } else if (chance(rng, 70)) {
    length = pick(rng, 41);
  } else if (chance(rng, 95)) {
    length = kStringLengths[pick(rng, 6)];  // up to 256 bytes
  } else {
    length = kStringLengths[6 + pick(rng, 2)];  // 65535 or 65536 bytes
  }
  return random_bytes(rng, length);
}

// A random command of alternative `kind`. With `boundary`, each field takes a boundary value
// (shifted per field so that fields do not move in lockstep).
Command random_command(Rng& rng, size_t kind, std::optional<size_t> boundary) {
  auto at = [&](size_t shift) -> std::optional<size_t> {
    if (boundary) return *boundary + shift;
    return std::nullopt;
  };
  auto optional_ttl = [&](size_t shift) -> std::optional<int64_t> {
    if (boundary ? (*boundary + shift) % 3 == 0 : chance(rng, 40)) return std::nullopt;
    return random_i64(rng, at(shift));
  };
  auto flag = [&](size_t shift) {
    return boundary ? (*boundary + shift) % 2 == 0 : chance(rng, 50);
  };
  switch (kind) {
    case 0:
      return CreateLease{random_u64(rng, at(0)), random_i64(rng, at(3))};
    case 1:
      return RevokeLease{random_u64(rng, at(1))};
    case 2:
      return ExpireLease{random_u64(rng, at(2)), random_u64(rng, at(5))};
    case 3:
      return Acquire{random_string(rng, at(0)),
                     random_u64(rng, at(1)),
                     random_string(rng, at(3)),
                     random_i64(rng, at(2)),
                     flag(0),
                     optional_ttl(5)};
    case 4:
      return CancelWait{random_string(rng, at(1)), random_u64(rng, at(4))};
    case 5:
      return Release{random_string(rng, at(2)), random_u64(rng, at(3)), random_u64(rng, at(7))};
    case 6:
      return EndLockDelay{random_string(rng, at(3)), random_u64(rng, at(6))};
    case 7:
      return Campaign{random_string(rng, at(4)), random_u64(rng, at(2)), random_string(rng, at(1)),
                      flag(1), optional_ttl(7)};
    case 8:
      return Proclaim{random_string(rng, at(5)), random_u64(rng, at(4)), random_u64(rng, at(9)),
                      random_string(rng, at(2))};
    case 9:
      return Resign{random_string(rng, at(6)), random_u64(rng, at(8)), random_u64(rng, at(1))};
    default:
      return CancelCampaign{random_string(rng, at(7)), random_u64(rng, at(5))};
  }
}

// ---- 1. Round trips ----------------------------------------------------------------------------

TEST_F(CommandDecoderEquivalence, RandomCommandsOfEveryKindRoundTripAndDecodersAgree) {
  Rng rng(kSeed);
  std::cout << "[ seed ] " << kSeed << "\n";
  constexpr size_t kBoundaryRounds = 21;  // covers every entry of each boundary list
  constexpr size_t kRandomRounds = 60;
  size_t checked = 0;
  for (size_t kind = 0; kind < std::variant_size_v<Command>; ++kind) {
    for (size_t round = 0; round < kBoundaryRounds + kRandomRounds; ++round) {
      std::optional<size_t> boundary;
      if (round < kBoundaryRounds) boundary = round;
      Command command = random_command(rng, kind, boundary);
      ASSERT_EQ(command.index(), kind);
      std::string bytes = encode_command(command);
      Result<Command> decoded = decode_command(bytes);
      ASSERT_TRUE(decoded.ok()) << describe(command) << ": " << decoded.error().message;
      ASSERT_EQ(*decoded, command) << describe(command);
      ASSERT_TRUE(expect_same(bytes)) << describe(command);
      ++checked;
    }
  }
  EXPECT_EQ(checked, std::variant_size_v<Command> * (kBoundaryRounds + kRandomRounds));
}

TEST_F(CommandDecoderEquivalence, BoundaryIntegersRoundTripInEveryIntegerField) {
  for (uint64_t u : kU64Boundaries) {
    for (const Command& command :
         {Command{CreateLease{u, 1}}, Command{RevokeLease{u}}, Command{ExpireLease{u, u}},
          Command{Acquire{"n", u, "o", 0, false, std::nullopt}}, Command{CancelWait{"n", u}},
          Command{Release{"n", u, u}}, Command{EndLockDelay{"n", u}},
          Command{Campaign{"n", u, "v", true, std::nullopt}}, Command{Proclaim{"n", u, u, "v"}},
          Command{Resign{"n", u, u}}, Command{CancelCampaign{"n", u}}}) {
      std::string bytes = encode_command(command);
      EXPECT_TRUE(expect_same(bytes));
      Result<Command> decoded = decode_command(bytes);
      ASSERT_TRUE(decoded.ok()) << describe(command);
      EXPECT_EQ(*decoded, command);
    }
  }
  for (int64_t i : kI64Boundaries) {
    for (const Command& command :
         {Command{CreateLease{1, i}}, Command{Acquire{"n", 1, "o", i, true, i}},
          Command{Acquire{"n", 1, "o", 0, false, i}}, Command{Campaign{"n", 1, "v", false, i}}}) {
      std::string bytes = encode_command(command);
      EXPECT_TRUE(expect_same(bytes));
      Result<Command> decoded = decode_command(bytes);
      ASSERT_TRUE(decoded.ok()) << describe(command);
      EXPECT_EQ(*decoded, command);
    }
  }
}

TEST_F(CommandDecoderEquivalence, BoundaryStringLengthsRoundTripInEveryStringField) {
  Rng rng(kSeed + 1);
  for (size_t length : kStringLengths) {
    std::string s = random_bytes(rng, length);
    if (!s.empty()) s[0] = '\0';
    for (const Command& command :
         {Command{Acquire{s, 1, s, 0, false, std::nullopt}}, Command{CancelWait{s, 2}},
          Command{Release{s, 3, 4}}, Command{EndLockDelay{s, 5}},
          Command{Campaign{s, 6, s, true, 7}}, Command{Proclaim{"n", 8, 9, s}},
          Command{Resign{s, 10, 11}}, Command{CancelCampaign{s, 12}}}) {
      std::string bytes = encode_command(command);
      EXPECT_TRUE(expect_same(bytes)) << "string length " << length;
      Result<Command> decoded = decode_command(bytes);
      ASSERT_TRUE(decoded.ok()) << "string length " << length;
      EXPECT_EQ(*decoded, command) << "string length " << length;
    }
  }
}

// ---- 2. Truncations and single-byte changes of encoded commands --------------------------------

std::vector<Command> mutation_seeds() {
  return {
      CreateLease{7, 5000},
      CreateLease{kU64Max, kI64Min},
      CreateLease{0, -1},
      RevokeLease{1},
      RevokeLease{0x100000000ULL},
      ExpireLease{7, 42},
      ExpireLease{65536, 0},
      Acquire{"db:primary", 7, "worker-1", 1500, true, std::nullopt},
      Acquire{"", 9, "", -33, false, 20000},
      Acquire{std::string("a\0b\xff", 4), 300, std::string(32, 'o'), kI64Max, true, -129},
      CancelWait{"db:primary", 7},
      Release{"db:primary", 7, 123},
      Release{std::string(31, 'n'), kU64Max, 128},
      EndLockDelay{"db:primary", 99},
      EndLockDelay{std::string(256, 'e'), 70000},  // str16
      Campaign{"svc", 7, "10.0.0.1:80", true, std::nullopt},
      Campaign{"svc", 8, "", false, 3000},
      Campaign{"s", 255, std::string(40, 'v'), true, kI32Min - 1},
      Proclaim{"svc", 7, 55, "new-value"},
      Resign{"svc", 7, 55},
      CancelCampaign{"svc", 7},
  };
}

TEST_F(CommandDecoderEquivalence, EveryTruncationOfEncodedCommands) {
  size_t checked = 0;
  for (const Command& command : mutation_seeds()) {
    std::string bytes = encode_command(command);
    for (size_t length = 0; length < bytes.size(); ++length) {
      std::string_view prefix(bytes.data(), length);
      EXPECT_TRUE(expect_same(prefix)) << describe(command) << " cut to " << length;
      EXPECT_FALSE(decode_command(prefix).ok()) << describe(command) << " cut to " << length;
      ++checked;
    }
  }
  EXPECT_GT(checked, 500u);
}

TEST_F(CommandDecoderEquivalence, EverySingleByteChangeOfEncodedCommands) {
  size_t checked = 0;
  size_t still_decoding = 0;
  for (const Command& command : mutation_seeds()) {
    const std::string bytes = encode_command(command);
    for (size_t at = 0; at < bytes.size(); ++at) {
      auto original = static_cast<uint8_t>(bytes[at]);
      const uint8_t replacements[] = {0x00,
                                      0xff,
                                      static_cast<uint8_t>(original ^ 0x01),
                                      static_cast<uint8_t>(original + 1),
                                      static_cast<uint8_t>(original - 1),
                                      static_cast<uint8_t>(original ^ 0x10),
                                      0xc0,
                                      0xc3,
                                      0x80};
      for (uint8_t replacement : replacements) {
        if (replacement == original) continue;
        std::string changed = bytes;
        changed[at] = static_cast<char>(replacement);
        if (!expect_same(changed)) {
          ADD_FAILURE() << describe(command) << ": byte " << at << " set to "
                        << static_cast<int>(replacement);
        }
        if (decode_command(changed).ok()) ++still_decoding;
        ++checked;
      }
    }
  }
  std::cout << "[ info ] " << checked << " changed encodings, " << still_decoding
            << " still decode\n";
  EXPECT_GT(checked, 5000u);
}

// ---- 3. Random bytes and random map-shaped inputs ----------------------------------------------

TEST_F(CommandDecoderEquivalence, RandomByteStrings) {
  Rng rng(kSeed + 2);
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = random_bytes(rng, pick(rng, 65));
    if (i % 2 == 0 && !bytes.empty()) bytes[0] = static_cast<char>(0x80 | pick(rng, 16));
    if (!expect_same(bytes)) ADD_FAILURE() << "case " << i;
  }
}

// Any MessagePack item (valid), with nesting up to `depth`.
std::string random_item(Rng& rng, int depth = 2) {
  Pack p;
  switch (pick(rng, depth > 0 ? 16 : 14)) {
    case 0:
      return p.nil().bytes();
    case 1:
      return p.boolean(chance(rng, 50)).bytes();
    case 2:
      return p.uint(random_u64(rng)).bytes();
    case 3:
      return p.int_(random_i64(rng)).bytes();
    case 4:
      return p.str(random_string(rng)).bytes();
    case 5:
      return p.str8(random_bytes(rng, pick(rng, 8))).bytes();
    case 6:
      return p.bin8(random_bytes(rng, pick(rng, 8))).bytes();
    case 7:
      return p.f32(static_cast<float>(pick(rng, 10))).bytes();
    case 8:
      return p.f64(static_cast<double>(pick(rng, 10)) / 2).bytes();
    case 9:
      return p.u64(pick(rng, 3)).bytes();
    case 10:
      return p.i64(static_cast<int64_t>(pick(rng, 3)) - 1).bytes();
    case 11:
      return p.byte(0xd4).byte(static_cast<uint8_t>(pick(rng, 256))).byte(0x01).bytes();
    case 12:
      return p.str(op_specs()[pick(rng, op_specs().size())].op).bytes();
    case 13:
      return p.u8(pick(rng, 256)).bytes();
    case 14: {
      size_t n = pick(rng, 3);
      p.fixarray(n);
      for (size_t i = 0; i < n; ++i) p.raw(random_item(rng, depth - 1));
      return p.bytes();
    }
    default: {
      size_t n = pick(rng, 3);
      p.fixmap(n);
      for (size_t i = 0; i < n; ++i)
        p.str(random_bytes(rng, pick(rng, 5))).raw(random_item(rng, depth - 1));
      return p.bytes();
    }
  }
}

TEST_F(CommandDecoderEquivalence, RandomFixmapsOfRandomItems) {
  Rng rng(kSeed + 3);
  const std::vector<std::string> keys = {"op",    "name",   "lease_id", "owner",         "wait",
                                         "value", "ttl_ms", "",         "fencing_token", "x"};
  for (int i = 0; i < 3000; ++i) {
    size_t n = pick(rng, 16);
    Pack p;
    p.fixmap(n);
    for (size_t k = 0; k < n; ++k) {
      if (chance(rng, 70)) {
        p.str(keys[pick(rng, keys.size())]);
      } else {
        p.raw(random_item(rng, 1));  // often not a string: the map is malformed
      }
      p.raw(random_item(rng));
    }
    if (chance(rng, 5)) p.raw(random_item(rng));  // trailing bytes
    if (!expect_same(p.bytes())) ADD_FAILURE() << "case " << i;
  }
}

// A value of `type`: usually well-typed (canonical or in a wider encoding), sometimes not.
std::string random_value(Rng& rng, FieldType type) {
  int roll = static_cast<int>(pick(rng, 100));
  Pack p;
  if (roll >= 88) return random_item(rng);  // any type
  bool wide = roll >= 72;
  switch (type) {
    case FieldType::kOptionalI64:
      if (chance(rng, 20)) return p.nil().bytes();
      [[fallthrough]];
    case FieldType::kI64: {
      if (!wide) return p.int_(random_i64(rng)).bytes();
      int64_t v = random_i64(rng);
      switch (pick(rng, 6)) {
        case 0:
          return p.i64(v).bytes();
        case 1:
          return p.i32(static_cast<int32_t>(v)).bytes();
        case 2:
          return p.i16(static_cast<int16_t>(v)).bytes();
        case 3:
          return p.i8(static_cast<int8_t>(v)).bytes();
        case 4:
          return p.u64(static_cast<uint64_t>(v)).bytes();  // > INT64_MAX when v < 0
        default:
          return p.u32(static_cast<uint32_t>(v)).bytes();
      }
    }
    case FieldType::kU64: {
      if (!wide) return p.uint(random_u64(rng)).bytes();
      uint64_t v = random_u64(rng);
      switch (pick(rng, 6)) {
        case 0:
          return p.u64(v).bytes();
        case 1:
          return p.u32(static_cast<uint32_t>(v)).bytes();
        case 2:
          return p.u16(static_cast<uint16_t>(v)).bytes();
        case 3:
          return p.i64(static_cast<int64_t>(v)).bytes();  // negative when v > INT64_MAX
        case 4:
          return p.i8(static_cast<int8_t>(v)).bytes();
        default:
          return p.int_(random_i64(rng)).bytes();
      }
    }
    case FieldType::kString: {
      std::string s = random_string(rng);
      if (!wide) return p.str(s).bytes();
      switch (pick(rng, 3)) {
        case 0:
          return s.size() <= 0xff ? p.str8(s).bytes() : p.str32(s).bytes();
        case 1:
          return s.size() <= 0xffff ? p.str16(s).bytes() : p.str32(s).bytes();
        default:
          return p.str32(s).bytes();
      }
    }
    case FieldType::kBool:
      if (!wide) return p.boolean(chance(rng, 50)).bytes();
      return p.fixint(static_cast<uint8_t>(pick(rng, 2))).bytes();
  }
  return p.nil().bytes();
}

std::string encoded_key(Rng& rng, std::string_view key) {
  if (chance(rng, 5)) return Pack().str8(key).bytes();
  return Pack().str(key).bytes();
}

TEST_F(CommandDecoderEquivalence, RandomSchemaShapedFixmaps) {
  Rng rng(kSeed + 4);
  constexpr int kCases = 6000;
  int decoded_ok = 0;
  for (int i = 0; i < kCases; ++i) {
    const OpSpec& spec = op_specs()[pick(rng, op_specs().size())];
    std::vector<Entry> entries;
    for (const FieldSpec& field : spec.fields) {
      if (chance(rng, 94))
        entries.push_back({encoded_key(rng, field.key), random_value(rng, field.type)});
    }
    if (chance(rng, 96)) {
      std::string op_value;
      int roll = static_cast<int>(pick(rng, 100));
      if (roll < 90) {
        op_value = Pack().str(spec.op).bytes();
      } else if (roll < 95) {
        op_value = Pack().str(op_specs()[pick(rng, op_specs().size())].op).bytes();
      } else {
        op_value = random_item(rng);
      }
      entries.push_back({encoded_key(rng, "op"), op_value});
    }
    if (chance(rng, 12)) {  // an extra field: unknown, or another command's
      static const std::vector<std::string> kExtraKeys = {"zz",
                                                          "",
                                                          "nam",
                                                          "names",
                                                          "Name",
                                                          std::string("name\0", 5),
                                                          "value",
                                                          "ttl_ms",
                                                          "fencing_token",
                                                          "create_lease_ttl_ms",
                                                          "started_index",
                                                          "created_index"};
      entries.push_back(
          {Pack().str(kExtraKeys[pick(rng, kExtraKeys.size())]).bytes(), random_item(rng)});
    }
    if (chance(rng, 6) && !entries.empty()) {  // a duplicate key, with the same or another value
      Entry copy = entries[pick(rng, entries.size())];
      if (chance(rng, 50)) copy.value = random_item(rng);
      entries.push_back(copy);
    }
    if (chance(rng, 50)) {
      std::shuffle(entries.begin(), entries.end(), rng);
    } else {
      std::sort(entries.begin(), entries.end(),  // encode_command's order
                [](const Entry& a, const Entry& b) { return key_text(a.key) < key_text(b.key); });
    }
    Pack p;
    int header = static_cast<int>(pick(rng, 100));
    if (header < 4) {
      p.map16(entries.size());
    } else if (header < 6) {
      p.map32(entries.size());
    } else if (header < 8) {
      p.fixmap(std::min<size_t>(15, entries.size() + 1));  // claims one entry more
    } else if (header < 10 && !entries.empty()) {
      p.fixmap(entries.size() - 1);  // claims one entry fewer: trailing bytes
    } else {
      p.fixmap(entries.size());
    }
    for (const Entry& e : entries) p.raw(e.key).raw(e.value);
    if (chance(rng, 3)) p.byte(static_cast<uint8_t>(pick(rng, 256)));
    if (!expect_same(p.bytes())) ADD_FAILURE() << "case " << i << " (" << spec.op << ")";
    if (decode_command(p.bytes()).ok()) ++decoded_ok;
  }
  std::cout << "[ info ] " << decoded_ok << " of " << kCases << " schema-shaped maps decode\n";
  // The generator must reach the success path often, or it would not test the fast path's reads.
  EXPECT_GT(decoded_ok, kCases / 5);
  EXPECT_LT(decoded_ok, kCases);
}

// ---- 4. Hand-made non-canonical encodings ------------------------------------------------------

TEST_F(CommandDecoderEquivalence, HandWriterSpellsEncodeCommandBytes) {
  // The hand-made cases below are variations of these canonical spellings.
  EXPECT_EQ(fixmap_of(release_entries()), encode_command(kRelease));
  EXPECT_EQ(fixmap_of(acquire_entries()), encode_command(kAcquire));
  EXPECT_EQ(expect_same_command(fixmap_of(release_entries())), Command{kRelease});
  EXPECT_EQ(expect_same_command(fixmap_of(acquire_entries())), Command{kAcquire});
}

TEST_F(CommandDecoderEquivalence, KeysInAnyOrder) {
  std::vector<Entry> entries = release_entries();
  std::vector<size_t> order = {0, 1, 2, 3};
  int permutations = 0;
  do {
    std::vector<Entry> permuted;
    for (size_t i : order) permuted.push_back(entries[i]);
    EXPECT_EQ(expect_same_command(fixmap_of(permuted)), Command{kRelease});
    ++permutations;
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_EQ(permutations, 24);

  Rng rng(kSeed + 5);
  std::vector<Entry> acquire = acquire_entries();
  for (int i = 0; i < 200; ++i) {
    std::shuffle(acquire.begin(), acquire.end(), rng);
    EXPECT_EQ(expect_same_command(fixmap_of(acquire)), Command{kAcquire});
  }
  std::reverse(acquire.begin(), acquire.end());
  EXPECT_EQ(expect_same_command(fixmap_of(acquire)), Command{kAcquire});

  // Every kind, shuffled.
  for (size_t kind = 0; kind < std::variant_size_v<Command>; ++kind) {
    Command command = random_command(rng, kind, std::nullopt);
    json object = json::from_msgpack(encode_command(command));
    std::vector<Entry> kind_entries;
    for (auto& [key, value] : object.items()) {
      std::vector<uint8_t> v = json::to_msgpack(value);
      kind_entries.push_back({Pack().str(key).bytes(), std::string(v.begin(), v.end())});
    }
    for (int i = 0; i < 10; ++i) {
      std::shuffle(kind_entries.begin(), kind_entries.end(), rng);
      EXPECT_EQ(expect_same_command(fixmap_of(kind_entries)), command);
    }
  }
}

TEST_F(CommandDecoderEquivalence, UnknownAndOtherCommandsFieldsAreIgnored) {
  const std::vector<Pack> values = {Pack().uint(1),
                                    Pack().str("x"),
                                    Pack().nil(),
                                    Pack().boolean(false),
                                    Pack().f64(1.5),
                                    Pack().bin8("b"),
                                    Pack().fixarray(2).uint(1).str("a"),
                                    Pack().fixmap(1).str("k").fixmap(0),
                                    Pack().byte(0xd4).byte(0x01).byte(0x02)};  // fixext1
  const std::vector<std::string> keys = {"zz",
                                         "",
                                         "nam",
                                         "names",
                                         "Name",
                                         std::string("name\0", 5),
                                         "value",
                                         "ttl_ms",
                                         "wait",
                                         "owner",
                                         std::string(300, 'k'),
                                         "\xff\xfe",
                                         "create_lease_ttl_ms"};
  for (const std::string& key : keys) {
    for (const Pack& value : values) {
      std::vector<Entry> entries = release_entries();
      entries.insert(entries.begin() + 2, entry(key, value));
      EXPECT_EQ(expect_same_command(fixmap_of(entries)), Command{kRelease})
          << "extra key \"" << escaped(key) << "\"";
    }
  }
  // Several extra fields at once, first and last.
  std::vector<Entry> entries = acquire_entries();
  entries.insert(entries.begin(), entry("aaa", Pack().str("first")));
  entries.push_back(entry("zzz", Pack().fixmap(1).str("n").fixarray(1).nil()));
  entries.push_back(entry("value", Pack().str("campaign's field")));
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), Command{kAcquire});
}

TEST_F(CommandDecoderEquivalence, UnsignedFieldsInSignedEncodings) {
  struct Case {
    Pack value;
    uint64_t lease_id;
  };
  const std::vector<Case> accepted = {
      {Pack().i8(5), 5},
      {Pack().i8(127), 127},
      {Pack().i16(300), 300},
      {Pack().i16(0), 0},
      {Pack().i32(70000), 70000},
      {Pack().i64(1LL << 40), 1ULL << 40},
      {Pack().i64(kI64Max), uint64_t{kI64Max}},
  };
  for (const Case& c : accepted) {
    Command decoded =
        expect_same_command(fixmap_of(with_value(release_entries(), "lease_id", c.value)));
    EXPECT_EQ(decoded, (Command{Release{"lk", c.lease_id, 9}})) << hex(c.value.bytes());
  }
  const std::vector<Pack> negative = {
      Pack().negative_fixint(-1), Pack().negative_fixint(-32), Pack().i8(-1),  Pack().i8(-128),
      Pack().i16(-300),           Pack().i32(kI32Min),         Pack().i64(-1), Pack().i64(kI64Min)};
  for (const Pack& value : negative) {
    for (const char* field : {"lease_id", "fencing_token"}) {
      Error e = expect_same_error(fixmap_of(with_value(release_entries(), field, value)));
      EXPECT_EQ(e.message, "release command: field '" + std::string(field) +
                               "' must be a non-negative integer");
    }
  }
}

TEST_F(CommandDecoderEquivalence, SignedFieldsInUnsignedEncodings) {
  auto create = [](const Pack& ttl) {
    return fixmap_of({entry("lease_id", Pack().uint(3)), entry("op", Pack().str("create_lease")),
                      entry("ttl_ms", ttl)});
  };
  EXPECT_EQ(expect_same_command(create(Pack().u64(uint64_t{kI64Max}))),
            (Command{CreateLease{3, kI64Max}}));
  EXPECT_EQ(expect_same_command(create(Pack().u8(5))), (Command{CreateLease{3, 5}}));
  EXPECT_EQ(expect_same_command(create(Pack().u32(0xffffffff))),
            (Command{CreateLease{3, 0xffffffffLL}}));
  for (uint64_t too_big : {uint64_t{kI64Max} + 1, kU64Max, uint64_t{0xfedcba9876543210ULL}}) {
    EXPECT_EQ(expect_same_error(create(Pack().u64(too_big))).message,
              "create_lease command: field 'ttl_ms' is out of range");
    EXPECT_EQ(expect_same_error(
                  fixmap_of(with_value(acquire_entries(), "lock_delay_ms", Pack().u64(too_big))))
                  .message,
              "acquire command: field 'lock_delay_ms' is out of range");
    EXPECT_EQ(expect_same_error(fixmap_of(with_value(acquire_entries(), "create_lease_ttl_ms",
                                                     Pack().u64(too_big))))
                  .message,
              "acquire command: field 'create_lease_ttl_ms' is out of range");
  }
}

TEST_F(CommandDecoderEquivalence, IntegersInWiderEncodingsThanNeeded) {
  const std::vector<Pack> five = {Pack().u8(5), Pack().u16(5), Pack().u32(5), Pack().u64(5),
                                  Pack().i8(5), Pack().i16(5), Pack().i32(5), Pack().i64(5)};
  for (const Pack& value : five) {
    for (const char* field : {"lease_id", "lock_delay_ms", "create_lease_ttl_ms"}) {
      Acquire expected = kAcquire;
      if (std::string_view(field) == "lease_id") expected.lease_id = 5;
      if (std::string_view(field) == "lock_delay_ms") expected.lock_delay_ms = 5;
      if (std::string_view(field) == "create_lease_ttl_ms") expected.create_lease_ttl_ms = 5;
      EXPECT_EQ(expect_same_command(fixmap_of(with_value(acquire_entries(), field, value))),
                Command{expected})
          << field << " as " << hex(value.bytes());
    }
  }
  // uint64 for 7 in every unsigned field of release.
  std::vector<Entry> entries = with_value(release_entries(), "lease_id", Pack().u64(7));
  entries = with_value(entries, "fencing_token", Pack().u64(7));
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), (Command{Release{"lk", 7, 7}}));
  // Negative values in wider signed encodings.
  for (const Pack& minus_one : {Pack().i8(-1), Pack().i16(-1), Pack().i32(-1), Pack().i64(-1)}) {
    Acquire expected = kAcquire;
    expected.lock_delay_ms = -1;
    EXPECT_EQ(
        expect_same_command(fixmap_of(with_value(acquire_entries(), "lock_delay_ms", minus_one))),
        Command{expected});
  }
}

TEST_F(CommandDecoderEquivalence, StringsInWiderEncodingsThanNeeded) {
  for (int width = 8; width <= 32; width *= 2) {
    auto wide = [&](std::string_view s) {
      if (width == 8) return Pack().str8(s);
      if (width == 16) return Pack().str16(s);
      return Pack().str32(s);
    };
    // Values.
    std::vector<Entry> entries = with_value(acquire_entries(), "name", wide("lk"));
    entries = with_value(entries, "owner", wide(""));
    entries = with_value(entries, "op", wide("acquire"));
    Acquire expected = kAcquire;
    expected.owner = "";
    EXPECT_EQ(expect_same_command(fixmap_of(entries)), Command{expected}) << "str" << width;
    // Keys.
    std::vector<Entry> wide_keys = release_entries();
    for (Entry& e : wide_keys) {
      std::string key = e.key.substr(1);  // fixstr: one header byte
      e.key = wide(key).bytes();
    }
    EXPECT_EQ(expect_same_command(fixmap_of(wide_keys)), Command{kRelease}) << "str" << width;
  }
}

TEST_F(CommandDecoderEquivalence, StringsWithAnyBytes) {
  const std::string odd = std::string("\0\xff\xc0\x80 \xed\xa0\x80", 8);  // NUL, invalid UTF-8
  std::vector<Entry> entries = with_value(acquire_entries(), "name", Pack().str(odd));
  entries = with_value(entries, "owner", Pack().str(odd + odd));
  Acquire expected = kAcquire;
  expected.name = odd;
  expected.owner = odd + odd;
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), Command{expected});
  // A NUL inside the op or a key name is part of the name.
  const std::string op_with_nul("release\0", 8);
  EXPECT_EQ(
      expect_same_error(fixmap_of(with_value(release_entries(), "op", Pack().str(op_with_nul))))
          .message,
      op_with_nul + " command: unknown command op '" + op_with_nul + "'");
  std::vector<Entry> nul_key = without(release_entries(), "name");
  nul_key.push_back(entry(std::string("name\0", 5), Pack().str("lk")));
  EXPECT_EQ(expect_same_error(fixmap_of(nul_key)).message, "release command: missing field 'name'");
}

TEST_F(CommandDecoderEquivalence, NilValues) {
  // nil for the optional field: absent.
  Acquire expected = kAcquire;
  expected.create_lease_ttl_ms = std::nullopt;
  EXPECT_EQ(expect_same_command(
                fixmap_of(with_value(acquire_entries(), "create_lease_ttl_ms", Pack().nil()))),
            Command{expected});
  Campaign campaign{"svc", 7, "v", false, std::nullopt};
  std::string campaign_bytes =
      fixmap_of({entry("create_lease_ttl_ms", Pack().nil()), entry("lease_id", Pack().uint(7)),
                 entry("name", Pack().str("svc")), entry("op", Pack().str("campaign")),
                 entry("value", Pack().str("v")), entry("wait", Pack().boolean(false))});
  EXPECT_EQ(expect_same_command(campaign_bytes), Command{campaign});
  // nil for a required field: an error naming it.
  const std::vector<std::pair<const char*, const char*>> required = {
      {"lease_id", "must be a non-negative integer"},
      {"lock_delay_ms", "must be an integer"},
      {"name", "must be a string"},
      {"owner", "must be a string"},
      {"wait", "must be a boolean"}};
  for (const auto& [field, complaint] : required) {
    EXPECT_EQ(
        expect_same_error(fixmap_of(with_value(acquire_entries(), field, Pack().nil()))).message,
        "acquire command: field '" + std::string(field) + "' " + complaint);
  }
  EXPECT_EQ(expect_same_error(fixmap_of(with_value(acquire_entries(), "op", Pack().nil()))).message,
            "command field 'op' must be a string");
}

TEST_F(CommandDecoderEquivalence, BooleansWrittenAsIntegersAreRejected) {
  for (const Pack& value : {Pack().fixint(0), Pack().fixint(1), Pack().u8(1), Pack().str("true")}) {
    EXPECT_EQ(expect_same_error(fixmap_of(with_value(acquire_entries(), "wait", value))).message,
              "acquire command: field 'wait' must be a boolean");
  }
  EXPECT_EQ(
      expect_same_command(fixmap_of(with_value(acquire_entries(), "wait", Pack().boolean(false)))),
      (Command{Acquire{"lk", 7, "me", 1500, false, 3000}}));
}

TEST_F(CommandDecoderEquivalence, MissingUnknownOrMistypedOp) {
  EXPECT_EQ(expect_same_error(fixmap_of(without(release_entries(), "op"))).message,
            "command missing field 'op'");
  EXPECT_EQ(expect_same_error(Pack().fixmap(0).bytes()).message, "command missing field 'op'");
  // Missing op wins over bad fields.
  EXPECT_EQ(
      expect_same_error(
          fixmap_of(without(with_value(release_entries(), "lease_id", Pack().str("x")), "op")))
          .message,
      "command missing field 'op'");
  for (const char* op : {"", "Release", "releasee", "releas", "lock", "create_leases"}) {
    EXPECT_EQ(
        expect_same_error(fixmap_of(with_value(release_entries(), "op", Pack().str(op)))).message,
        std::string(op) + " command: unknown command op '" + op + "'");
  }
  const std::vector<Pack> not_strings = {Pack().uint(5),
                                         Pack().boolean(true),
                                         Pack().bin8("release"),
                                         Pack().fixarray(1).str("release"),
                                         Pack().fixmap(0),
                                         Pack().f32(1.0f),
                                         Pack().negative_fixint(-3)};
  for (const Pack& value : not_strings) {
    EXPECT_EQ(expect_same_error(fixmap_of(with_value(release_entries(), "op", value))).message,
              "command field 'op' must be a string");
  }
  // Near-miss spellings of every op, with all of that op's fields present.
  Rng rng(kSeed + 8);
  for (size_t kind = 0; kind < std::variant_size_v<Command>; ++kind) {
    Command command = random_command(rng, kind, std::nullopt);
    json object = json::from_msgpack(encode_command(command));
    const std::string op = command_name(command);
    for (const std::string& near_miss :
         {op + "x", op.substr(0, op.size() - 1), op + std::string(1, '\0'), "x" + op,
          std::string(1, static_cast<char>(op[0] - 32)) + op.substr(1), op + op}) {
      object["op"] = near_miss;
      std::vector<uint8_t> bytes = json::to_msgpack(object);
      EXPECT_EQ(expect_same_error(std::string(bytes.begin(), bytes.end())).message,
                near_miss + " command: unknown command op '" + near_miss + "'");
    }
  }
  // Another command's op with these fields: resign has release's fields; proclaim needs a value.
  EXPECT_EQ(
      expect_same_command(fixmap_of(with_value(release_entries(), "op", Pack().str("resign")))),
      (Command{Resign{"lk", 7, 9}}));
  EXPECT_EQ(
      expect_same_error(fixmap_of(with_value(release_entries(), "op", Pack().str("proclaim"))))
          .message,
      "proclaim command: missing field 'value'");
  EXPECT_EQ(expect_same_command(
                fixmap_of(with_value(release_entries(), "op", Pack().str("cancel_wait")))),
            (Command{CancelWait{"lk", 7}}));
}

TEST_F(CommandDecoderEquivalence, MissingFieldsOfEveryKind) {
  Rng rng(kSeed + 6);
  for (size_t kind = 0; kind < std::variant_size_v<Command>; ++kind) {
    Command command = random_command(rng, kind, std::nullopt);
    json object = json::from_msgpack(encode_command(command));
    for (auto& [key, value] : object.items()) {
      if (key == "op") continue;
      json smaller = object;
      smaller.erase(key);
      std::vector<uint8_t> bytes = json::to_msgpack(smaller);
      std::string encoded(bytes.begin(), bytes.end());
      if (key == "create_lease_ttl_ms") {
        expect_same_command(encoded);  // optional
      } else {
        EXPECT_EQ(expect_same_error(encoded).message,
                  std::string(command_name(command)) + " command: missing field '" + key + "'");
      }
    }
  }
}

TEST_F(CommandDecoderEquivalence, DuplicateKeysTheLastOneCounts) {
  // Same value twice.
  std::vector<Entry> entries = release_entries();
  entries.push_back(entry("lease_id", Pack().uint(7)));
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), Command{kRelease});
  // Different values: the generic decoder keeps the last.
  entries = release_entries();
  entries.push_back(entry("lease_id", Pack().uint(8)));
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), (Command{Release{"lk", 8, 9}}));
  entries = release_entries();
  entries.insert(entries.begin(), entry("name", Pack().str("first")));
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), Command{kRelease});
  // A bad first value is overwritten by a good one, and a good one by a bad one.
  entries = release_entries();
  entries.insert(entries.begin(), entry("fencing_token", Pack().str("bad")));
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), Command{kRelease});
  entries = release_entries();
  entries.push_back(entry("fencing_token", Pack().str("bad")));
  EXPECT_EQ(expect_same_error(fixmap_of(entries)).message,
            "release command: field 'fencing_token' must be a non-negative integer");
  // Two ops: the last one decides.
  entries = release_entries();
  entries.push_back(entry("op", Pack().str("resign")));
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), (Command{Resign{"lk", 7, 9}}));
  entries = release_entries();
  entries.insert(entries.begin(), entry("op", Pack().str("resign")));
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), Command{kRelease});
  // The same key spelled as fixstr and as str8 is one key.
  entries = release_entries();
  entries.push_back(Entry{Pack().str8("lease_id").bytes(), Pack().uint(11).bytes()});
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), (Command{Release{"lk", 11, 9}}));
  entries = release_entries();
  entries.insert(entries.begin(), Entry{Pack().str16("name").bytes(), Pack().str("zz").bytes()});
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), Command{kRelease});
  // The optional field given, then nil.
  entries = acquire_entries();
  entries.push_back(entry("create_lease_ttl_ms", Pack().nil()));
  Acquire expected = kAcquire;
  expected.create_lease_ttl_ms = std::nullopt;
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), Command{expected});
}

TEST_F(CommandDecoderEquivalence, Map16AndMap32Headers) {
  for (bool map32 : {false, true}) {
    std::vector<Entry> entries = acquire_entries();
    Pack p;
    if (map32) {
      p.map32(entries.size());
    } else {
      p.map16(entries.size());
    }
    for (const Entry& e : entries) p.raw(e.key).raw(e.value);
    EXPECT_EQ(expect_same_command(p.bytes()), Command{kAcquire}) << (map32 ? "map32" : "map16");
  }
  // A map16 with more than 15 entries (canonical fields plus unknown ones).
  std::vector<Entry> entries = release_entries();
  for (int i = 0; i < 20; ++i)
    entries.push_back(entry("extra" + std::to_string(i), Pack().uint(1)));
  Pack p;
  p.map16(entries.size());
  for (const Entry& e : entries) p.raw(e.key).raw(e.value);
  EXPECT_EQ(expect_same_command(p.bytes()), Command{kRelease});
  // Headers that claim more entries than there are.
  expect_same_error(Pack().map32(0xffffffff).str("op").str("release").bytes());
  expect_same_error(Pack().map16(5).raw(fixmap_of(release_entries()).substr(1)).bytes());
}

TEST_F(CommandDecoderEquivalence, FifteenEntriesTheMostAFixmapHolds) {
  std::vector<Entry> entries = release_entries();
  for (int i = 0; i < 11; ++i) entries.push_back(entry("x" + std::to_string(i), Pack().uint(1)));
  ASSERT_EQ(entries.size(), 15u);
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), Command{kRelease});
  // The fifteenth entry repeats a key with another value: the last one counts.
  entries.back() = entry("fencing_token", Pack().uint(10));
  EXPECT_EQ(expect_same_command(fixmap_of(entries)), (Command{Release{"lk", 7, 10}}));
  entries.back() = entry("fencing_token", Pack().str("bad"));
  EXPECT_EQ(expect_same_error(fixmap_of(entries)).message,
            "release command: field 'fencing_token' must be a non-negative integer");
  // The required fields last, after fourteen others in a map16.
  std::vector<Entry> late = {};
  for (int i = 0; i < 14; ++i) late.push_back(entry("y" + std::to_string(i), Pack().nil()));
  for (const Entry& e : release_entries()) late.push_back(e);
  Pack p;
  p.map16(late.size());
  for (const Entry& e : late) p.raw(e.key).raw(e.value);
  EXPECT_EQ(expect_same_command(p.bytes()), Command{kRelease});
}

TEST_F(CommandDecoderEquivalence, NotAMapAtTopLevel) {
  const std::vector<std::string> inputs = {
      "",
      Pack().nil().bytes(),
      Pack().boolean(true).bytes(),
      Pack().uint(5).bytes(),
      Pack().int_(-5).bytes(),
      Pack().str("release").bytes(),
      Pack().bin8("xx").bytes(),
      Pack().f64(2.0).bytes(),
      Pack().fixarray(0).bytes(),
      Pack().fixarray(1).raw(fixmap_of(release_entries())).bytes(),
      Pack().byte(0xdc).big_endian(1, 2).raw(fixmap_of(release_entries())).bytes(),  // array16
      Pack().fixarray(8).raw(fixmap_of(release_entries()).substr(1)).bytes(),  // a map's items
  };
  for (const std::string& bytes : inputs) {
    Error e = expect_same_error(bytes);
    if (bytes.empty()) {
      EXPECT_EQ(e.message, "command bytes are not valid MessagePack");
    } else {
      EXPECT_EQ(e.message, "command is not a MessagePack map") << hex(bytes);
    }
  }
}

TEST_F(CommandDecoderEquivalence, MalformedMaps) {
  const std::string good = fixmap_of(release_entries());
  const std::vector<std::string> inputs = {
      good + std::string(1, '\0'),                               // trailing byte
      good + Pack().nil().bytes(),                               // trailing item
      good + good,                                               // two commands
      Pack().fixmap(5).raw(good.substr(1)).bytes(),              // header claims too many
      Pack().fixmap(3).raw(good.substr(1)).bytes(),              // header claims too few
      Pack().fixarray(4).raw(good.substr(1)).bytes(),            // a map body under an array header
      Pack().fixmap(1).uint(1).uint(2).bytes(),                  // integer key
      Pack().fixmap(1).nil().str("release").bytes(),             // nil key
      Pack().fixmap(1).bin8("op").str("release").bytes(),        // binary key
      Pack().fixmap(1).str("op").byte(0xc1).bytes(),             // reserved byte as a value
      Pack().fixmap(1).str("op").byte(0xa5).raw("rel").bytes(),  // string cut short
      Pack().fixmap(1).str("op").byte(0xdb).big_endian(0xffffffff, 4).raw("release").bytes(),
  };
  for (const std::string& bytes : inputs) {
    EXPECT_EQ(expect_same_error(bytes).message, "command bytes are not valid MessagePack")
        << hex(bytes);
  }
}

TEST_F(CommandDecoderEquivalence, NestedBinaryAndFloatValuesWhereScalarsBelong) {
  struct Case {
    const char* field;
    Pack value;
    const char* complaint;
  };
  const std::vector<Case> cases = {
      {"name", Pack().fixmap(0), "must be a string"},
      {"name", Pack().fixarray(1).str("lk"), "must be a string"},
      {"name", Pack().bin8("lk"), "must be a string"},
      {"name", Pack().uint(1), "must be a string"},
      {"owner", Pack().bin8(""), "must be a string"},
      {"owner", Pack().byte(0xd4).byte(0x00).byte(0x61), "must be a string"},  // fixext1
      {"lease_id", Pack().f32(7.0f), "must be a non-negative integer"},
      {"lease_id", Pack().f64(7.0), "must be a non-negative integer"},
      {"lease_id", Pack().str("7"), "must be a non-negative integer"},
      {"lease_id", Pack().fixarray(1).uint(7), "must be a non-negative integer"},
      {"lease_id", Pack().boolean(true), "must be a non-negative integer"},
      {"lock_delay_ms", Pack().f64(-1.0), "must be an integer"},
      {"lock_delay_ms", Pack().fixmap(1).str("ms").uint(1), "must be an integer"},
      {"lock_delay_ms", Pack().bin8("\x01"), "must be an integer"},
      {"create_lease_ttl_ms", Pack().f32(3000.0f), "must be an integer"},
      {"create_lease_ttl_ms", Pack().str("3000"), "must be an integer"},
      {"create_lease_ttl_ms", Pack().boolean(false), "must be an integer"},
      {"wait", Pack().fixarray(0), "must be a boolean"},
      {"wait", Pack().f64(1.0), "must be a boolean"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(expect_same_error(fixmap_of(with_value(acquire_entries(), c.field, c.value))).message,
              "acquire command: field '" + std::string(c.field) + "' " + c.complaint)
        << hex(c.value.bytes());
  }
}

TEST_F(CommandDecoderEquivalence, SeveralBadFieldsReportTheFirstInReadingOrder) {
  // The generic decoder reads acquire's fields as name, lease_id, owner, lock_delay_ms, wait,
  // create_lease_ttl_ms, whatever their order in the bytes.
  std::vector<Entry> entries = with_value(acquire_entries(), "wait", Pack().nil());
  entries = with_value(entries, "lease_id", Pack().str("x"));
  entries = with_value(entries, "create_lease_ttl_ms", Pack().str("x"));
  Rng rng(kSeed + 7);
  for (int i = 0; i < 30; ++i) {
    std::shuffle(entries.begin(), entries.end(), rng);
    EXPECT_EQ(expect_same_error(fixmap_of(entries)).message,
              "acquire command: field 'lease_id' must be a non-negative integer");
  }
  std::vector<Entry> missing_and_bad = without(entries, "name");
  for (int i = 0; i < 30; ++i) {
    std::shuffle(missing_and_bad.begin(), missing_and_bad.end(), rng);
    EXPECT_EQ(expect_same_error(fixmap_of(missing_and_bad)).message,
              "acquire command: missing field 'name'");
  }
  // Release: name, lease_id, fencing_token.
  std::vector<Entry> release = with_value(release_entries(), "fencing_token", Pack().nil());
  release = with_value(release, "lease_id", Pack().negative_fixint(-1));
  for (int i = 0; i < 10; ++i) {
    std::shuffle(release.begin(), release.end(), rng);
    EXPECT_EQ(expect_same_error(fixmap_of(release)).message,
              "release command: field 'lease_id' must be a non-negative integer");
  }
}

}  // namespace
}  // namespace raftlock::lockservice
