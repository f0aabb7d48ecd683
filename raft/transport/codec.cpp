#include "raft/transport/codec.h"

#include <algorithm>
#include <array>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace raftlock::raft::transport {

namespace {

// Wire layout (all positional msgpack arrays, byte strings as msgpack bin):
//   batch   = [version, cluster_id, from, [message...]]
//   message = [type, from, to, term, log_term, index, commit, [entry...], reject, reject_term,
//              reject_hint, snapshot | nil, context]
//   entry   = [term, index, type, data]
//   snapshot= [index, term, [[member_id, voter, context]...], data]
//   chunk   = [version, cluster_id, from, to, transfer_id, offset, total, total_crc, chunk_crc,
//              message | nil, data]
//
// The bytes are exactly what nlohmann::json::to_msgpack produced for the same values before this
// codec replaced it (tests/transport/codec_equivalence_test.cpp checks it against that oracle):
// integers as unsigned in their smallest form, booleans, nil, arrays and strings in their smallest
// form, byte strings as bin 8/16/32 (never ext). The decoder accepts exactly what the nlohmann
// decoder accepted: unsigned integer encodings only, bin or ext where bytes belong, exact field
// counts, one root value and nothing after it.
constexpr size_t kMessageFields = 13;
constexpr size_t kEntryFields = 4;
constexpr size_t kSnapshotFields = 4;
constexpr size_t kMemberFields = 3;
constexpr size_t kBatchFields = 4;
constexpr size_t kChunkFields = 11;
constexpr uint64_t kMaxMessageType = static_cast<uint64_t>(MessageType::kDurable);
constexpr uint64_t kMaxEntryType = static_cast<uint64_t>(EntryType::kConfChange);

// The fewest bytes one element can take, so a declared element count is never trusted for a
// reservation beyond what the remaining bytes could hold.
constexpr size_t kMinEntryBytes = 6;     // fixarray, 3 fixints, empty bin 8
constexpr size_t kMinMemberBytes = 5;    // fixarray, fixint, bool, empty bin 8
constexpr size_t kMinMessageBytes = 15;  // fixarray, 7 fixints, [], bool, 2 fixints, nil, bin 8

// ---------------------------------------------------------------------------------------------
// Encoding

// Upper bounds of the encoded sizes (headers at their widest), so one reservation always fits.
constexpr size_t kMaxUintBytes = 9;
constexpr size_t kMaxHeaderBytes = 5;

size_t max_snapshot_size(const Snapshot& snapshot, bool with_data) {
  size_t size = 1 + 2 * kMaxUintBytes + kMaxHeaderBytes + kMaxHeaderBytes;
  for (const Member& m : snapshot.meta.config.members) {
    size += 1 + kMaxUintBytes + 1 + kMaxHeaderBytes + m.context.size();
  }
  if (with_data && snapshot.data) size += snapshot.data->size();
  return size;
}

size_t max_message_size(const Message& m, bool with_snapshot_data) {
  size_t size = 1 + 1 + 6 * kMaxUintBytes + kMaxHeaderBytes + 1 + 2 * kMaxUintBytes + 1 +
                kMaxHeaderBytes + m.context.size();
  for (const Entry& e : m.entries) size += 1 + 3 * kMaxUintBytes + kMaxHeaderBytes + e.data.size();
  if (m.snapshot) size += max_snapshot_size(*m.snapshot, with_snapshot_data);
  return size;
}

// Appends msgpack values to a string, choosing each encoding as nlohmann's binary_writer does.
class MsgpackWriter {
 public:
  explicit MsgpackWriter(std::string& out) : out_(out) {}

  void uint(uint64_t v) {
    if (v < 128) {
      byte(static_cast<uint8_t>(v));
    } else if (v > UINT32_MAX) {
      with_be(0xCF, v, 8);
    } else {
      sized(0xCC, 0xCD, 0xCE, v);
    }
  }

  void boolean(bool v) { byte(v ? 0xC3 : 0xC2); }
  void nil() { byte(0xC0); }

  void array(size_t n) {
    if (n <= 15) {
      byte(static_cast<uint8_t>(0x90 | n));
    } else if (n <= UINT16_MAX) {
      with_be(0xDC, n, 2);
    } else if (n <= UINT32_MAX) {
      with_be(0xDD, n, 4);
    }
    // nlohmann writes no header at all beyond 2^32 - 1 elements; neither do we.
  }

