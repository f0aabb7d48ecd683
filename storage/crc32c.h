// CRC-32C (Castagnoli) checksums, used to detect damaged snapshot files.
#pragma once

#include <cstdint>
#include <string_view>

namespace raftlock::storage {

// Extends `crc` (the checksum of the bytes before `data`; 0 for none) over `data`.
uint32_t crc32c_extend(uint32_t crc, std::string_view data);

// The CRC-32C of `data` (crc32c("123456789") == 0xE3069283).
inline uint32_t crc32c(std::string_view data) {
  return crc32c_extend(0, data);
}

}  // namespace raftlock::storage
