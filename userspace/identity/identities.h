// Numeric identities for workloads: one per distinct label set, stable across
// reloads as long as the label set exists (pure logic, no kernel).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "policy/model.h"

namespace microseg::identity {

struct IdentityTable {
  std::map<std::string, uint32_t> byWorkload;             // workload name -> identity
  std::map<uint32_t, policy::Labels> labels;              // identity -> label set
  std::map<uint32_t, std::vector<std::string>> workloads; // identity -> workload names (sorted)

  // "payments", "a,b" for a shared identity, or the reserved names
  // host/world/unmanaged/any; "identity-<n>" if unknown.
  std::string nameOf(uint32_t identity) const;
};

// Assign identities to every workload of `bundle`. A label set that already has
// an id in `previous` keeps it; new label sets get the smallest free id >=
// MS_IDENTITY_FIRST_WORKLOAD. Deterministic: same inputs, same output. A
// workload gets Workload::effectiveLabels() (implicit microseg.dev/workload=<name>
// without spec.labels, plus its namespace label).
IdentityTable assignIdentities(const policy::Bundle& bundle, const IdentityTable& previous = {});

// Reserved identity name for ids < MS_IDENTITY_FIRST_WORKLOAD, or "" if none.
const char* reservedName(uint32_t identity);

}  // namespace microseg::identity
