#include "datapath/slot_state.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "common/sorted_groups.h"

namespace microseg::datapath {

ms_cgroup_value cgroupValue(uint32_t identity, uint32_t cgroupFlags,
                            const Entries<uint32_t, ms_identity_value>& identities) {
  ms_cgroup_value v{};
  v.identity = identity;
  v.flags = static_cast<uint8_t>(cgroupFlags);
  auto it = std::lower_bound(identities.begin(), identities.end(), identity,
                             [](const auto& e, uint32_t id) { return keyLess(e.first, id); });
  if (it != identities.end() && it->first == identity) {
    v.mode = static_cast<uint8_t>(it->second.mode);
    v.isolation = static_cast<uint8_t>(it->second.flags);
  }
  return v;
}

Entries<ms_ipcache_key, ms_ipcache_value> compiledRanges(const compiler::CompiledPolicy* policy) {
  Entries<ms_ipcache_key, ms_ipcache_value> out;
  if (policy == nullptr) return out;
  out.reserve(policy->ipcache.size());
  for (const auto& e : policy->ipcache) {
    ms_ipcache_key k{};
    k.prefixlen = e.prefixlen;
    k.addr = e.addr;
    ms_ipcache_value v{};
    v.identity = e.identity;
    out.emplace_back(k, v);
  }
  normalize(out);
  return out;
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

std::pair<ms_policy_exact_key, ms_policy_value> exactEntry(const compiler::PolicyEntry& e) {
  return {exactKey(e.key), e.value};
}

std::pair<const compiler::PolicyEntry*, const compiler::PolicyEntry*> exactBlock(
    const compiler::CompiledPolicy* policy) {
  if (policy == nullptr) return {nullptr, nullptr};
  return exactBlock(policy->entries);
}

std::pair<const compiler::PolicyEntry*, const compiler::PolicyEntry*> exactBlock(
    const std::vector<compiler::PolicyEntry>& entries) {
  if (entries.empty()) return {nullptr, nullptr};
  const compiler::PolicyEntry* begin = entries.data();
  const compiler::PolicyEntry* end = begin + entries.size();
  ms_policy_key first{};
  first.prefixlen = MS_POLICY_PREFIX_FULL;
  return {std::lower_bound(begin, end, first,
                           [](const compiler::PolicyEntry& e, const ms_policy_key& k) { return bytesLess(e.key, k); }),
          end};
}

void exactDiffInto(const compiler::PolicyEntry* was, const compiler::PolicyEntry* wasEnd,
                   const compiler::PolicyEntry* now, const compiler::PolicyEntry* nowEnd,
                   Diff<ms_policy_exact_key, ms_policy_value>& d) {
  diffWalk(
      was, wasEnd, now, nowEnd,
      [&](const ms_policy_key& k) {
        d.removes.push_back(exactKey(k));
        return true;
      },
      [&](const compiler::PolicyEntry& e) {
        d.upserts.push_back(exactEntry(e));
        return true;
      });
}

void exactPatch(const compiler::CompiledPolicy& was, const compiler::CompiledPolicy& now,
                Diff<ms_policy_exact_key, ms_policy_value>& d) {
  std::vector<uint32_t> subjects = now.recomputed;
  std::sort(subjects.begin(), subjects.end(), bytesLess<uint32_t>);  // the entries' order
  auto below = [](const compiler::PolicyEntry& e, const ms_policy_key& k) { return bytesLess(e.key, k); };
  auto upTo = [](const compiler::PolicyEntry& e, const ms_policy_key& k) { return !bytesLess(k, e.key); };
  // A result that took `was`'s entries has their groups as they were.
  auto [w, wEnd] = exactBlock(now.lent ? now.replaced : was.entries);
  auto [n, nEnd] = exactBlock(&now);
  for (uint32_t s : subjects) {
    const auto b = compiler::subjectBounds(MS_POLICY_PREFIX_FULL, s);
    w = gallopLower(w, wEnd, b.lo, below);
    n = gallopLower(n, nEnd, b.lo, below);
    const auto wGroupEnd = gallopLower(w, wEnd, b.hi, upTo);
    const auto nGroupEnd = gallopLower(n, nEnd, b.hi, upTo);
    exactDiffInto(w, wGroupEnd, n, nGroupEnd, d);
    w = wGroupEnd;
    n = nGroupEnd;
  }
}

SlotState slotStateOf(const Generation& gen) {
  SlotState s;
  if (gen.policy != nullptr) {
    std::map<uint32_t, uint32_t> rangeFlags;  // subject -> MS_IDENT_F_RANGES_*
    for (const auto& e : gen.policy->entries) {
      if (e.key.prefixlen == MS_POLICY_PREFIX_FULL) break;  // the exact-port block is last
      s.ranges.emplace_back(e.key, e.value);
      rangeFlags[e.key.subject] |=
          e.key.direction == MS_DIR_EGRESS ? MS_IDENT_F_RANGES_EGRESS : MS_IDENT_F_RANGES_INGRESS;
    }
    for (const auto& [ident, value] : gen.policy->identities) {
      ms_identity_value v = value;
      if (auto it = gen.modeOverrides.find(ident); it != gen.modeOverrides.end()) v.mode = it->second;
      if (auto it = rangeFlags.find(ident); it != rangeFlags.end()) v.flags |= it->second;
      s.identities.emplace_back(ident, v);
    }
    s.ipcache = compiledRanges(gen.policy);
  }
  // After the ranges, so that normalize() keeps the address for a prefix
  // both have.
  for (const auto& a : gen.addresses) s.ipcache.emplace_back(a.key, a.value);
  normalize(s.identities);
  for (const auto& c : gen.cgroups) s.cgroups.emplace_back(c.cgroupId, cgroupValue(c.identity, c.flags, s.identities));
  normalize(s.ranges);
  normalize(s.ipcache);
  normalize(s.cgroups);
  return s;
}

}  // namespace microseg::datapath
