#include "lockservice/commands.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <type_traits>

#include "lockservice/json_fields.h"

namespace raftlock::lockservice {

namespace {

using nlohmann::json;
using namespace json_fields;

constexpr ErrorCode kBad = ErrorCode::kInvalidArgument;

// The op tag written into each encoded command; the order matches Command's alternatives.
constexpr const char* kOpNames[] = {"create_lease", "revoke_lease", "expire_lease",   "acquire",
                                    "cancel_wait",  "release",      "end_lock_delay", "campaign",
                                    "proclaim",     "resign",       "cancel_campaign"};
static_assert(std::size(kOpNames) == std::variant_size_v<Command>);

json to_object(const CreateLease& c) {
  return {{"lease_id", c.lease_id}, {"ttl_ms", c.ttl_ms}};
}
json to_object(const RevokeLease& c) {
  return {{"lease_id", c.lease_id}};
}
json to_object(const ExpireLease& c) {
  return {{"lease_id", c.lease_id}, {"created_index", c.created_index}};
}
json to_object(const Acquire& c) {
  json o = {{"name", c.name},
            {"lease_id", c.lease_id},
            {"owner", c.owner},
            {"lock_delay_ms", c.lock_delay_ms},
            {"wait", c.wait}};
  if (c.create_lease_ttl_ms) o["create_lease_ttl_ms"] = *c.create_lease_ttl_ms;
  return o;
}
json to_object(const CancelWait& c) {
  return {{"name", c.name}, {"lease_id", c.lease_id}};
}
json to_object(const Release& c) {
  return {{"name", c.name}, {"lease_id", c.lease_id}, {"fencing_token", c.fencing_token}};
}
json to_object(const EndLockDelay& c) {
  return {{"name", c.name}, {"started_index", c.started_index}};
}
json to_object(const Campaign& c) {
  json o = {{"name", c.name}, {"lease_id", c.lease_id}, {"value", c.value}, {"wait", c.wait}};
  if (c.create_lease_ttl_ms) o["create_lease_ttl_ms"] = *c.create_lease_ttl_ms;
  return o;
}
json to_object(const Proclaim& c) {
  return {{"name", c.name},
          {"lease_id", c.lease_id},
          {"fencing_token", c.fencing_token},
          {"value", c.value}};
}
json to_object(const Resign& c) {
  return {{"name", c.name}, {"lease_id", c.lease_id}, {"fencing_token", c.fencing_token}};
}
json to_object(const CancelCampaign& c) {
  return {{"name", c.name}, {"lease_id", c.lease_id}};
}

// Reads `field` of `o` into `out`, returning early from the enclosing decoder on error.
#define READ_FIELD(out, reader, key)    \
  do {                                  \
    auto field_ = reader(o, key, kBad); \
    if (!field_) return field_.error(); \
    out = std::move(*field_);           \
  } while (false)

Result<Command> decode_object(std::string_view op, const json& o) {
  if (op == "create_lease") {
    CreateLease c;
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.ttl_ms, read_i64, "ttl_ms");
    return Command{c};
  }
  if (op == "revoke_lease") {
    RevokeLease c;
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    return Command{c};
  }
  if (op == "expire_lease") {
    ExpireLease c;
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.created_index, read_u64, "created_index");
    return Command{c};
  }
  if (op == "acquire") {
    Acquire c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.owner, read_string, "owner");
    READ_FIELD(c.lock_delay_ms, read_i64, "lock_delay_ms");
    READ_FIELD(c.wait, read_bool, "wait");
    READ_FIELD(c.create_lease_ttl_ms, read_optional_i64, "create_lease_ttl_ms");
    return Command{std::move(c)};
  }
  if (op == "cancel_wait") {
    CancelWait c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    return Command{std::move(c)};
  }
  if (op == "release") {
    Release c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.fencing_token, read_u64, "fencing_token");
    return Command{std::move(c)};
  }
  if (op == "end_lock_delay") {
    EndLockDelay c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.started_index, read_u64, "started_index");
    return Command{std::move(c)};
  }
  if (op == "campaign") {
    Campaign c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.value, read_string, "value");
    READ_FIELD(c.wait, read_bool, "wait");
    READ_FIELD(c.create_lease_ttl_ms, read_optional_i64, "create_lease_ttl_ms");
    return Command{std::move(c)};
  }
  if (op == "proclaim") {
    Proclaim c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.fencing_token, read_u64, "fencing_token");
    READ_FIELD(c.value, read_string, "value");
    return Command{std::move(c)};
  }
  if (op == "resign") {
    Resign c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    READ_FIELD(c.fencing_token, read_u64, "fencing_token");
    return Command{std::move(c)};
  }
  if (op == "cancel_campaign") {
    CancelCampaign c;
    READ_FIELD(c.name, read_string, "name");
    READ_FIELD(c.lease_id, read_u64, "lease_id");
    return Command{std::move(c)};
  }
  return make_error(kBad, "unknown command op '" + std::string(op) + "'");
}

