// Encoding of the Raft values the SQLite store keeps in columns (configurations), as MessagePack.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "raft/types.h"

namespace raftlock::storage {

// Encodes a configuration as MessagePack bytes ({"members": [{"id", "voter", "context"}]}).
// Contexts are kept byte for byte (they need not be UTF-8).
std::string encode_configuration(const raft::Configuration& config);

// The inverse of encode_configuration. Malformed bytes, wrong types, a zero id or a repeated id
// give kCorrupt (the bytes came from disk).
Result<raft::Configuration> decode_configuration(std::string_view bytes);

// kInvalidArgument unless every member id is non-zero and unique.
Status validate_configuration(const raft::Configuration& config);

}  // namespace raftlock::storage
