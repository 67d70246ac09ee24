// FNV-1a, 64-bit: a fast non-cryptographic hash of bytes. Used for shard
// checksums (catches damage, not tampering) and to compare replicas' weights.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rn {

// Pass the previous result as h to hash data in pieces.
inline uint64_t fnv1a64(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace rn