#undef READ_FIELD

}  // namespace

const char* command_name(const Command& command) {
  return kOpNames[command.index()];
}

namespace {

// Each command's fields, for the direct encoder (CommandWriter) and decoder (CanonicalFields):
// calls the visitor's u64/i64/optional_i64/boolean/string with each field's key and member (const
// when encoding), and stops at the first one the visitor refuses.
template <typename Visitor, typename C>
bool command_fields(Visitor& v, C& c) {
  using T = std::remove_const_t<C>;
  if constexpr (std::is_same_v<T, CreateLease>) {
    return v.u64("lease_id", c.lease_id) && v.i64("ttl_ms", c.ttl_ms);
  } else if constexpr (std::is_same_v<T, RevokeLease>) {
    return v.u64("lease_id", c.lease_id);
  } else if constexpr (std::is_same_v<T, ExpireLease>) {
    return v.u64("lease_id", c.lease_id) && v.u64("created_index", c.created_index);
  } else if constexpr (std::is_same_v<T, Acquire>) {
    return v.string("name", c.name) && v.u64("lease_id", c.lease_id) &&
           v.string("owner", c.owner) && v.i64("lock_delay_ms", c.lock_delay_ms) &&
           v.boolean("wait", c.wait) &&
           v.optional_i64("create_lease_ttl_ms", c.create_lease_ttl_ms);
  } else if constexpr (std::is_same_v<T, CancelWait> || std::is_same_v<T, CancelCampaign>) {
    return v.string("name", c.name) && v.u64("lease_id", c.lease_id);
  } else if constexpr (std::is_same_v<T, Release> || std::is_same_v<T, Resign>) {
    return v.string("name", c.name) && v.u64("lease_id", c.lease_id) &&
           v.u64("fencing_token", c.fencing_token);
  } else if constexpr (std::is_same_v<T, EndLockDelay>) {
    return v.string("name", c.name) && v.u64("started_index", c.started_index);
  } else if constexpr (std::is_same_v<T, Campaign>) {
    return v.string("name", c.name) && v.u64("lease_id", c.lease_id) &&
           v.string("value", c.value) && v.boolean("wait", c.wait) &&
           v.optional_i64("create_lease_ttl_ms", c.create_lease_ttl_ms);
  } else {
    static_assert(std::is_same_v<T, Proclaim>, "every command's fields are listed here");
    return v.string("name", c.name) && v.u64("lease_id", c.lease_id) &&
           v.u64("fencing_token", c.fencing_token) && v.string("value", c.value);
  }
}

// Writes a command's map as nlohmann's to_msgpack writes its object: keys in bytewise order,
// every integer and string in its smallest form.
class CommandWriter {
 public:
  void add(std::string_view key, uint64_t value) { add(key, Value{Kind::kUnsigned, value, 0, {}}); }
  void add_signed(std::string_view key, int64_t value) {
    add(key, Value{Kind::kSigned, 0, value, {}});
  }
  void add(std::string_view key, bool value) {
    add(key, Value{Kind::kBool, value ? 1u : 0u, 0, {}});
  }
  void add(std::string_view key, std::string_view value) {
    add(key, Value{Kind::kString, 0, 0, value});
  }
  void add(std::string_view key, const std::string& value) { add(key, std::string_view(value)); }

  // The field visitor of command_fields (each takes the field, always succeeds).
  bool u64(std::string_view key, uint64_t value) {
    add(key, value);
    return true;
  }
  bool i64(std::string_view key, int64_t value) {
    add_signed(key, value);
    return true;
  }
  bool optional_i64(std::string_view key, const std::optional<int64_t>& value) {
    if (value) add_signed(key, *value);
    return true;
  }
  bool boolean(std::string_view key, bool value) {
    add(key, value);
    return true;
  }
  bool string(std::string_view key, const std::string& value) {
    add(key, value);
    return true;
  }

