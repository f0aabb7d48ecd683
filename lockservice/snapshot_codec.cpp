#include "lockservice/snapshot_codec.h"

namespace raftlock::lockservice::snapshot_codec {

bool looks_binary(std::string_view data) {
  return data.starts_with(kMagic);
}

void ByteWriter::byte(uint8_t value) {
  if (out_ != nullptr) out_->push_back(static_cast<char>(value));
  ++size_;
}

void ByteWriter::u64(uint64_t value) {
  while (value >= 0x80) {
    byte(static_cast<uint8_t>(value | 0x80));
    value >>= 7;
  }
  byte(static_cast<uint8_t>(value));
}

void ByteWriter::i64(int64_t value) {
  const uint64_t bits = static_cast<uint64_t>(value);
  u64((bits << 1) ^ (value < 0 ? ~uint64_t{0} : uint64_t{0}));  // zigzag
}

void ByteWriter::str(std::string_view value) {
  u64(value.size());
  raw(value);
}

void ByteWriter::raw(std::string_view bytes) {
  if (out_ != nullptr) out_->append(bytes);
  size_ += bytes.size();
}

Status ByteReader::fail(std::string_view what, std::string_view problem) const {
  return make_error(ErrorCode::kCorrupt, std::string(what) + " at byte " + std::to_string(offset_) +
                                             ": " + std::string(problem));
}

Result<uint8_t> ByteReader::byte(std::string_view what) {
  if (remaining() < 1) return fail(what, "truncated (no bytes left)").error();
  return static_cast<uint8_t>(data_[offset_++]);
}

Result<uint64_t> ByteReader::u64(std::string_view what) {
  uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (remaining() < 1) return fail(what, "truncated inside a number").error();
    const auto b = static_cast<uint8_t>(data_[offset_++]);
    // The tenth byte may only carry the top bit of a 64-bit value.
    if (shift == 63 && b > 1) return fail(what, "number overflows 64 bits").error();
    value |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      // The shortest encoding only: a trailing zero byte would give one value two encodings.
      if (b == 0 && shift > 0) return fail(what, "number is not minimally encoded").error();
      return value;
    }
  }
  return fail(what, "number overflows 64 bits").error();
}

Result<int64_t> ByteReader::i64(std::string_view what) {
  auto raw_value = u64(what);
  if (!raw_value) return raw_value.error();
  const uint64_t bits = *raw_value;
  return static_cast<int64_t>((bits >> 1) ^ (~(bits & 1) + 1));
}

Result<std::string> ByteReader::str(std::string_view what, size_t max_length) {
  auto length = u64(what);
  if (!length) return length.error();
  if (*length > max_length) {
    return fail(what, "length " + std::to_string(*length) + " exceeds the limit " +
                          std::to_string(max_length))
        .error();
  }
  if (*length > remaining()) {
    return fail(what, "truncated (length " + std::to_string(*length) + ", " +
                          std::to_string(remaining()) + " bytes left)")
        .error();
  }
  std::string value(data_.substr(offset_, *length));
  offset_ += *length;
  return value;
}

Result<uint64_t> ByteReader::count(std::string_view what) {
  auto n = u64(what);
  if (!n) return n.error();
  if (*n > remaining()) {
    return fail(what, "truncated: count " + std::to_string(*n) + " exceeds the " +
                          std::to_string(remaining()) + " bytes left")
        .error();
  }
  return *n;
}

Status ByteReader::expect(std::string_view bytes, std::string_view what) {
  if (remaining() < bytes.size() || data_.substr(offset_, bytes.size()) != bytes) {
    return fail(what, "unexpected bytes");
  }
  offset_ += bytes.size();
  return Ok{};
}

Status ByteReader::expect_end() const {
  if (remaining() == 0) return Ok{};
  return fail("end of snapshot", std::to_string(remaining()) + " unexpected trailing bytes");
}

}  // namespace raftlock::lockservice::snapshot_codec
