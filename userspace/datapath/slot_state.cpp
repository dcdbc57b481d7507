#include "datapath/slot_state.h"

#include <algorithm>
#include <map>

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

SlotState slotStateOf(const Generation& gen) {
  SlotState s;
  if (gen.policy != nullptr) {
    std::map<uint32_t, uint32_t> rangeFlags;  // subject -> MS_IDENT_F_RANGES_*
    s.policy.reserve(gen.policy->entries.size());
    for (const auto& e : gen.policy->entries) {
      if (e.key.prefixlen == MS_POLICY_PREFIX_FULL) {
        ms_policy_exact_key k{};
        k.subject = e.key.subject;
        k.peer = e.key.peer;
        k.direction = e.key.direction;
        k.protocol = e.key.protocol;
        k.port = e.key.port;
        s.policy.emplace_back(k, e.value);
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