  std::string finish() {
    std::sort(fields_, fields_ + count_,
              [](const Field& a, const Field& b) { return a.key < b.key; });
    size_t size = 1;
    for (size_t k = 0; k < count_; ++k)
      size += 10 + fields_[k].key.size() + fields_[k].value.s.size();
    out_.reserve(size);
    out_.push_back(static_cast<char>(0x80 | count_));
    for (size_t k = 0; k < count_; ++k) {
      write_string(fields_[k].key);
      const Value& v = fields_[k].value;
      switch (v.kind) {
        case Kind::kUnsigned:
          unsigned_int(v.u);
          break;
        case Kind::kSigned:
          if (v.i >= 0) {
            unsigned_int(static_cast<uint64_t>(v.i));
          } else {
            negative_int(v.i);
          }
          break;
        case Kind::kBool:
          out_.push_back(static_cast<char>(v.u ? 0xc3 : 0xc2));
          break;
        case Kind::kString:
          write_string(v.s);
          break;
      }
    }
    return std::move(out_);
  }

 private:
  enum class Kind { kUnsigned, kSigned, kBool, kString };
  struct Value {
    Kind kind;
    uint64_t u;
    int64_t i;
    std::string_view s;
  };
  struct Field {
    std::string_view key;
    Value value;
  };

  void add(std::string_view key, Value value) { fields_[count_++] = Field{key, value}; }
  void big_endian(uint64_t v, size_t bytes) {
    for (size_t k = bytes; k-- > 0;) out_.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
  }
  void unsigned_int(uint64_t v) {
    if (v < 128) {
      out_.push_back(static_cast<char>(v));
    } else if (v <= 0xff) {
      out_.push_back(static_cast<char>(0xcc));
      big_endian(v, 1);
    } else if (v <= 0xffff) {
      out_.push_back(static_cast<char>(0xcd));
      big_endian(v, 2);
    } else if (v <= 0xffffffffu) {
      out_.push_back(static_cast<char>(0xce));
      big_endian(v, 4);
    } else {
      out_.push_back(static_cast<char>(0xcf));
      big_endian(v, 8);
    }
  }
  void negative_int(int64_t v) {
    const auto bits = static_cast<uint64_t>(v);
    if (v >= -32) {
      out_.push_back(static_cast<char>(static_cast<int8_t>(v)));
    } else if (v >= std::numeric_limits<int8_t>::min()) {
      out_.push_back(static_cast<char>(0xd0));
      big_endian(bits, 1);
    } else if (v >= std::numeric_limits<int16_t>::min()) {
      out_.push_back(static_cast<char>(0xd1));
      big_endian(bits, 2);
    } else if (v >= std::numeric_limits<int32_t>::min()) {
      out_.push_back(static_cast<char>(0xd2));
      big_endian(bits, 4);
    } else {
      out_.push_back(static_cast<char>(0xd3));
      big_endian(bits, 8);
    }
  }
  void write_string(std::string_view s) {
    const size_t n = s.size();
    if (n <= 31) {
      out_.push_back(static_cast<char>(0xa0 | n));
    } else if (n <= 0xff) {
      out_.push_back(static_cast<char>(0xd9));
      big_endian(n, 1);
    } else if (n <= 0xffff) {
      out_.push_back(static_cast<char>(0xda));
      big_endian(n, 2);
    } else {
      out_.push_back(static_cast<char>(0xdb));
      big_endian(n, 4);
    }
    out_.append(s);
  }

  Field fields_[8];
  size_t count_ = 0;
  std::string out_;
};

}  // namespace

std::string encode_command(const Command& command) {
  CommandWriter writer;
  std::visit([&](const auto& c) { command_fields(writer, c); }, command);
  writer.add("op", std::string_view(command_name(command)));
  return writer.finish();
}

std::string detail::encode_command_generic(const Command& command) {
  json object = std::visit([](const auto& c) { return to_object(c); }, command);
  object["op"] = command_name(command);
  std::vector<uint8_t> bytes = json::to_msgpack(object);
  return std::string(bytes.begin(), bytes.end());
}

