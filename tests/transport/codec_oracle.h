// The nlohmann/json peer codec as it was before the direct msgpack codec replaced it: the oracle
// the equivalence test and codec_bench compare the production codec against. Do not "improve" it:
// its bytes and its accept/refuse decisions are the reference.
#pragma once

#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "raft/transport/codec.h"
#include "raft/types.h"

namespace raftlock::raft::transport::oracle {

using json = nlohmann::json;

// Wire layout (all positional msgpack arrays, byte strings as msgpack bin):
//   batch   = [version, cluster_id, from, [message...]]
//   message = [type, from, to, term, log_term, index, commit, [entry...], reject, reject_term,
//              reject_hint, snapshot | nil, context]
//   entry   = [term, index, type, data]
//   snapshot= [index, term, [[member_id, voter, context]...], data]
//   chunk   = [version, cluster_id, from, to, transfer_id, offset, total, total_crc, chunk_crc,
//              message | nil, data]
constexpr size_t kMessageFields = 13;
constexpr size_t kEntryFields = 4;
constexpr size_t kSnapshotFields = 4;
constexpr size_t kMemberFields = 3;
constexpr size_t kBatchFields = 4;
constexpr size_t kChunkFields = 11;
constexpr uint64_t kMaxMessageType = static_cast<uint64_t>(MessageType::kDurable);
constexpr uint64_t kMaxEntryType = static_cast<uint64_t>(EntryType::kConfChange);

inline json to_bin(std::string_view bytes) {
  return json::binary(std::vector<uint8_t>(bytes.begin(), bytes.end()));
}

inline json encode_snapshot_json(const Snapshot& snapshot, bool with_data) {
  json members = json::array();
  for (const Member& m : snapshot.meta.config.members) {
    members.push_back(json::array({m.id, m.voter, to_bin(m.context)}));
  }
  std::string_view data;
  if (with_data && snapshot.data) data = *snapshot.data;
  return json::array({snapshot.meta.index, snapshot.meta.term, std::move(members), to_bin(data)});
}

inline json encode_message_json(const Message& m, bool with_snapshot_data) {
  json entries = json::array();
  for (const Entry& e : m.entries) {
    entries.push_back(
        json::array({e.term, e.index, static_cast<uint64_t>(e.type), to_bin(e.data)}));
  }
  json snapshot =
      m.snapshot ? encode_snapshot_json(*m.snapshot, with_snapshot_data) : json(nullptr);
  return json::array({static_cast<uint64_t>(m.type), m.from, m.to, m.term, m.log_term, m.index,
                      m.commit, std::move(entries), m.reject, m.reject_term, m.reject_hint,
                      std::move(snapshot), to_bin(m.context)});
}

inline std::string to_msgpack_string(const json& j) {
  std::string out;
  json::to_msgpack(j, out);
  return out;
}

// Builds a DOM like nlohmann's own SAX DOM parser, but refuses nesting deeper than
// kMaxNestingDepth: the msgpack reader recurses once per level, so a body of a million
// one-element arrays would otherwise overflow the stack.
class DepthLimitedDomBuilder {
 public:
  explicit DepthLimitedDomBuilder(json& root) : dom_(root, /*allow_exceptions=*/false) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(json::number_float_t v, const json::string_t& s) {
    return dom_.number_float(v, s);
  }
  bool string(json::string_t& v) { return dom_.string(v); }
  bool binary(json::binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) {
    if (++depth_ > kMaxNestingDepth) return too_deep();
    return dom_.start_object(n);
  }
  bool key(json::string_t& k) { return dom_.key(k); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) {
    if (++depth_ > kMaxNestingDepth) return too_deep();
    return dom_.start_array(n);
  }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t pos, const std::string& token,
                   const nlohmann::detail::exception& e) {
    error_ = e.what();
    return dom_.parse_error(pos, token, e);
  }

  bool too_deep_seen() const { return too_deep_; }
  const std::string& error() const { return error_; }

