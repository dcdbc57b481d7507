// SipHash-2-4 against the reference vectors of the paper (key 00..0f,
// message 00..len-1): the daemon's copy must agree with the kernel's
// (bpf/lib/wire.bpf.h), which the wire identity e2e tests check end to end.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>

#include "common/siphash.h"

namespace microseg {
namespace {

uint64_t vector(size_t len) {
  std::array<uint8_t, 16> k{};
  for (size_t i = 0; i < k.size(); i++) k[i] = static_cast<uint8_t>(i);
  uint8_t msg[64];
  for (size_t i = 0; i < sizeof(msg); i++) msg[i] = static_cast<uint8_t>(i);
  return sipHash24(sipKeyFromBytes(k), msg, len);
}

TEST(SipHash, ReferenceVectors) {
  EXPECT_EQ(vector(0), 0x726fdb47dd0e0e31ull);
  EXPECT_EQ(vector(1), 0x74f839c593dc67fdull);
  EXPECT_EQ(vector(8), 0x93f5f5799a932462ull);
  EXPECT_EQ(vector(15), 0xa129ca6149be45e5ull);
}

TEST(SipHash, KeyBytesAreLittleEndianWords) {
  std::array<uint8_t, 16> k{};
  for (size_t i = 0; i < k.size(); i++) k[i] = static_cast<uint8_t>(i);
  const SipKey s = sipKeyFromBytes(k);
  EXPECT_EQ(s.k0, 0x0706050403020100ull);
  EXPECT_EQ(s.k1, 0x0f0e0d0c0b0a0908ull);
}

}  // namespace
}  // namespace microseg
