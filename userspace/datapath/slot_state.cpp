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

namespace {

std::pair<ms_policy_exact_key, ms_policy_value> exactEntry(const compiler::PolicyEntry& e) {
  ms_policy_exact_key k{};
  k.subject = e.key.subject;
  k.peer = e.key.peer;
  k.direction = e.key.direction;
  k.protocol = e.key.protocol;
  k.port = e.key.port;
  return {k, e.value};
}

}  // namespace

ExactPatch exactPatch(const Entries<ms_policy_exact_key, ms_policy_value>& mirror,
                      const compiler::CompiledPolicy& policy, Diff<ms_policy_exact_key, ms_policy_value>& d) {
  using Exact = std::pair<ms_policy_exact_key, ms_policy_value>;
  ExactPatch out;
  std::vector<uint32_t> subjects = policy.recomputed;
  std::sort(subjects.begin(), subjects.end(), bytesLess<uint32_t>);  // the mirror's order
  // Their entries now, from the compiled entries (the exact-port block,
  // one group per subject), and their groups in the mirror.
  auto below = [](const compiler::PolicyEntry& e, const ms_policy_key& k) { return bytesLess(e.key, k); };
  auto upTo = [](const compiler::PolicyEntry& e, const ms_policy_key& k) { return !bytesLess(k, e.key); };
  out.groups.reserve(subjects.size());
  auto at = policy.entries.begin();
  for (uint32_t s : subjects) {
    const auto b = compiler::subjectBounds(MS_POLICY_PREFIX_FULL, s);
    at = gallopLower(at, policy.entries.end(), b.lo, below);
    const auto end = gallopLower(at, policy.entries.end(), b.hi, upTo);
    for (; at != end; ++at) out.fresh.push_back(exactEntry(*at));
    GroupBounds<ms_policy_exact_key> g;
    std::memset(&g.lo, 0, sizeof(g.lo));
    std::memset(&g.hi, 0xff, sizeof(g.hi));
    g.lo.subject = g.hi.subject = s;
    out.groups.push_back(g);
  }
  // The difference, group by group.
  auto eBelow = [](const Exact& e, const ms_policy_exact_key& k) { return bytesLess(e.first, k); };
  auto eUpTo = [](const Exact& e, const ms_policy_exact_key& k) { return !bytesLess(k, e.first); };
  auto m = mirror.begin();
  auto f = out.fresh.cbegin();
  for (const auto& g : out.groups) {
    m = gallopLower(m, mirror.end(), g.lo, eBelow);
    const auto mEnd = gallopLower(m, mirror.end(), g.hi, eUpTo);
    const auto fEnd = gallopLower(f, out.fresh.cend(), g.hi, eUpTo);
    diffInto(m, mEnd, f, fEnd, d);
    m = mEnd;
    f = fEnd;
  }
  return out;
}

void applyPatch(Entries<ms_policy_exact_key, ms_policy_value>& mirror, const ExactPatch& patch) {
  auto keyOf = [](const std::pair<ms_policy_exact_key, ms_policy_value>& e) -> const ms_policy_exact_key& {
    return e.first;
  };
  replaceGroupsInPlace(mirror, patch.fresh, patch.groups, keyOf, bytesLess<ms_policy_exact_key>);
}

SlotState slotStateOf(const Generation& gen, bool exact) {
  SlotState s;
  if (gen.policy != nullptr) {
    std::map<uint32_t, uint32_t> rangeFlags;  // subject -> MS_IDENT_F_RANGES_*
    if (exact) s.policy.reserve(gen.policy->entries.size());
    for (const auto& e : gen.policy->entries) {
      if (e.key.prefixlen == MS_POLICY_PREFIX_FULL) {
        // The exact-port block is last: without it, nothing more to see.
        if (!exact) break;
        s.policy.push_back(exactEntry(e));
      } else {
        s.ranges.emplace_back(e.key, e.value);
        rangeFlags[e.key.subject] |=
            e.key.direction == MS_DIR_EGRESS ? MS_IDENT_F_RANGES_EGRESS : MS_IDENT_F_RANGES_INGRESS;
      }
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
  normalize(s.policy);
  normalize(s.ranges);
  normalize(s.ipcache);
  normalize(s.cgroups);
  return s;
}

}  // namespace microseg::datapath
