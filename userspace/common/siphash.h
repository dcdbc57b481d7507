// SipHash-2-4 (Aumasson and Bernstein), the MAC of the wire identity
// (bpf/abi.h: ms_wire_opt; the kernel's copy is bpf/lib/wire.bpf.h). Here
// for the daemon's tests and tools that must agree with the kernel bit for
// bit: tests/unit/siphash_test.cpp checks the paper's test vectors.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace microseg {

struct SipKey {
  uint64_t k0 = 0, k1 = 0;
};

// A 128-bit key as bytes (as stored) -> the two little-endian words.
SipKey sipKeyFromBytes(const std::array<uint8_t, 16>& bytes);

uint64_t sipHash24(const SipKey& key, const void* data, size_t len);

}  // namespace microseg