  // A byte string: msgpack bin (nlohmann's binary without a subtype), even when empty.
  void bin(std::string_view bytes) {
    sized(0xC4, 0xC5, 0xC6, bytes.size());
    out_.append(bytes.data(), bytes.size());
  }

  void str(std::string_view s) {
    if (s.size() <= 31) {
      byte(static_cast<uint8_t>(0xA0 | s.size()));
    } else {
      sized(0xD9, 0xDA, 0xDB, s.size());
    }
    out_.append(s.data(), s.size());
  }

 private:
  void byte(uint8_t b) { out_.push_back(static_cast<char>(b)); }

  // `v` (a length or a number) in the narrowest of 8, 16 and 32 bits, after that width's type
  // byte. Beyond 32 bits nlohmann writes no header at all; neither do we.
  void sized(uint8_t type8, uint8_t type16, uint8_t type32, uint64_t v) {
    if (v <= UINT8_MAX) {
      with_be(type8, v, 1);
    } else if (v <= UINT16_MAX) {
      with_be(type16, v, 2);
    } else if (v <= UINT32_MAX) {
      with_be(type32, v, 4);
    }
  }

  // A type byte followed by the low `width` bytes of `v`, big-endian.
  void with_be(uint8_t type, uint64_t v, int width) {
    char b[9];
    b[0] = static_cast<char>(type);
    for (int i = 0; i < width; ++i) {
      b[width - i] = static_cast<char>(v >> (8 * i));
    }
    out_.append(b, static_cast<size_t>(width) + 1);
  }

