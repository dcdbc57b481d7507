#include "identity/identities.h"

#include <algorithm>
#include <set>

#include "bpf/abi.h"

namespace microseg::identity {

const char* reservedName(uint32_t identity) {
  switch (identity) {
    case MS_IDENTITY_ANY: return "any";
    case MS_IDENTITY_HOST: return "host";
    case MS_IDENTITY_WORLD: return "world";
    case MS_IDENTITY_UNMANAGED: return "unmanaged";
    case MS_IDENTITY_PENDING: return "pending";
    default: return "";
  }
}

std::string IdentityTable::nameOf(uint32_t identity) const {
  if (identity < MS_IDENTITY_FIRST_WORKLOAD) {
    const char* r = reservedName(identity);
    return *r != '\0' ? r : "reserved-" + std::to_string(identity);
  }
  auto it = workloads.find(identity);
  if (it == workloads.end() || it->second.empty()) return "identity-" + std::to_string(identity);
  std::string s;
  for (const auto& w : it->second) s += (s.empty() ? "" : ",") + w;
  return s;
}

IdentityTable assignIdentities(const policy::Bundle& bundle, const IdentityTable& previous) {
  std::map<policy::Labels, uint32_t> prevByLabels;
  for (const auto& [id, labels] : previous.labels) prevByLabels[labels] = id;

  IdentityTable out;
  std::map<policy::Labels, uint32_t> byLabels;
  std::set<uint32_t> used;
  std::set<policy::Labels> fresh;  // sorted: deterministic assignment order
  for (const auto& w : bundle.workloads) {
    const policy::Labels labels = w.effectiveLabels();
    if (byLabels.count(labels)) continue;
    if (auto it = prevByLabels.find(labels); it != prevByLabels.end()) {
      byLabels[labels] = it->second;
      used.insert(it->second);
    } else {
      fresh.insert(labels);
    }
  }
  uint32_t next = MS_IDENTITY_FIRST_WORKLOAD;
  for (const auto& labels : fresh) {
    while (used.count(next)) next++;
    byLabels[labels] = next;
    used.insert(next);
  }
  for (const auto& w : bundle.workloads) {
    const policy::Labels labels = w.effectiveLabels();
    const uint32_t id = byLabels.at(labels);
    out.byWorkload[w.name] = id;
    out.labels[id] = labels;
    out.workloads[id].push_back(w.name);
  }
  for (auto& [id, names] : out.workloads) std::sort(names.begin(), names.end());
  return out;
}

}  // namespace microseg::identity