namespace {

// One value of a canonical command map: what nlohmann's parser would make of it, as far as the
// typed readers tell apart (number_unsigned, number_integer, string, boolean, null).
struct CanonicalValue {
  enum class Kind { kUnsigned, kSigned, kString, kBool, kNil } kind = Kind::kNil;
  uint64_t u = 0;
  int64_t i = 0;
  std::string_view s;
  bool b = false;
};

struct CanonicalField {
  std::string_view key;
  CanonicalValue value;
};

// Reads the canonical shape: a fixmap (at most 15 pairs) of string keys and scalar values, and
// nothing after it. nullopt for anything else (the generic decoder then decides).
class CanonicalReader {
 public:
  explicit CanonicalReader(std::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}

  std::optional<size_t> read_map(CanonicalField (&fields)[15]) {
    uint8_t head;
    if (!byte(head) || (head & 0xf0) != 0x80) return std::nullopt;
    const size_t count = head & 0x0f;
    for (size_t k = 0; k < count; ++k) {
      uint8_t type;
      if (!byte(type)) return std::nullopt;
      auto key = string_of(type);
      if (!key) return std::nullopt;
      for (size_t j = 0; j < k; ++j) {
        if (fields[j].key == *key) return std::nullopt;  // a duplicate: the generic reader's call
      }
      fields[k].key = *key;
      if (!value(fields[k].value)) return std::nullopt;
    }
    if (p_ != end_) return std::nullopt;
    return count;
  }

 private:
  bool byte(uint8_t& out) {
    if (p_ == end_) return false;
    out = *p_++;
    return true;
  }
  template <typename T>
  bool big_endian(T& out) {
    if (static_cast<size_t>(end_ - p_) < sizeof(T)) return false;
    uint64_t v = 0;
    for (size_t k = 0; k < sizeof(T); ++k) v = (v << 8) | p_[k];
    p_ += sizeof(T);
    out = static_cast<T>(v);
    return true;
  }
  std::optional<std::string_view> bytes(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return std::nullopt;
    std::string_view out(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return out;
  }
  std::optional<std::string_view> string_of(uint8_t type) {
    if ((type & 0xe0) == 0xa0) return bytes(type & 0x1f);
    if (type == 0xd9) {
      uint8_t n;
      return big_endian(n) ? bytes(n) : std::nullopt;
    }
    if (type == 0xda) {
      uint16_t n;
      return big_endian(n) ? bytes(n) : std::nullopt;
    }
    if (type == 0xdb) {
      uint32_t n;
      return big_endian(n) ? bytes(n) : std::nullopt;
    }
    return std::nullopt;
  }
  template <typename T>
  bool unsigned_value(CanonicalValue& out) {
    T v;
    if (!big_endian(v)) return false;
    out.kind = CanonicalValue::Kind::kUnsigned;
    out.u = v;
    return true;
  }
  template <typename T>
  bool signed_value(CanonicalValue& out) {
    std::make_unsigned_t<T> v;
    if (!big_endian(v)) return false;
    out.kind = CanonicalValue::Kind::kSigned;
    out.i = static_cast<T>(v);
    return true;
  }
  bool value(CanonicalValue& out) {
    uint8_t type;
    if (!byte(type)) return false;
    if (type <= 0x7f) {
      out.kind = CanonicalValue::Kind::kUnsigned;
      out.u = type;
      return true;
    }
    if (type >= 0xe0) {
      out.kind = CanonicalValue::Kind::kSigned;
      out.i = static_cast<int8_t>(type);
      return true;
    }
    switch (type) {
      case 0xc0:
        out.kind = CanonicalValue::Kind::kNil;
        return true;
      case 0xc2:
      case 0xc3:
        out.kind = CanonicalValue::Kind::kBool;
        out.b = type == 0xc3;
        return true;
      case 0xcc:
        return unsigned_value<uint8_t>(out);
      case 0xcd:
        return unsigned_value<uint16_t>(out);
      case 0xce:
        return unsigned_value<uint32_t>(out);
      case 0xcf:
        return unsigned_value<uint64_t>(out);
      case 0xd0:
        return signed_value<int8_t>(out);
      case 0xd1:
        return signed_value<int16_t>(out);
      case 0xd2:
        return signed_value<int32_t>(out);
      case 0xd3:
        return signed_value<int64_t>(out);
      default:
        break;
    }
    auto text = string_of(type);
    if (!text) return false;
    out.kind = CanonicalValue::Kind::kString;
    out.s = *text;
    return true;
  }

  const uint8_t* p_;
  const uint8_t* end_;
};

// The typed readers of json_fields, on canonical values; false where they would fail (the
// generic decoder then produces the error).
class CanonicalFields {
 public:
  CanonicalFields(const CanonicalField* fields, size_t count) : fields_(fields), count_(count) {}

