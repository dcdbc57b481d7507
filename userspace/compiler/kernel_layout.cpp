#include "compiler/kernel_layout.h"

#include <algorithm>
#include <cstring>

#include "common/bytes.h"
#include "compiler/compiler.h"

namespace microseg::compiler {

GroupBounds<ms_policy_key> subjectBounds(uint32_t prefixlen, uint32_t subject) {
  GroupBounds<ms_policy_key> g;
  std::memset(&g.lo, 0, sizeof(g.lo));
  std::memset(&g.hi, 0xff, sizeof(g.hi));
  g.lo.prefixlen = g.hi.prefixlen = prefixlen;
  g.lo.subject = g.hi.subject = subject;
  return g;
}

std::vector<std::pair<uint16_t, uint8_t>> portPrefixes(uint16_t first, uint16_t last) {
  std::vector<std::pair<uint16_t, uint8_t>> out;
  forEachPortPrefix(first, last, [&](uint16_t value, uint8_t bits) { out.emplace_back(value, bits); });
  return out;
}

std::pair<const PolicyEntry*, const PolicyEntry*> exactBlock(const std::vector<PolicyEntry>& entries) {
  if (entries.empty()) return {nullptr, nullptr};
  const PolicyEntry* begin = entries.data();
  const PolicyEntry* end = begin + entries.size();
  ms_policy_key first{};
  first.prefixlen = MS_POLICY_PREFIX_FULL;
  return {std::lower_bound(begin, end, first, [](const PolicyEntry& e, const ms_policy_key& k) { return bytesLess(e.key, k); }),
          end};
}

ms_policy_exact_key exactKey(const ms_policy_key& k) {
  ms_policy_exact_key x{};
  x.subject = k.subject;
  x.peer = k.peer;
  x.direction = k.direction;
  x.protocol = k.protocol;
  x.port = k.port;
  return x;
}

std::pair<ms_policy_exact_key, ms_policy_value> exactEntry(const PolicyEntry& e) { return {exactKey(e.key), e.value}; }

void markRangeSubjects(const std::vector<PolicyEntry>& entries,
                       std::vector<std::pair<uint32_t, ms_identity_value>>& identities) {
  auto flagsOf = [&](uint32_t subject) -> uint32_t* {
    auto it = std::lower_bound(identities.begin(), identities.end(), subject,
                               [](const auto& e, uint32_t id) { return e.first < id; });
    return it != identities.end() && it->first == subject ? &it->second.flags : nullptr;
  };
  for (const auto& e : entries) {
    if (e.key.prefixlen == MS_POLICY_PREFIX_FULL) break;  // the exact-port block is last
    if (uint32_t* f = flagsOf(e.key.subject)) {
      *f |= e.key.direction == MS_DIR_EGRESS ? MS_IDENT_F_RANGES_EGRESS : MS_IDENT_F_RANGES_INGRESS;
    }
  }
}

std::vector<ExactRuns> changedExactRuns(const CompiledPolicy& was, const CompiledPolicy& now) {
  std::vector<uint32_t> subjects = now.recomputed;
  std::sort(subjects.begin(), subjects.end(), bytesLess<uint32_t>);  // the entries' order
  auto below = [](const PolicyEntry& e, const ms_policy_key& k) { return bytesLess(e.key, k); };
  auto upTo = [](const PolicyEntry& e, const ms_policy_key& k) { return !bytesLess(k, e.key); };
  // A result that took `was`'s entries has their groups as they were.
  auto [w, wEnd] = exactBlock(now.lent ? now.replaced : was.entries);
  auto [n, nEnd] = now.exact();
  std::vector<ExactRuns> out;
  out.reserve(subjects.size());
  for (uint32_t s : subjects) {
    const auto b = subjectBounds(MS_POLICY_PREFIX_FULL, s);
    w = gallopLower(w, wEnd, b.lo, below);
    n = gallopLower(n, nEnd, b.lo, below);
    const auto wGroupEnd = gallopLower(w, wEnd, b.hi, upTo);
    const auto nGroupEnd = gallopLower(n, nEnd, b.hi, upTo);
    out.push_back({w, wGroupEnd, n, nGroupEnd});
    w = wGroupEnd;
    n = nGroupEnd;
  }
  return out;
}

}  // namespace microseg::compiler
