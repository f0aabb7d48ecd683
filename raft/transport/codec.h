// Wire codec for the peer transport: raft::Message batches and snapshot chunks as MessagePack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "raft/types.h"

namespace raftlock::raft::transport {

// Bumped whenever the wire layout changes; a receiver rejects any other version.
inline constexpr uint32_t kProtocolVersion = 1;

// Deepest msgpack nesting a well-formed body ever has; deeper input is rejected before it can
// exhaust the stack of the (recursive) msgpack reader.
inline constexpr int kMaxNestingDepth = 8;

// One POST body on /raft/v1/messages: who sent it, for which cluster, and the messages.
struct MessageBatch {
  uint32_t version = kProtocolVersion;
  std::string cluster_id;
  NodeId from = kNoNode;
  std::vector<Message> messages;
};

// One POST body on /raft/v1/snapshot: a slice of a snapshot's data. The first chunk (offset 0)
// also carries the kSnapshot message itself (with the snapshot's meta but empty data).
struct SnapshotChunk {
  uint32_t version = kProtocolVersion;
  std::string cluster_id;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  uint64_t transfer_id = 0;       // chosen by the sender, the same for every chunk of one transfer
  uint64_t offset = 0;            // where `data` starts inside the snapshot data
  uint64_t total = 0;             // size of the whole snapshot data
  uint32_t total_crc = 0;         // crc32 of the whole snapshot data
  uint32_t chunk_crc = 0;         // crc32 of `data`
  std::optional<Message> header;  // only in the chunk at offset 0
  std::string data;
};

// Encodes one message (every field, including entries, snapshot meta and data, context).
std::string encode_message(const Message& message);
// Decodes what encode_message produced. Malformed input yields kInvalidArgument, never throws.
Result<Message> decode_message(std::string_view bytes);

// Encodes a batch with its envelope (version, cluster id, sender).
std::string encode_batch(const std::string& cluster_id, NodeId from,
                         const std::vector<Message>& messages);
std::string encode_batch(const MessageBatch& batch);
// Decodes a batch. Malformed input (including another protocol version) yields an error.
Result<MessageBatch> decode_batch(std::string_view bytes);

// Encodes a snapshot chunk. `data` is passed separately so the sender can slice the snapshot
// without copying it into a SnapshotChunk first (chunk.data is ignored).
std::string encode_snapshot_chunk(const SnapshotChunk& chunk, std::string_view data);
Result<SnapshotChunk> decode_snapshot_chunk(std::string_view bytes);

// A cheap estimate of a message's encoded size, for queue and batch accounting.
size_t estimated_encoded_size(const Message& message);

// CRC-32 (IEEE 802.3), continuing from `crc` (0 to start).
uint32_t crc32(std::string_view bytes, uint32_t crc = 0);

}  // namespace raftlock::raft::transport
