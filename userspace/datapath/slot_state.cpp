#include "datapath/slot_state.h"

#include <algorithm>
#include <cstring>


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

std::pair<const compiler::PolicyEntry*, const compiler::PolicyEntry*> exactBlock(
    const compiler::CompiledPolicy* policy) {
  if (policy == nullptr) return {nullptr, nullptr};
  return policy->exact();
}

void exactDiffInto(const compiler::PolicyEntry* was, const compiler::PolicyEntry* wasEnd,
                   const compiler::PolicyEntry* now, const compiler::PolicyEntry* nowEnd,
                   Diff<ms_policy_exact_key, ms_policy_value>& d) {
  diffWalk(
      was, wasEnd, now, nowEnd,
      [&](const ms_policy_key& k) {
        d.removes.push_back(compiler::exactKey(k));
        return true;
      },
      [&](const compiler::PolicyEntry& e) {
        d.upserts.push_back(compiler::exactEntry(e));
        return true;
      });
}

void exactPatch(const compiler::CompiledPolicy& was, const compiler::CompiledPolicy& now,
                Diff<ms_policy_exact_key, ms_policy_value>& d) {
  for (const auto& r : compiler::changedExactRuns(was, now)) exactDiffInto(r.was, r.wasEnd, r.now, r.nowEnd, d);
}

SlotState slotStateOf(const Generation& gen) {
  SlotState s;
  if (gen.policy != nullptr) {
    // The range entries come before the exact block. Without any entry the
    // block is {nullptr, nullptr} while data() of a vector an in-place
    // compile emptied is not null: stop at the vector's end then (walking to
    // nullptr crashed the daemon on a reload to a set without policies).
    const compiler::PolicyEntry* ranges = gen.policy->entries.data();
    const compiler::PolicyEntry* rangesEnd =
        gen.policy->entries.empty() ? ranges : gen.policy->exact().first;
    for (const auto* e = ranges; e != rangesEnd; ++e) s.ranges.emplace_back(e->key, e->value);
    for (const auto& [ident, value] : gen.policy->identities) {
      ms_identity_value v = value;
      if (auto it = gen.modeOverrides.find(ident); it != gen.modeOverrides.end()) v.mode = it->second;
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
