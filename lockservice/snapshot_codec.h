// Byte-level writer and bounds-checked reader for the lock state machine's binary snapshot format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace raftlock::lockservice::snapshot_codec {

// Binary snapshots (format 2) start with these four bytes and then a format version byte. The
// older MessagePack snapshots (format 1) start with a map header (0x80-0x8f, 0xde or 0xdf), so the
// first byte tells the two apart.
inline constexpr std::string_view kMagic = "RLSB";
inline constexpr uint8_t kBinaryFormatVersion = 2;

// True when `data` starts like a binary snapshot (the magic); anything else is treated as format 1.
bool looks_binary(std::string_view data);

// Appends unsigned LEB128 varints, zigzag-encoded signed varints, single bytes and
// length-prefixed strings. With `out == nullptr` it only counts bytes (a sizing pass).
class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}
  void byte(uint8_t value);
  void u64(uint64_t value);
  void i64(int64_t value);
  void str(std::string_view value);
  void raw(std::string_view bytes);
  size_t size() const { return size_; }

 private:
  std::string* out_;
  size_t size_ = 0;
};

// Reads what ByteWriter wrote. Every read checks the remaining length and fails with
// ErrorCode::kCorrupt and a message naming `what` and the byte offset; nothing is read past the
// end of the buffer.
class ByteReader {
 public:
  explicit ByteReader(std::string_view data) : data_(data) {}
  Result<uint8_t> byte(std::string_view what);
  Result<uint64_t> u64(std::string_view what);
  Result<int64_t> i64(std::string_view what);
  // A string of at most `max_length` bytes.
  Result<std::string> str(std::string_view what, size_t max_length);
  // An element count; refused when it exceeds the bytes left (each element takes at least one).
  Result<uint64_t> count(std::string_view what);
  // Expects exactly these bytes next.
  Status expect(std::string_view bytes, std::string_view what);
  size_t offset() const { return offset_; }
  size_t remaining() const { return data_.size() - offset_; }
  // Ok when every byte was consumed; otherwise kCorrupt naming the trailing byte count.
  Status expect_end() const;

 private:
  Status fail(std::string_view what, std::string_view problem) const;

  std::string_view data_;
  size_t offset_ = 0;
};

}  // namespace raftlock::lockservice::snapshot_codec