  std::string& out_;
};

void write_snapshot(MsgpackWriter& w, const Snapshot& snapshot, bool with_data) {
  w.array(kSnapshotFields);
  w.uint(snapshot.meta.index);
  w.uint(snapshot.meta.term);
  w.array(snapshot.meta.config.members.size());
  for (const Member& m : snapshot.meta.config.members) {
    w.array(kMemberFields);
    w.uint(m.id);
    w.boolean(m.voter);
    w.bin(m.context);
  }
  std::string_view data;
  if (with_data && snapshot.data) data = *snapshot.data;
  w.bin(data);
}

void write_message(MsgpackWriter& w, const Message& m, bool with_snapshot_data) {
  w.array(kMessageFields);
  w.uint(static_cast<uint64_t>(m.type));
  w.uint(m.from);
  w.uint(m.to);
  w.uint(m.term);
  w.uint(m.log_term);
  w.uint(m.index);
  w.uint(m.commit);
  w.array(m.entries.size());
  for (const Entry& e : m.entries) {
    w.array(kEntryFields);
    w.uint(e.term);
    w.uint(e.index);
    w.uint(static_cast<uint64_t>(e.type));
    w.bin(e.data);
  }
  w.boolean(m.reject);
  w.uint(m.reject_term);
  w.uint(m.reject_hint);
  if (m.snapshot) {
    write_snapshot(w, *m.snapshot, with_snapshot_data);
  } else {
    w.nil();
  }
  w.bin(m.context);
}

std::string encode_batch_of(uint32_t version, const std::string& cluster_id, NodeId from,
                            const std::vector<Message>& messages) {
  size_t size =
      1 + kMaxUintBytes + kMaxHeaderBytes + cluster_id.size() + kMaxUintBytes + kMaxHeaderBytes;
  for (const Message& m : messages) size += max_message_size(m, /*with_snapshot_data=*/true);
  std::string out;
  out.reserve(size);
  MsgpackWriter w(out);
  w.array(kBatchFields);
  w.uint(version);
  w.str(cluster_id);
  w.uint(from);
  w.array(messages.size());
  for (const Message& m : messages) write_message(w, m, /*with_snapshot_data=*/true);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

Error malformed(std::string what) {
  return make_error(ErrorCode::kInvalidArgument, "malformed peer message: " + std::move(what));
}

// Reads the schema's values straight from the bytes, bounds-checked. Every read returns false
// (consuming an unspecified amount) when the next value is missing, truncated or of another type;
// the caller then names the field, and decode_error() decides which error the body deserves.
class MsgpackReader {
 public:
  explicit MsgpackReader(std::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool at_end() const { return p_ == end_; }

  // An array header of any length.
  bool array(uint64_t& count) {
    if (p_ == end_) return false;
    const uint8_t type = *p_;
    if ((type & 0xF0) == 0x90) {
      ++p_;
      count = type & 0x0F;
      return true;
    }
    if (type == 0xDC) return sized(2, count);
    if (type == 0xDD) return sized(4, count);
    return false;
  }

  // An array header of exactly `fields` elements.
  bool tuple(size_t fields) {
    uint64_t count = 0;
    return array(count) && count == fields;
  }

  // An unsigned integer (positive fixint or uint 8/16/32/64); signed encodings are refused.
  bool uint(uint64_t& out) {
    if (p_ == end_) return false;
    const uint8_t type = *p_;
    if (type < 0x80) {
      ++p_;
      out = type;
      return true;
    }
    switch (type) {
      case 0xCC:
        return sized(1, out);
      case 0xCD:
        return sized(2, out);
      case 0xCE:
        return sized(4, out);
      case 0xCF:
        return sized(8, out);
      default:
        return false;
    }
  }

  bool uint32(uint32_t& out) {
    uint64_t v = 0;
    if (!uint(v) || v > UINT32_MAX) return false;
    out = static_cast<uint32_t>(v);
    return true;
  }

  bool boolean(bool& out) {
    if (p_ == end_ || (*p_ != 0xC2 && *p_ != 0xC3)) return false;
    out = *p_++ == 0xC3;
    return true;
  }

  // Consumes a nil if one is next.
  bool nil() {
    if (p_ == end_ || *p_ != 0xC0) return false;
    ++p_;
    return true;
  }

  // A byte string: bin 8/16/32, or ext 8/16/32 / fixext 1-16 (nlohmann read those as binary
  // values with a subtype; the subtype is ignored, as it was).
  bool bytes(std::string& out) {
    if (p_ == end_) return false;
    const uint8_t type = *p_;
    uint64_t len = 0;
    switch (type) {
      case 0xC4:
        if (!sized(1, len)) return false;
        break;
      case 0xC5:
        if (!sized(2, len)) return false;
        break;
      case 0xC6:
        if (!sized(4, len)) return false;
        break;
      case 0xC7:
      case 0xC8:
      case 0xC9:
        if (!sized(type == 0xC7 ? 1 : type == 0xC8 ? 2 : 4, len) || !skip(1)) return false;
        break;
      case 0xD4:
      case 0xD5:
      case 0xD6:
      case 0xD7:
      case 0xD8:
        ++p_;
        len = size_t{1} << (type - 0xD4);
        if (!skip(1)) return false;
        break;
      default:
        return false;
    }
    if (len > remaining()) return false;
    out.assign(reinterpret_cast<const char*>(p_), static_cast<size_t>(len));
    p_ += len;
    return true;
  }

  // A string: fixstr or str 8/16/32 (bytes kept as they are, no UTF-8 check, as before).
  bool str(std::string& out) {
    if (p_ == end_) return false;
    const uint8_t type = *p_;
    uint64_t len = 0;
    if ((type & 0xE0) == 0xA0) {
      ++p_;
      len = type & 0x1F;
    } else if (type == 0xD9) {
      if (!sized(1, len)) return false;
    } else if (type == 0xDA) {
      if (!sized(2, len)) return false;
    } else if (type == 0xDB) {
      if (!sized(4, len)) return false;
    } else {
      return false;
    }
    if (len > remaining()) return false;
    out.assign(reinterpret_cast<const char*>(p_), static_cast<size_t>(len));
    p_ += len;
    return true;
  }

 private:
  // Skips the type byte and reads a `width`-byte big-endian number after it.
  bool sized(int width, uint64_t& out) {
    if (remaining() < static_cast<size_t>(width) + 1) return false;
    ++p_;
    uint64_t v = 0;
    for (int i = 0; i < width; ++i) v = (v << 8) | p_[i];
    p_ += width;
    out = v;
    return true;
  }

  bool skip(size_t n) {
    if (remaining() < n) return false;
    p_ += n;
    return true;
  }

  const uint8_t* p_;
  const uint8_t* end_;
};

// How many elements to reserve for a declared count: never more than the bytes left could hold.
size_t bounded_reserve(uint64_t declared, size_t remaining, size_t min_element_bytes) {
  return static_cast<size_t>(std::min<uint64_t>(declared, remaining / min_element_bytes));
}

// The schema decoders return nullptr on success, else what was wrong (in the words the nlohmann
// decoder used, which checked the same fields in the same order).
const char* read_snapshot(MsgpackReader& r, Snapshot& snapshot) {
  if (!r.tuple(kSnapshotFields)) return "snapshot is not a 4-field array";
  if (!r.uint(snapshot.meta.index) || !r.uint(snapshot.meta.term)) {
    return "snapshot index/term is not an unsigned integer";
  }
  uint64_t members = 0;
  if (!r.array(members)) return "snapshot members is not an array";
  auto& list = snapshot.meta.config.members;
  list.reserve(bounded_reserve(members, r.remaining(), kMinMemberBytes));
  for (uint64_t i = 0; i < members; ++i) {
    Member m;
    if (!r.tuple(kMemberFields) || !r.uint(m.id) || !r.boolean(m.voter) || !r.bytes(m.context)) {
      return "snapshot member is not [id, voter, context]";
    }
    list.push_back(std::move(m));
  }
  auto data = std::make_shared<std::string>();
  if (!r.bytes(*data)) return "snapshot data is not a byte string";
  snapshot.data = std::move(data);
  return nullptr;
}

const char* read_message(MsgpackReader& r, Message& m) {
  if (!r.tuple(kMessageFields)) return "message is not a 13-field array";
  uint64_t type = 0;
  if (!r.uint(type) || type > kMaxMessageType) return "unknown message type";
  m.type = static_cast<MessageType>(type);
  if (!r.uint(m.from) || !r.uint(m.to) || !r.uint(m.term) || !r.uint(m.log_term) ||
      !r.uint(m.index) || !r.uint(m.commit)) {
    return "message header field is not an unsigned integer";
  }
  uint64_t entries = 0;
  if (!r.array(entries)) return "message entries is not an array";
  m.entries.reserve(bounded_reserve(entries, r.remaining(), kMinEntryBytes));
  for (uint64_t i = 0; i < entries; ++i) {
    Entry& e = m.entries.emplace_back();
    uint64_t entry_type = 0;
    if (!r.tuple(kEntryFields) || !r.uint(e.term) || !r.uint(e.index) || !r.uint(entry_type) ||
        entry_type > kMaxEntryType || !r.bytes(e.data)) {
      return "entry is not [term, index, type, data]";
    }
    e.type = static_cast<EntryType>(entry_type);
  }
  if (!r.boolean(m.reject) || !r.uint(m.reject_term) || !r.uint(m.reject_hint)) {
    return "message reject fields have the wrong type";
  }
  if (!r.nil()) {
    Snapshot snapshot;
    if (const char* error = read_snapshot(r, snapshot)) return error;
    m.snapshot = std::move(snapshot);
  }
  if (!r.bytes(m.context)) return "message context is not a byte string";
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Which error a refused body gets.
//
// The nlohmann decoder parsed the whole body before checking the schema, so a body that is not
// one well-formed msgpack value (truncated, an invalid byte, a map key that is not a string,
// bytes after the root value) or that nests deeper than kMaxNestingDepth was refused for that,
// whatever its fields said. The direct reader stops at the first thing it does not like; only on
// that (error) path does this walker check the whole body the same way, iteratively, so the
// error stays what it was. It never runs for a body that decodes.

// nullopt when `bytes` is one well-formed msgpack value within the nesting limit; otherwise why
// not. Positions are byte offsets.
std::optional<std::string> msgpack_syntax_error(std::string_view bytes) {
  const auto* const begin = reinterpret_cast<const uint8_t*>(bytes.data());
  const uint8_t* p = begin;
  const uint8_t* const end = begin + bytes.size();
  auto at = [&] { return std::to_string(p - begin); };
  auto truncated = [&] { return "not valid msgpack: truncated at byte " + at(); };
  // Reads a `width`-byte big-endian length at p.
  auto length = [&](int width, uint64_t& out) {
    if (end - p < width) return false;
    uint64_t v = 0;
    for (int i = 0; i < width; ++i) v = (v << 8) | p[i];
    p += width;
    out = v;
    return true;
  };

  struct Level {
    uint64_t remaining;  // items left (a map's keys and values both count)
    bool map;
  };
  std::array<Level, kMaxNestingDepth> stack{};
  int depth = 0;
  do {
    const bool key = depth > 0 && stack[depth - 1].map && stack[depth - 1].remaining % 2 == 0;
    if (p == end) return truncated();
    const uint8_t type = *p++;
    if (depth > 0) --stack[depth - 1].remaining;
    uint64_t skip = 0;   // payload bytes after the header
    int container = -1;  // 0 array, 1 map
    uint64_t count = 0;  // elements of a container
    const bool is_string = (type & 0xE0) == 0xA0 || (type >= 0xD9 && type <= 0xDB);
    if (key && !is_string) {
      --p;
      return "not valid msgpack: map key is not a string at byte " + at();
    }
    if (type < 0x80 || type >= 0xE0 || type == 0xC0 || type == 0xC2 || type == 0xC3) {
      // a one-byte value
    } else if (type < 0x90) {
      container = 1;
      count = type & 0x0F;
    } else if (type < 0xA0) {
      container = 0;
      count = type & 0x0F;
    } else if (type < 0xC0) {
      skip = type & 0x1F;
    } else {
      switch (type) {
        case 0xCC:
        case 0xD0:
          skip = 1;
          break;
        case 0xCD:
        case 0xD1:
          skip = 2;
          break;
        case 0xCA:
        case 0xCE:
        case 0xD2:
          skip = 4;
          break;
        case 0xCB:
        case 0xCF:
        case 0xD3:
          skip = 8;
          break;
        case 0xC4:
        case 0xD9:
          if (!length(1, skip)) return truncated();
          break;
        case 0xC5:
        case 0xDA:
          if (!length(2, skip)) return truncated();
          break;
        case 0xC6:
        case 0xDB:
          if (!length(4, skip)) return truncated();
          break;
        case 0xC7:
        case 0xC8:
        case 0xC9:
          if (!length(type == 0xC7 ? 1 : type == 0xC8 ? 2 : 4, skip)) return truncated();
          ++skip;  // the ext subtype
          break;
        case 0xD4:
        case 0xD5:
        case 0xD6:
        case 0xD7:
        case 0xD8:
          skip = 1 + (uint64_t{1} << (type - 0xD4));
          break;
        case 0xDC:
        case 0xDE:
          if (!length(2, count)) return truncated();
          container = type == 0xDC ? 0 : 1;
          break;
        case 0xDD:
        case 0xDF:
          if (!length(4, count)) return truncated();
          container = type == 0xDD ? 0 : 1;
          break;
        default:  // 0xC1, never used
          --p;
          return "not valid msgpack: invalid byte 0xc1 at byte " + at();
      }
    }
    if (skip > static_cast<uint64_t>(end - p)) {
      p = end;
      return truncated();
    }
    p += skip;
    if (container >= 0) {
      if (depth == kMaxNestingDepth) return std::string("nesting deeper than the protocol allows");
      stack[depth++] = Level{container == 1 ? 2 * count : count, container == 1};
    }
    while (depth > 0 && stack[depth - 1].remaining == 0) --depth;
  } while (depth > 0);
  if (p != end) return "not valid msgpack: " + std::to_string(end - p) + " bytes after the value";
  return std::nullopt;
}

// The error for a body the direct reader refused with `schema_error`.
Error decode_error(std::string_view bytes, std::string schema_error) {
  if (auto syntax = msgpack_syntax_error(bytes)) return malformed(std::move(*syntax));
  return malformed(std::move(schema_error));
}

std::string unsupported_version(uint32_t version) {
  return "unsupported protocol version " + std::to_string(version) + " (this node speaks " +
         std::to_string(kProtocolVersion) + ")";
}

// Runs a decode, turning the one exception it can meet (allocation failure) into an error.
template <typename F>
auto guarded(F&& decode) -> decltype(decode()) {
  try {
    return decode();
  } catch (const std::exception& e) {
    return malformed(e.what());
  }
}

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

}  // namespace

std::string encode_message(const Message& message) {
  std::string out;
  out.reserve(max_message_size(message, /*with_snapshot_data=*/true));
  MsgpackWriter w(out);
  write_message(w, message, /*with_snapshot_data=*/true);
  return out;
}

Result<Message> decode_message(std::string_view bytes) {
  return guarded([&]() -> Result<Message> {
    if (bytes.empty()) return malformed("empty body");
    MsgpackReader r(bytes);
    Message m;
    if (const char* error = read_message(r, m)) return decode_error(bytes, error);
    if (!r.at_end()) return decode_error(bytes, "bytes after the message");
    return m;
  });
}

std::string encode_batch(const std::string& cluster_id, NodeId from,
                         const std::vector<Message>& messages) {
  return encode_batch_of(kProtocolVersion, cluster_id, from, messages);
}

std::string encode_batch(const MessageBatch& batch) {
  return encode_batch_of(batch.version, batch.cluster_id, batch.from, batch.messages);
}

Result<MessageBatch> decode_batch(std::string_view bytes) {
  return guarded([&]() -> Result<MessageBatch> {
    if (bytes.empty()) return malformed("empty body");
    MsgpackReader r(bytes);
    if (!r.tuple(kBatchFields)) return decode_error(bytes, "batch is not a 4-field array");
    MessageBatch batch;
    if (!r.uint32(batch.version)) return decode_error(bytes, "batch version is not an integer");
    if (batch.version != kProtocolVersion) {
      return decode_error(bytes, unsupported_version(batch.version));
    }
    if (!r.str(batch.cluster_id)) return decode_error(bytes, "batch cluster id is not a string");
    if (!r.uint(batch.from)) return decode_error(bytes, "batch sender is not an unsigned integer");
    uint64_t count = 0;
    if (!r.array(count)) return decode_error(bytes, "batch messages is not an array");
    batch.messages.reserve(bounded_reserve(count, r.remaining(), kMinMessageBytes));
    for (uint64_t i = 0; i < count; ++i) {
      if (const char* error = read_message(r, batch.messages.emplace_back())) {
        return decode_error(bytes, error);
      }
    }
    if (!r.at_end()) return decode_error(bytes, "bytes after the batch");
    return batch;
  });
}

std::string encode_snapshot_chunk(const SnapshotChunk& chunk, std::string_view data) {
  size_t size = 1 + 9 * kMaxUintBytes + kMaxHeaderBytes + chunk.cluster_id.size() + 1 +
                kMaxHeaderBytes + data.size();
  if (chunk.header) size += max_message_size(*chunk.header, /*with_snapshot_data=*/false);
  std::string out;
  out.reserve(size);
  MsgpackWriter w(out);
  w.array(kChunkFields);
  w.uint(chunk.version);
  w.str(chunk.cluster_id);
  w.uint(chunk.from);
  w.uint(chunk.to);
  w.uint(chunk.transfer_id);
  w.uint(chunk.offset);
  w.uint(chunk.total);
  w.uint(chunk.total_crc);
  w.uint(chunk.chunk_crc);
  if (chunk.header) {
    write_message(w, *chunk.header, /*with_snapshot_data=*/false);
  } else {
    w.nil();
  }
  w.bin(data);
  return out;
}

Result<SnapshotChunk> decode_snapshot_chunk(std::string_view bytes) {
  return guarded([&]() -> Result<SnapshotChunk> {
    if (bytes.empty()) return malformed("empty body");
    MsgpackReader r(bytes);
    if (!r.tuple(kChunkFields)) {
      return decode_error(bytes, "snapshot chunk is not an 11-field array");
    }
    SnapshotChunk c;
    if (!r.uint32(c.version)) return decode_error(bytes, "chunk version is not an integer");
    if (c.version != kProtocolVersion) return decode_error(bytes, unsupported_version(c.version));
    if (!r.str(c.cluster_id) || !r.uint(c.from) || !r.uint(c.to) || !r.uint(c.transfer_id) ||
        !r.uint(c.offset) || !r.uint(c.total) || !r.uint32(c.total_crc) || !r.uint32(c.chunk_crc)) {
      return decode_error(bytes, "snapshot chunk header field has the wrong type");
    }
    if (!r.nil()) {
      Message header;
      if (const char* error = read_message(r, header)) return decode_error(bytes, error);
      if (!header.snapshot) {
        return decode_error(bytes, "snapshot chunk header carries no snapshot");
      }
      c.header = std::move(header);
    }
    if (!r.bytes(c.data)) return decode_error(bytes, "snapshot chunk data is not a byte string");
    if (!r.at_end()) return decode_error(bytes, "bytes after the snapshot chunk");
    if (c.offset > c.total || c.data.size() > c.total - c.offset) {
      return malformed("snapshot chunk runs past the snapshot's total size");
    }
    return c;
  });
}

size_t estimated_encoded_size(const Message& message) {
  size_t size = 64 + message.context.size();
  for (const Entry& e : message.entries) size += 24 + e.data.size();
  if (message.snapshot) {
    size += 32;
    for (const Member& m : message.snapshot->meta.config.members) size += 16 + m.context.size();
    if (message.snapshot->data) size += message.snapshot->data->size();
  }
  return size;
}

uint32_t crc32(std::string_view bytes, uint32_t crc) {
  const auto& table = crc_table();
  crc = ~crc;
  for (unsigned char b : bytes) crc = table[(crc ^ b) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

}  // namespace raftlock::raft::transport
