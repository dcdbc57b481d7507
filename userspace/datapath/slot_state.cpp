#include "datapath/slot_state.h"

#include <algorithm>

namespace microseg::datapath {

SlotState slotStateOf(const Generation& gen) {
  SlotState s;
  if (gen.policy != nullptr) {
    s.policy.reserve(gen.policy->entries.size());
    for (const auto& e : gen.policy->entries) s.policy.emplace_back(e.key, e.value);
    for (const auto& [ident, value] : gen.policy->identities) {
      ms_identity_value v = value;
      if (auto it = gen.modeOverrides.find(ident); it != gen.modeOverrides.end()) v.mode = it->second;
      s.identities.emplace_back(ident, v);
    }
    for (const auto& e : gen.policy->ipcache) {
      ms_ipcache_key k{};
      k.prefixlen = e.prefixlen;
      k.addr = e.addr;
      ms_ipcache_value v{};
      v.identity = e.identity;
      s.ipcache.emplace_back(k, v);
    }
  }
  // After the ranges, so that normalize() keeps the address for a prefix
  // both have.
  for (const auto& a : gen.addresses) s.ipcache.emplace_back(a.key, a.value);
  for (const auto& c : gen.cgroups) {
    ms_cgroup_value v{};
    v.identity = c.identity;
    v.flags = c.flags;
    s.cgroups.emplace_back(c.cgroupId, v);
  }
  normalize(s.policy);
  normalize(s.ipcache);
  normalize(s.cgroups);
  normalize(s.identities);
  return s;
}

}  // namespace microseg::datapath
