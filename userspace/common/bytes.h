// Byte order of plain structs: BPF hash and LPM keys are raw bytes to the
// kernel, and both the compiler and the datapath's slot mirror keep keys
// sorted that way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace microseg {

// memcmp(&a, &b, sizeof(K)) < 0, computed a word at a time (big-endian loads
// compare like bytes) rather than by a call to memcmp per comparison, which
// was most of the cost of sorting and mirroring a 100k-entry generation.
template <typename K>
bool bytesLess(const K& a, const K& b) {
  static_assert(std::is_trivially_copyable_v<K>);
  const auto* pa = reinterpret_cast<const unsigned char*>(&a);
  const auto* pb = reinterpret_cast<const unsigned char*>(&b);
  size_t i = 0;
  for (; i + 8 <= sizeof(K); i += 8) {
    uint64_t x, y;
    std::memcpy(&x, pa + i, 8);
    std::memcpy(&y, pb + i, 8);
    if (x != y) return __builtin_bswap64(x) < __builtin_bswap64(y);
  }
  if (i + 4 <= sizeof(K)) {
    uint32_t x, y;
    std::memcpy(&x, pa + i, 4);
    std::memcpy(&y, pb + i, 4);
    if (x != y) return __builtin_bswap32(x) < __builtin_bswap32(y);
    i += 4;
  }
  for (; i < sizeof(K); i++) {
    if (pa[i] != pb[i]) return pa[i] < pb[i];
  }
  return false;
}

}  // namespace microseg