  const CanonicalValue* find(std::string_view key) const {
    for (size_t k = 0; k < count_; ++k) {
      if (fields_[k].key == key) return &fields_[k].value;
    }
    return nullptr;
  }
  bool u64(std::string_view key, uint64_t& out) const {
    const CanonicalValue* v = find(key);
    if (!v) return false;
    if (v->kind == CanonicalValue::Kind::kUnsigned) {
      out = v->u;
      return true;
    }
    if (v->kind == CanonicalValue::Kind::kSigned && v->i >= 0) {
      out = static_cast<uint64_t>(v->i);
      return true;
    }
    return false;
  }
  bool i64(std::string_view key, int64_t& out) const {
    const CanonicalValue* v = find(key);
    if (!v) return false;
    if (v->kind == CanonicalValue::Kind::kUnsigned) {
      if (v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
      out = static_cast<int64_t>(v->u);
      return true;
    }
    if (v->kind == CanonicalValue::Kind::kSigned) {
      out = v->i;
      return true;
    }
    return false;
  }
  bool optional_i64(std::string_view key, std::optional<int64_t>& out) const {
    const CanonicalValue* v = find(key);
    if (!v || v->kind == CanonicalValue::Kind::kNil) {
      out.reset();
      return true;
    }
    int64_t value;
    if (!i64(key, value)) return false;
    out = value;
    return true;
  }
  bool boolean(std::string_view key, bool& out) const {
    const CanonicalValue* v = find(key);
    if (!v || v->kind != CanonicalValue::Kind::kBool) return false;
    out = v->b;
    return true;
  }
  bool string(std::string_view key, std::string& out) const {
    const CanonicalValue* v = find(key);
    if (!v || v->kind != CanonicalValue::Kind::kString) return false;
    out.assign(v->s);
    return true;
  }

 private:
  const CanonicalField* fields_;
  size_t count_;
};

// The alternative `index` of Command, read by command_fields.
template <size_t I = 0>
std::optional<Command> decode_alternative(size_t index, const CanonicalFields& f) {
  if constexpr (I < std::variant_size_v<Command>) {
    if (index != I) return decode_alternative<I + 1>(index, f);
    std::variant_alternative_t<I, Command> c;
    if (!command_fields(f, c)) return std::nullopt;
    return Command{std::move(c)};
  } else {
    return std::nullopt;
  }
}

std::optional<Command> decode_canonical(std::string_view bytes) {
  CanonicalField storage[15];
  const auto count = CanonicalReader(bytes).read_map(storage);
  if (!count) return std::nullopt;
  const CanonicalFields f(storage, *count);
  const CanonicalValue* op = f.find("op");
  if (!op || op->kind != CanonicalValue::Kind::kString) return std::nullopt;
  for (size_t index = 0; index < std::size(kOpNames); ++index) {
    if (op->s == kOpNames[index]) return decode_alternative(index, f);
  }
  return std::nullopt;
}

}  // namespace

Result<Command> decode_command(std::string_view bytes) {
  if (auto command = decode_canonical(bytes)) return std::move(*command);
  return detail::decode_command_generic(bytes);
}

Result<Command> detail::decode_command_generic(std::string_view bytes) {
  try {
    auto parsed = parse_msgpack(bytes, kBad);
    if (!parsed) return make_error(kBad, "command " + parsed.error().message);
    if (!parsed->is_object()) return make_error(kBad, "command is not a MessagePack map");
    auto op = read_string(*parsed, "op", kBad);
    if (!op) return make_error(kBad, "command " + op.error().message);
    auto command = decode_object(*op, *parsed);
    if (!command) return make_error(kBad, *op + " command: " + command.error().message);
    return command;
  } catch (const std::exception& e) {
    return make_error(kBad, std::string("command could not be decoded: ") + e.what());
  }
}

}  // namespace raftlock::lockservice