 private:
  bool too_deep() {
    too_deep_ = true;
    return false;
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  int depth_ = 0;
  bool too_deep_ = false;
  std::string error_;
};

inline Error malformed(std::string what) {
  return make_error(ErrorCode::kInvalidArgument, "malformed peer message: " + std::move(what));
}

inline Result<json> parse_msgpack(std::string_view bytes) {
  if (bytes.empty()) return malformed("empty body");
  json root;
  DepthLimitedDomBuilder builder(root);
  bool ok = false;
  try {
    ok = json::sax_parse(bytes.begin(), bytes.end(), &builder, json::input_format_t::msgpack,
                         /*strict=*/true);
  } catch (const std::exception& e) {
    return malformed(e.what());
  }
  if (builder.too_deep_seen()) return malformed("nesting deeper than the protocol allows");
  if (!ok) return malformed(builder.error().empty() ? "not valid msgpack" : builder.error());
  return root;
}

// Field readers: each returns false when the value has the wrong type or range.
inline bool read_u64(const json& j, uint64_t& out) {
  if (!j.is_number_unsigned()) return false;
  out = j.get<uint64_t>();
  return true;
}

inline bool read_u32(const json& j, uint32_t& out) {
  uint64_t v = 0;
  if (!read_u64(j, v) || v > UINT32_MAX) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

inline bool read_bool(const json& j, bool& out) {
  if (!j.is_boolean()) return false;
  out = j.get<bool>();
  return true;
}

inline bool read_bytes(const json& j, std::string& out) {
  if (!j.is_binary()) return false;
  const auto& bin = j.get_binary();
  out.assign(bin.begin(), bin.end());
  return true;
}

inline bool read_string(const json& j, std::string& out) {
  if (!j.is_string()) return false;
  out = j.get_ref<const std::string&>();
  return true;
}

inline bool is_tuple(const json& j, size_t fields) {
  return j.is_array() && j.size() == fields;
}

inline Result<Snapshot> decode_snapshot_json(const json& j) {
  if (!is_tuple(j, kSnapshotFields)) return malformed("snapshot is not a 4-field array");
  Snapshot snapshot;
  if (!read_u64(j[0], snapshot.meta.index) || !read_u64(j[1], snapshot.meta.term)) {
    return malformed("snapshot index/term is not an unsigned integer");
  }
  if (!j[2].is_array()) return malformed("snapshot members is not an array");
  for (const json& mj : j[2]) {
    Member m;
    if (!is_tuple(mj, kMemberFields) || !read_u64(mj[0], m.id) || !read_bool(mj[1], m.voter) ||
        !read_bytes(mj[2], m.context)) {
      return malformed("snapshot member is not [id, voter, context]");
    }
    snapshot.meta.config.members.push_back(std::move(m));
  }
  auto data = std::make_shared<std::string>();
  if (!read_bytes(j[3], *data)) return malformed("snapshot data is not a byte string");
  snapshot.data = std::move(data);
  return snapshot;
}

inline Result<Message> decode_message_json(const json& j) {
  if (!is_tuple(j, kMessageFields)) return malformed("message is not a 13-field array");
  Message m;
  uint64_t type = 0;
  if (!read_u64(j[0], type) || type > kMaxMessageType) return malformed("unknown message type");
  m.type = static_cast<MessageType>(type);
  if (!read_u64(j[1], m.from) || !read_u64(j[2], m.to) || !read_u64(j[3], m.term) ||
      !read_u64(j[4], m.log_term) || !read_u64(j[5], m.index) || !read_u64(j[6], m.commit)) {
    return malformed("message header field is not an unsigned integer");
  }
  if (!j[7].is_array()) return malformed("message entries is not an array");
  m.entries.reserve(j[7].size());
  for (const json& ej : j[7]) {
    Entry e;
    uint64_t entry_type = 0;
    if (!is_tuple(ej, kEntryFields) || !read_u64(ej[0], e.term) || !read_u64(ej[1], e.index) ||
        !read_u64(ej[2], entry_type) || entry_type > kMaxEntryType || !read_bytes(ej[3], e.data)) {
      return malformed("entry is not [term, index, type, data]");
    }
    e.type = static_cast<EntryType>(entry_type);
    m.entries.push_back(std::move(e));
  }
  if (!read_bool(j[8], m.reject) || !read_u64(j[9], m.reject_term) ||
      !read_u64(j[10], m.reject_hint)) {
    return malformed("message reject fields have the wrong type");
  }
  if (!j[11].is_null()) {
    auto snapshot = decode_snapshot_json(j[11]);
    if (!snapshot) return snapshot.error();
    m.snapshot = std::move(snapshot.value());
  }
  if (!read_bytes(j[12], m.context)) return malformed("message context is not a byte string");
  return m;
}

// Every decode runs inside this guard: nlohmann may throw on a path the checks above missed,
// and an exception must never leave the codec.
template <typename F>
inline auto guarded(F&& decode) -> decltype(decode()) {
  try {
    return decode();
  } catch (const std::exception& e) {
    return malformed(e.what());
  }
}

inline std::string encode_message(const Message& message) {
  return to_msgpack_string(encode_message_json(message, /*with_snapshot_data=*/true));
}

inline Result<Message> decode_message(std::string_view bytes) {
  return guarded([&]() -> Result<Message> {
    auto root = parse_msgpack(bytes);
    if (!root) return root.error();
    return decode_message_json(root.value());
  });
}

inline std::string encode_batch(const std::string& cluster_id, NodeId from,
                                const std::vector<Message>& messages) {
  json list = json::array();
  for (const Message& m : messages) list.push_back(encode_message_json(m, true));
  return to_msgpack_string(json::array({kProtocolVersion, cluster_id, from, std::move(list)}));
}

inline std::string encode_batch(const MessageBatch& batch) {
  json list = json::array();
  for (const Message& m : batch.messages) list.push_back(encode_message_json(m, true));
  return to_msgpack_string(
      json::array({batch.version, batch.cluster_id, batch.from, std::move(list)}));
}

inline Result<MessageBatch> decode_batch(std::string_view bytes) {
  return guarded([&]() -> Result<MessageBatch> {
    auto root = parse_msgpack(bytes);
    if (!root) return root.error();
    const json& j = root.value();
    if (!is_tuple(j, kBatchFields)) return malformed("batch is not a 4-field array");
    MessageBatch batch;
    if (!read_u32(j[0], batch.version)) return malformed("batch version is not an integer");
    if (batch.version != kProtocolVersion) {
      return malformed("unsupported protocol version " + std::to_string(batch.version) +
                       " (this node speaks " + std::to_string(kProtocolVersion) + ")");
    }
    if (!read_string(j[1], batch.cluster_id)) return malformed("batch cluster id is not a string");
    if (!read_u64(j[2], batch.from)) return malformed("batch sender is not an unsigned integer");
    if (!j[3].is_array()) return malformed("batch messages is not an array");
    batch.messages.reserve(j[3].size());
    for (const json& mj : j[3]) {
      auto m = decode_message_json(mj);
      if (!m) return m.error();
      batch.messages.push_back(std::move(m.value()));
    }
    return batch;
  });
}

inline std::string encode_snapshot_chunk(const SnapshotChunk& chunk, std::string_view data) {
  json header = chunk.header ? encode_message_json(*chunk.header, /*with_snapshot_data=*/false)
                             : json(nullptr);
  return to_msgpack_string(json::array(
      {chunk.version, chunk.cluster_id, chunk.from, chunk.to, chunk.transfer_id, chunk.offset,
       chunk.total, chunk.total_crc, chunk.chunk_crc, std::move(header), to_bin(data)}));
}

inline Result<SnapshotChunk> decode_snapshot_chunk(std::string_view bytes) {
  return guarded([&]() -> Result<SnapshotChunk> {
    auto root = parse_msgpack(bytes);
    if (!root) return root.error();
    const json& j = root.value();
    if (!is_tuple(j, kChunkFields)) return malformed("snapshot chunk is not an 11-field array");
    SnapshotChunk c;
    if (!read_u32(j[0], c.version)) return malformed("chunk version is not an integer");
    if (c.version != kProtocolVersion) {
      return malformed("unsupported protocol version " + std::to_string(c.version) +
                       " (this node speaks " + std::to_string(kProtocolVersion) + ")");
    }
    if (!read_string(j[1], c.cluster_id) || !read_u64(j[2], c.from) || !read_u64(j[3], c.to) ||
        !read_u64(j[4], c.transfer_id) || !read_u64(j[5], c.offset) || !read_u64(j[6], c.total) ||
        !read_u32(j[7], c.total_crc) || !read_u32(j[8], c.chunk_crc)) {
      return malformed("snapshot chunk header field has the wrong type");
    }
    if (!j[9].is_null()) {
      auto header = decode_message_json(j[9]);
      if (!header) return header.error();
      if (!header->snapshot) return malformed("snapshot chunk header carries no snapshot");
      c.header = std::move(header.value());
    }
    if (!read_bytes(j[10], c.data)) return malformed("snapshot chunk data is not a byte string");
    if (c.offset > c.total || c.data.size() > c.total - c.offset) {
      return malformed("snapshot chunk runs past the snapshot's total size");
    }
    return c;
  });
}

}  // namespace raftlock::raft::transport::oracle
