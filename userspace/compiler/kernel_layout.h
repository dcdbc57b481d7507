// How compiled policy is laid out in the kernel's maps (bpf/abi.h: ms_policy,
// ms_ranges, ms_ipcache): the compiler decides it, the datapath writes it as
// it is. A rule's port interval becomes the minimal set of port prefixes;
// an entry of a full-length prefix (one port) goes to the exact-port hash
// map, every shorter one to the range trie, and a subject with range
// entries in a direction carries MS_IDENT_F_RANGES_* so the kernel looks
// in the trie only for those.
//
// CompiledPolicy::entries are sorted by key bytes: prefix length first, then
// subject, peer, direction, protocol, port. So every prefix length is one
// block, the exact-port block (MS_POLICY_PREFIX_FULL) is the last, and one
// subject's entries of one length are a contiguous group (subjectBounds()),
// which is what a one-rule change replaces.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "bpf/abi.h"
#include "common/sorted_groups.h"

namespace microseg::compiler {

struct PolicyEntry {
  ms_policy_key key{};       // prefixlen host order, port network order
  ms_policy_value value{};
};

// Remote address -> identity, for the kernel's LPM trie (most specific
// prefix wins; a miss is MS_IDENTITY_WORLD).
struct IpcacheEntry {
  ms_addr addr{};          // network address, IPv4 mapped
  uint32_t prefixlen = 0;  // in the 128-bit mapped space (IPv4 /n = 96+n)
  uint32_t identity = 0;   // a range identity, or MS_IDENTITY_WORLD for a hole
};

// The keys of one subject's entries of one prefix length, in entries order:
// a contiguous group, its first and last possible key.
GroupBounds<ms_policy_key> subjectBounds(uint32_t prefixlen, uint32_t subject);

// Calls f(value, prefixBits) for the minimal list of port prefixes that
// covers [first, last] exactly (16-bit).
template <typename F>
void forEachPortPrefix(uint16_t first, uint16_t last, F&& f) {
  uint32_t lo = first;
  const uint32_t hi = last;
  while (lo <= hi) {
    // Largest aligned block starting at lo that stays within hi.
    uint32_t size = 1;
    uint8_t bits = 16;
    while (bits > 0) {
      const uint32_t bigger = size << 1;
      if ((lo & (bigger - 1)) != 0 || lo + bigger - 1 > hi) break;
      size = bigger;
      bits--;
    }
    f(static_cast<uint16_t>(lo), bits);
    lo += size;
  }
}

// Minimal list of (value, prefixBits) covering [first, last] exactly (16-bit).
std::vector<std::pair<uint16_t, uint8_t>> portPrefixes(uint16_t first, uint16_t last);

// The exact-port block of sorted entries (the last block), and its entries
// as the exact-port map's keys: within the block, compiled keys sort as
// their exact keys do (the same bytes after the prefix length).
std::pair<const PolicyEntry*, const PolicyEntry*> exactBlock(const std::vector<PolicyEntry>& entries);
ms_policy_exact_key exactKey(const ms_policy_key& k);
std::pair<ms_policy_exact_key, ms_policy_value> exactEntry(const PolicyEntry& e);

// MS_IDENT_F_RANGES_* of `subject` in sorted `entries` (whether it has range
// entries per direction): read off the range blocks.
void markRangeSubjects(const std::vector<PolicyEntry>& entries,
                       std::vector<std::pair<uint32_t, ms_identity_value>>& identities);

}  // namespace microseg::compiler
