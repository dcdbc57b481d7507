#include "common/siphash.h"

#include <cstring>

namespace microseg {
namespace {

uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

uint64_t le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

struct State {
  uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  }
  void absorb(uint64_t m) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
};

}  // namespace

SipKey sipKeyFromBytes(const std::array<uint8_t, 16>& bytes) {
  return SipKey{le64(bytes.data()), le64(bytes.data() + 8)};
}

uint64_t sipHash24(const SipKey& key, const void* data, size_t len) {
  const auto* in = static_cast<const uint8_t*>(data);
  State s{key.k0 ^ 0x736f6d6570736575ull, key.k1 ^ 0x646f72616e646f6dull, key.k0 ^ 0x6c7967656e657261ull,
          key.k1 ^ 0x7465646279746573ull};
  size_t i = 0;
  for (; i + 8 <= len; i += 8) s.absorb(le64(in + i));
  uint8_t last[8] = {};
  std::memcpy(last, in + i, len - i);
  last[7] = static_cast<uint8_t>(len);
  s.absorb(le64(last));
  s.v2 ^= 0xff;
  for (int r = 0; r < 4; r++) s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

}  // namespace microseg
